//! The OCI runtime's commands on a live container: `exec`, `ps`,
//! `events`, `update`, `pause`, `resume`, driven as containerd's runc
//! shim drives them, on a busybox-static bundle made here. What is
//! checked is what a probe inside saw (its pid namespace, hostname,
//! mounts, uid map, capability sets, seccomp mode, a fork refused) and
//! what the host sees (namespace inodes, cgroup membership, open fds,
//! the cgroup's files, a counter that stops moving).
#![forbid(unsafe_code)]

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use runtimed_tests::serde_json::{self, json, Value};
use runtimed_tests::{missing, require_root, runtimed_bin, unique, wait_for, TempDir};

/// A state root and the runtime binary.
struct Oci {
    bin: PathBuf,
    root: TempDir,
}

impl Oci {
    fn new() -> Oci {
        require_root();
        let bin = runtimed_bin();
        if !bin.is_file() {
            missing(&format!("no runtimed binary at {}", bin.display()));
        }
        Oci {
            bin,
            root: TempDir::new("oci-exec-root"),
        }
    }

    /// `runtimed oci --root ROOT ARGS...`, bounded by `timeout`.
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("timeout");
        c.arg("120")
            .arg(&self.bin)
            .arg("oci")
            .arg("--root")
            .arg(self.root.path())
            .args(args)
            .stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run runtimed oci")
    }

    fn ok(&self, args: &[&str]) -> Output {
        let out = self.run(args);
        assert!(out.status.success(), "{args:?}: {}", context(&out));
        out
    }

    fn state(&self, id: &str) -> Value {
        serde_json::from_slice(&self.ok(&["state", id]).stdout).expect("state JSON")
    }

    fn status(&self, id: &str) -> String {
        self.state(id)["status"].as_str().unwrap_or("?").to_string()
    }

    /// Our own record (`state.json`): the cgroup's directories.
    fn cgroup_paths(&self, id: &str) -> Vec<PathBuf> {
        let text = fs::read(self.root.join(id).join("state.json")).expect("state.json");
        let v: Value = serde_json::from_slice(&text).expect("state.json is JSON");
        v["cgroup_paths"]
            .as_array()
            .expect("cgroup_paths")
            .iter()
            .map(|p| PathBuf::from(p.as_str().expect("a path")))
            .collect()
    }

    fn wait_status(&self, id: &str, want: &str) {
        let seen = wait_for(Duration::from_secs(60), || {
            (self.status(id) == want).then_some(())
        });
        assert!(
            seen.is_some(),
            "{id} never became {want}: {}",
            self.status(id)
        );
    }

    /// A `--detach`ed exec: its output goes to files, as the process it
    /// leaves behind keeps them open (a pipe would never reach EOF).
    fn exec_detached(&self, dir: &Path, id: &str, cmd: &[&str]) -> i32 {
        let pid_file = dir.join(unique("exec-pid"));
        let err = dir.join(unique("exec-err"));
        let mut args = vec!["exec", "--detach", "--pid-file"];
        let pid_file_s = pid_file.to_string_lossy().into_owned();
        args.push(&pid_file_s);
        args.push(id);
        args.extend_from_slice(cmd);
        let status = self
            .command(&args)
            .stdout(Stdio::null())
            .stderr(fs::File::create(&err).expect("stderr file"))
            .status()
            .expect("run exec");
        assert!(
            status.success(),
            "exec --detach {cmd:?}: {status:?}: {}",
            fs::read_to_string(&err).unwrap_or_default()
        );
        fs::read_to_string(&pid_file)
            .expect("the pid file")
            .trim()
            .parse()
            .expect("a pid in the pid file")
    }
}

/// A bundle directory under /tmp, removed on drop: its rootfs is
/// idmapped, which /var/tmp (`TempDir`) cannot be where it is an overlay
/// (the cgroup v2 VM).
struct BundleDir(PathBuf);

