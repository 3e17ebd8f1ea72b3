//! Tests of the cgroup code against the real kernel (root only: they are
//! `#[ignore]`d and fail when run without root or usable cgroups). v1 runs
//! on the hybrid development host, v2 (and the `vm_only_*` tests, which
//! need it) in `../shared/tools/cgroup2-vm` through `.ci/cgroup-v2.sh`. Forked children only do simple work
//! and leave with `sys::exit_now`.

use std::fmt::Display;
use std::os::fd::OwnedFd;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::sys::signal::Signal;
use nix::sys::stat::Mode;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::time::{clock_gettime, ClockId};
use nix::unistd::{pipe2, read, write, Pid};

use super::*;

const MIB: u64 = 1 << 20;

/// Fails the current test: cgroups cannot be tested here. The tests that
/// need real cgroups are `#[ignore = "privileged: ..."]`, so this runs only
/// when they were asked for; they never return early and pass.
fn missing(reason: impl Display) -> ! {
    panic!("cgroup test did not run: {reason} (run as root with `--include-ignored`)")
}

/// The manager; fails the test when cgroups cannot be tested here. The
/// `runtimed` parents it makes are left in place: they are shared with any
/// other runtimed on the host (see `CgroupManager`).
fn manager() -> CgroupManager {
    if !nix::unistd::geteuid().is_root() {
        missing("not root");
    }
    let m = match CgroupManager::detect() {
        Ok(m) => m,
        Err(e) => missing(format!("cgroups unusable: {e}")),
    };
    let missing_controllers = m.missing_controllers();
    if !missing_controllers.is_empty() {
        missing(format!("missing controllers {missing_controllers:?}"));
    }
    if std::env::var("CGROUP2_VM").as_deref() == Ok("1") {
        assert_eq!(
            m.version(),
            CgroupVersion::V2,
            "the cgroup2 VM must be detected as v2"
        );
    }
    m
}

/// The manager of a pure cgroup v2 hierarchy; fails the test on v1 or
/// hybrid hosts. Tests that need it are named `vm_only_*` (the README's
/// test command skips them; `.ci/cgroup-v2.sh` runs them in a v2 VM).
fn manager_v2() -> CgroupManager {
    let m = manager();
    if m.version() != CgroupVersion::V2 {
        missing(
            "needs cgroup v2 (this host mounts v1 controllers); .ci/cgroup-v2.sh runs it in a VM",
        );
    }
    m
}

fn unique(tag: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "t{}-{tag}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Forks a child that waits until the parent has added it to `cg`, then runs
/// `work` and exits with its result.
fn spawn_in(cg: &Cgroup, work: impl FnOnce() -> i32) -> Pid {
    let (rx, tx) = pipe2(OFlag::O_CLOEXEC).unwrap();
    match sys::test_support::fork().unwrap() {
        None => {
            drop(tx);
            let mut byte = [0u8; 1];
            if !matches!(read(&rx, &mut byte), Ok(1)) {
                sys::exit_now(99);
            }
            sys::exit_now(work())
        }
        Some(pid) => {
            drop(rx);
            cg.add_pid(pid).unwrap();
            write(&tx, b"g").unwrap();
            Pid::from_raw(pid)
        }
    }
}

fn sleep_then_exit() -> i32 {
    std::thread::sleep(Duration::from_secs(20));
    0
}

/// Alive means listed in /proc and not a zombie.
fn alive(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        Ok(stat) => {
            let state = stat
                .rsplit_once(") ")
                .and_then(|(_, rest)| rest.chars().next());
            !matches!(state, Some('Z' | 'X'))
        }
    }
}

fn assert_gone(paths: &[PathBuf]) {
    for p in paths {
        assert!(!p.exists(), "{} still exists", p.display());
    }
}

/// `remove`, then check that none of the directories is left.
fn remove_checked(cg: Cgroup) {
    let paths = cg.paths().to_vec();
    cg.remove().unwrap();
    assert_gone(&paths);
}

/// Reads `file` from whichever of the cgroup's directories has it.
fn read_limit(cg: &Cgroup, file: &str) -> Option<String> {
    cg.paths()
        .iter()
        .map(|d| d.join(file))
        .find(|p| p.exists())
        .map(|p| fs::read_to_string(p).unwrap().trim().to_owned())
}

