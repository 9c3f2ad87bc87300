//! The desktop app driven through its real widgets, found by their labels as a person
//! finds them (egui_kittest, headless), over real files, with real servers.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::UdpSocket;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;
use ruroco_gui::App;

/// A sibling binary of this workspace, built by `cargo test --workspace`.
fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().and_then(Path::parent).unwrap().join(name);
    assert!(
        path.exists(),
        "{} not built; run the tests with `cargo test --workspace`",
        path.display()
    );
    path
}

fn harness(dir: &Path) -> Harness<'static, App> {
    Harness::builder()
        .with_size([1100.0, 800.0])
        .build_ui_state(|ui, app: &mut App| app.show(ui), App::new(dir.to_owned()))
}

/// Lets the window settle: the frames an input needs, and any repaint the file watcher
/// asks for after the app's own writes.
fn settle(h: &mut Harness<'_, App>) {
    let _ = h.try_run();
    std::thread::sleep(Duration::from_millis(30));
    let _ = h.try_run();
}

/// Types `text` into the field labelled `label`.
fn type_into(h: &mut Harness<'_, App>, label: &str, text: &str) {
    h.get_by_label(label).focus();
    settle(h);
    h.get_by_label(label).type_text(text);
    settle(h);
}

fn click(h: &mut Harness<'_, App>, label: &str) {
    h.get_by_label(label).click();
    settle(h);
}

/// Steps the window until `done` holds (the sends finish in threads of their own).
fn wait_until(h: &mut Harness<'_, App>, what: &str, done: impl Fn(&Harness<'_, App>) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        h.step();
        if done(h) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out waiting for {what}");
}

fn has_label_containing(h: &Harness<'_, App>, text: &str) -> bool {
    h.query_by_label_contains(text).is_some()
}

/// A real commander and server on loopback with one key, and that key for the client.
struct Servers {
    dir: tempfile::TempDir,
    commander: Child,
    server: Child,
    port: u16,
    key: String,
}

impl Servers {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let etc = d.join("etc");
        std::fs::create_dir(&etc).unwrap();
        let key = Command::new(workspace_bin("ruroco-client"))
            .arg("gen")
            .output()
            .unwrap();
        let key = String::from_utf8(key.stdout).unwrap();
        std::fs::write(etc.join("gui.key"), &key).unwrap();
        let port = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        std::fs::write(
            etc.join("config.toml"),
            format!(
                "ips = [\"127.0.0.1\"]\nmax_requests_per_second = 1000\naddress = \"127.0.0.1:{port}\"\nconfig_dir = \"{}\"\nsocket_user = \"\"\nsocket_group = \"\"\nallow_non_routable_ips = true\nstate_dir = \"{}/state\"\n",
                etc.display(),
                d.display()
            ),
        )
        .unwrap();
        let commands = etc.join("commands.toml");
        std::fs::write(
            &commands,
            format!(
                "[commands]\ndefault = \"echo \\\"$RUROCO_IP\\\" >> {0}/default.out\"\nopen_ssh = \"echo \\\"$RUROCO_IP\\\" >> {0}/open_ssh.out\"\n",
                d.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&commands, std::fs::Permissions::from_mode(0o600)).unwrap();
        let spawn = |program: &str, ready: &Path| {
            let log = std::fs::File::create(ready).unwrap();
            let mut cmd = Command::new(workspace_bin(program));
            cmd.arg("--config").arg(etc.join("config.toml"));
            if program == "ruroco-commander" {
                cmd.arg("--commands").arg(&commands);
            }
            cmd.env_remove("LISTEN_PID")
                .env_remove("LISTEN_FDS")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap()
        };
        let wait_log = |path: &Path| {
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if std::fs::read_to_string(path)
                    .unwrap_or_default()
                    .contains("listening on")
                {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            panic!(
                "{} did not start: {}",
                path.display(),
                std::fs::read_to_string(path).unwrap_or_default()
            );
        };
        let commander = spawn("ruroco-commander", &d.join("commander.log"));
        wait_log(&d.join("commander.log"));
        let server = spawn("ruroco-server", &d.join("server.log"));
        wait_log(&d.join("server.log"));
        Self {
            dir,
            commander,
            server,
            port,
            key,
        }
    }

    fn runs_path(&self, command: &str) -> std::path::PathBuf {
        self.dir.path().join(format!("{command}.out"))
    }

    fn runs(&self, command: &str) -> Vec<String> {
        std::fs::read_to_string(self.runs_path(command))
            .map(|t| t.lines().map(str::to_owned).collect())
            .unwrap_or_default()
    }

    fn wait_runs(&self, command: &str, n: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.runs(command).len() < n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let runs = self.runs(command);
        if runs.len() < n {
            eprintln!("server log:\n{}", self.log("server"));
            eprintln!("commander log:\n{}", self.log("commander"));
        }
        runs
    }

    fn log(&self, which: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{which}.log"))).unwrap_or_default()
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        for child in [&mut self.server, &mut self.commander] {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = child.wait();
        }
    }
}

/// Fills the add form for a server at `address`, with the key pasted when `key` is given.
fn add_through_the_form(
    h: &mut Harness<'_, App>,
    name: &str,
    address: &str,
    command: &str,
    key: Option<&str>,
) {
    click(h, "Add server");
    type_into(h, "Name", name);
    type_into(h, "Address (HOST or HOST:PORT)", address);
    type_into(h, "Command", command);
    if let Some(key) = key {
        click(h, "Paste");
        type_into(h, "Pasted key", key.trim());
    }
    click(h, "Save");
}

/// A config directory as `ruroco-client` leaves it: `key` in `key_file` (mode 0600) and
/// `toml` as client.toml. A new random key when `key` is `None`.
fn save_servers(conf: &Path, key_file: &str, key: Option<&str>, toml: &str) {
    let generated;
    let key = match key {
        Some(key) => key,
        None => {
            generated = ruroco_proto::Key::generate().unwrap().to_key_string();
            generated.as_str()
        }
    };
    let path = conf.join(key_file);
    std::fs::write(&path, format!("{}\n", key.trim())).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    std::fs::write(conf.join("client.toml"), toml).unwrap();
}

impl Servers {
    /// A config directory for these servers: their key in `key_file`, and `toml` as
    /// client.toml with `PORT` standing for their port.
    fn saved(&self, key_file: &str, toml: &str) -> tempfile::TempDir {
        let conf = tempfile::tempdir().unwrap();
        save_servers(
            conf.path(),
            key_file,
            Some(&self.key),
            &toml.replace("PORT", &self.port.to_string()),
        );
        conf
    }
}

#[test]
fn adding_a_server_writes_client_toml_and_a_private_key_and_shows_how_to_install_it() {
    let base = tempfile::tempdir().unwrap();
    // A directory the app makes itself, as on a first start.
    let conf = base.path().join("ruroco");
    let mut h = harness(&conf);
    add_through_the_form(&mut h, "web1", "web1.example.com", "open_ssh", None);
    let text = std::fs::read_to_string(conf.join("client.toml")).unwrap();
    assert!(text.contains("[servers.web1]"), "{text}");
    assert!(text.contains("address = \"web1.example.com\""), "{text}");
    assert!(text.contains("command = \"open_ssh\""), "{text}");
    let key = conf.join("web1.key");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(ruroco_proto::Key::parse(&std::fs::read_to_string(&key).unwrap()).is_ok());
    // Every file the app wrote is the user's alone, in a directory that is too.
    assert_eq!(
        std::fs::metadata(&conf).unwrap().permissions().mode() & 0o777,
        0o700,
        "the configuration directory"
    );
    for entry in std::fs::read_dir(&conf).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600,
            "{}",
            path.display()
        );
    }
    // The install line, with its copy button; the key only after "show".
    assert!(has_label_containing(&h, "Saved web1"));
    assert!(h.query_by_label("Copy install command").is_some());
    assert!(
        h.query_by_label("QR code of the key").is_none(),
        "the key shows before asked"
    );
    click(&mut h, "Show key as QR code");
    assert!(h.query_by_label("QR code of the key").is_some());
    click(&mut h, "Done");
    assert!(h.query_by_label("Send web1").is_some());
    // An invalid address is refused with the library's words, and nothing is written.
    add_through_the_form(&mut h, "bad", "bad host!", "x", None);
    assert!(has_label_containing(
        &h,
        "neither an IP address nor a DNS name"
    ));
    assert!(!std::fs::read_to_string(conf.join("client.toml"))
        .unwrap()
        .contains("bad"));
}