impl BundleDir {
    fn new() -> BundleDir {
        let p = PathBuf::from("/tmp").join(unique("runtimed-oci-exec-bundle"));
        fs::create_dir_all(&p).expect("bundle dir");
        BundleDir(p)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn join(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }
}

impl Drop for BundleDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A running container, deleted (forced) on drop.
struct Running<'a> {
    oci: &'a Oci,
    id: String,
    dir: BundleDir,
}

impl Running<'_> {
    fn init_pid(&self) -> i64 {
        self.oci.state(&self.id)["pid"].as_i64().expect("pid")
    }

    fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let _ = self.oci.run(&["delete", "--force", &self.id]);
    }
}

/// Creates and starts a container running `args` (hostname `oci-test`).
fn start<'a>(oci: &'a Oci, args: &[&str]) -> Running<'a> {
    start_with(oci, args, |_| {})
}

/// [`start`] with the bundle's config.json changed by `edit` first.
fn start_with<'a>(oci: &'a Oci, args: &[&str], edit: impl FnOnce(&mut Value)) -> Running<'a> {
    let dir = BundleDir::new();
    bundle(dir.path(), args);
    let path = dir.join("config.json");
    let mut config: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    edit(&mut config);
    fs::write(&path, config.to_string()).unwrap();
    let id = unique("ex");
    let b = dir.path().to_string_lossy().into_owned();
    // The container's stdio are create's: files, not pipes (a pipe's
    // reader would wait for the container to end).
    let err = dir.join("create.err");
    let status = oci
        .command(&["create", "--bundle", &b, &id])
        .stdout(fs::File::create(dir.join("create.out")).expect("stdout file"))
        .stderr(fs::File::create(&err).expect("stderr file"))
        .status()
        .expect("run create");
    assert!(
        status.success(),
        "create: {status:?}: {}",
        fs::read_to_string(&err).unwrap_or_default()
    );
    let running = Running { oci, id, dir };
    oci.ok(&["start", &running.id]);
    running
}

fn context(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A bundle: busybox-static and its applets, a config running `args` as
/// root inside with the namespaces an engine asks for (runtimed adds the
/// user namespace).
fn bundle(dir: &Path, args: &[&str]) {
    let rootfs = dir.join("rootfs");
    fs::create_dir_all(rootfs.join("bin")).unwrap();
    // /data: a directory of the rootfs itself (the sandbox mounts a tmpfs
    // on /tmp), which the host reads through the bundle.
    for d in ["proc", "dev", "tmp", "etc", "data"] {
        fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    fs::copy("/bin/busybox", rootfs.join("bin/busybox")).expect("busybox-static at /bin/busybox");
    for a in [
        "sh", "sleep", "cat", "echo", "true", "ps", "hostname", "grep", "head", "tr", "kill", "mv",
        "mkdir",
    ] {
        let _ = std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(a));
    }
    let config = json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": ["PATH=/bin"],
            "cwd": "/"
        },
        "root": {"path": "rootfs", "readonly": false},
        "hostname": "oci-test",
        "linux": {
            "namespaces": [
                {"type": "pid"}, {"type": "ipc"}, {"type": "uts"},
                {"type": "mount"}, {"type": "network"}
            ]
        }
    });
    fs::write(dir.join("config.json"), config.to_string()).unwrap();
}

/// The (device, inode) of a process's namespace of `kind`.
fn ns_of(pid: i64, kind: &str) -> (u64, u64) {
    let m = fs::metadata(format!("/proc/{pid}/ns/{kind}")).expect("ns link");
    (m.dev(), m.ino())
}

/// Every host process in the pid namespace of `pid`.
fn processes_in_pid_ns_of(pid: i64) -> BTreeSet<i64> {
    let ns = ns_of(pid, "pid");
    fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i64>().ok())
        .filter(|p| {
            fs::metadata(format!("/proc/{p}/ns/pid")).is_ok_and(|m| (m.dev(), m.ino()) == ns)
        })
        .collect()
}

fn alive(pid: i64) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(") ")
            .is_some_and(|(_, r)| !r.starts_with('Z'))
    })
}

