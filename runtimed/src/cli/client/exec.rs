//! `runtimed exec ID -- CMD...`: runs a process in a session through the
//! streaming exec (`?stream=true`), so output shows up as it is written,
//! and exits with the process's status, like `docker exec`.

use std::collections::BTreeMap;
use std::io::Read;
use std::time::Duration;

use api::types::{ExecRequest, ExecResult, ExecTermination};
use base64::Engine;
use bytes::BytesMut;
use clap::Args;
use http_body_util::BodyExt;
use hyper::Method;
use sandbox::report::{exit_status, failure_status, Termination};
use sandbox::spec::size::{parse_duration, parse_size};
use tokio::io::AsyncWriteExt;

use super::http::{HttpError, Payload};
use super::{key_value_arg, output_error, session_path, ClientError, ConnectArgs};

/// Longest NDJSON line accepted: an output line holds at most 32 KiB
/// (base64), and the final `exit` line does not repeat the output.
const MAX_LINE: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("reading stdin")]
    Stdin { source: std::io::Error },
    #[error("exec stream: malformed line from runtimed")]
    BadLine { source: serde_json::Error },
    #[error("exec stream: invalid base64 in a {stream} chunk")]
    BadChunk {
        stream: String,
        source: base64::DecodeError,
    },
    #[error("exec stream: a line longer than {MAX_LINE} bytes")]
    LineTooLong,
    #[error("exec stream: the connection closed before the process ended")]
    Truncated,
    #[error("exec stream: reading from runtimed")]
    Read { source: hyper::Error },
    #[error("session_ended: the session ended before the process did")]
    SessionEnded,
}

fn duration_arg(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < Duration::from_millis(1) {
        return Err("the timeout must be at least 1ms".into());
    }
    Ok(d)
}

/// `--cpu-time`: checked here with the daemon's parser and bounds (a bad
/// value is one line on stderr, nothing sent), then sent as written.
fn cpu_time_arg(s: &str) -> Result<String, String> {
    let d = parse_duration(s)?;
    if d.is_zero() || d > Duration::from_secs(24 * 3600) {
        return Err("the CPU time must be within 1ns..24h".into());
    }
    Ok(s.to_string())
}

fn size_arg(s: &str) -> Result<u64, String> {
    parse_size(s)
}

#[derive(Args, Debug)]
pub struct ExecArgs {
    #[command(flatten)]
    conn: ConnectArgs,
    /// Send our stdin (read to its end first) as the process's stdin;
    /// without it the process reads EOF.
    #[arg(long, short = 'i')]
    stdin: bool,
    /// Wall-clock limit; the process is killed past it (default: the daemon's).
    #[arg(long, value_parser = duration_arg, value_name = "DUR")]
    timeout: Option<Duration>,
    /// CPU time of the exec's whole process tree (e.g. 500ms, 2s); the
    /// process is killed past it (`cpu_timeout`).
    #[arg(long, value_parser = cpu_time_arg, value_name = "DUR")]
    cpu_time: Option<String>,
    /// Set a variable on top of the session's environment (repeatable).
    #[arg(long = "env", short = 'e', value_parser = key_value_arg, value_name = "K=V")]
    env: Vec<(String, String)>,
    /// Working directory (default /workspace; relative to it when relative).
    #[arg(long, short = 'w', value_name = "DIR")]
    cwd: Option<String>,
    /// Bytes kept per output stream; the process is killed past it.
    #[arg(long, value_parser = size_arg, value_name = "SIZE")]
    output_limit: Option<u64>,
    /// Session id.
    id: String,
    /// The command and its arguments.
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    command: Vec<String>,
}

pub fn main(args: ExecArgs) -> i32 {
    // Read before any runtime exists: a plain blocking read to EOF.
    let stdin = if args.stdin {
        let mut buf = Vec::new();
        if let Err(source) = std::io::stdin().lock().read_to_end(&mut buf) {
            return super::report(&ExecError::Stdin { source }.into());
        }
        Some(buf)
    } else {
        None
    };
    super::run(exec(args, stdin))
}

/// The one conversion from `exec` flags to the API's request.
fn exec_request(a: &ExecArgs, stdin: Option<Vec<u8>>) -> ExecRequest {
    ExecRequest {
        argv: a.command.clone(),
        stdin: stdin.map(|b| base64::engine::general_purpose::STANDARD.encode(b)),
        stdin_encoding: Some("base64".into()),
        env: a.env.iter().cloned().collect::<BTreeMap<_, _>>(),
        cwd: a.cwd.as_deref().map(|c| match c.starts_with('/') {
            true => c.to_string(),
            false => format!("/workspace/{c}"),
        }),
        // Round up: 1.5ms is not 1ms.
        timeout_ms: a
            .timeout
            .map(|d| u64::try_from(d.as_micros().div_ceil(1000)).unwrap_or(u64::MAX)),
        output_limit: a.output_limit,
        limits: a.cpu_time.as_ref().map(|t| api::types::ExecLimits {
            cpu_time: Some(t.clone()),
        }),
    }
}

