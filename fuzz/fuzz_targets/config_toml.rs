//! `config.toml` in either layout (with or without a `[commands]` table, `ntp`, clamped
//! rate limits): parsing never panics, and what parses keeps its bounds.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use ruroco_config::{Config, MAX_RATE_LIMIT};

fuzz_target!(|text: &str| {
    if let Ok(config) = Config::parse(text, Path::new("/etc/ruroco/config.toml")) {
        assert!((1..=MAX_RATE_LIMIT).contains(&config.max_requests_per_second));
        assert!((1..=MAX_RATE_LIMIT).contains(&config.max_requests_per_second_global));
        assert!((1..=10_000).contains(&config.floor_store_timeout_ms));
        assert!(config.ips.as_ref().is_none_or(|ips| !ips.is_empty()));
    }
});
