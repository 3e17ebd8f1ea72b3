//! Real container engines for end-to-end tests: a private `dockerd` (with
//! the `containerd` it starts itself) or a lone `containerd`, each on a temp
//! directory, with runtimed registered as an OCI runtime next to runc and
//! crun. The tests then drive them with the engines' own clients (`docker`,
//! `ctr`), exactly as an operator would (issue 14, point 3).
//!
//! Nothing an engine does may outlive its test or touch the host beyond
//! the temp dir:
//! - it runs in a private mount namespace (`unshare --mount`), so its
//!   overlay, netns and shm mounts vanish with its last process; a tmpfs
//!   there covers `/run/containerd`, where containerd 1.6 puts its shims'
//!   sockets whatever its `--state` says (the empty mount point is the
//!   one trace left on the host: see [`EngineProc::spawn`]);
//! - its containers' cgroups go below a parent made for it under this
//!   test's own cgroup (`--cgroup-parent`); stopping removes that parent and
//!   fails the test if a container's cgroup is still in it;
//! - stopping is by pid: SIGTERM, a bounded wait, SIGKILL; then every
//!   process whose command line names the temp dir (the shims, which
//!   daemonise) is killed by pid too, and the test fails if one was left.
//!
//! On a hybrid host crun 1.8 refuses to run at all when the cgroup2 root
//! lists a controller; inside the engine's namespace an empty file is bound
//! over that list (as bench/startup.sh does), which changes nothing outside.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::json;

use crate::{host_procs_matching, missing, require_root, runtimed_bin, unique, wait_for, TempDir};

/// How long an engine may take to answer its first request. Generous: the
/// machine is shared and loaded.
pub const START_TIMEOUT: Duration = Duration::from_secs(90);
/// How long one client command (`docker run`, `ctr run`, ...) may take.
pub const CMD_TIMEOUT: Duration = Duration::from_secs(120);
/// How long an engine has to exit after SIGTERM before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(40);

/// The image every engine test runs: a busybox-static rootfs with every
/// applet (`busybox --install`), imported by the test.
pub const IMAGE: &str = "runtimed-test/busybox:1";

/// The runc-compatible binary name runtimed answers to (issue 14: the
/// runc shim takes a binary but no arguments, so a symlink must work).
pub const RUNTIMED_RUNC: &str = "runtimed-runc";

/// Docker's default capability set (moby `oci/caps/defaults.go`): CHOWN,
/// DAC_OVERRIDE, FSETID, FOWNER, MKNOD, NET_RAW, SETGID, SETUID, SETFCAP,
/// SETPCAP, NET_BIND_SERVICE, SYS_CHROOT, KILL, AUDIT_WRITE.
pub const DOCKER_DEFAULT_CAPS: u64 = 0xa804_25fb;

/// A runtime the engine knows by `name`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// runtimed, through its `runtimed-runc` symlink.
    Runtimed,
    /// runc from PATH: the control.
    Runc,
    /// crun from PATH: a second control.
    Crun,
}

impl Runtime {
    /// The name given to `docker run --runtime`.
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Runtimed => "runtimed",
            Runtime::Runc => "runc",
            Runtime::Crun => "crun",
        }
    }
}

// ---- bounded commands ------------------------------------------------------------

