// Four std::threads each sum a quarter of the numbers (Arc: builds with
// rustc 1.63).
use std::io::Read;
use std::sync::Arc;
use std::thread;

fn main() {
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input).unwrap();
    let mut it = input.split_whitespace().map(|t| t.parse::<i64>().unwrap());
    let n = it.next().unwrap() as usize;
    let a: Arc<Vec<i64>> = Arc::new(it.take(n).collect());
    const T: usize = 4;
    let handles: Vec<_> = (0..T)
        .map(|t| {
            let a = Arc::clone(&a);
            thread::spawn(move || a.iter().skip(t).step_by(T).sum::<i64>())
        })
        .collect();
    let sum: i64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    println!("{}", sum);
}
