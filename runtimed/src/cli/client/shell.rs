//! `runtimed shell ID [-- CMD...]`: an interactive terminal in a session,
//! like `docker exec -it`. The daemon's PTY WebSocket carries raw terminal
//! bytes both ways; the local terminal is put in raw mode so keys (Ctrl-C
//! too) reach the remote side, which does the echo and line editing. The
//! window size is sent at the start and again on every SIGWINCH.
//!
//! The remote terminal outlives the connection: the detach keys (Ctrl-P
//! Ctrl-Q, as in docker) leave it running, and `--attach PTY_ID` comes back
//! to it, the scrollback replayed first.

use std::collections::BTreeSet;
use std::os::fd::AsFd;
use std::time::Duration;

use api::types::PtyList;
use clap::Args;
use futures_util::{SinkExt, StreamExt};
use hyper::Method;
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::WebSocketStream;

use super::http::{Client, HttpError};
use super::terminal::{self, RawMode};
use super::{encode_url, output_error, session_path, ClientError, ConnectArgs};
use crate::EXIT_RUNTIME_FAILURE;

/// How long a polite close may take once we are done.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum ShellError {
    #[error("terminal WebSocket to {path}")]
    Connect {
        path: String,
        source: tungstenite::Error,
    },
    #[error("terminal connection")]
    Connection { source: tungstenite::Error },
    #[error("the terminal connection closed before the program ended")]
    Closed,
    #[error("reading stdin")]
    Stdin { source: std::io::Error },
    #[error("listening for {signal}")]
    Signal {
        signal: &'static str,
        source: std::io::Error,
    },
}

/// The bytes that detach, parsed from `ctrl-p,ctrl-q` (docker's syntax):
/// `ctrl-X` for a letter or one of `@[\]^_`, or a single ASCII character.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetachKeys(Vec<u8>);

fn detach_keys_arg(s: &str) -> Result<DetachKeys, String> {
    if s.is_empty() {
        return Ok(DetachKeys(Vec::new()));
    }
    let mut keys = Vec::new();
    for key in s.split(',') {
        let k = key.trim();
        let byte = match k.strip_prefix("ctrl-") {
            Some(c) if c.len() == 1 => match c.as_bytes()[0].to_ascii_lowercase() {
                c @ b'a'..=b'z' => c - b'a' + 1,
                b'@' => 0,
                c @ (b'[' | b'\\' | b']' | b'^' | b'_') => c - b'@',
                _ => return Err(format!("{k:?}: ctrl- takes a letter or one of @[\\]^_")),
            },
            None if k.len() == 1 && k.is_ascii() => k.as_bytes()[0],
            _ => return Err(format!("{k:?} is not a key (e.g. ctrl-p, ctrl-q, a)")),
        };
        keys.push(byte);
    }
    Ok(DetachKeys(keys))
}

#[derive(Args, Debug)]
pub struct ShellArgs {
    #[command(flatten)]
    conn: ConnectArgs,
    /// Reattach to this terminal of the session (see `runtimed session ptys ID`).
    #[arg(long, value_name = "PTY_ID", conflicts_with = "command")]
    attach: Option<String>,
    /// Keys that detach, leaving the program running ("" turns detaching off).
    #[arg(
        long,
        value_name = "KEYS",
        default_value = "ctrl-p,ctrl-q",
        value_parser = detach_keys_arg
    )]
    detach_keys: DetachKeys,
    /// Session id.
    id: String,
    /// The program and its arguments (default: a login shell).
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    command: Vec<String>,
}

pub fn main(args: ShellArgs) -> i32 {
    super::run(shell(args))
}

/// How a terminal connection ended.
#[derive(Debug, PartialEq, Eq)]
enum Ended {
    /// The program ended with this status.
    Exit(i32),
    Detached,
    /// We were told to stop (SIGTERM, SIGHUP, ...).
    Signal(i32),
    /// The daemon hung up without an exit message.
    Closed,
}

/// Server → client control message.
#[derive(serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Control {
    Exit { code: i32 },
}

