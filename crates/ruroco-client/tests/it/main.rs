//! Integration tests of the real `ruroco-client`, alone and in full round trips with the
//! real server and commander on loopback.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    unreachable_pub,
    dead_code
)]

mod allow;
mod cli;
mod compat;
mod docs;
mod handoff;
mod journal;
mod laptop;
mod migration;
mod monitoring;
mod nemesis;
mod privileges;
mod proxy;
mod redis_ha;
mod roundtrip;
mod saved;
mod shared_floors;
mod util;
