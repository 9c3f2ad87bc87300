//! Protocol tests: the known-answer vectors of both formats and property tests.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod kat;
mod properties;
mod vectors;
mod vectors_v0;
