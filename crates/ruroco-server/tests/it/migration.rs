//! Taking over from the original ruroco: its replay floors (`blocklist.msgpck`, written
//! here with `rmp-serde` in the original's layout) become ours, a file we cannot read
//! stops the start, and its leftover systemd units are named by `--check`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde::Serialize;

use crate::util::{Fixture, BIN};

const WAIT: Duration = Duration::from_secs(3);

/// The original's struct, as its server writes it.
#[derive(Serialize)]
struct Blocklist {
    map: HashMap<[u8; 8], u128>,
    path: PathBuf,
}

fn write_original(fx: &Fixture, floor: u128) {
    let list = Blocklist {
        map: HashMap::from([(fx.key.id().0, floor)]),
        path: fx.path().join("blocklist.msgpck"),
    };
    std::fs::write(
        fx.path().join("blocklist.msgpck"),
        rmp_serde::to_vec(&list).unwrap(),
    )
    .unwrap();
}

#[test]
fn a_released_clients_counter_keeps_working_and_what_the_original_saw_stays_a_replay() {
    let fx = Fixture::new();
    // A released client seeded its counter long ago and counts up by one.
    let floor: u128 = 1_650_000_000_000_000_000;
    write_original(&fx, floor);
    let out = fx.command().arg("--check").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("carries over the floors of 1 key(s)") && text.contains("(1 above ours)"),
        "{text}"
    );
    let inbox = fx.inbox();
    let server = fx.start();
    assert!(
        server
            .log_text()
            .contains("carried over the replay floors of 1 key(s)"),
        "{}",
        server.log_text()
    );
    // At the floor: the original accepted it already.
    server.send(&fx.packet("default", floor));
    assert!(
        server.wait_log("reason=replay", WAIT),
        "{}",
        server.log_text()
    );
    inbox.assert_empty(Duration::from_millis(300), "a replay ran");
    server.send(&fx.packet("default", floor + 1));
    assert!(inbox.recv(WAIT).is_some(), "{}", server.log_text());
    // Our floor now wins over the file at the next start.
    server.stop();
    let server = fx.start();
    server.send(&fx.packet("default", floor + 1));
    assert!(
        server.wait_log("reason=replay", WAIT),
        "{}",
        server.log_text()
    );
    server.send(&fx.packet("default", floor + 2));
    assert!(inbox.recv(WAIT).is_some(), "{}", server.log_text());
}

#[test]
fn an_unreadable_original_floor_file_stops_the_start_and_says_the_way_out() {
    let fx = Fixture::new();
    std::fs::write(fx.path().join("blocklist.msgpck"), b"\x93garbage").unwrap();
    let out = fx
        .command()
        .args(["--address", "127.0.0.1:0"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("blocklist.msgpck") && err.contains("move it aside"),
        "{err}"
    );
    let out = fx.command().arg("--check").output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("move it aside"));
}

#[test]
fn check_names_the_originals_units_under_a_root() {
    let fx = Fixture::new();
    let root = tempfile::tempdir().unwrap();
    let units = root.path().join("etc/systemd/system");
    std::fs::create_dir_all(&units).unwrap();
    std::fs::write(
        units.join("ruroco.service"),
        "[Service]\nExecStart=/usr/local/bin/ruroco-server --config /etc/ruroco/config.toml\n",
    )
    .unwrap();
    let out = fx
        .command()
        .arg("--check")
        .arg("--root")
        .arg(root.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(&format!(
            "warning: {}/ruroco.service runs /usr/local/bin/ruroco-server",
            units.display()
        )) && text.contains("rm ")
            && text.contains("systemctl daemon-reload"),
        "{text}"
    );
    let out = Command::new(BIN)
        .arg("--check-units")
        .arg("--root")
        .arg(root.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    // Nothing to say about a clean root.
    let clean = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .arg("--check-units")
        .arg("--root")
        .arg(clean.path())
        .output()
        .unwrap();
    assert!(out.status.success() && out.stdout.is_empty());
}

/// The original's current version writes `{ map }` without `path`.
#[derive(Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CurrentBlocklist {
    map: HashMap<[u8; 8], u128>,
}

/// The released layout, read back strictly.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ReleasedBlocklist {
    map: HashMap<[u8; 8], u128>,
    path: PathBuf,
}

