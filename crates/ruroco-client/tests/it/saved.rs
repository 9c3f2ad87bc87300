//! Saved servers, groups, `list` and `add`, and the counter that never falls behind.

use std::net::UdpSocket;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ruroco_proto::{open, Key, Wire};

use crate::util::{client, stderr, stdout, Stack};

const WAIT: Duration = Duration::from_secs(5);

fn write_profile(conf: &Path, text: &str) {
    std::fs::create_dir_all(conf).unwrap();
    std::fs::write(conf.join("client.toml"), text).unwrap();
}

fn entry(name: &str, stack: &Stack, extra: &str) -> String {
    format!(
        "[servers.{name}]\naddress = \"{}\"\nkey = \"{}\"\n{extra}\n",
        stack.addr,
        stack.key_file.display()
    )
}

#[test]
fn a_client_seeded_before_the_server_started_is_not_a_replay() {
    let stack = Stack::start("");
    // As if this client had sent once to another server an hour ago.
    let hour_ago = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
        - 3_600_000_000_000;
    std::fs::create_dir_all(&stack.client_dir).unwrap();
    std::fs::write(stack.client_dir.join("counter"), hour_ago.to_be_bytes()).unwrap();
    stack.send_ok(&[]);
    stack.expect_runs("default", &["127.0.0.1"]);
}

#[test]
fn send_by_name_uses_saved_values_and_flags_override_them() {
    let stack = Stack::start("max_requests_per_second = 100");
    write_profile(
        &stack.client_dir,
        &entry("web1", &stack, "command = \"other\""),
    );
    let out = client(&["send", "web1"], &stack.client_dir);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stack.wait_runs("other", 1, WAIT),
        ["127.0.0.1"],
        "{}",
        stack.logs()
    );
    let out = client(&["send", "web1", "-c", "default"], &stack.client_dir);
    assert!(out.status.success(), "{}", stderr(&out));
    stack.expect_runs("default", &["127.0.0.1"]);
    // The saved format is used, and a flag overrides it.
    write_profile(
        &stack.client_dir,
        &entry("web1", &stack, "command = \"other\"\nwire = \"v0\""),
    );
    let out = client(&["send", "web1"], &stack.client_dir);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stack.server.wait_log("wire=v0", WAIT), "{}", stack.logs());
    assert_eq!(stack.wait_runs("other", 2, WAIT).len(), 2);
}

#[test]
fn errors_name_the_file_the_server_and_the_field() {
    let conf = tempfile::tempdir().unwrap();
    write_profile(
        conf.path(),
        "[servers.web1]\naddress = \"h:1\"\nkey = \"k\"\nwire = \"v9\"\n",
    );
    let out = client(&["send", "web1"], conf.path());
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("client.toml") && err.contains("server `web1`") && err.contains("`wire`"),
        "{err}"
    );
    write_profile(
        conf.path(),
        "[servers.web1]\naddress = \"h:1\"\nkey = \"k\"\n",
    );
    let out = client(&["send", "nope"], conf.path());
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no server `nope`"),
        "{}",
        stderr(&out)
    );
    // Without a name, the original flags are needed.
    let out = client(&["send"], conf.path());
    assert!(!out.status.success());
    assert!(stderr(&out).contains("-a/--address"), "{}", stderr(&out));
}

#[test]
fn a_group_is_sent_at_once_with_a_line_per_server() {
    let a = Stack::start("");
    let b = Stack::start("");
    let conf = tempfile::tempdir().unwrap();
    let profile = entry("a", &a, "groups = [\"prod\"]")
        + &entry("b", &b, "groups = [\"prod\", \"web\"]")
        + "[servers.broken]\naddress = \"no-such-host.invalid:1\"\nkey = \"missing.key\"\ngroups = [\"prod\"]\n";
    write_profile(conf.path(), &profile);
    let out = client(&["send", "@prod", "-c", "other"], conf.path());
    assert!(
        !out.status.success(),
        "one server failed: exit status must say so"
    );
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        lines.iter().any(|l| l.starts_with("a: sent `other` to")),
        "{text}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("b: sent `other` to")),
        "{text}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("broken: failed:") && l.contains("missing.key")),
        "{text}"
    );
    assert_eq!(a.wait_runs("other", 1, WAIT), ["127.0.0.1"], "{}", a.logs());
    assert_eq!(b.wait_runs("other", 1, WAIT), ["127.0.0.1"], "{}", b.logs());
    // A group where everything works exits 0.
    let out = client(&["send", "@web"], conf.path());
    assert!(out.status.success(), "{}", stderr(&out));
    b.expect_runs("default", &["127.0.0.1"]);
    let out = client(&["send", "@nobody"], conf.path());
    assert!(!out.status.success());
    assert!(stderr(&out).contains("group `nobody`"), "{}", stderr(&out));
}

#[test]
fn list_shows_saved_servers() {
    let conf = tempfile::tempdir().unwrap();
    write_profile(
        conf.path(),
        "[servers.b]\naddress = \"b.example:1\"\nkey = \"b.key\"\n[servers.a]\naddress = \"a.example:2\"\nkey = \"a.key\"\ncommand = \"deploy\"\ngroups = [\"prod\"]\n",
    );
    let out = client(&["list"], conf.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "a\ta.example:2\ta.key (MISSING)\tcommand=deploy\tgroups=prod\nb\tb.example:1\tb.key (MISSING)\n"
    );
}

