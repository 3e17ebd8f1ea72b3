//! A Judge0 submission body → a [`Submission`] of one test, or the
//! attributes that are wrong in Judge0's 422 shape `{"attribute":
//! ["message", ...]}` (Judge0 API docs, "Create a Submission").
//!
//! Like Judge0 (a Rails app) the body is lenient about types: numbers may
//! come as strings (`"language_id": "4"`), booleans as `"true"`, and
//! attributes Judge0 does not know are ignored. Which attributes are
//! honoured, ignored or refused: docs/judge0.md, "Attributes".

use std::collections::BTreeMap;

use base64::Engine as _;
use judges::pipeline::{limit_defaults, ranges};
use judges::{Availability, Checker, Languages, Limits, Submission, TestCase};
use serde::Serialize;
use serde_json::{Map, Value};

/// The attributes that are wrong, each with its messages (Judge0's 422
/// body).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(transparent)]
#[error("invalid submission: {}", self.summary())]
pub struct FieldErrors(pub BTreeMap<String, Vec<String>>);

impl FieldErrors {
    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0
            .entry(field.to_string())
            .or_default()
            .push(message.into());
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn summary(&self) -> String {
        self.0
            .iter()
            .map(|(f, m)| format!("{f} {}", m.join(", ")))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// The judge service's refusal, on the attribute it is about.
    pub fn from_service(e: &judges::SubmissionError) -> FieldErrors {
        use judges::SubmissionError as E;
        let field = match e {
            E::UnknownLanguage { .. } | E::Unavailable { .. } => "language_id",
            E::OutOfRange { field, .. } => match *field {
                "limits.cpu_time_ms" => "cpu_time_limit",
                "limits.wall_time_ms" => "wall_time_limit",
                "limits.memory_mb" => "memory_limit",
                "limits.output_mb" => "max_file_size",
                _ => "base",
            },
            E::TooLarge { what, .. } => match what.as_str() {
                "source" => "source_code",
                w if w.ends_with(".stdin") => "stdin",
                w if w.ends_with(".expected_output") => "expected_output",
                _ => "base",
            },
            E::NoTests | E::TooManyTests { .. } | E::Tolerance { .. } => "base",
        };
        let mut errors = FieldErrors::default();
        errors.add(field, e.to_string());
        errors
    }
}

/// Largest `cpu_extra_time` accepted (it is ignored: the supervisor ends
/// a run at its limit).
pub const MAX_CPU_EXTRA_TIME_S: f64 = 5.0;

/// Largest `max_processes_and_or_threads` accepted (ignored: the language
/// table sets each language's).
pub const MAX_PROCESSES: u64 = 16_384;

/// Largest `compiler_options` / `command_line_arguments` (Judge0's).
const MAX_OPTIONS_CHARS: usize = 512;

/// KB per MiB: Judge0's kilobytes are KiB (isolate's unit).
const KB_PER_MB: u64 = 1024;

/// Bounds of the KB attributes, from the judge's ranges.
pub fn memory_limit_kb() -> std::ops::RangeInclusive<u64> {
    ranges::MEMORY_MB.start() * KB_PER_MB..=ranges::MEMORY_MB.end() * KB_PER_MB
}

pub fn max_file_size_kb() -> std::ops::RangeInclusive<u64> {
    // 1 KB and up: rounded up to whole MiB, the judge's unit.
    1..=ranges::OUTPUT_MB.end() * KB_PER_MB
}

/// Reads attributes of one body, collecting what is wrong.
struct Reader<'a> {
    body: &'a Map<String, Value>,
    base64: bool,
    errors: FieldErrors,
}

/// What a present attribute is, or why it is not usable.
enum Got<T> {
    Absent,
    Value(T),
    Invalid,
}

