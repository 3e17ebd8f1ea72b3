//! Setuid, setgid, device and fifo files through every write path a sandbox
//! has to the host (issue 12, point 2): `--workspace` and `--bind SRC:DST:rw`
//! (the judge's box is such a bind: `judges/tests/sandboxed.rs` shows it
//! still compiles), and an image root's host upper dir (build steps).
//!
//! What must hold: no file a sandbox makes lands on the host setuid, setgid
//! or owned by root; no root-owned host file becomes the sandbox's. Each
//! attack is also tried on the host without a sandbox, where it works, so
//! the probe can see the attack succeed.
#![forbid(unsafe_code)]

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use runtimed_tests::serde_json::Value;
use runtimed_tests::{
    harness, probe_on_host, Harness, ProbeLine, RunOutput, TempDir, EXIT_RUNTIMED_FAILED, NOBODY,
    PROBE_IN_SANDBOX,
};

/// A host user that is neither root, nor nobody, nor a sandbox's pool uid.
const OWNER: u32 = 4321;

const SETID: u32 = 0o6000;

/// A temp dir with this owner (uid and gid) and mode.
fn owned_dir(prefix: &str, uid: u32, gid: u32, mode: u32) -> TempDir {
    let d = TempDir::new(prefix);
    std::os::unix::fs::chown(d.path(), Some(uid), Some(gid)).expect("chown");
    fs::set_permissions(d.path(), fs::Permissions::from_mode(mode)).expect("chmod");
    d
}

/// Runs `/bin/sh -c script` with the probe at /probe and `opts`.
fn sh(h: &Harness, opts: &[&str], script: &str) -> RunOutput {
    h.sandbox()
        .opts(opts)
        .bind(&h.probe, PROBE_IN_SANDBOX, "ro")
        .cmd(["/bin/sh", "-c", script])
        .run()
}

/// Every probe JSON line of a run, in order.
fn probe_lines(out: &RunOutput) -> Vec<Value> {
    out.stdout_str()
        .lines()
        .filter_map(|l| runtimed_tests::serde_json::from_str::<Value>(l).ok())
        .filter(Value::is_object)
        .collect()
}

fn mode_bits(p: &Path) -> u32 {
    fs::symlink_metadata(p).map_or(0, |m| m.mode() & 0o7777)
}

/// A refused run: runtimed's own failure, one stderr line naming `what`,
/// and nothing created in `dir`.
fn assert_refused(out: &RunOutput, dir: &Path, what: &[&str]) -> String {
    assert_eq!(out.code(), EXIT_RUNTIMED_FAILED, "{}", out.context());
    let line = out.one_error_line();
    for w in what {
        assert!(line.contains(w), "{w:?} not in {line}");
    }
    let made: Vec<_> = fs::read_dir(dir).expect("read dir").collect();
    assert!(made.is_empty(), "created on the host: {made:?}");
    line
}

/// The reproduction: `cp /bin/bash` and `chmod 6755` into a
/// root-owned `--workspace`. Refused with one line, nothing created.
/// (Checked against: without the owner check in plan and prepared_binds
/// the run succeeds and leaves a 0:0 setuid bash.)
#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn setuid_root_bash_through_a_root_owned_workspace_is_refused() {
    let h = harness!();
    let ws = owned_dir("hostile-ws-root", 0, 0, 0o755);
    let out = h
        .sandbox()
        .opt("--workspace")
        .opt(ws.path())
        .cmd([
            "/bin/sh",
            "-c",
            "cp /bin/bash /workspace/rb && chmod 6755 /workspace/rb",
        ])
        .no_report()
        .run();
    let line = assert_refused(&out, ws.path(), &["owned by root", "chown", "read-only"]);
    assert!(
        line.contains(&ws.path().display().to_string()),
        "the path is not named: {line}"
    );
}

