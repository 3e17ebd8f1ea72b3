//! The client verbs (`session`, `exec`, `shell`, `cp`): a command-line
//! front end to a running daemon over its Unix socket, in the manner of
//! `docker exec` / `kubectl exec`. It speaks only the public API (the same
//! JSON bodies as any other client, typed by `api::types`), so anything it
//! can do a script can do with curl.
//!
//! Exit statuses are a contract shared with `runtimed run`: the program's
//! own code for `exec` and `shell` (128+N for a signal), 125 when the
//! client itself failed (usage, socket, local files), 1 when the daemon
//! refused the request (its `{code, message}` is printed). Every failure is
//! one line on stderr, `runtimed: ...`.

pub mod archive;
pub mod cp;
pub mod exec;
pub mod http;
pub mod session;
pub mod shell;
pub mod terminal;

use std::future::Future;
use std::io::ErrorKind;
use std::path::PathBuf;

use clap::Args;

use crate::EXIT_RUNTIME_FAILURE;

pub use cp::CpArgs;
pub use exec::ExecArgs;
pub use session::SessionArgs;
pub use shell::ShellArgs;

/// Exit status when the daemon answered with an error (`{code, message}`).
pub const EXIT_API_ERROR: i32 = 1;
/// Exit status when our stdout was closed under us: what a process killed
/// by SIGPIPE reports in a shell (`yes | head -1`), without a message.
pub const EXIT_BROKEN_PIPE: i32 = 128 + libc::SIGPIPE;

/// Where the daemon listens; shared by every client verb.
#[derive(Args, Debug, Clone)]
pub struct ConnectArgs {
    /// The daemon's Unix socket.
    #[arg(
        long,
        value_name = "PATH",
        env = "RUNTIMED_SOCKET",
        default_value = "/run/runtimed/runtimed.sock",
        global = true
    )]
    pub socket: PathBuf,
}

impl ConnectArgs {
    pub fn client(&self) -> http::Client {
        http::Client::new(self.socket.clone())
    }
}

/// Everything a client verb can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Http(#[from] http::HttpError),
    #[error(transparent)]
    Exec(#[from] exec::ExecError),
    #[error(transparent)]
    Shell(#[from] shell::ShellError),
    #[error(transparent)]
    Terminal(#[from] terminal::TerminalError),
    #[error(transparent)]
    Cp(#[from] cp::CpError),
    #[error(transparent)]
    Archive(#[from] archive::ArchiveError),
    #[error("writing to {stream}")]
    Output {
        stream: &'static str,
        source: std::io::Error,
    },
    #[error("starting the async runtime")]
    Runtime { source: std::io::Error },
}

impl ClientError {
    /// 1 for a refusal by the daemon, 125 for everything on our side.
    pub fn exit_code(&self) -> i32 {
        match self {
            ClientError::Http(e) if e.is_api() => EXIT_API_ERROR,
            _ if self.is_broken_pipe() => EXIT_BROKEN_PIPE,
            _ => EXIT_RUNTIME_FAILURE,
        }
    }

    fn is_broken_pipe(&self) -> bool {
        matches!(self, ClientError::Output { source, .. } if source.kind() == ErrorKind::BrokenPipe)
    }

    /// What to do about it, when we can tell.
    fn hint(&self) -> Option<String> {
        match self {
            ClientError::Http(e) => e.hint(),
            _ => None,
        }
    }
}

/// Writing one of our own streams failed.
pub fn output_error(stream: &'static str) -> impl FnOnce(std::io::Error) -> ClientError {
    move |source| ClientError::Output { stream, source }
}

/// The one stderr line for a failure: the error, its sources, a hint.
/// Newlines in the daemon's messages are folded so it stays one line.
pub fn report(e: &ClientError) -> i32 {
    let code = e.exit_code();
    if e.is_broken_pipe() {
        return code;
    }
    let mut line = e.to_string();
    // (`transparent` variants hand out their inner error's source.)
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        // Some errors repeat their source in their own message.
        if !line.ends_with(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        source = s.source();
    }
    if let Some(h) = e.hint() {
        line.push_str(&format!(" ({h})"));
    }
    let line: String = line
        .chars()
        .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
        .collect();
    eprintln!("runtimed: {line}");
    code
}

/// Runs one verb on a single-threaded runtime (one connection at a time;
/// blocking stdin reads live on their own thread) and maps the outcome to
/// an exit status.
pub fn run<F>(verb: F) -> i32
where
    F: Future<Output = Result<i32, ClientError>>,
{
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(source) => return report(&ClientError::Runtime { source }),
    };
    let result = rt.block_on(verb);
    // Nothing we spawned is worth waiting for once the verb is done (the
    // connection tasks end with their sockets).
    rt.shutdown_background();
    match result {
        Ok(code) => code,
        Err(e) => report(&e),
    }
}

/// `K=V` for `--env` and `--label`.
pub fn key_value_arg(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("{s:?} is not KEY=VALUE")),
    }
}

/// Percent-encodes one URL path segment or query value: everything but
/// RFC 3986's unreserved characters (and `/` when `keep_slash`, for the
/// file paths that are routed as a tail).
pub fn encode_url(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(char::from(b))
            }
            b'/' if keep_slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `/v1/sessions/{id}` with the id encoded (dots too: a segment `..`
/// must not read as a step up).
pub fn session_path(id: &str) -> String {
    format!("/v1/sessions/{}", encode_url(id, false).replace('.', "%2E"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_encoded() {
        assert_eq!(encode_url("a b/c?d", false), "a%20b%2Fc%3Fd");
        assert_eq!(encode_url("dir/f.txt", true), "dir/f.txt");
        assert_eq!(encode_url("ü", true), "%C3%BC");
        assert_eq!(session_path("../x"), "/v1/sessions/%2E%2E%2Fx");
    }

    #[test]
    fn key_values_need_a_key() {
        assert_eq!(
            key_value_arg("A=b=c").unwrap(),
            ("A".to_string(), "b=c".to_string())
        );
        assert_eq!(key_value_arg("A=").unwrap(), ("A".into(), String::new()));
        assert!(key_value_arg("=x").is_err());
        assert!(key_value_arg("x").is_err());
    }
}