#[test]
fn names_are_validated() {
    for good in ["a", "sandbox-1_2.x", &"x".repeat(64)] {
        assert!(validate_name(good).is_ok(), "{good:?}");
    }
    for bad in [
        "",
        ".",
        "..",
        "a/b",
        "../x",
        "sp ace",
        "nl\n",
        "ü",
        &"x".repeat(65),
    ] {
        assert!(
            matches!(validate_name(bad), Err(CgroupError::InvalidName { .. })),
            "{bad:?}"
        );
    }
}

#[test]
fn limits_get_defaults_and_need_their_controller() {
    let all = ControllerSet::ALL;
    let quota_only = CgroupLimits {
        cpu_quota_us: Some(50_000),
        ..Default::default()
    };
    assert_eq!(
        checked_limits(&quota_only, all).unwrap().cpu,
        Some((50_000, 100_000))
    );
    let no_cpu = all.intersect(
        ControllerSet::EMPTY
            .with(Controller::Memory)
            .with(Controller::Pids),
    );
    assert!(matches!(
        checked_limits(&quota_only, no_cpu),
        Err(CgroupError::ControllerMissing {
            controller: "cpu",
            ..
        })
    ));
    let zero_pids = CgroupLimits {
        pids: Some(0),
        ..Default::default()
    };
    assert!(matches!(
        checked_limits(&zero_pids, all),
        Err(CgroupError::InvalidLimit { limit: "pids", .. })
    ));
    let long_period = CgroupLimits {
        cpu_quota_us: Some(5_000),
        cpu_period_us: Some(2_000_000),
        ..Default::default()
    };
    assert!(checked_limits(&long_period, all).is_err());
    assert!(checked_limits(&CgroupLimits::default(), ControllerSet::EMPTY).is_ok());
}

#[test]
fn cpu_stat_usage_is_parsed_without_the_rest() {
    assert_eq!(
        v2::parse_usage_usec(b"usage_usec 1234\nuser_usec 1000\nsys"),
        Some(1234)
    );
    assert_eq!(v2::parse_usage_usec(b"user_usec 1000\n"), None);
    assert_eq!(parse_u64(b"987654321\n"), Some(987_654_321));
}

#[test]
#[ignore = "privileged: real cgroups need root"]
fn create_writes_limits_and_remove_leaves_nothing() {
    let m = manager();
    let name = unique("limits");
    let limits = CgroupLimits {
        memory_bytes: Some(64 * MIB),
        pids: Some(16),
        cpu_quota_us: Some(50_000),
        cpu_period_us: None,
        ..Default::default()
    };
    let cg = m.create(&name, &limits).unwrap();
    assert_eq!(cg.name(), name);
    for p in cg.paths() {
        assert!(
            p.is_dir() && p.file_name() == Some(name.as_ref()),
            "{}",
            p.display()
        );
        assert!(m
            .parent_paths()
            .iter()
            .any(|parent| p.parent() == Some(parent)));
    }
    let limit = |file| read_limit(&cg, file);
    match m.version() {
        CgroupVersion::V1 => {
            assert!(cg.v2_dir_fd().is_none());
            assert_eq!(limit("memory.limit_in_bytes").as_deref(), Some("67108864"));
            if let Some(memsw) = limit("memory.memsw.limit_in_bytes") {
                assert_eq!(memsw, "67108864");
            }
            assert_eq!(limit("pids.max").as_deref(), Some("16"));
            assert_eq!(limit("cpu.cfs_period_us").as_deref(), Some("100000"));
            assert_eq!(limit("cpu.cfs_quota_us").as_deref(), Some("50000"));
        }
        CgroupVersion::V2 => {
            assert_eq!(cg.paths().len(), 1);
            assert!(cg.v2_dir_fd().is_some());
            assert_eq!(limit("memory.max").as_deref(), Some("67108864"));
            if let Some(swap) = limit("memory.swap.max") {
                assert_eq!(swap, "0");
            }
            assert_eq!(limit("pids.max").as_deref(), Some("16"));
            assert_eq!(limit("cpu.max").as_deref(), Some("50000 100000"));
        }
    }
    let stats = cg.stats().unwrap();
    assert_eq!(
        (stats.pids_current, stats.oom_kills, stats.pids_limit_hits),
        (0, 0, 0)
    );
    remove_checked(cg);

    // Without a quota, v1 skips the cpu hierarchy (unless it is co-mounted
    // with cpuacct, which is always needed).
    let cg = m
        .create(&unique("nocpu"), &CgroupLimits::default())
        .unwrap();
    for dir in cg.paths() {
        assert!(
            !dir.join("cpu.cfs_quota_us").exists() || dir.join("cpuacct.usage").exists(),
            "{} made without a CPU limit",
            dir.display()
        );
    }
    remove_checked(cg);
}