/// Runs `cmd` with stdin from /dev/null (unless set) and captured output;
/// kills it and fails the test after `timeout`, with `context()` (the
/// engine's log) in the message.
pub fn run_bounded(cmd: &mut Command, timeout: Duration, context: &dyn Fn() -> String) -> Output {
    let shown = format!("{cmd:?}");
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {shown}: {e}"));
    let drain = |p: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = p {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let err = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("waiting for a client command") {
            break s;
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{shown} did not finish within {timeout:?}\n{}", context());
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// What a client command did, kept for assertions and messages.
#[derive(Debug)]
pub struct Done {
    pub argv: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Done {
    /// The exit code (-1 if killed by a signal).
    pub fn code(&self) -> i32 {
        self.status.code().unwrap_or(-1)
    }

    /// Fails the test unless the command exited 0; returns stdout.
    pub fn ok(&self) -> &str {
        assert!(self.status.success(), "{} failed: {self}", self.argv);
        &self.stdout
    }
}

impl std::fmt::Display for Done {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} → {:?}\nstdout: {}\nstderr: {}",
            self.argv, self.status, self.stdout, self.stderr
        )
    }
}

// ---- the cgroup parent --------------------------------------------------------------

/// A cgroup parent made for one engine under this test's own cgroup, in
/// every hierarchy.
struct CgroupParent {
    /// The path given to the engine (`/<own>/runtimed-engines-...`).
    path: String,
    /// The parent's directory in each hierarchy: must be gone at the end.
    parents: Vec<PathBuf>,
    /// Directories between our own cgroup and the parent (on a hybrid
    /// host, where our own cgroup is deeper in one hierarchy than in the
    /// others), innermost first: removed when empty. Engines of concurrent
    /// tests share them, so the last one out removes them.
    between: Vec<PathBuf>,
}

impl CgroupParent {
    /// On a v1 or hybrid host the process is in one cgroup per hierarchy,
    /// and an engine takes one parent path for all of them. The deepest of
    /// our own paths is below every other one here (the others are `/`),
    /// so a child of it is below our own cgroup everywhere; a host where the
    /// paths diverge is refused rather than touched.
    fn make() -> CgroupParent {
        let text = fs::read_to_string("/proc/self/cgroup").expect("reading /proc/self/cgroup");
        let own: Vec<&str> = text
            .lines()
            .filter_map(|l| l.splitn(3, ':').nth(2))
            .collect();
        let deepest = own
            .iter()
            .max_by_key(|p| p.len())
            .copied()
            .unwrap_or("/")
            .trim_end_matches('/')
            .to_owned();
        for p in &own {
            let p = p.trim_end_matches('/');
            if !(deepest == p || deepest.starts_with(&format!("{p}/")) || p.is_empty()) {
                missing(&format!(
                    "this process's cgroups diverge across hierarchies ({own:?}): \
                     no engine cgroup parent is below all of them"
                ));
            }
        }
        let path = format!("{deepest}/{}", unique("runtimed-engines"));
        let (mut parents, mut between) = (Vec::new(), Vec::new());
        for dir in crate::host_cgroup_dirs(std::process::id() as i32).values() {
            // dir is <mount>/<own here>; the parent is <mount>/<path>.
            let mount = mount_of(dir, &own);
            let target = mount.join(path.trim_start_matches('/'));
            fs::create_dir_all(&target)
                .unwrap_or_else(|e| panic!("creating cgroup {}: {e}", target.display()));
            let mut up = target.parent().map(Path::to_path_buf);
            while let Some(d) = up.filter(|d| d.starts_with(dir) && d != dir) {
                up = d.parent().map(Path::to_path_buf);
                between.push(d);
            }
            parents.push(target);
        }
        CgroupParent {
            path,
            parents,
            between,
        }
    }

    /// Removes the parent everywhere. Anything still below it (a
    /// container's cgroup, a process in it) is a leak: reported, its
    /// processes killed and its cgroups removed, so one failing test does
    /// not leave them to the next.
    fn remove(&mut self) -> Vec<String> {
        let mut leaks = Vec::new();
        for parent in self.parents.drain(..) {
            let mut tree = Vec::new();
            cgroup_tree(&parent, &mut tree);
            for dir in tree.iter().skip(1) {
                leaks.push(format!("cgroup left: {}", dir.display()));
            }
            for dir in &tree {
                for pid in fs::read_to_string(dir.join("cgroup.procs"))
                    .unwrap_or_default()
                    .lines()
                    .filter_map(|l| l.trim().parse::<i32>().ok())
                {
                    leaks.push(format!("process {pid} left in {}", dir.display()));
                    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                }
            }
            // Innermost first; the kernel may take a moment to let go of a
            // cgroup whose last task just exited.
            for dir in tree.iter().rev() {
                let gone = wait_for(Duration::from_secs(10), || {
                    (fs::remove_dir(dir).is_ok() || !dir.exists()).then_some(())
                });
                if gone.is_none() && dir == &parent {
                    leaks.push(format!("cgroup {} could not be removed", dir.display()));
                }
            }
        }
        for dir in self.between.drain(..) {
            // Busy while a concurrent test's engine is below it: its stop
            // removes it.
            let _ = fs::remove_dir(&dir);
        }
        leaks
    }
}

/// `dir` and every cgroup below it, parents before children.
fn cgroup_tree(dir: &Path, out: &mut Vec<PathBuf>) {
    out.push(dir.to_path_buf());
    if let Ok(it) = fs::read_dir(dir) {
        for e in it.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                cgroup_tree(&e.path(), out);
            }
        }
    }
}

