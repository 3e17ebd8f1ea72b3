//! Prometheus metrics in the text exposition format, kept in atomics.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use sandbox::report::Termination;

use crate::types::ExecTermination;

/// Upper bounds (seconds) of the start latency histogram.
const BUCKETS: [f64; 11] = [0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0];

#[derive(Default)]
pub struct Metrics {
    starts_ok: AtomicU64,
    starts_failed: AtomicU64,
    bucket_counts: [AtomicU64; BUCKETS.len()],
    latency_sum_us: AtomicU64,
    latency_count: AtomicU64,
    results: Mutex<BTreeMap<String, u64>>,
    oom_kills: AtomicU64,
    runs: AtomicU64,
    execs: AtomicU64,
}

impl Metrics {
    pub fn sandbox_started(&self, took: Duration, ok: bool) {
        if ok {
            self.starts_ok.fetch_add(1, Ordering::Relaxed);
        } else {
            self.starts_failed.fetch_add(1, Ordering::Relaxed);
        }
        let s = took.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if s <= *b {
                self.bucket_counts[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_sum_us
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        self.latency_count.fetch_add(1, Ordering::Relaxed);
    }

    /// A finished exec or run, by termination reason.
    pub fn result(&self, termination: ExecTermination, one_shot: bool) {
        if let Ok(mut r) = self.results.lock() {
            *r.entry(termination.as_str().to_string()).or_default() += 1;
        }
        if termination == ExecTermination::Ran(Termination::OomKilled) {
            self.oom_kills.fetch_add(1, Ordering::Relaxed);
        }
        if one_shot {
            self.runs.fetch_add(1, Ordering::Relaxed);
        } else {
            self.execs.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn render(&self, active_sessions: usize) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "# HELP runtimed_sessions_active Sessions whose sandbox runs."
        );
        let _ = writeln!(o, "# TYPE runtimed_sessions_active gauge");
        let _ = writeln!(o, "runtimed_sessions_active {active_sessions}");
        let _ = writeln!(
            o,
            "# HELP runtimed_sandbox_starts_total Sandboxes started (sessions and one-shot runs)."
        );
        let _ = writeln!(o, "# TYPE runtimed_sandbox_starts_total counter");
        let _ = writeln!(
            o,
            "runtimed_sandbox_starts_total{{result=\"ok\"}} {}",
            self.starts_ok.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            o,
            "runtimed_sandbox_starts_total{{result=\"failed\"}} {}",
            self.starts_failed.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            o,
            "# HELP runtimed_sandbox_start_seconds Time to start a sandbox."
        );
        let _ = writeln!(o, "# TYPE runtimed_sandbox_start_seconds histogram");
        for (i, b) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                o,
                "runtimed_sandbox_start_seconds_bucket{{le=\"{b}\"}} {}",
                self.bucket_counts[i].load(Ordering::Relaxed)
            );
        }
        let count = self.latency_count.load(Ordering::Relaxed);
        let _ = writeln!(
            o,
            "runtimed_sandbox_start_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            o,
            "runtimed_sandbox_start_seconds_sum {}",
            self.latency_sum_us.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(o, "runtimed_sandbox_start_seconds_count {count}");
        let _ = writeln!(
            o,
            "# HELP runtimed_results_total Finished execs and runs by termination reason."
        );
        let _ = writeln!(o, "# TYPE runtimed_results_total counter");
        if let Ok(r) = self.results.lock() {
            for (k, v) in r.iter() {
                let _ = writeln!(o, "runtimed_results_total{{termination=\"{k}\"}} {v}");
            }
        }
        let _ = writeln!(
            o,
            "# HELP runtimed_oom_kills_total Execs and runs ended by the OOM killer."
        );
        let _ = writeln!(o, "# TYPE runtimed_oom_kills_total counter");
        let _ = writeln!(
            o,
            "runtimed_oom_kills_total {}",
            self.oom_kills.load(Ordering::Relaxed)
        );
        let _ = writeln!(o, "# TYPE runtimed_runs_total counter");
        let _ = writeln!(
            o,
            "runtimed_runs_total {}",
            self.runs.load(Ordering::Relaxed)
        );
        let _ = writeln!(o, "# TYPE runtimed_execs_total counter");
        let _ = writeln!(
            o,
            "runtimed_execs_total {}",
            self.execs.load(Ordering::Relaxed)
        );
        o
    }
}