/// An engine's resources beyond the front ends': swap as memory plus swap,
/// a reservation, CPU shares (v2: converted to a weight), each in its file.
#[test]
#[ignore = "privileged: real cgroups need root"]
fn engine_limits_reach_their_files() {
    let m = manager();
    let limits = CgroupLimits {
        memory_bytes: Some(64 * MIB),
        memory_swap_bytes: Some(96 * MIB),
        memory_reservation_bytes: Some(32 * MIB),
        cpu_shares: Some(512),
        ..Default::default()
    };
    let cg = m.create(&unique("engine"), &limits).unwrap();
    let limit = |file| read_limit(&cg, file);
    match m.version() {
        CgroupVersion::V1 => {
            if let Some(memsw) = limit("memory.memsw.limit_in_bytes") {
                assert_eq!(memsw, (96 * MIB).to_string());
            }
            assert_eq!(
                limit("memory.soft_limit_in_bytes"),
                Some((32 * MIB).to_string())
            );
            assert_eq!(limit("cpu.shares").as_deref(), Some("512"));
        }
        CgroupVersion::V2 => {
            if let Some(swap) = limit("memory.swap.max") {
                assert_eq!(swap, (32 * MIB).to_string());
            }
            assert_eq!(limit("memory.low"), Some((32 * MIB).to_string()));
            assert_eq!(limit("cpu.weight").as_deref(), Some("20"));
        }
    }
    remove_checked(cg);
}

#[test]
#[ignore = "privileged: real cgroups need root"]
fn bad_names_and_rejected_limits_create_nothing() {
    let m = manager();
    let long = "x".repeat(65);
    for bad in ["", "..", "a/b", "../escape", "sp ace", long.as_str()] {
        let err = m.create(bad, &CgroupLimits::default()).unwrap_err();
        assert!(
            matches!(err, CgroupError::InvalidName { .. }),
            "{bad:?}: {err}"
        );
    }
    for parent in m.parent_paths() {
        assert!(!parent.join("a").exists() && !parent.join(&long).exists());
        assert!(!parent.parent().unwrap().join("escape").exists());
    }
    // The kernel refuses a quota above max_cfs_runtime (about 2^44 µs), after
    // the directories are made: they must be removed again.
    let name = unique("rejected");
    let huge_quota = CgroupLimits {
        memory_bytes: Some(64 * MIB),
        cpu_quota_us: Some(1 << 50),
        ..Default::default()
    };
    let err = m.create(&name, &huge_quota).unwrap_err();
    assert!(matches!(err, CgroupError::Write { .. }), "{err}");
    for parent in m.parent_paths() {
        assert!(
            !parent.join(&name).exists(),
            "{} left behind",
            parent.join(&name).display()
        );
    }
}

#[test]
#[ignore = "privileged: real cgroups need root"]
fn memory_bomb_is_oom_killed() {
    let m = manager();
    let limits = CgroupLimits {
        memory_bytes: Some(32 * MIB),
        pids: Some(16),
        ..Default::default()
    };
    let cg = m.create(&unique("membomb"), &limits).unwrap();
    let child = spawn_in(&cg, || {
        // Touch one byte per page of fresh 1 MiB blocks, up to 256 MiB.
        let mut kept = Vec::new();
        for _ in 0..256 {
            let mut block = vec![0u8; MIB as usize];
            for i in (0..block.len()).step_by(4096) {
                block[i] = 1;
            }
            kept.push(std::hint::black_box(block));
        }
        0
    });
    let status = waitpid(child, None).unwrap();
    assert!(
        matches!(status, WaitStatus::Signaled(_, Signal::SIGKILL, _)),
        "the bomb survived a 32 MiB limit: {status:?}"
    );
    let stats = cg.stats().unwrap();
    assert!(stats.oom_kills >= 1, "{stats:?}");
    assert!(stats.memory_peak_bytes >= 16 * MIB, "{stats:?}");
    remove_checked(cg);
}

