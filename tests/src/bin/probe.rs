//! The in-sandbox probe: a small program the end-to-end tests run inside a
//! sandbox to observe it from within.
//!
//! Every subcommand tries one thing and prints ONE JSON line on stdout saying
//! what happened, e.g. `{"check":"mount","ok":false,"errno":"EPERM"}`. `ok`
//! means the operation succeeded, so an attack subcommand reports `ok: true`
//! only if the attack worked; run on the host as root the same subcommands
//! succeed, which is how the tests prove the probe can detect a hole.
//!
//! The probe is single-threaded, so forking from it is sound: it proves so
//! with a `SingleThreaded` token where it forks (`single()`), and makes its
//! forbidden system calls through `sandbox::seccomp::attempt`.
#![forbid(unsafe_code)]

use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use sandbox::helper::{exit_now, Forked, SingleThreaded};
use sandbox::seccomp::attempt;
use serde_json::{json, Map, Value};

const USAGE: &str = "usage: probe SUBCOMMAND [ARGS...]
  mount [DIR] | unshare-user | unshare-mount | setns | ptrace [PID] | bpf
  perf-event-open | keyctl | io-uring-setup | userfaultfd | clone3
  personality VALUE | clone-flags FLAGS
  caps | ids | hostname | fds | ifaces | ps | env
  read PATH | write PATH [CONTENT] | fill PATH MIB | stat PATH | ls PATH
  connect HOST:PORT | kill PID SIG | open-files [MAX]
  membomb MIB | forkbomb [MAX_FAILURES] [TAG] | cpuburn CHILDREN SECS [TAG]
  flood [stdout|stderr] | daemonize SECS [FILE] | sleep SECS [TAG]
  chmod PATH OCTAL | create PATH OCTAL | mknod PATH fifo|char|block|file [OCTAL]
  link SRC DST | rename SRC DST | socket-file PATH | rlimit-core [CMD...]";

/// Errno name (`"EPERM"`) as the tests compare it.
fn errno_name(e: Errno) -> String {
    format!("{e:?}")
}

fn io_errno(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(raw) => errno_name(Errno::from_raw(raw)),
        None if e.kind() == io::ErrorKind::TimedOut => "ETIMEDOUT".to_owned(),
        None => format!("{:?}", e.kind()),
    }
}

/// `{"check": .., "ok": .., "errno": ..}` plus extra fields.
fn outcome(check: &str, result: Result<(), String>, extra: Value) -> Value {
    let mut map = Map::new();
    map.insert("check".into(), json!(check));
    map.insert("ok".into(), json!(result.is_ok()));
    map.insert(
        "errno".into(),
        result.err().map_or(Value::Null, Value::String),
    );
    if let Value::Object(extra) = extra {
        map.extend(extra);
    }
    Value::Object(map)
}

fn arg<'a>(args: &'a [String], i: usize, what: &str) -> Result<&'a str, String> {
    args.get(i)
        .map(String::as_str)
        .ok_or_else(|| format!("missing argument {what}"))
}

