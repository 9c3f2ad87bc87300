//! `ruroco-gui`: ruroco's desktop app, over the same `client.toml`, keys and counter as
//! `ruroco-client` (through `ruroco-client-core`; it never runs the command-line client).
//!
//! [`app::App`] is the window's state and drawing; [`jobs`] sends off the UI thread;
//! [`form`] reads the add / edit form; [`clock`] shows times in the desktop's zone;
//! [`chooser`] asks the desktop's file chooser for a path. The binary (`main.rs`) only opens the window.
#![forbid(unsafe_code)]

pub mod app;
pub mod chooser;
pub mod clock;
pub mod form;
pub mod jobs;
pub mod private;
pub mod theme;

pub use app::App;
