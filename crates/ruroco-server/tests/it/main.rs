//! Integration tests of the real `ruroco-server` binary over loopback.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    unreachable_pub,
    dead_code
)]

mod packaging;
mod pipeline;
mod shutdown;
mod socket;
mod startup;
mod util;
