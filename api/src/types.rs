//! Request and response bodies of the native API, in one place. Unknown
//! fields are refused (a typo must not silently mean "default").

use std::collections::BTreeMap;

use nix::errno::Errno;
use sandbox::report::{Step, StepFailure, Termination};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ApiError;

/// A size: bytes as a number, or a string like `"256M"`, `"1G"`.
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[serde(untagged)]
pub enum SizeValue {
    Bytes(u64),
    Text(String),
}

impl SizeValue {
    pub fn bytes(&self, field: &str) -> Result<u64, ApiError> {
        match self {
            SizeValue::Bytes(b) => Ok(*b),
            SizeValue::Text(t) => sandbox::spec::size::parse_size(t)
                .map_err(|e| ApiError::limit(format!("{field}: {e}"))),
        }
    }
}

/// Limits of a session or run; omitted ones take the daemon's defaults.
#[derive(Clone, Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitsRequest {
    /// Memory of the whole sandbox (swap off): bytes or "256M".
    pub memory: Option<SizeValue>,
    /// Most tasks (processes and threads).
    #[schema(minimum = 8)]
    pub pids: Option<u64>,
    /// CPU quota in CPUs (0.01 .. 64).
    pub cpus: Option<f64>,
    /// Size of the writable /workspace (and of /tmp).
    pub disk: Option<SizeValue>,
    /// `/v1/run` only (a session refuses it): CPU time of the whole
    /// process tree, user and system, as the CLI's `--cpu-time` takes it
    /// (`"500ms"`, `"2s"`, `"1.5s"`, `"1m"`; a bare number is seconds), at
    /// most 24 h. Past it the run is killed: `termination: cpu_timeout`.
    #[schema(example = "2s")]
    pub cpu_time: Option<String>,
}

/// Limits in force, resolved to numbers.
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema, PartialEq)]
pub struct Limits {
    pub memory_bytes: u64,
    pub pids: u64,
    pub cpus: Option<f64>,
    pub disk_bytes: u64,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSession {
    /// Root filesystem image; `host` (the default) is the host's /usr
    /// read-only with a generated /etc.
    pub image: Option<String>,
    pub limits: Option<LimitsRequest>,
    /// Lifetime; the session is removed when it runs out (at most
    /// `max_ttl_seconds`, 7 days by default).
    #[schema(minimum = 1)]
    pub ttl_seconds: Option<u64>,
    /// Removed after this long without exec, PTY input or a file call
    /// (at most `max_ttl_seconds`).
    #[schema(minimum = 1)]
    pub idle_timeout_seconds: Option<u64>,
    /// Environment every process of the session starts with.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Free-form labels (filter with `GET /v1/sessions?label=k=v`).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// Live accounting of a session's cgroup.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct Usage {
    pub memory_current_bytes: u64,
    pub memory_peak_bytes: u64,
    pub cpu_usage_us: u64,
    pub pids_current: u64,
    pub oom_kills: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct SessionInfo {
    pub id: String,
    /// `running`, or `lost` (the daemon restarted after a crash: the
    /// session's processes are gone; DELETE removes the record).
    pub state: String,
    pub image: String,
    /// RFC 3339.
    pub created_at: String,
    pub expires_at: Option<String>,
    pub idle_timeout_seconds: Option<u64>,
    pub last_activity_at: String,
    pub limits: Limits,
    pub env: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    pub usage: Option<Usage>,
    /// PTYs of the session.
    pub ptys: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct SessionList {
    pub sessions: Vec<SessionInfo>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecRequest {
    /// The program and its arguments (no NUL bytes; 64 KiB in all).
    #[schema(min_items = 1)]
    pub argv: Vec<String>,
    /// Bytes for the process's stdin (then EOF).
    pub stdin: Option<String>,
    /// `utf8` (default) or `base64` for `stdin`.
    #[schema(pattern = "^(utf8|utf-8|base64)$")]
    pub stdin_encoding: Option<String>,
    /// Added to the session's environment.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory, absolute (default /workspace).
    #[schema(pattern = "^/")]
    pub cwd: Option<String>,
    /// Wall-clock limit; the process group is killed past it (1 ms to
    /// 24 h).
    #[schema(minimum = 1)]
    pub timeout_ms: Option<u64>,
    /// Bytes kept per output stream; the process is killed past it.
    #[schema(minimum = 1)]
    pub output_limit: Option<u64>,
    /// Limits of this exec alone (its own cgroup, below the session's).
    pub limits: Option<ExecLimits>,
}

/// Limits of one exec; the session's memory, pids and CPU quota hold
/// over all of its processes.
#[derive(Clone, Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecLimits {
    /// CPU time of the exec's whole process tree, user and system, as
    /// `/v1/run` and the CLI's `--cpu-time` take it (`"500ms"`, `"2s"`;
    /// a bare number is seconds), at most 24 h. Past it the exec is
    /// killed: `termination: cpu_timeout`.
    #[schema(example = "2s")]
    pub cpu_time: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct ExecUsage {
    pub wall_time_us: u64,
    /// The program's own CPU time and largest RSS, with the children it
    /// waited for (rusage).
    pub cpu_user_us: u64,
    pub cpu_system_us: u64,
    pub max_rss_kb: u64,
    /// CPU time (user and system) of every process of the exec, from its
    /// own cgroup: what `limits.cpu_time` is checked against.
    #[serde(default)]
    pub cpu_time_us: u64,
}

/// A failed setup step (e.g. exec of a missing program).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StepError {
    /// The step's name (docs/process-model.md), e.g. `exec`.
    #[schema(value_type = String, example = "exec")]
    pub step: Step,
    /// The errno's name, e.g. `ENOENT`.
    #[serde(default, with = "sandbox::report::errno_name")]
    #[schema(value_type = Option<String>, example = "ENOENT")]
    pub errno: Option<Errno>,
    pub message: String,
}

impl From<&StepFailure> for StepError {
    fn from(f: &StepFailure) -> StepError {
        StepError {
            step: f.step,
            errno: f.errno,
            message: f.message.clone(),
        }
    }
}

/// How an exec or a run ended: a sandbox [`Termination`], or one of the
/// two ends only an exec in a session has.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ExecTermination {
    Ran(Termination),
    /// The session went away before the process ended (no status).
    #[default]
    SessionEnded,
    /// A streaming consumer went away; nobody sees this answer (metrics
    /// only).
    ClientGone,
}

impl ExecTermination {
    /// The snake_case name used in JSON and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ExecTermination::Ran(t) => t.as_str(),
            ExecTermination::SessionEnded => "session_ended",
            ExecTermination::ClientGone => "client_gone",
        }
    }

