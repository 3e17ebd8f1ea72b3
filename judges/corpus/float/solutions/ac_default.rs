// Rust's Display for f64 (shortest round-trip): 0.3333333333333333, -0.
use std::io::Read;

fn main() {
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input).unwrap();
    let v: Vec<i32> = input.split_whitespace().map(|t| t.parse().unwrap()).collect();
    println!("{}", v[0] as f64 / v[1] as f64);
}