fn parse<T: std::str::FromStr>(args: &[String], i: usize, what: &str) -> Result<T, String> {
    let s = arg(args, i, what)?;
    s.parse().map_err(|_| format!("bad {what}: {s:?}"))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let rest = &args[1..];
    let result = match cmd.as_str() {
        "mount" => Ok(check_mount(rest)),
        "unshare-user" => Ok(check_unshare("unshare-user", CloneFlags::CLONE_NEWUSER)),
        "unshare-mount" => Ok(check_unshare("unshare-mount", CloneFlags::CLONE_NEWNS)),
        "setns" => Ok(check_setns()),
        "ptrace" => check_ptrace(rest),
        "bpf" => Ok(check_bpf()),
        "perf-event-open" => Ok(check_perf_event_open()),
        "keyctl" => Ok(check_keyctl()),
        "personality" => parse(rest, 0, "VALUE").map(check_personality),
        "clone-flags" => parse(rest, 0, "FLAGS").map(check_clone_flags),
        "io-uring-setup" => Ok(check_io_uring_setup()),
        "userfaultfd" => Ok(check_userfaultfd()),
        "clone3" => Ok(check_clone3()),
        "caps" => Ok(show_caps()),
        "ids" => Ok(show_ids()),
        "hostname" => Ok(show_hostname()),
        "fds" => Ok(show_fds()),
        "ifaces" => Ok(show_ifaces()),
        "ps" => Ok(show_ps()),
        "env" => Ok(show_env()),
        "read" => arg(rest, 0, "PATH").map(check_read),
        "write" => arg(rest, 0, "PATH")
            .map(|p| check_write(p, rest.get(1).map_or("probe\n", String::as_str))),
        "fill" => parse(rest, 1, "MIB").and_then(|mib| Ok(check_fill(arg(rest, 0, "PATH")?, mib))),
        "stat" => arg(rest, 0, "PATH").map(show_stat),
        "ls" => arg(rest, 0, "PATH").map(show_ls),
        "connect" => arg(rest, 0, "HOST:PORT").map(check_connect),
        "kill" => check_kill(rest),
        "open-files" => Ok(check_open_files(
            rest.first().and_then(|s| s.parse().ok()).unwrap_or(1 << 20),
        )),
        "membomb" => parse(rest, 0, "MIB").map(membomb),
        "forkbomb" => Ok(forkbomb(
            rest.first()
                .and_then(|s| s.parse().ok())
                .unwrap_or(u64::MAX),
        )),
        "cpuburn" => {
            parse(rest, 0, "CHILDREN").and_then(|n| Ok(cpuburn(n, parse(rest, 1, "SECS")?)))
        }
        "flood" => Ok(flood(rest.first().map(String::as_str) == Some("stderr"))),
        "daemonize" => {
            parse(rest, 0, "SECS").map(|secs| daemonize(secs, rest.get(1).map(String::as_str)))
        }
        "sleep" => parse(rest, 0, "SECS").map(|secs: f64| {
            std::thread::sleep(Duration::from_secs_f64(secs));
            json!({"check": "sleep", "ok": true, "secs": secs})
        }),
        "chmod" => octal(rest, 1).and_then(|m| Ok(check_chmod(arg(rest, 0, "PATH")?, m))),
        "create" => octal(rest, 1).and_then(|m| Ok(check_create(arg(rest, 0, "PATH")?, m))),
        "mknod" => check_mknod(rest),
        "link" | "rename" => arg(rest, 1, "DST")
            .and_then(|dst| Ok(check_link(cmd == "link", arg(rest, 0, "SRC")?, dst))),
        "socket-file" => arg(rest, 0, "PATH").map(check_socket_file),
        "rlimit-core" => Ok(check_rlimit_core(rest)),
        other => Err(format!("unknown subcommand {other:?}")),
    };
    match result {
        Ok(v) => {
            println!("{v}");
            ExitCode::SUCCESS
        }
        Err(msg) => {
            eprintln!("probe: {msg}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

// ---- forbidden operations -------------------------------------------------

fn check_mount(args: &[String]) -> Value {
    use nix::mount::{mount, umount2, MntFlags, MsFlags};
    let target = args
        .first()
        .cloned()
        .unwrap_or_else(|| format!("/tmp/probe-mnt-{}", std::process::id()));
    let created = fs::create_dir(&target).is_ok();
    let res = mount(
        Some("tmpfs"),
        target.as_str(),
        Some("tmpfs"),
        MsFlags::empty(),
        Some("size=64k"),
    );
    // Undo a successful attack so running the probe on the host leaves nothing.
    if res.is_ok() {
        let _ = umount2(target.as_str(), MntFlags::MNT_DETACH);
    }
    if created {
        let _ = fs::remove_dir(&target);
    }
    outcome("mount", res.map_err(errno_name), json!({"target": target}))
}

fn check_unshare(check: &str, flags: CloneFlags) -> Value {
    outcome(
        check,
        nix::sched::unshare(flags).map_err(errno_name),
        json!({}),
    )
}

fn check_setns() -> Value {
    // /proc/1/ns/net is the interesting target (the init of whatever pid
    // namespace we are in); if it cannot even be opened, setns to our own
    // namespace still tells whether the syscall is allowed.
    let (path, open_errno, file) = match File::open("/proc/1/ns/net") {
        Ok(f) => ("/proc/1/ns/net", None, Ok(f)),
        Err(e) => (
            "/proc/self/ns/net",
            Some(io_errno(&e)),
            File::open("/proc/self/ns/net"),
        ),
    };
    let res = match file {
        Ok(f) => nix::sched::setns(&f, CloneFlags::CLONE_NEWNET).map_err(errno_name),
        Err(e) => Err(io_errno(&e)),
    };
    outcome("setns", res, json!({"ns": path, "open_errno": open_errno}))
}

/// `fork(2)`, `Ok(None)` in the child. The probe never starts a thread
/// before it forks; the token is checked at each fork all the same, as a
/// forked child must not run Rust code after another thread's fork.
fn fork() -> Result<Option<i32>, Errno> {
    let single = SingleThreaded::check().map_err(|_| Errno::EDEADLK)?;
    Ok(match sandbox::helper::fork(&single)? {
        Forked::Parent(pid) => Some(pid),
        Forked::Child(_) => None,
    })
}

fn check_ptrace(args: &[String]) -> Result<Value, String> {
    // PTRACE_TRACEME in a throw-away child: it reports back via its exit code.
    let traceme = match fork() {
        Ok(None) => exit_now(attempt::ptrace_traceme().map_or_else(|e| e as i32, |()| 0)),
        Ok(Some(child)) => match waitpid(Pid::from_raw(child), None) {
            Ok(WaitStatus::Exited(_, 0)) => Ok(()),
            Ok(WaitStatus::Exited(_, code)) => Err(errno_name(Errno::from_raw(code))),
            other => Err(format!("child: {other:?}")),
        },
        Err(e) => Err(format!("fork: {}", errno_name(e))),
    };
    // PTRACE_ATTACH to the given pid, or to a child of ours (which ordinary
    // ptrace rules allow, so only a filter can refuse it).
    let (target, own_child) = match args.first() {
        Some(pid) => (
            pid.parse::<i32>().map_err(|_| format!("bad PID {pid:?}"))?,
            false,
        ),
        None => match fork() {
            Ok(None) => {
                std::thread::sleep(Duration::from_secs(10));
                exit_now(0)
            }
            Ok(Some(child)) => (child, true),
            Err(e) => return Err(format!("fork: {}", errno_name(e))),
        },
    };
    let attach = attempt::ptrace_attach(target).map_err(errno_name);
    if own_child {
        // SIGKILL also ends a traced, stopped child; then reap it.
        let _ = nix::sys::signal::kill(Pid::from_raw(target), Signal::SIGKILL);
        let _ = waitpid(Pid::from_raw(target), None);
    }
    // Either way of getting traced counts as the attack working.
    let res = match (&attach, &traceme) {
        (Err(e), Err(_)) => Err(e.clone()),
        _ => Ok(()),
    };
    Ok(outcome(
        "ptrace",
        res,
        json!({
            "attach_pid": target,
            "attach_ok": attach.is_ok(),
            "attach_errno": attach.err(),
            "traceme_ok": traceme.is_ok(),
            "traceme_errno": traceme.err(),
        }),
    ))
}

fn check_bpf() -> Value {
    // BPF_MAP_CREATE of a one-entry array map: succeeds for root on the host.
    outcome(
        "bpf",
        attempt::bpf_map_create().map_err(errno_name),
        json!({}),
    )
}

fn check_perf_event_open() -> Value {
    // A software CPU-clock counter on ourselves (see attempt's doc for why
    // the host may answer EBADF: a filter decides on the number first).
    let res = attempt::perf_event_open_self().map_err(errno_name);
    outcome("perf-event-open", res, json!({}))
}

fn check_keyctl() -> Value {
    let keyctl = attempt::keyctl_session_keyring().map_err(errno_name);
    // add_key without a payload: enough to see a filter's errno.
    let add_key = attempt::add_key().map_err(errno_name);
    outcome(
        "keyctl",
        keyctl,
        json!({"add_key_ok": add_key.is_ok(), "add_key_errno": add_key.err()}),
    )
}

fn check_personality(value: u32) -> Value {
    let res = attempt::personality(value).map_err(errno_name);
    outcome("personality", res, json!({"value": value}))
}

/// A fork-like clone with namespace flags (decimal), e.g. 268435456 for
/// CLONE_NEWUSER.
fn check_clone_flags(flags: u32) -> Value {
    let res = match SingleThreaded::check() {
        Ok(single) => attempt::clone_with_namespace_flags(&single, flags).map_err(errno_name),
        Err(e) => Err(e.to_string()),
    };
    outcome("clone-flags", res, json!({"flags": flags}))
}

fn check_io_uring_setup() -> Value {
    let res = attempt::io_uring_setup().map_err(errno_name);
    outcome("io-uring-setup", res, json!({}))
}

fn check_userfaultfd() -> Value {
    outcome(
        "userfaultfd",
        attempt::userfaultfd().map_err(errno_name),
        json!({}),
    )
}

fn check_clone3() -> Value {
    // A fork-like clone3; the child leaves at once.
    let res = match SingleThreaded::check() {
        Ok(single) => attempt::clone3(&single).map_err(errno_name),
        Err(e) => Err(e.to_string()),
    };
    outcome("clone3", res, json!({}))
}

fn check_kill(args: &[String]) -> Result<Value, String> {
    let pid: i32 = parse(args, 0, "PID")?;
    let sig: i32 = parse(args, 1, "SIG")?;
    let signal = match sig {
        0 => None,
        n => Some(Signal::try_from(n).map_err(|_| format!("bad signal {n}"))?),
    };
    let res = nix::sys::signal::kill(Pid::from_raw(pid), signal).map_err(errno_name);
    Ok(outcome("kill", res, json!({"pid": pid, "signal": sig})))
}

// ---- identity and process state --------------------------------------------

fn status_fields(names: &[&str]) -> Map<String, Value> {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let mut map = Map::new();
    for line in status.lines() {
        if let Some((key, value)) = line.split_once(':') {
            if names.contains(&key) {
                map.insert(key.to_owned(), json!(value.trim()));
            }
        }
    }
    map
}

fn show_caps() -> Value {
    let mut map = Map::new();
    map.insert("check".into(), json!("caps"));
    map.insert("ok".into(), json!(true));
    map.extend(status_fields(&[
        "CapInh",
        "CapPrm",
        "CapEff",
        "CapBnd",
        "CapAmb",
        "NoNewPrivs",
        "Seccomp",
        "Seccomp_filters",
    ]));
    Value::Object(map)
}

fn read_trimmed(path: &str) -> Value {
    fs::read_to_string(path).map_or(Value::Null, |s| json!(s.trim_end()))
}

fn show_ids() -> Value {
    use nix::unistd::{getegid, geteuid, getgid, getgroups, getpid, getuid};
    let groups: Vec<u32> = getgroups()
        .unwrap_or_default()
        .iter()
        .map(|g| g.as_raw())
        .collect();
    let mut map = Map::new();
    map.insert("check".into(), json!("ids"));
    map.insert("ok".into(), json!(true));
    map.insert("pid".into(), json!(getpid().as_raw()));
    map.insert("uid".into(), json!(getuid().as_raw()));
    map.insert("euid".into(), json!(geteuid().as_raw()));
    map.insert("gid".into(), json!(getgid().as_raw()));
    map.insert("egid".into(), json!(getegid().as_raw()));
    map.insert("groups".into(), json!(groups));
    map.insert("uid_map".into(), read_trimmed("/proc/self/uid_map"));
    map.insert("gid_map".into(), read_trimmed("/proc/self/gid_map"));
    map.insert("setgroups".into(), read_trimmed("/proc/self/setgroups"));
    map.extend(status_fields(&["Uid", "Gid"]));
    Value::Object(map)
}

fn show_hostname() -> Value {
    let res = nix::unistd::gethostname();
    let name = res.as_ref().ok().map(|h| h.to_string_lossy().into_owned());
    outcome(
        "hostname",
        res.map(drop).map_err(errno_name),
        json!({"hostname": name}),
    )
}

fn show_fds() -> Value {
    let mut fds = Vec::new();
    let mut others = Vec::new();
    let res = fs::read_dir("/proc/self/fd").map(|dir| {
        for entry in dir.flatten() {
            let Some(fd) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<i32>().ok())
            else {
                continue;
            };
            let target = fs::read_link(entry.path())
                .map(|t| t.to_string_lossy().into_owned())
                .unwrap_or_default();
            // The directory stream we are reading with shows up as
            // /proc/<pid>/fd; it is ours, not inherited.
            let own_listing = target.starts_with("/proc/") && target.ends_with("/fd");
            if fd > 2 && !own_listing {
                others.push(fd);
            }
            fds.push(json!({"fd": fd, "target": target, "listing": own_listing}));
        }
    });
    others.sort_unstable();
    outcome(
        "fds",
        res.map_err(|e| io_errno(&e)),
        json!({"fds": fds, "others": others}),
    )
}

fn show_ifaces() -> Value {
    let (source, names) = match fs::read_dir("/sys/class/net") {
        Ok(dir) => (
            "sys",
            dir.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect(),
        ),
        Err(_) => {
            let dev = fs::read_to_string("/proc/net/dev").unwrap_or_default();
            let names: Vec<String> = dev
                .lines()
                .skip(2)
                .filter_map(|l| l.split_once(':').map(|(n, _)| n.trim().to_owned()))
                .collect();
            ("proc", names)
        }
    };
    let mut names: Vec<String> = names;
    names.sort();
    json!({"check": "ifaces", "ok": true, "source": source, "ifaces": names})
}

fn show_ps() -> Value {
    let mut procs = Vec::new();
    let res = fs::read_dir("/proc").map(|dir| {
        for entry in dir.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<i32>().ok())
            else {
                continue;
            };
            let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let argv: Vec<String> = cmdline
                .split(|&b| b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            procs.push(json!({"pid": pid, "comm": comm.trim_end(), "argv": argv}));
        }
    });
    outcome(
        "ps",
        res.map_err(|e| io_errno(&e)),
        json!({"self": std::process::id(), "procs": procs}),
    )
}

fn show_env() -> Value {
    let vars: Map<String, Value> = std::env::vars_os()
        .map(|(k, v)| (k.to_string_lossy().into_owned(), json!(v.to_string_lossy())))
        .collect();
    json!({"check": "env", "ok": true, "env": vars})
}

// ---- files ----------------------------------------------------------------

fn check_read(path: &str) -> Value {
    // Read at most 64 KiB: /proc/kcore would otherwise be the size of RAM.
    const LIMIT: usize = 64 * 1024;
    let res = File::open(path).and_then(|f| {
        let mut buf = Vec::new();
        f.take(LIMIT as u64 + 1).read_to_end(&mut buf)?;
        Ok(buf)
    });
    match res {
        Ok(buf) => {
            let truncated = buf.len() > LIMIT;
            let head = String::from_utf8_lossy(&buf[..buf.len().min(256)]).into_owned();
            json!({"check": "read", "ok": true, "errno": null, "path": path,
                   "bytes": buf.len().min(LIMIT), "truncated": truncated, "head": head})
        }
        Err(e) => outcome("read", Err(io_errno(&e)), json!({"path": path})),
    }
}

fn check_write(path: &str, content: &str) -> Value {
    let mut step = "open";
    // No O_TRUNC: the targets include /proc and /dev files, where only the
    // open and the write itself matter.
    let res = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .and_then(|mut f| {
            step = "write";
            f.write_all(content.as_bytes())
        });
    outcome(
        "write",
        res.map_err(|e| io_errno(&e)),
        json!({"path": path, "step": step}),
    )
}

fn check_fill(path: &str, mib: u64) -> Value {
    let chunk = vec![b'f'; 64 * 1024];
    let mut written: u64 = 0;
    let res = File::create(path).and_then(|mut f| {
        while written < mib << 20 {
            let n = f.write(&chunk)?;
            written += n as u64;
        }
        f.sync_all()
    });
    outcome(
        "fill",
        res.map_err(|e| io_errno(&e)),
        json!({"path": path, "written": written}),
    )
}

fn file_type_name(ft: fs::FileType) -> &'static str {
    if ft.is_dir() {
        "dir"
    } else if ft.is_file() {
        "file"
    } else if ft.is_symlink() {
        "symlink"
    } else if ft.is_char_device() {
        "char"
    } else if ft.is_block_device() {
        "block"
    } else if ft.is_fifo() {
        "fifo"
    } else if ft.is_socket() {
        "socket"
    } else {
        "unknown"
    }
}

fn show_stat(path: &str) -> Value {
    use nix::sys::stat::{major, minor};
    match fs::symlink_metadata(path) {
        Ok(md) => {
            let fs_info = nix::sys::statfs::statfs(path).ok();
            let ro = nix::sys::statvfs::statvfs(path)
                .ok()
                .map(|v| v.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY));
            json!({
                "check": "stat", "ok": true, "errno": null, "path": path,
                "type": file_type_name(md.file_type()),
                "mode": format!("{:o}", md.mode() & 0o7777),
                "uid": md.uid(), "gid": md.gid(), "size": md.size(),
                "rdev_major": major(md.rdev()), "rdev_minor": minor(md.rdev()),
                "fs_magic": fs_info.map(|s| format!("{:#x}", s.filesystem_type().0)),
                "read_only": ro,
            })
        }
        Err(e) => outcome("stat", Err(io_errno(&e)), json!({"path": path})),
    }
}

