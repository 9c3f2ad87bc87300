//! Under systemd's journal: every line a native entry with its priority and the fields
//! people filter on, `MESSAGE` exactly the text the fail2ban filter matches. Checked with a
//! real `systemd-journald`, started by the test in a mount namespace of its own (its own
//! `/run`), so nothing reaches the machine's journal.

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::util::{client, workspace_bin};

fn journald() -> Option<PathBuf> {
    [
        "/usr/lib/systemd/systemd-journald",
        "/lib/systemd/systemd-journald",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

/// What the test needs: root (for the namespace), journald, systemd-cat and unshare.
fn can_run() -> bool {
    let have = journald().is_some()
        && ruroco_testkit::find_tool("systemd-cat").is_some()
        && ruroco_testkit::find_tool("journalctl").is_some()
        && ruroco_testkit::find_tool("unshare").is_some();
    let root = nix::unistd::geteuid().is_root();
    if !(have && root) {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs as root with systemd's tools installed"
        );
        eprintln!("SKIPPED: needs root, systemd-journald, systemd-cat, journalctl and unshare");
    }
    have && root
}

const SCRIPT: &str = r#"
set -eu
# A /run (and journal directory) of this namespace's own: the journal written here is gone
# with it.
mount -t tmpfs tmpfs /run
mkdir -p /run/systemd/journal /run/log
if [ -d /var/log/journal ]; then mount -t tmpfs tmpfs /var/log/journal; fi
"$JOURNALD" &
journald=$!
for _ in $(seq 100); do [ -S /run/systemd/journal/socket ] && break; sleep 0.05; done
# As systemd starts a unit: stderr is a journal stream, JOURNAL_STREAM names it.
in_journal() {
    systemd-cat -t "$1" bash -c 'export JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2); exec "$@"' _ "${@:2}" &
}
in_journal ruroco-commander "$COMMANDER" --config "$DIR/server/config.toml" --commands "$DIR/server/commands.toml"
commander=$!
for _ in $(seq 200); do [ -S "$DIR/server/ruroco.socket" ] && break; sleep 0.05; done
in_journal ruroco-server "$SERVER" --config "$DIR/server/config.toml" --address "127.0.0.1:$PORT"
server=$!
for _ in $(seq 200); do
    journalctl -D /run/log/journal --no-pager -o cat SYSLOG_IDENTIFIER=ruroco-server 2>/dev/null | grep -q "listening on" && break
    sleep 0.05
done
touch "$DIR/ready"
for _ in $(seq 600); do [ -e "$DIR/stop" ] && break; sleep 0.05; done
kill -TERM "$server" "$commander"
wait "$server" "$commander" || true
journalctl --sync 2>/dev/null || sleep 1
journalctl -D /run/log/journal -o json --no-pager > "$DIR/journal.json"
kill "$journald"
wait "$journald" || true
"#;

fn wait_for(path: &Path, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if path.exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn daemons_write_native_journal_entries_with_fields() {
    if !can_run() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server_dir = d.join("server");
    std::fs::create_dir(&server_dir).unwrap();
    let key = client(&["gen"], d);
    let key = String::from_utf8(key.stdout).unwrap();
    std::fs::write(server_dir.join("client.key"), &key).unwrap();
    std::fs::write(d.join("client.key"), &key).unwrap();
    std::fs::write(
        server_dir.join("config.toml"),
        format!(
            "ips = [\"127.0.0.1\"]\nconfig_dir = \"{}\"\nsocket_user = \"\"\nsocket_group = \"\"\nallow_non_routable_ips = true\nkernel_filter = false\nstate_dir = \"{}/state\"\n",
            server_dir.display(),
            d.display()
        ),
    )
    .unwrap();
    std::fs::write(
        server_dir.join("commands.toml"),
        format!(
            "[commands]\ndefault = \"echo \\\"$RUROCO_IP\\\" >> {}/default.out\"\n",
            d.display()
        ),
    )
    .unwrap();
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut run = Command::new("unshare")
        .args(["-m", "--propagation", "private", "bash", "-c", SCRIPT])
        .env("JOURNALD", journald().unwrap())
        .env("COMMANDER", workspace_bin("ruroco-commander"))
        .env("SERVER", workspace_bin("ruroco-server"))
        .env("DIR", d)
        .env("PORT", port.to_string())
        .env_remove("RUROCO_LOG")
        .env_remove("JOURNAL_STREAM")
        .spawn()
        .unwrap();
    assert!(
        wait_for(&d.join("ready"), Duration::from_secs(20)),
        "the daemons did not start"
    );
    let junk = UdpSocket::bind("127.0.0.1:0").unwrap();
    junk.send_to(&[0u8; 5], ("127.0.0.1", port)).unwrap();
    let key_file = d.join("client.key");
    let sent = client(
        &[
            "send",
            "-a",
            &format!("127.0.0.1:{port}"),
            "-k",
            key_file.to_str().unwrap(),
        ],
        &d.join("client-conf"),
    );
    assert!(sent.status.success());
    let ran = wait_for(&d.join("default.out"), Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(300));
    std::fs::write(d.join("stop"), "").unwrap();
    let status = run.wait().unwrap();
    assert!(status.success(), "the namespace script failed");
    assert!(ran, "the knock did not run");
    let journal = std::fs::read_to_string(d.join("journal.json")).unwrap();
    let entries: Vec<serde_json::Value> = journal
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ours = |ident: &str| -> Vec<&serde_json::Value> {
        entries
            .iter()
            .filter(|e| e["SYSLOG_IDENTIFIER"] == ident)
            .collect()
    };
    let server = ours("ruroco-server");
    let commander = ours("ruroco-commander");
    assert!(!server.is_empty() && !commander.is_empty(), "{journal}");
    // Every line of both daemons came natively, none through the stream.
    for e in server.iter().chain(&commander) {
        assert_eq!(e["_TRANSPORT"], "journal", "{e}");
    }
    let find = |list: &[&serde_json::Value], field: &str, value: &str| -> serde_json::Value {
        list.iter()
            .find(|e| e[field] == value)
            .map(|e| (*e).clone())
            .unwrap_or_else(|| panic!("no entry with {field}={value}:\n{journal}"))
    };
    let listening = server
        .iter()
        .find(|e| e["MESSAGE"].as_str().unwrap_or("").contains("listening on"))
        .unwrap();
    assert_eq!(listening["PRIORITY"], "6");
    assert!(listening["MESSAGE"]
        .as_str()
        .unwrap()
        .starts_with(" INFO ruroco-server "));
    let rejected = find(&server, "REASON", "size");
    assert_eq!(
        rejected["MESSAGE"],
        " WARN rejected datagram from 127.0.0.1 reason=size"
    );
    assert_eq!(rejected["PRIORITY"], "4");
    assert_eq!(rejected["SRC_IP"], "127.0.0.1");
    assert_eq!(rejected["OUTCOME"], "rejected");
    let accepted = find(&server, "OUTCOME", "accepted");
    assert_eq!(accepted["CLIENT_IP"], "127.0.0.1");
    assert_eq!(accepted["WIRE"], "v1");
    assert_eq!(accepted["KEY"].as_str().unwrap().len(), 16);
    let done = find(&commander, "OUTCOME", "success");
    assert_eq!(done["COMMAND"], "default");
    assert_eq!(done["CLIENT_IP"], "127.0.0.1");
    assert_eq!(done["EXIT_STATUS"], "0");
    assert_eq!(done["KIND"], "command");
    assert_eq!(done["PRIORITY"], "6");
    assert!(done["MESSAGE"]
        .as_str()
        .unwrap()
        .starts_with(" INFO command default for 127.0.0.1 succeeded"));
    // fail2ban's systemd backend sees "HOST IDENT[PID]: MESSAGE": the filter still matches
    // the rejected line, and only that.
    if let Some(regex) = ruroco_testkit::tool("fail2ban-regex") {
        let lines: String = server
            .iter()
            .map(|e| {
                format!(
                    "vm ruroco-server[{}]: {}\n",
                    e["_PID"].as_str().unwrap_or("1"),
                    e["MESSAGE"].as_str().unwrap()
                )
            })
            .collect();
        let file = d.join("journal.log");
        std::fs::write(&file, &lines).unwrap();
        let filter = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../packaging/fail2ban/filter.d/ruroco.conf");
        let out = Command::new(regex)
            .arg(&file)
            .arg(&filter)
            .output()
            .unwrap();
        let report = String::from_utf8_lossy(&out.stdout);
        assert!(
            report.contains(&format!(
                "Lines: {} lines, 0 ignored, 1 matched",
                server.len()
            )),
            "{report}\n{lines}"
        );
    }
}
