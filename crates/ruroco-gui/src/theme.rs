//! Colours a person must be able to read: the error colour on either theme's background
//! has a contrast of at least 4.5:1 (WCAG AA for text). egui's own red on its dark panel
//! is about 4:1, so the window sets its own, checked here with the WCAG formula.

use eframe::egui::{Color32, Visuals};

/// The error text colour on a dark background.
pub const DARK_ERROR: Color32 = Color32::from_rgb(0xff, 0x80, 0x80);
/// The error text colour on a light background.
pub const LIGHT_ERROR: Color32 = Color32::from_rgb(0xb4, 0x00, 0x00);

/// Sets the readable error colour for the theme in use.
pub fn apply(visuals: &mut Visuals) {
    visuals.error_fg_color = if visuals.dark_mode {
        DARK_ERROR
    } else {
        LIGHT_ERROR
    };
}

/// WCAG relative luminance of an sRGB colour.
fn luminance(c: Color32) -> f32 {
    let lin = |v: u8| {
        let v = f32::from(v) / 255.0;
        if v <= 0.039_28 {
            v / 12.92
        } else {
            ((v + 0.055) / 1.055).powf(2.4)
        }
    };
    0.2126 * lin(c.r()) + 0.7152 * lin(c.g()) + 0.0722 * lin(c.b())
}

/// WCAG contrast ratio of two colours (1 to 21).
pub fn contrast(a: Color32, b: Color32) -> f32 {
    let (la, lb) = (luminance(a), luminance(b));
    let (hi, lo) = if la > lb { (la, lb) } else { (lb, la) };
    (hi + 0.05) / (lo + 0.05)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_text_is_readable_on_both_themes() {
        for mut visuals in [Visuals::dark(), Visuals::light()] {
            apply(&mut visuals);
            for bg in [visuals.panel_fill, visuals.window_fill] {
                let ratio = contrast(visuals.error_fg_color, bg);
                assert!(ratio >= 4.5, "dark={} ratio {ratio:.2}", visuals.dark_mode);
            }
        }
        // The formula: black on white is 21:1.
        assert!((contrast(Color32::BLACK, Color32::WHITE) - 21.0).abs() < 0.01);
    }
}
