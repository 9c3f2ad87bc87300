//! The client on its own: keys, flags, errors, the counter.

use std::net::UdpSocket;
use std::time::Duration;

use ruroco_proto::{open, Key};

use crate::util::{client, stderr};

#[test]
fn gen_prints_a_fresh_valid_key() {
    let dir = tempfile::tempdir().unwrap();
    let a = client(&["gen"], dir.path());
    let b = client(&["gen"], dir.path());
    assert!(a.status.success());
    let a = String::from_utf8(a.stdout).unwrap();
    let b = String::from_utf8(b.stdout).unwrap();
    assert_ne!(a, b);
    assert!(Key::parse(&a).is_ok());
    assert_eq!(a.trim().len(), 56, "base64 of 40 bytes");
}

/// Sends to a local UDP socket standing in for a server and returns what arrived.
fn capture(
    args: &[&str],
    conf: &std::path::Path,
    key: &Key,
) -> (std::process::Output, Vec<ruroco_proto::Plaintext>) {
    let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
    sink.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let addr = sink.local_addr().unwrap().to_string();
    let key_file = conf.join("k.key");
    std::fs::create_dir_all(conf).unwrap();
    std::fs::write(&key_file, key.to_key_string().as_bytes()).unwrap();
    let mut all = vec!["send", "-a", &addr, "-k", key_file.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = client(&all, conf);
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    while let Ok(n) = sink.recv(&mut buf) {
        got.push(open(key, &buf[..n]).expect("datagram opens with the key"));
    }
    (out, got)
}

#[test]
fn send_builds_the_datagram_from_the_flags() {
    let conf = tempfile::tempdir().unwrap();
    let key = Key::generate().unwrap();
    let (out, got) = capture(
        &["-c", "open_port", "-i", "203.0.113.7", "-e"],
        conf.path(),
        &key,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(got.len(), 1);
    let pt = got[0];
    assert_eq!(pt.cmd_hash, ruroco_proto::command_hash("open_port"));
    assert_eq!(pt.src_ip, Some("203.0.113.7".parse().unwrap()));
    assert!(!pt.strict);
    assert_eq!(pt.dst_ip, "127.0.0.1".parse::<std::net::IpAddr>().unwrap());
    // The counter file holds the value sent; the next send is higher and not behind the
    // clock.
    let stored = std::fs::read(conf.path().join("counter")).unwrap();
    assert_eq!(u128::from_be_bytes(stored.try_into().unwrap()), pt.counter);
    let before = now_nanos();
    let (_, again) = capture(&[], conf.path(), &key);
    assert!(again[0].counter > pt.counter);
    assert!(again[0].counter >= before);
    assert!(again[0].strict && again[0].src_ip.is_none());
}

#[test]
fn ip_must_be_a_single_address() {
    let conf = tempfile::tempdir().unwrap();
    let key = Key::generate().unwrap();
    for bad in ["1.2.3.4,5.6.7.8", "example.com", "1.2.3.4/33"] {
        let (out, got) = capture(&["-i", bad], conf.path(), &key);
        assert!(!out.status.success());
        assert!(stderr(&out).contains("--ip"), "{}", stderr(&out));
        assert!(got.is_empty(), "nothing is sent on an error");
    }
    // -4 and -6 together, as the released client took them: both families.
    let (out, got) = capture(&["-4", "-6"], conf.path(), &key);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(got.len(), 1);
    // The released client's help shows `-i ::1/64`, and it sends the address.
    let (out, got) = capture(&["-i", "2001:db8::7/64", "-e"], conf.path(), &key);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].src_ip, Some("2001:db8::7".parse().unwrap()));
}