/// The same attack into a workspace of an unprivileged user: the copy
/// lands owned by that user, without the bits, and running it as nobody
/// gives nobody's uid; a write to the owner's own setuid file clears it. (Checked against: without the seccomp mode rules
/// the file is -rwsr-sr-x 4321:4321 and `id -u` says 4321.)
#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn setuid_copies_never_reach_a_user_owned_workspace() {
    let h = harness!();
    let ws = owned_dir("hostile-ws-user", OWNER, OWNER, 0o755);
    // The owner's own setuid program, put there on the host: a write from
    // the sandbox (no CAP_FSETID) clears its bits (kernel: file_remove_privs).
    let theirs = ws.join("theirs");
    fs::copy("/bin/true", &theirs).expect("copy");
    std::os::unix::fs::chown(&theirs, Some(OWNER), Some(OWNER)).expect("chown");
    fs::set_permissions(&theirs, fs::Permissions::from_mode(0o6755)).expect("chmod");
    let out = h
        .sandbox()
        .opt("--workspace")
        .opt(ws.path())
        .cmd([
            "/bin/sh",
            "-c",
            "cp /bin/bash /workspace/rb; chmod 6755 /workspace/rb; echo chmod=$?; \
             echo >> /workspace/theirs",
        ])
        .run();
    assert_eq!(out.code(), 0, "{}", out.context());
    assert!(out.stdout_str().contains("chmod=1"), "{}", out.context());
    let rb = ws.join("rb");
    let meta = fs::metadata(&rb).expect("the copy reached the host");
    assert_eq!((meta.uid(), meta.gid()), (OWNER, OWNER));
    assert_eq!(meta.mode() & SETID, 0, "mode {:o}", meta.mode());
    assert_eq!(mode_bits(&theirs) & SETID, 0, "a write kept the bits");
    let id = Command::new("runuser")
        .args(["-u", "nobody", "--"])
        .arg(&rb)
        .args(["-p", "-c", "id -u"])
        .output()
        .expect("runuser");
    assert_eq!(
        String::from_utf8_lossy(&id.stdout).trim(),
        NOBODY.to_string(),
        "{id:?}"
    );
}

/// chmod u+s / g+s, a create with 04755 and mknod of a setuid regular file
/// fail with EPERM, in a rw bind and in /tmp, under both confined profiles;
/// the same calls work on the host. (Checked against: without the seccomp
/// mode rules every call succeeds and the files carry the bits.)
#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn setuid_and_setgid_modes_fail_with_eperm_inside() {
    let h = harness!();
    let ws = owned_dir("hostile-modes", OWNER, OWNER, 0o755);
    for profile in ["default", "judge"] {
        for dir in ["/workspace", "/tmp"] {
            let script = format!(
                "mkdir {dir}/{profile} && cd {dir}/{profile}; /probe create f 755; /probe chmod f 4755; /probe chmod f 2755; \
                 /probe create g 4755; /probe create g2 2755; /probe mknod h file 4755; \
                 /probe chmod f 1777"
            );
            let out = sh(
                &h,
                &[
                    "--seccomp",
                    profile,
                    "--workspace",
                    &ws.path().to_string_lossy(),
                ],
                &script,
            );
            let lines = probe_lines(&out);
            assert_eq!(lines.len(), 7, "{}", out.context());
            assert!(lines[0].ok(), "{profile} {dir}: {}", lines[0]);
            for v in &lines[1..6] {
                assert_eq!(v.errno(), "EPERM", "{profile} {dir}: {v}");
                let mode = u32::from_str_radix(&v.str_of("mode"), 8).unwrap_or(0);
                assert_eq!(mode & SETID, 0, "{profile} {dir}: {v}");
            }
            // Modes without the two bits still work (sticky included).
            assert!(lines[6].ok(), "{profile} {dir}: {}", lines[6]);
        }
    }
    for profile in ["default", "judge"] {
        let meta = fs::metadata(ws.path().join(profile).join("f")).expect("f on the host");
        assert_eq!((meta.uid(), meta.mode() & SETID), (OWNER, 0));
        assert!(!ws.path().join(profile).join("g").exists());
    }
    // Control: on the host (as root) the same calls set the bits.
    let host = TempDir::new("hostile-modes-host");
    let f = host.join("f");
    let f = f.to_str().expect("utf-8");
    assert!(probe_on_host(&h.probe, &["create", f, "755"]).ok());
    let v = probe_on_host(&h.probe, &["chmod", f, "6755"]);
    assert!(v.ok() && v.str_of("mode") == "6755", "{v}");
    let g = host.join("g");
    let v = probe_on_host(&h.probe, &["create", g.to_str().expect("utf-8"), "4755"]);
    assert!(v.ok() && v.str_of("mode") == "4755", "{v}");
    let m = host.join("m");
    let v = probe_on_host(
        &h.probe,
        &["mknod", m.to_str().expect("utf-8"), "file", "4755"],
    );
    assert!(v.ok() && v.str_of("mode") == "4755", "{v}");
}

/// `--bind SRC:DST:rw` of a directory owned by root, or by group root, is
/// refused with one line; read-only it works. (Checked against: without the
/// owner check the rw runs succeed and the file lands owned by 0:0.)
#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn read_write_binds_of_root_owned_dirs_are_refused() {
    let h = harness!();
    for (uid, gid, what) in [(0, 0, "owned by root"), (NOBODY, 0, "group root")] {
        let dir = owned_dir("hostile-bind-root", uid, gid, 0o777);
        let out = h
            .sandbox()
            .bind(dir.path(), "/data", "rw")
            .cmd(["/bin/sh", "-c", "echo x > /data/made"])
            .no_report()
            .run();
        assert_refused(&out, dir.path(), &[what, "chown"]);
        fs::write(dir.join("host-file"), "from the host").expect("write");
        let out = h
            .sandbox()
            .bind(dir.path(), "/data", "ro")
            .cmd(["/bin/cat", "/data/host-file"])
            .run();
        assert_eq!(out.code(), 0, "{}", out.context());
        assert_eq!(out.stdout_str(), "from the host");
    }
}

