//! The OCI runtime's state directory: what `create` leaves for `start`,
//! `state`, `kill`, `delete` and every later command (each a separate
//! process, as runc's callers expect), and how they coordinate.
//!
//! Layout, below `--root` (default `/run/runtimed-oci`, mode 0700):
//!
//! ```text
//! <root>/<id>/            made by `create` with mkdir (an existing id fails)
//! <root>/<id>/state.json  a `State`, written atomically (temp file + rename)
//! <root>/<id>/config.json the bundle's config.json as `create` read it
//! <root>/<id>/exec.fifo   present from `create` until `start`: the
//!                         container's init blocks opening it for writing
//! ```
//!
//! Locking: every command that reads then changes a container takes an
//! exclusive `flock` on the `<root>/<id>` directory ([`Container::lock`]).
//! `create` holds it from the mkdir until `state.json` exists, so a
//! directory without `state.json` is a container being created (or one
//! whose `create` died: `delete` removes it). `delete` removes
//! `state.json` first, then the directory, so a command that waited for
//! the lock and finds no `state.json` treats the id as gone.
//!
//! How another command finds a container's parts:
//! - init pid: [`State::pid`], valid only while [`State::init_alive`]
//!   (the pid plus its start time from `/proc/<pid>/stat`, never a bare
//!   number: a recycled pid is a stopped container). [`State::pidfd`]
//!   opens a pidfd only after that check.
//! - cgroup: [`State::cgroup_paths`], one directory per mounted
//!   hierarchy (v1: one per controller; v2: one). Every process of the
//!   container is in them.
//! - namespaces: `/proc/<pid>/ns/*` of the init pid (checked alive);
//!   [`State::namespace_path`].
//! - config: `<root>/<id>/config.json` ([`Container::config`]), the
//!   `Spec` as the bundle gave it.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

/// Default `--root`, as runc's `/run/runc`.
pub const DEFAULT_ROOT: &str = "/run/runtimed-oci";

/// The OCI runtime-spec version we speak.
pub const OCI_VERSION: &str = "1.0.2";

pub const STATE_FILE: &str = "state.json";
pub const CONFIG_FILE: &str = "config.json";
pub const EXEC_FIFO: &str = "exec.fifo";

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("container id {0:?} is invalid: use 1-1024 of [A-Za-z0-9_+.-], not . or ..")]
    BadId(String),
    #[error("container with id {0} already exists")]
    Exists(String),
    #[error("container {0} does not exist")]
    NotFound(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("state of container {id} is unreadable: {source}")]
    Corrupt {
        id: String,
        source: serde_json::Error,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> StateError {
    let what = what.into();
    move |source| StateError::Io { what, source }
}

/// runc's status names, derived from the live process on every read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// `create` has not finished (no `state.json` yet).
    Creating,
    /// init is alive and blocked on `exec.fifo`.
    Created,
    Running,
    /// init is gone (or its pid was reused).
    Stopped,
    /// The cgroup is frozen.
    Paused,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Stopped => "stopped",
            Status::Paused => "paused",
        }
    }
}

/// What `create` records; read by every later command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub id: String,
    /// Host pid of the container's init (its PID 1).
    pub pid: i32,
    /// Start time of `pid` (field 22 of `/proc/<pid>/stat`, clock ticks
    /// since boot): together with the pid, the identity of the process.
    pub init_start_time: u64,
    /// Absolute bundle directory.
    pub bundle: PathBuf,
    /// Absolute rootfs directory.
    pub rootfs: PathBuf,
    /// RFC 3339 with nanoseconds, UTC.
    pub created: String,
    pub annotations: BTreeMap<String, String>,
    /// The sandbox's id (`oci-<id>`, hashed when that does not fit): the
    /// name of its lock file below runtimed's run dir.
    pub sandbox_id: String,
    /// The container's cgroup, one directory per hierarchy.
    pub cgroup_paths: Vec<PathBuf>,
    /// Whether `create` made the cgroup (then `delete` removes it).
    pub cgroup_owned: bool,
    /// The host id range that uid/gid 0 inside maps to, when runtimed
    /// added the user namespace; `None` when the config brought its own.
    pub uid_lease: Option<UidRange>,
    /// The uid the state directory belongs to (runc's `owner`).
    pub owner_uid: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UidRange {
    pub host_base: u32,
    pub size: u32,
}

/// runc's `state` JSON (and the state hooks get on stdin).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublicState {
    pub oci_version: String,
    pub id: String,
    pub pid: i32,
    pub status: Status,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    pub annotations: BTreeMap<String, String>,
}

impl State {
    /// Whether the init recorded is still that process (pid and start
    /// time match; a zombie counts as gone).
    pub fn init_alive(&self) -> bool {
        self.pid > 0 && proc_start_time(self.pid) == Some(self.init_start_time)
    }

