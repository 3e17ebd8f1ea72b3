//! Terminals of a session: a process on a pty from the sandbox's devpts,
//! its output kept in a scrollback ring and fanned out to whoever is
//! attached. A terminal outlives the WebSocket that made it; a client that
//! reconnects gets the scrollback, then the live stream.

use std::collections::VecDeque;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use nix::errno::Errno;
use tokio::io::unix::AsyncFd;
use tokio::sync::{broadcast, watch};

use super::register;
use super::session::Spawned;

/// Bytes of output kept for a reconnecting client.
pub const SCROLLBACK_BYTES: usize = 256 * 1024;

/// Bytes read from the pty at once (the largest live chunk).
const READ_BYTES: usize = 16 * 1024;

/// Live chunks kept for attached clients that have not sent them yet: a
/// client further behind skips ahead (it can reattach for the
/// scrollback), so a terminal holds at most this many chunks of
/// [`READ_BYTES`] (512 KiB) for slow clients, however many there are.
const LIVE_CHUNKS: usize = 32;

/// One terminal.
pub struct Pty {
    pub id: String,
    pub proc_id: u64,
    pub argv: Vec<String>,
    pub created_at: i64,
    master: AsyncFd<OwnedFd>,
    /// Scrollback and the broadcast go together under this lock, so a
    /// client that attaches sees every byte exactly once.
    ring: Mutex<(VecDeque<u8>, broadcast::Sender<Bytes>)>,
    /// Exit code (128+N for a signal) once the process ended.
    exit: watch::Receiver<Option<i32>>,
    attached: AtomicUsize,
    last_activity: Mutex<Instant>,
    size: Mutex<(u16, u16)>,
}

impl Pty {
    /// Wraps a spawned terminal process and starts its reader.
    pub fn start(
        id: String,
        argv: Vec<String>,
        size: (u16, u16),
        mut proc: Spawned,
        created_at: i64,
    ) -> std::io::Result<Arc<Pty>> {
        let master = proc
            .master
            .take()
            .ok_or_else(|| std::io::Error::other("no pty master"))?;
        nix::fcntl::fcntl(
            &master,
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        )
        .map_err(|e| std::io::Error::from_raw_os_error(e as i32))?;
        let (tx, _) = broadcast::channel(LIVE_CHUNKS);
        let (exit_tx, exit) = watch::channel(None);
        let pty = Arc::new(Pty {
            id,
            proc_id: proc.id,
            argv,
            created_at,
            master: register(master)?,
            ring: Mutex::new((VecDeque::new(), tx)),
            exit,
            attached: AtomicUsize::new(0),
            last_activity: Mutex::new(Instant::now()),
            size: Mutex::new(size),
        });
        let reader = pty.clone();
        let (read_done_tx, read_done) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            reader.read_loop().await;
            let _ = read_done_tx.send(());
        });
        tokio::spawn(async move {
            let code = match proc.wait().await {
                Some(s) => s.code.unwrap_or_else(|| 128 + s.signal.unwrap_or(9)),
                None => 137,
            };
            // Output written just before the end is still in the pty: let
            // the reader drain it, but a background process that keeps the
            // terminal open must not hold back the exit message.
            let _ = tokio::time::timeout(std::time::Duration::from_millis(200), read_done).await;
            let _ = exit_tx.send(Some(code));
        });
        Ok(pty)
    }

    async fn read_loop(&self) {
        let mut buf = vec![0u8; READ_BYTES];
        loop {
            let Ok(mut guard) = self.master.readable().await else {
                return;
            };
            match guard.try_io(|fd| {
                nix::unistd::read(fd.get_ref().as_fd(), &mut buf)
                    .map_err(|e| std::io::Error::from_raw_os_error(e as i32))
            }) {
                Ok(Ok(0)) => return,
                Ok(Ok(n)) => self.push(&buf[..n]),
                // EIO: every slave end is closed (the process is gone).
                Ok(Err(_)) => return,
                Err(_would_block) => continue,
            }
        }
    }

    fn push(&self, data: &[u8]) {
        if let Ok(mut g) = self.ring.lock() {
            let (ring, tx) = &mut *g;
            ring.extend(data);
            let over = ring.len().saturating_sub(SCROLLBACK_BYTES);
            ring.drain(..over);
            let _ = tx.send(Bytes::copy_from_slice(data));
        }
    }

    /// The scrollback so far and a receiver for everything after it.
    pub fn attach(&self) -> (Vec<u8>, broadcast::Receiver<Bytes>) {
        self.touch();
        match self.ring.lock() {
            Ok(g) => {
                let (ring, tx) = &*g;
                (ring.iter().copied().collect(), tx.subscribe())
            }
            Err(p) => {
                let g = p.into_inner();
                (g.0.iter().copied().collect(), g.1.subscribe())
            }
        }
    }

    /// Counts attached clients (for the idle timeout of detached terminals).
    pub fn attached_guard(self: &Arc<Self>) -> AttachGuard {
        self.attached.fetch_add(1, Ordering::SeqCst);
        AttachGuard(self.clone())
    }

    pub fn attached(&self) -> usize {
        self.attached.load(Ordering::SeqCst)
    }

    pub fn touch(&self) {
        if let Ok(mut t) = self.last_activity.lock() {
            *t = Instant::now();
        }
    }

    pub fn idle_for(&self) -> std::time::Duration {
        self.last_activity
            .lock()
            .map(|t| t.elapsed())
            .unwrap_or_default()
    }

    pub fn exit_code(&self) -> Option<i32> {
        *self.exit.borrow()
    }

    pub fn exit_watch(&self) -> watch::Receiver<Option<i32>> {
        self.exit.clone()
    }

    pub fn size(&self) -> (u16, u16) {
        self.size.lock().map(|s| *s).unwrap_or((24, 80))
    }

    /// Keyboard input.
    pub async fn write(&self, mut data: &[u8]) -> std::io::Result<()> {
        self.touch();
        while !data.is_empty() {
            let mut guard = self.master.writable().await?;
            match guard.try_io(|fd| {
                nix::unistd::write(fd.get_ref(), data)
                    .map_err(|e| std::io::Error::from_raw_os_error(e as i32))
            }) {
                Ok(Ok(n)) => data = &data[n..],
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
        Ok(())
    }

    pub fn resize(&self, rows: u16, cols: u16) -> Result<(), Errno> {
        self.touch();
        if let Ok(mut s) = self.size.lock() {
            *s = (rows, cols);
        }
        sandbox::pty::set_winsize(
            self.master.get_ref().as_fd(),
            sandbox::pty::WinSize { rows, cols },
        )
    }

    /// Ends the terminal's process group.
    pub async fn kill<S: super::SessionHandle>(&self, sb: &Arc<S>) {
        sb.signal(self.proc_id, libc::SIGHUP).await;
        sb.signal(self.proc_id, libc::SIGKILL).await;
    }
}

/// Decrements the attached count when a WebSocket goes away.
pub struct AttachGuard(Arc<Pty>);

impl Drop for AttachGuard {
    fn drop(&mut self) {
        self.0.attached.fetch_sub(1, Ordering::SeqCst);
        self.0.touch();
    }
}
