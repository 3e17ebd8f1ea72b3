//! The client verbs (`session`, `exec`, `shell`, `cp`) end to end: the
//! real binary against a real `runtimed serve`, checked against what the
//! daemon's API says (and, for `shell`, through a real pty).
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::sys::termios::{tcgetattr, LocalFlags};
use nix::unistd::Pid;
use runtimed_tests::daemon::Daemon;
use runtimed_tests::{runtimed_bin, TempDir, EXIT_NOT_FOUND, EXIT_RUNTIMED_FAILED};
use serde_json::{json, Value};

/// Longest any one CLI invocation may take.
const WATCHDOG: Duration = Duration::from_secs(60);

/// A finished CLI run.
struct Out {
    argv: Vec<String>,
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: String,
}

impl Out {
    fn code(&self) -> i32 {
        self.status
            .code()
            .unwrap_or_else(|| 128 + self.status.signal().unwrap_or(0))
    }

    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    fn context(&self) -> String {
        format!(
            "\n  argv: {:?}\n  exit: {}\n  stderr: {}\n  stdout: {}",
            self.argv,
            self.code(),
            self.stderr.trim_end(),
            self.stdout().chars().take(2000).collect::<String>()
        )
    }

    fn assert_ok(&self) -> &Out {
        assert_eq!(self.code(), 0, "{}", self.context());
        self
    }

    /// Exactly one non-empty stderr line, starting `runtimed: `.
    fn one_error_line(&self) -> String {
        let lines: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect();
        assert_eq!(lines.len(), 1, "one stderr line expected{}", self.context());
        assert!(
            lines[0].starts_with("runtimed: "),
            "stderr must start `runtimed: `{}",
            self.context()
        );
        lines[0].to_string()
    }
}

fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        buf
    })
}