/// A user's directory bound read-write: only its owner is mapped, so root's
/// files and directories inside are not the sandbox's (no write, no chmod,
/// no new file in root's directory), and what the sandbox makes belongs to
/// the owner. (Checked against: mapping root instead of the owner, i.e. the
/// old behaviour for a root-owned source, makes all of these succeed.)
#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn root_files_inside_a_user_owned_bind_stay_out_of_reach() {
    let h = harness!();
    let dir = owned_dir("hostile-bind-user", OWNER, OWNER, 0o755);
    fs::write(dir.join("rootfile"), "root's").expect("write");
    fs::set_permissions(dir.join("rootfile"), fs::Permissions::from_mode(0o644)).expect("chmod");
    fs::create_dir(dir.join("rootdir")).expect("mkdir");
    fs::set_permissions(dir.join("rootdir"), fs::Permissions::from_mode(0o755)).expect("chmod");
    let out = sh(
        &h,
        &["--bind", &format!("{}:/data:rw", dir.path().display())],
        "/probe write /data/rootfile owned; /probe chmod /data/rootfile 666; \
         /probe create /data/rootdir/x 644; /probe create /data/mine 644",
    );
    let lines = probe_lines(&out);
    assert_eq!(lines.len(), 4, "{}", out.context());
    assert_eq!(lines[0].errno(), "EACCES", "{}", lines[0]);
    // The kernel refuses any change to an inode whose owner the mount
    // cannot map with EOVERFLOW (a plain non-owner gets EPERM).
    assert!(
        ["EPERM", "EOVERFLOW"].contains(&lines[1].errno().as_str()),
        "{}",
        lines[1]
    );
    assert_eq!(lines[2].errno(), "EACCES", "{}", lines[2]);
    assert!(lines[3].ok(), "{}", lines[3]);
    assert_eq!(fs::read_to_string(dir.join("rootfile")).unwrap(), "root's");
    assert_eq!(mode_bits(&dir.join("rootfile")), 0o644);
    assert!(!dir.join("rootdir/x").exists());
    let mine = fs::metadata(dir.join("mine")).expect("mine on the host");
    assert_eq!((mine.uid(), mine.gid()), (OWNER, OWNER));
}

/// A hard link or a rename of the host's setuid-root /usr/bin/passwd (bound
/// read-only from the host) into a rw bind fails: another mount (EXDEV).
/// On the host, root links it into the same kind of directory.
#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn host_setuid_files_cannot_be_linked_or_moved_into_a_bind() {
    let h = harness!();
    let passwd = Path::new("/usr/bin/passwd");
    let Ok(pm) = fs::metadata(passwd) else {
        runtimed_tests::missing("no /usr/bin/passwd");
    };
    assert_ne!(pm.mode() & 0o4000, 0, "/usr/bin/passwd is not setuid here");
    let dir = owned_dir("hostile-link", OWNER, OWNER, 0o755);
    let out = sh(
        &h,
        &["--workspace", &dir.path().to_string_lossy()],
        "/probe link /usr/bin/passwd /workspace/p; /probe rename /usr/bin/passwd /workspace/q",
    );
    let lines = probe_lines(&out);
    assert_eq!(lines.len(), 2, "{}", out.context());
    for v in &lines {
        assert_eq!(v.errno(), "EXDEV", "{v}");
    }
    assert!(fs::read_dir(dir.path()).unwrap().next().is_none());
    assert!(fs::metadata(passwd).is_ok(), "passwd moved");
    // Control: same filesystem, no mount boundary, root: the link works.
    let host = TempDir::new("hostile-link-host");
    if fs::metadata(host.path()).map(|m| m.dev()).ok() == Some(pm.dev()) {
        let p = host.join("p");
        let v = probe_on_host(&h.probe, &["link", "/usr/bin/passwd", p.to_str().unwrap()]);
        assert!(v.ok() && v.str_of("mode") == "4755", "{v}");
    }
}