/// The hierarchy's mount point, from the host dir of our own cgroup in it.
fn mount_of(dir: &Path, own: &[&str]) -> PathBuf {
    for p in own {
        let rel = p.trim_matches('/');
        if rel.is_empty() {
            continue;
        }
        let s = dir.to_string_lossy();
        if let Some(m) = s.strip_suffix(&format!("/{rel}")) {
            return PathBuf::from(m);
        }
    }
    dir.to_path_buf()
}

// ---- one engine process ---------------------------------------------------------------

/// An engine process (dockerd or containerd) in its private mount
/// namespace, with its temp dir and cgroup parent.
struct EngineProc {
    name: &'static str,
    dir: TempDir,
    child: Option<Child>,
    log: PathBuf,
    cgroup: CgroupParent,
}

/// The host's cgroup2 controller list that crun 1.8 refuses on a hybrid
/// host when it is not empty.
const UNIFIED_CONTROLLERS: &str = "/sys/fs/cgroup/unified/cgroup.controllers";

impl EngineProc {
    fn spawn(name: &'static str, dir: TempDir, cgroup: CgroupParent, argv: &[String]) -> Self {
        let log = dir.join(&format!("{name}.log"));
        let log_file = fs::File::create(&log).expect("creating the engine log");
        // The tmpfs needs a mount point. It stays: removing it while another
        // test's engine has its tmpfs there would detach that tmpfs in the
        // other namespace (Linux >= 3.18 lets a mount point in another
        // namespace be removed), and that engine's shims and ctr would then
        // write to the host's /run/containerd.
        fs::create_dir_all("/run/containerd").expect("creating /run/containerd");
        let hybrid_fix = fs::read_to_string(UNIFIED_CONTROLLERS)
            .is_ok_and(|c| !c.trim().is_empty())
            .then(|| {
                let empty = dir.join("empty-controllers");
                fs::write(&empty, "").expect("writing the empty controller list");
                empty
            });
        // The script runs in the new namespace, then becomes the engine
        // (exec), so the child's pid is the engine's.
        let script = r#"set -e
mount -t tmpfs -o mode=0711,size=16m engine-run /run/containerd
if [ -n "$1" ]; then mount --bind "$1" /sys/fs/cgroup/unified/cgroup.controllers; fi
shift
exec "$@""#;
        let mut cmd = Command::new("unshare");
        cmd.args([
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            script,
            "engine",
        ])
        .arg(hybrid_fix.as_deref().unwrap_or(Path::new("")))
        .args(argv)
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().expect("dup of the log fd"))
        .stderr(log_file)
        .env("PATH", engine_path(&dir));
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {name} (unshare): {e}"));
        EngineProc {
            name,
            dir,
            child: Some(child),
            log,
            cgroup,
        }
    }

    fn pid(&self) -> Option<i32> {
        self.child.as_ref().map(|c| c.id() as i32)
    }

    /// The last lines of the engine's log, for failure messages.
    fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(40);
        format!(
            "--- last lines of {} log ({}) ---\n{}",
            self.name,
            self.log.display(),
            lines[from..].join("\n")
        )
    }

    /// Fails the test (with the log) if the engine exited.
    fn check_alive(&mut self) {
        if let Some(c) = self.child.as_mut() {
            if let Ok(Some(status)) = c.try_wait() {
                self.child = None;
                panic!("{} exited early ({status})\n{}", self.name, self.log_tail());
            }
        }
    }

    /// Stops the engine and everything it started; returns what was left
    /// behind (processes, mounts, cgroups), empty when clean.
    fn stop(&mut self) -> Vec<String> {
        let mut leaks = Vec::new();
        if let Some(mut child) = self.child.take() {
            let pid = Pid::from_raw(child.id() as i32);
            let _ = kill(pid, Signal::SIGTERM);
            let started = Instant::now();
            loop {
                if matches!(child.try_wait(), Ok(Some(_)) | Err(_)) {
                    break;
                }
                if started.elapsed() > STOP_TIMEOUT {
                    leaks.push(format!(
                        "{} ignored SIGTERM for {STOP_TIMEOUT:?}",
                        self.name
                    ));
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        // The shims daemonise (their parent is init by now); each names our
        // temp dir in its arguments. dockerd stops its containers and its
        // containerd on SIGTERM, so one still here was left behind.
        let needle = self.dir.path().to_string_lossy().into_owned();
        let stragglers = host_procs_matching(&needle);
        for p in &stragglers {
            leaks.push(format!("process {} left running: {:?}", p.pid, p.argv));
            let _ = kill(Pid::from_raw(p.pid), Signal::SIGKILL);
        }
        if wait_for(Duration::from_secs(20), || {
            host_procs_matching(&needle).is_empty().then_some(())
        })
        .is_none()
        {
            leaks.push(format!("processes naming {needle} survived SIGKILL"));
        }
        let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        for m in mounts.lines().filter(|l| l.contains(&needle)) {
            leaks.push(format!("mount left in the host namespace: {m}"));
        }
        // What the shims and ctr make under /run/containerd must have gone
        // to the engine's tmpfs, never to the host's directory.
        for ns in [CTR_NS, "moby"] {
            let host = Path::new("/run/containerd/runc").join(ns);
            if host.exists() {
                leaks.push(format!(
                    "{} on the host (the engine's tmpfs was bypassed)",
                    host.display()
                ));
            }
        }
        leaks.extend(self.cgroup.remove());
        leaks
    }
}

/// PATH for the engine: our `bin/` (the runtimed-runc symlink) first.
fn engine_path(dir: &TempDir) -> String {
    let host = std::env::var("PATH").unwrap_or_default();
    format!(
        "{}:{host}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        dir.join("bin").display()
    )
}

/// Fails the test unless `tool` is installed.
fn require_tool(tool: &str) -> PathBuf {
    which(tool).unwrap_or_else(|| {
        missing(&format!(
            "`{tool}` is not installed (.ci/run installs docker.io, containerd, runc and crun)"
        ))
    })
}

/// `tool`'s path on PATH (or in the sbin directories, which a non-login
/// root shell may lack).
pub fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"])
        .map(|d| Path::new(d).join(tool))
        .find(|p| p.is_file());
    found
}

/// The runtimed binary and the `runtimed-runc` symlink to it in `dir/bin`.
fn runtimed_runc(dir: &TempDir) -> PathBuf {
    let bin = runtimed_bin();
    if !bin.is_file() {
        missing(&format!(
            "no runtimed binary at {} (run `cargo build --workspace --bins`)",
            bin.display()
        ));
    }
    let link = dir.join(&format!("bin/{RUNTIMED_RUNC}"));
    fs::create_dir_all(dir.join("bin")).expect("creating bin/");
    symlink(&bin, &link).expect("linking runtimed-runc");
    link
}

// ---- the busybox rootfs -------------------------------------------------------------

/// A tar of a busybox-static rootfs: `/bin/busybox` plus a link for every
/// applet it has (`busybox --list`, what `--install` would make), and the
/// directories a container expects.
pub fn busybox_rootfs_tar() -> Vec<u8> {
    let busybox = fs::read("/bin/busybox")
        .unwrap_or_else(|_| missing("busybox-static is not installed at /bin/busybox"));
    let list = Command::new("/bin/busybox")
        .arg("--list")
        .output()
        .expect("busybox --list");
    let mut b = tar::Builder::new(Vec::new());
    let dir = |b: &mut tar::Builder<Vec<u8>>, p: &str, mode: u32| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(mode);
        h.set_size(0);
        b.append_data(&mut h, p, &[][..]).expect("tar dir");
    };
    for (d, mode) in [
        ("bin/", 0o755),
        ("etc/", 0o755),
        ("proc/", 0o755),
        ("sys/", 0o755),
        ("dev/", 0o755),
        ("tmp/", 0o1777),
        ("root/", 0o700),
    ] {
        dir(&mut b, d, mode);
    }
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o755);
    h.set_size(busybox.len() as u64);
    b.append_data(&mut h, "bin/busybox", &busybox[..])
        .expect("tar busybox");
    for applet in String::from_utf8_lossy(&list.stdout).split_whitespace() {
        if applet == "busybox" {
            continue;
        }
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_mode(0o777);
        h.set_size(0);
        b.append_link(&mut h, format!("bin/{applet}"), "busybox")
            .expect("tar link");
    }
    for (p, data) in [
        (
            "etc/passwd",
            &b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n"[..],
        ),
        ("etc/group", &b"root:x:0:\nnobody:x:65534:\n"[..]),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        b.append_data(&mut h, p, data).expect("tar file");
    }
    b.into_inner().expect("tar")
}