/// Waits for `child`, killing it and failing past the watchdog.
fn wait_child(child: &mut Child, what: &str) -> ExitStatus {
    let deadline = Instant::now() + WATCHDOG;
    loop {
        if let Some(st) = child.try_wait().expect("wait") {
            return st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {WATCHDOG:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `runtimed VERB... --socket S ARGS...`: `verb` words come first (so the
/// flag lands on the verb that defines it), then `args`.
fn cli(d: &Daemon, verb: &[&str], args: &[&str], stdin: Option<&[u8]>) -> Out {
    let socket = d.socket.to_string_lossy().into_owned();
    let mut argv: Vec<String> = verb.iter().map(|s| s.to_string()).collect();
    argv.push("--socket".into());
    argv.push(socket);
    argv.extend(args.iter().map(|s| s.to_string()));
    run_bin(&argv, stdin)
}

fn run_bin(argv: &[String], stdin: Option<&[u8]>) -> Out {
    let mut child = Command::new(runtimed_bin())
        .args(argv)
        .env_remove("RUNTIMED_SOCKET")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn runtimed");
    if let (Some(data), Some(mut pipe)) = (stdin.map(<[u8]>::to_vec), child.stdin.take()) {
        std::thread::spawn(move || {
            let _ = pipe.write_all(&data);
        });
    }
    let out = drain(child.stdout.take().expect("stdout"));
    let err = drain(child.stderr.take().expect("stderr"));
    let status = wait_child(&mut child, &format!("runtimed {argv:?}"));
    Out {
        argv: argv.to_vec(),
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: String::from_utf8_lossy(&err.join().unwrap_or_default()).into_owned(),
    }
}

fn session(d: &Daemon) -> String {
    d.create_session(&json!({}))
}

// ---- session ------------------------------------------------------------------

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn session_create_ls_rm_round_trip() {
    let d = Daemon::start();
    let out = cli(
        &d,
        &["session", "create"],
        &[
            "--label",
            "team=blue",
            "--label",
            "tier=ci",
            "--env",
            "GREETING=hi there",
            "--memory",
            "128M",
            "--pids",
            "64",
            "--ttl",
            "10m",
        ],
        None,
    );
    out.assert_ok();
    let id = out.stdout().trim().to_string();
    assert!(
        !id.is_empty() && !id.contains(char::is_whitespace),
        "{}",
        out.context()
    );

    // The daemon got exactly what the flags said.
    let info = d.req("GET", &format!("/v1/sessions/{id}"), None);
    assert_eq!(info.status, 200, "{}", info.text());
    let info = info.json();
    assert_eq!(info["labels"], json!({"team": "blue", "tier": "ci"}));
    assert_eq!(info["env"]["GREETING"], "hi there");
    assert_eq!(info["limits"]["memory_bytes"], 128 << 20);
    assert_eq!(info["limits"]["pids"], 64);
    assert!(info["expires_at"].is_string(), "{info}");
    let echoed = d.exec(&id, &["sh", "-c", "printf %s \"$GREETING\""]);
    assert_eq!(echoed["stdout"], "hi there");

    let other = session(&d);
    let table = cli(&d, &["session", "ls"], &[], None);
    let text = table.assert_ok().stdout();
    let header = text.lines().next().unwrap_or_default();
    for col in ["ID", "STATE", "CREATED", "EXPIRES", "LABELS"] {
        assert!(header.contains(col), "{}", table.context());
    }
    let row = text
        .lines()
        .find(|l| l.starts_with(&id))
        .unwrap_or_else(|| panic!("no row for {id}{}", table.context()));
    assert!(
        row.contains("running") && row.contains("team=blue,tier=ci"),
        "{row}"
    );
    assert!(text.lines().any(|l| l.starts_with(&other)), "{text}");

    // Filters go to the daemon; --json is its own list.
    let filtered = cli(
        &d,
        &["session", "ls"],
        &["--label", "team=blue", "--json"],
        None,
    );
    let v: Value = serde_json::from_slice(&filtered.assert_ok().stdout).expect("ls --json");
    let ids: Vec<&str> = v["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .filter_map(|s| s["id"].as_str())
        .collect();
    assert_eq!(ids, [id.as_str()], "{v}");
    let quiet = cli(&d, &["session", "ls"], &["-q", "--label", "team=red"], None);
    assert_eq!(quiet.assert_ok().stdout(), "", "{}", quiet.context());

    let rm = cli(&d, &["session", "rm"], &[&id, &other], None);
    assert_eq!(rm.assert_ok().stdout(), format!("{id}\n{other}\n"));
    d.req("GET", &format!("/v1/sessions/{id}"), None)
        .assert_error(404, "session_not_found");
    let listed = cli(&d, &["session", "ls"], &["-q"], None);
    assert!(!listed.stdout().contains(&id), "{}", listed.context());

    // Removing it again: the daemon's refusal, one line, status 1.
    let again = cli(&d, &["session", "rm"], &[&id], None);
    assert_eq!(again.code(), 1, "{}", again.context());
    let line = again.one_error_line();
    assert!(
        line.contains("session_not_found") && line.contains(&id),
        "{line}"
    );
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn session_create_json_and_refused_limits() {
    let d = Daemon::start();
    let out = cli(
        &d,
        &["session", "create"],
        &["--json", "--cpus", "0.5"],
        None,
    );
    let v: Value = serde_json::from_slice(&out.assert_ok().stdout).expect("create --json");
    assert_eq!(v["state"], "running", "{v}");
    assert_eq!(v["limits"]["cpus"], 0.5, "{v}");
    let id = v["id"].as_str().expect("id");
    assert_eq!(
        d.req("GET", &format!("/v1/sessions/{id}"), None).status,
        200
    );

    // Past the daemon's maximum: its code, status 1.
    let big = cli(&d, &["session", "create"], &["--memory", "1000G"], None);
    assert_eq!(big.code(), 1, "{}", big.context());
    assert!(
        big.one_error_line().contains("limit_out_of_range"),
        "{}",
        big.context()
    );
    // Not a size at all: refused before any request, status 125.
    let bad = cli(&d, &["session", "create"], &["--memory", "lots"], None);
    assert_eq!(bad.code(), EXIT_RUNTIMED_FAILED, "{}", bad.context());
    bad.one_error_line();
}

// ---- exec ---------------------------------------------------------------------

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn exec_prints_output_and_exits_with_the_program_code() {
    let d = Daemon::start();
    let id = session(&d);
    let out = cli(
        &d,
        &["exec"],
        &[&id, "--", "sh", "-c", "echo out; echo err >&2; exit 7"],
        None,
    );
    assert_eq!(out.code(), 7, "{}", out.context());
    assert_eq!(out.stdout(), "out\n", "{}", out.context());
    assert_eq!(out.stderr, "err\n", "{}", out.context());

    // Without `--` too, and a signal is 128+N.
    let out = cli(&d, &["exec"], &[&id, "sh", "-c", "kill -TERM $$"], None);
    assert_eq!(out.code(), 128 + 15, "{}", out.context());
    assert_eq!(out.stderr, "", "{}", out.context());
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn exec_streams_output_while_the_program_runs() {
    let d = Daemon::start();
    let id = session(&d);
    // The program prints, then waits for a file only the test creates once
    // it has seen that output: buffered output would deadlock into "late".
    let script = "echo first; i=0; while [ ! -e /workspace/go ]; do \
        i=$((i+1)); [ $i -gt 300 ] && { echo late; exit 1; }; sleep 0.1; done; echo second";
    let socket = d.socket.to_string_lossy().into_owned();
    let mut child = Command::new(runtimed_bin())
        .args(["exec", "--socket", &socket, &id, "--", "sh", "-c", script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut first = [0u8; 6];
    stdout.read_exact(&mut first).expect("first line");
    assert_eq!(&first, b"first\n");
    let put = d.req("PUT", &format!("/v1/sessions/{id}/files/go"), Some(b""));
    assert_eq!(put.status, 204, "{}", put.text());
    let rest = drain(stdout);
    let status = wait_child(&mut child, "exec");
    assert_eq!(
        String::from_utf8_lossy(&rest.join().unwrap_or_default()),
        "second\n"
    );
    assert_eq!(status.code(), Some(0));
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn exec_of_a_missing_program_is_127() {
    let d = Daemon::start();
    let id = session(&d);
    let out = cli(&d, &["exec"], &[&id, "--", "/nonexistent/prog", "x"], None);
    assert_eq!(out.code(), EXIT_NOT_FOUND, "{}", out.context());
    let line = out.one_error_line();
    assert!(
        line.contains("exec") && line.contains("ENOENT") && line.contains("/nonexistent/prog"),
        "{line}"
    );
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn exec_stdin_env_cwd_and_timeout() {
    let d = Daemon::start();
    let id = session(&d);
    // Not UTF-8, with a NUL: the bytes must arrive as they are.
    let data: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let out = cli(&d, &["exec"], &["--stdin", &id, "--", "cat"], Some(&data));
    assert_eq!(out.code(), 0, "{}", out.context());
    assert!(
        out.stdout == data,
        "stdin did not round-trip{}",
        out.context()
    );
    // Without --stdin the program reads EOF (and the CLI does not wait for ours).
    let out = cli(&d, &["exec"], &[&id, "--", "wc", "-c"], Some(b"ignored"));
    assert_eq!(out.assert_ok().stdout().trim(), "0");

    let out = cli(
        &d,
        &["exec"],
        &[
            "-e",
            "A=1",
            "--env",
            "B=two words",
            "-w",
            "/tmp",
            &id,
            "--",
            "sh",
            "-c",
            "echo \"$A|$B|$(pwd)\"",
        ],
        None,
    );
    assert_eq!(out.assert_ok().stdout(), "1|two words|/tmp\n");

    let started = Instant::now();
    let out = cli(
        &d,
        &["exec"],
        &["--timeout", "300ms", &id, "--", "sleep", "30"],
        None,
    );
    assert_eq!(out.code(), 128 + 9, "{}", out.context());
    assert!(
        out.one_error_line().contains("wall_timeout"),
        "{}",
        out.context()
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{}",
        out.context()
    );
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn errors_are_one_line() {
    let d = Daemon::start();
    let out = cli(&d, &["exec"], &["no-such-session", "--", "true"], None);
    assert_eq!(out.code(), 1, "{}", out.context());
    let line = out.one_error_line();
    assert!(
        line.contains("session_not_found") && line.contains("no-such-session"),
        "{line}"
    );
    for verb in [&["session", "rm"][..], &["shell"], &["session", "inspect"]] {
        let out = cli(&d, verb, &["no-such-session"], None);
        assert_eq!(out.code(), 1, "{}", out.context());
        assert!(
            out.one_error_line().contains("session_not_found"),
            "{}",
            out.context()
        );
    }

    // No daemon behind the socket: the client's own failure.
    let gone = d.dir.join("nothing-here.sock");
    let gone = gone.to_string_lossy().into_owned();
    for argv in [
        vec!["exec", "--socket", &gone, "s", "--", "true"],
        vec!["session", "ls", "--socket", &gone],
        vec!["cp", "--socket", &gone, "/etc/hostname", "s:x"],
        vec!["shell", "--socket", &gone, "s"],
    ] {
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        let out = run_bin(&argv, None);
        assert_eq!(out.code(), EXIT_RUNTIMED_FAILED, "{}", out.context());
        let line = out.one_error_line();
        assert!(
            line.contains("cannot connect") && line.contains(&gone),
            "{line}"
        );
    }

    // Bad usage: clap's message, still one line and 125.
    for argv in [
        &["exec", "s"][..],
        &["session", "create", "--label", "novalue"],
        &["exec", "--timeout", "soon", "s", "true"],
        &["shell", "--detach-keys", "ctrl-1", "s"],
    ] {
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        let out = run_bin(&argv, None);
        assert_eq!(out.code(), EXIT_RUNTIMED_FAILED, "{}", out.context());
        out.one_error_line();
    }
}

// ---- cp -----------------------------------------------------------------------

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn cp_a_file_in_and_out() {
    let d = Daemon::start();
    let id = session(&d);
    let tmp = TempDir::new("cp-file");
    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let src = tmp.join("tool.bin");
    fs::write(&src, &data).expect("write");
    fs::set_permissions(&src, fs::Permissions::from_mode(0o750)).expect("chmod");

    let src_s = src.to_string_lossy().into_owned();
    cli(&d, &["cp"], &[&src_s, &format!("{id}:")], None).assert_ok();
    // It landed under its own name, bytes and mode intact.
    let got = d.req("GET", &format!("/v1/sessions/{id}/files/tool.bin"), None);
    assert_eq!(got.status, 200, "{}", got.text());
    assert!(got.body == data, "uploaded bytes differ");
    let mode = d.exec(&id, &["stat", "-c", "%a", "/workspace/tool.bin"]);
    assert_eq!(mode["stdout"], "750\n", "{mode}");

    // To a new name, by absolute path.
    cli(
        &d,
        &["cp"],
        &[&src_s, &format!("{id}:/workspace/renamed")],
        None,
    )
    .assert_ok();
    let got = d.req("GET", &format!("/v1/sessions/{id}/files/renamed"), None);
    assert!(got.body == data, "renamed upload differs");

    // Out again: to a new host path, and into a host directory.
    let back = tmp.join("back.bin");
    let back_s = back.to_string_lossy().into_owned();
    cli(&d, &["cp"], &[&format!("{id}:tool.bin"), &back_s], None).assert_ok();
    assert!(
        fs::read(&back).expect("read back") == data,
        "downloaded bytes differ"
    );
    let mode = fs::metadata(&back).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode, 0o750);
    let into = tmp.join("into");
    fs::create_dir(&into).expect("mkdir");
    cli(
        &d,
        &["cp"],
        &[&format!("{id}:renamed"), &into.to_string_lossy()],
        None,
    )
    .assert_ok();
    assert!(fs::read(into.join("renamed")).expect("read") == data);

    // A missing file is the daemon's refusal; a path outside /workspace ours.
    let out = cli(&d, &["cp"], &[&format!("{id}:nope"), &back_s], None);
    assert_eq!(out.code(), 1, "{}", out.context());
    assert!(
        out.one_error_line().contains("file_not_found"),
        "{}",
        out.context()
    );
    let out = cli(&d, &["cp"], &[&format!("{id}:/etc/passwd"), &back_s], None);
    assert_eq!(out.code(), EXIT_RUNTIMED_FAILED, "{}", out.context());
    assert!(
        out.one_error_line().contains("/workspace"),
        "{}",
        out.context()
    );
    let out = cli(&d, &["cp"], &[&src_s, &back_s], None);
    assert_eq!(out.code(), EXIT_RUNTIMED_FAILED, "{}", out.context());
    out.one_error_line();
}

/// A host tree as (relative path → kind and content), to compare trees.
#[derive(Debug, PartialEq, Eq)]
enum Node {
    Dir(u32),
    File(Vec<u8>, u32),
    Link(PathBuf),
}

fn tree(root: &Path) -> BTreeMap<PathBuf, Node> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Node>) {
        for e in fs::read_dir(dir).expect("read_dir") {
            let path = e.expect("entry").path();
            let rel = path.strip_prefix(root).expect("prefix").to_path_buf();
            let meta = fs::symlink_metadata(&path).expect("lstat");
            let mode = meta.permissions().mode() & 0o777;
            if meta.file_type().is_symlink() {
                out.insert(rel, Node::Link(fs::read_link(&path).expect("readlink")));
            } else if meta.is_dir() {
                out.insert(rel, Node::Dir(mode));
                walk(root, &path, out);
            } else {
                out.insert(rel, Node::File(fs::read(&path).expect("read"), mode));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn cp_a_directory_in_and_out() {
    let d = Daemon::start();
    let id = session(&d);
    let tmp = TempDir::new("cp-dir");
    let src = tmp.join("proj");
    fs::create_dir_all(src.join("src/deep/er")).expect("mkdir");
    fs::create_dir_all(src.join("empty")).expect("mkdir");
    fs::write(src.join("README"), "hello\n").expect("write");
    fs::write(src.join("src/deep/er/data.bin"), [0u8, 255, 1, 254]).expect("write");
    fs::write(src.join("run.sh"), "#!/bin/sh\necho ran\n").expect("write");
    fs::set_permissions(src.join("run.sh"), fs::Permissions::from_mode(0o755)).expect("chmod");
    symlink("src/deep/er/data.bin", src.join("link")).expect("symlink");
    let long = "n".repeat(150);
    fs::write(src.join("src").join(&long), "long name").expect("write");
    let want = tree(&src);

    let src_s = src.to_string_lossy().into_owned();
    cli(&d, &["cp"], &[&src_s, &format!("{id}:")], None).assert_ok();
    let ran = d.exec(&id, &["/workspace/proj/run.sh"]);
    assert_eq!(ran["stdout"], "ran\n", "{ran}");
    let listed = d.exec(&id, &["sh", "-c", "cd /workspace/proj && find . | sort"]);
    let listed = listed["stdout"].as_str().unwrap_or_default().to_string();
    for p in ["./README", "./empty", "./link", "./src/deep/er/data.bin"] {
        assert!(listed.lines().any(|l| l == p), "{p} missing: {listed}");
    }
    // DIR/. copies the contents into an existing directory.
    d.exec(&id, &["mkdir", "/workspace/flat"]);
    cli(
        &d,
        &["cp"],
        &[&format!("{src_s}/."), &format!("{id}:flat")],
        None,
    )
    .assert_ok();
    let flat = d.exec(&id, &["cat", "/workspace/flat/README"]);
    assert_eq!(flat["stdout"], "hello\n", "{flat}");

    // Out to a new directory: the same tree.
    let back = tmp.join("back");
    let back_s = back.to_string_lossy().into_owned();
    cli(&d, &["cp"], &[&format!("{id}:proj"), &back_s], None).assert_ok();
    assert_eq!(tree(&back), want);
    // Into an existing directory: under its own name.
    cli(
        &d,
        &["cp"],
        &[&format!("{id}:/workspace/proj"), &back_s],
        None,
    )
    .assert_ok();
    assert_eq!(tree(&back.join("proj")), want);

    // As a tar stream on stdout.
    let out = cli(&d, &["cp"], &[&format!("{id}:proj"), "-"], None);
    out.assert_ok();
    let mut tar = Command::new("tar")
        .args(["-t", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("tar");
    let mut tar_in = tar.stdin.take().expect("tar stdin");
    let bytes = out.stdout.clone();
    std::thread::spawn(move || tar_in.write_all(&bytes));
    let names = tar.wait_with_output().expect("tar -t");
    let names = String::from_utf8_lossy(&names.stdout).into_owned();
    assert!(
        names
            .lines()
            .any(|l| l.trim_end_matches('/') == "src/deep/er/data.bin"),
        "{names}"
    );
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn cp_refuses_archives_that_lead_out_of_the_destination() {
    let d = Daemon::start();
    let id = session(&d);
    let tmp = TempDir::new("cp-hostile");
    let outside = tmp.join("outside");
    fs::create_dir(&outside).expect("mkdir");
    // What code in a session can leave for whoever copies it out.
    for (name, target) in [
        ("abs", "/etc"),
        ("up", "../../.."),
        ("host", &*outside.to_string_lossy()),
    ] {
        let made = d.exec(
            &id,
            &["sh", "-c", &format!("mkdir -p /workspace/bad-{name} && echo x > /workspace/bad-{name}/f && ln -s '{target}' /workspace/bad-{name}/l")],
        );
        assert_eq!(made["exit_code"], 0, "{made}");
        let dest = tmp.join(&format!("dest-{name}"));
        let out = cli(
            &d,
            &["cp"],
            &[&format!("{id}:bad-{name}"), &dest.to_string_lossy()],
            None,
        );
        assert_eq!(out.code(), EXIT_RUNTIMED_FAILED, "{}", out.context());
        assert!(
            out.one_error_line().contains("leads out"),
            "{}",
            out.context()
        );
        // Nothing was written: not even the destination directory.
        assert!(
            !dest.exists(),
            "{} created{}",
            dest.display(),
            out.context()
        );
    }
    assert_eq!(fs::read_dir(&outside).expect("read_dir").count(), 0);
}

// ---- shell --------------------------------------------------------------------

/// The CLI on a pty the test holds the master of, like a terminal emulator.
struct Terminal {
    master: fs::File,
    slave: OwnedFd,
    child: Child,
    seen: Arc<Mutex<Vec<u8>>>,
}

impl Terminal {
    fn spawn(argv: &[&str], rows: u16, cols: u16) -> Terminal {
        let size = nix::pty::Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let pty = nix::pty::openpty(Some(&size), None).expect("openpty");
        let stdio = || Stdio::from(pty.slave.try_clone().expect("dup slave"));
        let child = Command::new(runtimed_bin())
            .args(argv)
            .env_remove("RUNTIMED_SOCKET")
            .stdin(stdio())
            .stdout(stdio())
            .stderr(stdio())
            .spawn()
            .expect("spawn runtimed shell");
        let master = fs::File::from(pty.master);
        let mut reader = master.try_clone().expect("dup master");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        // Ends with the test process (we hold the slave open, so no EOF).
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().expect("lock").extend_from_slice(&buf[..n]);
            }
        });
        Terminal {
            master,
            slave: pty.slave,
            child,
            seen,
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.seen.lock().expect("lock")).into_owned()
    }

    /// Waits until `want` shows up in everything the terminal got so far.
    fn expect(&mut self, want: &str) -> String {
        let mut deadline = Instant::now() + Duration::from_secs(30);
        let mut exited = false;
        loop {
            let text = self.text();
            if text.contains(want) {
                return text;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("{want:?} never showed up on the terminal; it got {text:?}");
            }
            // Once the CLI is gone, only what is still in flight can come.
            if !exited && matches!(self.child.try_wait(), Ok(Some(_))) {
                exited = true;
                deadline = deadline.min(Instant::now() + Duration::from_secs(1));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Forgets what was seen (so the next `expect` sees only new output).
    fn clear(&self) {
        self.seen.lock().expect("lock").clear();
    }

    fn type_in(&mut self, keys: &[u8]) {
        self.master.write_all(keys).expect("write to the pty");
    }

    fn wait(&mut self) -> i32 {
        let st = wait_child(&mut self.child, "runtimed shell");
        st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0))
    }

    fn local_flags(&self) -> LocalFlags {
        tcgetattr(self.slave.as_fd())
            .expect("tcgetattr")
            .local_flags
    }
}

impl Drop for Terminal {
    /// A failed test must not leave the CLI behind.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn shell_runs_a_terminal_with_our_size_and_exit_code() {
    let d = Daemon::start();
    let id = session(&d);
    let socket = d.socket.to_string_lossy().into_owned();
    let cooked = {
        let probe = nix::pty::openpty(None, None).expect("openpty");
        tcgetattr(probe.slave.as_fd())
            .expect("tcgetattr")
            .local_flags
    };
    assert!(cooked.contains(LocalFlags::ICANON | LocalFlags::ECHO));
    let mut t = Terminal::spawn(
        &["shell", "--socket", &socket, &id, "--", "/bin/sh"],
        50,
        132,
    );
    t.expect("$ ");
    // The CLI put our terminal in raw mode: keys go to the remote side.
    let raw = t.local_flags();
    assert!(
        !raw.intersects(LocalFlags::ICANON | LocalFlags::ECHO | LocalFlags::ISIG),
        "{raw:?}"
    );

    t.type_in(b"echo hi-$((6*7))\r");
    t.expect("hi-42");
    // The size was sent at the start...
    t.type_in(b"stty size\r");
    t.expect("50 132");
    // ...and again on SIGWINCH.
    sandbox::pty::set_winsize(
        t.master.as_fd(),
        sandbox::pty::WinSize {
            rows: 40,
            cols: 100,
        },
    )
    .expect("TIOCSWINSZ");
    kill(Pid::from_raw(t.child.id() as i32), Signal::SIGWINCH).expect("SIGWINCH");
    t.clear();
    // The resize message and the keys travel the same WebSocket, in order.
    t.type_in(b"stty size\r");
    t.expect("40 100");
    // Ctrl-C reaches the remote program instead of ending the CLI.
    t.type_in(b"sh -c 'echo ready-$((2+3)); exec sleep 30'\r");
    t.expect("ready-5");
    t.type_in(&[0x03]);
    t.type_in(b"echo after-$((1+1))\r");
    t.expect("after-2");

    t.type_in(b"exit 3\r");
    assert_eq!(t.wait(), 3, "terminal: {:?}", t.text());
    // Cooked mode is back.
    assert_eq!(t.local_flags(), cooked);
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn shell_detaches_and_reattaches() {
    let d = Daemon::start();
    let id = session(&d);
    let socket = d.socket.to_string_lossy().into_owned();
    let mut t = Terminal::spawn(&["shell", "--socket", &socket, &id], 24, 80);
    t.type_in(b"echo one-$((1+1))\r");
    t.expect("one-2");
    // Ctrl-P Ctrl-Q: the CLI leaves, the terminal stays.
    t.type_in(&[0x10, 0x11]);
    assert_eq!(t.wait(), 0, "terminal: {:?}", t.text());
    let text = t.expect("detached from terminal ");
    let pty = text
        .split("detached from terminal ")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .expect("pty id")
        .to_string();
    let ptys = cli(&d, &["session", "ptys"], &[&id], None);
    let row = ptys
        .assert_ok()
        .stdout()
        .lines()
        .find(|l| l.starts_with(&pty))
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("{pty} not listed{}", ptys.context()));
    assert!(row.contains("running"), "{row}");

    let mut again = Terminal::spawn(
        &["shell", "--socket", &socket, "--attach", &pty, &id],
        30,
        90,
    );
    // The scrollback comes first.
    again.expect("one-2");
    again.type_in(b"stty size; exit 4\r");
    // Attaching resized it to the new terminal.
    again.expect("30 90");
    assert_eq!(again.wait(), 4, "terminal: {:?}", again.text());

    // The ended terminal is reported with its code.
    let ptys = cli(&d, &["session", "ptys"], &["--json", &id], None);
    let v: Value = serde_json::from_slice(&ptys.assert_ok().stdout).expect("ptys --json");
    let entry = v["ptys"]
        .as_array()
        .and_then(|a| a.iter().find(|p| p["id"] == pty.as_str()))
        .cloned();
    if let Some(p) = entry {
        assert_eq!(p["exit_code"], 4, "{v}");
    }
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn shell_restores_the_terminal_when_told_to_stop() {
    let d = Daemon::start();
    let id = session(&d);
    let socket = d.socket.to_string_lossy().into_owned();
    let mut t = Terminal::spawn(
        &["shell", "--socket", &socket, &id, "--", "/bin/sh"],
        24,
        80,
    );
    t.type_in(b"echo up-$((4*4))\r");
    t.expect("up-16");
    assert!(!t.local_flags().contains(LocalFlags::ICANON));
    kill(Pid::from_raw(t.child.id() as i32), Signal::SIGTERM).expect("SIGTERM");
    assert_eq!(t.wait(), 128 + 15, "terminal: {:?}", t.text());
    let flags = t.local_flags();
    assert!(
        flags.contains(LocalFlags::ICANON | LocalFlags::ECHO | LocalFlags::ISIG),
        "{flags:?}"
    );
}
