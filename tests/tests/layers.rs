//! Image roots at the sandbox level (`runtimed run --layer DIR ...`, what
//! `--image` resolves to): layers owned by the image's ids on disk show as
//! those ids inside, whiteouts hide lower files, writes never reach a layer,
//! the writable layer is size-capped, a host upper directory receives the
//! writes with the image's ids, and bad layer paths are refused unchanged.
#![forbid(unsafe_code)]

use std::fs;
use std::os::unix::fs::{chown, PermissionsExt};
use std::path::Path;

use runtimed_tests::{harness, TempDir, EXIT_RUNTIMED_FAILED};

/// Two layers: the bottom one with busybox (as /bin/sh and friends), a
/// root-owned /etc/f and /etc/g, a 1000-owned /home/u; the top one adds
/// /top and deletes /etc/g with a whiteout (a 0/0 character device).
fn two_layers(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let l1 = dir.join("l1");
    let l2 = dir.join("l2");
    for d in ["bin", "etc", "home/u", "tmp"] {
        fs::create_dir_all(l1.join(d)).unwrap();
    }
    fs::create_dir_all(l2.join("etc")).unwrap();
    fs::copy("/bin/busybox", l1.join("bin/busybox")).unwrap();
    for applet in [
        "sh", "cat", "ls", "id", "stat", "dd", "rm", "echo", "mkdir", "chown",
    ] {
        std::os::unix::fs::symlink("busybox", l1.join("bin").join(applet)).unwrap();
    }
    fs::write(l1.join("etc/f"), "base\n").unwrap();
    fs::write(l1.join("etc/g"), "gone\n").unwrap();
    fs::write(l1.join("home/u/file"), "mine\n").unwrap();
    chown(l1.join("home/u"), Some(1000), Some(1000)).unwrap();
    chown(l1.join("home/u/file"), Some(1000), Some(1000)).unwrap();
    fs::set_permissions(l1.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
    fs::write(l2.join("top"), "top\n").unwrap();
    let st = std::process::Command::new("mknod")
        .arg(l2.join("etc/g"))
        .args(["c", "0", "0"])
        .status()
        .unwrap();
    assert!(st.success(), "mknod whiteout");
    (l1, l2)
}

fn snapshot(dir: &Path) -> String {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "cd {} && find . -printf '%p %U:%G %m %s\\n' | sort && cat etc/f",
            dir.display()
        ))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn layers_show_image_ids_whiteouts_apply_and_writes_stay_out_of_layers() {
    let h = harness!();
    let tmp = TempDir::new("layers");
    let (l1, l2) = two_layers(tmp.path());
    let before = (snapshot(&l1), snapshot(&l2));
    let out = h
        .sandbox()
        .opt("--layer")
        .opt(&l1)
        .opt("--layer")
        .opt(&l2)
        .opts(["--user", "0:0"])
        .cmd([
            "/bin/sh",
            "-c",
            "id -u; stat -c '%u:%g' /etc/f /home/u/file /top; cat /etc/f; \
             test -e /etc/g && echo g-visible || echo g-hidden; \
             echo changed > /etc/f; cat /etc/f; rm /top; test -e /top || echo top-removed",
        ])
        .run();
    assert_eq!(out.code(), 0, "{}", out.context());
    let lines: Vec<String> = out.stdout_str().lines().map(String::from).collect();
    assert_eq!(
        lines,
        [
            "0",
            "0:0",
            "1000:1000",
            "0:0",
            "base",
            "g-hidden",
            "changed",
            "top-removed"
        ],
        "{}",
        out.context()
    );
    // Nothing of that reached the layers on the host.
    assert_eq!((snapshot(&l1), snapshot(&l2)), before);
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn the_image_user_owns_its_files_but_not_roots() {
    let h = harness!();
    let tmp = TempDir::new("layers");
    let (l1, l2) = two_layers(tmp.path());
    let out = h
        .sandbox()
        .opt("--layer")
        .opt(&l1)
        .opt("--layer")
        .opt(&l2)
        .opts(["--user", "1000:1000"])
        .cmd([
            "/bin/sh",
            "-c",
            "echo more >> /home/u/file && echo user-write-ok; \
             echo x >> /etc/f 2>/dev/null && echo root-file-written || echo root-file-denied",
        ])
        .run();
    assert_eq!(out.code(), 0, "{}", out.context());
    assert_eq!(
        out.stdout_str(),
        "user-write-ok\nroot-file-denied\n",
        "{}",
        out.context()
    );
    assert_eq!(
        fs::read_to_string(l1.join("home/u/file")).unwrap(),
        "mine\n"
    );
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn the_writable_layer_is_capped() {
    let h = harness!();
    let tmp = TempDir::new("layers");
    let (l1, l2) = two_layers(tmp.path());
    let out = h
        .sandbox()
        .opt("--layer")
        .opt(&l1)
        .opt("--layer")
        .opt(&l2)
        .opts(["--user", "0:0", "--root-size", "8M"])
        .cmd([
            "/bin/sh",
            "-c",
            "dd if=/dev/zero of=/big bs=1M count=32 2>/dev/null; echo dd=$?; \
             stat -c %s /big",
        ])
        .run();
    assert_eq!(out.code(), 0, "{}", out.context());
    let text = out.stdout_str();
    let mut it = text.lines();
    assert_ne!(it.next(), Some("dd=0"), "{}", out.context());
    let size: u64 = it.next().unwrap_or("0").parse().unwrap_or(u64::MAX);
    assert!(size <= 8 << 20, "wrote {size} bytes past an 8M cap");
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn a_host_upper_dir_gets_the_writes_with_image_ids() {
    let h = harness!();
    let tmp = TempDir::new("layers");
    let (l1, l2) = two_layers(tmp.path());
    let upper = tmp.path().join("step");
    let out = h
        .sandbox()
        .opt("--layer")
        .opt(&l1)
        .opt("--layer")
        .opt(&l2)
        .opt("--upper-dir")
        .opt(&upper)
        .opts(["--user", "0:0"])
        .cmd([
            "/bin/sh",
            "-c",
            "echo new > /new && rm /etc/f && mkdir /d && echo x > /d/x",
        ])
        .run();
    assert_eq!(out.code(), 0, "{}", out.context());
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let new = fs::metadata(upper.join("upper/new")).unwrap();
    assert_eq!(
        (new.uid(), new.gid()),
        (0, 0),
        "stored with the image's ids"
    );
    assert_eq!(fs::read_to_string(upper.join("upper/d/x")).unwrap(), "x\n");
    let wh = fs::symlink_metadata(upper.join("upper/etc/f")).unwrap();
    assert!(
        wh.file_type().is_char_device() && wh.rdev() == 0,
        "whiteout"
    );
    assert_eq!(fs::read_to_string(l1.join("etc/f")).unwrap(), "base\n");
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn bad_layer_paths_are_refused_with_one_line() {
    let h = harness!();
    let tmp = TempDir::new("layers");
    let (l1, _) = two_layers(tmp.path());
    let comma = tmp.path().join("a,b");
    fs::create_dir_all(&comma).unwrap();
    for bad in [tmp.path().join("missing"), comma] {
        let out = h
            .sandbox()
            .opt("--layer")
            .opt(&l1)
            .opt("--layer")
            .opt(&bad)
            .cmd(["/bin/sh", "-c", "true"])
            .no_report()
            .run();
        assert_eq!(out.code(), EXIT_RUNTIMED_FAILED, "{}", out.context());
        let line = out.one_error_line();
        assert!(line.contains("root_layers.layers"), "{line}");
    }
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn a_build_step_holds_build_capabilities_and_the_host_network_only_when_asked() {
    let h = harness!();
    let tmp = TempDir::new("layers");
    let (l1, l2) = two_layers(tmp.path());
    let script = "grep CapEff /proc/self/status; \
                  chown 1000:1000 /etc/f 2>/dev/null && echo chown-ok || echo chown-denied; \
                  cat /proc/net/dev | tail -n +3 | wc -l";
    let run = |build: bool| {
        let mut s = h
            .sandbox()
            .opt("--layer")
            .opt(&l1)
            .opt("--layer")
            .opt(&l2)
            .opts(["--user", "0:0"]);
        if build {
            s = s.opt("--build-step");
        }
        s.cmd(["/bin/sh", "-c", script]).run()
    };
    let host_ifaces = fs::read_to_string("/proc/net/dev").unwrap().lines().count() - 2;
    let plain = run(false);
    assert_eq!(plain.code(), 0, "{}", plain.context());
    let lines: Vec<String> = plain.stdout_str().lines().map(String::from).collect();
    assert_eq!(lines[0].split_whitespace().nth(1), Some("0000000000000000"));
    assert_eq!(lines[1], "chown-denied");
    assert_eq!(lines[2].trim(), "1", "only lo without --build-step");
    let build = run(true);
    assert_eq!(build.code(), 0, "{}", build.context());
    let lines: Vec<String> = build.stdout_str().lines().map(String::from).collect();
    // CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID SETPCAP
    // NET_BIND_SERVICE SYS_CHROOT MKNOD AUDIT_WRITE SETFCAP.
    assert_eq!(
        lines[0].split_whitespace().nth(1),
        Some("00000000a80405fb"),
        "{}",
        build.context()
    );
    assert_eq!(lines[1], "chown-ok");
    assert_eq!(lines[2].trim().parse::<usize>().unwrap(), host_ifaces);
    // The chown happened in the writable layer, not on the host.
    use std::os::unix::fs::MetadataExt;
    assert_eq!(fs::metadata(l1.join("etc/f")).unwrap().uid(), 0);
}
