//! Coming from the original ruroco: its client's `--key` flag, its GUI's saved commands
//! (`import`, both file formats), and a send that keeps going when one destination fails.

use std::time::Duration;

use crate::util::{client, stderr, stdout, Stack};

const WAIT: Duration = Duration::from_secs(5);

#[test]
fn the_released_long_flag_key_works_like_k() {
    let stack = Stack::start("");
    let address = stack.addr.to_string();
    let key = stack.key_file.to_str().unwrap().to_owned();
    let out = client(
        &[
            "send",
            "--address",
            &address,
            "--key",
            &key,
            "--command",
            "default",
        ],
        &stack.client_dir,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stack.wait_runs("default", 1, WAIT),
        ["127.0.0.1"],
        "{}",
        stack.logs()
    );
}

#[test]
fn import_reads_both_gui_formats_and_the_entries_send() {
    let stack = Stack::start("");
    let address = stack.addr.to_string();
    let files = tempfile::tempdir().unwrap();
    let tables = files.path().join("tables.toml");
    std::fs::write(
        &tables,
        format!(
            "[[list]]\naddress = \"{address}\"\ncommand = \"default\"\nipv4 = true\nname = \"web one\"\n\n[[list]]\naddress = \"{address}\"\ncommand = \"other\"\nip = \"203.0.113.9\"\npermissive = true\n"
        ),
    )
    .unwrap();
    let lines = files.path().join("lines.toml");
    std::fs::write(
        &lines,
        format!("list = [\"send --address {address} --command other -4\"]\n"),
    )
    .unwrap();
    let conf = &stack.client_dir;
    let key = stack.key_file.to_str().unwrap();
    // A dry run writes nothing.
    let out = client(
        &[
            "import",
            tables.to_str().unwrap(),
            "--key-file",
            key,
            "--dry-run",
        ],
        conf,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // The preview shows what each entry claims: a shared file could knock for someone
    // else's address.
    assert!(
        stdout(&out).contains("claims ip 203.0.113.9, permissive"),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("would add `web-one`"),
        "{}",
        stdout(&out)
    );
    assert!(!conf.join("client.toml").exists());
    for file in [&tables, &lines] {
        let out = client(&["import", file.to_str().unwrap(), "--key-file", key], conf);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let text = std::fs::read_to_string(conf.join("client.toml")).unwrap();
    // Released servers read only the 93-byte format: imported entries send it.
    assert!(text.contains("wire = \"v0\""), "{text}");
    assert!(
        text.contains("[servers.web-one]") && text.contains("ipv4 = true"),
        "{text}"
    );
    // The same host and command twice: the second gets a name of its own.
    assert!(text.contains("[servers.127-0-0-1-other]"), "{text}");
    assert!(text.contains("[servers.127-0-0-1-other-2]"), "{text}");
    let key_copy = conf.join(format!(
        "{}.key",
        stack.key_file.file_stem().unwrap().to_str().unwrap()
    ));
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&key_copy).unwrap().permissions(),
    ) & 0o777;
    assert_eq!(mode, 0o600);
    // Imported entries send.
    let out = client(&["send", "web-one"], conf);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stack.wait_runs("default", 1, WAIT),
        ["127.0.0.1"],
        "{}",
        stack.logs()
    );
    let before = text.clone();
    // A second import of the same file adds nothing and says what is saved already.
    let out = client(
        &["import", tables.to_str().unwrap(), "--key-file", key],
        conf,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("already saved as `web-one`"),
        "{}",
        stdout(&out)
    );
    let after = std::fs::read_to_string(conf.join("client.toml")).unwrap();
    assert_eq!(after, before, "a second import changed client.toml");
}

/// A name with an IPv4 and an IPv6 address, in a network namespace without IPv6: the
/// IPv6 send fails and the IPv4 one still goes. (Private mount and network namespaces of
/// the test's own, with a hosts file of its own; needs root, `unshare`, `ip`, `sysctl`.)
#[test]
fn one_failed_destination_does_not_stop_the_others() {
    let root = nix::unistd::geteuid().is_root();
    let tools = ["unshare", "ip", "sysctl", "mount"]
        .iter()
        .all(|t| crate::util::tool(t).is_some());
    if !(root && tools) {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs this as root with the tools"
        );
        eprintln!("skipped: needs root, unshare, ip, sysctl and mount");
        return;
    }
    let conf = tempfile::tempdir().unwrap();
    let key = conf.path().join("k.key");
    std::fs::write(&key, client(&["gen"], conf.path()).stdout).unwrap();
    let hosts = conf.path().join("hosts");
    std::fs::write(&hosts, "127.0.0.1 dual.test\n::1 dual.test\n").unwrap();
    let script = format!(
        "mount --bind {} /etc/hosts && ip link set lo up && sysctl -qw net.ipv6.conf.all.disable_ipv6=1 && sysctl -qw net.ipv6.conf.lo.disable_ipv6=1 && RUROCO_CONF_DIR={} exec {} send -a dual.test:9 -k {}",
        hosts.display(),
        conf.path().display(),
        crate::util::CLIENT,
        key.display()
    );
    let out = std::process::Command::new("unshare")
        .args(["-n", "-m", "--propagation", "private", "sh", "-c", &script])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("sent command `default` to 127.0.0.1:9"),
        "{err}"
    );
    assert!(err.contains("warning: not sent to [::1]:9"), "{err}");
}