// ---- Docker --------------------------------------------------------------------------

/// A private dockerd (and the containerd it starts under its exec root)
/// with runtimed, runc and crun registered, and [`IMAGE`] imported.
pub struct Docker {
    engine: Mutex<EngineProc>,
    sock: PathBuf,
    config_dir: PathBuf,
    docker: PathBuf,
}

impl Docker {
    /// Starts dockerd and imports the busybox image; fails the test (with
    /// the log) if it does not answer within [`START_TIMEOUT`].
    pub fn start() -> Docker {
        require_root();
        let dockerd = require_tool("dockerd");
        let docker = require_tool("docker");
        for t in ["containerd", "containerd-shim-runc-v2", "runc", "crun"] {
            require_tool(t);
        }
        let dir = TempDir::new("docker");
        let link = runtimed_runc(&dir);
        let crun = require_tool("crun");
        // The runtimes by path: the symlink is what an operator installs.
        let config = json!({
            "runtimes": {
                Runtime::Runtimed.name(): {"path": link},
                Runtime::Crun.name(): {"path": crun},
            },
        });
        let config_file = dir.join("daemon.json");
        fs::write(&config_file, config.to_string()).expect("writing daemon.json");
        let sock = dir.join("docker.sock");
        let cgroup = CgroupParent::make();
        let argv: Vec<String> = [
            dockerd.to_string_lossy().as_ref(),
            "--config-file",
            &config_file.to_string_lossy(),
            "--data-root",
            &dir.join("data").to_string_lossy(),
            "--exec-root",
            &dir.join("run").to_string_lossy(),
            "--pidfile",
            &dir.join("dockerd.pid").to_string_lossy(),
            "-H",
            &format!("unix://{}", sock.display()),
            "--cgroup-parent",
            &cgroup.path,
            // No host networking: no iptables rules, no docker0, no
            // forwarding or masquerading, no userland proxies.
            "--iptables=false",
            "--ip6tables=false",
            "--ip-forward=false",
            "--ip-masq=false",
            "--bridge=none",
            "--userland-proxy=false",
            "--storage-driver",
            "overlay2",
            "--exec-opt",
            "native.cgroupdriver=cgroupfs",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let config_dir = dir.join("client");
        let engine = EngineProc::spawn("dockerd", dir, cgroup, &argv);
        let d = Docker {
            engine: Mutex::new(engine),
            sock,
            config_dir,
            docker,
        };
        let ready = wait_for(START_TIMEOUT, || {
            d.lock().check_alive();
            let out = d
                .cmd(&["version", "--format", "{{.Server.Version}}"])
                .output()
                .ok()?;
            out.status.success().then_some(())
        });
        if ready.is_none() {
            panic!(
                "dockerd did not answer within {START_TIMEOUT:?}\n{}",
                d.lock().log_tail()
            );
        }
        let tar = d.lock().dir.join("busybox.tar");
        fs::write(&tar, busybox_rootfs_tar()).expect("writing the rootfs tar");
        d.run(&[
            "import",
            "--change",
            "ENV PATH=/bin",
            &tar.to_string_lossy(),
            IMAGE,
        ])
        .ok();
        d
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, EngineProc> {
        self.engine.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A `docker` client command on this engine.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.docker);
        c.arg("-H")
            .arg(format!("unix://{}", self.sock.display()))
            .args(args)
            .env("DOCKER_CONFIG", &self.config_dir)
            .stdin(Stdio::null());
        c
    }

    /// Runs `docker ARGS`, bounded by [`CMD_TIMEOUT`].
    pub fn run(&self, args: &[&str]) -> Done {
        self.run_cmd(&mut self.cmd(args), args)
    }

    /// Runs a prepared command (e.g. `script` around `docker -it`), bounded.
    pub fn run_cmd(&self, cmd: &mut Command, shown: &[&str]) -> Done {
        let out = run_bounded(cmd, CMD_TIMEOUT, &|| self.log_tail());
        Done {
            argv: format!("docker {}", shown.join(" ")),
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `docker inspect -f FORMAT NAME`, trimmed.
    pub fn inspect(&self, name: &str, format: &str) -> String {
        self.run(&["inspect", "-f", format, name])
            .ok()
            .trim()
            .to_owned()
    }

    /// The last lines of dockerd's log.
    pub fn log_tail(&self) -> String {
        self.lock().log_tail()
    }

    /// The unix socket (for a `docker -H` by hand).
    pub fn socket(&self) -> &Path {
        &self.sock
    }

    /// The engine's pid (dockerd).
    pub fn pid(&self) -> Option<i32> {
        self.lock().pid()
    }

    /// Stops dockerd and fails the test if anything was left behind.
    pub fn stop(self) {
        let leaks = self.lock().stop();
        assert!(leaks.is_empty(), "dockerd left behind: {leaks:#?}");
    }
}

impl Drop for Docker {
    fn drop(&mut self) {
        let leaks = self.lock().stop();
        if !leaks.is_empty() {
            if std::thread::panicking() {
                eprintln!("dockerd left behind: {leaks:#?}");
            } else {
                panic!("dockerd left behind: {leaks:#?}");
            }
        }
    }
}

/// One dockerd shared by the tests of a test binary that run at the same
/// time (a start costs seconds); stopped when the last of them drops it.
pub fn shared_docker() -> Arc<Docker> {
    static SHARED: Mutex<Weak<Docker>> = Mutex::new(Weak::new());
    let mut slot = SHARED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(d) = slot.upgrade() {
        return d;
    }
    let d = Arc::new(Docker::start());
    *slot = Arc::downgrade(&d);
    d
}

// ---- containerd -----------------------------------------------------------------------

/// A lone containerd on temp dirs (its CRI plugin off unless asked for),
/// driven with `ctr`; the busybox image imported in namespace [`CTR_NS`].
pub struct Containerd {
    engine: Mutex<EngineProc>,
    sock: PathBuf,
    ctr: PathBuf,
    containerd: PathBuf,
    /// The `runtimed-runc` symlink, for `ctr run --runc-binary`.
    pub runtimed_runc: PathBuf,
    /// The cgroup parent containers go below (`ctr run --cgroup`).
    pub cgroup_parent: String,
}

/// The containerd namespace the tests use.
pub const CTR_NS: &str = "runtimed-tests";

/// The image name in containerd.
pub const CTR_IMAGE: &str = "docker.io/runtimed-test/busybox:1";

impl Containerd {
    /// Starts containerd with `extra_config` (TOML) appended to its config.
    pub fn start(extra_config: &str) -> Containerd {
        require_root();
        let containerd = require_tool("containerd");
        let ctr = require_tool("ctr");
        for t in ["containerd-shim-runc-v2", "runc"] {
            require_tool(t);
        }
        let dir = TempDir::new("containerd");
        let link = runtimed_runc(&dir);
        let sock = dir.join("containerd.sock");
        let config = format!(
            r#"version = 2
root = "{root}"
state = "{state}"
disabled_plugins = {disabled}
[grpc]
  address = "{sock}"
[ttrpc]
  address = "{sock}.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
{extra_config}
"#,
            root = dir.join("root").display(),
            state = dir.join("state").display(),
            sock = sock.display(),
            // Only what `ctr run` needs; CRI is on only when the test's
            // config enables it (its plugins section).
            disabled = if extra_config.contains("io.containerd.grpc.v1.cri") {
                "[]"
            } else {
                r#"["io.containerd.grpc.v1.cri"]"#
            },
        );
        let config_file = dir.join("config.toml");
        fs::write(&config_file, config).expect("writing config.toml");
        let cgroup = CgroupParent::make();
        let cgroup_parent = cgroup.path.clone();
        let argv = vec![
            containerd.to_string_lossy().into_owned(),
            "--config".to_owned(),
            config_file.to_string_lossy().into_owned(),
        ];
        let engine = EngineProc::spawn("containerd", dir, cgroup, &argv);
        let c = Containerd {
            engine: Mutex::new(engine),
            sock,
            ctr,
            containerd,
            runtimed_runc: link,
            cgroup_parent,
        };
        let ready = wait_for(START_TIMEOUT, || {
            c.lock().check_alive();
            c.cmd(&["version"])
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|_| ())
        });
        if ready.is_none() {
            panic!(
                "containerd did not answer within {START_TIMEOUT:?}\n{}",
                c.lock().log_tail()
            );
        }
        let layout = c.lock().dir.join("image");
        crate::images::busybox_layout(&layout, "1");
        let tar = c.lock().dir.join("image.tar");
        fs::write(&tar, crate::images::tar_of(&layout)).expect("writing the image tar");
        c.run(&[
            "images",
            "import",
            "--base-name",
            "docker.io/runtimed-test/busybox",
            &tar.to_string_lossy(),
        ])
        .ok();
        c
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, EngineProc> {
        self.engine.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A `ctr` command on this containerd, in namespace [`CTR_NS`].
    pub fn cmd(&self, args: &[&str]) -> Command {
        // ctr makes the containers' stdio FIFOs under /run/containerd/fifo,
        // which the shims must open: it runs in the engine's mount
        // namespace, where that is the engine's private tmpfs.
        let pid = self.lock().pid().unwrap_or(0);
        let mut c = Command::new("nsenter");
        c.args(["--target", &pid.to_string(), "--mount", "--"])
            .arg(&self.ctr)
            .arg("--address")
            .arg(&self.sock)
            .args(["--namespace", CTR_NS])
            .args(args)
            .stdin(Stdio::null());
        c
    }

    /// Runs `ctr ARGS`, bounded by [`CMD_TIMEOUT`].
    pub fn run(&self, args: &[&str]) -> Done {
        let out = run_bounded(&mut self.cmd(args), CMD_TIMEOUT, &|| self.log_tail());
        Done {
            argv: format!("ctr {}", args.join(" ")),
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// The last lines of containerd's log.
    pub fn log_tail(&self) -> String {
        self.lock().log_tail()
    }

    /// `containerd --config FILE config dump`: the configuration as
    /// containerd understood it (defaults merged in).
    pub fn config_dump(&self) -> String {
        let config = self.lock().dir.join("config.toml");
        let mut cmd = Command::new(&self.containerd);
        cmd.arg("--config").arg(&config).args(["config", "dump"]);
        let out = run_bounded(&mut cmd, CMD_TIMEOUT, &|| self.log_tail());
        assert!(
            out.status.success(),
            "containerd config dump: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Stops containerd and fails the test if anything was left behind.
    pub fn stop(self) {
        let leaks = self.lock().stop();
        assert!(leaks.is_empty(), "containerd left behind: {leaks:#?}");
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let leaks = self.lock().stop();
        if !leaks.is_empty() {
            if std::thread::panicking() {
                eprintln!("containerd left behind: {leaks:#?}");
            } else {
                panic!("containerd left behind: {leaks:#?}");
            }
        }
    }
}

/// Values of `Key:` lines of a /proc/PID/status text (`CapBnd`, `Seccomp`).
pub fn status_fields(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}