/// One line of the stream.
#[derive(serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Event {
    Stdout {
        data: String,
    },
    Stderr {
        data: String,
    },
    Exit(Box<ExecResult>),
    /// The daemon failed after the stream started.
    Error {
        code: String,
        message: String,
    },
}

async fn exec(a: ExecArgs, stdin: Option<Vec<u8>>) -> Result<i32, ClientError> {
    let body = Payload::json(&exec_request(&a, stdin))?;
    let path = format!("{}/exec?stream=true", session_path(&a.id));
    let resp = a
        .conn
        .client()
        .send(Method::POST, &path, Some(body))
        .await?;
    let mut body = resp.into_body();
    let mut out = tokio::io::stdout();
    let mut err = tokio::io::stderr();
    let mut pending = BytesMut::new();
    // Bytes of `pending` known to hold no newline (the last line can be
    // long: do not rescan it for every chunk).
    let mut scanned = 0;
    loop {
        // Whole lines first: one chunk may hold several, or part of one.
        while let Some(nl) = pending[scanned..].iter().position(|b| *b == b'\n') {
            let nl = scanned + nl;
            scanned = 0;
            let line = pending.split_to(nl + 1);
            let line = &line[..nl];
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let event: Event =
                serde_json::from_slice(line).map_err(|source| ExecError::BadLine { source })?;
            match event {
                Event::Stdout { data } => {
                    let bytes = decode(&data, "stdout")?;
                    out.write_all(&bytes)
                        .await
                        .map_err(output_error("stdout"))?;
                    out.flush().await.map_err(output_error("stdout"))?;
                }
                Event::Stderr { data } => {
                    let bytes = decode(&data, "stderr")?;
                    err.write_all(&bytes)
                        .await
                        .map_err(output_error("stderr"))?;
                    err.flush().await.map_err(output_error("stderr"))?;
                }
                Event::Exit(result) => return outcome(&result),
                Event::Error { code, message } => {
                    return Err(HttpError::Api {
                        status: 500,
                        code,
                        message,
                    }
                    .into())
                }
            }
        }
        scanned = pending.len();
        if pending.len() > MAX_LINE {
            return Err(ExecError::LineTooLong.into());
        }
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    pending.extend_from_slice(&data);
                }
            }
            Some(Err(source)) => return Err(ExecError::Read { source }.into()),
            None if pending.iter().all(u8::is_ascii_whitespace) => {
                return Err(ExecError::Truncated.into())
            }
            // A last line without its newline.
            None => pending.extend_from_slice(b"\n"),
        }
    }
}

fn decode(data: &str, stream: &str) -> Result<Vec<u8>, ExecError> {
    base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|source| ExecError::BadChunk {
            stream: stream.to_string(),
            source,
        })
}

/// The exit status for a finished exec, with one stderr line when the
/// process did not simply exit or die of a signal of its own.
fn outcome(r: &ExecResult) -> Result<i32, ClientError> {
    let (code, line) = classify(r);
    if let Some(line) = line {
        eprintln!("runtimed: {line}");
    }
    match code {
        Some(code) => Ok(code),
        None => Err(ExecError::SessionEnded.into()),
    }
}

