//! Run options that OCI's runtime spec has no field for: time limits of the
//! whole tree, output caps, stdio/PTY wiring, the seccomp profile by name,
//! the uid pool.

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::time::Duration;

use crate::seccomp::SeccompProfile;
use crate::sys::WinSize;

/// Documented defaults applied when the spec or the options leave a limit
/// unset (`docs/limits.md`).
pub mod defaults {
    /// Memory limit of the whole sandbox (swap is always 0).
    pub const MEMORY_BYTES: u64 = 1 << 30;
    /// Maximum number of tasks (processes and threads).
    pub const PIDS: u64 = 256;
    /// RLIMIT_NOFILE.
    pub const OPEN_FILES: u64 = 1024;
    /// Size of each tmpfs the sandbox gets by default (/tmp, /workspace).
    pub const TMPFS_BYTES: u64 = 256 << 20;
    /// Size of /dev/shm.
    pub const SHM_BYTES: u64 = 64 << 20;
    /// Hostname inside.
    pub const HOSTNAME: &str = "sandbox";
    /// uid/gid the program runs as inside.
    pub const UID: u32 = 1000;
    pub const GID: u32 = 1000;
    /// HOME and the working directory of a program when nobody sets them.
    pub const HOME: &str = "/workspace";
    pub const CWD: &str = "/workspace";
    /// PATH when the caller passes none.
    pub const PATH: &str = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin";
    /// First host uid of the pool, ids per sandbox, number of slots.
    pub const UID_POOL_BASE: u32 = 100_000_000;
    pub const UID_POOL_SLOT_SIZE: u32 = 65_536;
    pub const UID_POOL_SLOTS: u32 = 4096;
    /// Where locks of the uid pool and the mount staging dir live.
    pub const RUN_DIR: &str = "/run/runtimed";
}

/// Where the program's stdin/stdout/stderr go.
#[derive(Debug, Default)]
pub enum Stdio {
    /// The caller's fds 0/1/2 are given to the program as they are (the
    /// program still gets its own session, so it cannot reach the caller's
    /// terminal with TIOCSTI).
    #[default]
    Inherit,
    /// The supervisor reads the program's stdout/stderr through pipes,
    /// counts and caps them, and forwards them to these fds (the caller's
    /// own stdout/stderr for the CLI). `stdin` is given to the program as it
    /// is, or, with a terminal, copied into the pty by the supervisor.
    Forward {
        stdin: OwnedFd,
        stdout: OwnedFd,
        stderr: OwnedFd,
    },
    /// Output is captured into memory (returned with the report).
    Capture { stdin: Option<Vec<u8>> },
}

/// The uid/gid pool: each sandbox leases a disjoint range of host ids.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UidPoolConfig {
    pub base: u32,
    pub slot_size: u32,
    pub slots: u32,
}

impl Default for UidPoolConfig {
    fn default() -> Self {
        UidPoolConfig {
            base: defaults::UID_POOL_BASE,
            slot_size: defaults::UID_POOL_SLOT_SIZE,
            slots: defaults::UID_POOL_SLOTS,
        }
    }
}

/// A root filesystem of image layers under an overlay, used instead of
/// `spec.root`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LayeredRoot {
    /// Unpacked layer directories, bottom first. On-disk ids are the
    /// image's (uid 0 = root inside): each is idmapped onto the sandbox's id
    /// range, read-only, nosuid, nodev.
    pub layers: Vec<PathBuf>,
    pub upper: Upper,
    /// Remount the root read-only after setup.
    pub readonly: bool,
}

/// Where a layered root's writes go.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Upper {
    /// A tmpfs of this size inside the sandbox, gone with it.
    Tmpfs { bytes: u64 },
    /// `<dir>/upper` (work dir `<dir>/work`), created if missing, on the
    /// host's disk and idmapped like the layers: what the sandbox writes is
    /// owned on disk by the image's ids. Whiteouts show there as character
    /// devices 0/0, opaque directories carry `user.overlay.opaque=y`
    /// (overlayfs' userxattr mode).
    Dir(PathBuf),
}

