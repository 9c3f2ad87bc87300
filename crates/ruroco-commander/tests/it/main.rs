//! Integration tests of the real `ruroco-commander` binary with real `sh`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    unreachable_pub,
    dead_code
)]

mod activation;
mod execution;
mod hooks;
mod lifecycle;
mod policy;
mod reload;
mod trust;
mod undo;
mod util;
