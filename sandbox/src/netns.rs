//! Empty network namespaces made ahead and reused by one-shot runs.
//!
//! A sandbox normally gets a new network namespace from its clone. Making
//! one costs the kernel ~0.3 ms of CPU (sysctl tables, `lo`), and freeing
//! one more, later, in a kworker (`cleanup_net`, RCU grace periods) that
//! serialises with every other namespace being made or freed: at a judge's
//! rate of hundreds of short runs a second that is a tenth of the machine.
//! A namespace made here is owned by the initial user namespace, so the
//! sandbox in it (its own user namespace, no capabilities) can change
//! nothing in it: no interface, address, route, sysctl or firewall rule.
//! All a program can leave behind are sockets (a TCP connection in
//! TIME_WAIT, a unix socket kept alive in flight), which [`is_pristine`]
//! finds; a namespace that is not pristine is dropped, never reused.
//!
//! Both functions switch the calling thread's network namespace and switch
//! it back before they return: call them from a single-threaded helper or
//! from a thread that does nothing else meanwhile.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::stat::Mode;

use crate::sys;

/// The calling thread's network namespace.
fn current() -> Result<OwnedFd, Errno> {
    open(
        "/proc/thread-self/ns/net",
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

/// The network namespace a thread came from ([`enter`]).
#[derive(Debug)]
pub struct Home(OwnedFd);

impl Home {
    /// Moves the calling thread back.
    pub fn back(&self) -> Result<(), Errno> {
        setns(self.0.as_fd(), CloneFlags::CLONE_NEWNET)
    }
}

/// Moves the calling thread into the network namespace `ns`; the result
/// moves it back.
pub fn enter(ns: BorrowedFd<'_>) -> Result<Home, Errno> {
    let home = Home(current()?);
    setns(ns, CloneFlags::CLONE_NEWNET)?;
    Ok(home)
}

/// Runs `f` with the calling thread in the network namespace `ns`, then
/// moves the thread back (an error of that comes before `f`'s result).
fn inside<T>(ns: BorrowedFd<'_>, f: impl FnOnce() -> Result<T, Errno>) -> Result<T, Errno> {
    let home = enter(ns)?;
    let result = f();
    home.back()?;
    result
}

/// A new network namespace with `lo` up and nothing else, as a sandbox's
/// own clone would have made it; the fd keeps it alive.
pub fn create() -> Result<OwnedFd, Errno> {
    let home = current()?;
    unshare(CloneFlags::CLONE_NEWNET)?;
    let made = (|| {
        sys::loopback_up()?;
        current()
    })();
    setns(home.as_fd(), CloneFlags::CLONE_NEWNET)?;
    made
}

/// Whether the namespace `ns` holds no socket and no interface but `lo`:
/// what [`create`] made, so that a run in it cannot see a trace of an
/// earlier one. Call it when no process is left in the namespace.
///
/// The counts come from `/proc/net/sockstat`, which keeps them per
/// namespace: `sockets: used` counts every user socket of any family (a
/// closed TCP socket still sending, a Unix socket alive in flight), `tw` the
/// TCP connections in TIME_WAIT, which are not sockets any more. (The
/// socket tables, `/proc/net/tcp` and the like, walk the host's whole
/// connection hash to filter one namespace's out: ~5 ms a read here.)
pub fn is_pristine(ns: BorrowedFd<'_>) -> Result<bool, Errno> {
    let read = |name: &str| {
        std::fs::read_to_string(format!("/proc/thread-self/net/{name}"))
            .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))
    };
    inside(ns, || {
        let stat = read("sockstat")?;
        let field = |line: &str, key: &str| -> Option<u64> {
            let rest = stat.lines().find_map(|l| l.strip_prefix(line))?;
            let mut words = rest.split_whitespace();
            while let Some(w) = words.next() {
                if w == key {
                    return words.next()?.parse().ok();
                }
            }
            None
        };
        if field("sockets:", "used") != Some(0) || field("TCP:", "tw") != Some(0) {
            return Ok(false);
        }
        // Two header lines, then one line per interface.
        let dev = read("dev")?;
        let mut ifaces = dev.lines().skip(2).filter_map(|l| l.split(':').next());
        Ok(ifaces.next().map(str::trim) == Some("lo") && ifaces.next().is_none())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
    use std::os::unix::fs::MetadataExt;

    /// Fails the test unless it runs as root (the tests that call this are
    /// `#[ignore = "privileged: ..."]`; they never return early and pass).
    fn require_root() {
        assert!(
            nix::unistd::Uid::effective().is_root(),
            "network namespaces need root (run as root with `--include-ignored`)"
        );
    }

    fn io_errno(e: std::io::Error) -> Errno {
        Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
    }

    fn inode(fd: BorrowedFd<'_>) -> u64 {
        nix::sys::stat::fstat(fd).unwrap().st_ino
    }

    #[test]
    #[ignore = "privileged: network namespaces need root"]
    fn a_new_namespace_is_pristine_until_a_socket_lives_in_it() {
        require_root();
        // A thread of its own: the test harness runs tests on shared threads.
        std::thread::spawn(|| {
            let home = std::fs::metadata("/proc/thread-self/ns/net").unwrap().ino();
            let ns = create().unwrap();
            assert_ne!(inode(ns.as_fd()), home, "create() made no new namespace");
            assert_eq!(
                std::fs::metadata("/proc/thread-self/ns/net").unwrap().ino(),
                home,
                "create() did not move the thread back"
            );
            assert!(is_pristine(ns.as_fd()).unwrap());
            // lo is up: a socket bound to 127.0.0.1 in it works.
            let listener = inside(ns.as_fd(), || {
                std::net::TcpListener::bind("127.0.0.1:0").map_err(io_errno)
            })
            .unwrap();
            assert!(
                !is_pristine(ns.as_fd()).unwrap(),
                "a TCP listener went unseen"
            );
            // A connection closed from our side stays in TIME_WAIT (60 s),
            // with no socket left: the namespace is not pristine any more.
            inside(ns.as_fd(), || {
                let addr = listener.local_addr().map_err(io_errno)?;
                let ours = std::net::TcpStream::connect(addr).map_err(io_errno)?;
                let (theirs, _) = listener.accept().map_err(io_errno)?;
                drop(ours);
                std::thread::sleep(std::time::Duration::from_millis(50));
                drop(theirs);
                Ok(())
            })
            .unwrap();
            drop(listener);
            std::thread::sleep(std::time::Duration::from_millis(50));
            assert!(!is_pristine(ns.as_fd()).unwrap(), "a TIME_WAIT went unseen");
            // A fresh namespace for the rest.
            let ns = create().unwrap();
            // An abstract unix socket (what a program could leave for the
            // next one to find) is seen too.
            let unix = inside(ns.as_fd(), || {
                let s = socket(
                    AddressFamily::Unix,
                    SockType::Stream,
                    SockFlag::SOCK_CLOEXEC,
                    None,
                )?;
                let addr = nix::sys::socket::UnixAddr::new_abstract(b"rtd-netns-test")?;
                nix::sys::socket::bind(std::os::fd::AsRawFd::as_raw_fd(&s), &addr)?;
                Ok(s)
            })
            .unwrap();
            assert!(
                !is_pristine(ns.as_fd()).unwrap(),
                "an abstract socket went unseen"
            );
            drop(unix);
            assert!(is_pristine(ns.as_fd()).unwrap());
            assert_eq!(
                std::fs::metadata("/proc/thread-self/ns/net").unwrap().ino(),
                home,
                "is_pristine() did not move the thread back"
            );
        })
        .join()
        .unwrap();
    }
}