    /// A pidfd of init, opened after checking it is still the recorded
    /// process (and checked again after, closing the reuse race).
    pub fn pidfd(&self) -> Option<OwnedFd> {
        if !self.init_alive() {
            return None;
        }
        let fd = sandbox::process::signals::pidfd_open(self.pid).ok()?;
        self.init_alive().then_some(fd)
    }

    /// `/proc/<pid>/ns/<kind>` of the live init (`net`, `mnt`, `user`...).
    pub fn namespace_path(&self, kind: &str) -> Option<PathBuf> {
        self.init_alive()
            .then(|| PathBuf::from(format!("/proc/{}/ns/{kind}", self.pid)))
    }

    /// The status now, from the live process, the fifo and the freezer.
    pub fn status(&self, dir: &Path) -> Status {
        if !self.init_alive() {
            return Status::Stopped;
        }
        if self.frozen() {
            return Status::Paused;
        }
        if dir.join(EXEC_FIFO).exists() {
            Status::Created
        } else {
            Status::Running
        }
    }

    fn frozen(&self) -> bool {
        self.cgroup_paths.iter().any(|p| {
            std::fs::read_to_string(p.join("freezer.state"))
                .map(|s| s.trim() == "FROZEN")
                .or_else(|_| {
                    std::fs::read_to_string(p.join("cgroup.freeze")).map(|s| s.trim() == "1")
                })
                .unwrap_or(false)
        })
    }

    pub fn public(&self, status: Status) -> PublicState {
        PublicState {
            oci_version: OCI_VERSION.into(),
            id: self.id.clone(),
            // runc shows 0 once the container stopped.
            pid: if status == Status::Stopped {
                0
            } else {
                self.pid
            },
            status,
            bundle: self.bundle.clone(),
            rootfs: self.rootfs.clone(),
            created: self.created.clone(),
            owner: owner_name(self.owner_uid),
            annotations: self.annotations.clone(),
        }
    }
}

fn owner_name(uid: u32) -> String {
    if uid == 0 {
        "root".into()
    } else {
        uid.to_string()
    }
}

/// Field 22 (starttime) of `/proc/<pid>/stat`; `None` for a process that
/// is gone or a zombie (its container has stopped).
pub fn proc_start_time(pid: i32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields follow the
    // last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // rest starts at field 3 (state).
    let state = fields.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

/// runc's id rule: `^[\w+-\.]+$`, and not `.` nor `..` (it names a
/// directory below `--root`).
pub fn check_id(id: &str) -> Result<(), StateError> {
    let ok = !id.is_empty()
        && id.len() <= 1024
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(StateError::BadId(id.into()))
    }
}

/// The state root (`--root`).
#[derive(Clone, Debug)]
pub struct Root {
    pub path: PathBuf,
}

impl Root {
    pub fn new(path: PathBuf) -> Root {
        Root { path }
    }

    fn ensure(&self) -> Result<(), StateError> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.path)
            .map_err(io(format!("create the state root {}", self.path.display())))
    }

    /// `create`: makes `<root>/<id>` (failing when the id exists) and
    /// returns it locked. Nothing else is in it yet.
    pub fn create(&self, id: &str) -> Result<Container, StateError> {
        check_id(id)?;
        self.ensure()?;
        let dir = self.path.join(id);
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(StateError::Exists(id.into()))
            }
            Err(e) => return Err(io(format!("create the state of {id}"))(e)),
        }
        let lock = lock_dir(&dir)?;
        Ok(Container {
            id: id.into(),
            dir,
            _lock: lock,
        })
    }

    /// An existing container, locked (waits for another command holding
    /// it). A directory without `state.json` is one being created (or
    /// whose `create` died); `allow_partial` returns it anyway (`delete`).
    pub fn open(&self, id: &str, allow_partial: bool) -> Result<Container, StateError> {
        check_id(id)?;
        let dir = self.path.join(id);
        let lock = match lock_dir(&dir) {
            Ok(l) => l,
            Err(StateError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Err(StateError::NotFound(id.into()))
            }
            Err(e) => return Err(e),
        };
        let c = Container {
            id: id.into(),
            dir,
            _lock: lock,
        };
        if !allow_partial && !c.dir.join(STATE_FILE).exists() {
            return Err(StateError::NotFound(id.into()));
        }
        Ok(c)
    }

    /// Ids of every container (directories below the root), sorted.
    pub fn ids(&self) -> Result<Vec<String>, StateError> {
        let entries = match std::fs::read_dir(&self.path) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(format!("read {}", self.path.display()))(e)),
        };
        let mut ids: Vec<String> = entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|id| check_id(id).is_ok())
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// The state of `id` without taking its lock (`state`, `list`): a
    /// reader sees the old or the new file, never half of one (writes
    /// rename into place).
    pub fn peek(&self, id: &str) -> Result<(State, Status), StateError> {
        check_id(id)?;
        let dir = self.path.join(id);
        let state = read_state(&dir, id)?;
        let status = state.status(&dir);
        Ok((state, status))
    }
}