fn show_ls(path: &str) -> Value {
    let res = fs::read_dir(path).map(|dir| {
        let mut names: Vec<String> = dir
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    });
    match res {
        Ok(names) => {
            json!({"check": "ls", "ok": true, "errno": null, "path": path, "entries": names})
        }
        Err(e) => outcome(
            "ls",
            Err(io_errno(&e)),
            json!({"path": path, "entries": []}),
        ),
    }
}

fn check_open_files(max: u64) -> Value {
    let mut files = Vec::new();
    let mut res = Ok(());
    while (files.len() as u64) < max {
        match File::open("/dev/null") {
            Ok(f) => files.push(f),
            Err(e) => {
                res = Err(io_errno(&e));
                break;
            }
        }
    }
    outcome("open-files", res, json!({"opened": files.len()}))
}

// ---- special files and modes on the host's files ---------------------------
//
// `ok` is true when the call did what was asked (an attack subcommand: the
// attack worked); `mode` is what the file has afterwards, in octal.

fn octal(args: &[String], i: usize) -> Result<u32, String> {
    let s = arg(args, i, "OCTAL")?;
    u32::from_str_radix(s, 8).map_err(|_| format!("bad OCTAL: {s:?}"))
}

fn mode_of(path: &str) -> Value {
    fs::symlink_metadata(path).map_or(Value::Null, |m| json!(format!("{:o}", m.mode() & 0o7777)))
}