#[test]
fn send_through_the_window_runs_the_command_on_a_real_server() {
    let servers = Servers::start();
    let conf = tempfile::tempdir().unwrap();
    let mut h = harness(conf.path());
    add_through_the_form(
        &mut h,
        "local",
        &format!("127.0.0.1:{}", servers.port),
        "open_ssh",
        Some(&servers.key),
    );
    click(&mut h, "Done");
    click(&mut h, "Send local");
    wait_until(&mut h, "the sent-at line", |h| {
        has_label_containing(h, "sent at ")
    });
    // "Sent" claims no more than that the datagram left: nothing answers by design.
    assert!(has_label_containing(&h, "no answer comes by design"));
    assert_eq!(servers.wait_runs("open_ssh", 1), ["127.0.0.1"]);
    // Enter sends the chosen row (once past the double-click time of the first send).
    std::thread::sleep(std::time::Duration::from_millis(700));
    click(&mut h, "local");
    h.key_press(eframe::egui::Key::Enter);
    settle(&mut h);
    assert_eq!(servers.wait_runs("open_ssh", 2).len(), 2);
    // The command-line client works while the window is open: the counter lock is only
    // held while datagrams are made.
    let cli = Command::new(workspace_bin("ruroco-client"))
        .args(["send", "local", "-c", "default"])
        .env("RUROCO_CONF_DIR", conf.path())
        .output()
        .unwrap();
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    assert_eq!(servers.wait_runs("default", 1), ["127.0.0.1"]);
    // And the window's next send still runs (the counter moved on for both).
    std::thread::sleep(std::time::Duration::from_millis(700));
    click(&mut h, "Send local");
    assert_eq!(servers.wait_runs("open_ssh", 3).len(), 3);
}