fn lock_dir(dir: &Path) -> Result<Flock<File>, StateError> {
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(dir)
        .map_err(io(format!("open {}", dir.display())))?;
    Flock::lock(f, FlockArg::LockExclusive).map_err(|(_, e)| StateError::Io {
        what: format!("lock {}", dir.display()),
        source: std::io::Error::from(e),
    })
}

fn read_state(dir: &Path, id: &str) -> Result<State, StateError> {
    let bytes = match std::fs::read(dir.join(STATE_FILE)) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(StateError::NotFound(id.into()))
        }
        Err(e) => return Err(io(format!("read the state of {id}"))(e)),
    };
    serde_json::from_slice(&bytes).map_err(|source| StateError::Corrupt {
        id: id.into(),
        source,
    })
}

/// One container's state directory, locked for as long as this lives.
#[derive(Debug)]
pub struct Container {
    pub id: String,
    pub dir: PathBuf,
    _lock: Flock<File>,
}

impl Container {
    pub fn state(&self) -> Result<State, StateError> {
        read_state(&self.dir, &self.id)
    }

    /// Writes `state.json` atomically.
    pub fn save(&self, state: &State) -> Result<(), StateError> {
        let bytes = serde_json::to_vec(state).map_err(|source| StateError::Corrupt {
            id: self.id.clone(),
            source,
        })?;
        write_atomic(&self.dir, STATE_FILE, &bytes)
    }

    pub fn fifo_path(&self) -> PathBuf {
        self.dir.join(EXEC_FIFO)
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.join(CONFIG_FILE)
    }

    /// The config `create` started the container with.
    pub fn config(&self) -> Result<oci_spec::runtime::Spec, StateError> {
        let p = self.config_path();
        let bytes = std::fs::read(&p).map_err(io(format!("read {}", p.display())))?;
        serde_json::from_slice(&bytes).map_err(|source| StateError::Corrupt {
            id: self.id.clone(),
            source,
        })
    }

    /// Removes the directory: `state.json` first (from then on the id is
    /// gone for everyone who waits for the lock), then the rest.
    pub fn remove(&self) -> Result<(), StateError> {
        match std::fs::remove_file(self.dir.join(STATE_FILE)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(format!("remove the state of {}", self.id))(e)),
        }
        std::fs::remove_dir_all(&self.dir).map_err(io(format!("remove the state of {}", self.id)))
    }
}

/// Writes `dir/name` through a temp file and a rename.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), StateError> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io(format!("write {}", tmp.display())))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(io(format!("write {}", tmp.display())))?;
    std::fs::rename(&tmp, dir.join(name)).map_err(io(format!("rename {}", tmp.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_runcs_charset() {
        for ok in ["a", "abc-DEF_1.2+x", "0123456789abcdef"] {
            assert!(check_id(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "a b", "../x", "a\0b", "é"] {
            assert!(
                matches!(check_id(bad), Err(StateError::BadId(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn create_twice_fails_and_remove_frees_the_id() {
        let tmp = std::env::temp_dir().join(format!("oci-state-test-{}", std::process::id()));
        let root = Root::new(tmp.join("root"));
        let c = root.create("box").unwrap();
        let state = State {
            id: "box".into(),
            pid: std::process::id() as i32,
            init_start_time: proc_start_time(std::process::id() as i32).unwrap(),
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            created: "2026-01-01T00:00:00Z".into(),
            annotations: BTreeMap::new(),
            sandbox_id: "oci-x".into(),
            cgroup_paths: vec![],
            cgroup_owned: false,
            uid_lease: None,
            owner_uid: 0,
        };
        c.save(&state).unwrap();
        drop(c);
        assert!(matches!(root.create("box"), Err(StateError::Exists(_))));
        let (read, status) = root.peek("box").unwrap();
        assert_eq!(read, state);
        // Our own process, no fifo: running.
        assert_eq!(status, Status::Running);
        assert_eq!(root.ids().unwrap(), vec!["box".to_string()]);
        root.open("box", false).unwrap().remove().unwrap();
        assert!(matches!(
            root.open("box", false),
            Err(StateError::NotFound(_))
        ));
        assert!(root.create("box").is_ok());
        let _ = std::fs::remove_dir_all(&tmp);
    }

    #[test]
    fn a_reused_pid_is_a_stopped_container() {
        let me = std::process::id() as i32;
        let start = proc_start_time(me).unwrap();
        let mut s = State {
            id: "x".into(),
            pid: me,
            init_start_time: start + 1,
            bundle: "/".into(),
            rootfs: "/".into(),
            created: String::new(),
            annotations: BTreeMap::new(),
            sandbox_id: "oci-x".into(),
            cgroup_paths: vec![],
            cgroup_owned: false,
            uid_lease: None,
            owner_uid: 0,
        };
        assert!(!s.init_alive());
        assert_eq!(s.status(Path::new("/nonexistent")), Status::Stopped);
        assert_eq!(s.public(Status::Stopped).pid, 0);
        s.init_start_time = start;
        assert!(s.init_alive());
    }
}
