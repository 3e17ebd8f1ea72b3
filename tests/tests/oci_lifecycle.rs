//! The OCI runtime's command line driven as containerd's runc shim drives
//! it: `runtimed oci create/start/state/kill/delete/run` on a bundle of
//! busybox-static made here, each command a separate process. What is
//! checked is what the host sees: the init's pid and executable, its
//! parent, its uid map, files on the host, the cgroup directories, the
//! uid lease files, the state directory and the mount table.
#![forbid(unsafe_code)]

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use runtimed_tests::serde_json::{self, json, Value};
use runtimed_tests::{missing, require_root, runtimed_bin, unique, wait_for, TempDir};

/// Where runtimed keeps its uid pool and sandbox lock files (the default
/// run dir).
const RUN_DIR: &str = "/run/runtimed";

/// A bundle directory under /tmp, removed on drop: its rootfs is
/// idmapped, which /var/tmp (`TempDir`) cannot always be (an overlayfs in
/// the cgroup v2 VM).
struct BundleDir(PathBuf);

impl BundleDir {
    fn new(prefix: &str) -> BundleDir {
        let p = PathBuf::from("/tmp").join(unique(&format!("runtimed-oci-{prefix}")));
        fs::create_dir_all(&p).unwrap();
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
            root: TempDir::new("oci-root"),
        }
    }

    /// `runtimed oci --root ROOT ARGS...`, bounded by `timeout`.
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("timeout");
        c.arg("60")
            .arg(&self.bin)
            .arg("oci")
            .arg("--root")
            .arg(self.root.path())
            .args(args)
            .stdin(Stdio::null());
        c
    }

    /// Runs a command to its end. Its stdout and stderr are files, not
    /// pipes read to their end: a container keeps `create`'s stdio (the
    /// shim's) open for as long as it lives.
    fn run(&self, args: &[&str]) -> Output {
        let n = unique("out");
        let (o, e) = (
            self.root.join(&format!(".{n}.out")),
            self.root.join(&format!(".{n}.err")),
        );
        let status = self
            .command(args)
            .stdout(fs::File::create(&o).unwrap())
            .stderr(fs::File::create(&e).unwrap())
            .status()
            .expect("run runtimed oci");
        let out = Output {
            status,
            stdout: fs::read(&o).unwrap_or_default(),
            stderr: fs::read(&e).unwrap_or_default(),
        };
        let _ = (fs::remove_file(&o), fs::remove_file(&e));
        out
    }

    /// Runs and insists on exit 0.
    fn ok(&self, args: &[&str]) -> Output {
        let out = self.run(args);
        assert!(out.status.success(), "{args:?}: {}", context(&out));
        out
    }

    fn state(&self, id: &str) -> Value {
        let out = self.ok(&["state", id]);
        serde_json::from_slice(&out.stdout).expect("state JSON")
    }

    fn status(&self, id: &str) -> String {
        self.state(id)["status"].as_str().unwrap_or("?").to_string()
    }

    /// Our own record (`state.json`): cgroup paths, sandbox id, lease.
    fn record(&self, id: &str) -> Value {
        let text = fs::read(self.root.join(id).join("state.json")).expect("state.json");
        serde_json::from_slice(&text).expect("state.json is JSON")
    }

    fn wait_status(&self, id: &str, want: &str) {
        let seen = wait_for(Duration::from_secs(30), || {
            (self.status(id) == want).then_some(())
        });
        assert!(
            seen.is_some(),
            "{id} never became {want}: {}",
            self.status(id)
        );
    }
}

/// A failed test's containers go with it: every container of the root
/// is deleted (the state root itself is a `TempDir`).
impl Drop for Oci {
    fn drop(&mut self) {
        let Ok(entries) = fs::read_dir(self.root.path()) else {
            return;
        };
        for e in entries.flatten() {
            if e.path().is_dir() {
                let id = e.file_name().to_string_lossy().into_owned();
                let _ = self.run(&["delete", "--force", &id]);
            }
        }
    }
}