/// Checked against: no CLONE_NEWPID in the joined set (ps showed the
/// host's processes), seccomp skipped for exec (Seccomp: 0), the user
/// namespace not joined (EINVAL/ident uid map), capabilities of the
/// runtime kept.
#[test]
#[ignore = "privileged: runs OCI containers as root"]
fn exec_sees_the_containers_pid_ns_hostname_mounts_uid_map_caps_and_filter() {
    let oci = Oci::new();
    let c = start(&oci, &["sleep", "1000"]);
    let init = c.init_pid();
    let script = "ps; echo ===; hostname; echo ===; cat /proc/self/uid_map; echo ===; \
                  grep -E '^(Cap|Seccomp:)' /proc/self/status; echo ===; \
                  grep -E '^Cap' /proc/1/status; echo ===; cat /proc/self/mountinfo";
    let out = oci.ok(&["exec", &c.id, "sh", "-c", script]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let parts: Vec<&str> = text.split("===\n").collect();
    assert_eq!(parts.len(), 6, "{text}");
    // Its PID 1 is the container's program, and nothing of the host shows.
    let pid1 = parts[0]
        .lines()
        .find(|l| l.split_whitespace().next() == Some("1"))
        .unwrap_or_else(|| panic!("no PID 1 in the container's ps:\n{}", parts[0]));
    assert!(
        pid1.contains("sleep 1000"),
        "PID 1 is not the container's: {pid1}"
    );
    // The exec's own processes are in that namespace (the container's
    // /proc lists them).
    assert!(
        parts[0].lines().any(|l| l.contains("sh -c ps;")),
        "ps did not see itself in the container's pid namespace:\n{}",
        parts[0]
    );
    assert!(
        parts[0].lines().count() <= 5,
        "ps saw more than the container:\n{}",
        parts[0]
    );
    assert_eq!(parts[1].trim(), "oci-test");
    let uid_map = fs::read_to_string(format!("/proc/{init}/uid_map")).unwrap();
    assert_eq!(parts[2], uid_map, "not the container's user namespace");
    assert_ne!(
        parts[2].split_whitespace().collect::<Vec<_>>(),
        ["0", "0", "4294967295"]
    );
    let mine: Vec<&str> = parts[3].lines().collect();
    assert!(mine.contains(&"Seccomp:\t2"), "no seccomp filter: {mine:?}");
    let caps: Vec<&str> = mine
        .iter()
        .copied()
        .filter(|l| l.starts_with("Cap"))
        .collect();
    let init_caps: Vec<&str> = parts[4].lines().collect();
    assert_eq!(
        caps, init_caps,
        "the exec's capability sets differ from the container's"
    );
    let host_bnd = fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("CapBnd"))
        .unwrap()
        .to_string();
    assert!(
        !caps.contains(&host_bnd.as_str()),
        "the runtime's bounding set: {caps:?}"
    );
    // Same mount namespace, same root: the same table, line for line.
    let init_mounts = fs::read_to_string(format!("/proc/{init}/mountinfo")).unwrap();
    assert_eq!(parts[5], init_mounts, "not the container's mounts");
}

/// An engine's `linux.seccomp` (here: mkdir answered EPERM, which
/// runtimed's own profile allows) binds an exec'd process as it binds the
/// container's. Checked against: join compiling the named profile instead
/// of the config's (the exec's mkdir succeeded).
#[test]
#[ignore = "privileged: runs OCI containers as root"]
fn an_exec_meets_the_configs_own_seccomp_filter() {
    let oci = Oci::new();
    let c = start_with(&oci, &["sleep", "1000"], |config| {
        config["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{
                "names": ["mkdir", "mkdirat"],
                "action": "SCMP_ACT_ERRNO",
                "errnoRet": 1
            }]
        });
    });
    let out = oci.run(&["exec", &c.id, "mkdir", "/data/made-by-exec"]);
    assert_ne!(out.status.code(), Some(0), "{}", context(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Operation not permitted"),
        "{}",
        context(&out)
    );
    assert!(!c.rootfs().join("data/made-by-exec").exists());
    // The control: the same exec without mkdir runs.
    let out = oci.run(&["exec", &c.id, "sh", "-c", "echo ok > /data/written"]);
    assert_eq!(out.status.code(), Some(0), "{}", context(&out));
    assert!(c.rootfs().join("data/written").exists());
}

