//! Joining existing namespaces by path (`linux.namespaces[].path`), as an
//! engine asks for a pod's shared network, IPC and UTS namespaces.
//!
//! The path is the operator's (the engine is trusted, docs/security.md),
//! but it is still checked to name a namespace of the type it is listed
//! under: a wrong file would otherwise be a confusing `setns` error, or
//! worse, a sandbox silently left in the host's namespace.
//!
//! The parent joins them, not PID 1: PID 1 lives in a new user namespace
//! and holds no capability over a namespace owned by the initial one,
//! which `setns` requires (setns(2)). The single-threaded parent enters
//! each joined namespace just for the clone (the child is born in it) and
//! returns to its own right after, as it does for a network namespace made
//! ahead ([`crate::netns`]). Joining a user, pid, mount or cgroup namespace
//! is refused by validation: ids come from the uid pool, and the others
//! are made fresh for every sandbox.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::sched::{setns, CloneFlags};
use nix::sys::stat::Mode;
use oci_spec::runtime::LinuxNamespaceType;

/// The namespace types a sandbox may join by path.
pub const JOINABLE: [LinuxNamespaceType; 3] = [
    LinuxNamespaceType::Network,
    LinuxNamespaceType::Ipc,
    LinuxNamespaceType::Uts,
];

/// Failures of joining a namespace by path.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("open {path}: {errno}")]
    Open { path: PathBuf, errno: Errno },
    #[error("{path} is not a {typ} namespace")]
    WrongType {
        path: PathBuf,
        typ: LinuxNamespaceType,
    },
    #[error("enter the {typ} namespace {path}: {errno}")]
    Enter {
        path: PathBuf,
        typ: LinuxNamespaceType,
        errno: Errno,
    },
    #[error("return to our own {typ} namespace: {errno}")]
    Return {
        typ: LinuxNamespaceType,
        errno: Errno,
    },
}

/// The `CLONE_NEW*` flag of a joinable type.
pub fn clone_flag(typ: LinuxNamespaceType) -> CloneFlags {
    match typ {
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Time => CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
    }
}

/// `/proc/thread-self/ns/<name>` of a joinable type.
fn proc_name(typ: LinuxNamespaceType) -> &'static str {
    match typ {
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Time => "time",
    }
}

/// Opens `path` and checks that it is a namespace of type `typ`.
pub fn open_checked(typ: LinuxNamespaceType, path: &Path) -> Result<OwnedFd, JoinError> {
    let fd = open(path, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty()).map_err(|errno| {
        JoinError::Open {
            path: path.to_path_buf(),
            errno,
        }
    })?;
    match crate::sys::namespace_type(fd.as_fd()) {
        Ok(t) if t == clone_flag(typ).bits() => Ok(fd),
        _ => Err(JoinError::WrongType {
            path: path.to_path_buf(),
            typ,
        }),
    }
}

/// The namespaces a thread left for a clone ([`enter_all`]).
#[derive(Debug, Default)]
pub struct Homes(Vec<(LinuxNamespaceType, OwnedFd)>);

impl Homes {
    /// Moves the calling thread back into every namespace it left.
    pub fn back(&self) -> Result<(), JoinError> {
        for (typ, fd) in &self.0 {
            setns(fd.as_fd(), clone_flag(*typ))
                .map_err(|errno| JoinError::Return { typ: *typ, errno })?;
        }
        Ok(())
    }
}

/// Moves the calling thread into each of `joins` (checked again: a path
/// may have changed since validation); the result moves it back. On an
/// error the thread is back already.
pub fn enter_all(joins: &[(LinuxNamespaceType, PathBuf)]) -> Result<Homes, JoinError> {
    let mut homes = Homes::default();
    for (typ, path) in joins {
        let entered = (|| {
            let target = open_checked(*typ, path)?;
            let here = Path::new("/proc/thread-self/ns").join(proc_name(*typ));
            let home = open(&here, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
                .map_err(|errno| JoinError::Open { path: here, errno })?;
            setns(target.as_fd(), clone_flag(*typ)).map_err(|errno| JoinError::Enter {
                path: path.clone(),
                typ: *typ,
                errno,
            })?;
            Ok(home)
        })();
        match entered {
            Ok(home) => homes.0.push((*typ, home)),
            Err(e) => {
                let _ = homes.back();
                return Err(e);
            }
        }
    }
    Ok(homes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_must_name_a_namespace_of_their_type() {
        // Our own namespaces: readable by their owner, no root needed.
        let net = Path::new("/proc/self/ns/net");
        let ipc = Path::new("/proc/self/ns/ipc");
        assert!(open_checked(LinuxNamespaceType::Network, net).is_ok());
        assert!(open_checked(LinuxNamespaceType::Ipc, ipc).is_ok());
        for (typ, path) in [
            (LinuxNamespaceType::Network, ipc),
            (LinuxNamespaceType::Uts, net),
            (LinuxNamespaceType::Network, Path::new("/proc/self/status")),
        ] {
            let e = open_checked(typ, path).unwrap_err();
            assert!(matches!(e, JoinError::WrongType { .. }), "{e}");
        }
        let e =
            open_checked(LinuxNamespaceType::Network, Path::new("/nonexistent/ns")).unwrap_err();
        assert!(
            matches!(
                e,
                JoinError::Open {
                    errno: Errno::ENOENT,
                    ..
                }
            ),
            "{e}"
        );
    }
}