/// Enter that ends typing in the filter box sends nothing to a chosen server the filter
/// now hides: with `local` chosen, typing `local2` (which shows only `local2`) and Enter
/// never runs `local`'s command.
#[test]
fn enter_in_the_filter_never_sends_to_a_hidden_server() {
    let servers = Servers::start();
    let conf = tempfile::tempdir().unwrap();
    let mut h = harness(conf.path());
    add_through_the_form(
        &mut h,
        "local",
        &format!("127.0.0.1:{}", servers.port),
        "open_ssh",
        Some(&servers.key),
    );
    click(&mut h, "Done");
    add_through_the_form(
        &mut h,
        "local2",
        &format!("127.0.0.1:{}", servers.port),
        "default",
        Some(&servers.key),
    );
    click(&mut h, "Done");
    click(&mut h, "local");
    settle(&mut h);
    type_into(&mut h, "Filter", "local2");
    h.key_press(eframe::egui::Key::Enter);
    settle(&mut h);
    h.key_press(eframe::egui::Key::Enter);
    settle(&mut h);
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(
        servers.runs("open_ssh").is_empty(),
        "a server the filter hides was sent to"
    );
}

/// A double click on Send sends once: a second click within the double-click time is not
/// a second knock; a click after it is.
#[test]
fn a_double_click_sends_once() {
    let servers = Servers::start();
    let conf = tempfile::tempdir().unwrap();
    let mut h = harness(conf.path());
    add_through_the_form(
        &mut h,
        "local",
        &format!("127.0.0.1:{}", servers.port),
        "open_ssh",
        Some(&servers.key),
    );
    click(&mut h, "Done");
    // Two clicks 200 ms apart: a double click (the first send is long done by then).
    click(&mut h, "Send local");
    std::thread::sleep(std::time::Duration::from_millis(200));
    click(&mut h, "Send local");
    settle(&mut h);
    wait_until(&mut h, "the sent-at line", |h| {
        has_label_containing(h, "sent at ")
    });
    assert_eq!(servers.wait_runs("open_ssh", 1).len(), 1);
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(
        servers.runs("open_ssh").len(),
        1,
        "a double click sent twice"
    );
    // Later, a click is a click.
    click(&mut h, "Send local");
    assert_eq!(servers.wait_runs("open_ssh", 2).len(), 2);
}

#[test]
fn an_address_that_cannot_be_resolved_shows_its_error_in_the_row() {
    let conf = tempfile::tempdir().unwrap();
    let mut h = harness(conf.path());
    add_through_the_form(&mut h, "nowhere", "no-such-host.invalid", "default", None);
    click(&mut h, "Done");
    click(&mut h, "Send nowhere");
    wait_until(&mut h, "the error", |h| has_label_containing(h, "failed: "));
    let label = h.get_by_label_contains("failed: ");
    let text = format!("{label:?}");
    assert!(text.contains("no-such-host.invalid"), "{text}");
}

#[test]
fn delete_asks_first_and_keeps_the_key_unless_told() {
    let conf = tempfile::tempdir().unwrap();
    let mut h = harness(conf.path());
    add_through_the_form(&mut h, "a", "a.example.com", "default", None);
    click(&mut h, "Done");
    add_through_the_form(&mut h, "b", "b.example.com", "default", None);
    click(&mut h, "Done");
    click(&mut h, "Delete a");
    // Asked, and nothing changed yet.
    assert!(has_label_containing(&h, "Delete a?"));
    assert!(std::fs::read_to_string(conf.path().join("client.toml"))
        .unwrap()
        .contains("[servers.a]"));
    click(&mut h, "Cancel");
    assert!(h.query_by_label("Send a").is_some());
    click(&mut h, "Delete a");
    click(&mut h, "Yes, delete");
    let text = std::fs::read_to_string(conf.path().join("client.toml")).unwrap();
    assert!(
        !text.contains("[servers.a]") && text.contains("[servers.b]"),
        "{text}"
    );
    assert!(
        conf.path().join("a.key").exists(),
        "the key went without being asked"
    );
    click(&mut h, "Delete b");
    click(&mut h, "Also delete its key file");
    click(&mut h, "Yes, delete");
    assert!(!conf.path().join("b.key").exists());
    assert!(h.query_by_label("Send b").is_none());
}

/// "Also delete its key file" never takes a key another saved server uses (imported
/// entries all share one): the file stays and the window says who uses it.
#[test]
fn deleting_keeps_a_key_another_server_uses() {
    let conf = tempfile::tempdir().unwrap();
    save_servers(
        conf.path(),
        "shared.key",
        None,
        "[servers.a]\naddress = \"a.example.com\"\nkey = \"shared.key\"\n\n[servers.b]\naddress = \"b.example.com\"\nkey = \"shared.key\"\n",
    );
    let shared = conf.path().join("shared.key");
    let mut h = harness(conf.path());
    click(&mut h, "Delete a");
    click(&mut h, "Also delete its key file");
    click(&mut h, "Yes, delete");
    assert!(shared.exists(), "a key another server uses was deleted");
    assert!(
        has_label_containing(&h, "is also the key of b; not deleted"),
        "the window does not say why the key stayed"
    );
    assert!(h.query_by_label("Send b").is_some());
}

