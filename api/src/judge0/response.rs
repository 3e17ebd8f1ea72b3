//! A submission as Judge0 shows it: the attributes `?fields=` asks for
//! (Judge0's 8 by default, `*` for all), in Judge0's units (`time` and
//! `wall_time` in seconds as decimal strings, `memory` in KB, ISO 8601
//! times), text attributes base64-encoded when `base64_encoded=true`.
//!
//! Without base64, output that is not valid UTF-8 cannot be sent as JSON
//! text: the caller answers Judge0's error telling to use base64. The
//! judge keeps a test's output as UTF-8 with invalid bytes replaced by
//! U+FFFD, so an output holding U+FFFD counts as not valid UTF-8 here
//! (docs/judge0.md, "Base64").

use base64::Engine as _;
use judges::{Language, Languages, Submission};
use serde_json::{json, Map, Value};

use super::status::{outcome, the_test};
use crate::judge::SubmissionView;

/// Every attribute a submission has (`fields=*`), in Judge0's order.
pub const ALL_FIELDS: [&str; 35] = [
    "source_code",
    "language_id",
    "stdin",
    "expected_output",
    "stdout",
    "status_id",
    "created_at",
    "finished_at",
    "time",
    "memory",
    "stderr",
    "token",
    "number_of_runs",
    "cpu_time_limit",
    "cpu_extra_time",
    "wall_time_limit",
    "memory_limit",
    "stack_limit",
    "max_processes_and_or_threads",
    "enable_per_process_and_thread_time_limit",
    "enable_per_process_and_thread_memory_limit",
    "max_file_size",
    "compile_output",
    "exit_code",
    "exit_signal",
    "message",
    "wall_time",
    "compiler_options",
    "command_line_arguments",
    "redirect_stderr_to_stdout",
    "callback_url",
    "additional_files",
    "enable_network",
    "status",
    "language",
];

/// What Judge0 sends when `fields` is not given (Judge0 API docs, "Get a
/// Submission").
pub const DEFAULT_FIELDS: [&str; 8] = [
    "stdout",
    "time",
    "memory",
    "stderr",
    "token",
    "compile_output",
    "message",
    "status",
];

/// Text attributes: base64-encoded with `base64_encoded=true`.
const TEXT_FIELDS: [&str; 7] = [
    "source_code",
    "stdin",
    "expected_output",
    "stdout",
    "stderr",
    "compile_output",
    "message",
];

/// Text attributes the judge made from a program's bytes (lossy UTF-8).
const OUTPUT_FIELDS: [&str; 3] = ["stdout", "stderr", "compile_output"];

/// Attributes that need the submission's request (its source, test and
/// limits), read from the store only when asked for.
const REQUEST_FIELDS: [&str; 8] = [
    "source_code",
    "stdin",
    "expected_output",
    "cpu_time_limit",
    "wall_time_limit",
    "memory_limit",
    "stack_limit",
    "max_file_size",
];

/// The attributes asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fields(Vec<&'static str>);

/// `?fields=` named attributes a submission does not have.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid fields: [{}]", .0.join(", "))]
pub struct InvalidFields(pub Vec<String>);

/// An attribute asked for without base64 is not valid UTF-8.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field} is not valid UTF-8")]
pub struct NotUtf8 {
    pub field: &'static str,
}

impl Fields {
    /// `None` or empty: the default 8; `*`: all; else a comma list.
    pub fn parse(fields: Option<&str>) -> Result<Fields, InvalidFields> {
        let list = fields.map(str::trim).unwrap_or("");
        if list.is_empty() {
            return Ok(Fields(DEFAULT_FIELDS.to_vec()));
        }
        if list == "*" {
            return Ok(Fields(ALL_FIELDS.to_vec()));
        }
        let mut out = Vec::new();
        let mut bad = Vec::new();
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match ALL_FIELDS.iter().find(|f| **f == name) {
                Some(f) if !out.contains(f) => out.push(*f),
                Some(_) => {}
                None => bad.push(name.to_string()),
            }
        }
        if !bad.is_empty() {
            return Err(InvalidFields(bad));
        }
        Ok(Fields(out))
    }

    pub fn names(&self) -> &[&'static str] {
        &self.0
    }

    /// Whether rendering needs the stored request.
    pub fn need_request(&self) -> bool {
        self.0.iter().any(|f| REQUEST_FIELDS.contains(f))
    }
}

