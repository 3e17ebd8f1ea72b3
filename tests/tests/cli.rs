//! The `runtimed run` command line: exit statuses, error lines, stdio
//! pass-through, working directory, `--tty`, `--rootfs DIR`.
#![forbid(unsafe_code)]

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use runtimed_tests::{
    harness, missing, unique, wait_for, TempDir, Termination, EXIT_NOT_EXECUTABLE, EXIT_NOT_FOUND,
    EXIT_RUNTIMED_FAILED,
};

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn exit_code_passes_through() {
    let h = harness!();
    let out = h.sandbox().cmd(["/bin/sh", "-c", "exit 7"]).run();
    assert_eq!(out.code(), 7, "{}", out.context());
    let r = out.report();
    assert_eq!(r.termination, Termination::Exited, "{}", out.context());
    assert_eq!(r.exit_code, Some(7));
    assert_eq!(r.signal, None);
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn death_by_signal_is_128_plus_n() {
    let h = harness!();
    let out = h.sandbox().cmd(["/bin/sh", "-c", "kill -TERM $$"]).run();
    assert_eq!(out.code(), 128 + 15, "{}", out.context());
    let r = out.report();
    assert_eq!(r.termination, Termination::Signaled, "{}", out.context());
    assert_eq!(r.signal, Some(15));
    assert_eq!(r.exit_code, None);
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn missing_program_is_127_with_one_error_line() {
    let h = harness!();
    let out = h.sandbox().cmd(["/nonexistent"]).run();
    assert_eq!(out.code(), EXIT_NOT_FOUND, "{}", out.context());
    let line = out.one_error_line();
    assert!(
        line.contains("exec") && line.contains("/nonexistent"),
        "{line}"
    );
    if let Some(Ok(r)) = &out.report {
        let err = r
            .error
            .as_ref()
            .unwrap_or_else(|| panic!("report has no error{}", out.context()));
        assert!(err.step.contains("exec"), "error step {:?}", err.step);
        assert_eq!(err.errno.as_deref(), Some("ENOENT"), "{}", out.context());
    }
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn non_executable_program_is_126() {
    let h = harness!();
    let ws = TempDir::world_writable("noexec");
    let script = ws.join("script.sh");
    fs::write(&script, "#!/bin/sh\necho should not run\n").expect("write script");
    fs::set_permissions(&script, fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = h
        .sandbox()
        .opt("--workspace")
        .opt(ws.path())
        .cmd(["/workspace/script.sh"])
        .run();
    assert_eq!(out.code(), EXIT_NOT_EXECUTABLE, "{}", out.context());
    let line = out.one_error_line();
    assert!(line.contains("exec"), "{line}");
    assert!(
        !out.stdout_str().contains("should not run"),
        "{}",
        out.context()
    );
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn bad_size_is_125_with_one_error_line() {
    let h = harness!();
    let out = h
        .sandbox()
        .opts(["--memory", "12Q"])
        .cmd(["/bin/true"])
        .run();
    assert_eq!(out.code(), EXIT_RUNTIMED_FAILED, "{}", out.context());
    let line = out.one_error_line();
    assert!(line.contains("12Q") || line.contains("memory"), "{line}");
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn bad_duration_is_125() {
    let h = harness!();
    let out = h
        .sandbox()
        .opts(["--wall-time", "5 parsecs"])
        .cmd(["/bin/true"])
        .run();
    assert_eq!(out.code(), EXIT_RUNTIMED_FAILED, "{}", out.context());
    out.one_error_line();
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn network_other_than_none_is_rejected() {
    let h = harness!();
    let out = h.sandbox().opts(["--net", "host"]).cmd(["/bin/true"]).run();
    assert_eq!(out.code(), EXIT_RUNTIMED_FAILED, "{}", out.context());
    let line = out.one_error_line();
    assert!(
        line.contains("net") && line.contains("host"),
        "unclear message: {line}"
    );
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn unknown_option_is_125() {
    let h = harness!();
    let out = h
        .sandbox()
        .opts(["--no-such-option"])
        .cmd(["/bin/true"])
        .run();
    assert_eq!(out.code(), EXIT_RUNTIMED_FAILED, "{}", out.context());
    assert!(!out.stderr.is_empty(), "no message{}", out.context());
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn stdio_passes_through() {
    let h = harness!();
    let input = format!("{}\nsecond line\n", unique("stdin"));
    let out = h
        .sandbox()
        .stdin(input.as_bytes())
        .cmd(["/bin/sh", "-c", "cat; echo to-stderr >&2"])
        .run();
    assert_eq!(out.code(), 0, "{}", out.context());
    assert_eq!(out.stdout_str(), input, "{}", out.context());
    assert_eq!(out.stderr_str(), "to-stderr\n", "{}", out.context());
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn working_directory_defaults_to_workspace() {
    let h = harness!();
    let out = h.sandbox().cmd(["/bin/pwd"]).run();
    assert_eq!(
        out.stdout_str().trim_end(),
        "/workspace",
        "{}",
        out.context()
    );
    let out = h
        .sandbox()
        .opts(["--workdir", "/tmp"])
        .cmd(["/bin/pwd"])
        .run();
    assert_eq!(out.stdout_str().trim_end(), "/tmp", "{}", out.context());
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn without_tty_stdin_is_not_a_terminal() {
    let h = harness!();
    let out = h.sandbox().cmd(["/bin/sh", "-c", "tty"]).run();
    assert_eq!(
        out.stdout_str().trim_end(),
        "not a tty",
        "{}",
        out.context()
    );
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn tty_gives_a_terminal_with_the_callers_size() {
    use nix::pty::{openpty, Winsize};
    let h = harness!();
    let size = Winsize {
        ws_row: 37,
        ws_col: 101,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = openpty(Some(&size), None).expect("openpty");
    let mut child = Command::new(&h.runtimed)
        .args(["run", "--tty", "--", "/bin/sh", "-c", "tty; stty size"])
        .stdin(Stdio::from(pty.slave.try_clone().expect("dup slave")))
        .stdout(Stdio::from(pty.slave.try_clone().expect("dup slave")))
        .stderr(Stdio::from(pty.slave))
        .spawn()
        .expect("spawn runtimed");
    // Our copies of the slave are gone (moved into the Command and dropped),
    // so reading the master ends with EIO once the sandbox closes its side.
    let mut master = fs::File::from(pty.master);
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = master.read(&mut buf) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        out
    });
    let started = Instant::now();
    let status = wait_for(Duration::from_secs(30), || {
        child.try_wait().expect("try_wait")
    });
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("runtimed --tty did not finish in 30 s");
    };
    let wait_reader = wait_for(Duration::from_secs(5), || {
        reader.is_finished().then_some(())
    });
    assert!(
        wait_reader.is_some(),
        "the terminal stayed open after runtimed exited"
    );
    let text = String::from_utf8_lossy(&reader.join().expect("reader")).replace('\r', "");
    assert!(
        status.success(),
        "runtimed --tty failed ({status:?}) after {:?}: {text}",
        started.elapsed()
    );
    assert!(text.contains("/dev/pts/"), "not a pty inside: {text:?}");
    assert!(
        text.contains("37 101"),
        "window size not passed in: {text:?}"
    );
}

/// A busybox we can copy into a bare rootfs: it must be static.
fn static_busybox() -> Option<std::path::PathBuf> {
    ["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .map(std::path::PathBuf::from)
        .find(|p| {
            // A dynamic executable names its loader (PT_INTERP) in the file.
            fs::read(p).is_ok_and(|bytes| !bytes.windows(14).any(|w| w == b"/lib64/ld-linu"))
        })
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn rootfs_dir_runs_its_own_binaries() {
    let h = harness!();
    let Some(busybox) = static_busybox() else {
        missing("no static /bin/busybox (apt-get install busybox-static)");
    };
    let root = TempDir::new("rootfs");
    for dir in ["bin", "dev", "proc", "tmp", "etc", "workspace"] {
        fs::create_dir(root.join(dir)).expect("mkdir");
    }
    fs::copy(&busybox, root.join("bin/busybox")).expect("copy busybox");
    let marker = unique("rootfs");
    fs::write(root.join("marker"), &marker).expect("write marker");

    let out = h
        .sandbox()
        .opt("--rootfs")
        .opt(root.path())
        .cmd(["/bin/busybox", "echo", "hi"])
        .run();
    assert_eq!(out.code(), 0, "{}", out.context());
    assert_eq!(out.stdout_str(), "hi\n", "{}", out.context());

    // It is that directory: our marker is there, the host's /usr is not.
    let out = h
        .sandbox()
        .opt("--rootfs")
        .opt(root.path())
        .cmd([
            "/bin/busybox",
            "sh",
            "-c",
            "cat /marker; echo; ls /usr 2>/dev/null || echo no-usr",
        ])
        .run();
    assert_eq!(
        out.stdout_str(),
        format!("{marker}\nno-usr\n"),
        "{}",
        out.context()
    );
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn doctor_passes_on_this_host_and_reports_each_check() {
    let h = harness!();
    let out = Command::new(&h.runtimed)
        .arg("doctor")
        .output()
        .expect("doctor");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "doctor failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for check in [
        "root",
        "kernel",
        "namespaces",
        "cgroups",
        "seccomp",
        "landlock",
        "sandbox",
    ] {
        assert!(
            text.lines().any(|l| l.contains(check)),
            "no {check} line:\n{text}"
        );
    }
    // The last check really started a sandbox.
    assert!(
        text.lines()
            .any(|l| l.starts_with("ok") && l.contains("sandbox") && l.contains("host uid")),
        "{text}"
    );

    let out = Command::new(&h.runtimed)
        .args(["doctor", "--json"])
        .output()
        .expect("doctor --json");
    let v: runtimed_tests::serde_json::Value =
        runtimed_tests::serde_json::from_slice(&out.stdout).expect("doctor --json is JSON");
    let findings = v.as_array().expect("an array of findings");
    assert!(findings.iter().all(|f| f["level"] != "fail"), "{v}");
    assert!(
        findings
            .iter()
            .any(|f| f["check"] == "sandbox" && f["level"] == "ok"),
        "{v}"
    );
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn tty_follows_window_size_changes() {
    use nix::pty::{openpty, Winsize};
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    use std::io::Write;
    let h = harness!();
    let size = Winsize {
        ws_row: 24,
        ws_col: 80,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = openpty(Some(&size), None).expect("openpty");
    let tag = unique("resize");
    let mut child = Command::new(&h.runtimed)
        .args([
            "run",
            "--tty",
            "--",
            "/bin/sh",
            "-c",
            "echo ready; read x; stty size",
            &tag,
        ])
        .stdin(Stdio::from(pty.slave.try_clone().expect("dup slave")))
        .stdout(Stdio::from(pty.slave.try_clone().expect("dup slave")))
        .stderr(Stdio::from(pty.slave.try_clone().expect("dup slave")))
        .spawn()
        .expect("spawn runtimed");
    let mut master = fs::File::from(pty.master);
    let mut reader_master = master.try_clone().expect("dup master");
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = reader_master.read(&mut buf) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        out
    });
    // Wait for the shell inside, then resize the outer terminal and tell
    // runtimed, as a terminal emulator does (SIGWINCH).
    let up = wait_for(Duration::from_secs(20), || {
        (!runtimed_tests::host_procs_matching(&tag).is_empty()).then_some(())
    });
    assert!(up.is_some(), "the sandboxed shell did not start");
    std::thread::sleep(Duration::from_millis(200));
    sandbox::pty::set_winsize(
        std::os::fd::AsFd::as_fd(&pty.slave),
        sandbox::pty::WinSize {
            rows: 50,
            cols: 132,
        },
    )
    .expect("resize the outer pty");
    kill(Pid::from_raw(child.id() as i32), Signal::SIGWINCH).expect("SIGWINCH to runtimed");
    std::thread::sleep(Duration::from_millis(300));
    drop(pty.slave);
    master.write_all(b"go\r").expect("type into the terminal");
    let status = wait_for(Duration::from_secs(20), || {
        child.try_wait().expect("try_wait")
    });
    let Some(status) = status else {
        let _ = child.kill();
        panic!("runtimed --tty did not finish");
    };
    drop(master);
    let text = String::from_utf8_lossy(&reader.join().expect("reader")).replace('\r', "");
    assert!(status.success(), "{status:?}: {text}");
    assert!(
        text.contains("50 132"),
        "the new size did not reach the sandbox: {text:?}"
    );
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn rootfs_dir_needs_no_mount_points_and_is_never_written() {
    let h = harness!();
    let Some(busybox) = static_busybox() else {
        missing("no static /bin/busybox (apt-get install busybox-static)");
    };
    // Only /bin/busybox: no /proc, /dev, /tmp or /workspace to mount on.
    let root = TempDir::new("bare-rootfs");
    fs::create_dir(root.join("bin")).expect("mkdir bin");
    fs::copy(&busybox, root.join("bin/busybox")).expect("copy busybox");
    let out = h
        .sandbox()
        .opt("--rootfs")
        .opt(root.path())
        .cmd([
            "/bin/busybox",
            "sh",
            "-c",
            "echo ok > /tmp/t && /bin/busybox cat /tmp/t && /bin/busybox ls /proc/self/ns >/dev/null && \
             if /bin/busybox touch /written 2>/dev/null; then echo root-writable; fi",
        ])
        .run();
    assert_eq!(out.code(), 0, "{}", out.context());
    let text = out.stdout_str();
    assert!(text.contains("ok"), "{text}");
    assert!(
        !text.contains("root-writable"),
        "the root is writable: {text}"
    );
    let mut entries: Vec<String> = fs::read_dir(root.path())
        .expect("read rootfs")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    entries.sort();
    assert_eq!(
        entries,
        vec!["bin".to_string()],
        "the caller's root directory was changed"
    );
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn symlinks_in_a_rootfs_cannot_lead_mounts_out_of_it() {
    let h = harness!();
    let Some(busybox) = static_busybox() else {
        missing("no static /bin/busybox (apt-get install busybox-static)");
    };
    // A host directory anyone may write to, named by absolute symlinks in
    // the rootfs: before pivot_root a path walk would have followed them.
    let host = TempDir::world_writable("symlink-target");
    let root = TempDir::new("hostile-rootfs");
    fs::create_dir(root.join("bin")).expect("mkdir bin");
    fs::copy(&busybox, root.join("bin/busybox")).expect("copy busybox");
    std::os::unix::fs::symlink(host.path(), root.join("data")).expect("symlink data");
    fs::create_dir(root.join("real")).expect("mkdir real");
    std::os::unix::fs::symlink("real", root.join("inside")).expect("symlink inside");

    // A bind below the escaping symlink: refused, nothing made on the host.
    let out = h
        .sandbox()
        .opt("--rootfs")
        .opt(root.path())
        .opts(["--bind", "/etc/hostname:/data/file"])
        .cmd(["/bin/busybox", "true"])
        .no_report()
        .run();
    assert_eq!(out.code(), EXIT_RUNTIMED_FAILED, "{}", out.context());
    out.one_error_line();
    let made: Vec<_> = fs::read_dir(host.path()).expect("read host dir").collect();
    assert!(
        made.is_empty(),
        "a file was created on the host through the rootfs: {made:?}"
    );

    // A symlink that stays inside the root is followed inside it.
    let src = TempDir::new("bind-src");
    let marker = unique("marker");
    fs::write(src.join("marker"), &marker).expect("write marker");
    let out = h
        .sandbox()
        .opt("--rootfs")
        .opt(root.path())
        .opt("--bind")
        .opt(format!("{}:/inside", src.path().display()))
        .cmd(["/bin/busybox", "cat", "/real/marker"])
        .run();
    assert_eq!(out.code(), 0, "{}", out.context());
    assert_eq!(out.stdout_str(), marker);
    assert!(fs::read_dir(host.path())
        .expect("read host dir")
        .next()
        .is_none());
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn doctor_fails_with_a_fix_when_sandboxes_cannot_be_made() {
    // As an unprivileged user (setpriv from util-linux) runtimed cannot
    // isolate sandboxes: doctor must say so, give a fix and exit non-zero.
    let h = harness!();
    // A copy nobody can reach (the checkout may be below a 0700 directory).
    let dir = TempDir::new("doctor-nobody");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod dir");
    let bin = dir.join("runtimed");
    fs::copy(&h.runtimed, &bin).expect("copy runtimed");
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).expect("chmod runtimed");
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&bin)
        .arg("doctor")
        .current_dir("/")
        .output()
        .expect("setpriv (util-linux)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "doctor passed as nobody: {text}");
    let fail = text
        .lines()
        .position(|l| l.starts_with("FAIL") && l.contains("root"))
        .unwrap_or_else(|| panic!("no FAIL root line: {text}"));
    assert!(
        text.lines()
            .nth(fail + 1)
            .is_some_and(|l| l.contains("fix:")),
        "no fix hint: {text}"
    );
    assert!(text.contains("cannot be isolated"), "{text}");
}