impl<'a> Reader<'a> {
    fn present(&self, field: &str) -> Option<&'a Value> {
        self.body.get(field).filter(|v| !v.is_null())
    }

    /// A text attribute (base64-decoded when the request says so).
    fn text(&mut self, field: &str) -> Got<String> {
        let Some(v) = self.present(field) else {
            return Got::Absent;
        };
        let raw = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => {
                self.errors.add(field, "must be text");
                return Got::Invalid;
            }
        };
        if !self.base64 {
            return Got::Value(raw);
        }
        let Some(bytes) = decode_base64(&raw) else {
            self.errors.add(field, "is not valid Base64");
            return Got::Invalid;
        };
        match String::from_utf8(bytes) {
            Ok(s) => Got::Value(s),
            Err(_) => {
                // The judge keeps sources and tests as text.
                self.errors
                    .add(field, "must be UTF-8 text once Base64-decoded");
                Got::Invalid
            }
        }
    }

    fn number(&mut self, field: &str) -> Got<f64> {
        let Some(v) = self.present(field) else {
            return Got::Absent;
        };
        let n = match v {
            Value::Number(n) => n.as_f64(),
            Value::String(s) if s.trim().is_empty() => return Got::Absent,
            Value::String(s) => s.trim().parse::<f64>().ok(),
            _ => None,
        };
        match n.filter(|n| n.is_finite()) {
            Some(n) => Got::Value(n),
            None => {
                self.errors.add(field, "is not a number");
                Got::Invalid
            }
        }
    }

    /// A number within `min..=max` (in the attribute's own unit).
    fn bounded(&mut self, field: &str, min: f64, max: f64) -> Option<f64> {
        match self.number(field) {
            Got::Value(n) if n < min => {
                self.errors.add(
                    field,
                    format!("must be greater than or equal to {}", show(min)),
                );
                None
            }
            Got::Value(n) if n > max => {
                self.errors.add(
                    field,
                    format!("must be less than or equal to {}", show(max)),
                );
                None
            }
            Got::Value(n) => Some(n),
            Got::Absent | Got::Invalid => None,
        }
    }

    fn flag(&mut self, field: &str) -> Option<bool> {
        let v = self.present(field)?;
        let b = match v {
            Value::Bool(b) => Some(*b),
            Value::String(s) => match s.trim() {
                "true" | "1" | "t" => Some(true),
                "false" | "0" | "f" | "" => Some(false),
                _ => None,
            },
            Value::Number(n) => match n.as_u64() {
                Some(1) => Some(true),
                Some(0) => Some(false),
                _ => None,
            },
            _ => None,
        };
        if b.is_none() {
            self.errors.add(field, "must be true or false");
        }
        b
    }

    /// An attribute only its default is served for: a flag that must not
    /// be true, text that must be empty.
    fn refuse_true(&mut self, field: &str, message: &str) {
        if self.flag(field) == Some(true) {
            self.errors.add(field, message);
        }
    }

    fn refuse_text(&mut self, field: &str, message: &str) {
        // Not base64-decoded first: any text at all is refused.
        match self.present(field) {
            None => {}
            Some(Value::String(s)) if s.is_empty() => {}
            Some(Value::String(s)) if s.chars().count() > MAX_OPTIONS_CHARS => self.errors.add(
                field,
                format!("is too long (maximum is {MAX_OPTIONS_CHARS} characters)"),
            ),
            Some(_) => self.errors.add(field, message),
        }
    }
}

/// `1.5` → "1.5", `60.0` → "60".
fn show(n: f64) -> String {
    let s = format!("{n}");
    s.strip_suffix(".0").map(str::to_string).unwrap_or(s)
}

/// Base64 as Judge0 clients send it: the standard alphabet, padded or
/// not, line breaks (Ruby's `encode64` puts one every 60 characters)
/// and other ASCII whitespace ignored.
pub fn decode_base64(text: &str) -> Option<Vec<u8>> {
    use base64::engine::{
        general_purpose::GeneralPurpose, DecodePaddingMode, GeneralPurposeConfig,
    };
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let compact: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    LENIENT.decode(compact).ok()
}

/// Seconds → whole milliseconds.
fn ms(seconds: f64) -> u64 {
    (seconds * 1000.0).round() as u64
}

/// KB → whole MiB, rounded up (the judge's unit).
fn mib(kb: f64) -> u64 {
    (kb / KB_PER_MB as f64).ceil() as u64
}

