//! The packaged trust split for real: the server as an unprivileged user (`setpriv`), the
//! commander as root. Needs root to switch users; skipped with a message otherwise.

use std::os::unix::fs::{chown, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::util::{client, stderr, tool, workspace_bin, Daemon};

const WAIT: Duration = Duration::from_secs(5);
/// The unprivileged user and group (Debian's `nobody` / `nogroup`).
const UID: u32 = 65534;
const GID: u32 = 65534;

fn mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn as_nobody(setpriv: &Path) -> Command {
    let mut cmd = Command::new(setpriv);
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"]);
    cmd
}

#[test]
fn server_runs_unprivileged_and_only_the_root_commander_runs_commands() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIPPED: switching to an unprivileged user needs root");
        return;
    }
    let Some(setpriv) = tool("setpriv") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    mode(d, 0o755);
    let (etc, state, run, bin) = (d.join("etc"), d.join("state"), d.join("run"), d.join("bin"));
    for sub in [&etc, &state, &run, &bin] {
        std::fs::create_dir(sub).unwrap();
    }
    // The packaged layout: /etc/ruroco 0750 root:ruroco, keys and config 0640 root:ruroco,
    // commands.toml 0600 root, the server's state directory its own.
    chown(&etc, Some(0), Some(GID)).unwrap();
    mode(&etc, 0o750);
    chown(&state, Some(UID), Some(GID)).unwrap();
    mode(&state, 0o700);
    mode(&run, 0o755);
    mode(&bin, 0o755);
    let server_bin = bin.join("ruroco-server");
    std::fs::copy(workspace_bin("ruroco-server"), &server_bin).unwrap();
    let key = client(&["gen"], d);
    let key_file = d.join("client.key");
    std::fs::write(&key_file, &key.stdout).unwrap();
    let server_key = etc.join("laptop.key");
    std::fs::write(&server_key, &key.stdout).unwrap();
    let config = etc.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "ips = [\"127.0.0.1\"]\nconfig_dir = \"{}\"\nblocklist_dir = \"{}\"\nsocket_dir = \"{}\"\n\
             state_dir = \"{}/cstate\"\nsocket_user = \"nobody\"\nsocket_group = \"nogroup\"\n\
             allow_non_routable_ips = true\n",
            etc.display(),
            state.display(),
            run.display(),
            d.display()
        ),
    )
    .unwrap();
    let commands = etc.join("commands.toml");
    std::fs::write(
        &commands,
        format!("[commands]\ndefault = \"id -u > {}/ran-as\"\n", d.display()),
    )
    .unwrap();
    for (file, m, gid) in [
        (&server_key, 0o640, GID),
        (&config, 0o640, GID),
        (&commands, 0o600, 0),
    ] {
        chown(file, Some(0), Some(gid)).unwrap();
        mode(file, m);
    }

    let mut cmd = Command::new(workspace_bin("ruroco-commander"));
    cmd.arg("--config").arg(&config);
    let commander = Daemon::spawn(cmd, "listening on");
    let mut cmd = as_nobody(&setpriv);
    cmd.arg(&server_bin)
        .arg("--config")
        .arg(&config)
        .args(["--address", "127.0.0.1:0"])
        .env_remove("LISTEN_FDS");
    let server = Daemon::spawn(cmd, "listening on");
    let addr = server.listening_addr().unwrap().to_string();

    let out = client(
        &["send", "-a", &addr, "-k", key_file.to_str().unwrap()],
        &d.join("conf"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let mut ran = None;
    for _ in 0..250 {
        ran = std::fs::read_to_string(d.join("ran-as"))
            .ok()
            .filter(|s| !s.is_empty());
        if ran.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        ran.as_deref(),
        Some("0\n"),
        "the command runs as root\n{}\n{}",
        server.log_text(),
        commander.log_text()
    );
    // The server read its key and wrote its floors as nobody, in its own directory.
    let floors = std::fs::metadata(state.join("floors.bin")).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&floors), UID);
    assert_eq!(floors.permissions().mode() & 0o777, 0o600);
    // What the server's user cannot do: read the commands, write the key directory.
    let read = as_nobody(&setpriv)
        .arg("/bin/cat")
        .arg(&commands)
        .output()
        .unwrap();
    assert!(!read.status.success(), "nobody could read commands.toml");
    let write = as_nobody(&setpriv)
        .args(["/bin/sh", "-c"])
        .arg(format!("echo x > {}/evil.key", etc.display()))
        .output()
        .unwrap();
    assert!(!write.status.success(), "nobody could add a key");
    // And it cannot reach a Unix socket it is not granted: a server of the same user
    // pointed at a root-only socket fails to hand off, with the reason in its log.
    let other_run = d.join("other-run");
    std::fs::create_dir(&other_run).unwrap();
    mode(&other_run, 0o755);
    let _root_only =
        std::os::unix::net::UnixListener::bind(other_run.join("ruroco.socket")).unwrap();
    mode(&other_run.join("ruroco.socket"), 0o600);
    let other_config = etc.join("other.toml");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        &format!("socket_dir = \"{}\"", run.display()),
        &format!("socket_dir = \"{}\"", other_run.display()),
    );
    let other_state = d.join("other-state");
    std::fs::create_dir(&other_state).unwrap();
    chown(&other_state, Some(UID), Some(GID)).unwrap();
    let text = text.replace(
        &format!("blocklist_dir = \"{}\"", state.display()),
        &format!("blocklist_dir = \"{}\"", other_state.display()),
    );
    std::fs::write(&other_config, text).unwrap();
    chown(&other_config, Some(0), Some(GID)).unwrap();
    mode(&other_config, 0o640);
    let mut cmd = as_nobody(&setpriv);
    cmd.arg(&server_bin)
        .arg("--config")
        .arg(&other_config)
        .args(["--address", "127.0.0.1:0"])
        .env_remove("LISTEN_FDS");
    let other = Daemon::spawn(cmd, "listening on");
    let other_addr = other.listening_addr().unwrap().to_string();
    let out = client(
        &["send", "-a", &other_addr, "-k", key_file.to_str().unwrap()],
        &d.join("conf"),
    );
    assert!(out.status.success());
    assert!(
        other.wait_log("commander not reachable", WAIT),
        "{}",
        other.log_text()
    );
    assert!(
        other.log_text().contains("Permission denied"),
        "{}",
        other.log_text()
    );
}
