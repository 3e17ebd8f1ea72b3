//! The one typed request of a sandbox. Every front end (the CLI's
//! `runtimed run`, the API's sessions and one-shot runs, the judge, image
//! build steps) describes what it wants to a [`RequestBuilder`] and gets a
//! [`Request`]: the OCI `Spec` the sandbox executes plus the run settings a
//! `Spec` has no field for, as typed values (durations, bytes, the seccomp
//! profile's enum, paths). The builder owns every default and every floor,
//! stated once here and tested once below; front ends only say what their
//! caller asked for. A `Request` is serde, so it can travel between our
//! processes as it is.

use std::path::{Path, PathBuf};
use std::time::Duration;

use oci_spec::runtime::{
    LinuxCapabilities, Mount, MountBuilder, PosixRlimitBuilder, PosixRlimitType, RootBuilder, Spec,
};
use oci_spec::OciSpecError;
use serde::{Deserialize, Serialize};

use crate::options::{defaults, LayeredRoot, RunOptions};
use crate::seccomp::SeccompProfile;

/// Why a request could not be built. Messages name the field as the
/// sandbox knows it; front ends may prefix their own flag or JSON name.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("argv is empty: name a program")]
    EmptyArgv,
    #[error("cwd {0:?} is not an absolute path")]
    Cwd(PathBuf),
    #[error("environment variable {name:?}: {reason}")]
    Env { name: String, reason: &'static str },
    #[error("memory limit of {0} bytes is below the floor of 4 MiB")]
    MemoryTooSmall(u64),
    #[error("memory limit of {0} bytes does not fit a 64-bit signed count")]
    MemoryTooLarge(u64),
    #[error("pids limit {0} is outside 1..=4194304")]
    Pids(u64),
    #[error("cpus {0} is outside 0.01..=1024")]
    Cpus(f64),
    #[error("output limit must be at least 1 byte")]
    OutputLimit,
    #[error("mount {dest}: {reason}")]
    Mount { dest: PathBuf, reason: String },
    #[error("build the spec's {what}: {source}")]
    Spec {
        what: &'static str,
        source: OciSpecError,
    },
}

/// Smallest memory limit a sandbox accepts: PID 1, the program's exec and
/// the kernel's per-cgroup overhead fit in it.
pub const MEMORY_MIN_BYTES: u64 = 4 << 20;

/// Largest pids limit (the kernel's PID_MAX_LIMIT on 64-bit).
pub const PIDS_MAX: u64 = 4_194_304;

/// A program's environment: names are unique, a later value for a name
/// replaces the earlier one and moves to the end (as a shell's `export`
/// after the image's `ENV` would read). The one merge rule of runtimed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Env(Vec<(String, String)>);

impl Env {
    /// An empty environment (the judge passes exactly what a language asks).
    pub fn empty() -> Env {
        Env(Vec::new())
    }

    /// What a program gets when nobody says otherwise: `PATH` and `HOME`.
    pub fn sandbox_default() -> Env {
        Env(vec![
            ("PATH".into(), defaults::PATH.into()),
            ("HOME".into(), defaults::HOME.into()),
        ])
    }

    /// Sets `name` to `value`.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), RequestError> {
        let bad = |reason| RequestError::Env {
            name: name.to_string(),
            reason,
        };
        if name.is_empty() || name.contains('=') {
            return Err(bad("a name must be non-empty and hold no '='"));
        }
        if name.contains('\0') || value.contains('\0') {
            return Err(bad("NUL byte"));
        }
        self.0.retain(|(k, _)| k != name);
        self.0.push((name.to_string(), value.to_string()));
        Ok(())
    }

    /// Sets one `NAME=VALUE` entry (an image's `Env`, a recipe's `ENV`).
    pub fn set_entry(&mut self, entry: &str) -> Result<(), RequestError> {
        match entry.split_once('=') {
            Some((k, v)) => self.set(k, v),
            None => Err(RequestError::Env {
                name: entry.to_string(),
                reason: "expected NAME=VALUE",
            }),
        }
    }

    /// Sets every `NAME=VALUE` entry in order.
    pub fn extend_entries<S: AsRef<str>>(
        &mut self,
        entries: impl IntoIterator<Item = S>,
    ) -> Result<(), RequestError> {
        entries
            .into_iter()
            .try_for_each(|e| self.set_entry(e.as_ref()))
    }

    /// Sets `PATH` to the sandbox's default when nothing set it.
    pub fn with_default_path(mut self) -> Env {
        if self.get("PATH").is_none() {
            self.0.insert(0, ("PATH".into(), defaults::PATH.into()));
        }
        self
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// `NAME=VALUE` strings, as `execve` and OCI's `process.env` take them.
    pub fn entries(&self) -> Vec<String> {
        self.0.iter().map(|(k, v)| format!("{k}={v}")).collect()
    }
}