/// The form's checks say what is wrong in words: port 0 and 70000 name the port, an
/// empty or a 260-character name says so; a deleted server's name can be used again while
/// its key file stays (the new key takes the next free file name).
#[test]
fn the_form_says_what_is_wrong_and_a_deleted_name_can_be_reused() {
    let conf = tempfile::tempdir().unwrap();
    let mut h = harness(conf.path());
    for (name, address, says) in [
        ("p0", "example.com:0", "port 0"),
        ("p7", "example.com:70000", "port from 1 to 65535"),
        ("", "example.com", "the server name is empty"),
        (
            &"n".repeat(260),
            "example.com",
            "260 characters long; 64 at most",
        ),
    ] {
        add_through_the_form(&mut h, name, address, "default", None);
        assert!(
            has_label_containing(&h, says),
            "no `{says}` for {name:.10} at {address}"
        );
        click(&mut h, "Cancel");
    }
    assert!(
        !conf.path().join("client.toml").exists()
            || !std::fs::read_to_string(conf.path().join("client.toml"))
                .unwrap()
                .contains("[servers.")
    );
    add_through_the_form(&mut h, "a", "a.example.com", "default", None);
    click(&mut h, "Done");
    click(&mut h, "Delete a");
    click(&mut h, "Yes, delete");
    assert!(conf.path().join("a.key").exists());
    add_through_the_form(&mut h, "a", "a.example.com", "default", None);
    click(&mut h, "Done");
    let text = std::fs::read_to_string(conf.path().join("client.toml")).unwrap();
    assert!(
        text.contains("[servers.a]") && text.contains("a-2.key"),
        "{text}"
    );
}

/// In the form, Enter saves and Escape cancels; a message can be dismissed.
#[test]
fn enter_saves_escape_cancels_and_messages_can_be_dismissed() {
    let conf = tempfile::tempdir().unwrap();
    let mut h = harness(conf.path());
    click(&mut h, "Add server");
    type_into(&mut h, "Name", "viakeys");
    type_into(&mut h, "Address (HOST or HOST:PORT)", "k.example.com");
    h.key_press(eframe::egui::Key::Escape);
    settle(&mut h);
    assert!(
        h.query_by_label("Save").is_none(),
        "Escape left the form open"
    );
    assert!(!conf.path().join("client.toml").exists());
    click(&mut h, "Add server");
    type_into(&mut h, "Name", "viakeys");
    type_into(&mut h, "Address (HOST or HOST:PORT)", "k.example.com");
    h.key_press(eframe::egui::Key::Enter);
    settle(&mut h);
    let text = std::fs::read_to_string(conf.path().join("client.toml")).unwrap();
    assert!(
        text.contains("[servers.viakeys]"),
        "Enter did not save: {text}"
    );
    assert!(has_label_containing(&h, "Saved `viakeys`."));
    click(&mut h, "Dismiss");
    assert!(
        !has_label_containing(&h, "Saved `viakeys`."),
        "the message stayed"
    );
}

#[test]
fn import_brings_the_original_guis_saved_commands() {
    let conf = tempfile::tempdir().unwrap();
    let old = tempfile::tempdir().unwrap();
    let list = old.path().join("commands_list.toml");
    std::fs::write(
        &list,
        "list = [\"send --address host.example.com:8080 --command open_ssh\", \"send --address 192.0.2.5 --command deploy --ipv4\"]\n",
    )
    .unwrap();
    let key_file = old.path().join("ruroco.key");
    let key = Command::new(workspace_bin("ruroco-client"))
        .arg("gen")
        .output()
        .unwrap();
    std::fs::write(&key_file, key.stdout).unwrap();
    let mut h = harness(conf.path());
    click(&mut h, "Import");
    type_into(&mut h, "commands_list.toml", list.to_str().unwrap());
    // Empty: the message says what is missing, not "cannot read : …".
    click(&mut h, "Preview");
    assert!(has_label_containing(&h, "give the key they were sent with"));
    type_into(&mut h, "Key file or key string", key_file.to_str().unwrap());
    click(&mut h, "Preview");
    assert!(has_label_containing(&h, "would add 2 server(s)"));
    assert!(!conf.path().join("client.toml").exists(), "a preview wrote");
    click(&mut h, "Import now");
    assert!(has_label_containing(&h, "added 2 server(s)"));
    click(&mut h, "Servers");
    let profile = ruroco_client_core::profile::Profile::load(conf.path()).unwrap();
    assert_eq!(profile.servers.len(), 2);
    for name in profile.servers.keys() {
        assert!(
            h.query_by_label(&format!("Send {name}")).is_some(),
            "{name} not listed"
        );
    }
}

#[test]
fn reseed_says_what_it_does_and_sets_a_counter_that_ran_ahead_back() {
    let conf = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(conf.path()).unwrap();
    let ahead = ruroco_client_core::counter::now_nanos() + 3_600 * 1_000_000_000;
    std::fs::write(conf.path().join("counter"), ahead.to_be_bytes()).unwrap();
    let mut h = harness(conf.path());
    click(&mut h, "Reseed counter");
    assert!(has_label_containing(&h, "ahead of this clock"));
    assert!(has_label_containing(&h, "replay"));
    click(&mut h, "Cancel");
    assert_eq!(
        std::fs::read(conf.path().join("counter")).unwrap(),
        ahead.to_be_bytes()
    );
    click(&mut h, "Reseed counter");
    click(&mut h, "Yes, reseed");
    let now = u128::from_be_bytes(
        std::fs::read(conf.path().join("counter"))
            .unwrap()
            .try_into()
            .unwrap(),
    );
    assert!(now < ahead);
    assert!(has_label_containing(&h, "Counter set back"));
}

