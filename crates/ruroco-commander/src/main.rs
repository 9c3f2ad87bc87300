//! ruroco-commander (not yet implemented).

fn main() {}