fn check_chmod(path: &str, mode: u32) -> Value {
    use std::os::unix::fs::PermissionsExt;
    let res = fs::set_permissions(path, fs::Permissions::from_mode(mode));
    outcome(
        "chmod",
        res.map_err(|e| io_errno(&e)),
        json!({"path": path, "mode": mode_of(path)}),
    )
}

/// open(O_CREAT | O_EXCL) with `mode` (umask 0, so the mode is the one asked).
fn check_create(path: &str, mode: u32) -> Value {
    use std::os::unix::fs::OpenOptionsExt;
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::empty());
    let res = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path);
    nix::sys::stat::umask(old);
    outcome(
        "create",
        res.map(drop).map_err(|e| io_errno(&e)),
        json!({"path": path, "mode": mode_of(path)}),
    )
}

fn check_mknod(args: &[String]) -> Result<Value, String> {
    use nix::sys::stat::{makedev, mknod, Mode, SFlag};
    let path = arg(args, 0, "PATH")?;
    let kind = arg(args, 1, "KIND")?;
    let perm = if args.len() > 2 {
        octal(args, 2)?
    } else {
        0o644
    };
    // 1:3 is /dev/null's number: a device that would be harmless on the host.
    let (flag, dev) = match kind {
        "fifo" => (SFlag::S_IFIFO, 0),
        "char" => (SFlag::S_IFCHR, makedev(1, 3)),
        "block" => (SFlag::S_IFBLK, makedev(7, 0)),
        "file" => (SFlag::S_IFREG, 0),
        other => return Err(format!("bad KIND {other:?}")),
    };
    let old = nix::sys::stat::umask(Mode::empty());
    let res = mknod(path, flag, Mode::from_bits_retain(perm), dev);
    nix::sys::stat::umask(old);
    Ok(outcome(
        "mknod",
        res.map_err(errno_name),
        json!({"path": path, "kind": kind, "mode": mode_of(path)}),
    ))
}