#[test]
fn a_change_made_by_the_command_line_shows_in_the_open_window() {
    let conf = tempfile::tempdir().unwrap();
    let mut h = harness(conf.path());
    assert!(h.query_by_label("Send cli1").is_none());
    let out = Command::new(workspace_bin("ruroco-client"))
        .args(["add", "cli1", "--address", "cli1.example.com"])
        .env("RUROCO_CONF_DIR", conf.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_until(&mut h, "the new server in the list", |h| {
        h.query_by_label("Send cli1").is_some()
    });
}

#[test]
fn editing_keeps_the_key_hidden_until_asked_and_saves_in_place() {
    let conf = tempfile::tempdir().unwrap();
    let mut h = harness(conf.path());
    add_through_the_form(&mut h, "e1", "e1.example.com", "default", None);
    click(&mut h, "Done");
    click(&mut h, "Edit e1");
    let key = std::fs::read_to_string(conf.path().join("e1.key")).unwrap();
    assert!(
        !has_label_containing(&h, key.trim()),
        "the key shows before asked"
    );
    click(&mut h, "Show key");
    assert!(has_label_containing(&h, key.trim()));
    // A copied key is wiped from the clipboard again, and the window says when.
    click(&mut h, "Copy key");
    assert!(has_label_containing(&h, "wiped from the clipboard in 30 s"));
    type_into(&mut h, "Command", "_more");
    click(&mut h, "Save");
    let profile = ruroco_client_core::profile::Profile::load(conf.path()).unwrap();
    assert_eq!(
        profile.server("e1").unwrap().command.as_deref(),
        Some("default_more")
    );
    assert_eq!(profile.server("e1").unwrap().key, Path::new("e1.key"));
}

/// `--help` and `--version` print and exit, without a window (no display is needed);
/// anything else is an error, never a window a person did not ask for.
#[test]
fn help_and_version_print_and_never_open_a_window() {
    let bin = env!("CARGO_BIN_EXE_ruroco-gui");
    for (arg, says) in [
        ("--help", "Usage: ruroco-gui"),
        ("--version", "ruroco-gui "),
    ] {
        let out = Command::new(bin)
            .arg(arg)
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{arg}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains(says), "{arg}");
    }
    let out = Command::new(bin)
        .arg("--bogus")
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unexpected argument `--bogus`"));
}

/// Knock, then know, in the window: a server saved with `wait_port` shows "port N open
/// after … ms" once the command it knocked for has opened the port (the opening is the
/// test's listener, bound when the command ran).
#[test]
fn a_watched_port_shows_when_it_opened() {
    let servers = Servers::start();
    let conf = tempfile::tempdir().unwrap();
    let tcp = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    save_servers(
        conf.path(),
        "local.key",
        Some(&servers.key),
        &format!(
            "[servers.local]\naddress = \"127.0.0.1:{}\"\nkey = \"local.key\"\ncommand = \"open_ssh\"\nwait_port = {tcp}\n",
            servers.port
        ),
    );
    let runs = servers.runs_path("open_ssh");
    let opener = std::thread::spawn(move || {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !runs.exists() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let listener = std::net::TcpListener::bind(("127.0.0.1", tcp)).unwrap();
        let _ = listener.accept();
    });
    let mut h = harness(conf.path());
    click(&mut h, "Send local");
    wait_until(&mut h, "the port line", |h| {
        has_label_containing(h, &format!("port {tcp} open after "))
    });
    opener.join().unwrap();
    assert_eq!(servers.runs("open_ssh").len(), 1, "one knock was enough");
}

/// Edit → "Generate a new key" does not save silently: the window says the server lacks
/// the new key and shows the line that installs it, as after adding; the old file stays.
#[test]
fn a_new_key_from_edit_shows_how_to_install_it() {
    let conf = tempfile::tempdir().unwrap();
    let mut h = harness(conf.path());
    add_through_the_form(&mut h, "e2", "e2.example.com", "default", None);
    click(&mut h, "Done");
    click(&mut h, "Edit e2");
    click(&mut h, "Generate a new key");
    click(&mut h, "Save");
    assert!(
        has_label_containing(&h, "with a new key. The server does not have it"),
        "no word about the new key"
    );
    assert!(
        has_label_containing(&h, "Saved e2") && h.query_by_label("Copy install command").is_some(),
        "no install line for the new key"
    );
    let profile = ruroco_client_core::profile::Profile::load(conf.path()).unwrap();
    let key = &profile.server("e2").unwrap().key;
    assert_ne!(key, Path::new("e2.key"), "the key did not change");
    assert!(conf.path().join("e2.key").exists(), "the old key file went");
}

/// Ctrl+F goes to the filter: what is typed next filters the list.
#[test]
fn ctrl_f_goes_to_the_filter() {
    let conf = tempfile::tempdir().unwrap();
    save_servers(
        conf.path(),
        "k.key",
        None,
        "[servers.alpha]\naddress = \"a.example.com\"\nkey = \"k.key\"\n\n[servers.beta]\naddress = \"b.example.com\"\nkey = \"k.key\"\n",
    );
    let mut h = harness(conf.path());
    assert!(h.query_by_label("Send alpha").is_some());
    h.key_press_modifiers(eframe::egui::Modifiers::COMMAND, eframe::egui::Key::F);
    settle(&mut h);
    h.get_by_label("Filter").type_text("beta");
    settle(&mut h);
    assert!(
        h.query_by_label("Send alpha").is_none(),
        "the filter did not get the text"
    );
    assert!(h.query_by_label("Send beta").is_some());
}

