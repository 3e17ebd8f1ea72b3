//! What is left after a run: daemons, cgroups, processes; and what the exit
//! report says about an ordinary run.
#![forbid(unsafe_code)]

use std::path::Path;
use std::time::{Duration, Instant};

use runtimed_tests::{
    harness, host_cgroup_dirs, host_probe_procs, host_procs_matching, unique, wait_for, ProbeLine,
    TempDir, Termination,
};

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn double_forked_daemon_dies_with_the_sandbox() {
    let h = harness!();
    let tag = unique("daemon");
    let marker = format!("marker-{tag}");

    // Control: on the host, the same daemon survives and leaves its marker.
    // (Its own name: it must not match the sandbox's tag below.)
    let host_dir = TempDir::world_writable("daemon-host");
    let host_marker = host_dir.join(&unique("host-marker"));
    let host = h.probe_on_host(&["daemonize", "3", host_marker.to_str().expect("utf-8")]);
    assert!(host.ok(), "{host}");

    let ws = TempDir::world_writable("daemon");
    let started = Instant::now();
    let out = h
        .sandbox()
        .opt("--workspace")
        .opt(ws.path())
        .probe(&["daemonize", "3", &format!("/workspace/{marker}")])
        .run();
    assert_eq!(out.code(), 0, "{}", out.context());
    assert!(out.probe_json().ok(), "{}", out.context());
    assert!(
        out.streams_closed,
        "stdout/stderr still open after runtimed exited{}",
        out.context()
    );

    // Right after runtimed exits, nothing with the tag in its command line
    // runs on the host (allowing the kernel a moment to reap).
    let gone = wait_for(Duration::from_millis(500), || {
        host_procs_matching(&tag).is_empty().then_some(())
    });
    assert!(
        gone.is_some(),
        "processes left after the run: {:?}{}",
        host_procs_matching(&tag),
        out.context()
    );

    std::thread::sleep(Duration::from_secs(4).saturating_sub(started.elapsed()));
    assert!(
        !ws.join(&marker).exists(),
        "the daemon survived the sandbox and wrote its marker"
    );
    let host_wrote = wait_for(Duration::from_secs(10), || {
        host_marker.exists().then_some(())
    });
    assert!(
        host_wrote.is_some(),
        "control failed: the probe's daemon did not write its marker on the host"
    );
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn cgroups_are_removed_after_the_run() {
    let h = harness!();
    let tag = unique("cgroup");
    let run = h.sandbox().probe(&["sleep", "2", &tag]).spawn();
    let found = wait_for(Duration::from_secs(30), || {
        host_probe_procs(&tag).into_iter().next()
    });
    let theirs = found
        .as_ref()
        .map(|p| host_cgroup_dirs(p.pid))
        .unwrap_or_default();
    let mine = host_cgroup_dirs(std::process::id() as i32);
    let out = run.wait();
    let p = found.unwrap_or_else(|| panic!("probe not found on the host{}", out.context()));

    // The hierarchies where the sandbox sits somewhere else than the test.
    let own: Vec<_> = theirs
        .iter()
        .filter(|(k, d)| mine.get(*k) != Some(d))
        .collect();
    assert!(
        !own.is_empty(),
        "probe {} shares every cgroup with the test: {theirs:?}",
        p.pid
    );

    assert_eq!(out.code(), 0, "{}", out.context());
    let r = out.report();
    assert!(
        !r.cgroup_paths.is_empty(),
        "report lists no cgroup{}",
        out.context()
    );
    for path in &r.cgroup_paths {
        assert!(path.starts_with('/'), "not an absolute path: {path}");
        assert!(
            !Path::new(path).exists(),
            "cgroup {path} still exists after the run"
        );
    }
    for (hierarchy, dir) in own {
        assert!(
            !dir.exists(),
            "the probe's {hierarchy} cgroup {} still exists",
            dir.display()
        );
    }
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn report_describes_an_ordinary_run() {
    let h = harness!();
    // No output cap asked for (the default one relays through pipes).
    let out = h
        .sandbox()
        .opts(["--output-limit", "unlimited"])
        .probe(&["sleep", "0.2"])
        .run();
    assert_eq!(out.code(), 0, "{}", out.context());
    let r = out.report();
    assert_eq!(r.termination, Termination::Exited, "{}", out.context());
    assert_eq!(r.exit_code, Some(0), "{}", out.context());
    assert_eq!(r.signal, None, "{}", out.context());
    assert!(r.error.is_none(), "{}", out.context());
    assert!(!r.sandbox_id.is_empty());
    assert!(
        (200_000..10_000_000).contains(&r.wall_time_us),
        "wall_time_us = {}{}",
        r.wall_time_us,
        out.context()
    );
    assert!(
        r.cpu_total_us.abs_diff(r.cpu_user_us + r.cpu_system_us) <= 10_000,
        "cpu_total_us is not user + system{}",
        out.context()
    );
    assert!(
        r.memory_peak_bytes > 0,
        "no memory_peak_bytes{}",
        out.context()
    );
    assert_eq!(r.oom_kills, 0);
    assert_eq!(r.pids_limit_hits, 0);
    // Passed straight through (the caller's own fds): not counted.
    assert_eq!(r.stdout_bytes, None, "{}", out.context());
    assert_eq!(r.stderr_bytes, None, "{}", out.context());
    // Through the supervisor (an output limit is set): counted exactly.
    let counted = h
        .sandbox()
        .opts(["--output-limit", "1M"])
        .probe(&["sleep", "0"])
        .run();
    assert_eq!(counted.code(), 0, "{}", counted.context());
    let cr = counted.report();
    assert_eq!(
        cr.stdout_bytes,
        Some(counted.stdout_total),
        "stdout_bytes differs from what passed through{}",
        counted.context()
    );
    assert!(
        counted.stdout_total > 0,
        "the probe printed nothing{}",
        counted.context()
    );
    assert_eq!(cr.stderr_bytes, Some(0), "{}", counted.context());
    assert!(r.host_uid != 0 && r.host_gid != 0, "{}", out.context());

    let again = h.sandbox().probe(&["sleep", "0"]).run();
    assert_ne!(
        again.report().sandbox_id,
        r.sandbox_id,
        "sandbox ids repeat"
    );
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn nothing_survives_a_killed_program() {
    // A wall-time kill takes the whole tree: children of the probe too.
    let h = harness!();
    let tag = unique("tree");
    let out = h
        .sandbox()
        .opts(["--wall-time", "1s"])
        .probe(&["cpuburn", "3", "30", &tag])
        .run();
    assert_eq!(
        out.report().termination,
        Termination::WallTimeout,
        "{}",
        out.context()
    );
    let gone = wait_for(Duration::from_millis(500), || {
        host_procs_matching(&tag).is_empty().then_some(())
    });
    assert!(
        gone.is_some(),
        "left behind: {:?}",
        host_procs_matching(&tag)
    );
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn killing_runtimed_kills_the_sandbox() {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let h = harness!();
    let tag = unique("orphan");
    let running = h.sandbox().probe(&["sleep", "30", &tag]).spawn();
    let up = wait_for(Duration::from_secs(30), || {
        (!host_probe_procs(&tag).is_empty()).then_some(())
    });
    if up.is_none() {
        running.fail("the sandbox did not start");
    }
    kill(Pid::from_raw(running.pid()), Signal::SIGKILL).expect("SIGKILL runtimed");
    let gone = wait_for(Duration::from_secs(15), || {
        host_probe_procs(&tag).is_empty().then_some(())
    });
    assert!(
        gone.is_some(),
        "the sandbox outlived its runtimed: {:?}",
        host_probe_procs(&tag)
    );
    let _ = running.wait();
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn sigterm_to_runtimed_reaches_the_program() {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let h = harness!();
    let tag = unique("term");
    let running = h.sandbox().probe(&["sleep", "30", &tag]).spawn();
    let up = wait_for(Duration::from_secs(30), || {
        (!host_probe_procs(&tag).is_empty()).then_some(())
    });
    if up.is_none() {
        running.fail("the sandbox did not start");
    }
    kill(Pid::from_raw(running.pid()), Signal::SIGTERM).expect("SIGTERM runtimed");
    let out = running.wait();
    assert_eq!(out.code(), 128 + 15, "{}", out.context());
    let r = out.report();
    assert_eq!(r.signal, Some(15), "{}", out.context());
    assert!(host_probe_procs(&tag).is_empty());
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn a_later_start_removes_what_a_killed_runtimed_left() {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let h = harness!();
    let id = unique("killed");
    let tag = unique("killed-tag");
    let running = h
        .sandbox()
        .opts(["--id", &id])
        .probe(&["sleep", "30", &tag])
        .spawn();
    let Some(pid) = wait_for(Duration::from_secs(30), || {
        host_probe_procs(&tag).first().map(|p| p.pid)
    }) else {
        running.fail("the sandbox did not start");
    };
    let dirs: Vec<_> = host_cgroup_dirs(pid)
        .into_values()
        .filter(|d| d.ends_with(&id))
        .collect();
    assert!(!dirs.is_empty(), "the sandbox has no cgroup of its own");
    kill(Pid::from_raw(running.pid()), Signal::SIGKILL).expect("SIGKILL runtimed");
    let _ = running.wait();
    let gone = wait_for(Duration::from_secs(15), || {
        host_probe_procs(&tag).is_empty().then_some(())
    });
    assert!(gone.is_some(), "the sandbox outlived its runtimed");
    // Nobody tore the sandbox down: the next start (any sandbox) does.
    let out = h.sandbox().cmd(["/bin/true"]).run();
    assert_eq!(out.code(), 0, "{}", out.context());
    for d in &dirs {
        assert!(
            !d.exists(),
            "{} is still there after the next start",
            d.display()
        );
    }
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn an_id_in_use_is_refused_and_free_again_afterwards() {
    let h = harness!();
    let id = unique("taken");
    let tag = unique("taken-tag");
    let running = h
        .sandbox()
        .opts(["--id", &id])
        .probe(&["sleep", "30", &tag])
        .spawn();
    if wait_for(Duration::from_secs(30), || {
        host_probe_procs(&tag).first().map(|p| p.pid)
    })
    .is_none()
    {
        running.fail("the sandbox did not start");
    }
    let out = h.sandbox().opts(["--id", &id]).cmd(["/bin/true"]).run();
    assert_eq!(out.code(), 125, "{}", out.context());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is in use"),
        "{}",
        out.context()
    );
    {
        use nix::sys::signal::{kill, Signal};
        kill(nix::unistd::Pid::from_raw(running.pid()), Signal::SIGKILL).expect("SIGKILL");
    }
    let _ = running.wait();
    // Its processes die by their parent-death signal, holding the lock
    // until they are gone; then the id is free again.
    let gone = wait_for(Duration::from_secs(15), || {
        host_probe_procs(&tag).is_empty().then_some(())
    });
    assert!(gone.is_some(), "the sandbox outlived its runtimed");
    let again = wait_for(Duration::from_secs(15), || {
        let out = h.sandbox().opts(["--id", &id]).cmd(["/bin/true"]).run();
        (out.code() == 0).then_some(())
    });
    assert!(again.is_some(), "the id {id} never became free again");
}

/// Every start sweeps what dead sandboxes left; a sweep must never take a
/// starting sandbox's lock (it once did, for a moment, between the lock
/// file's creation and its flock: "sandbox id ... is in use").
#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn many_sandboxes_starting_at_once_all_start() {
    let h = harness!();
    let failures: Vec<String> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..6)
            .map(|_| {
                s.spawn(|| {
                    let mut bad = Vec::new();
                    for _ in 0..15 {
                        let out = h.sandbox().cmd(["/bin/true"]).run();
                        if out.code() != 0 {
                            bad.push(out.context());
                        }
                    }
                    bad
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("worker"))
            .collect()
    });
    assert!(
        failures.is_empty(),
        "{} of 90 failed: {}",
        failures.len(),
        failures.join("\n")
    );
}