#[test]
fn the_current_originals_file_without_path_is_taken_over() {
    let floor: u128 = 1_650_000_000_000_000_000;
    for named in [false, true] {
        let fx = Fixture::new();
        let list = CurrentBlocklist {
            map: HashMap::from([(fx.key.id().0, floor)]),
        };
        let bytes = if named {
            rmp_serde::to_vec_named(&list).unwrap()
        } else {
            rmp_serde::to_vec(&list).unwrap()
        };
        std::fs::write(fx.path().join("blocklist.msgpck"), bytes).unwrap();
        let inbox = fx.inbox();
        let server = fx.start();
        assert!(
            server
                .log_text()
                .contains("carried over the replay floors of 1 key(s)"),
            "{}",
            server.log_text()
        );
        server.send(&fx.packet("default", floor));
        assert!(
            server.wait_log("reason=replay", WAIT),
            "{}",
            server.log_text()
        );
        server.send(&fx.packet("default", floor + 1));
        assert!(inbox.recv(WAIT).is_some(), "{}", server.log_text());
    }
}

/// The carry-over happens once and is recorded: a later start leaves the original's file
/// alone (and says to move it aside), so a lost floors.bin falls back to the seeded floor,
/// never to the original's old values.
#[test]
fn the_carry_over_happens_once_and_a_lost_floor_file_brings_back_no_old_floor() {
    let fx = Fixture::new();
    let old_floor: u128 = 1_650_000_000_000_000_000;
    write_original(&fx, old_floor);
    let inbox = fx.inbox();
    let server = fx.start();
    assert!(fx.path().join("original-floors.carried").exists());
    // Accepted by ours, a minute old (older than any seed of a later start).
    let accepted = crate::util::now_nanos() - 60_000_000_000;
    server.send(&fx.packet("default", accepted));
    assert!(inbox.recv(WAIT).is_some(), "{}", server.log_text());
    server.stop();
    // floors.bin is lost.
    std::fs::remove_file(fx.path().join("floors.bin")).unwrap();
    let (_, text) = fx.check();
    assert!(
        text.contains("was carried over once") && text.contains("move it aside"),
        "{text}"
    );
    let server = fx.start();
    let log = server.log_text();
    assert!(!log.contains("carried over the replay floors"), "{log}");
    assert!(log.contains("was carried over once"), "{log}");
    server.send(&fx.packet("default", accepted));
    assert!(
        server.wait_log("reason=replay", WAIT),
        "{}",
        server.log_text()
    );
    inbox.assert_empty(Duration::from_millis(300), "a datagram ran twice");
}

/// Going back: `write-original-floors` puts our floors into the original's file, in the
/// layout it had, so that the original (which accepts a counter only above the value it
/// holds) refuses everything ours accepted. Read back the way the original's format
/// defines it.
#[test]
fn going_back_leaves_the_original_nothing_to_replay() {
    for (current, named) in [(false, false), (true, false), (true, true), (false, true)] {
        let fx = Fixture::new();
        let floor: u128 = 1_650_000_000_000_000_000;
        let other = *b"otherkey";
        let map = HashMap::from([(fx.key.id().0, floor), (other, 7)]);
        let file = fx.path().join("blocklist.msgpck");
        let bytes = match (current, named) {
            (true, false) => rmp_serde::to_vec(&CurrentBlocklist { map }).unwrap(),
            (true, true) => rmp_serde::to_vec_named(&CurrentBlocklist { map }).unwrap(),
            (false, false) => rmp_serde::to_vec(&Blocklist {
                map,
                path: file.clone(),
            })
            .unwrap(),
            (false, true) => rmp_serde::to_vec_named(&Blocklist {
                map,
                path: file.clone(),
            })
            .unwrap(),
        };
        std::fs::write(&file, bytes).unwrap();
        let inbox = fx.inbox();
        let server = fx.start();
        let mut last = 0;
        // Two: the rate limit allows two a second from one source.
        for n in 1..=2 {
            last = floor + n;
            server.send(&fx.packet("default", last));
            assert!(inbox.recv(WAIT).is_some(), "{}", server.log_text());
        }
        server.stop();
        let out = fx.command().arg("write-original-floors").output().unwrap();
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{said}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            said.contains("refuses everything this server accepted"),
            "{said}"
        );
        let bytes = std::fs::read(&file).unwrap();
        assert_eq!(
            matches!(bytes.first(), Some(0x80..=0x8f)),
            named,
            "the field names changed"
        );
        let map = if current {
            rmp_serde::from_slice::<CurrentBlocklist>(&bytes)
                .unwrap()
                .map
        } else {
            let list: ReleasedBlocklist = rmp_serde::from_slice(&bytes).unwrap();
            assert_eq!(list.path, file);
            list.map
        };
        let held = map[&fx.key.id().0];
        assert!(
            held >= last,
            "the original would accept {last} again (holds {held})"
        );
        assert_eq!(map[&other], 7, "another key's floor was lost");
        // Switching to ours again carries the file over again (the original may have
        // accepted more since).
        let server = fx.start();
        assert!(
            server.log_text().contains("carried over the replay floors"),
            "{}",
            server.log_text()
        );
        server.send(&fx.packet("default", last));
        assert!(
            server.wait_log("reason=replay", WAIT),
            "{}",
            server.log_text()
        );
    }
}

