//! Measures what a sandbox start and teardown pay for its cgroup: `create`
//! (mkdirs and limit writes) + `remove` (rmdirs) of an empty cgroup, with and
//! without a CPU quota (v1 then skips the cpu hierarchy), and with a process
//! moved in and out (the v1 attach cost). Root only.
//!
//! `cargo run --release -p sandbox --example cgroup_cost [ROUNDS]`

#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use sandbox::cgroup::{CgroupLimits, CgroupManager};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rounds: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(200);
    let m = CgroupManager::detect()?;
    println!(
        "{:?}, controllers {:?}, parents {:?}",
        m.version(),
        m.controllers(),
        m.parent_paths()
    );
    let all = CgroupLimits {
        memory_bytes: Some(256 << 20),
        pids: Some(64),
        cpu_quota_us: Some(100_000),
        cpu_period_us: None,
        ..CgroupLimits::default()
    };
    let no_cpu = CgroupLimits {
        cpu_quota_us: None,
        ..all.clone()
    };
    for (label, limits, attach) in [
        ("memory+pids+cpu limits", &all, false),
        ("memory+pids limits", &no_cpu, false),
        ("memory+pids limits, attach self", &no_cpu, true),
    ] {
        let (mut create, mut add, mut remove) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..rounds {
            let t = Instant::now();
            let cg = m.create(&format!("cost-{}-{i}", std::process::id()), limits)?;
            create.push(t.elapsed());
            if attach {
                // Move ourselves in and back out, as a start without
                // CLONE_INTO_CGROUP would move the sandbox's first process.
                let t = Instant::now();
                cg.add_pid(std::process::id() as i32)?;
                add.push(t.elapsed());
                for parent in m.parent_paths() {
                    let own = parent.parent().unwrap_or(&parent).join("cgroup.procs");
                    std::fs::write(own, std::process::id().to_string())?;
                }
            }
            let t = Instant::now();
            cg.remove()?;
            remove.push(t.elapsed());
        }
        println!(
            "{label}: create median {:?} p90 {:?}; remove median {:?} p90 {:?} ({rounds} rounds)",
            pct(&mut create, 50),
            pct(&mut create, 90),
            pct(&mut remove, 50),
            pct(&mut remove, 90)
        );
        if attach {
            println!(
                "  add_pid median {:?} p90 {:?}",
                pct(&mut add, 50),
                pct(&mut add, 90)
            );
        }
    }
    Ok(())
}

fn pct(samples: &mut [Duration], p: usize) -> Duration {
    samples.sort_unstable();
    samples[(samples.len() - 1) * p / 100]
}