/// Milliseconds as Judge0's seconds: "0.002".
pub fn seconds(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// A limit in seconds as Judge0 echoes it ("2.0", "0.5").
fn limit_seconds(ms: u64) -> String {
    let s = format!("{}.{:03}", ms / 1000, ms % 1000);
    let s = s.trim_end_matches('0');
    if s.ends_with('.') {
        format!("{s}0")
    } else {
        s.to_string()
    }
}

/// Unix milliseconds as ISO 8601 with milliseconds ("2016-09-11T10:19:35.000Z").
pub fn iso8601(unix_ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(unix_ms.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

/// Base64 as Judge0 sends it (Ruby's `encode64`): a line break after
/// every 60 characters and at the end.
pub fn encode_base64(bytes: &[u8]) -> String {
    let flat = base64::engine::general_purpose::STANDARD.encode(bytes);
    let mut out = String::with_capacity(flat.len() + flat.len() / 60 + 1);
    for chunk in flat.as_bytes().chunks(60) {
        // The alphabet is ASCII: every chunk is a str.
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out
}

/// What one submission is rendered from.
pub struct Source<'a> {
    pub view: &'a SubmissionView,
    /// The stored request; needed when [`Fields::need_request`].
    pub request: Option<&'a Submission>,
    pub languages: &'a Languages,
}

fn text(s: &str) -> Value {
    // Judge0 sends empty outputs as null.
    if s.is_empty() {
        Value::Null
    } else {
        Value::String(s.to_string())
    }
}

/// The attributes asked for; an output not valid UTF-8 without base64 is
/// an error.
pub fn render(
    src: &Source<'_>,
    fields: &Fields,
    base64: bool,
) -> Result<Map<String, Value>, NotUtf8> {
    let view = src.view;
    let lang: Option<&Language> = src.languages.get(&view.language);
    let report = view.report.as_ref();
    // A test that ran (a skipped one, or none after a compile error, has
    // no figures).
    let ran = the_test(view).filter(|t| !t.skipped && t.termination.is_some());
    let out = outcome(view);
    let req = src.request;
    let req_test = req.and_then(|r| r.tests.first());
    let limits = req.map(|r| r.limits);
    let mut map = Map::new();
    for &field in fields.names() {
        let value = match field {
            "token" => Value::String(view.id.clone()),
            "source_code" => req.map_or(Value::Null, |r| text(&r.source)),
            "language_id" => lang
                .and_then(|l| l.judge0_id)
                .map_or(Value::Null, Value::from),
            "language" => match lang {
                Some(l) => json!({"id": l.judge0_id, "name": super::info::language_name(l)}),
                None => Value::Null,
            },
            "stdin" => req_test.map_or(Value::Null, |t| text(&t.stdin)),
            "expected_output" => req_test
                .and_then(|t| t.expected_output.clone())
                .map_or(Value::Null, Value::String),
            "stdout" => ran.map_or(Value::Null, |t| text(&t.stdout)),
            "stderr" => ran.map_or(Value::Null, |t| text(&t.stderr)),
            "compile_output" => report
                .and_then(|r| r.compile_output.as_deref())
                .map_or(Value::Null, text),
            "message" => out.message.clone().map_or(Value::Null, Value::String),
            "status" => json!(out.status),
            "status_id" => Value::from(out.status.id),
            "created_at" => Value::String(iso8601(view.created_at.saturating_mul(1000))),
            "finished_at" => view
                .finished_at_ms
                .filter(|_| view.status == "done")
                .map_or(Value::Null, |ms| Value::String(iso8601(ms))),
            "time" => ran.map_or(Value::Null, |t| Value::String(seconds(t.cpu_time_ms))),
            "wall_time" => ran.map_or(Value::Null, |t| Value::String(seconds(t.wall_time_ms))),
            "memory" => ran.map_or(Value::Null, |t| Value::from(t.memory_kb)),
            "exit_code" => ran
                .and_then(|t| t.exit_code)
                .map_or(Value::Null, Value::from),
            "exit_signal" => ran.and_then(|t| t.signal).map_or(Value::Null, Value::from),
            "number_of_runs" => Value::from(1),
            "cpu_time_limit" => limits.map_or(Value::Null, |l| limit_seconds(l.cpu_time_ms).into()),
            "cpu_extra_time" => Value::String("0.0".into()),
            "wall_time_limit" => {
                limits.map_or(Value::Null, |l| limit_seconds(l.wall_time_ms()).into())
            }
            "memory_limit" => limits.map_or(Value::Null, |l| Value::from(l.memory_mb * 1024)),
            // The stack may grow to the memory limit (docs/judges.md, "Stack").
            "stack_limit" => limits.map_or(Value::Null, |l| Value::from(l.memory_mb * 1024)),
            "max_processes_and_or_threads" => lang.map_or(Value::Null, |l| Value::from(l.pids)),
            "max_file_size" => limits.map_or(Value::Null, |l| Value::from(l.output_mb * 1024)),
            "enable_per_process_and_thread_time_limit"
            | "enable_per_process_and_thread_memory_limit"
            | "redirect_stderr_to_stdout"
            | "enable_network" => Value::Bool(false),
            // "compiler_options", "command_line_arguments", "callback_url",
            // "additional_files": refused when set, so never set.
            _ => Value::Null,
        };
        map.insert(field.to_string(), value);
    }
    for field in TEXT_FIELDS {
        let Some(Value::String(s)) = map.get_mut(field) else {
            continue;
        };
        if base64 {
            *s = encode_base64(s.as_bytes());
        } else if OUTPUT_FIELDS.contains(&field) && s.contains(char::REPLACEMENT_CHARACTER) {
            return Err(NotUtf8 { field });
        }
    }
    Ok(map)
}
