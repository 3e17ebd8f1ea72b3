//! The CPU-time limit: one rule for every supervisor. A cgroup cannot
//! enforce a total of CPU time (only a rate: the CFS quota), so the
//! supervisor polls the tree's counter and kills past the limit. The
//! one-shot supervisor ([`super::supervise`], synchronous, in a helper)
//! and the daemon's exec loop (async, polling an exec's child cgroup)
//! both ask [`CpuTimeLimit::check`] and sleep for what it says.

use std::time::Duration;

use crate::cgroup::Cgroup;

/// CPUs this process may run on, looked up once per process (the lookup
/// reads cgroup files: ~0.1 ms, which once cost every limit check). A
/// process that forks sandboxes (the zygote) calls it first so that its
/// children inherit the answer.
pub fn cpu_count() -> u64 {
    static N: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *N.get_or_init(|| {
        std::thread::available_parallelism()
            .map(|n| n.get() as u64)
            .unwrap_or(1)
    })
}

/// The shortest and longest wait between two readings of the counter.
const MIN_RECHECK: Duration = Duration::from_millis(1);
const MAX_RECHECK: Duration = Duration::from_millis(100);

/// A CPU-time limit on a cgroup's whole tree (user and system time).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuTimeLimit {
    limit_ns: u64,
}

/// What one look at the counter says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuCheck {
    /// The tree has used the limit (or more): kill it.
    Spent,
    /// Under the limit: look again within this long.
    Within(Duration),
}

impl CpuTimeLimit {
    pub fn new(limit: Duration) -> CpuTimeLimit {
        CpuTimeLimit {
            limit_ns: u64::try_from(limit.as_nanos()).unwrap_or(u64::MAX),
        }
    }

    /// Reads `cgroup`'s CPU counter (one pread) and applies
    /// [`Self::check_usage`]. An unreadable counter reads as 0: the wall
    /// clock still ends the run.
    pub fn check(&self, cgroup: &Cgroup) -> CpuCheck {
        self.check_usage(cgroup.cpu_usage_ns().unwrap_or(0), cpu_count())
    }

    /// The rule: past the limit, spent; otherwise look again before the
    /// tree can have used the rest with every one of `cpus` busy, within
    /// 1 ms .. 100 ms (overshoot is so at most ~100 ms of CPU per CPU).
    pub fn check_usage(&self, used_ns: u64, cpus: u64) -> CpuCheck {
        if used_ns >= self.limit_ns {
            return CpuCheck::Spent;
        }
        let left = Duration::from_nanos((self.limit_ns - used_ns) / cpus.max(1));
        CpuCheck::Within(left.clamp(MIN_RECHECK, MAX_RECHECK))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spent_at_the_limit_and_rechecked_before_the_rest_can_be_used() {
        let l = CpuTimeLimit::new(Duration::from_millis(300));
        let ms = |n: u64| n * 1_000_000;
        assert_eq!(l.check_usage(ms(300), 2), CpuCheck::Spent);
        assert_eq!(l.check_usage(ms(900), 2), CpuCheck::Spent);
        // 200 ms left on 2 CPUs: 100 ms at the earliest.
        assert_eq!(
            l.check_usage(ms(100), 2),
            CpuCheck::Within(Duration::from_millis(100))
        );
        // 40 ms left on 2 CPUs: 20 ms.
        assert_eq!(
            l.check_usage(ms(260), 2),
            CpuCheck::Within(Duration::from_millis(20))
        );
        // Never a busy loop, never longer than 100 ms.
        assert_eq!(
            l.check_usage(ms(300) - 1, 64),
            CpuCheck::Within(MIN_RECHECK)
        );
        assert_eq!(l.check_usage(0, 1), CpuCheck::Within(MAX_RECHECK));
        assert_eq!(l.check_usage(0, 0), CpuCheck::Within(MAX_RECHECK));
    }
}
