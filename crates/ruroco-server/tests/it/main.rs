//! Integration tests of the real `ruroco-server` binary over loopback.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    unreachable_pub,
    dead_code
)]

mod crash;
mod group_commit;
mod kernel_filter;
mod metrics;
mod migration;
mod packaging;
mod pipeline;
mod redis_hostile;
mod reload;
mod shutdown;
mod socket;
mod spent;
mod startup;
mod util;
