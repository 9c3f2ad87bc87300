//! The key as a QR code in the terminal, for a phone app to scan.
//!
//! Every cell sets both its colours (black and white of the 256-colour palette, the
//! entries terminal themes leave alone), so the code reads the same on a dark and on a
//! light terminal; two modules per character with the upper half block. The quiet zone
//! is included. A terminal narrower than the code would wrap it into something no phone
//! can read, so that is refused with the width needed.

use std::fmt::Write as _;

use anyhow::Context;
use qrcode::{Color, QrCode};

/// Modules of white around the code that scanners need.
const QUIET: usize = 4;
const BLACK: u8 = 16;
const WHITE: u8 = 231;

/// The rendered code and how many columns it needs.
pub struct Rendered {
    /// The lines, with their colour codes.
    pub text: String,
    /// How many terminal columns they need.
    pub columns: usize,
}

/// `text` as a QR code with explicit colours.
pub fn render(text: &str) -> anyhow::Result<Rendered> {
    let code = QrCode::new(text.as_bytes()).context("cannot make a QR code of the key")?;
    let width = code.width();
    let colors = code.to_colors();
    let size = width + 2 * QUIET;
    let dark = |x: usize, y: usize| -> bool {
        let (Some(x), Some(y)) = (x.checked_sub(QUIET), y.checked_sub(QUIET)) else {
            return false;
        };
        x < width && y < width && colors.get(y * width + x) == Some(&Color::Dark)
    };
    let color = |d: bool| if d { BLACK } else { WHITE };
    let mut out = String::new();
    for y in (0..size).step_by(2) {
        for x in 0..size {
            let _ = write!(
                out,
                "\x1b[38;5;{}m\x1b[48;5;{}m\u{2580}",
                color(dark(x, y)),
                color(dark(x, y + 1))
            );
        }
        out.push_str("\x1b[0m\n");
    }
    Ok(Rendered {
        text: out,
        columns: size,
    })
}

/// The columns of the terminal on standard output, if it is one.
pub fn terminal_columns() -> Option<usize> {
    let stdout = std::io::stdout();
    rustix::termios::tcgetwinsize(&stdout)
        .ok()
        .map(|w| usize::from(w.ws_col))
        .filter(|c| *c > 0)
}

/// `text` as a QR code, or why it cannot be shown in a terminal `columns` wide.
pub fn for_terminal(text: &str, columns: Option<usize>) -> anyhow::Result<String> {
    let rendered = render(text)?;
    if let Some(columns) = columns.filter(|c| *c < rendered.columns) {
        anyhow::bail!(
            "the QR code needs {} columns and this terminal has {columns}: it would wrap and not scan; widen the window (or make the font smaller) and run this again",
            rendered.columns
        );
    }
    Ok(rendered.text)
}

/// `text` as a QR code for drawing: the side in modules (quiet zone included) and one
/// `true` per dark module, row by row.
pub fn matrix(text: &str) -> anyhow::Result<(usize, Vec<bool>)> {
    let code = QrCode::new(text.as_bytes()).context("cannot make a QR code of the key")?;
    let width = code.width();
    let colors = code.to_colors();
    let size = width + 2 * QUIET;
    let mut dark = vec![false; size * size];
    for (i, color) in colors.iter().enumerate() {
        let (row, col) = (i / width + QUIET, i % width + QUIET);
        if let Some(cell) = dark.get_mut(row * size + col) {
            *cell = *color == Color::Dark;
        }
    }
    Ok((size, dark))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cell_sets_both_colours_and_a_narrow_terminal_is_refused() {
        let r = render("K7qK7qK7qK7qK7qK7qK7qK7qK7qK7qK7qK7qK7qK7qK7qK7qK7qK7qK7w=").unwrap();
        for line in r.text.lines() {
            assert_eq!(line.matches('\u{2580}').count(), r.columns);
            assert_eq!(line.matches("\x1b[38;5;").count(), r.columns);
            assert_eq!(line.matches("\x1b[48;5;").count(), r.columns);
            assert!(line.ends_with("\x1b[0m"));
        }
        assert!(for_terminal("x", Some(r.columns)).is_ok());
        let err = for_terminal(
            "K7qK7qK7qK7qK7qK7qK7qK7qK7qK7qK7qK7qK7qK7qK7qK7qK7qK7qK7w=",
            Some(20),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("needs") && err.contains("20"), "{err}");
    }
}
