//! `runtimed doctor`: can this host isolate sandboxes? Each check observes
//! the real thing (a namespace is created, a filter is loaded, a sandbox is
//! started) and comes with a fix hint. Exit status is non-zero when
//! sandboxes cannot be isolated.

use sandbox::SingleThreaded;
use serde::Serialize;

use sandbox::cgroup::{CgroupManager, CgroupVersion};

#[derive(clap::Args, Debug)]
pub struct DoctorArgs {
    /// Print the findings as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Level {
    Ok,
    Warn,
    Fail,
}

#[derive(Serialize, Debug)]
struct Finding {
    check: &'static str,
    level: Level,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    fix: Option<String>,
}

fn finding(
    check: &'static str,
    level: Level,
    detail: impl Into<String>,
    fix: Option<&str>,
) -> Finding {
    Finding {
        check,
        level,
        detail: detail.into(),
        fix: fix.map(str::to_string),
    }
}

fn read_trim(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

fn check_root() -> Finding {
    if nix::unistd::Uid::effective().is_root() {
        finding(
            "root",
            Level::Ok,
            "running as root: per-sandbox host uid ranges available",
            None,
        )
    } else {
        finding(
            "root",
            Level::Fail,
            "not root: sandboxes need root (rootless mode is not implemented)",
            Some("run runtimed as root (e.g. a systemd service)"),
        )
    }
}

fn check_kernel() -> Finding {
    let rel = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut parts = rel
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|p| p.parse::<u32>().ok());
    let (maj, min) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if (maj, min) >= (5, 14) {
        finding(
            "kernel",
            Level::Ok,
            format!("Linux {rel} (clone3 into cgroup, cgroup.kill, pidfds)"),
            None,
        )
    } else {
        finding(
            "kernel",
            Level::Fail,
            format!("Linux {rel}: 5.14 or newer is required (clone3, pidfd_open, close_range)"),
            Some("upgrade the kernel"),
        )
    }
}

fn check_userns(single: &SingleThreaded) -> Vec<Finding> {
    let mut out = Vec::new();
    let max = read_trim("/proc/sys/user/max_user_namespaces").and_then(|s| s.parse::<u64>().ok());
    let flags = nix::sched::CloneFlags::CLONE_NEWUSER
        | nix::sched::CloneFlags::CLONE_NEWNS
        | nix::sched::CloneFlags::CLONE_NEWPID
        | nix::sched::CloneFlags::CLONE_NEWNET
        | nix::sched::CloneFlags::CLONE_NEWIPC
        | nix::sched::CloneFlags::CLONE_NEWUTS
        | nix::sched::CloneFlags::CLONE_NEWCGROUP;
    let status = sandbox::helper::run_in_child(single, || match nix::sched::unshare(flags) {
        Ok(()) => 0,
        Err(e) => e as i32,
    });
    match status {
        Ok(nix::sys::wait::WaitStatus::Exited(_, 0)) => out.push(finding(
            "namespaces",
            Level::Ok,
            format!("user, mount, pid, net, ipc, uts, cgroup namespaces can be created (max_user_namespaces={})", max.unwrap_or(0)),
            None,
        )),
        Ok(nix::sys::wait::WaitStatus::Exited(_, code)) => out.push(finding(
            "namespaces",
            Level::Fail,
            format!("unshare of the sandbox namespaces failed: {}", nix::errno::Errno::from_raw(code).desc()),
            Some(if max == Some(0) {
                "sysctl -w user.max_user_namespaces=65536"
            } else {
                "check user.max_user_namespaces, kernel.unprivileged_userns_clone and any LSM denying unshare"
            }),
        )),
        other => out.push(finding("namespaces", Level::Fail, format!("probe child failed: {other:?}"), None)),
    }
    if read_trim("/proc/sys/kernel/apparmor_restrict_unprivileged_userns").as_deref() == Some("1") {
        out.push(finding(
            "apparmor_userns",
            Level::Warn,
            "AppArmor restricts unprivileged user namespaces (affects non-root use only)",
            Some("as root nothing is needed; for rootless use add an AppArmor profile allowing userns for runtimed"),
        ));
    } else {
        out.push(finding(
            "apparmor_userns",
            Level::Ok,
            "no AppArmor user namespace restriction",
            None,
        ));
    }
    out
}

fn check_cgroups() -> Finding {
    match CgroupManager::detect() {
        Ok(m) => {
            let version = match m.version() {
                CgroupVersion::V1 => "v1/hybrid",
                CgroupVersion::V2 => "v2",
            };
            let missing = m.missing_controllers();
            if missing.is_empty() {
                finding(
                    "cgroups",
                    Level::Ok,
                    format!(
                        "cgroup {version}; controllers {}; sandboxes below {}",
                        m.controllers().join(", "),
                        m.parent_paths()
                            .first()
                            .map(|p| p.display().to_string())
                            .unwrap_or_default()
                    ),
                    None,
                )
            } else {
                finding(
                    "cgroups",
                    Level::Fail,
                    format!("cgroup {version}: controllers missing: {}", missing.join(", ")),
                    Some(match m.version() {
                        CgroupVersion::V2 => "enable them for our cgroup: delegate with systemd (Delegate=yes) or write +memory +pids +cpu to the parent's cgroup.subtree_control",
                        CgroupVersion::V1 => "mount the missing v1 controllers, or boot with systemd.unified_cgroup_hierarchy=1 for cgroup v2",
                    }),
                )
            }
        }
        Err(e) => finding(
            "cgroups",
            Level::Fail,
            format!("cgroups unusable: {e}"),
            Some("mount cgroup2 at /sys/fs/cgroup (or the v1 controllers)"),
        ),
    }
}