fn resize_message((cols, rows): (u16, u16)) -> Message {
    let text = serde_json::json!({"type": "resize", "cols": cols, "rows": rows}).to_string();
    Message::Text(text.into())
}

/// The ids of the session's terminals (to name the one we opened when
/// detaching; the WebSocket does not say).
async fn pty_ids(client: &Client, id: &str) -> Result<BTreeSet<String>, HttpError> {
    let path = format!("{}/ptys", session_path(id));
    let list: PtyList = client.json(Method::GET, &path, None).await?;
    Ok(list.ptys.into_iter().map(|p| p.id).collect())
}

/// The path that opens a new terminal: the size and argv in the query.
fn open_path(id: &str, size: Option<(u16, u16)>, argv: &[String]) -> String {
    let mut query = Vec::new();
    if let Some((cols, rows)) = size {
        query.push(format!("cols={}", cols.clamp(1, 1000)));
        query.push(format!("rows={}", rows.clamp(1, 1000)));
    }
    query.extend(
        argv.iter()
            .map(|a| format!("argv={}", encode_url(a, false))),
    );
    match query.is_empty() {
        true => format!("{}/pty", session_path(id)),
        false => format!("{}/pty?{}", session_path(id), query.join("&")),
    }
}

async fn shell(a: ShellArgs) -> Result<i32, ClientError> {
    let client = a.conn.client();
    let size = terminal::size();
    let (path, before) = match &a.attach {
        Some(pty) => (
            format!("{}/ptys/{}", session_path(&a.id), encode_url(pty, false)),
            None,
        ),
        // A failure here is reported by the open itself.
        None => (
            open_path(&a.id, size, &a.command),
            pty_ids(&client, &a.id).await.ok(),
        ),
    };
    let mut ws = open(&client, &path).await?;
    if a.attach.is_some() {
        // The terminal keeps the size its last client gave it: ours now.
        if let Some(s) = size {
            send(&mut ws, resize_message(s)).await?;
        }
    }
    let raw = RawMode::enter()?;
    let ended = bridge(&mut ws, &a.detach_keys, size).await;
    // Back to cooked mode before anything is printed.
    drop(raw);
    match ended? {
        Ended::Exit(code) if (0..=255).contains(&code) => Ok(code),
        Ended::Exit(_) => Ok(EXIT_RUNTIME_FAILURE),
        Ended::Signal(sig) => Ok(128 + sig),
        Ended::Closed => Err(ShellError::Closed.into()),
        Ended::Detached => {
            let pty = match (&a.attach, before) {
                (Some(p), _) => Some(p.clone()),
                (None, Some(before)) => pty_ids(&client, &a.id).await.ok().and_then(|after| {
                    let mut new = after.difference(&before);
                    match (new.next(), new.next()) {
                        (Some(p), None) => Some(p.clone()),
                        _ => None,
                    }
                }),
                (None, None) => None,
            };
            match pty {
                Some(p) => eprintln!(
                    "runtimed: detached from terminal {p}; reattach with `runtimed shell --attach {p} {}`",
                    a.id
                ),
                None => eprintln!(
                    "runtimed: detached; `runtimed session ptys {}` lists its terminals",
                    a.id
                ),
            }
            Ok(0)
        }
    }
}

/// The WebSocket handshake over the Unix socket; a refusal carries the
/// daemon's `{code, message}` like any other request.
async fn open(
    client: &Client,
    path: &str,
) -> Result<WebSocketStream<tokio::net::UnixStream>, ClientError> {
    let connect_error = |source| ShellError::Connect {
        path: path.to_string(),
        source,
    };
    let request = format!("ws://localhost{path}")
        .into_client_request()
        .map_err(connect_error)?;
    let stream = client.connect().await?;
    match tokio_tungstenite::client_async(request, stream).await {
        Ok((ws, _)) => Ok(ws),
        Err(tungstenite::Error::Http(resp)) => {
            let body = resp.body().as_deref().unwrap_or_default();
            Err(HttpError::from_response(resp.status(), body).into())
        }
        Err(e) => Err(connect_error(e).into()),
    }
}

