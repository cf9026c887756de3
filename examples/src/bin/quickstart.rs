//! Placeholder replaced by the quickstart.
fn main() {}