/// A host path given to the sandbox.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bind {
    pub source: PathBuf,
    pub destination: PathBuf,
    /// Read-write (idmapped to the sandbox user, see docs/limits.md)
    /// instead of read-only. Every bind is `nosuid` and `nodev` (the
    /// sandbox's plan).
    pub writable: bool,
}

/// How an image build step reaches the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StepNetwork {
    /// An empty network namespace, like every other sandbox.
    None,
    /// The host's network namespace (package mirrors), with the host's
    /// `/etc/resolv.conf` bound read-only.
    Host,
}

/// Limits of a run that OCI's spec has no field for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunLimits {
    pub wall_time: Option<Duration>,
    /// CPU time of the whole process tree.
    pub cpu_time: Option<Duration>,
    /// Bytes per output stream; the run is killed past it.
    pub output_bytes: Option<u64>,
}

/// What the sandbox runs: the spec and the settings beside it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub spec: Spec,
    pub limits: RunLimits,
    pub seccomp: SeccompProfile,
    /// A root of image layers instead of `spec.root` (then unset).
    pub root_layers: Option<LayeredRoot>,
    /// An image build step: which network, and the build capabilities.
    pub build_step: Option<StepNetwork>,
}

impl Request {
    /// A builder running `argv` with every default.
    pub fn builder(argv: Vec<String>) -> RequestBuilder {
        RequestBuilder::new(argv)
    }

    /// The run options of this request; the caller adds what belongs to
    /// the caller's process (stdio, uid pool, run dir, a network namespace
    /// to reuse, session mode).
    pub fn run_options(&self) -> RunOptions {
        RunOptions {
            wall_time: self.limits.wall_time,
            cpu_time: self.limits.cpu_time,
            output_limit: self.limits.output_bytes,
            seccomp: self.seccomp,
            root_layers: self.root_layers.clone(),
            host_network: self.build_step == Some(StepNetwork::Host),
            build_capabilities: self.build_step.is_some(),
            ..RunOptions::default()
        }
    }
}

/// Where `/workspace` comes from.
#[derive(Clone, Debug, PartialEq)]
enum Workspace {
    /// A tmpfs of the scratch size, owned by the sandbox user.
    Tmpfs,
    /// A host directory, read-write.
    Host(PathBuf),
}

#[derive(Clone, Debug, PartialEq)]
enum RootKind {
    /// The host's root, read-only (`sandbox::spec` default).
    Host,
    /// A directory of the host as the root, read-only.
    Dir(PathBuf),
    Layers(LayeredRoot),
}

/// Builds a [`Request`]; see the module comment. Every setter takes what
/// the caller asked for; `build` checks it all and applies the defaults.
#[derive(Clone, Debug)]
pub struct RequestBuilder {
    argv: Vec<String>,
    env: Env,
    cwd: PathBuf,
    uid: u32,
    gid: u32,
    hostname: String,
    terminal: bool,
    root: RootKind,
    scratch_bytes: u64,
    workspace: Workspace,
    binds: Vec<Bind>,
    tmpfs: Vec<(PathBuf, u64)>,
    memory_bytes: Option<u64>,
    pids: Option<u64>,
    cpus: Option<f64>,
    rlimits: Vec<(PosixRlimitType, u64)>,
    limits: RunLimits,
    seccomp: SeccompProfile,
    build_step: Option<StepNetwork>,
}