/// Checked against: wait_for returning 0 for every status.
#[test]
#[ignore = "privileged: runs OCI containers as root"]
fn exec_exit_status_passes_through() {
    let oci = Oci::new();
    let c = start(&oci, &["sleep", "1000"]);
    let code = |args: &[&str]| {
        let mut a = vec!["exec", c.id.as_str()];
        a.extend_from_slice(args);
        oci.run(&a).status.code()
    };
    assert_eq!(code(&["sh", "-c", "exit 7"]), Some(7));
    assert_eq!(code(&["sh", "-c", "kill -9 $$"]), Some(137));
    assert_eq!(code(&["true"]), Some(0));
    let out = oci.run(&["exec", &c.id, "/nonexistent"]);
    assert_eq!(out.status.code(), Some(1), "{}", context(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("exec"), "{err}");
    // A --process file that is not a process: refused by field, nothing
    // runs.
    let bad = c.dir.join("process.json");
    fs::write(&bad, b"{\"args\": 5}").unwrap();
    let out = oci.run(&["exec", "--process", &bad.to_string_lossy(), &c.id]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("--process"), "{err}");
    assert_eq!(processes_in_pid_ns_of(c.init_pid()).len(), 1);
}

/// Checked against: the joiner not writing cgroup.procs (the pid was
/// outside the container's cgroup), and the program steps' close-on-exec
/// of fds above 2 removed (fds 3+ of runtimed reached the process).
#[test]
#[ignore = "privileged: runs OCI containers as root"]
fn detached_exec_gives_a_live_pid_in_the_containers_cgroup_with_no_extra_fds() {
    let oci = Oci::new();
    let c = start(&oci, &["sleep", "1000"]);
    let init = c.init_pid();
    let pid = i64::from(oci.exec_detached(c.dir.path(), &c.id, &["sleep", "1000"]));
    assert!(alive(pid), "the exec'd process is gone");
    for path in oci.cgroup_paths(&c.id) {
        let procs = fs::read_to_string(path.join("cgroup.procs")).unwrap();
        assert!(
            procs.lines().any(|l| l.trim() == pid.to_string()),
            "pid {pid} not in {}: {procs}",
            path.display()
        );
    }
    for kind in ["user", "mnt", "pid", "uts", "ipc", "net", "cgroup"] {
        assert_eq!(ns_of(pid, kind), ns_of(init, kind), "{kind} namespace");
    }
    let fds: BTreeSet<String> = fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        fds,
        ["0", "1", "2"].iter().map(|s| s.to_string()).collect(),
        "fds of the exec'd process"
    );
    // The program, not a runtimed process, under the container's root.
    let exe = fs::metadata(format!("/proc/{pid}/exe")).unwrap();
    let busybox = fs::metadata(c.rootfs().join("bin/busybox")).unwrap();
    assert_eq!((exe.dev(), exe.ino()), (busybox.dev(), busybox.ino()));
}

/// Checked against: `ps` listing only the cgroup's first directory's
/// first pid (init alone).
#[test]
#[ignore = "privileged: runs OCI containers as root"]
fn ps_json_lists_exactly_the_containers_processes() {
    let oci = Oci::new();
    let c = start(&oci, &["sleep", "1000"]);
    let init = c.init_pid();
    let a = oci.exec_detached(c.dir.path(), &c.id, &["sleep", "1000"]);
    let b = oci.exec_detached(c.dir.path(), &c.id, &["sleep", "1001"]);
    let out = oci.ok(&["ps", "--format", "json", &c.id]);
    let listed: BTreeSet<i64> = serde_json::from_slice::<Vec<i64>>(&out.stdout)
        .expect("a JSON list of pids")
        .into_iter()
        .collect();
    assert_eq!(listed, [init, i64::from(a), i64::from(b)].into());
    // An independent view: every host process in the container's pid
    // namespace.
    assert_eq!(listed, processes_in_pid_ns_of(init));
    let table = String::from_utf8_lossy(&oci.ok(&["ps", &c.id]).stdout).into_owned();
    assert!(
        table.lines().next().is_some_and(|h| h.contains("PID")),
        "{table}"
    );
    assert_eq!(table.lines().count(), 4, "{table}");
}