/// A key file named relative to the config directory is found there (not in the
/// directory the window was started from), and a second key for one host is pointed out,
/// as the command line does.
#[test]
fn a_relative_key_file_is_the_config_directorys_and_a_second_key_is_named() {
    let conf = tempfile::tempdir().unwrap();
    std::fs::write(
        conf.path().join("mine.key"),
        ruroco_proto::Key::generate()
            .unwrap()
            .to_key_string()
            .as_str(),
    )
    .unwrap();
    let mut h = harness(conf.path());
    add_through_the_form(&mut h, "first", "same.example.com", "default", None);
    click(&mut h, "Done");
    click(&mut h, "Add server");
    type_into(&mut h, "Name", "second");
    type_into(&mut h, "Address (HOST or HOST:PORT)", "same.example.com");
    click(&mut h, "From a file");
    type_into(&mut h, "Key file", "mine.key");
    click(&mut h, "Save");
    let text = std::fs::read_to_string(conf.path().join("client.toml")).unwrap();
    assert!(
        text.contains("[servers.second]"),
        "the relative key file was not found: {text}"
    );
    assert!(
        has_label_containing(&h, "first already saved with host same.example.com"),
        "no word about a second key for one host"
    );
}

/// Users of the original may have only the key string: the import takes it too.
#[test]
fn import_takes_the_key_string_itself() {
    let conf = tempfile::tempdir().unwrap();
    let old = tempfile::tempdir().unwrap();
    let list = old.path().join("commands_list.toml");
    std::fs::write(
        &list,
        "list = [\"send --address host.example.com:8080 --command open_ssh\"]\n",
    )
    .unwrap();
    let key = ruroco_proto::Key::generate().unwrap();
    let mut h = harness(conf.path());
    click(&mut h, "Import");
    type_into(&mut h, "commands_list.toml", list.to_str().unwrap());
    type_into(
        &mut h,
        "Key file or key string",
        key.to_key_string().as_str(),
    );
    click(&mut h, "Import now");
    assert!(has_label_containing(&h, "added 1 server(s)"));
    let profile = ruroco_client_core::profile::Profile::load(conf.path()).unwrap();
    let saved = profile.servers.values().next().unwrap();
    let stored = std::fs::read_to_string(conf.path().join(&saved.key)).unwrap();
    assert_eq!(stored.trim(), key.to_key_string().as_str());
}

/// At 500×400, a 64-character name (the longest allowed), a 60-character address and a
/// long failed send's error leave every row's Send button inside the window.
#[test]
fn long_text_never_pushes_send_out_of_a_small_window() {
    let conf = tempfile::tempdir().unwrap();
    let long = "n".repeat(64);
    save_servers(
        conf.path(),
        "k.key",
        None,
        &format!(
            "[servers.{long}]\naddress = \"{}.example.com\"\nkey = \"k.key\"\n\n[servers.down]\naddress = \"no-such-host.invalid\"\nkey = \"k.key\"\n",
            "a".repeat(60)
        ),
    );
    let mut h = Harness::builder().with_size([500.0, 400.0]).build_ui_state(
        |ui, app: &mut App| app.show(ui),
        App::new(conf.path().to_owned()),
    );
    settle(&mut h);
    click(&mut h, "Send down");
    wait_until(&mut h, "the error", |h| has_label_containing(h, "failed: "));
    let window = eframe::egui::Rect::from_min_size(
        eframe::egui::Pos2::ZERO,
        eframe::egui::vec2(500.0, 400.0),
    );
    for label in ["Send down", &format!("Send {}…", "n".repeat(39))] {
        let rect = h.get_by_label(label).rect();
        assert!(
            window.contains_rect(rect),
            "{label} at {rect:?} is outside the window"
        );
    }
}

/// Type in the filter, arrow down to a row, Enter: the chosen row is sent, with the
/// filter still focused.
#[test]
fn arrows_and_enter_work_from_the_filter() {
    let servers = Servers::start();
    let conf = servers.saved(
        "k.key",
        "[servers.alpha]\naddress = \"127.0.0.1:PORT\"\nkey = \"k.key\"\ncommand = \"open_ssh\"\n\n[servers.beta]\naddress = \"127.0.0.1:PORT\"\nkey = \"k.key\"\ncommand = \"default\"\n\n[servers.zeta]\naddress = \"127.0.0.1:PORT\"\nkey = \"k.key\"\ncommand = \"open_ssh\"\n",
    );
    let mut h = harness(conf.path());
    h.key_press_modifiers(eframe::egui::Modifiers::COMMAND, eframe::egui::Key::F);
    settle(&mut h);
    h.get_by_label("Filter").type_text("ta");
    settle(&mut h);
    // "ta" shows beta and zeta; the first arrow down chooses the first shown, beta.
    h.key_press(eframe::egui::Key::ArrowDown);
    settle(&mut h);
    h.key_press(eframe::egui::Key::Enter);
    settle(&mut h);
    assert_eq!(
        servers.wait_runs("default", 1).len(),
        1,
        "beta was not sent"
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        servers.runs("open_ssh").is_empty(),
        "a row the keys did not choose was sent"
    );
}