impl RequestBuilder {
    pub fn new(argv: Vec<String>) -> RequestBuilder {
        RequestBuilder {
            argv,
            env: Env::sandbox_default(),
            cwd: PathBuf::from(defaults::CWD),
            uid: defaults::UID,
            gid: defaults::GID,
            hostname: defaults::HOSTNAME.into(),
            terminal: false,
            root: RootKind::Host,
            scratch_bytes: defaults::TMPFS_BYTES,
            workspace: Workspace::Tmpfs,
            binds: Vec::new(),
            tmpfs: Vec::new(),
            memory_bytes: None,
            pids: None,
            cpus: None,
            rlimits: Vec::new(),
            limits: RunLimits::default(),
            seccomp: SeccompProfile::Default,
            build_step: None,
        }
    }

    /// The whole environment (default: [`Env::sandbox_default`]).
    pub fn env(mut self, env: Env) -> Self {
        self.env = env;
        self
    }

    pub fn cwd(mut self, cwd: impl Into<PathBuf>) -> Self {
        self.cwd = cwd.into();
        self
    }

    /// The ids the program runs as inside (default 1000:1000).
    pub fn user(mut self, uid: u32, gid: u32) -> Self {
        self.uid = uid;
        self.gid = gid;
        self
    }

    pub fn hostname(mut self, name: impl Into<String>) -> Self {
        self.hostname = name.into();
        self
    }

    /// A pty instead of pipes.
    pub fn terminal(mut self, on: bool) -> Self {
        self.terminal = on;
        self
    }