async fn send<S>(ws: &mut WebSocketStream<S>, msg: Message) -> Result<(), ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    ws.send(msg)
        .await
        .map_err(|source| ShellError::Connection { source }.into())
}

/// Closes politely, but never waits long for it.
async fn close<S>(ws: &mut WebSocketStream<S>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let _ = tokio::time::timeout(CLOSE_GRACE, ws.close(None)).await;
}

/// Moves bytes between the WebSocket and our stdio until the program
/// ends, we detach, or a signal says stop.
///
/// `size` is the terminal size the remote side last got from us. Keys are
/// preceded by a resize whenever our size changed since: SIGWINCH arrives
/// on its own schedule, and a program must not see keys typed after a
/// resize before the resize itself.
async fn bridge<S>(
    ws: &mut WebSocketStream<S>,
    keys: &DetachKeys,
    mut size: Option<(u16, u16)>,
) -> Result<Ended, ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let listen = |kind: SignalKind, name: &'static str| {
        signal(kind).map_err(|source| ShellError::Signal {
            signal: name,
            source,
        })
    };
    let mut winch = listen(SignalKind::window_change(), "SIGWINCH")?;
    // Handled so that the terminal is restored on the way out (their
    // default action would end us in raw mode).
    let mut term = listen(SignalKind::terminate(), "SIGTERM")?;
    let mut hup = listen(SignalKind::hangup(), "SIGHUP")?;
    let mut int = listen(SignalKind::interrupt(), "SIGINT")?;
    let mut quit = listen(SignalKind::quit(), "SIGQUIT")?;
    let mut stdin = spawn_stdin_reader();
    let mut stdin_open = true;
    let mut scanner = DetachScanner::new(keys);
    let mut out = tokio::io::stdout();
    let stop = loop {
        tokio::select! {
            msg = ws.next() => match msg {
                Some(Ok(Message::Binary(b))) => {
                    out.write_all(&b).await.map_err(output_error("stdout"))?;
                    out.flush().await.map_err(output_error("stdout"))?;
                }
                Some(Ok(Message::Text(t))) => {
                    if let Ok(Control::Exit { code }) = serde_json::from_str(t.as_str()) {
                        break Ended::Exit(code);
                    }
                }
                Some(Ok(Message::Close(_))) | None => return Ok(Ended::Closed),
                // Pings are answered by tungstenite itself.
                Some(Ok(_)) => {}
                Some(Err(source)) => return Err(ShellError::Connection { source }.into()),
            },
            chunk = stdin.recv(), if stdin_open => match chunk {
                Some(Ok(bytes)) => {
                    let (forward, detach) = scanner.feed(&bytes);
                    send_size_if_changed(ws, &mut size).await?;
                    if !forward.is_empty() {
                        send(ws, Message::Binary(forward.into())).await?;
                    }
                    if detach {
                        break Ended::Detached;
                    }
                }
                Some(Err(source)) => return Err(ShellError::Stdin { source }.into()),
                // EOF (piped input ran out): keep showing output until the
                // program ends; closing would only detach.
                None => stdin_open = false,
            },
            _ = winch.recv() => {
                send_size_if_changed(ws, &mut size).await?;
            }
            _ = term.recv() => break Ended::Signal(libc::SIGTERM),
            _ = hup.recv() => break Ended::Signal(libc::SIGHUP),
            _ = int.recv() => break Ended::Signal(libc::SIGINT),
            _ = quit.recv() => break Ended::Signal(libc::SIGQUIT),
        }
    };
    close(ws).await;
    Ok(stop)
}

/// Sends our terminal size if it differs from `last` (what the remote side
/// has), and remembers it.
async fn send_size_if_changed<S>(
    ws: &mut WebSocketStream<S>,
    last: &mut Option<(u16, u16)>,
) -> Result<(), ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match terminal::size() {
        Some(now) if Some(now) != *last => {
            *last = Some(now);
            send(ws, resize_message(now)).await
        }
        _ => Ok(()),
    }
}

