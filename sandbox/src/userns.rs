//! User namespace ids: the host uid/gid pool (each live sandbox leases a
//! disjoint range, so root inside is an unprivileged, unique uid outside)
//! and writing the id maps of a new child.
//!
//! Leases are `flock`s on one file per slot under the run directory: the
//! kernel drops them when the holder dies, so a crashed runtime leaks no
//! slot, and separate `runtimed run` processes coordinate without a daemon.
//!
//! An OCI container outlives the `create` that leased its range: its lease
//! is persisted ([`UidLease::persist`]) by writing an owner path (the
//! container's state directory) into the slot's file. `acquire` skips a
//! slot whose owner path exists and takes over one whose owner is gone (a
//! container whose state was removed without `delete`); `delete` clears it
//! ([`release_persisted`]).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use crate::options::UidPoolConfig;

#[derive(Debug, thiserror::Error)]
pub enum UsernsError {
    #[error("uid pool: cannot create lock directory {path}: {source}")]
    LockDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("uid pool: all {slots} slots are in use")]
    Exhausted { slots: u32 },
    #[error("uid pool: invalid configuration: {0}")]
    Config(String),
    #[error("creating an id-mapping user namespace: {what}: {source}")]
    Helper { what: &'static str, source: Errno },
    #[error("uid pool: cannot keep the range {host_base} leased: {source}")]
    Persist {
        host_base: u32,
        source: std::io::Error,
    },
    #[error("writing {path}: {source}")]
    WriteMap {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A leased range of host ids; released when dropped (or when the process
/// dies).
#[derive(Debug)]
pub struct UidLease {
    pub slot: u32,
    /// Host uid (and gid) that id 0 inside maps to.
    pub host_base: u32,
    pub size: u32,
    /// `None` for [`UidLease::host_ids`], which holds no slot.
    _lock: Option<Flock<File>>,
}

impl UidLease {
    /// No range of its own: ids inside are the host's (the map is the
    /// identity over all of them). For OCI containers whose runtime class
    /// turned the extra uid range off (`ContainerMode::host_ids`), as
    /// runc runs them; capabilities still hold only inside the namespace.
    pub fn host_ids() -> UidLease {
        UidLease {
            slot: 0,
            host_base: 0,
            size: u32::MAX,
            _lock: None,
        }
    }

    /// Keeps this range leased after the holder exits, for as long as
    /// `owner` exists (see the module doc). Written while we hold the
    /// slot's lock, so no acquirer sees the slot free meanwhile.
    pub fn persist(&self, owner: &Path) -> Result<(), UsernsError> {
        use std::os::unix::ffi::OsStrExt;
        let Some(lock) = &self._lock else {
            return Ok(());
        };
        let mut f: &File = lock;
        f.set_len(0)
            .and_then(|()| f.write_all(owner.as_os_str().as_bytes()))
            .map_err(|source| UsernsError::Persist {
                host_base: self.host_base,
                source,
            })
    }
}

/// What a slot's file says: `None` when the slot is free (empty, or its
/// persisted owner is gone).
fn persisted_owner(file: &File) -> Option<PathBuf> {
    use std::io::Read;
    use std::os::unix::ffi::OsStringExt;
    let mut bytes = Vec::new();
    let mut f = file;
    f.read_to_end(&mut bytes).ok()?;
    if bytes.is_empty() {
        return None;
    }
    let owner = PathBuf::from(std::ffi::OsString::from_vec(bytes));
    owner.exists().then_some(owner)
}

/// Releases every persisted lease `owner` holds, whatever its range (a
/// container whose `create` died before recording its range). One read
/// per slot file: for the rare cleanup path only.
pub fn release_owned_by(lock_dir: &Path, owner: &Path) -> Result<(), UsernsError> {
    use std::os::unix::ffi::OsStrExt;
    let entries = match std::fs::read_dir(lock_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(UsernsError::LockDir {
                path: lock_dir.to_path_buf(),
                source,
            })
        }
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(base) = name
            .to_str()
            .and_then(|n| n.strip_prefix("range-"))
            .and_then(|b| b.parse::<u32>().ok())
        else {
            continue;
        };
        if std::fs::read(entry.path()).is_ok_and(|b| b == owner.as_os_str().as_bytes()) {
            release_persisted(lock_dir, base, owner)?;
        }
    }
    Ok(())
}

/// Releases the persisted lease of the range starting at `host_base` if
/// `owner` still holds it (a retried `delete` finds it free already).
pub fn release_persisted(lock_dir: &Path, host_base: u32, owner: &Path) -> Result<(), UsernsError> {
    use std::io::Read;
    use std::os::unix::ffi::OsStrExt;
    let path = lock_dir.join(format!("range-{host_base}"));
    let file = match OpenOptions::new().read(true).write(true).open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(UsernsError::LockDir { path, source }),
    };
    // Blocking: a holder is an `acquire` looking at the slot for a moment.
    let lock =
        Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| UsernsError::LockDir {
            path: path.clone(),
            source: std::io::Error::from(e),
        })?;
    let mut bytes = Vec::new();
    let mut f: &File = &lock;
    f.read_to_end(&mut bytes)
        .map_err(|source| UsernsError::LockDir {
            path: path.clone(),
            source,
        })?;
    if bytes == owner.as_os_str().as_bytes() {
        f.set_len(0)
            .map_err(|source| UsernsError::LockDir { path, source })?;
    }
    Ok(())
}