fn check_seccomp(single: &SingleThreaded) -> Finding {
    let filter = match sandbox::seccomp::compile(sandbox::SeccompProfile::Default) {
        Ok(Some(f)) => f,
        Ok(None) => {
            return finding(
                "seccomp",
                Level::Fail,
                "default profile compiled to nothing",
                None,
            )
        }
        Err(e) => {
            return finding(
                "seccomp",
                Level::Fail,
                format!("default profile does not compile: {e}"),
                None,
            )
        }
    };
    // Load it in a child and check that mount(2) is now refused.
    let status = sandbox::helper::run_in_child(single, || {
        if filter.apply().is_err() {
            return 2;
        }
        match nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER) {
            Err(nix::errno::Errno::EPERM) => 0,
            _ => 3,
        }
    });
    match status {
        Ok(nix::sys::wait::WaitStatus::Exited(_, 0)) => finding(
            "seccomp",
            Level::Ok,
            "filters load and deny (unshare → EPERM)",
            None,
        ),
        other => finding(
            "seccomp",
            Level::Fail,
            format!("seccomp filter could not be loaded or did not deny: {other:?}"),
            Some("a kernel with CONFIG_SECCOMP_FILTER is required"),
        ),
    }
}

fn check_overlay() -> Finding {
    let fs = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
    if fs
        .lines()
        .any(|l| l.split_whitespace().last() == Some("overlay"))
    {
        finding(
            "overlayfs",
            Level::Ok,
            "overlay filesystem available (image sessions)",
            None,
        )
    } else {
        finding(
            "overlayfs",
            Level::Warn,
            "overlay filesystem not loaded (needed for OCI images, not for the host rootfs)",
            Some("modprobe overlay"),
        )
    }
}

fn check_landlock() -> Finding {
    match sandbox::landlock::abi() {
        0 => finding(
            "landlock",
            Level::Warn,
            "Landlock unavailable: the extra filesystem layer is skipped",
            Some("boot with lsm=...,landlock (CONFIG_SECURITY_LANDLOCK)"),
        ),
        abi => finding("landlock", Level::Ok, format!("Landlock ABI {abi}"), None),
    }
}

fn check_sandbox(single: &SingleThreaded) -> Finding {
    // The spec every front end makes (with /tmp and /workspace, the cwd).
    let spec = match sandbox::Request::builder(vec!["/bin/true".into()]).build() {
        Ok(req) => req.spec,
        Err(e) => {
            return finding(
                "sandbox",
                Level::Fail,
                format!("could not build the probe's request: {e}"),
                None,
            )
        }
    };
    let opts = sandbox::RunOptions {
        sandbox_id: Some(format!("doctor-{}", std::process::id())),
        wall_time: Some(std::time::Duration::from_secs(10)),
        ..Default::default()
    };
    match sandbox::Sandbox::create(&spec, opts, single) {
        Ok(sb) => {
            let (report, _) = sb.supervise(None);
            match (&report.error, report.exit_code) {
                (None, Some(0)) => finding(
                    "sandbox",
                    Level::Ok,
                    format!(
                        "started /bin/true in full isolation (host uid {}, {} µs)",
                        report.host_uid, report.wall_time_us
                    ),
                    None,
                ),
                (Some(e), _) => finding("sandbox", Level::Fail, e.to_string(), None),
                _ => finding(
                    "sandbox",
                    Level::Fail,
                    format!("/bin/true ended as {}", report.termination.as_str()),
                    None,
                ),
            }
        }
        Err(e) => finding(
            "sandbox",
            Level::Fail,
            e.as_step_failure().to_string(),
            None,
        ),
    }
}

pub fn main(args: DoctorArgs, single: &SingleThreaded) -> i32 {
    let mut findings = vec![check_root(), check_kernel()];
    findings.extend(check_userns(single));
    findings.push(check_cgroups());
    findings.push(check_seccomp(single));
    findings.push(check_overlay());
    findings.push(check_landlock());
    if findings.iter().all(|f| f.level != Level::Fail) {
        findings.push(check_sandbox(single));
    }
    let failed = findings.iter().any(|f| f.level == Level::Fail);
    if args.json {
        match serde_json::to_string_pretty(&findings) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("runtimed: {e}"),
        }
    } else {
        for f in &findings {
            let tag = match f.level {
                Level::Ok => "ok  ",
                Level::Warn => "warn",
                Level::Fail => "FAIL",
            };
            println!("{tag} {:<16} {}", f.check, f.detail);
            if let Some(fix) = &f.fix {
                println!("     {:<16} fix: {fix}", "");
            }
        }
        println!(
            "{}",
            if failed {
                "sandboxes cannot be isolated on this host"
            } else {
                "this host can run isolated sandboxes"
            }
        );
    }
    i32::from(failed)
}