#[test]
#[ignore = "privileged: real cgroups need root"]
fn fork_bomb_hits_pids_limit() {
    let m = manager();
    let limits = CgroupLimits {
        pids: Some(8),
        ..Default::default()
    };
    let cg = m.create(&unique("forkbomb"), &limits).unwrap();
    let child = spawn_in(&cg, || {
        let mut refused = 0;
        for _ in 0..32 {
            match sys::test_support::fork() {
                Ok(None) => sys::exit_now(sleep_then_exit()),
                Ok(Some(_)) => {}
                Err(_) => refused += 1,
            }
        }
        // Exit 0 only if the limit refused some forks.
        i32::from(refused == 0)
    });
    assert_eq!(waitpid(child, None).unwrap(), WaitStatus::Exited(child, 0));
    let stats = cg.stats().unwrap();
    assert!(stats.pids_limit_hits >= 1, "{stats:?}");
    assert!((1..=8).contains(&stats.pids_current), "{stats:?}");
    remove_checked(cg);
}

#[test]
#[ignore = "privileged: real cgroups need root"]
fn cpu_burn_and_memory_peak_are_accounted() {
    let m = manager();
    let limits = CgroupLimits {
        memory_bytes: Some(256 * MIB),
        ..Default::default()
    };
    let cg = m.create(&unique("cpu"), &limits).unwrap();
    let before = cg.cpu_usage_ns().unwrap();
    let child = spawn_in(&cg, || {
        let mut block = vec![0u8; 16 * MIB as usize];
        for i in (0..block.len()).step_by(4096) {
            block[i] = 1;
        }
        std::hint::black_box(&block);
        // Burn 200 ms of user CPU time beyond what the page faults took
        // (CPU time, not wall time: the host may be busy; in the emulated
        // VM the faults alone take a few hundred ms of system time).
        let cpu_ns = || {
            clock_gettime(ClockId::CLOCK_PROCESS_CPUTIME_ID)
                .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
                .unwrap_or(u64::MAX)
        };
        let start = cpu_ns();
        if start == u64::MAX {
            return 2;
        }
        let mut x = 0u64;
        while cpu_ns().saturating_sub(start) < 200_000_000 {
            for i in 0..1_000_000u64 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
            }
        }
        0
    });
    assert_eq!(waitpid(child, None).unwrap(), WaitStatus::Exited(child, 0));
    let after = cg.cpu_usage_ns().unwrap();
    assert!(
        after >= before + 150_000_000,
        "cpu usage grew only from {before} to {after} ns"
    );
    let stats = cg.stats().unwrap();
    assert!(
        stats.cpu_usage_ns >= after && stats.cpu_user_ns > 0,
        "{stats:?}"
    );
    assert!(stats.memory_peak_bytes >= 16 * MIB, "{stats:?}");
    assert_eq!(stats.oom_kills, 0, "{stats:?}");
    remove_checked(cg);
}

#[test]
#[ignore = "privileged: real cgroups need root"]
fn kill_all_reaches_double_forked_grandchild() {
    let m = manager();
    let cg = m
        .create(&unique("dblfork"), &CgroupLimits::default())
        .unwrap();
    let (rx, tx): (OwnedFd, OwnedFd) = pipe2(OFlag::O_CLOEXEC).unwrap();
    let child = spawn_in(&cg, move || match sys::test_support::fork() {
        Ok(None) => sys::exit_now(sleep_then_exit()),
        Ok(Some(grandchild)) => i32::from(write(&tx, &grandchild.to_le_bytes()) != Ok(4)),
        Err(_) => 2,
    });
    let mut buf = [0u8; 4];
    assert_eq!(read(&rx, &mut buf), Ok(4));
    let grandchild = i32::from_le_bytes(buf);
    // The child is gone; the grandchild was reparented out of our sight.
    assert_eq!(waitpid(child, None).unwrap(), WaitStatus::Exited(child, 0));
    assert!(alive(grandchild));
    assert_eq!(cg.pids().unwrap(), vec![grandchild]);

    cg.kill_all().unwrap();
    assert_eq!(cg.pids().unwrap(), Vec::<i32>::new());
    let start = Instant::now();
    while alive(grandchild) && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        !alive(grandchild),
        "grandchild {grandchild} survived kill_all"
    );
    remove_checked(cg);
}

#[test]
#[ignore = "privileged: real cgroups need root"]
fn remove_and_drop_kill_and_leave_nothing() {
    let m = manager();
    let cg = m
        .create(&unique("remove"), &CgroupLimits::default())
        .unwrap();
    let sleeper = spawn_in(&cg, sleep_then_exit);
    remove_checked(cg);
    assert!(matches!(
        waitpid(sleeper, None).unwrap(),
        WaitStatus::Signaled(_, Signal::SIGKILL, _)
    ));

    let cg = m.create(&unique("drop"), &CgroupLimits::default()).unwrap();
    let sleeper = spawn_in(&cg, sleep_then_exit);
    let paths = cg.paths().to_vec();
    drop(cg);
    assert_gone(&paths);
    assert!(matches!(
        waitpid(sleeper, None).unwrap(),
        WaitStatus::Signaled(_, Signal::SIGKILL, _)
    ));
}