impl UidPoolConfig {
    fn check(&self) -> Result<(), UsernsError> {
        let end = (self.base as u64) + (self.slot_size as u64) * (self.slots as u64);
        if self.slot_size == 0 || self.slots == 0 {
            return Err(UsernsError::Config(
                "slot size and slot count must be positive".into(),
            ));
        }
        if self.base == 0 || end > u32::MAX as u64 {
            return Err(UsernsError::Config(format!(
                "range {}..{end} must start above 0 and end below 2^32",
                self.base
            )));
        }
        Ok(())
    }

    /// Leases a free slot. Starts at a slot derived from the pid so that
    /// concurrent callers rarely contend on the same lock file.
    pub fn acquire(&self, lock_dir: &Path) -> Result<UidLease, UsernsError> {
        self.check()?;
        std::fs::create_dir_all(lock_dir).map_err(|source| UsernsError::LockDir {
            path: lock_dir.to_path_buf(),
            source,
        })?;
        let start = (std::process::id().wrapping_mul(2_654_435_761)) % self.slots;
        for i in 0..self.slots {
            let slot = (start + i) % self.slots;
            // Named by the range's first host id: pools with other bases
            // (another configuration, a test) neither block this one nor
            // share a range with it.
            let path = lock_dir.join(format!("range-{}", self.base + slot * self.slot_size));
            let file = match OpenOptions::new()
                .create(true)
                .truncate(false)
                .read(true)
                .write(true)
                .mode(0o600)
                .open(&path)
            {
                Ok(f) => f,
                Err(source) => return Err(UsernsError::LockDir { path, source }),
            };
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                // A container's persisted lease whose owner exists.
                Ok(lock) if persisted_owner(&lock).is_some() => continue,
                Ok(lock) => {
                    // A stale persisted owner, if any, goes with the takeover.
                    if lock.metadata().is_ok_and(|m| m.len() > 0) {
                        let _ = lock.set_len(0);
                    }
                    return Ok(UidLease {
                        slot,
                        host_base: self.base + slot * self.slot_size,
                        size: self.slot_size,
                        _lock: Some(lock),
                    });
                }
                Err((_, Errno::EWOULDBLOCK)) => continue,
                Err((_, e)) => {
                    return Err(UsernsError::LockDir {
                        path,
                        source: std::io::Error::from(e),
                    })
                }
            }
        }
        Err(UsernsError::Exhausted { slots: self.slots })
    }
}

/// Writes `gid_map` then `uid_map` of `pid`: ids 0..size inside map to
/// lease.host_base.. outside. Written by the parent (root in the initial
/// namespace), so setgroups stays allowed inside (the program's
/// supplementary groups are set explicitly).
pub fn write_id_maps(pid: i32, lease: &UidLease) -> Result<(), UsernsError> {
    let line = format!("0 {} {}\n", lease.host_base, lease.size);
    for name in ["gid_map", "uid_map"] {
        let path = PathBuf::from(format!("/proc/{pid}/{name}"));
        let mut f = OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|source| UsernsError::WriteMap {
                path: path.clone(),
                source,
            })?;
        f.write_all(line.as_bytes())
            .map_err(|source| UsernsError::WriteMap { path, source })?;
    }
    Ok(())
}