/// Options of one run beside its `Spec`.
#[derive(Debug)]
pub struct RunOptions {
    /// Name of the sandbox (cgroup name, logs); generated when `None`.
    pub sandbox_id: Option<String>,
    pub wall_time: Option<Duration>,
    /// CPU time of the whole process tree (user + system, all processes).
    pub cpu_time: Option<Duration>,
    /// Bytes per output stream (stdout, stderr); the run is killed past it.
    pub output_limit: Option<u64>,
    pub seccomp: SeccompProfile,
    /// Landlock as an extra layer where the kernel has it.
    pub landlock: bool,
    pub stdio: Stdio,
    /// Initial window size when `process.terminal` is set.
    pub tty_size: Option<WinSize>,
    pub uid_pool: UidPoolConfig,
    /// Lock files and the mount staging directory.
    pub run_dir: PathBuf,
    /// A session: the spec's process is not started; PID 1 keeps the
    /// namespaces alive and starts processes on request over the channel
    /// (`Sandbox::take_channel`, `process::channel::SpawnRequest`).
    pub session: bool,
    /// A root of image layers instead of `spec.root` (which must be unset).
    pub root_layers: Option<LayeredRoot>,
    /// Allow a spec without the network namespace: the sandbox then shares
    /// the host's network. For image builds that fetch packages only.
    pub host_network: bool,
    /// Run in this network namespace instead of a new one (an empty one
    /// from [`crate::netns::create`], reused by one-shot runs). Its `lo` is
    /// left as it is: the sandbox has no capability over a namespace it
    /// does not own. Ignored with the host's network.
    pub network_namespace: Option<std::os::fd::OwnedFd>,
    /// Allow `process.capabilities` to hold capabilities from
    /// [`crate::spec::BUILD_CAPABILITIES`] (held inside the sandbox's user
    /// namespace only). For image build steps (apt and dpkg as root).
    pub build_capabilities: bool,
    /// Files PID 1 writes before the program starts (one-shot runs only;
    /// [`crate::seed`]).
    pub seed: Option<crate::seed::Seed>,
    /// An OCI container (`runtimed oci create`): PID 1 sets everything up,
    /// then waits on the exec FIFO and becomes the program itself
    /// ([`ContainerMode`]).
    pub container: Option<ContainerMode>,
}

/// The OCI runtime's process model (runc's): `create` leaves PID 1
/// blocked before its last steps, opening `exec_fifo` for writing; the
/// `start` command opens it for reading, which releases PID 1 to apply the
/// program's steps (rlimits, identity, capabilities, no_new_privs,
/// seccomp) and execve the config's process in place. No runtimed process
/// stays in or above the container and there is no parent-death signal:
/// the container outlives `create`. `spec.root` is the container's own
/// root (read-write unless `root.readonly`), idmapped onto the sandbox's
/// id range so that host root's files are the container root's.
#[derive(Debug, Clone)]
pub struct ContainerMode {
    /// A FIFO made by the caller (`mkfifo`, mode 0600): opened `O_PATH`
    /// by the parent, reopened for writing by PID 1 through
    /// `/proc/self/fd`.
    pub exec_fifo: PathBuf,
    /// No fresh host uid range: the user namespace maps every id to
    /// itself ([`crate::userns::UidLease::host_ids`]), so root inside is
    /// host root (with capabilities only inside its namespaces), as runc
    /// runs a container. Off by default; a runtime class turns it on.
    pub host_ids: bool,
    /// `linux.cgroupsPath` (cgroupfs style): where the container's cgroup
    /// is made ([`crate::cgroup::CgroupManager::create_at`]) instead of
    /// `<own cgroup>/runtimed/<sandbox id>`.
    pub cgroup_path: Option<PathBuf>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            sandbox_id: None,
            wall_time: None,
            cpu_time: None,
            output_limit: None,
            seccomp: SeccompProfile::Default,
            landlock: true,
            stdio: Stdio::Inherit,
            tty_size: None,
            uid_pool: UidPoolConfig::default(),
            run_dir: PathBuf::from(defaults::RUN_DIR),
            session: false,
            root_layers: None,
            host_network: false,
            network_namespace: None,
            build_capabilities: false,
            seed: None,
            container: None,
        }
    }
}
