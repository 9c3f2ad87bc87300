//! ruroco-server (not yet implemented).

fn main() {}