fn check_link(hard_link: bool, src: &str, dst: &str) -> Value {
    let (check, res) = if hard_link {
        ("link", fs::hard_link(src, dst))
    } else {
        ("rename", fs::rename(src, dst))
    };
    outcome(
        check,
        res.map_err(|e| io_errno(&e)),
        json!({"src": src, "dst": dst, "mode": mode_of(dst)}),
    )
}

fn check_socket_file(path: &str) -> Value {
    let res = std::os::unix::net::UnixListener::bind(path);
    outcome(
        "socket-file",
        res.map(drop).map_err(|e| io_errno(&e)),
        json!({"path": path, "type": fs::symlink_metadata(path)
            .map_or(Value::Null, |m| json!(file_type_name(m.file_type())))}),
    )
}

/// Tries to lower RLIMIT_CORE to 0 (what a pipe core_pattern ignores) with
/// both calls (glibc's setrlimit is prlimit64; x86_64 also has the old
/// setrlimit), prints the outcome, then execs CMD, if given, with the
/// limit it got (rlimits survive exec).
fn check_rlimit_core(cmd: &[String]) -> Value {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let get = || getrlimit(Resource::RLIMIT_CORE).map_or(Value::Null, |(s, h)| json!([s, h]));
    let before = get();
    let prlimit = setrlimit(Resource::RLIMIT_CORE, 0, 0).map_err(errno_name);
    #[cfg(target_arch = "x86_64")]
    let legacy = attempt::setrlimit_core_zero_legacy().map_err(errno_name);
    #[cfg(not(target_arch = "x86_64"))]
    let legacy: Result<(), String> = Err("ENOSYS".into());
    // What the calls did, not what they answered: a sandbox's seccomp
    // profile answers success and keeps the limit.
    let after = get();
    let lowered = after == json!([0, 0]) && before != after;
    let v = json!({
        "check": "rlimit-core", "ok": lowered, "errno": null,
        "before": before, "after": after,
        "prlimit64": prlimit.err(), "setrlimit": legacy.err(),
    });
    if let Some((prog, args)) = cmd.split_first() {
        use std::os::unix::process::CommandExt;
        println!("{v}");
        let _ = io::stdout().flush();
        let err = std::process::Command::new(prog).args(args).exec();
        return json!({"check": "rlimit-core", "ok": false, "errno": io_errno(&err),
                      "step": "exec"});
    }
    v
}