#[test]
fn key_file_errors_name_the_file() {
    let conf = tempfile::tempdir().unwrap();
    let missing = conf.path().join("missing.key");
    let out = client(
        &["send", "-a", "127.0.0.1:9", "-k", missing.to_str().unwrap()],
        conf.path(),
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("cannot read key file") && stderr(&out).contains("missing.key"));
    let bad = conf.path().join("bad.key");
    std::fs::write(&bad, "not base64 !!!").unwrap();
    let out = client(
        &["send", "-a", "127.0.0.1:9", "-k", bad.to_str().unwrap()],
        conf.path(),
    );
    assert!(
        stderr(&out).contains("invalid key file") && stderr(&out).contains("bad.key"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn unresolvable_host_is_a_clear_error() {
    let conf = tempfile::tempdir().unwrap();
    let key = conf.path().join("k.key");
    std::fs::write(&key, Key::generate().unwrap().to_key_string().as_bytes()).unwrap();
    let out = client(
        &[
            "send",
            "-a",
            "no-such-host.invalid",
            "-k",
            key.to_str().unwrap(),
        ],
        conf.path(),
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("cannot resolve `no-such-host.invalid`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn localhost_gets_one_datagram_per_family_unless_restricted() {
    let conf = tempfile::tempdir().unwrap();
    let key_file = conf.path().join("k.key");
    let key = Key::generate().unwrap();
    std::fs::write(&key_file, key.to_key_string().as_bytes()).unwrap();
    // One listener per family on the same port: a port free on ::1 may be taken on
    // 127.0.0.1, so try a few.
    let (v4, v6, port) = (0..50)
        .find_map(|_| {
            let v6 = UdpSocket::bind("[::1]:0").unwrap();
            let port = v6.local_addr().unwrap().port();
            UdpSocket::bind(("127.0.0.1", port))
                .ok()
                .map(|v4| (v4, v6, port))
        })
        .expect("no port free on both 127.0.0.1 and ::1");
    for s in [&v4, &v6] {
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
    }
    let resolves_both = std::net::ToSocketAddrs::to_socket_addrs(&("localhost", port))
        .map(|a| {
            a.map(|a| a.is_ipv4())
                .collect::<std::collections::HashSet<_>>()
                .len()
                == 2
        })
        .unwrap_or(false);
    if !resolves_both {
        eprintln!("localhost does not resolve to both families here; only -4 is checked");
    }
    let address = format!("localhost:{port}");
    let out = client(
        &[
            "send",
            "-a",
            &address,
            "-k",
            key_file.to_str().unwrap(),
            "-4",
        ],
        conf.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let mut buf = [0u8; 128];
    assert!(v4.recv(&mut buf).is_ok());
    assert!(v6.recv(&mut buf).is_err(), "-4 sent over IPv6");
    if resolves_both {
        let out = client(
            &[
                "send",
                "-a",
                &address,
                "-k",
                key_file.to_str().unwrap(),
                "-d",
                "10",
            ],
            conf.path(),
        );
        assert!(out.status.success(), "{}", stderr(&out));
        let n = v4.recv(&mut buf).unwrap();
        let a = open(&key, &buf[..n]).unwrap();
        let n = v6.recv(&mut buf).unwrap();
        let b = open(&key, &buf[..n]).unwrap();
        assert_eq!(
            b.counter,
            a.counter + 1,
            "each datagram has its own counter value"
        );
        assert_eq!(b.dst_ip, "::1".parse::<std::net::IpAddr>().unwrap());
    }
}

#[test]
fn corrupt_counter_is_replaced_by_now_with_one_warning() {
    let conf = tempfile::tempdir().unwrap();
    std::fs::write(conf.path().join("counter"), b"junk").unwrap();
    let key = Key::generate().unwrap();
    let before = now_nanos();
    let (out, got) = capture(&[], conf.path(), &key);
    assert!(out.status.success(), "{}", stderr(&out));
    let warnings: Vec<_> = stderr(&out)
        .lines()
        .filter(|l| l.contains("counter file"))
        .map(str::to_owned)
        .collect();
    assert_eq!(warnings.len(), 1, "{}", stderr(&out));
    assert!(warnings[0].contains("corrupt"), "{warnings:?}");
    assert_eq!(got.len(), 1);
    assert!(got[0].counter >= before);
    let stored = std::fs::read(conf.path().join("counter")).unwrap();
    assert_eq!(
        u128::from_be_bytes(stored.try_into().unwrap()),
        got[0].counter
    );
    // reseed still works, for released clients' habits.
    let out = client(&["reseed"], conf.path());
    assert!(out.status.success(), "{}", stderr(&out));
}

fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

#[test]
fn a_second_client_waits_for_the_lock() {
    let conf = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(conf.path()).unwrap();
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(conf.path().join("counter.lock"))
        .unwrap();
    lock.lock().unwrap();
    let key = Key::generate().unwrap();
    let handle = {
        let path = conf.path().to_owned();
        std::thread::spawn(move || capture(&[], &path, &key))
    };
    std::thread::sleep(Duration::from_millis(800));
    assert!(!handle.is_finished(), "client did not wait for the lock");
    lock.unlock().unwrap();
    let (out, _) = handle.join().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn help_has_examples() {
    let dir = tempfile::tempdir().unwrap();
    for sub in ["gen", "send", "list", "add", "proxy", "reseed"] {
        let out = client(&[sub, "--help"], dir.path());
        assert!(out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Example"),
            "{sub}"
        );
    }
    let out = client(&["--version"], dir.path());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ruroco-client "));
}

/// `completions SHELL` on each program: bash loads the script and completes the program's
/// own subcommands and flags from it.
#[test]
fn each_program_prints_completions_a_shell_loads() {
    // (program, path, a subcommand it offers first, words before the flag, a flag there)
    for (name, program, word, before, flag) in [
        (
            "ruroco-client",
            std::path::PathBuf::from(crate::util::CLIENT),
            "send",
            "send",
            "--send-delay-ms",
        ),
        (
            "ruroco-server",
            crate::util::workspace_bin("ruroco-server"),
            "completions",
            "",
            "--check",
        ),
        (
            "ruroco-commander",
            crate::util::workspace_bin("ruroco-commander"),
            "run-pending",
            "",
            "--commands",
        ),
    ] {
        let line = format!("{name} {before} --").replace("  ", " ");
        let words = line.split(' ').count() - 1;
        let prev = line.split(' ').rev().nth(1).unwrap_or(name).to_owned();
        let out = std::process::Command::new(&program)
            .args(["completions", "bash"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        let script = String::from_utf8(out.stdout).unwrap();
        assert!(
            script.contains(flag),
            "{name}: {flag} not in the bash script"
        );
        // Load it in a real bash and ask it to complete `NAME <TAB>` and `NAME --<TAB>`.
        let probe = format!(
            "source /dev/stdin; complete -p {name} >/dev/null || exit 3; \
             f=$(complete -p {name} | sed -E 's/.* -F ([^ ]+) .*/\\1/'); \
             COMP_WORDS=({name} ''); COMP_CWORD=1; COMP_LINE='{name} '; COMP_POINT=${{#COMP_LINE}}; \
             $f {name} '' {name}; printf '%s\\n' \"${{COMPREPLY[@]}}\"; \
             COMP_WORDS=({line}); COMP_CWORD={words}; COMP_LINE='{line}'; COMP_POINT=${{#COMP_LINE}}; \
             $f {name} -- {prev}; printf '%s\\n' \"${{COMPREPLY[@]}}\""
        );
        let mut bash = std::process::Command::new("bash")
            .args(["-c", &probe])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        bash.stdin
            .take()
            .unwrap()
            .write_all(script.as_bytes())
            .unwrap();
        let done = bash.wait_with_output().unwrap();
        assert!(done.status.success(), "{name}: bash said {}", stderr(&done));
        let offered = String::from_utf8(done.stdout).unwrap();
        let offered: Vec<&str> = offered.lines().collect();
        assert!(
            offered.contains(&word),
            "{name}: {word} not offered: {offered:?}"
        );
        assert!(
            offered.contains(&flag),
            "{name}: {flag} not offered: {offered:?}"
        );
        for shell in ["zsh", "fish", "elvish", "powershell"] {
            let out = std::process::Command::new(&program)
                .args(["completions", shell])
                .output()
                .unwrap();
            assert!(
                out.status.success() && out.stdout.len() > 100,
                "{name} {shell}"
            );
        }
        let out = std::process::Command::new(&program)
            .args(["completions", "tcsh"])
            .output()
            .unwrap();
        assert!(
            !out.status.success(),
            "{name}: an unknown shell is an error"
        );
    }
}