    /// A host directory as the (read-only) root instead of the host's.
    pub fn root_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.root = RootKind::Dir(dir.into());
        self
    }

    /// Image layers as the root.
    pub fn root_layers(mut self, root: LayeredRoot) -> Self {
        self.root = RootKind::Layers(root);
        self
    }

    /// Size of the `/tmp` and `/workspace` tmpfs (default
    /// `defaults::TMPFS_BYTES`).
    pub fn scratch_bytes(mut self, bytes: u64) -> Self {
        self.scratch_bytes = bytes;
        self
    }

    /// `/workspace` is this host directory, read-write.
    pub fn workspace_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.workspace = Workspace::Host(dir.into());
        self
    }

    pub fn bind(mut self, bind: Bind) -> Self {
        self.binds.push(bind);
        self
    }

    /// An extra tmpfs (mode 1777) of `bytes` at `dest`.
    pub fn tmpfs(mut self, dest: impl Into<PathBuf>, bytes: u64) -> Self {
        self.tmpfs.push((dest.into(), bytes));
        self
    }

    /// Memory of the whole sandbox, swap none (default
    /// `defaults::MEMORY_BYTES`; at least [`MEMORY_MIN_BYTES`]).
    pub fn memory(mut self, bytes: u64) -> Self {
        self.memory_bytes = Some(bytes);
        self
    }

    pub fn pids(mut self, pids: u64) -> Self {
        self.pids = Some(pids);
        self
    }

    /// A CPU quota in CPUs.
    pub fn cpus(mut self, cpus: f64) -> Self {
        self.cpus = Some(cpus);
        self
    }

    /// A resource limit of the program, soft = hard.
    pub fn rlimit(mut self, which: PosixRlimitType, value: u64) -> Self {
        self.rlimits.retain(|(t, _)| *t != which);
        self.rlimits.push((which, value));
        self
    }

    pub fn wall_time(mut self, t: Duration) -> Self {
        self.limits.wall_time = Some(t);
        self
    }

    pub fn cpu_time(mut self, t: Duration) -> Self {
        self.limits.cpu_time = Some(t);
        self
    }

    pub fn output_limit(mut self, bytes: u64) -> Self {
        self.limits.output_bytes = Some(bytes);
        self
    }

    pub fn seccomp(mut self, profile: SeccompProfile) -> Self {
        self.seccomp = profile;
        self
    }

    /// An image build step: root inside, the build capabilities, and the
    /// network it asks for.
    pub fn build_step(mut self, network: StepNetwork) -> Self {
        self.build_step = Some(network);
        self
    }

    /// Checks everything and makes the request.
    pub fn build(self) -> Result<Request, RequestError> {
        if self.argv.is_empty() || self.argv[0].is_empty() {
            return Err(RequestError::EmptyArgv);
        }
        if !self.cwd.is_absolute() {
            return Err(RequestError::Cwd(self.cwd));
        }
        if let Some(m) = self.memory_bytes {
            if m < MEMORY_MIN_BYTES {
                return Err(RequestError::MemoryTooSmall(m));
            }
            if i64::try_from(m).is_err() {
                return Err(RequestError::MemoryTooLarge(m));
            }
        }
        if let Some(p) = self.pids {
            if !(1..=PIDS_MAX).contains(&p) {
                return Err(RequestError::Pids(p));
            }
        }
        if let Some(c) = self.cpus {
            if !c.is_finite() || !(0.01..=1024.0).contains(&c) {
                return Err(RequestError::Cpus(c));
            }
        }
        if self.limits.output_bytes == Some(0) {
            return Err(RequestError::OutputLimit);
        }

        let mut spec = crate::spec::base_spec(self.argv.clone());
        let spec_err = |what| move |source| RequestError::Spec { what, source };
        match &self.root {
            RootKind::Host => {}
            RootKind::Dir(dir) => {
                spec.set_root(Some(
                    RootBuilder::default()
                        .path(dir)
                        .readonly(true)
                        .build()
                        .map_err(spec_err("root"))?,
                ));
            }
            RootKind::Layers(_) => {
                spec.set_root(None);
            }
        }
        spec.set_mounts(Some(self.mounts()?));
        spec.set_hostname(Some(self.hostname.clone()));

        let mut rlimits = Vec::with_capacity(self.rlimits.len());
        for (typ, v) in &self.rlimits {
            rlimits.push(
                PosixRlimitBuilder::default()
                    .typ(*typ)
                    .soft(*v)
                    .hard(*v)
                    .build()
                    .map_err(spec_err("rlimits"))?,
            );
        }
        if let Some(p) = spec.process_mut() {
            p.set_env(Some(self.env.entries()));
            p.set_cwd(self.cwd.clone());
            p.set_terminal(Some(self.terminal));
            p.user_mut().set_uid(self.uid);
            p.user_mut().set_gid(self.gid);
            p.set_rlimits((!rlimits.is_empty()).then_some(rlimits));
        }
        // Both fit an i64: memory checked above, pids <= PIDS_MAX.
        crate::spec::set_resources(
            &mut spec,
            self.memory_bytes.map(|m| m as i64),
            self.pids.map(|p| p as i64),
            self.cpus,
        )
        .map_err(spec_err("resources"))?;
        match self.build_step {
            Some(StepNetwork::Host) => crate::spec::make_build_step(&mut spec),
            Some(StepNetwork::None) => {
                if let Some(p) = spec.process_mut() {
                    p.set_capabilities(Some(build_capabilities()));
                }
            }
            None => {}
        }
        Ok(Request {
            spec,
            limits: self.limits,
            seccomp: self.seccomp,
            root_layers: match self.root {
                RootKind::Layers(l) => Some(l),
                _ => None,
            },
            build_step: self.build_step,
        })
    }

    /// `/tmp` (root's, sticky, like a distribution's), `/workspace` (the
    /// sandbox user's), a build step's `/etc/resolv.conf` on the host's
    /// network, then binds and extra tmpfs in the caller's order.
    fn mounts(&self) -> Result<Vec<Mount>, RequestError> {
        let spec_err = |what| move |source| RequestError::Spec { what, source };
        let mut mounts = vec![
            tmpfs("/tmp", self.scratch_bytes, &["mode=1777", "uid=0", "gid=0"])
                .map_err(spec_err("/tmp mount"))?,
        ];
        mounts.push(match &self.workspace {
            Workspace::Tmpfs => tmpfs("/workspace", self.scratch_bytes, &["mode=755"])
                .map_err(spec_err("/workspace mount"))?,
            Workspace::Host(dir) => bind_mount(dir, Path::new("/workspace"), true)
                .map_err(spec_err("/workspace bind"))?,
        });
        if self.build_step == Some(StepNetwork::Host) {
            // The host's resolver configuration, never committed to the
            // image (the recipe builder's diff skips mount points).
            if let Ok(resolv) = std::fs::canonicalize("/etc/resolv.conf") {
                mounts.push(
                    bind_mount(&resolv, Path::new("/etc/resolv.conf"), false)
                        .map_err(spec_err("resolv.conf bind"))?,
                );
            }
        }
        for b in &self.binds {
            let bad = |reason: String| RequestError::Mount {
                dest: b.destination.clone(),
                reason,
            };
            if !b.destination.is_absolute() || b.destination == Path::new("/") {
                return Err(bad(
                    "the destination must be an absolute path below /".into()
                ));
            }
            if !b.source.is_absolute() {
                return Err(bad(format!(
                    "the source {} is not absolute",
                    b.source.display()
                )));
            }
            if mounts.iter().any(|m| m.destination() == &b.destination) {
                return Err(bad("mounted twice".into()));
            }
            mounts.push(
                bind_mount(&b.source, &b.destination, b.writable)
                    .map_err(spec_err("bind mount"))?,
            );
        }
        for (dest, bytes) in &self.tmpfs {
            mounts.push(tmpfs(dest, *bytes, &["mode=1777"]).map_err(spec_err("tmpfs mount"))?);
        }
        Ok(mounts)
    }
}

