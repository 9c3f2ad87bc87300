//! Root never acts on what another user wrote: `config.toml`, `state_dir` and the files in
//! it, and the commands file, each made changeable by the server's user (`nobody` here)
//! the way a layout chowned to it is. A forged undo never runs; a refused commands file
//! still lets root's own undos run.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::util::{Daemon, Fixture, ALLOW, BIN};

fn root() -> bool {
    let is_root = nix::unistd::geteuid().is_root();
    if !is_root {
        eprintln!("not root: skipped (needs a second user)");
    }
    is_root
}

fn nobody() -> nix::unistd::User {
    nix::unistd::User::from_name("nobody").unwrap().unwrap()
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

/// A state file with one overdue undo of `command` whose line is `line`.
fn write_pending(dir: &Path, command: &str, line: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("pending-undos.toml"),
        format!(
            "[[undo]]\ncommand = \"{command}\"\nip = \"192.0.2.1\"\ndue_unix_ms = {}\nundo = \"{}\"\ntimeout_sec = 5\n",
            now_ms() - 1000,
            line.replace('"', "\\\"")
        ),
    )
    .unwrap();
}

fn check(fx: &Fixture) -> (bool, String) {
    let out = fx.command().arg("--check").output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn refuses(fx: &Fixture) -> String {
    let (log, status) = Daemon::try_spawn(fx.command(), "listening on")
        .err()
        .expect("must refuse to start");
    assert!(!status.expect("exits").success());
    log
}

const OPEN: &str = r#"open_ssh = { cmd = "true", undo = "echo closed $RUROCO_IP >> {dir}/closed", undo_after_sec = 60 }"#;

/// The server's user owns config.toml and points `state_dir` at a directory of its own
/// holding a forged undo: neither `--check` nor a start accepts it, and nothing runs.
#[test]
fn a_config_or_state_dir_the_servers_user_can_change_is_refused_and_nothing_runs() {
    if !root() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let theirs = d.path().join("theirs");
    let pwned = d.path().join("PWNED");
    write_pending(&theirs, "open_ssh", &format!("id > {}", pwned.display()));
    let nobody = nobody();
    let chown_nobody =
        |p: &Path| std::os::unix::fs::chown(p, Some(nobody.uid.as_raw()), None).unwrap();
    chown_nobody(&theirs);
    chown_nobody(&theirs.join("pending-undos.toml"));
    let fx = Fixture::new(
        OPEN,
        &format!(
            "state_dir = \"{}\"\nsocket_user = \"nobody\"\nsocket_group = \"\"\n{ALLOW}",
            theirs.display()
        ),
    );
    std::fs::set_permissions(&fx.config, std::fs::Permissions::from_mode(0o640)).unwrap();
    chown_nobody(&fx.config);
    let (ok, out) = check(&fx);
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!("config file {}", fx.config.display()))
            && out.contains("the server's user `nobody`")
            && out.contains("chmod 0640"),
        "{out}"
    );
    let log = refuses(&fx);
    assert!(log.contains("config file"), "{log}");
    // config.toml made root's as the message says: the state_dir is next.
    std::os::unix::fs::chown(&fx.config, Some(0), Some(0)).unwrap();
    let (ok, out) = check(&fx);
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!("state_dir {}", theirs.display()))
            && out.contains("root runs the undos written there")
            && out.contains(&format!(
                "chown root {0} && chmod go-w {0}",
                theirs.display()
            )),
        "{out}"
    );
    let log = refuses(&fx);
    assert!(log.contains("state_dir"), "{log}");
    // `run-pending` refuses the same way.
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&fx.config)
        .arg("run-pending")
        .output()
        .unwrap();
    assert!(!out.status.success());
    // The file inside, still theirs, once the directory is root's.
    std::os::unix::fs::chown(&theirs, Some(0), Some(0)).unwrap();
    std::fs::set_permissions(&theirs, std::fs::Permissions::from_mode(0o700)).unwrap();
    let log = refuses(&fx);
    assert!(
        log.contains("state file")
            && log.contains("pending-undos.toml")
            && log.contains("the file"),
        "{log}"
    );
    std::thread::sleep(Duration::from_millis(200));
    assert!(!pwned.exists(), "a forged undo ran as root");
}

/// An undo whose stored line is not the one commands.toml holds now is refused loudly
/// and dropped; one that matches runs.
#[test]
fn a_stored_undo_line_that_differs_from_commands_toml_is_refused() {
    let fx = Fixture::new(OPEN, ALLOW);
    let pwned = fx.path().join("PWNED");
    write_pending(
        &fx.path().join("state"),
        "open_ssh",
        &format!("touch {}", pwned.display()),
    );
    let cmd = fx.start();
    assert!(
        cmd.wait_log("NOT run: its stored line differs", Duration::from_secs(5)),
        "{}",
        cmd.log_text()
    );
    assert!(!pwned.exists());
    assert!(
        fx.pending().contains("no pending undos"),
        "{}",
        fx.pending()
    );
    drop(cmd);
    // The line commands.toml holds: it runs.
    write_pending(
        &fx.path().join("state"),
        "open_ssh",
        &format!("echo closed $RUROCO_IP >> {}/closed", fx.path().display()),
    );
    let _cmd = fx.start();
    assert_eq!(
        fx.wait_lines("closed", 1, Duration::from_secs(5)),
        ["closed 192.0.2.1"]
    );
}

/// A commands file others can change runs no command, but the undos root scheduled run
/// at their time; the refusal is in the journal, the metrics and `--check`, and a SIGHUP
/// once it is fixed brings the commands back.
#[test]
fn a_refused_commands_file_still_runs_pending_undos() {
    let metrics = tempfile::tempdir().unwrap();
    let fx = Fixture::new(
        OPEN,
        &format!("{ALLOW}\nmetrics_dir = \"{}\"", metrics.path().display()),
    );
    write_pending(
        &fx.path().join("state"),
        "open_ssh",
        &format!("echo closed $RUROCO_IP >> {}/closed", fx.path().display()),
    );
    std::fs::set_permissions(&fx.commands, std::fs::Permissions::from_mode(0o666)).unwrap();
    let (ok, out) = check(&fx);
    assert!(!ok, "{out}");
    assert!(
        out.contains("commands file") && out.contains("pending undos still run"),
        "{out}"
    );
    let cmd = fx.start();
    assert!(cmd.log_text().contains("no command runs until it is fixed"));
    assert_eq!(
        fx.wait_lines("closed", 1, Duration::from_secs(5)),
        ["closed 192.0.2.1"]
    );
    fx.send("open_ssh", "192.0.2.7");
    assert!(
        cmd.wait_log("the commands file is refused", Duration::from_secs(5)),
        "{}",
        cmd.log_text()
    );
    let prom = metrics.path().join("ruroco-commander.prom");
    let read_metric = || {
        std::fs::read_to_string(&prom)
            .map(|t| ruroco_testkit::metric_value(&t, "ruroco_commander_commands_file_refused"))
            .unwrap_or(-1.0)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while read_metric() != 1.0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(read_metric(), 1.0);
    // Fixed, then reloaded: commands run again.
    std::fs::set_permissions(&fx.commands, std::fs::Permissions::from_mode(0o600)).unwrap();
    cmd.signal(nix::sys::signal::Signal::SIGHUP);
    assert!(cmd.wait_log("reloaded 1 command(s)", Duration::from_secs(5)));
    fx.send("open_ssh", "192.0.2.7");
    assert!(
        cmd.wait_log(
            "command open_ssh for 192.0.2.7 succeeded",
            Duration::from_secs(5)
        ),
        "{}",
        cmd.log_text()
    );
}