/// Reads a Judge0 submission. `body` is any JSON value: anything but an
/// object has no attributes (so: `source_code` and `language_id` can't
/// be blank).
pub fn parse(body: &Value, base64: bool, languages: &Languages) -> Result<Submission, FieldErrors> {
    let empty = Map::new();
    let mut r = Reader {
        body: body.as_object().unwrap_or(&empty),
        base64,
        errors: FieldErrors::default(),
    };

    let source = match r.text("source_code") {
        Got::Value(s) if !s.trim().is_empty() => Some(s),
        Got::Value(_) | Got::Absent => {
            r.errors.add("source_code", "can't be blank");
            None
        }
        Got::Invalid => None,
    };
    let language = match r.number("language_id") {
        Got::Absent => {
            r.errors.add("language_id", "can't be blank");
            None
        }
        Got::Invalid => None,
        Got::Value(id) => {
            let found = (id.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&id))
                .then(|| languages.by_judge0_id(id as u32))
                .flatten();
            match found {
                None => {
                    r.errors.add(
                        "language_id",
                        format!("language with id {} doesn't exist", show(id)),
                    );
                    None
                }
                Some(l) => match &l.availability {
                    Availability::Unavailable { reason } => {
                        r.errors.add(
                            "language_id",
                            format!(
                                "language with id {} is not available here: {reason}",
                                show(id)
                            ),
                        );
                        None
                    }
                    _ => Some(l.name.clone()),
                },
            }
        }
    };
    let stdin = match r.text("stdin") {
        Got::Value(s) => s,
        Got::Absent | Got::Invalid => String::new(),
    };
    let expected_output = match r.text("expected_output") {
        Got::Value(s) => Some(s),
        Got::Absent | Got::Invalid => None,
    };

    let secs = |r: &RangeMs| (*r.start() as f64 / 1000.0, *r.end() as f64 / 1000.0);
    let (lo, hi) = secs(&ranges::CPU_TIME_MS);
    let cpu_time_ms = r
        .bounded("cpu_time_limit", lo, hi)
        .map_or(limit_defaults::CPU_TIME_MS, ms);
    let (lo, hi) = secs(&ranges::WALL_TIME_MS);
    let wall_time_ms = r.bounded("wall_time_limit", lo, hi).map(ms);
    let kb = memory_limit_kb();
    let memory_mb = r
        .bounded("memory_limit", *kb.start() as f64, *kb.end() as f64)
        .map_or(limit_defaults::MEMORY_MB, mib);
    let kb = max_file_size_kb();
    let output_mb = r
        .bounded("max_file_size", *kb.start() as f64, *kb.end() as f64)
        .map_or(limit_defaults::OUTPUT_MB, |k| mib(k).max(1));

    // Accepted and ignored (docs/judge0.md, "Attributes").
    r.bounded("cpu_extra_time", 0.0, MAX_CPU_EXTRA_TIME_S);
    let kb = memory_limit_kb();
    r.bounded("stack_limit", 0.0, *kb.end() as f64);
    r.bounded("max_processes_and_or_threads", 0.0, MAX_PROCESSES as f64);
    // One run per submission.
    r.bounded("number_of_runs", 1.0, 1.0);

    // Served only at their defaults.
    r.refuse_true(
        "enable_per_process_and_thread_time_limit",
        "is not supported here: the CPU time limit is for the whole process tree",
    );
    r.refuse_true(
        "enable_per_process_and_thread_memory_limit",
        "is not supported here: the memory limit is for the whole process tree",
    );
    r.refuse_true(
        "redirect_stderr_to_stdout",
        "is not supported here: stderr is kept apart",
    );
    r.refuse_true("enable_network", "enabling network is not allowed");
    r.refuse_text(
        "compiler_options",
        "setting compiler options is not allowed",
    );
    r.refuse_text(
        "command_line_arguments",
        "setting command line arguments is not allowed",
    );
    r.refuse_text("callback_url", "callbacks are not supported here");
    r.refuse_text(
        "additional_files",
        "additional files are not supported here",
    );

    let too_long = |len: usize, max: usize| {
        (len > max).then(|| format!("is too long (maximum is {max} bytes)"))
    };
    if let Some(m) = source
        .as_ref()
        .and_then(|s| too_long(s.len(), ranges::SOURCE_BYTES))
    {
        r.errors.add("source_code", m);
    }
    if let Some(m) = too_long(stdin.len(), ranges::TEST_BYTES) {
        r.errors.add("stdin", m);
    }
    if let Some(m) = expected_output
        .as_ref()
        .and_then(|e| too_long(e.len(), ranges::TEST_BYTES))
    {
        r.errors.add("expected_output", m);
    }

    match (source, language) {
        (Some(source), Some(language)) if r.errors.is_empty() => Ok(Submission {
            language,
            source,
            tests: vec![TestCase {
                stdin,
                expected_output,
            }],
            limits: Limits {
                cpu_time_ms,
                wall_time_ms,
                memory_mb,
                output_mb,
            },
            // Judge0 compares stdout and expected_output ignoring the
            // whitespace at the end of each line and of the whole (Judge0
            // issue #30); tokens accepts all of those (docs/judge0.md,
            // "Comparing outputs").
            checker: Checker::Tokens,
            stop_on_first_failure: false,
        }),
        _ => Err(r.errors),
    }
}

type RangeMs = std::ops::RangeInclusive<u64>;
