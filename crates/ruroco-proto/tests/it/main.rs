//! Protocol tests: the shared known-answer vectors and property tests.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod properties;
mod vectors;