fn memory_usage(oci: &Oci, id: &str) -> u64 {
    let out = oci.ok(&["events", "--stats", id]);
    let v: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(v["type"], "stats");
    assert_eq!(v["id"], id);
    for k in ["cpu", "memory", "pids", "blkio"] {
        assert!(v["data"].get(k).is_some(), "no {k}: {v}");
    }
    v["data"]["memory"]["usage"]["usage"]
        .as_u64()
        .expect("memory usage")
}

/// Checked against: `events --stats` reading memory.max_usage_in_bytes
/// of an idle moment (a fixed figure) instead of the usage.
#[test]
#[ignore = "privileged: runs OCI containers as root"]
fn events_stats_shows_memory_usage_growing_when_the_container_allocates() {
    let oci = Oci::new();
    let c = start(&oci, &["sleep", "1000"]);
    let before = memory_usage(&oci, &c.id);
    // 40 MB held in a shell variable, then a marker file; the shell stays
    // (a last command would be exec'd in its place, freeing the memory).
    oci.exec_detached(
        c.dir.path(),
        &c.id,
        &[
            "sh",
            "-c",
            "x=$(head -c 40000000 /dev/zero | tr '\\0' a); echo ready > /data/ready; sleep 1000; echo done",
        ],
    );
    let ready = wait_for(Duration::from_secs(60), || {
        c.rootfs().join("data/ready").exists().then_some(())
    });
    assert!(ready.is_some(), "the allocation never finished");
    let after = memory_usage(&oci, &c.id);
    assert!(
        after >= before + 30_000_000,
        "usage {before} -> {after}: did not grow by the 40 MB allocated"
    );
    let pids = oci.ok(&["events", "--stats", &c.id]);
    let v: Value = serde_json::from_slice(&pids.stdout).unwrap();
    assert!(v["data"]["pids"]["current"].as_u64() >= Some(3), "{v}");
}