/// A `blocklist.msgpck` the server's user cannot read: `--check` as root says so with the
/// fix (not only "move it aside", which would make every released client a replay); after
/// the fix it passes.
#[test]
fn check_as_root_names_an_original_floor_file_the_server_cannot_read() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("not root: skipped (needs a second user)");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let fx = Fixture::new();
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    let floors = fx.path().join("floors");
    std::fs::create_dir(&floors).unwrap();
    std::os::unix::fs::chown(&floors, Some(nobody.uid.as_raw()), None).unwrap();
    std::fs::set_permissions(fx.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let key = fx.path().join("client.key");
    std::os::unix::fs::chown(&key, None, Some(nobody.gid.as_raw())).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
    let text = std::fs::read_to_string(&fx.config).unwrap();
    std::fs::write(
        &fx.config,
        format!(
            "{text}\nsocket_user = \"nobody\"\nblocklist_dir = \"{}\"\n",
            floors.display()
        ),
    )
    .unwrap();
    write_original(&fx, 1_650_000_000_000_000_000);
    let original = fx.path().join("blocklist.msgpck");
    std::fs::set_permissions(&original, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (ok, said) = fx.check();
    assert!(!ok, "{said}");
    let group = nix::unistd::Group::from_gid(nobody.gid)
        .unwrap()
        .unwrap()
        .name;
    assert!(
        said.contains("the server's user `nobody` cannot read them")
            && said.contains(&format!("chgrp {group} {}", original.display())),
        "{said}"
    );
    std::os::unix::fs::chown(&original, None, Some(nobody.gid.as_raw())).unwrap();
    std::fs::set_permissions(&original, std::fs::Permissions::from_mode(0o640)).unwrap();
    let (ok, said) = fx.check();
    assert!(ok, "{said}");
}

/// Runs `cmd`, killing it after `limit`: `None` when it had not finished by then.
fn output_within(mut cmd: Command, limit: Duration) -> Option<std::process::Output> {
    use std::process::Stdio;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return Some(child.wait_with_output().unwrap());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    None
}

/// Root going back into a directory another user owns: the original's file there is
/// replaced with owner and mode set on the new file's descriptor (strace shows no chown
/// or chmod by path), a link there is refused and what it points to is untouched, and a
/// FIFO there (root's read would wait for a writer) is refused at once — for
/// `write-original-floors` and for `--check`, and a FIFO at `floors.bin` too.
#[test]
fn going_back_as_root_changes_nothing_by_path_and_follows_no_link_or_fifo() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("not root: skipped (needs a second user)");
        return;
    }
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let Some(strace) = ruroco_testkit::tool("strace") else {
        return;
    };
    let fx = Fixture::new();
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    std::os::unix::fs::chown(fx.path(), Some(nobody.uid.as_raw()), None).unwrap();
    std::fs::set_permissions(fx.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let original = fx.path().join("blocklist.msgpck");
    write_original(&fx, 1_650_000_000_000_000_000);
    std::os::unix::fs::chown(
        &original,
        Some(nobody.uid.as_raw()),
        Some(nobody.gid.as_raw()),
    )
    .unwrap();
    std::fs::set_permissions(&original, std::fs::Permissions::from_mode(0o640)).unwrap();
    let server = fx.start();
    server.stop();

    let trace = fx.path().join("trace.txt");
    let mut cmd = Command::new(strace);
    cmd.args(["-f", "-qq", "-e", "trace=%file,fchown,fchmod", "-o"])
        .arg(&trace)
        .arg(BIN)
        .arg("--config")
        .arg(&fx.config)
        .arg("write-original-floors");
    let out = output_within(cmd, Duration::from_secs(20)).expect("write-original-floors hung");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta = std::fs::symlink_metadata(&original).unwrap();
    assert!(meta.is_file());
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o7777),
        (nobody.uid.as_raw(), nobody.gid.as_raw(), 0o640),
        "owner or mode not kept"
    );
    let calls = std::fs::read_to_string(&trace).unwrap();
    let by_path: Vec<&str> = calls
        .lines()
        .filter(|l| {
            (l.contains("chown") || l.contains("chmod"))
                && !l.contains("fchown(")
                && !l.contains("fchmod(")
        })
        .collect();
    assert!(by_path.is_empty(), "changed by path: {by_path:?}");
    assert!(
        calls.contains("fchown(") && calls.contains("fchmod("),
        "no fchown/fchmod seen:\n{calls}"
    );

    // A link made by the directory's owner: refused, its target untouched.
    let victim = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(victim.path(), b"root's file\n").unwrap();
    std::fs::remove_file(&original).unwrap();
    std::os::unix::fs::symlink(victim.path(), &original).unwrap();
    let mut cmd = fx.command();
    cmd.arg("write-original-floors");
    let out = output_within(cmd, Duration::from_secs(20)).expect("write-original-floors hung");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("symbolic link"), "{said}");
    assert_eq!(std::fs::read(victim.path()).unwrap(), b"root's file\n");
    assert!(std::fs::symlink_metadata(&original)
        .unwrap()
        .file_type()
        .is_symlink());

    // A FIFO: refused at once by both, never waited on.
    std::fs::remove_file(&original).unwrap();
    nix::unistd::mkfifo(&original, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    for args in [&["write-original-floors"][..], &["--check"][..]] {
        let mut cmd = fx.command();
        cmd.args(args);
        let out = output_within(cmd, Duration::from_secs(10))
            .unwrap_or_else(|| panic!("{args:?} waited on a FIFO"));
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.success(), "{args:?}: {said}");
        assert!(said.contains("not a regular file"), "{args:?}: {said}");
    }
    std::fs::remove_file(&original).unwrap();
    let floors = fx.path().join("floors.bin");
    std::fs::remove_file(&floors).unwrap();
    nix::unistd::mkfifo(&floors, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    let mut cmd = fx.command();
    cmd.arg("--check");
    let out = output_within(cmd, Duration::from_secs(10)).expect("--check waited on a FIFO");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains("floors.bin") && said.contains("not a regular file"),
        "{said}"
    );
}