/// Device nodes cannot be made in a rw bind (the user namespace: EPERM);
/// fifos and Unix sockets can under `default` and land as the owner's plain
/// special files; `judge` refuses fifos too. On the host, root makes the
/// device node. (A kernel property: no defense of ours to remove; the
/// control shows the probe would see success.)
#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn device_nodes_are_refused_and_fifos_and_sockets_are_the_owners() {
    let h = harness!();
    let dir = owned_dir("hostile-nodes", OWNER, OWNER, 0o755);
    let ws = dir.path().to_string_lossy().to_string();
    let out = sh(
        &h,
        &["--workspace", &ws],
        "/probe mknod /workspace/null char 666; /probe mknod /workspace/loop block 666; \
         /probe mknod /workspace/fifo fifo 644; /probe socket-file /workspace/sock",
    );
    let lines = probe_lines(&out);
    assert_eq!(lines.len(), 4, "{}", out.context());
    assert_eq!(lines[0].errno(), "EPERM", "{}", lines[0]);
    assert_eq!(lines[1].errno(), "EPERM", "{}", lines[1]);
    assert!(lines[2].ok(), "{}", lines[2]);
    assert!(lines[3].ok(), "{}", lines[3]);
    assert!(!dir.join("null").exists() && !dir.join("loop").exists());
    for (name, is) in [
        ("fifo", fs::FileType::is_fifo as fn(&fs::FileType) -> bool),
        ("sock", fs::FileType::is_socket),
    ] {
        let m = fs::symlink_metadata(dir.join(name)).expect("on the host");
        assert!(is(&m.file_type()), "{name}: {m:?}");
        assert_eq!((m.uid(), m.gid(), m.mode() & SETID), (OWNER, OWNER, 0));
    }
    let judged = sh(
        &h,
        &["--seccomp", "judge", "--workspace", &ws],
        "/probe mknod /workspace/fifo2 fifo 644",
    );
    let v = judged.probe_json();
    assert_eq!(v.errno(), "EPERM", "{v}");
    // Control: root on the host makes a device node (/dev/null's number).
    let host = TempDir::new("hostile-nodes-host");
    let null = host.join("null");
    let v = probe_on_host(&h.probe, &["mknod", null.to_str().unwrap(), "char", "600"]);
    assert!(v.ok(), "{v}");
}

/// An image root's host upper dir keeps the image's ids (root's included),
/// so it must be private to root: an existing one others can enter is
/// refused; a missing one is made 0700. A build step, which may set setuid
/// modes there (dpkg), gets no read-write bind. (Checked against: without
/// the privacy check the public upper dir receives a root-owned setuid
/// file; without the build-step bind check the workspace does.)
#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn image_upper_dirs_are_private_and_build_steps_write_nowhere_else() {
    let h = harness!();
    if !Path::new("/bin/busybox").is_file() {
        runtimed_tests::missing("no /bin/busybox");
    }
    let tmp = TempDir::new("hostile-upper");
    let layer = tmp.join("layer");
    fs::create_dir_all(layer.join("bin")).unwrap();
    fs::create_dir_all(layer.join("tmp")).unwrap();
    fs::copy("/bin/busybox", layer.join("bin/busybox")).unwrap();
    for applet in ["sh", "cp", "chmod", "echo"] {
        std::os::unix::fs::symlink("busybox", layer.join("bin").join(applet)).unwrap();
    }
    let layer_s = layer.to_string_lossy().to_string();
    let attack = "cp /bin/busybox /rb && chmod 4755 /rb; echo chmod=$?";

    let public = owned_dir("hostile-upper-public", 0, 0, 0o755);
    let out = h
        .sandbox()
        .opts([
            "--layer",
            &layer_s,
            "--upper-dir",
            &public.path().to_string_lossy(),
        ])
        .opts(["--user", "0:0"])
        .cmd(["/bin/sh", "-c", attack])
        .no_report()
        .run();
    assert_refused(&out, public.path(), &["root_layers.upper", "0700"]);

    let ws = owned_dir("hostile-upper-ws", OWNER, OWNER, 0o755);
    let upper = tmp.join("step");
    let out = h
        .sandbox()
        .opts(["--layer", &layer_s, "--upper-dir", &upper.to_string_lossy()])
        .opts(["--build-step", "--workspace", &ws.path().to_string_lossy()])
        .cmd(["/bin/sh", "-c", attack])
        .no_report()
        .run();
    assert_refused(&out, ws.path(), &["upper dir", "read-only"]);

    // A build step over a fresh upper dir: dpkg-like chmod 4755 works and
    // stays in the 0700 upper dir.
    let out = h
        .sandbox()
        .opts(["--layer", &layer_s, "--upper-dir", &upper.to_string_lossy()])
        .opts(["--build-step", "--user", "0:0"])
        .cmd(["/bin/sh", "-c", attack])
        .run();
    assert_eq!(out.code(), 0, "{}", out.context());
    assert!(out.stdout_str().contains("chmod=0"), "{}", out.context());
    let top = fs::metadata(&upper).expect("upper dir made");
    assert_eq!((top.uid(), top.mode() & 0o777), (0, 0o700));
    assert_eq!(mode_bits(&upper.join("upper/rb")), 0o4755);
}