// ---- network --------------------------------------------------------------

fn check_connect(target: &str) -> Value {
    let addr: Result<SocketAddr, String> = target
        .to_socket_addrs()
        .map_err(|e| io_errno(&e))
        .and_then(|mut a| a.next().ok_or_else(|| "ENOENT".to_owned()));
    let res = addr.and_then(|a| {
        TcpStream::connect_timeout(&a, Duration::from_secs(1))
            .map(drop)
            .map_err(|e| io_errno(&e))
    });
    outcome("connect", res, json!({"target": target}))
}

// ---- resource attacks ------------------------------------------------------

fn membomb(mib: u64) -> Value {
    let mut held: Vec<Vec<u8>> = Vec::new();
    for i in 1..=mib {
        let mut block = vec![0u8; 1 << 20];
        // Touch every page so the memory is really charged.
        for page in block.iter_mut().step_by(4096) {
            *page = 1;
        }
        held.push(std::hint::black_box(block));
        if i % 8 == 0 || i == mib {
            eprintln!("membomb: {i} MiB");
        }
    }
    json!({"check": "membomb", "ok": true, "mib": held.len()})
}

fn forkbomb(max_failures: u64) -> Value {
    let original = std::process::id();
    let (mut forks, mut failures) = (0u64, 0u64);
    let mut errno = None;
    loop {
        match fork() {
            // Every child is a bomb too, with fresh counters.
            Ok(None) => (forks, failures) = (0, 0),
            Ok(Some(_)) => forks += 1,
            Err(e) => {
                failures += 1;
                errno.get_or_insert(errno_name(e));
                if failures >= max_failures {
                    break;
                }
                // Back off a little once the limit holds so the host stays usable.
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
    if std::process::id() != original {
        exit_now(0);
    }
    json!({"check": "forkbomb", "ok": failures == 0, "forks": forks,
           "failures": failures, "errno": errno})
}

fn cpuburn(children: u32, secs: f64) -> Value {
    let start = Instant::now();
    let mut pids = Vec::new();
    for _ in 0..children {
        match fork() {
            Ok(None) => {
                let end = Instant::now() + Duration::from_secs_f64(secs);
                let mut x: u64 = 0;
                while Instant::now() < end {
                    for _ in 0..10_000 {
                        x = std::hint::black_box(
                            x.wrapping_mul(6364136223846793005).wrapping_add(1),
                        );
                    }
                }
                exit_now(0)
            }
            Ok(Some(pid)) => pids.push(pid),
            Err(e) => eprintln!("cpuburn: fork: {}", errno_name(e)),
        }
    }
    // How each child ended: 0 for a normal exit, else the killing signal.
    let mut ends = Vec::new();
    for pid in &pids {
        ends.push(match waitpid(Pid::from_raw(*pid), None) {
            Ok(WaitStatus::Exited(_, code)) => json!({"exit": code}),
            Ok(WaitStatus::Signaled(_, sig, _)) => json!({"signal": sig as i32}),
            other => json!({"other": format!("{other:?}")}),
        });
    }
    let cpu_us = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)
        .map(|u| {
            let us = |t: nix::sys::time::TimeVal| t.tv_sec() * 1_000_000 + t.tv_usec();
            us(u.user_time()) + us(u.system_time())
        })
        .ok();
    json!({"check": "cpuburn", "ok": true, "children": pids.len(), "ends": ends,
           "wall_ms": start.elapsed().as_millis() as u64, "children_cpu_us": cpu_us})
}

fn flood(to_stderr: bool) -> Value {
    let mut line = vec![b'x'; 64 * 1024];
    if let Some(last) = line.last_mut() {
        *last = b'\n';
    }
    let mut total: u64 = 0;
    let err = loop {
        let res = if to_stderr {
            io::stderr().lock().write_all(&line)
        } else {
            io::stdout().lock().write_all(&line)
        };
        match res {
            Ok(()) => total += line.len() as u64,
            Err(e) => break e,
        }
    };
    let v = json!({"check": "flood", "ok": true, "written": total, "errno": io_errno(&err)});
    // The flooded stream is broken; report on the other one.
    if to_stderr {
        v
    } else {
        eprintln!("{v}");
        exit_now(0)
    }
}

fn daemonize(secs: f64, marker: Option<&str>) -> Value {
    match fork() {
        Ok(Some(child)) => {
            // The middle child exits right after forking the daemon, so this
            // wait is short; afterwards the daemon is an orphan.
            let _ = waitpid(Pid::from_raw(child), None);
            json!({"check": "daemonize", "ok": true, "middle_pid": child})
        }
        Ok(None) => {
            let _ = nix::unistd::setsid();
            match fork() {
                Ok(None) => {
                    for fd in 0..3 {
                        let _ = nix::unistd::close(fd);
                    }
                    std::thread::sleep(Duration::from_secs_f64(secs));
                    if let Some(path) = marker {
                        let _ = fs::write(Path::new(OsStr::new(path)), "the daemon survived\n");
                    }
                    exit_now(0)
                }
                _ => exit_now(0),
            }
        }
        Err(e) => outcome("daemonize", Err(errno_name(e)), json!({})),
    }
}
