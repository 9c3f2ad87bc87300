//! A laptop user's first ten minutes: a second `add` for a server gets its own key name
//! and a warning, the QR code scans on dark and light terminals and can be shown again,
//! `reseed` shows dates and warns first, `~` in `key =` works, a readable key is warned
//! about, and one broken entry does not stop the others.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use crate::util::{client, stderr, stdout, Stack, CLIENT};

#[test]
fn two_adds_for_one_server_print_two_key_names_and_the_second_warns() {
    let conf = tempfile::tempdir().unwrap();
    let first = client(
        &["add", "web1", "--address", "web1.example.com"],
        conf.path(),
    );
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(!stderr(&first).contains("warning"), "{}", stderr(&first));
    let second = client(
        &["add", "phone", "--address", "web1.example.com:80"],
        conf.path(),
    );
    assert!(second.status.success(), "{}", stderr(&second));
    let key_name = |text: &str| -> String {
        let at = text.find("/etc/ruroco/").unwrap() + "/etc/ruroco/".len();
        text[at..].split(".key").next().unwrap().to_owned()
    };
    let (a, b) = (key_name(&stdout(&first)), key_name(&stdout(&second)));
    assert_ne!(a, b);
    assert!(a.ends_with("-web1") && b.ends_with("-phone"), "{a} {b}");
    assert!(
        stderr(&second).contains("warning: web1 already saved with host web1.example.com"),
        "{}",
        stderr(&second)
    );
    // What to do without a root login there.
    assert!(stdout(&second).contains("hand ") && stdout(&second).contains("< FILE"));
}

/// The ANSI-coloured QR code as pixels: each cell is two modules (upper half block), its
/// explicit foreground and background colours; cells without colours take `default`.
fn qr_pixels(text: &str, default: u8) -> Vec<Vec<u8>> {
    let mut rows = Vec::new();
    for line in text.lines().filter(|l| l.contains('\u{2580}')) {
        let (mut top, mut bottom) = (Vec::new(), Vec::new());
        let (mut fg, mut bg) = (default, default);
        let mut rest = line;
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix("\x1b[") {
                let end = after.find('m').unwrap();
                let code = &after[..end];
                let value = |c: &str| -> u8 {
                    if c.ends_with(";231") {
                        255
                    } else {
                        0
                    }
                };
                if code.starts_with("38;5;") {
                    fg = value(code);
                } else if code.starts_with("48;5;") {
                    bg = value(code);
                } else if code == "0" {
                    fg = default;
                    bg = default;
                }
                rest = &after[end + 1..];
                continue;
            }
            let c = rest.chars().next().unwrap();
            rest = &rest[c.len_utf8()..];
            let (t, b) = match c {
                '\u{2580}' => (fg, bg),
                _ => (bg, bg),
            };
            top.push(t);
            bottom.push(b);
        }
        rows.push(top);
        rows.push(bottom);
    }
    rows
}

fn decode(pixels: &[Vec<u8>], dir: &std::path::Path) -> Option<String> {
    let zbarimg = crate::util::tool("zbarimg")?;
    let scale = 8;
    let width = pixels.iter().map(Vec::len).max()?;
    let mut pgm = format!("P5\n{} {}\n255\n", width * scale, pixels.len() * scale).into_bytes();
    for row in pixels {
        let mut line = Vec::new();
        for x in 0..width {
            line.extend(std::iter::repeat_n(row.get(x).copied().unwrap_or(0), scale));
        }
        for _ in 0..scale {
            pgm.extend_from_slice(&line);
        }
    }
    let image = dir.join("qr.pgm");
    std::fs::write(&image, pgm).unwrap();
    let out = Command::new(zbarimg)
        .args(["-q", "--raw"])
        .arg(&image)
        .output()
        .unwrap();
    out.status.success().then(|| stdout(&out).trim().to_owned())
}

#[test]
fn the_qr_code_scans_on_dark_and_light_terminals_and_can_be_shown_again() {
    if crate::util::tool("zbarimg").is_none() {
        assert!(std::env::var_os("CI").is_none(), "CI installs zbar-tools");
        return;
    }
    let conf = tempfile::tempdir().unwrap();
    let out = client(
        &["add", "phone", "--address", "example.com", "--qr"],
        conf.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let key = std::fs::read_to_string(conf.path().join("phone.key")).unwrap();
    for background in [0u8, 255] {
        let got = decode(&qr_pixels(&stdout(&out), background), conf.path());
        assert_eq!(got.as_deref(), Some(key.trim()), "background {background}");
    }
    // Shown again for the saved server, the same code.
    let again = client(&["qr", "phone"], conf.path());
    assert!(again.status.success(), "{}", stderr(&again));
    let got = decode(&qr_pixels(&stdout(&again), 255), conf.path());
    assert_eq!(got.as_deref(), Some(key.trim()));
}

#[test]
fn reseed_shows_dates_and_warns_before_setting_an_ahead_counter_back() {
    let conf = tempfile::tempdir().unwrap();
    // Nothing to do for a counter that is not ahead.
    let out = client(&["reseed"], conf.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("nothing to change"),
        "{}",
        stdout(&out)
    );
    // A counter 30 minutes ahead.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let ahead = now + 1800 * 1_000_000_000;
    std::fs::write(conf.path().join("counter"), ahead.to_be_bytes()).unwrap();
    let out = client(&["reseed"], conf.path());
    let text = stdout(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("s ahead of this clock") && text.contains("replay"),
        "{text}"
    );
    assert!(text.contains("Z"), "dates, not nanoseconds: {text}");
    assert!(!text.contains(&ahead.to_string()), "{text}");
    assert_eq!(
        std::fs::read(conf.path().join("counter")).unwrap(),
        ahead.to_be_bytes()
    );
    let out = client(&["reseed", "--yes"], conf.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("set back from"), "{}", stdout(&out));
    let stored = u128::from_be_bytes(
        std::fs::read(conf.path().join("counter"))
            .unwrap()
            .try_into()
            .unwrap(),
    );
    assert!(stored < ahead);
}

#[test]
fn tilde_keys_readable_key_warnings_and_a_broken_entry_beside_good_ones() {
    let stack = Stack::start("");
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join("keys")).unwrap();
    let key = home.path().join("keys/web1.key");
    std::fs::copy(&stack.key_file, &key).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::create_dir_all(&stack.client_dir).unwrap();
    std::fs::write(
        stack.client_dir.join("client.toml"),
        format!(
            "[servers.web1]\naddress = \"{}\"\nkey = \"~/keys/web1.key\"\n\n[servers.bad]\naddress = \"h\"\nkey = \"k\"\nip = \"nope\"\n",
            stack.addr
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        Command::new(CLIENT)
            .args(args)
            .env("RUROCO_CONF_DIR", &stack.client_dir)
            .env("HOME", home.path())
            .output()
            .unwrap()
    };
    let out = run(&["send", "web1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("mode 0644") && stderr(&out).contains("chmod 600"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("a server never answers"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        stack.wait_runs("default", 1, std::time::Duration::from_secs(5)),
        ["127.0.0.1"]
    );
    let out = run(&["send", "bad"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("client.toml, line 8") && stderr(&out).contains("`ip`"),
        "{}",
        stderr(&out)
    );
    let out = run(&["list"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("bad\tBROKEN"), "{}", stdout(&out));
    std::fs::remove_file(&key).unwrap();
    let out = run(&["list"]);
    assert!(
        stdout(&out).contains("web1.key (MISSING)"),
        "{}",
        stdout(&out)
    );
}
