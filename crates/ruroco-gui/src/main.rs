//! Opens the window. `--version` prints the version; everything else is in the window.
#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    if std::env::args()
        .nth(1)
        .is_some_and(|a| a == "--version" || a == "-V")
    {
        println!("ruroco-gui {}", ruroco_config::LONG_VERSION);
        return ExitCode::SUCCESS;
    }
    let dir = match ruroco_client_core::conf_dir() {
        Ok(dir) => dir,
        Err(e) => {
            eprintln!("ruroco-gui: error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let options = eframe::NativeOptions {
        viewport: eframe::egui::ViewportBuilder::default()
            .with_title("ruroco")
            .with_app_id("ruroco-gui")
            .with_inner_size([920.0, 560.0]),
        ..Default::default()
    };
    let result = eframe::run_native(
        "ruroco",
        options,
        Box::new(move |_cc| Ok(Box::new(ruroco_gui::App::new(dir)))),
    );
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ruroco-gui: error: {e}");
            ExitCode::FAILURE
        }
    }
}