/// Runs in the clone3 child: no allocation (the test process has threads and
/// clone3 runs no atfork handlers), only open/read on stack buffers.
fn own_cgroup_ends_with(suffix: &[u8]) -> i32 {
    let Ok(fd) = nix::fcntl::open(
        "/proc/self/cgroup",
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) else {
        return 2;
    };
    let mut buf = [0u8; 512];
    match read(&fd, &mut buf) {
        Ok(n) if buf[..n].ends_with(suffix) => 0,
        Ok(_) => 3,
        Err(_) => 4,
    }
}

#[test]
#[ignore = "cgroup v2 VM: CLONE_INTO_CGROUP needs cgroup v2"]
fn vm_only_clone3_into_cgroup_starts_child_inside() {
    let m = manager_v2();
    let name = unique("clone3");
    let cg = m.create(&name, &CgroupLimits::default()).unwrap();
    let dir_fd = cg.v2_dir_fd().expect("a v2 cgroup has a directory fd");
    let parent_name = m.parent_paths()[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let suffix = format!("/{parent_name}/{name}\n");
    match sys::test_support::clone3(0, Some(dir_fd)).unwrap() {
        sys::CloneResult::Child(_) => sys::exit_now(own_cgroup_ends_with(suffix.as_bytes())),
        sys::CloneResult::Parent { pid, .. } => {
            let pid = Pid::from_raw(pid);
            assert_eq!(
                waitpid(pid, None).unwrap(),
                WaitStatus::Exited(pid, 0),
                "child not in {suffix:?}"
            );
        }
    }
    remove_checked(cg);
}

const SUPERVISOR_OWN_ENV: &str = "SANDBOX_CGROUP_TEST_OWN";

#[test]
#[ignore = "cgroup v2 VM: needs cgroup v2"]
fn vm_only_v2_supervisor_leaf_when_own_cgroup_has_processes() {
    if let Ok(own) = std::env::var(SUPERVISOR_OWN_ENV) {
        return supervisor_child(Path::new(&own));
    }
    let m = manager_v2();
    // A fresh cgroup beside our parent, for a copy of this test binary to
    // start in, as a daemon starts in its own service cgroup.
    let own = m.parent_paths()[0].parent().unwrap().join(unique("own"));
    fs::create_dir(&own).unwrap();
    let test = format!(
        "{}::vm_only_v2_supervisor_leaf_when_own_cgroup_has_processes",
        module_path!().split_once("::").unwrap().1
    );
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            test.as_str(),
            "--exact",
            "--include-ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(SUPERVISOR_OWN_ENV, &own)
        .output()
        .unwrap();
    for dir in [
        own.join("runtimed"),
        own.join("runtimed-supervisor"),
        own.clone(),
    ] {
        let _ = fs::remove_dir(dir);
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "supervisor child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!own.exists(), "{} left behind", own.display());
}

/// The copy of the test binary: enters `own`, detects (which must move it
/// into `own/runtimed-supervisor`), detects again (idempotent) and uses it.
fn supervisor_child(own: &Path) {
    write_value(&own.join("cgroup.procs"), &std::process::id().to_string()).unwrap();
    let m = CgroupManager::detect().unwrap();
    let leaf = format!(
        "/{}/runtimed-supervisor\n",
        own.file_name().unwrap().to_string_lossy()
    );
    let cgroup = fs::read_to_string("/proc/self/cgroup").unwrap();
    assert!(
        cgroup.ends_with(&leaf),
        "{cgroup:?} should end with {leaf:?}"
    );
    assert_eq!(m.parent_paths(), vec![own.join("runtimed")]);
    assert!(
        m.missing_controllers().is_empty(),
        "{:?}",
        m.missing_controllers()
    );
    let again = CgroupManager::detect().unwrap();
    assert_eq!(again.parent_paths(), m.parent_paths());
    assert_eq!(fs::read_to_string("/proc/self/cgroup").unwrap(), cgroup);
    let cg = again
        .create(
            &unique("sup"),
            &CgroupLimits {
                pids: Some(4),
                memory_bytes: Some(16 * MIB),
                ..Default::default()
            },
        )
        .unwrap();
    remove_checked(cg);
}

/// Forks a child that moves itself into `cg` through its join fds (as an
/// exec's program does), then runs `work` and exits with its result.
fn spawn_joined(cg: &Cgroup, work: impl FnOnce() -> i32) -> Pid {
    let fds = cg.join_fds().unwrap();
    match sys::test_support::fork().unwrap() {
        None => {
            for fd in &fds {
                if write(fd, b"0").is_err() {
                    sys::exit_now(98);
                }
            }
            sys::exit_now(work())
        }
        Some(pid) => Pid::from_raw(pid),
    }
}

/// Touches one byte per page of fresh 1 MiB blocks, up to 256 MiB.
fn memory_bomb() -> i32 {
    let mut kept = Vec::new();
    for _ in 0..256 {
        let mut block = vec![0u8; MIB as usize];
        for i in (0..block.len()).step_by(4096) {
            block[i] = 1;
        }
        kept.push(std::hint::black_box(block));
    }
    0
}

/// Two child cgroups of one parent whose limits they share: the OOM kill
/// and the refused forks of one are counted in its cgroup, not its
/// sibling's; removing the parent kills and removes the children too.
#[test]
#[ignore = "privileged: real cgroups need root"]
fn child_cgroups_account_apart_and_go_with_their_parent() {
    let m = manager();
    let name = unique("parent");
    let limits = CgroupLimits {
        memory_bytes: Some(32 * MIB),
        pids: Some(8),
        ..Default::default()
    };
    let parent = m.create_with_children(&name, &limits).unwrap();
    if m.version() == CgroupVersion::V2 {
        // The parent's own processes' leaf, and the controllers its
        // children need for their own counters.
        let dir = &parent.paths()[0];
        assert!(dir.join(INIT_LEAF).is_dir());
        let enabled = fs::read_to_string(dir.join("cgroup.subtree_control")).unwrap();
        assert!(
            enabled.contains("memory") && enabled.contains("pids"),
            "{enabled}"
        );
    }
    let bomb_cg = m
        .create_child(&name, "bomb", &CgroupLimits::default())
        .unwrap();
    let quiet_cg = m
        .create_child(&name, "quiet", &CgroupLimits::default())
        .unwrap();
    assert!(m
        .create_child(&name, INIT_LEAF, &CgroupLimits::default())
        .is_err());
    assert!(matches!(
        m.create_child(&unique("none"), "x", &CgroupLimits::default()),
        Err(CgroupError::ParentMissing { .. })
    ));
    let quiet = spawn_joined(&quiet_cg, sleep_then_exit);
    let bomb = spawn_joined(&bomb_cg, memory_bomb);
    assert!(
        matches!(
            waitpid(bomb, None).unwrap(),
            WaitStatus::Signaled(_, Signal::SIGKILL, _)
        ),
        "the bomb survived its parent's limit"
    );
    let forker = spawn_joined(&bomb_cg, || {
        let mut refused = 0;
        for _ in 0..16 {
            match sys::test_support::fork() {
                Ok(None) => sys::exit_now(sleep_then_exit()),
                Ok(Some(_)) => {}
                Err(_) => refused += 1,
            }
        }
        i32::from(refused == 0)
    });
    assert_eq!(
        waitpid(forker, None).unwrap(),
        WaitStatus::Exited(forker, 0)
    );
    let (b, q) = (bomb_cg.stats().unwrap(), quiet_cg.stats().unwrap());
    assert!(b.oom_kills >= 1, "bomb {b:?}");
    assert!(b.pids_limit_hits >= 1, "bomb {b:?}");
    assert_eq!((q.oom_kills, q.pids_limit_hits), (0, 0), "quiet {q:?}");
    assert_eq!(q.pids_current, 1, "quiet {q:?}");
    assert_eq!(quiet_cg.pids().unwrap(), vec![quiet.as_raw()]);
    // The parent's listing reaches its children's processes.
    assert!(parent.pids().unwrap().contains(&quiet.as_raw()));
    let child_paths: Vec<PathBuf> = [&bomb_cg, &quiet_cg]
        .iter()
        .flat_map(|c| c.paths().to_vec())
        .collect();
    remove_checked(parent);
    assert_gone(&child_paths);
    assert!(matches!(
        waitpid(quiet, None).unwrap(),
        WaitStatus::Signaled(_, Signal::SIGKILL, _)
    ));
    // Their own removal finds nothing left to do.
    bomb_cg.remove().unwrap();
    quiet_cg.remove().unwrap();
}