/// An error about client.toml goes once the file is fixed (the window follows the file):
/// messages do not outlive their truth.
#[test]
fn an_error_goes_when_the_file_is_fixed() {
    let conf = tempfile::tempdir().unwrap();
    let file = conf.path().join("client.toml");
    std::fs::write(&file, "[servers.broken\n").unwrap();
    let mut h = harness(conf.path());
    add_through_the_form(&mut h, "fresh", "fresh.example.com", "default", None);
    assert!(
        has_label_containing(&h, "client.toml"),
        "no error about the broken file"
    );
    std::fs::write(&file, "").unwrap();
    wait_until(&mut h, "the error to go", |h| {
        !has_label_containing(h, "invalid") && !has_label_containing(h, "line 1")
    });
}

/// eframe's storage as the window's file keeps it, in memory.
#[derive(Default)]
struct Storage(std::collections::HashMap<String, String>);

impl eframe::Storage for Storage {
    fn get_string(&self, key: &str) -> Option<String> {
        self.0.get(key).cloned()
    }
    fn set_string(&mut self, key: &str, value: String) {
        self.0.insert(key.to_owned(), value);
    }
    fn remove_string(&mut self, key: &str) {
        self.0.remove(key);
    }
    fn flush(&mut self) {}
}

/// The whole text of the label that contains `part`.
fn shown_label(h: &Harness<'_, App>, part: &str) -> String {
    // A label keeps its text as its value in AccessKit.
    h.query_by_label_contains(part).unwrap().value().unwrap()
}

/// A send's result is still there after the window is closed and opened again (eframe
/// calls `save` on closing and hands the storage to the next start), the failed one too,
/// and restoring sends nothing.
#[test]
fn the_last_results_outlive_a_restart() {
    let servers = Servers::start();
    let conf = servers.saved(
        "local.key",
        "[servers.local]\naddress = \"127.0.0.1:PORT\"\nkey = \"local.key\"\ncommand = \"open_ssh\"\n\n[servers.gone]\naddress = \"no-such-host.invalid:PORT\"\nkey = \"local.key\"\ncommand = \"open_ssh\"\n",
    );
    let mut h = harness(conf.path());
    click(&mut h, "Send local");
    click(&mut h, "Send gone");
    wait_until(&mut h, "both results", |h| {
        has_label_containing(h, "sent at ") && has_label_containing(h, "failed: ")
    });
    let shown = shown_label(&h, "sent at ");
    let mut storage = Storage::default();
    eframe::App::save(h.state_mut(), &mut storage);
    drop(h);
    // `gone` is fixed before the next start: the window shows what happened last time
    // until it is sent to again.
    save_servers(
        conf.path(),
        "local.key",
        Some(&servers.key),
        &"[servers.local]\naddress = \"127.0.0.1:PORT\"\nkey = \"local.key\"\ncommand = \"open_ssh\"\n\n[servers.gone]\naddress = \"127.0.0.1:PORT\"\nkey = \"local.key\"\ncommand = \"open_ssh\"\n"
            .replace("PORT", &servers.port.to_string()),
    );
    let mut h = Harness::builder()
        .with_size([1100.0, 800.0])
        .build_ui_state(
            |ui, app: &mut App| app.show(ui),
            App::restored(conf.path().to_owned(), Some(&storage)),
        );
    settle(&mut h);
    // Nothing was sent in this window, yet the last result shows, word for word.
    assert_eq!(shown_label(&h, "sent at "), shown);
    // The failed one was kept too (it was saved when the window closed).
    assert!(has_label_containing(&h, "failed: "));
    assert_eq!(servers.runs("open_ssh").len(), 1, "restoring sends nothing");
}

/// Times are the desktop's: with `TZ` five and a half hours east of UTC, a send made now
/// shows that zone's time of day and its abbreviation, not UTC's. Runs itself again with
/// `TZ` set (the zone is read from the environment of the process).
#[test]
fn times_show_in_the_desktops_zone() {
    const ZONE: &str = "XYZ-5:30";
    if std::env::var("TZ").as_deref() != Ok(ZONE) {
        let out = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "times_show_in_the_desktops_zone", "--nocapture"])
            .env("TZ", ZONE)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("1 passed"), "{text}");
        return;
    }
    let tz = jiff::tz::TimeZone::posix(ZONE).unwrap();
    let servers = Servers::start();
    let conf = servers.saved(
        "local.key",
        "[servers.local]\naddress = \"127.0.0.1:PORT\"\nkey = \"local.key\"\ncommand = \"open_ssh\"\n",
    );
    let mut h = harness(conf.path());
    let before = jiff::Timestamp::now();
    click(&mut h, "Send local");
    wait_until(&mut h, "the sent-at line", |h| {
        has_label_containing(h, "sent at ")
    });
    let after = jiff::Timestamp::now();
    let shown = shown_label(&h, "sent at ");
    let mut second = before;
    let mut expected = Vec::new();
    while second <= after + jiff::SignedDuration::from_secs(1) {
        let local = second.to_zoned_datetime(tz.clone());
        expected.push(local.strftime("sent at %H:%M:%S XYZ;").to_string());
        expected.push(local.strftime("sent at %Y-%m-%d %H:%M:%S XYZ;").to_string());
        second += jiff::SignedDuration::from_secs(1);
    }
    assert!(
        expected.iter().any(|e| shown.starts_with(e.as_str())),
        "{shown:?} is none of {expected:?}"
    );
}