/// Checked against: update parsing the JSON but writing nothing (the
/// forks succeeded, pids.max stayed).
#[test]
#[ignore = "privileged: runs OCI containers as root"]
fn update_lowers_pids_max_and_a_fork_beyond_it_fails_inside() {
    let oci = Oci::new();
    let c = start(&oci, &["sleep", "1000"]);
    // Before: five children start (and are waited for, so none is left).
    let fork5 = "for i in 1 2 3 4 5; do sleep 1 & done; wait; echo started";
    let out = oci.ok(&["exec", &c.id, "sh", "-c", fork5]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("started"));
    // runc's --resources - : linux.resources JSON on stdin.
    let mut child = oci
        .command(&["update", "--resources", "-", &c.id])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(br#"{"pids":{"limit":3}}"#)
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", context(&out));
    let pids_dir = oci
        .cgroup_paths(&c.id)
        .into_iter()
        .find(|p| p.join("pids.max").exists())
        .expect("a pids directory");
    assert_eq!(
        fs::read_to_string(pids_dir.join("pids.max"))
            .unwrap()
            .trim(),
        "3"
    );
    // init, the exec's joiner and its child fit; the shell's forks do not.
    let out = oci.run(&["exec", &c.id, "sh", "-c", fork5]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("can't fork"),
        "a fork beyond pids.max did not fail: {}",
        context(&out)
    );
    // Recorded: the container's config now carries the limit.
    let config: Value =
        serde_json::from_slice(&fs::read(oci.root.join(&c.id).join("config.json")).unwrap())
            .unwrap();
    assert_eq!(config["linux"]["resources"]["pids"]["limit"], 3);
    // Flags: a memory limit lands in the cgroup's file.
    oci.ok(&["update", "--memory", "96m", &c.id]);
    let mem_dir = oci
        .cgroup_paths(&c.id)
        .into_iter()
        .find(|p| p.join("memory.max").exists() || p.join("memory.limit_in_bytes").exists())
        .expect("a memory directory");
    let limit = fs::read_to_string(mem_dir.join("memory.max"))
        .or_else(|_| fs::read_to_string(mem_dir.join("memory.limit_in_bytes")))
        .unwrap();
    assert_eq!(limit.trim(), (96u64 << 20).to_string());
    // Refused by name, nothing changed.
    let out = oci.run(&["update", "--resources", "-", &c.id]);
    assert_eq!(out.status.code(), Some(1), "empty stdin: {}", context(&out));
}

fn counter(rootfs: &Path) -> Option<u64> {
    fs::read_to_string(rootfs.join("data/count"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Checked against: pause writing nothing to the freezer (the counter
/// kept moving, state said running).
#[test]
#[ignore = "privileged: runs OCI containers as root"]
fn pause_freezes_resume_thaws_and_exec_into_a_paused_container_fails() {
    let oci = Oci::new();
    let c = start(
        &oci,
        &[
            "sh",
            "-c",
            "i=0; while true; do i=$((i+1)); echo $i > /data/count.new; \
             mv /data/count.new /data/count; done",
        ],
    );
    let rootfs = c.rootfs();
    let moving = |rootfs: &Path| {
        let first = wait_for(Duration::from_secs(60), || counter(rootfs))?;
        wait_for(Duration::from_secs(60), || {
            counter(rootfs).filter(|n| *n > first).map(|_| ())
        })
    };
    assert!(moving(&rootfs).is_some(), "the counter never moved");
    oci.ok(&["pause", &c.id]);
    assert_eq!(oci.status(&c.id), "paused");
    let a = wait_for(Duration::from_secs(10), || counter(&rootfs)).expect("a count");
    std::thread::sleep(Duration::from_millis(1500));
    let b = wait_for(Duration::from_secs(10), || counter(&rootfs)).expect("a count");
    assert_eq!(a, b, "the counter moved while paused");
    // Output to files: a process frozen while joining would hold a pipe
    // open (and the test with it); `timeout` bounds the command itself.
    let err_file = c.dir.join("paused-exec.err");
    let status = oci
        .command(&["exec", &c.id, "true"])
        .stdout(Stdio::null())
        .stderr(fs::File::create(&err_file).unwrap())
        .status()
        .unwrap();
    let err = fs::read_to_string(&err_file).unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("paused"), "{err}");
    // Pausing twice is refused; the container stays paused.
    assert_eq!(oci.run(&["pause", &c.id]).status.code(), Some(1));
    oci.ok(&["resume", &c.id]);
    assert_eq!(oci.status(&c.id), "running");
    assert!(
        moving(&rootfs).is_some(),
        "the counter did not move after resume"
    );
    assert_eq!(oci.run(&["resume", &c.id]).status.code(), Some(1));
    // A paused container is deleted whole.
    oci.ok(&["pause", &c.id]);
    let paths = oci.cgroup_paths(&c.id);
    oci.ok(&["delete", "--force", &c.id]);
    for p in paths {
        assert!(!p.exists(), "{} left behind", p.display());
    }
}

/// Checked against: exec's status check removed (the join failed later
/// with a setns error, not the one-line "stopped").
#[test]
#[ignore = "privileged: runs OCI containers as root"]
fn commands_on_a_stopped_or_missing_container_fail_cleanly() {
    let oci = Oci::new();
    let c = start(&oci, &["true"]);
    oci.wait_status(&c.id, "stopped");
    for args in [
        vec!["exec", c.id.as_str(), "true"],
        vec!["ps", c.id.as_str()],
        vec!["events", "--stats", c.id.as_str()],
        vec!["pause", c.id.as_str()],
        vec!["update", "--pids-limit", "5", c.id.as_str()],
    ] {
        let out = oci.run(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", context(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains("stopped"), "{args:?}: {err}");
    }
    for args in [
        vec!["exec", "no-such-box", "true"],
        vec!["ps", "no-such-box"],
        vec!["pause", "no-such-box"],
        vec!["resume", "no-such-box"],
    ] {
        let out = oci.run(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains("does not exist"), "{args:?}: {err}");
    }
}