/// Reads stdin on a plain thread (a blocking read cannot be cancelled, so
/// it polls and stops once the receiver is gone). EOF closes the channel.
fn spawn_stdin_reader() -> mpsc::Receiver<std::io::Result<Vec<u8>>> {
    let (tx, rx) = mpsc::channel(16);
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let fd = stdin.as_fd();
        let mut buf = vec![0u8; 16 * 1024];
        while !tx.is_closed() {
            let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
            match poll(&mut fds, 100u16) {
                Ok(0) | Err(Errno::EINTR) => continue,
                Ok(_) => {}
                Err(e) => {
                    let _ = tx.blocking_send(Err(e.into()));
                    return;
                }
            }
            match nix::unistd::read(fd, &mut buf) {
                // EBADF: no stdin at all, the same as an empty one.
                Ok(0) | Err(Errno::EBADF) => return,
                Ok(n) => {
                    if tx.blocking_send(Ok(buf[..n].to_vec())).is_err() {
                        return;
                    }
                }
                Err(Errno::EINTR | Errno::EAGAIN) => {}
                Err(e) => {
                    let _ = tx.blocking_send(Err(e.into()));
                    return;
                }
            }
        }
    });
    rx
}

/// Finds the detach sequence in the key stream. Keys that could start it
/// are held back until the next key shows whether they do (as docker does).
struct DetachScanner {
    keys: Vec<u8>,
    matched: usize,
}

impl DetachScanner {
    fn new(keys: &DetachKeys) -> DetachScanner {
        DetachScanner {
            keys: keys.0.clone(),
            matched: 0,
        }
    }

    /// The bytes to forward, and whether the sequence is complete.
    fn feed(&mut self, input: &[u8]) -> (Vec<u8>, bool) {
        if self.keys.is_empty() {
            return (input.to_vec(), false);
        }
        let mut out = Vec::with_capacity(input.len());
        for &b in input {
            if self.matched > 0 && b != self.keys[self.matched] {
                out.extend_from_slice(&self.keys[..self.matched]);
                self.matched = 0;
            }
            if b == self.keys[self.matched] {
                self.matched += 1;
                if self.matched == self.keys.len() {
                    self.matched = 0;
                    return (out, true);
                }
            } else {
                out.push(b);
            }
        }
        (out, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys_parse() {
        assert_eq!(detach_keys_arg("ctrl-p,ctrl-q").unwrap().0, [0x10, 0x11]);
        assert_eq!(
            detach_keys_arg("ctrl-@,ctrl-[,x").unwrap().0,
            [0, 0x1b, b'x']
        );
        assert_eq!(detach_keys_arg("").unwrap().0, Vec::<u8>::new());
        for bad in ["ctrl-", "ctrl-1", "ab", "ü", "ctrl-p,,"] {
            assert!(detach_keys_arg(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn detach_sequence_is_found_across_reads() {
        let mut s = DetachScanner::new(&DetachKeys(vec![0x10, 0x11]));
        assert_eq!(s.feed(b"ls\r"), (b"ls\r".to_vec(), false));
        // Ctrl-P alone is held back...
        assert_eq!(s.feed(&[0x10]), (vec![], false));
        // ...and sent with the next key when that is not Ctrl-Q.
        assert_eq!(s.feed(b"a"), (vec![0x10, b'a'], false));
        assert_eq!(s.feed(&[0x10, 0x10]), (vec![0x10], false));
        assert_eq!(s.feed(&[0x11, b'z']), (vec![], true));
    }

    #[test]
    fn no_detach_keys_forward_everything() {
        let mut s = DetachScanner::new(&DetachKeys(vec![]));
        assert_eq!(s.feed(&[0x10, 0x11]), (vec![0x10, 0x11], false));
    }

    #[test]
    fn open_paths_carry_size_and_argv() {
        let argv = ["sh".to_string(), "-c".into(), "echo a&b".into()];
        assert_eq!(
            open_path("s1", Some((132, 50)), &argv),
            "/v1/sessions/s1/pty?cols=132&rows=50&argv=sh&argv=-c&argv=echo%20a%26b"
        );
        assert_eq!(open_path("s1", None, &[]), "/v1/sessions/s1/pty");
    }
}