/// (exit status, message); `None` status: nothing ran to an end. The
/// status is the one mapping of every front end
/// ([`sandbox::report::exit_status`]).
fn classify(r: &ExecResult) -> (Option<i32>, Option<String>) {
    let ExecTermination::Ran(termination) = r.termination else {
        // session_ended (client_gone is never answered).
        return (None, None);
    };
    if let Some(e) = &r.error {
        let errno = e.errno.map(|e| format!(" ({e:?})")).unwrap_or_default();
        return (
            Some(failure_status(e.step, e.errno)),
            Some(format!("{} failed: {}{errno}", e.step, e.message)),
        );
    }
    let status = match (r.exit_code, r.signal) {
        (None, None) => None,
        (code, signal) => Some(exit_status(termination, code, signal, None)),
    };
    let why = match termination {
        Termination::WallTimeout => Some(format!(
            "wall_timeout: killed after {:.1}s",
            r.usage.wall_time_us as f64 / 1e6
        )),
        Termination::CpuTimeout => Some(format!(
            "cpu_timeout: killed after {:.2}s of CPU time",
            r.usage.cpu_time_us as f64 / 1e6
        )),
        Termination::OutputLimit => {
            Some("output_limit: the output went over the limit and was cut off".to_string())
        }
        Termination::OomKilled => {
            Some("oom_killed: killed by the session's memory limit".to_string())
        }
        Termination::SeccompKill => {
            Some("seccomp_kill: killed for a forbidden system call".to_string())
        }
        _ => None,
    };
    (status, why)
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::types::StepError;
    use clap::Parser;
    use nix::errno::Errno;
    use sandbox::report::Step;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        a: ExecArgs,
    }

    fn parse(args: &[&str]) -> ExecArgs {
        Cli::try_parse_from(std::iter::once("x").chain(args.iter().copied()))
            .unwrap()
            .a
    }

    #[test]
    fn the_command_may_follow_a_double_dash_or_not() {
        let a = parse(&[
            "--timeout",
            "1.5s",
            "-e",
            "A=1",
            "s1",
            "--",
            "sh",
            "-c",
            "exit 7",
        ]);
        assert_eq!((a.id.as_str(), a.command.len()), ("s1", 3));
        let a = parse(&["s1", "ls", "-la", "--color"]);
        assert_eq!(a.command, ["ls", "-la", "--color"]);
        let req = exec_request(
            &parse(&["--timeout", "1.5ms", "-w", "sub", "s1", "true"]),
            None,
        );
        assert_eq!(req.timeout_ms, Some(2));
        assert_eq!(req.cwd.as_deref(), Some("/workspace/sub"));
        assert!(req.limits.is_none());
        let req = exec_request(&parse(&["--cpu-time", "300ms", "s1", "true"]), None);
        assert_eq!(req.limits.unwrap().cpu_time.as_deref(), Some("300ms"));
        for bad in ["0", "25h", "fast"] {
            assert!(Cli::try_parse_from(["x", "--cpu-time", bad, "s1", "true"]).is_err());
        }
        assert!(Cli::try_parse_from(["x", "s1"]).is_err());
    }

    #[test]
    fn requests_parse_back() {
        let req = exec_request(&parse(&["s1", "cat"]), Some(vec![0xff, 0]));
        let v = serde_json::to_value(&req).unwrap();
        let back: ExecRequest = serde_json::from_value(v).unwrap();
        assert_eq!(back.stdin.as_deref(), Some("/wA="));
    }

    fn result(term: &str, code: Option<i32>, signal: Option<i32>) -> ExecResult {
        ExecResult {
            termination: ExecTermination::parse(term).unwrap(),
            exit_code: code,
            signal,
            ..Default::default()
        }
    }

    #[test]
    fn exit_statuses() {
        assert_eq!(classify(&result("exited", Some(7), None)), (Some(7), None));
        assert_eq!(classify(&result("signaled", None, Some(15))).0, Some(143));
        let (code, line) = classify(&result("wall_timeout", None, Some(9)));
        assert_eq!(code, Some(137));
        assert!(line.unwrap().starts_with("wall_timeout"));
        assert_eq!(
            classify(&result("output_limit", Some(0), None)).0,
            Some(137)
        );
        assert_eq!(classify(&result("session_ended", None, None)).0, None);
        let mut r = result("setup_failed", Some(127), None);
        r.error = Some(StepError {
            step: Step::Exec,
            errno: Some(Errno::ENOENT),
            message: "/nope: not found".into(),
        });
        assert_eq!(
            classify(&r),
            (
                Some(127),
                Some("exec failed: /nope: not found (ENOENT)".into())
            )
        );
        r.error.as_mut().unwrap().errno = Some(Errno::EACCES);
        assert_eq!(classify(&r).0, Some(126));
        r.error.as_mut().unwrap().step = Step::Chdir;
        assert_eq!(classify(&r).0, Some(125));
    }

    #[test]
    fn stream_lines_parse() {
        let e: Event = serde_json::from_str(r#"{"type":"stdout","data":"aGk="}"#).unwrap();
        assert!(matches!(e, Event::Stdout { data } if data == "aGk="));
        let e: Event = serde_json::from_str(
            r#"{"type":"exit","exit_code":3,"signal":null,"termination":"exited","stdout":"","stdout_encoding":"utf8","stderr":"","stderr_encoding":"utf8","stdout_truncated":false,"stderr_truncated":false,"usage":{"wall_time_us":1,"cpu_user_us":0,"cpu_system_us":0,"max_rss_kb":0},"error":null}"#,
        )
        .unwrap();
        assert!(matches!(e, Event::Exit(r) if r.exit_code == Some(3)));
        assert!(serde_json::from_str::<Event>(r#"{"type":"bogus"}"#).is_err());
    }
}
