//! The local terminal for `runtimed shell`: raw mode while a remote
//! terminal is attached (every key goes to the remote side, which does its
//! own echo and line editing), restored on every way out: drop, a panic on
//! any thread (the hook), and the signals `shell` turns into a clean exit.
//! Also the window size, read from whichever standard stream is a tty.

use std::io::IsTerminal;
use std::os::fd::AsFd;
use std::sync::{Mutex, Once};

use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg, Termios};

#[derive(Debug, thiserror::Error)]
pub enum TerminalError {
    #[error("reading the terminal's settings")]
    Get { source: nix::Error },
    #[error("putting the terminal in raw mode")]
    Set { source: nix::Error },
}

/// The settings to restore, for the panic hook (which cannot reach the
/// guard on another thread's stack).
static SAVED: Mutex<Option<Termios>> = Mutex::new(None);
static HOOK: Once = Once::new();

fn restore_saved() {
    // A poisoned lock still holds the settings: restore them anyway.
    let saved = match SAVED.lock() {
        Ok(mut g) => g.take(),
        Err(p) => p.into_inner().take(),
    };
    if let Some(t) = saved {
        // TCSADRAIN: what we already wrote is shown under the old settings.
        let _ = tcsetattr(std::io::stdin(), SetArg::TCSADRAIN, &t);
    }
}

/// Raw mode on stdin for as long as it lives.
pub struct RawMode(());

impl RawMode {
    /// `None` when stdin is not a terminal (piped input: nothing to set).
    pub fn enter() -> Result<Option<RawMode>, TerminalError> {
        let stdin = std::io::stdin();
        if !stdin.is_terminal() {
            return Ok(None);
        }
        let saved = tcgetattr(stdin.as_fd()).map_err(|source| TerminalError::Get { source })?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        match SAVED.lock() {
            Ok(mut g) => *g = Some(saved),
            Err(p) => *p.into_inner() = Some(saved),
        }
        HOOK.call_once(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                // Before the message, so it is readable.
                restore_saved();
                previous(info);
            }));
        });
        if let Err(source) = tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw) {
            restore_saved();
            return Err(TerminalError::Set { source });
        }
        Ok(Some(RawMode(())))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        restore_saved();
    }
}

/// (cols, rows) of the first standard stream that is a terminal.
pub fn size() -> Option<(u16, u16)> {
    let probe = |fd: std::os::fd::BorrowedFd<'_>| {
        sandbox::pty::get_winsize(fd)
            .ok()
            .filter(|w| w.cols > 0 && w.rows > 0)
            .map(|w| (w.cols, w.rows))
    };
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    if stdin.is_terminal() {
        if let Some(s) = probe(stdin.as_fd()) {
            return Some(s);
        }
    }
    if stdout.is_terminal() {
        if let Some(s) = probe(stdout.as_fd()) {
            return Some(s);
        }
    }
    if stderr.is_terminal() {
        return probe(stderr.as_fd());
    }
    None
}