/// A user namespace with exactly these map lines (`inside outside count`),
/// held only by the returned fd: the id mapping of an idmapped mount. A
/// short-lived child is born in it (clone3 CLONE_NEWUSER), we write its maps,
/// keep a reference to the namespace and let the child exit.
///
/// Like sandbox creation, this clones: the token proves the process is
/// single-threaded.
pub fn mapping_userns(
    single: &crate::helper::SingleThreaded,
    uid_line: &str,
    gid_line: &str,
) -> Result<std::os::fd::OwnedFd, UsernsError> {
    use nix::fcntl::OFlag;
    let helper = |what| move |source| UsernsError::Helper { what, source };
    let (done_r, done_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(helper("pipe"))?;
    let pid = match crate::sys::clone_namespaces(single, libc::CLONE_NEWUSER as u64, false, None)
        .map_err(helper("clone3"))?
    {
        crate::sys::CloneResult::Child(_) => {
            drop(done_w);
            let mut b = [0u8; 1];
            let _ = nix::unistd::read(&done_r, &mut b);
            crate::sys::exit_now(0)
        }
        crate::sys::CloneResult::Parent { pid, .. } => pid,
    };
    drop(done_r);
    let result = (|| {
        for (name, line) in [("gid_map", gid_line), ("uid_map", uid_line)] {
            let path = PathBuf::from(format!("/proc/{pid}/{name}"));
            std::fs::write(&path, line).map_err(|source| UsernsError::WriteMap { path, source })?;
        }
        nix::fcntl::open(
            format!("/proc/{pid}/ns/user").as_str(),
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(helper("open its ns/user"))
    })();
    drop(done_w);
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_are_disjoint_and_released() {
        let dir =
            std::env::temp_dir().join(format!("runtimed-uidpool-test-{}", std::process::id()));
        let pool = UidPoolConfig {
            base: 1_000_000,
            slot_size: 65536,
            slots: 3,
        };
        let a = pool.acquire(&dir).unwrap();
        let b = pool.acquire(&dir).unwrap();
        let c = pool.acquire(&dir).unwrap();
        let mut bases = vec![a.host_base, b.host_base, c.host_base];
        bases.sort();
        bases.dedup();
        assert_eq!(bases.len(), 3);
        assert!(matches!(
            pool.acquire(&dir),
            Err(UsernsError::Exhausted { slots: 3 })
        ));
        let freed = b.host_base;
        drop(b);
        let d = pool.acquire(&dir).unwrap();
        assert_eq!(d.host_base, freed);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A persisted lease (an OCI container's, held by its state dir)
    /// outlives the lease value and its flock; it is skipped while the
    /// owner exists, taken over once the owner is gone, and freed by
    /// `release_persisted` only for its own owner.
    #[test]
    fn persisted_leases_survive_their_holder_until_released_or_stale() {
        let dir =
            std::env::temp_dir().join(format!("runtimed-uidpool-persist-{}", std::process::id()));
        let owner = dir.join("container-state");
        std::fs::create_dir_all(&owner).unwrap();
        let pool = UidPoolConfig {
            base: 2_000_000,
            slot_size: 65536,
            slots: 1,
        };
        let a = pool.acquire(&dir).unwrap();
        a.persist(&owner).unwrap();
        let base = a.host_base;
        drop(a);
        // The flock is gone, the lease is not.
        assert!(matches!(
            pool.acquire(&dir),
            Err(UsernsError::Exhausted { slots: 1 })
        ));
        // Another owner's release does not free it.
        release_persisted(&dir, base, &dir.join("someone-else")).unwrap();
        assert!(pool.acquire(&dir).is_err());
        // Its owner's does.
        release_persisted(&dir, base, &owner).unwrap();
        let b = pool.acquire(&dir).unwrap();
        b.persist(&owner).unwrap();
        drop(b);
        // A stale lease (the owner's state is gone) is taken over, and
        // the takeover clears the old owner.
        std::fs::remove_dir(&owner).unwrap();
        let c = pool.acquire(&dir).unwrap();
        assert_eq!(c.host_base, base);
        drop(c);
        let text = std::fs::read_to_string(dir.join(format!("range-{base}"))).unwrap();
        assert!(text.is_empty(), "{text:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bad_pool_configs_are_rejected() {
        let dir = std::env::temp_dir();
        for pool in [
            UidPoolConfig {
                base: 0,
                slot_size: 65536,
                slots: 1,
            },
            UidPoolConfig {
                base: 1,
                slot_size: 0,
                slots: 1,
            },
            UidPoolConfig {
                base: u32::MAX - 10,
                slot_size: 65536,
                slots: 1,
            },
        ] {
            assert!(matches!(pool.acquire(&dir), Err(UsernsError::Config(_))));
        }
    }
}