/// Sends with the saved server `name` to a local UDP socket and opens what arrives.
fn capture_saved(conf: &Path, name: &str, key: &Key) -> Vec<(usize, ruroco_proto::Plaintext)> {
    let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
    sink.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let addr = sink.local_addr().unwrap().to_string();
    let out = client(&["send", name, "-a", &addr], conf);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    while let Ok(n) = sink.recv(&mut buf) {
        got.push((n, open(key, &buf[..n]).expect("opens with the saved key")));
    }
    got
}

#[test]
fn add_makes_a_private_key_an_entry_and_install_instructions() {
    let conf = tempfile::tempdir().unwrap();
    let out = client(
        &[
            "add",
            "web1",
            "--address",
            "web1.example.com:34020",
            "-c",
            "open_ssh",
            "-g",
            "prod",
            "--wire",
            "v0",
            "--key-name",
            "laptop",
        ],
        conf.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let key_path = conf.path().join("web1.key");
    let mode = std::fs::metadata(&key_path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // Every file `add` wrote (client.toml names servers, addresses and keys) is 0600.
    for entry in std::fs::read_dir(conf.path()).unwrap() {
        let path = entry.unwrap().path();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", path.display());
    }
    let key_text = std::fs::read_to_string(&key_path).unwrap();
    let key = Key::parse(&key_text).unwrap();
    let text = stdout(&out);
    assert!(
        !text.contains(key_text.trim()),
        "the key is not printed without --qr"
    );
    for want in [
        "ssh root@web1.example.com",
        "/etc/ruroco/laptop.key",
        "set -C",
        "umask 027",
        "chgrp ruroco",
        "systemctl try-reload-or-restart ruroco",
        &format!("< {}", key_path.display()),
    ] {
        assert!(text.contains(want), "{want} missing in:\n{text}");
    }
    // The entry works: sent with its key, command, format.
    let got = capture_saved(conf.path(), "web1", &key);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, Wire::V0.datagram_len());
    assert_eq!(got[0].1.cmd_hash, ruroco_proto::command_hash("open_ssh"));
    // A second add of the same name changes nothing.
    let before = std::fs::read_to_string(conf.path().join("client.toml")).unwrap();
    let out = client(&["add", "web1", "--address", "x:1"], conf.path());
    assert!(!out.status.success());
    assert!(stderr(&out).contains("already"), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(conf.path().join("client.toml")).unwrap(),
        before
    );
    assert_eq!(std::fs::read_to_string(&key_path).unwrap(), key_text);
}

/// The printed install line, pasted into a shell, with a `ssh` that runs the remote part
/// here (in a temp root): it installs the key 0640 once, and refuses to replace it.
#[test]
fn the_printed_install_line_works_as_pasted_and_never_overwrites_a_key() {
    let base = tempfile::tempdir().unwrap();
    let conf = base.path().join("my conf dir");
    let root = base.path().join("root");
    let bin = base.path().join("bin");
    std::fs::create_dir_all(root.join("etc/ruroco")).unwrap();
    std::fs::create_dir_all(&bin).unwrap();
    let script = |name: &str, body: &str| {
        let path = bin.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    script(
        "ssh",
        r#"echo "$1" > "$FAKE_ROOT/ssh-host"; shift; exec /bin/sh -c "$(printf '%s' "$1" | sed "s|/etc/ruroco|$FAKE_ROOT/etc/ruroco|g")""#,
    );
    script("chgrp", r#"echo "chgrp $*" >> "$FAKE_ROOT/calls""#);
    script("systemctl", r#"echo "systemctl $*" >> "$FAKE_ROOT/calls""#);
    let out = client(
        &[
            "add",
            "web1",
            "--address",
            "web1.example.com:34020",
            "--key-name",
            "laptop",
        ],
        &conf,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("  ssh "))
        .map(|rest| format!("ssh {rest}"))
        .unwrap_or_else(|| panic!("{text}"));
    let paste = || {
        Command::new("/bin/sh")
            .arg("-c")
            .arg(&line)
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .env("FAKE_ROOT", &root)
            .output()
            .unwrap()
    };
    let first = paste();
    assert!(first.status.success(), "{line}\n{}", stderr(&first));
    let installed = root.join("etc/ruroco/laptop.key");
    let key = std::fs::read_to_string(conf.join("web1.key")).unwrap();
    assert_eq!(std::fs::read_to_string(&installed).unwrap(), key);
    let mode = std::fs::metadata(&installed).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
    assert_eq!(
        std::fs::read_to_string(root.join("ssh-host"))
            .unwrap()
            .trim(),
        "root@web1.example.com"
    );
    let calls = std::fs::read_to_string(root.join("calls")).unwrap();
    assert!(
        calls.contains("chgrp ruroco ") && calls.contains("systemctl try-reload-or-restart ruroco"),
        "{calls}"
    );
    // Someone else's key of the same name is there: the line refuses, the file stays.
    std::fs::write(&installed, "another client's key\n").unwrap();
    let second = paste();
    assert!(!second.status.success(), "{line}");
    assert_eq!(
        std::fs::read_to_string(&installed).unwrap(),
        "another client's key\n"
    );
}
