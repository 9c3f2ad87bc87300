//! The client's `client.toml` (saved servers and groups): parsing never panics.
#![no_main]

use std::path::Path;

use ruroco_client_core::profile;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(p) = profile::Profile::parse(text, Path::new("/home/u/.config/ruroco/client.toml")) {
        let _ = p.listing(|key| Path::new("/nonexistent").join(key));
        for name in p.broken.keys() {
            assert!(p.server(name).is_err());
        }
    }
});
