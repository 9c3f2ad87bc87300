//! Opens the window. `--version` and `--help` print and exit; any other argument is an
//! error (it never opens a window a person did not ask for); everything else is in the
//! window.
#![forbid(unsafe_code)]

use std::process::ExitCode;

const HELP: &str = "ruroco-gui: the desktop app for ruroco. It shows the saved servers of
client.toml (the same file, keys and counter as ruroco-client) and sends with a click.

Usage: ruroco-gui [--help | --version]

Environment:
  RUROCO_CONF_DIR  the directory of client.toml, keys and the counter [default: ~/.config/ruroco]

See also: ruroco-client(1), client.toml(5)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None => {}
        Some("--version" | "-V") => {
            println!("ruroco-gui {}", ruroco_config::LONG_VERSION);
            return ExitCode::SUCCESS;
        }
        Some("--help" | "-h") => {
            println!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Some(other) => {
            eprintln!(
                "ruroco-gui: unexpected argument `{other}`; ruroco-gui --help says what it takes"
            );
            return ExitCode::from(2);
        }
    }
    let dir = match ruroco_client_core::conf_dir() {
        Ok(dir) => dir,
        Err(e) => {
            eprintln!("ruroco-gui: error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    // What the app and eframe create is the user's alone (app.ron holds the servers'
    // names, addresses and last results).
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(
        ruroco_gui::private::UMASK,
    ));
    if let Some(data) = eframe::storage_dir("ruroco-gui") {
        for problem in ruroco_gui::private::tighten(&data) {
            eprintln!("ruroco-gui: warning: {problem}");
        }
    }
    let options = eframe::NativeOptions {
        viewport: eframe::egui::ViewportBuilder::default()
            .with_title("ruroco")
            .with_app_id("ruroco-gui")
            .with_inner_size([920.0, 560.0])
            // Below this the window has no room for a row's buttons and a page's Save.
            .with_min_inner_size([480.0, 320.0]),
        ..Default::default()
    };
    // The name eframe keeps the window's size, position and last results under:
    // $XDG_DATA_HOME/ruroco-gui/app.ron (~/.local/share/ruroco-gui/app.ron).
    let result = eframe::run_native(
        "ruroco-gui",
        options,
        Box::new(move |cc| Ok(Box::new(ruroco_gui::App::restored(dir, cc.storage)))),
    );
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ruroco-gui: error: {e}");
            ExitCode::FAILURE
        }
    }
}
