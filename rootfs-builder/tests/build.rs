//! Recipe builds (placeholder until the builder lands).
fn main() {}