/// A backup of the original's file put back with its old times (older than the record of
/// the first carry-over) is another file: it is carried over, so what the original
/// accepted after the first carry-over stays a replay. The same file again is not.
#[test]
fn a_restored_backup_with_old_times_is_carried_over() {
    let fx = Fixture::new();
    let first: u128 = 1_650_000_000_000_000_000;
    write_original(&fx, first);
    let server = fx.start();
    server.stop();
    // The original ran on and accepted up to `later`; its file comes back from a backup
    // whose times are a year old.
    let later = first + 1_000;
    write_original(&fx, later);
    let year_ago = nix::sys::time::TimeSpec::new(
        i64::try_from(crate::util::now_nanos() / 1_000_000_000).unwrap() - 365 * 86_400,
        0,
    );
    nix::sys::stat::utimensat(
        None,
        &fx.path().join("blocklist.msgpck"),
        &year_ago,
        &year_ago,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .unwrap();
    let inbox = fx.inbox();
    let server = fx.start();
    let log = server.log_text();
    assert!(log.contains("carried over the replay floors"), "{log}");
    server.send(&fx.packet("default", later));
    assert!(
        server.wait_log("reason=replay", WAIT),
        "{}",
        server.log_text()
    );
    inbox.assert_empty(Duration::from_millis(300), "a replay of the original's ran");
    server.send(&fx.packet("default", later + 1));
    assert!(inbox.recv(WAIT).is_some(), "{}", server.log_text());
    server.stop();
    let record = std::fs::read_to_string(fx.path().join("original-floors.carried")).unwrap();
    assert!(
        record.contains("size = ") && record.contains("inode = ") && record.contains("blake2b = "),
        "{record}"
    );
    // The same file again: not carried, only the warning to move it aside.
    let server = fx.start();
    let log = server.log_text();
    assert!(!log.contains("carried over the replay floors"), "{log}");
    assert!(log.contains("was carried over once"), "{log}");
}
