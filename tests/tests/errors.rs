//! Failure paths: a spec error, a setup step failing inside the child and an
//! exec failure each give one clear error line and a distinct exit status,
//! and leave nothing behind: no process, no cgroup directory, no mount.
#![forbid(unsafe_code)]

use std::fs;
use std::path::{Path, PathBuf};

use runtimed_tests::{harness, host_procs_matching, unique, EXIT_NOT_FOUND, EXIT_RUNTIMED_FAILED};

/// Every cgroup mount point of this host (v1 hierarchies and cgroup2).
fn cgroup_mount_points() -> Vec<PathBuf> {
    let info = fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    info.lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let fstype = post.split_whitespace().next()?;
            let mount_point = pre.split_whitespace().nth(4)?;
            (fstype == "cgroup" || fstype == "cgroup2").then(|| PathBuf::from(mount_point))
        })
        .collect()
}

/// Directories named `name` below `dir` (bounded depth).
fn find_dirs(dir: &Path, name: &str, depth: u32, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if !e.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let p = e.path();
        if e.file_name() == name {
            out.push(p.clone());
        }
        if depth > 0 {
            find_dirs(&p, name, depth - 1, out);
        }
    }
}

/// Asserts that no trace of sandbox `id` remains on the host.
fn assert_nothing_left(id: &str) {
    let mut dirs = Vec::new();
    for m in cgroup_mount_points() {
        find_dirs(&m, id, 6, &mut dirs);
    }
    assert!(
        dirs.is_empty(),
        "cgroup directories of {id} left behind: {dirs:?}"
    );
    // PID 1 of a sandbox is a fork of runtimed, whose command line holds the id.
    let procs = host_procs_matching(id);
    assert!(procs.is_empty(), "processes of {id} left behind: {procs:?}");
    let mounts = fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert!(
        !mounts.contains("/run/runtimed/root"),
        "a staging mount leaked into the host:\n{mounts}"
    );
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn spec_error_is_reported_before_anything_is_made() {
    let h = harness!();
    let id = unique("err-spec");
    let out = h
        .sandbox()
        .opts(["--id", &id, "--tmpfs", "/proc/x:1M"])
        .cmd(["/bin/true"])
        .no_report()
        .run();
    assert_eq!(out.code(), EXIT_RUNTIMED_FAILED, "{}", out.context());
    let line = out.one_error_line();
    assert!(
        line.contains("mounts[") && line.contains("/proc/x"),
        "{line}"
    );
    assert_nothing_left(&id);
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn setup_step_failure_in_the_child_leaves_nothing() {
    let h = harness!();
    // The working directory does not exist: the program's chdir step fails
    // after all of the sandbox (mounts, cgroup, namespaces) was made.
    let id = unique("err-chdir");
    let out = h
        .sandbox()
        .opts(["--id", &id, "--workdir", "/no/such/dir"])
        .cmd(["/bin/true"])
        .no_report()
        .run();
    assert_eq!(out.code(), EXIT_RUNTIMED_FAILED, "{}", out.context());
    let line = out.one_error_line();
    assert!(
        line.contains("chdir failed") && line.contains("/no/such/dir"),
        "{line}"
    );
    assert_nothing_left(&id);
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn late_mount_failure_leaves_nothing() {
    let h = harness!();
    // /usr is a read-only bind: a mount point cannot be made below it, after
    // the root, /usr, /etc, /dev and /proc are already mounted.
    let id = unique("err-late");
    let out = h
        .sandbox()
        .opts(["--id", &id, "--bind", "/etc/hostname:/usr/newdir/file"])
        .cmd(["/bin/true"])
        .no_report()
        .run();
    assert_eq!(out.code(), EXIT_RUNTIMED_FAILED, "{}", out.context());
    let line = out.one_error_line();
    assert!(line.contains("mount_extra failed"), "{line}");
    assert_nothing_left(&id);
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn exec_failure_is_127_and_leaves_nothing() {
    let h = harness!();
    let id = unique("err-exec");
    let out = h
        .sandbox()
        .opts(["--id", &id])
        .cmd(["/no/such/program"])
        .run();
    assert_eq!(out.code(), EXIT_NOT_FOUND, "{}", out.context());
    let line = out.one_error_line();
    assert!(
        line.contains("exec failed") && line.contains("/no/such/program"),
        "{line}"
    );
    let r = out.report();
    assert!(
        r.error.as_ref().is_some_and(|e| e.step == "exec"),
        "{}",
        out.context()
    );
    for p in &r.cgroup_paths {
        assert!(!Path::new(p).exists(), "{p} left behind");
    }
    assert_nothing_left(&id);
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn duplicate_live_id_is_refused_and_the_first_sandbox_is_untouched() {
    let h = harness!();
    let id = unique("err-dup");
    let tag = unique("dup-sleeper");
    let first = h
        .sandbox()
        .opts(["--id", &id])
        .probe(&["sleep", "3", &tag])
        .spawn();
    // Wait until the first sandbox runs its program.
    let running = runtimed_tests::wait_for(std::time::Duration::from_secs(30), || {
        (!runtimed_tests::host_probe_procs(&tag).is_empty()).then_some(())
    });
    if running.is_none() {
        first.fail("first sandbox did not start");
    }
    let second = h
        .sandbox()
        .opts(["--id", &id])
        .cmd(["/bin/true"])
        .no_report()
        .run();
    assert_eq!(second.code(), EXIT_RUNTIMED_FAILED, "{}", second.context());
    second.one_error_line();
    assert!(
        !runtimed_tests::host_probe_procs(&tag).is_empty(),
        "the first sandbox was disturbed"
    );
    let first = first.wait();
    assert_eq!(first.code(), 0, "{}", first.context());
    assert_nothing_left(&id);
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn exhausted_uid_pool_refuses_a_second_sandbox_instead_of_sharing_ids() {
    let h = harness!();
    // A private one-slot pool, distinct per test process.
    let base = 3_000_000_000u32 + (std::process::id() % 1000) * 65_536 * 2;
    let pool = format!("{base}:1");
    let tag = unique("pool-holder");
    let first = h
        .sandbox()
        .opts(["--uid-pool", &pool])
        .probe(&["sleep", "3", &tag])
        .spawn();
    let running = runtimed_tests::wait_for(std::time::Duration::from_secs(30), || {
        runtimed_tests::host_probe_procs(&tag)
            .first()
            .map(|p| p.pid)
    });
    let Some(pid) = running else {
        first.fail("first sandbox did not start");
    };
    let uid = runtimed_tests::proc_status_ids(pid, "Uid").expect("Uid line");
    assert_eq!(
        uid[0],
        base + 1000,
        "the program's host uid comes from the pool"
    );
    let second = h
        .sandbox()
        .opts(["--uid-pool", &pool])
        .cmd(["/bin/true"])
        .no_report()
        .run();
    assert_eq!(second.code(), EXIT_RUNTIMED_FAILED, "{}", second.context());
    let line = second.one_error_line();
    assert!(
        line.contains("uid pool") && line.contains("in use"),
        "{line}"
    );
    let first = first.wait();
    assert_eq!(first.code(), 0, "{}", first.context());
    assert_eq!(first.report().host_uid, base);
    // Released with the first sandbox: the slot can be leased again.
    let third = h
        .sandbox()
        .opts(["--uid-pool", &pool])
        .cmd(["/bin/true"])
        .run();
    assert_eq!(third.code(), 0, "{}", third.context());
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn a_failure_after_the_claim_releases_the_lock_the_uid_slot_and_the_cgroup() {
    let h = harness!();
    // A private run dir whose staging path `root` is a file: the start
    // fails in its prepare phase, after the id's lock, the uid slot and the
    // cgroup were claimed. Everything claimed must go with the error.
    let run_dir = runtimed_tests::TempDir::new("run-dir");
    let rd = run_dir.path().to_str().expect("utf-8 temp path").to_owned();
    fs::write(run_dir.path().join("root"), b"not a directory").expect("write root");
    // A private one-slot pool: a slot left taken would refuse the rerun.
    let base = 3_500_000_000u32 + (std::process::id() % 1000) * 65_536 * 2;
    let pool = format!("{base}:1");
    let id = unique("err-prepare");
    let out = h
        .sandbox()
        .caller_env("RUNTIMED_RUN_DIR", &rd)
        .opts(["--id", &id, "--uid-pool", &pool])
        .cmd(["/bin/true"])
        .no_report()
        .run();
    assert_eq!(out.code(), EXIT_RUNTIMED_FAILED, "{}", out.context());
    let line = out.one_error_line();
    assert!(line.contains("/root"), "{line}");
    assert_nothing_left(&id);
    assert!(
        !run_dir.path().join("sandboxes").join(&id).exists(),
        "the lock file of {id} was left"
    );
    // The slot was released: the same one-slot pool starts a sandbox now.
    fs::remove_file(run_dir.path().join("root")).expect("remove root");
    let again = h
        .sandbox()
        .caller_env("RUNTIMED_RUN_DIR", &rd)
        .opts(["--uid-pool", &pool])
        .cmd(["/bin/true"])
        .no_report()
        .run();
    assert_eq!(again.code(), 0, "{}", again.context());
}