fn context(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A bundle: `rootfs/` with busybox-static and its applets, and a
/// config.json running `args`, as root inside, with the namespaces an
/// engine asks for (no user namespace: runtimed adds its own). `tweak`
/// edits the config.
fn bundle(dir: &Path, args: &[&str], tweak: impl FnOnce(&mut Value)) -> PathBuf {
    let rootfs = dir.join("rootfs");
    fs::create_dir_all(rootfs.join("bin")).unwrap();
    for d in ["proc", "dev", "tmp", "etc"] {
        fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    fs::copy("/bin/busybox", rootfs.join("bin/busybox")).expect("busybox-static at /bin/busybox");
    for a in [
        "sh", "sleep", "cat", "echo", "id", "touch", "tty", "true", "ls", "stat",
    ] {
        let _ = std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(a));
    }
    let mut config = json!({
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
    tweak(&mut config);
    fs::write(dir.join("config.json"), config.to_string()).unwrap();
    dir.to_path_buf()
}

fn pid_alive(pid: i64) -> bool {
    // A zombie (reparented, not yet reaped) counts as gone.
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit(')').next().map(|r| r.trim_start().to_string()))
        .is_some_and(|r| !r.starts_with('Z') && !r.starts_with('X'))
}

fn exe_identity(pid: i64) -> Option<(u64, u64)> {
    fs::metadata(format!("/proc/{pid}/exe"))
        .ok()
        .map(|m| (m.dev(), m.ino()))
}

fn file_identity(p: &Path) -> (u64, u64) {
    let m = fs::metadata(p).unwrap();
    (m.dev(), m.ino())
}

fn ppid_of(pid: i64) -> i64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap()
}

/// Everything a container leaves on the host, as its `state.json` names
/// it, checked gone: the process, the cgroup directories, the uid lease,
/// the sandbox lock file, the state directory and any mount of its
/// rootfs.
fn assert_nothing_left(oci: &Oci, id: &str, record: &Value, rootfs: &Path) {
    let pid = record["pid"].as_i64().unwrap();
    let gone = wait_for(Duration::from_secs(20), || (!pid_alive(pid)).then_some(()));
    assert!(gone.is_some(), "{id}: init {pid} still alive");
    assert!(!oci.root.join(id).exists(), "{id}: state dir left");
    for p in record["cgroup_paths"].as_array().unwrap() {
        let p = Path::new(p.as_str().unwrap());
        assert!(!p.exists(), "{id}: cgroup {} left", p.display());
    }
    let base = record["uid_lease"]["host_base"].as_u64().unwrap();
    let lease = Path::new(RUN_DIR)
        .join("uidpool")
        .join(format!("range-{base}"));
    let owner = fs::read_to_string(&lease).unwrap_or_default();
    assert!(
        owner.is_empty(),
        "{id}: uid lease {base} still held by {owner:?}"
    );
    let sandbox = record["sandbox_id"].as_str().unwrap();
    assert!(
        !Path::new(RUN_DIR).join("sandboxes").join(sandbox).exists(),
        "{id}: sandbox lock file left"
    );
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let root = rootfs.to_string_lossy();
    assert!(
        !mounts.lines().any(|l| l.contains(root.as_ref())),
        "{id}: a mount of {root} is left"
    );
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn create_start_kill_delete_as_the_shim_does() {
    let oci = Oci::new();
    let dir = BundleDir::new("bundle");
    let b = bundle(dir.path(), &["/bin/sleep", "1000"], |_| {});
    let id = unique("life");
    let pid_file = dir.join("init.pid");
    oci.ok(&[
        "create",
        "--bundle",
        b.to_str().unwrap(),
        "--pid-file",
        pid_file.to_str().unwrap(),
        &id,
    ]);
    let pid: i64 = fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let st = oci.state(&id);
    assert_eq!(st["status"], "created", "{st}");
    assert_eq!(st["pid"].as_i64(), Some(pid), "{st}");
    assert_eq!(st["id"], id.as_str());
    assert_eq!(st["bundle"], b.to_str().unwrap());
    assert!(pid_alive(pid));
    // Before start: not yet the program.
    let busybox = file_identity(&b.join("rootfs/bin/busybox"));
    assert_ne!(exe_identity(pid), Some(busybox));
    oci.ok(&["start", &id]);
    assert_eq!(oci.status(&id), "running");
    // The same process is now the config's program: runtimed exec'd it
    // in place (PID 1 is busybox), and no runtimed process is its parent.
    assert_eq!(exe_identity(pid), Some(busybox), "PID 1 is not the program");
    let runtimed = file_identity(&oci.bin);
    let parent = ppid_of(pid);
    assert_ne!(
        exe_identity(parent),
        Some(runtimed),
        "parent {parent} is runtimed"
    );
    // A running container is not deleted without --force.
    let refused = oci.run(&["delete", &id]);
    assert_eq!(refused.status.code(), Some(1), "{}", context(&refused));
    assert!(pid_alive(pid));
    let record = oci.record(&id);
    oci.ok(&["kill", &id, "KILL"]);
    oci.wait_status(&id, "stopped");
    assert_eq!(oci.state(&id)["pid"], 0);
    oci.ok(&["delete", &id]);
    let gone = oci.run(&["state", &id]);
    assert_eq!(gone.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&gone.stderr).contains("does not exist"));
    assert_nothing_left(&oci, &id, &record, &b.join("rootfs"));
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn delete_force_leaves_nothing_in_any_state() {
    let oci = Oci::new();
    let dir = BundleDir::new("bundle");
    // The program forks a child that outlives a kill of PID 1's own
    // process group would not: the cgroup must be emptied.
    let b = bundle(
        dir.path(),
        &["/bin/sh", "-c", "sleep 1000 & exec sleep 1000"],
        |_| {},
    );
    for state in ["created", "running", "stopped"] {
        let id = unique(state);
        oci.ok(&["create", "--bundle", b.to_str().unwrap(), &id]);
        if state != "created" {
            oci.ok(&["start", &id]);
        }
        if state == "stopped" {
            oci.ok(&["kill", &id, "9"]);
            oci.wait_status(&id, "stopped");
        }
        assert_eq!(oci.status(&id), state);
        let record = oci.record(&id);
        oci.ok(&["delete", "--force", &id]);
        assert_nothing_left(&oci, &id, &record, &b.join("rootfs"));
        // The shim retries: a second delete --force is fine, a plain
        // one says the container does not exist.
        oci.ok(&["delete", "--force", &id]);
        let again = oci.run(&["delete", &id]);
        assert_eq!(again.status.code(), Some(1), "{}", context(&again));
        assert!(String::from_utf8_lossy(&again.stderr).contains("does not exist"));
    }
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn two_concurrent_creates_of_one_id_make_one_container() {
    let oci = Oci::new();
    let dir = BundleDir::new("bundle");
    let b = bundle(dir.path(), &["/bin/sleep", "1000"], |_| {});
    let id = unique("twice");
    let err = [dir.join("a.err"), dir.join("b.err")];
    let spawn = |e: &Path| {
        oci.command(&["create", "--bundle", b.to_str().unwrap(), &id])
            .stdout(Stdio::null())
            .stderr(fs::File::create(e).unwrap())
            .spawn()
            .unwrap()
    };
    let (mut a, mut c) = (spawn(&err[0]), spawn(&err[1]));
    let outs =
        [(a.wait().unwrap(), &err[0]), (c.wait().unwrap(), &err[1])].map(|(status, e)| Output {
            status,
            stdout: Vec::new(),
            stderr: fs::read(e).unwrap_or_default(),
        });
    let won: Vec<&Output> = outs.iter().filter(|o| o.status.success()).collect();
    let lost: Vec<&Output> = outs.iter().filter(|o| !o.status.success()).collect();
    assert_eq!(won.len(), 1, "{}\n{}", context(&outs[0]), context(&outs[1]));
    assert_eq!(lost[0].status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&lost[0].stderr).contains("already exists"),
        "{}",
        context(lost[0])
    );
    assert_eq!(oci.status(&id), "created");
    let record = oci.record(&id);
    oci.ok(&["delete", "--force", &id]);
    assert_nothing_left(&oci, &id, &record, &b.join("rootfs"));
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn a_terminal_comes_over_the_console_socket() {
    let oci = Oci::new();
    let dir = BundleDir::new("bundle");
    let b = bundle(dir.path(), &["/bin/sh"], |c| {
        c["process"]["terminal"] = json!(true)
    });
    let sock = dir.join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let id = unique("tty");
    oci.ok(&[
        "create",
        "--bundle",
        b.to_str().unwrap(),
        "--console-socket",
        sock.to_str().unwrap(),
        &id,
    ]);
    let (stream, _) = listener.accept().unwrap();
    let master = std::fs::File::from(
        sandbox::pty::recv_master(std::os::fd::AsFd::as_fd(&stream)).expect("a pty master"),
    );
    oci.ok(&["start", &id]);
    let mut w = master.try_clone().unwrap();
    w.write_all(b"tty; echo MARK$((6*7)); exit\n").unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let mut r = master;
    std::thread::spawn(move || {
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = r.read(&mut buf) {
            if n == 0 {
                break;
            }
            all.extend_from_slice(&buf[..n]);
            let _ = tx.send(all.clone());
        }
    });
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        if let Ok(v) = rx.recv_timeout(Duration::from_millis(200)) {
            seen = v;
        }
        if String::from_utf8_lossy(&seen).contains("MARK42") {
            break;
        }
    }
    let text = String::from_utf8_lossy(&seen).into_owned();
    assert!(
        text.contains("MARK42"),
        "no output through the terminal: {text:?}"
    );
    // The slave is the shell's controlling terminal and stdio.
    assert!(text.contains("/dev/pts/"), "{text:?}");
    oci.ok(&["delete", "--force", &id]);
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn hooks_run_in_order_with_the_state_on_stdin() {
    let oci = Oci::new();
    let dir = BundleDir::new("bundle");
    let log = dir.join("hooks.log");
    let script = dir.join("hook.sh");
    fs::write(
        &script,
        format!(
            "#!/bin/sh\nprintf '%s %s\\n' \"$1\" \"$(cat)\" >> {}\n",
            log.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let host = |stage: &str| json!({"path": script, "args": ["hook.sh", stage]});
    // In the container: /bin/sh is the bundle's busybox, the files land
    // in its rootfs (its mount namespace), as the container's root.
    let inside = |file: &str| json!({"path": "/bin/sh", "args": ["sh", "-c", format!("{{ id -u; cat; }} > /{file}")]});
    let b = bundle(dir.path(), &["/bin/sleep", "1000"], |c| {
        c["hooks"] = json!({
            "prestart": [host("prestart")],
            "createRuntime": [host("createRuntime")],
            "createContainer": [inside("create-container")],
            "startContainer": [inside("start-container")],
            "poststart": [host("poststart")],
            "poststop": [host("poststop")],
        });
    });
    let id = unique("hooks");
    oci.ok(&["create", "--bundle", b.to_str().unwrap(), &id]);
    let rootfs = b.join("rootfs");
    let cc =
        fs::read_to_string(rootfs.join("create-container")).expect("createContainer ran inside");
    assert!(
        !rootfs.join("start-container").exists(),
        "startContainer ran before start"
    );
    oci.ok(&["start", &id]);
    let sc = fs::read_to_string(rootfs.join("start-container")).expect("startContainer ran inside");
    for (name, text) in [("createContainer", &cc), ("startContainer", &sc)] {
        let (uid, state) = text.split_once('\n').unwrap();
        // Root of the container's user namespace, not host root.
        assert_eq!(uid, "0", "{name}: {text}");
        let v: Value = serde_json::from_str(state.trim()).unwrap();
        assert_eq!(v["id"], id.as_str(), "{name}");
        assert_eq!(v["status"], "created", "{name}");
    }
    oci.ok(&["kill", &id, "KILL"]);
    oci.wait_status(&id, "stopped");
    oci.ok(&["delete", &id]);
    let lines: Vec<(String, Value)> = fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| {
            let (stage, state) = l.split_once(' ').unwrap();
            (stage.to_string(), serde_json::from_str(state).unwrap())
        })
        .collect();
    let stages: Vec<&str> = lines.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(
        stages,
        ["prestart", "createRuntime", "poststart", "poststop"]
    );
    let pid = lines[0].1["pid"].as_i64().unwrap();
    assert!(pid > 0);
    let statuses: Vec<&str> = lines
        .iter()
        .map(|(_, v)| v["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["created", "created", "running", "stopped"]);
    assert!(lines.iter().all(|(_, v)| v["id"] == id.as_str()));
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn a_failing_prestart_hook_fails_create_and_leaves_nothing() {
    let oci = Oci::new();
    let dir = BundleDir::new("bundle");
    let script = dir.join("fail.sh");
    fs::write(
        &script,
        "#!/bin/sh\necho 'no network for you' >&2\nexit 3\n",
    )
    .unwrap();
    fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let b = bundle(dir.path(), &["/bin/sleep", "1000"], |c| {
        c["hooks"] = json!({"prestart": [{"path": script, "args": ["fail.sh"]}]});
    });
    let id = unique("badhook");
    let before = uid_leases_held();
    let out = oci.run(&["create", "--bundle", b.to_str().unwrap(), &id]);
    assert_eq!(out.status.code(), Some(1), "{}", context(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("prestart hook") && err.contains("no network for you"),
        "{err}"
    );
    assert!(!oci.root.join(&id).exists(), "state dir left");
    // No process of the container: nothing runs busybox from this rootfs.
    let busybox = file_identity(&b.join("rootfs/bin/busybox"));
    let leftovers: Vec<i32> = all_pids()
        .into_iter()
        .filter(|p| exe_identity(i64::from(*p)) == Some(busybox))
        .collect();
    assert!(leftovers.is_empty(), "processes left: {leftovers:?}");
    let sandboxes = Path::new(RUN_DIR).join("sandboxes");
    assert!(
        !fs::read_dir(&sandboxes)
            .map(|d| d
                .flatten()
                .any(|e| e.file_name().to_string_lossy().contains(&id)))
            .unwrap_or(false),
        "sandbox lock file left"
    );
    // No new persisted uid lease names this root.
    let root = oci.root.path().to_string_lossy().into_owned();
    let after: Vec<String> = uid_leases_held()
        .into_iter()
        .filter(|o| !before.contains(o) && o.starts_with(&root))
        .collect();
    assert!(after.is_empty(), "uid lease left: {after:?}");
}

fn all_pids() -> Vec<i32> {
    fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
        .collect()
}

/// Owners written in the uid pool's slot files.
fn uid_leases_held() -> Vec<String> {
    fs::read_dir(Path::new(RUN_DIR).join("uidpool"))
        .map(|d| {
            d.flatten()
                .filter_map(|e| fs::read_to_string(e.path()).ok())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn errors_are_one_line_and_a_json_log_line() {
    let oci = Oci::new();
    let dir = BundleDir::new("log");
    let log = dir.join("log.json");
    let out = oci.run(&[
        "--log",
        log.to_str().unwrap(),
        "--log-format",
        "json",
        "state",
        "nope",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", context(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    let text = fs::read_to_string(&log).unwrap();
    let line: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(line["level"], "error", "{line}");
    assert!(
        line["msg"].as_str().unwrap().contains("does not exist"),
        "{line}"
    );
    assert!(line["time"].as_str().unwrap().starts_with("20"), "{line}");
    // A bad config names the field; systemd cgroups are refused by name.
    let b = bundle(dir.path(), &["/bin/true"], |c| {
        c["linux"]["cgroupsPath"] = json!("system.slice:docker:abc");
    });
    let out = oci.run(&[
        "--log",
        log.to_str().unwrap(),
        "--log-format",
        "json",
        "create",
        "--bundle",
        b.to_str().unwrap(),
        "x1",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("linux.cgroupsPath") && err.contains("systemd"),
        "{err}"
    );
    // A program the rootfs lacks fails create, naming it.
    let b = bundle(dir.path(), &["/no/such/program"], |_| {});
    let out = oci.run(&["create", "--bundle", b.to_str().unwrap(), "x2"]);
    assert_eq!(out.status.code(), Some(1), "{}", context(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/no/such/program"), "{err}");
    let out = oci.run(&["--systemd-cgroup", "list"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--systemd-cgroup"));
    // Nothing was created by the refusals.
    assert!(
        fs::read_dir(oci.root.path())
            .map(|d| d.count())
            .unwrap_or(0)
            == 0
    );
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn the_container_has_its_own_host_uid_range_and_owns_its_rootfs() {
    let oci = Oci::new();
    let dir = BundleDir::new("bundle");
    let b = bundle(
        dir.path(),
        &[
            "/bin/sh",
            "-c",
            "cat /proc/self/uid_map; touch /made-inside && echo wrote",
        ],
        |_| {},
    );
    let id = unique("ids");
    let out = oci
        .command(&["run", "--bundle", b.to_str().unwrap(), &id])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", context(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    let map: Vec<u64> = text
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    // Root inside is a host uid of a range of its own, not host root.
    assert_eq!(map[0], 0, "{text}");
    assert!(map[1] >= 65536, "identity-like map: {text}");
    assert_eq!(map[2], 65536, "{text}");
    assert!(
        text.contains("wrote"),
        "the container could not write its rootfs: {text}"
    );
    // On disk the file is the image's root's (idmapped), not the
    // container's host uid.
    let m = fs::metadata(b.join("rootfs/made-inside")).unwrap();
    assert_eq!((m.uid(), m.gid()), (0, 0));
    // `run` deleted it.
    assert!(!oci.root.join(&id).exists());
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn a_runtime_class_can_turn_the_uid_range_off() {
    let oci = Oci::new();
    let dir = BundleDir::new("bundle");
    let b = bundle(dir.path(), &["/bin/cat", "/proc/self/uid_map"], |_| {});
    // One symlink per runtime class (containerd's shim passes no
    // arguments), one section per name in the config file.
    let class = dir.join("runtimed-runc-hostids");
    std::os::unix::fs::symlink(&oci.bin, &class).unwrap();
    let config = dir.join("oci.toml");
    fs::write(
        &config,
        "[runtime.runtimed-runc-hostids]\nuid_range = false\n",
    )
    .unwrap();
    let map_of = |program: &Path, id: &str| {
        let out = Command::new("timeout")
            .arg("60")
            .arg(program)
            .args(["--root", oci.root.path().to_str().unwrap()])
            .args(["run", "--bundle", b.to_str().unwrap(), id])
            .env("RUNTIMED_OCI_CONFIG", &config)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", context(&out));
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(|n| n.parse::<u64>().unwrap())
            .collect::<Vec<u64>>()
    };
    assert_eq!(map_of(&class, &unique("hostids")), [0, 0, 4_294_967_295]);
    // The same binary under the default name keeps its own range.
    let default = dir.join("runtimed-runc");
    std::os::unix::fs::symlink(&oci.bin, &default).unwrap();
    let m = map_of(&default, &unique("ranged"));
    assert_eq!((m[0], m[2]), (0, 65536));
    assert!(m[1] >= 65536, "{m:?}");
    // A mistyped key is refused by name, in one line.
    fs::write(
        &config,
        "[runtime.runtimed-runc-hostids]\nuid_rnge = false\n",
    )
    .unwrap();
    let out = Command::new(&class)
        .args(["--root", oci.root.path().to_str().unwrap(), "list"])
        .env("RUNTIMED_OCI_CONFIG", &config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("uid_rnge"), "{err}");
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn delete_force_cleans_up_after_a_create_that_was_killed() {
    let oci = Oci::new();
    let dir = BundleDir::new("bundle");
    // The prestart hook runs once the container exists and before its
    // state is recorded: it tells us the init's pid, then waits to be
    // killed with its create.
    let script = dir.join("stall.sh");
    fs::write(
        &script,
        format!(
            "#!/bin/sh\necho $$ > {d}/hook.pid\ncat > {d}/hook.state\nexec sleep 60\n",
            d = dir.path().display()
        ),
    )
    .unwrap();
    fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let b = bundle(dir.path(), &["/bin/sleep", "1000"], |c| {
        c["hooks"] = json!({"prestart": [{"path": script, "args": ["stall.sh"]}]});
    });
    let id = unique("killed");
    // Not through `timeout`: the kill must reach create itself.
    let mut create = Command::new(&oci.bin)
        .args(["oci", "--root", oci.root.path().to_str().unwrap()])
        .args(["create", "--bundle", b.to_str().unwrap(), &id])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let state = wait_for(Duration::from_secs(30), || {
        let text = fs::read_to_string(dir.join("hook.state")).ok()?;
        serde_json::from_str::<Value>(&text).ok()
    })
    .expect("the prestart hook never ran");
    let hook: i32 = fs::read_to_string(dir.join("hook.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let _ = create.kill();
    let _ = create.wait();
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(hook), nix::sys::signal::SIGKILL);
    let init = state["pid"].as_i64().unwrap();
    assert!(
        pid_alive(init),
        "the container should be left by the killed create"
    );
    let owner = oci.root.join(&id);
    assert!(owner.exists());
    // Not a container for `state` (no state was recorded)...
    let out = oci.run(&["state", &id]);
    assert_eq!(out.status.code(), Some(1), "{}", context(&out));
    // ...but `delete --force` removes what is left.
    oci.ok(&["delete", "--force", &id]);
    let gone = wait_for(Duration::from_secs(20), || (!pid_alive(init)).then_some(()));
    assert!(gone.is_some(), "init {init} left running");
    assert!(!owner.exists());
    let held = uid_leases_held();
    let owner = owner.to_string_lossy().into_owned();
    assert!(!held.contains(&owner), "uid lease still held by {owner}");
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn spec_features_and_list_answer_as_runcs() {
    let oci = Oci::new();
    let dir = BundleDir::new("bundle");
    let spec_dir = dir.join("spec");
    fs::create_dir_all(&spec_dir).unwrap();
    oci.ok(&["spec", "--bundle", spec_dir.to_str().unwrap()]);
    let config: Value =
        serde_json::from_str(&fs::read_to_string(spec_dir.join("config.json")).unwrap()).unwrap();
    assert!(config["ociVersion"].as_str().is_some(), "{config}");
    assert!(config["process"]["args"].is_array(), "{config}");
    // An existing config.json is never overwritten.
    let again = oci.run(&["spec", "--bundle", spec_dir.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(1), "{}", context(&again));
    let features: Value = serde_json::from_slice(&oci.ok(&["features"]).stdout).unwrap();
    let hooks: Vec<&str> = features["hooks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap())
        .collect();
    for h in [
        "prestart",
        "createRuntime",
        "createContainer",
        "startContainer",
        "poststart",
        "poststop",
    ] {
        assert!(hooks.contains(&h), "{h}: {features}");
    }
    assert_eq!(features["linux"]["cgroup"]["systemd"], false);
    let b = bundle(dir.path(), &["/bin/sleep", "1000"], |_| {});
    let id = unique("listed");
    oci.ok(&["create", "--bundle", b.to_str().unwrap(), &id]);
    let all: Value = serde_json::from_slice(&oci.ok(&["list", "--format", "json"]).stdout).unwrap();
    let me = all
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id.as_str())
        .expect("listed");
    assert_eq!(me["status"], "created");
    assert!(me["pid"].as_i64().unwrap() > 0);
    let quiet = String::from_utf8(oci.ok(&["list", "-q"]).stdout).unwrap();
    assert_eq!(quiet.trim(), id);
    oci.ok(&["delete", "--force", &id]);
    let none: Value =
        serde_json::from_slice(&oci.ok(&["list", "--format", "json"]).stdout).unwrap();
    assert_eq!(none, json!([]));
}

/// The scheduler state letter of a process (`T` = stopped).
fn proc_state(pid: i64) -> Option<char> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    s.rsplit(')').next()?.trim_start().chars().next()
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn kill_all_reaches_every_process_of_the_container() {
    let oci = Oci::new();
    let dir = BundleDir::new("bundle");
    let b = bundle(
        dir.path(),
        &["/bin/sh", "-c", "sleep 1000 & sleep 1000 & wait"],
        |_| {},
    );
    let id = unique("killall");
    oci.ok(&["create", "--bundle", b.to_str().unwrap(), &id]);
    oci.ok(&["start", &id]);
    let record = oci.record(&id);
    let procs = Path::new(record["cgroup_paths"][0].as_str().unwrap()).join("cgroup.procs");
    let pids = wait_for(Duration::from_secs(20), || {
        let pids: Vec<i64> = fs::read_to_string(&procs)
            .ok()?
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect();
        (pids.len() >= 3).then_some(pids)
    })
    .expect("the shell and its two sleeps");
    // SIGSTOP: not fatal, so each process shows whether it got it (a
    // fatal signal to PID 1 alone would take the others with it).
    oci.ok(&["kill", "--all", &id, "STOP"]);
    let all_stopped = wait_for(Duration::from_secs(20), || {
        pids.iter()
            .all(|p| proc_state(*p) == Some('T'))
            .then_some(())
    });
    let states: Vec<_> = pids.iter().map(|p| (p, proc_state(*p))).collect();
    assert!(
        all_stopped.is_some(),
        "not every process stopped: {states:?}"
    );
    oci.ok(&["delete", "--force", &id]);
    assert_nothing_left(&oci, &id, &record, &b.join("rootfs"));
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn run_forwards_signals_and_exits_with_the_containers_status() {
    let oci = Oci::new();
    let dir = BundleDir::new("bundle");
    let b = bundle(
        dir.path(),
        &[
            "/bin/sh",
            "-c",
            "trap 'echo got-term; exit 3' TERM; echo ready; sleep 1000 & wait",
        ],
        |_| {},
    );
    let id = unique("fwd");
    let out_path = dir.join("run.out");
    let mut run = Command::new(&oci.bin)
        .args(["oci", "--root", oci.root.path().to_str().unwrap()])
        .args(["run", "--bundle", b.to_str().unwrap(), &id])
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out_path).unwrap())
        .spawn()
        .unwrap();
    let ready = wait_for(Duration::from_secs(30), || {
        fs::read_to_string(&out_path)
            .ok()
            .filter(|t| t.contains("ready"))
    });
    assert!(ready.is_some(), "the container never started");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(run.id() as i32),
        nix::sys::signal::SIGTERM,
    )
    .unwrap();
    let status = wait_for(Duration::from_secs(30), || run.try_wait().ok().flatten());
    let Some(status) = status else {
        let _ = run.kill();
        panic!("run did not end after SIGTERM");
    };
    assert_eq!(
        status.code(),
        Some(3),
        "{}",
        fs::read_to_string(&out_path).unwrap()
    );
    assert!(fs::read_to_string(&out_path).unwrap().contains("got-term"));
    assert!(!oci.root.join(&id).exists(), "run left its container");
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn a_relative_cgroups_path_is_below_the_callers_cgroup() {
    let oci = Oci::new();
    let dir = BundleDir::new("bundle");
    let parent = unique("octest");
    let path = format!("{parent}/ctr");
    let b = bundle(dir.path(), &["/bin/sleep", "1000"], |c| {
        c["linux"]["cgroupsPath"] = json!(path);
    });
    let id = unique("cgpath");
    oci.ok(&["create", "--bundle", b.to_str().unwrap(), &id]);
    let record = oci.record(&id);
    let pid = record["pid"].as_i64().unwrap();
    // In every hierarchy the container uses, its cgroup is ours + path.
    let own = fs::read_to_string("/proc/self/cgroup").unwrap();
    let theirs = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    // `ctrl` "" is the unified (v2) line, `0::PATH`.
    let line_of = |text: &str, ctrl: &str| -> Option<String> {
        text.lines()
            .find(|l| {
                let mut f = l.splitn(3, ':');
                let (id, ctrls) = (f.next(), f.next());
                match ctrl {
                    "" => id == Some("0") && ctrls == Some(""),
                    _ => ctrls.is_some_and(|c| c.split(',').any(|x| x == ctrl)),
                }
            })
            .and_then(|l| l.splitn(3, ':').nth(2))
            .map(str::to_owned)
    };
    // A hybrid host's v2 line has no controllers: not where runtimed
    // places cgroups there.
    let v2_only = own.lines().all(|l| l.starts_with("0::"));
    let mut checked = 0;
    for ctrl in ["pids", "memory", ""] {
        if ctrl.is_empty() && !v2_only {
            continue;
        }
        let (Some(mine), Some(its)) = (line_of(&own, ctrl), line_of(&theirs, ctrl)) else {
            continue;
        };
        let want = Path::new(&mine).join(&path);
        assert_eq!(Path::new(&its), want, "{ctrl}: {theirs}");
        checked += 1;
    }
    assert!(
        checked > 0,
        "no pids, memory or unified hierarchy: {theirs}"
    );
    oci.ok(&["delete", "--force", &id]);
    assert_nothing_left(&oci, &id, &record, &b.join("rootfs"));
    // The parent stays (engines share theirs); the test removes its own.
    for p in record["cgroup_paths"].as_array().unwrap() {
        let leaf = Path::new(p.as_str().unwrap());
        let parent = leaf.parent().unwrap();
        assert!(parent.ends_with(parent_name(&path)), "{}", parent.display());
        fs::remove_dir(parent).unwrap();
    }
}

fn parent_name(path: &str) -> String {
    path.split('/').next().unwrap().to_string()
}

/// An overlay mounted by the test (as an engine mounts a container's
/// rootfs), unmounted on drop.
struct OverlayMount(PathBuf);

impl OverlayMount {
    fn new(lowers: &[&Path], upper: &Path, work: &Path, at: &Path) -> OverlayMount {
        let lower: Vec<String> = lowers.iter().map(|p| p.display().to_string()).collect();
        let data = format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.join(":"),
            upper.display(),
            work.display()
        );
        let out = Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o", &data])
            .arg(at)
            .output()
            .expect("run mount");
        assert!(out.status.success(), "mount overlay: {}", context(&out));
        OverlayMount(at.to_path_buf())
    }
}

impl Drop for OverlayMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Lines of the mount table naming `dir` (as a mount point or in a
/// mount's options).
fn mounts_naming(dir: &Path) -> Vec<String> {
    let d = dir.to_string_lossy().into_owned();
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(&d))
        .map(str::to_string)
        .collect()
}

/// Every path below `dir` with its kind, owner, mode, size and mtime.
fn tree_snapshot(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = fs::symlink_metadata(&p).unwrap();
        out.push(format!(
            "{} {:o} {}:{} {} {}",
            p.display(),
            m.mode(),
            m.uid(),
            m.gid(),
            m.size(),
            m.mtime_nsec()
        ));
        if m.is_dir() {
            for e in fs::read_dir(&p).unwrap().flatten() {
                stack.push(e.path());
            }
        }
    }
    out.sort();
    out
}

/// An engine's bundle: busybox split over two lower layers (the program
/// in one, /etc and the mount points in the other), an upper and a work
/// dir, and the overlay of them mounted on `rootfs` by the test.
fn overlay_bundle(dir: &Path, args: &[&str]) -> (PathBuf, PathBuf, PathBuf, OverlayMount) {
    let b = bundle(dir, args, |_| {});
    let (l0, l1) = (dir.join("l0"), dir.join("l1"));
    fs::rename(b.join("rootfs"), &l0).unwrap();
    fs::create_dir(&l1).unwrap();
    for d in ["proc", "dev", "tmp", "etc"] {
        fs::rename(l0.join(d), l1.join(d)).unwrap();
    }
    fs::write(l1.join("etc/passwd"), "root:x:0:0:root:/:/bin/sh\n").unwrap();
    let (upper, work) = (dir.join("up/diff"), dir.join("up/work"));
    fs::create_dir_all(&upper).unwrap();
    fs::create_dir_all(&work).unwrap();
    fs::create_dir(b.join("rootfs")).unwrap();
    let m = OverlayMount::new(&[&l1, &l0], &upper, &work, &b.join("rootfs"));
    (b, l0, l1, m)
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn an_engines_overlay_rootfs_is_rebuilt_from_idmapped_layers() {
    let oci = Oci::new();
    let dir = BundleDir::new("overlay");
    // The report goes to the root: the host reads it in the upper dir.
    let (b, l0, l1, engine_mount) = overlay_bundle(
        dir.path(),
        &[
            "/bin/sh",
            "-c",
            "{ cat /proc/self/uid_map; stat -c %u /bin/busybox; \
             echo hi > /etc/x && echo wrote; stat -c %u /etc/x; } > /report 2>&1",
        ],
    );
    let lowers_before = (tree_snapshot(&l0), tree_snapshot(&l1));
    let ours = mounts_naming(dir.path());
    assert_eq!(ours.len(), 1, "{ours:#?}");
    let id = unique("ovl");
    oci.ok(&["create", "--bundle", b.to_str().unwrap(), &id]);
    // The container's overlay and its layers are in its own mount
    // namespace only: nothing new on the host.
    assert_eq!(
        mounts_naming(dir.path()),
        ours,
        "create mounted on the host"
    );
    let record = oci.record(&id);
    oci.ok(&["start", &id]);
    oci.wait_status(&id, "stopped");
    let report = fs::read_to_string(dir.join("up/diff/report")).expect("report in the upper dir");
    let mut lines = report.lines();
    let map: Vec<u64> = lines
        .next()
        .unwrap()
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    // Root inside is a host uid of a range of its own.
    assert_eq!((map[0], map[2]), (0, 65536), "{report}");
    assert!(map[1] >= 65536, "identity-like map: {report}");
    // The lower layers' files (host uid 0 on disk) are root's inside,
    // not the overflow uid.
    assert_eq!(lines.next(), Some("0"), "{report}");
    assert_eq!(lines.next(), Some("wrote"), "{report}");
    assert_eq!(lines.next(), Some("0"), "{report}");
    // The engine's view: the write is in its upper dir, stored as the
    // image's root (host uid 0), not as the container's host uid.
    let x = dir.join("up/diff/etc/x");
    assert_eq!(fs::read_to_string(&x).unwrap(), "hi\n");
    let m = fs::metadata(&x).unwrap();
    assert_eq!((m.uid(), m.gid()), (0, 0));
    let r = fs::metadata(dir.join("up/diff/report")).unwrap();
    assert_eq!((r.uid(), r.gid()), (0, 0));
    // Through the engine's own mount too (docker diff's view).
    assert_eq!(fs::read_to_string(b.join("rootfs/etc/x")).unwrap(), "hi\n");
    assert_eq!((tree_snapshot(&l0), tree_snapshot(&l1)), lowers_before);
    oci.ok(&["delete", &id]);
    assert_eq!(mounts_naming(dir.path()), ours, "delete left a mount");
    drop(engine_mount);
    assert_nothing_left(&oci, &id, &record, dir.path());
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn a_layer_that_cannot_be_idmapped_fails_create_naming_it() {
    let oci = Oci::new();
    let dir = BundleDir::new("overlay-bad");
    // A lower layer that is itself an overlayfs mount: overlayfs cannot
    // be idmapped, though it can be another overlay's lower layer.
    let inner = dir.join("inner");
    for d in ["l", "u", "w", "m"] {
        fs::create_dir_all(inner.join(d)).unwrap();
    }
    fs::write(inner.join("l/inner-file"), "x").unwrap();
    let inner_mount = OverlayMount::new(
        &[&inner.join("l")],
        &inner.join("u"),
        &inner.join("w"),
        &inner.join("m"),
    );
    let b = bundle(dir.path(), &["/bin/true"], |_| {});
    let (l0, upper, work) = (dir.join("l0"), dir.join("up/diff"), dir.join("up/work"));
    fs::rename(b.join("rootfs"), &l0).unwrap();
    fs::create_dir_all(&upper).unwrap();
    fs::create_dir_all(&work).unwrap();
    fs::create_dir(b.join("rootfs")).unwrap();
    let outer = OverlayMount::new(&[&inner.join("m"), &l0], &upper, &work, &b.join("rootfs"));
    let ours = mounts_naming(dir.path());
    assert_eq!(ours.len(), 2, "{ours:#?}");
    let id = unique("ovlbad");
    let out = oci.run(&["create", "--bundle", b.to_str().unwrap(), &id]);
    assert_eq!(out.status.code(), Some(1), "{}", context(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    let layer = inner.join("m").display().to_string();
    assert!(
        err.contains(&format!("layer {layer} cannot be idmapped")),
        "{err}"
    );
    assert!(err.contains("uid_range = false"), "{err}");
    // Nothing of it stays: no state, no lease, no mount.
    assert!(!oci.root.join(&id).exists());
    let root = oci.root.path().to_string_lossy().into_owned();
    let held: Vec<String> = uid_leases_held()
        .into_iter()
        .filter(|o| o.contains(&root))
        .collect();
    assert!(held.is_empty(), "{held:?}");
    assert_eq!(mounts_naming(dir.path()), ours);
    drop(outer);
    drop(inner_mount);
    assert!(mounts_naming(dir.path()).is_empty());
}
