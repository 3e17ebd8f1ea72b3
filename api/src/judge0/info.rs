//! What Judge0 says about itself: its languages (ids from the language
//! table, names from the probed toolchain versions, "C++ (GCC 12.2.0)"),
//! `GET /about` and `GET /config_info` (Judge0's keys, this judge's
//! values).

use judges::language::{expand, Vars};
use judges::pipeline::{limit_defaults, ranges};
use judges::{Availability, Language, Languages};
use serde_json::{json, Value};

use super::request::{max_file_size_kb, memory_limit_kb, MAX_CPU_EXTRA_TIME_S, MAX_PROCESSES};
use super::{JUDGE0_VERSION, MAX_BATCH};

/// The version number in a version probe's first line: the first run of
/// digits and dots holding a dot ("gcc (Debian 12.2.0-14) 12.2.0" →
/// "12.2.0", "go version go1.19.8 linux/amd64" → "1.19.8", "v20.1.0" →
/// "20.1.0").
pub fn version_number(line: &str) -> Option<&str> {
    let b = line.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_digit() {
            let start = i;
            while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
                i += 1;
            }
            let run = line[start..i].trim_end_matches('.');
            if run.contains('.') {
                return Some(run);
            }
        } else {
            i += 1;
        }
    }
    None
}

/// A language's name as Judge0 shows it: the table's display name with
/// the probed version in its parentheses ("C++ (GCC)" → "C++ (GCC
/// 12.2.0)") or in new ones ("Go" → "Go (1.19.8)"), a last word the
/// version starts with left out ("Python 3" → "Python (3.11.2)").
pub fn language_name(l: &Language) -> String {
    let version = match &l.availability {
        Availability::Available { version } => version_number(version),
        _ => None,
    };
    let Some(v) = version else {
        return l.display.clone();
    };
    if let Some(open) = l.display.strip_suffix(')') {
        return format!("{open} {v})");
    }
    let base = match l.display.rsplit_once(' ') {
        Some((head, last)) if v.starts_with(&format!("{last}.")) => head,
        _ => l.display.as_str(),
    };
    format!("{base} ({v})")
}

/// `GET /languages`: the available languages with a Judge0 id, by name
/// (Judge0's order).
pub fn languages(langs: &Languages) -> Vec<Value> {
    let mut list: Vec<(String, u32)> = langs
        .iter()
        .filter(|l| matches!(l.availability, Availability::Available { .. }))
        .filter_map(|l| l.judge0_id.map(|id| (language_name(l), id)))
        .collect();
    list.sort();
    list.into_iter()
        .map(|(name, id)| json!({"id": id, "name": name}))
        .collect()
}

/// `GET /languages/{id}`: Judge0's attributes of one language; its
/// commands with the default limits filled in.
pub fn language(l: &Language) -> Value {
    let vars = Vars {
        memory_mb: limit_defaults::MEMORY_MB,
        stack_bytes: limit_defaults::MEMORY_MB << 20,
    };
    let cmd = |argv: &[String]| {
        argv.iter()
            .map(|a| expand(a, &vars))
            .collect::<Vec<_>>()
            .join(" ")
    };
    json!({
        "id": l.judge0_id,
        "name": language_name(l),
        "is_archived": false,
        "source_file": l.source_file,
        "compile_cmd": l.compile.as_ref().map(|c| cmd(&c.argv)),
        "run_cmd": cmd(&l.run),
    })
}

/// `GET /about`.
pub fn about() -> Value {
    json!({
        "version": JUDGE0_VERSION,
        "homepage": "docs/judge0.md",
        "source_code": "runtimed",
        "maintainer": "runtimed",
        "runtimed_version": env!("CARGO_PKG_VERSION"),
    })
}

/// `GET /config_info`: every key Judge0 1.13 has (the `judge0` Python
/// client needs them all), with this judge's values: defaults and
/// largest values of the limits, and `false` for what is not served.
pub fn config_info(queue_max: usize) -> Value {
    let s = |ms: u64| ms as f64 / 1000.0;
    let memory_kb = limit_defaults::MEMORY_MB * 1024;
    json!({
        "maintenance_mode": false,
        "enable_wait_result": true,
        "enable_compiler_options": false,
        "allowed_languages_for_compile_options": [],
        "enable_command_line_arguments": false,
        "enable_submission_delete": false,
        "enable_callbacks": false,
        "callbacks_max_tries": 0,
        "callbacks_timeout": 0.0,
        "enable_additional_files": false,
        "max_queue_size": queue_max,
        "cpu_time_limit": s(limit_defaults::CPU_TIME_MS),
        "max_cpu_time_limit": s(*ranges::CPU_TIME_MS.end()),
        "cpu_extra_time": 0.0,
        "max_cpu_extra_time": MAX_CPU_EXTRA_TIME_S,
        "wall_time_limit": s(judges::pipeline::default_wall_time_ms(limit_defaults::CPU_TIME_MS)),
        "max_wall_time_limit": s(*ranges::WALL_TIME_MS.end()),
        "memory_limit": memory_kb,
        "max_memory_limit": memory_limit_kb().end(),
        "stack_limit": memory_kb,
        "max_stack_limit": memory_limit_kb().end(),
        "max_processes_and_or_threads": judges::language::DEFAULT_PIDS,
        "max_max_processes_and_or_threads": MAX_PROCESSES,
        "enable_per_process_and_thread_time_limit": false,
        "allow_enable_per_process_and_thread_time_limit": false,
        "enable_per_process_and_thread_memory_limit": false,
        "allow_enable_per_process_and_thread_memory_limit": false,
        "max_file_size": limit_defaults::OUTPUT_MB * 1024,
        "max_max_file_size": max_file_size_kb().end(),
        "number_of_runs": 1,
        "max_number_of_runs": 1,
        "redirect_stderr_to_stdout": false,
        "max_extract_size": 0,
        "enable_batched_submissions": true,
        "max_submission_batch_size": MAX_BATCH,
        "submission_cache_duration": 0.0,
        "use_docs_as_homepage": false,
        "enable_network": false,
        "allow_enable_network": false,
    })
}