    /// The termination of that name (`None`: a name this build does not
    /// know, e.g. from a newer daemon).
    pub fn parse(name: &str) -> Option<ExecTermination> {
        match name {
            "session_ended" => Some(ExecTermination::SessionEnded),
            "client_gone" => Some(ExecTermination::ClientGone),
            other => {
                serde_json::from_value::<Termination>(serde_json::Value::String(other.to_owned()))
                    .ok()
                    .map(ExecTermination::Ran)
            }
        }
    }
}

impl std::fmt::Display for ExecTermination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ExecTermination {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ExecTermination {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<ExecTermination, D::Error> {
        let name = String::deserialize(d)?;
        ExecTermination::parse(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown termination {name:?}")))
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct ExecResult {
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    /// exited, signaled, wall_timeout, cpu_timeout (its
    /// `limits.cpu_time` ran out), output_limit, oom_killed, pids_limit
    /// (the program failed after a fork was refused at the pids limit),
    /// seccomp_kill, setup_failed, session_ended.
    #[schema(value_type = String, example = "exited")]
    pub termination: ExecTermination,
    pub stdout: String,
    /// `utf8`, or `base64` when the bytes are not UTF-8.
    pub stdout_encoding: String,
    pub stderr: String,
    pub stderr_encoding: String,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
    pub usage: ExecUsage,
    pub error: Option<StepError>,
}

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunFile {
    /// Path below /workspace.
    pub path: String,
    pub content: String,
    /// `utf8` (default) or `base64`.
    #[schema(pattern = "^(utf8|utf-8|base64)$")]
    pub encoding: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    pub image: Option<String>,
    #[serde(default)]
    pub files: Vec<RunFile>,
    #[schema(min_items = 1)]
    pub argv: Vec<String>,
    pub stdin: Option<String>,
    #[schema(pattern = "^(utf8|utf-8|base64)$")]
    pub stdin_encoding: Option<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub limits: Option<LimitsRequest>,
    #[schema(minimum = 1)]
    pub timeout_ms: Option<u64>,
    #[schema(minimum = 1)]
    pub output_limit: Option<u64>,
}

/// A directory of the workspace (`GET .../files/{dir}`), sorted by name.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct DirListing {
    pub entries: Vec<crate::workspace::Entry>,
}

/// What `PUT .../archive` unpacked.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Unpacked {
    /// Entries of the tar written.
    pub entries: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct PtyInfo {
    pub id: String,
    pub argv: Vec<String>,
    pub created_at: String,
    pub attached: usize,
    pub rows: u16,
    pub cols: u16,
    /// Set once the process ended.
    pub exit_code: Option<i32>,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct PtyList {
    pub ptys: Vec<PtyInfo>,
}

/// Encodes bytes as UTF-8 text when they are, base64 otherwise.
pub fn encode_output(bytes: &[u8]) -> (String, String) {
    match std::str::from_utf8(bytes) {
        Ok(s) => (s.to_string(), "utf8".into()),
        Err(_) => {
            use base64::Engine;
            (
                base64::engine::general_purpose::STANDARD.encode(bytes),
                "base64".into(),
            )
        }
    }
}

/// Decodes a text field with an optional `encoding` (`utf8`, `base64`).
pub fn decode_input(text: &str, encoding: Option<&str>, field: &str) -> Result<Vec<u8>, ApiError> {
    match encoding.unwrap_or("utf8") {
        "utf8" | "utf-8" => Ok(text.as_bytes().to_vec()),
        "base64" => {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|e| ApiError::invalid(format!("{field}: invalid base64: {e}")))
        }
        other => Err(ApiError::invalid(format!(
            "{field}: unknown encoding {other:?} (use utf8 or base64)"
        ))),
    }
}

/// Last second RFC 3339 can write (9999-12-31T23:59:59Z).
const RFC3339_MAX: i64 = 253_402_300_799;

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// RFC 3339 (UTC, seconds) of a unix time, clamped to what the format
/// can say (no time of ours is near either end).
pub fn rfc3339(unix: i64) -> String {
    let secs = unix.clamp(0, RFC3339_MAX) as u64;
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
    humantime::format_rfc3339_seconds(t).to_string()
}
