// Vec::with_capacity of 1 PiB: beyond any address space, the allocation
// fails whatever the overcommit policy; Rust prints "memory allocation of
// ... bytes failed" and aborts (SIGABRT). A failed allocation is a memory
// limit even though the peak memory stays small.
use std::io::Read;

fn main() {
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input).unwrap();
    let v: Vec<i64> = input.split_whitespace().map(|t| t.parse().unwrap()).collect();
    let mut big: Vec<u8> = Vec::with_capacity(1usize << 50);
    big.push(1);
    println!("{}", v[0] + v[1] + big[0] as i64 - 1);
}