fn tmpfs(dest: impl AsRef<Path>, bytes: u64, extra: &[&str]) -> Result<Mount, OciSpecError> {
    let mut options = vec![format!("size={bytes}")];
    options.extend(extra.iter().map(|o| o.to_string()));
    options.extend(["nosuid".to_string(), "nodev".to_string()]);
    MountBuilder::default()
        .destination(dest.as_ref())
        .typ("tmpfs")
        .source("tmpfs")
        .options(options)
        .build()
}

fn bind_mount(source: &Path, dest: &Path, writable: bool) -> Result<Mount, OciSpecError> {
    let options = vec![
        "rbind".to_string(),
        if writable { "rw" } else { "ro" }.to_string(),
    ];
    MountBuilder::default()
        .destination(dest)
        .typ("bind")
        .source(source)
        .options(options)
        .build()
}

fn build_capabilities() -> LinuxCapabilities {
    let set: std::collections::HashSet<_> = crate::spec::BUILD_CAPABILITIES.into_iter().collect();
    let mut caps = LinuxCapabilities::default();
    caps.set_bounding(Some(set.clone()));
    caps.set_effective(Some(set.clone()));
    caps.set_permitted(Some(set));
    caps.set_inheritable(None);
    caps.set_ambient(None);
    caps
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{plan, MountKind};

    fn argv() -> Vec<String> {
        vec!["/bin/true".into()]
    }

    /// Each default of a request, stated once: the plan the sandbox makes
    /// of a request with nothing set.
    #[test]
    fn defaults_are_stated_once() {
        let req = Request::builder(argv()).build().unwrap();
        assert_eq!(req.seccomp, SeccompProfile::Default);
        assert_eq!(req.limits, RunLimits::default());
        assert!(req.root_layers.is_none() && req.build_step.is_none());
        let p = plan(&req.spec, &req.run_options()).unwrap();
        let env: Vec<_> = p.env.iter().map(|e| e.to_str().unwrap()).collect();
        assert_eq!(
            env,
            [format!("PATH={}", defaults::PATH), "HOME=/workspace".into()]
        );
        assert_eq!(p.cwd.to_str().unwrap(), defaults::CWD);
        assert_eq!((p.uid, p.gid), (defaults::UID, defaults::GID));
        assert_eq!(p.hostname, defaults::HOSTNAME);
        let tmp = p.mounts.iter().find(|m| m.destination == Path::new("/tmp"));
        let ws = p
            .mounts
            .iter()
            .find(|m| m.destination == Path::new("/workspace"));
        match (&tmp.unwrap().kind, &ws.unwrap().kind) {
            (
                MountKind::Tmpfs {
                    size: s1,
                    mode: 0o1777,
                    uid: 0,
                    gid: 0,
                },
                MountKind::Tmpfs {
                    size: s2,
                    mode: 0o755,
                    uid: defaults::UID,
                    gid: defaults::GID,
                },
            ) => assert_eq!((*s1, *s2), (defaults::TMPFS_BYTES, defaults::TMPFS_BYTES)),
            other => panic!("/tmp and /workspace: {other:?}"),
        }
        assert_eq!(p.cgroup.memory_bytes, Some(defaults::MEMORY_BYTES));
        assert_eq!(p.cgroup.pids, Some(defaults::PIDS));
    }

    #[test]
    fn env_later_values_win_and_names_are_checked() {
        let mut env = Env::sandbox_default();
        env.extend_entries(["A=1", "PATH=/x", "B=2=3", "A=4"])
            .unwrap();
        assert_eq!(
            env.entries(),
            ["HOME=/workspace", "PATH=/x", "B=2=3", "A=4"]
        );
        assert!(env.set("", "v").is_err());
        assert!(env.set("A=B", "v").is_err());
        assert!(env.set("A", "v\0").is_err());
        assert!(env.set_entry("NOEQUALS").is_err());
        let judge = Env::empty().with_default_path();
        assert_eq!(judge.entries(), [format!("PATH={}", defaults::PATH)]);
    }

    #[test]
    fn the_memory_floor_and_other_bounds_are_checked_once() {
        let b = || Request::builder(argv());
        assert!(matches!(
            b().memory(MEMORY_MIN_BYTES - 1).build(),
            Err(RequestError::MemoryTooSmall(_))
        ));
        assert!(b().memory(MEMORY_MIN_BYTES).build().is_ok());
        assert!(matches!(
            b().memory(u64::MAX).build(),
            Err(RequestError::MemoryTooLarge(_))
        ));
        assert!(matches!(b().pids(0).build(), Err(RequestError::Pids(0))));
        assert!(b().pids(PIDS_MAX).build().is_ok());
        assert!(matches!(
            b().cpus(f64::NAN).build(),
            Err(RequestError::Cpus(_))
        ));
        assert!(matches!(
            b().output_limit(0).build(),
            Err(RequestError::OutputLimit)
        ));
        assert!(matches!(
            Request::builder(vec![]).build(),
            Err(RequestError::EmptyArgv)
        ));
        assert!(matches!(b().cwd("rel").build(), Err(RequestError::Cwd(_))));
    }

    #[test]
    fn binds_are_checked() {
        // A read-write bind of a root-owned source is refused by the plan:
        // give it one owned by nobody (or by the unprivileged test user).
        let dir = std::env::temp_dir().join(format!("request-binds-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        if nix::unistd::geteuid().is_root() {
            std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
        }
        let bind = |dest: &str, writable| Bind {
            source: dir.clone(),
            destination: dest.into(),
            writable,
        };
        let req = Request::builder(argv())
            .bind(bind("/data", false))
            .bind(bind("/plain", true))
            .build()
            .unwrap();
        let p = plan(&req.spec, &req.run_options()).unwrap();
        let data = p
            .mounts
            .iter()
            .find(|m| m.destination == Path::new("/data"));
        let plain = p
            .mounts
            .iter()
            .find(|m| m.destination == Path::new("/plain"));
        let (data, plain) = (data.unwrap(), plain.unwrap());
        assert!(data.readonly && data.nosuid && data.nodev);
        assert!(!plain.readonly && plain.nosuid && plain.nodev);
        for bad in ["/", "rel", "/tmp"] {
            assert!(
                matches!(
                    Request::builder(argv()).bind(bind(bad, false)).build(),
                    Err(RequestError::Mount { .. })
                ),
                "{bad}"
            );
        }
        std::fs::remove_dir(&dir).unwrap();
    }

    #[test]
    fn a_request_survives_the_wire() {
        let req = Request::builder(argv())
            .cpu_time(Duration::from_millis(1500))
            .wall_time(Duration::from_secs(3))
            .output_limit(1 << 20)
            .seccomp(SeccompProfile::Judge)
            .memory(64 << 20)
            .build()
            .unwrap();
        let wire = serde_json::to_string(&req).unwrap();
        let back: Request = serde_json::from_str(&wire).unwrap();
        assert_eq!(back, req);
        let opts = back.run_options();
        assert_eq!(opts.cpu_time, Some(Duration::from_millis(1500)));
        assert_eq!(opts.seccomp, SeccompProfile::Judge);
    }

    #[test]
    fn build_steps_run_as_asked_on_the_network_they_ask_for() {
        let host = Request::builder(argv())
            .build_step(StepNetwork::Host)
            .build()
            .unwrap();
        let opts = host.run_options();
        assert!(opts.host_network && opts.build_capabilities);
        let none = Request::builder(argv())
            .build_step(StepNetwork::None)
            .build()
            .unwrap();
        let opts = none.run_options();
        assert!(!opts.host_network && opts.build_capabilities);
        let caps = none.spec.process().as_ref().unwrap().capabilities().clone();
        assert_eq!(
            caps.unwrap().effective().as_ref().map(|s| s.len()),
            Some(crate::spec::BUILD_CAPABILITIES.len())
        );
    }
}
