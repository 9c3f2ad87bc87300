//! ruroco-client (not yet implemented).

fn main() {}