/// Where a path is asked, "Choose…" opens the desktop's file chooser in a thread of its
/// own: the window keeps answering while it is open, the button cannot open a second
/// one, and typing the path still works. (No desktop here: the chooser finds neither a
/// portal nor zenity and gives nothing back, which leaves the field as it was.)
#[test]
fn choose_opens_the_desktops_chooser_without_blocking_the_window() {
    let conf = tempfile::tempdir().unwrap();
    let mut h = harness(conf.path());
    click(&mut h, "Add server");
    click(&mut h, "From a file");
    type_into(&mut h, "Key file", "web.key");
    click(&mut h, "Choose…");
    // The window still draws and takes input.
    type_into(&mut h, "Name", "web");
    wait_until(&mut h, "the chooser to close", |h| {
        h.query_by_label("Choose…").is_some()
    });
    assert_eq!(
        h.get_by_label("Key file").value().as_deref(),
        Some("web.key")
    );
    click(&mut h, "Import");
    for field in ["commands_list.toml", "Key file or key string"] {
        assert!(h.query_by_label(field).is_some(), "{field}");
    }
    assert_eq!(h.query_all_by_label("Choose…").count(), 2);
}

/// Runs this test binary again for the test `name` inside a virtual X display of its own
/// (Xvfb picks a free display number), without a D-Bus session, so the desktop's file
/// chooser is zenity's (rfd's fallback when no portal answers). Needs Xvfb, zenity and
/// xdotool, as `.ci/run` installs them.
fn rerun_in_a_display(name: &str) {
    let mut xvfb = Command::new("Xvfb")
        .args([
            "-displayfd",
            "1",
            "-screen",
            "0",
            "1280x800x24",
            "-nolisten",
            "tcp",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("Xvfb (package xvfb) is needed for this test");
    // Kept open until Xvfb is stopped: it must never write to a closed pipe.
    let mut reader = std::io::BufReader::new(xvfb.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut reader, &mut line).unwrap();
    let display = format!(":{}", line.trim());
    eprintln!("Xvfb on display {display}");
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture"])
        .env("DISPLAY", &display)
        .env("RUROCO_TEST_DISPLAY", &display)
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .env_remove("WAYLAND_DISPLAY")
        .output()
        .unwrap();
    let _ = xvfb.kill();
    let _ = xvfb.wait();
    drop(reader);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("1 passed"),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The file chooser's window, once one shows.
fn chooser_window() -> Option<String> {
    let found = Command::new("xdotool")
        .args(["search", "--onlyvisible", "--class", "zenity"])
        .output()
        .expect("xdotool is needed for this test");
    String::from_utf8_lossy(&found.stdout)
        .lines()
        .next()
        .map(str::to_owned)
}

/// Answers zenity's file chooser as a person does: waits for its window, focuses it, opens
/// its location field (Ctrl+L), types the path and presses Enter; again while the window
/// stays (a chooser still starting up drops keys, as on a loaded machine).
fn answer_chooser(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut window = None;
    while Instant::now() < deadline {
        match (chooser_window(), &window) {
            (None, None) => std::thread::sleep(Duration::from_millis(100)),
            // It was there and is gone: answered.
            (None, Some(_)) => return,
            (Some(w), _) => {
                window = Some(w.clone());
                // Let it draw before typing into it.
                std::thread::sleep(Duration::from_millis(700));
                for args in [
                    vec!["windowfocus", "--sync", w.as_str()],
                    vec!["key", "ctrl+l"],
                    vec!["type", "--delay", "20", path.to_str().unwrap()],
                    vec!["key", "Return"],
                ] {
                    let _ = Command::new("xdotool").args(&args).status();
                    std::thread::sleep(Duration::from_millis(300));
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
    panic!("the file chooser did not take the path within 60 s (shown: {window:?})");
}

/// The real chooser: "Choose…" beside "Key file" opens it (zenity here, as on a desktop
/// without a portal), the window goes on drawing while it is open, and the file picked in
/// it fills the field, written relative to the config directory when it lies inside.
#[test]
fn choose_fills_the_field_from_the_desktops_file_chooser() {
    if std::env::var_os("RUROCO_TEST_DISPLAY").is_none() {
        rerun_in_a_display("choose_fills_the_field_from_the_desktops_file_chooser");
        return;
    }
    let conf = tempfile::tempdir().unwrap();
    std::fs::create_dir(conf.path().join("keys")).unwrap();
    let chosen = conf.path().join("keys").join("chosen.key");
    std::fs::write(&chosen, "not read here\n").unwrap();
    let mut h = harness(conf.path());
    click(&mut h, "Add server");
    click(&mut h, "From a file");
    click(&mut h, "Choose…");
    assert!(
        h.query_by_label("Choosing…").is_some(),
        "one dialog at a time"
    );
    let answer = std::thread::spawn(move || answer_chooser(&chosen));
    // The window is not blocked: it takes a name while the dialog is open.
    type_into(&mut h, "Name", "web");
    let deadline = Instant::now() + Duration::from_secs(70);
    while Instant::now() < deadline
        && h.query_by_label("Key file")
            .and_then(|f| f.value())
            .as_deref()
            != Some("keys/chosen.key")
    {
        h.step();
        std::thread::sleep(Duration::from_millis(20));
    }
    answer.join().unwrap();
    assert_eq!(
        h.get_by_label("Key file").value().as_deref(),
        Some("keys/chosen.key")
    );
    assert_eq!(h.get_by_label("Name").value().as_deref(), Some("web"));
}
