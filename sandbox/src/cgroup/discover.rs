//! Finding our own place in the cgroup hierarchies, from the text of
//! `/proc/self/mountinfo` and `/proc/self/cgroup`. Kept free of I/O so every
//! host layout (hybrid, co-mounted v1, pure v2, cgroup namespaces) can be
//! unit-tested from a sample.

use std::path::{Component, Path, PathBuf};

use super::{CgroupError, Controller, ControllerSet};

/// A cgroup filesystem mount, as listed in mountinfo.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Mount {
    /// Which cgroup of the hierarchy is the mount's root (non-`/` for bind
    /// mounts of a subtree and inside cgroup namespaces).
    pub root: PathBuf,
    pub mount_point: PathBuf,
    /// `None` for cgroup2; for v1, the controllers we use that this
    /// hierarchy holds (possibly none, e.g. `name=systemd`).
    pub v1: Option<ControllerSet>,
}

/// Our process's cgroup in each hierarchy, from `/proc/self/cgroup`.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Membership {
    /// v1 lines: controllers we use that the hierarchy holds, and our path.
    pub v1: Vec<(ControllerSet, PathBuf)>,
    /// The `0::path` line.
    pub v2: Option<PathBuf>,
}

/// What detection found, before touching any cgroup file.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Plan {
    /// One entry per v1 hierarchy holding controllers we use: our own
    /// cgroup's directory there and the controllers it holds.
    V1(Vec<(PathBuf, ControllerSet)>),
    /// Our own cgroup's directory in the unified hierarchy.
    V2(PathBuf),
}

/// Parses mountinfo (proc(5)): `id parent maj:min root mountpoint opts
/// [optional...] - fstype source superopts`. Only cgroup mounts are kept.
pub(super) fn parse_mountinfo(text: &str) -> Vec<Mount> {
    let mut mounts = Vec::new();
    for line in text.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let mut fields = left.split(' ');
        let (Some(root), Some(mount_point)) = (fields.nth(3), fields.next()) else {
            continue;
        };
        let mut right = right.split(' ');
        let fstype = right.next().unwrap_or_default();
        let super_opts = right.nth(1).unwrap_or_default();
        let v1 = match fstype {
            "cgroup2" => None,
            "cgroup" => Some(controllers_in(super_opts.split(','))),
            _ => continue,
        };
        mounts.push(Mount {
            root: PathBuf::from(unescape(root)),
            mount_point: PathBuf::from(unescape(mount_point)),
            v1,
        });
    }
    mounts
}

/// Parses `/proc/self/cgroup` (cgroups(7)): `id:controllers:path`.
pub(super) fn parse_proc_cgroup(text: &str) -> Membership {
    let mut membership = Membership::default();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if id == "0" && controllers.is_empty() {
            membership.v2 = Some(PathBuf::from(path));
        } else {
            membership
                .v1
                .push((controllers_in(controllers.split(',')), PathBuf::from(path)));
        }
    }
    membership
}

/// Decides v1 or v2 and where our own cgroups are.
///
/// A controller is bound to exactly one hierarchy, so if any v1 mount holds
/// one we use, the host is hybrid (or legacy) and we use v1 for all of them;
/// otherwise the unified hierarchy is the place. `supervisor_leaf` is the name
/// of the leaf that v2 setup may have moved us into earlier in this process:
/// our own cgroup is then its parent, not the leaf.
pub(super) fn plan(
    mounts: &[Mount],
    membership: &Membership,
    supervisor_leaf: &str,
) -> Result<Plan, CgroupError> {
    let wanted = ControllerSet::ALL;
    let v1_used = mounts
        .iter()
        .filter_map(|m| m.v1)
        .fold(ControllerSet::EMPTY, |acc, set| {
            acc.union(set.intersect(wanted))
        });
    if !v1_used.is_empty() {
        let mut hierarchies: Vec<(PathBuf, ControllerSet)> = Vec::new();
        for (set, own) in &membership.v1 {
            if set.is_empty() || hierarchies.iter().any(|(_, s)| s.intersects(*set)) {
                continue;
            }
            // The same hierarchy may be mounted more than once (bind mounts);
            // take the first mount through which our own cgroup is visible.
            let dir = mounts
                .iter()
                .filter(|m| m.v1 == Some(*set))
                .find_map(|m| dir_of(m, own));
            if let Some(dir) = dir {
                hierarchies.push((dir, *set));
            }
        }
        return Ok(Plan::V1(hierarchies));
    }
    let own = membership.v2.as_deref().ok_or(CgroupError::NoCgroupFs)?;
    let own = match own.file_name() {
        Some(leaf) if leaf == supervisor_leaf => own.parent().unwrap_or(own),
        _ => own,
    };
    // Prefer the canonical mount point when cgroup2 is mounted several times.
    let mut v2_mounts: Vec<&Mount> = mounts.iter().filter(|m| m.v1.is_none()).collect();
    v2_mounts.sort_by_key(|m| m.mount_point != Path::new("/sys/fs/cgroup"));
    v2_mounts
        .into_iter()
        .find_map(|m| dir_of(m, own))
        .map(Plan::V2)
        .ok_or(CgroupError::NoCgroupFs)
}

/// Directory of cgroup `own` (a hierarchy path) through mount `m`, if the
/// mount shows it. A path with `..` (a cgroup outside our cgroup namespace)
/// is never usable.
fn dir_of(m: &Mount, own: &Path) -> Option<PathBuf> {
    let rel = own.strip_prefix(&m.root).ok()?;
    if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return None;
    }
    Some(m.mount_point.join(rel))
}

fn controllers_in<'a>(names: impl Iterator<Item = &'a str>) -> ControllerSet {
    names
        .filter_map(Controller::from_name)
        .fold(ControllerSet::EMPTY, ControllerSet::with)
}

/// Undoes mountinfo's octal escapes (`\040` for space, `\011`, `\012`, `\134`).
fn unescape(field: &str) -> String {
    if !field.contains('\\') {
        return field.to_owned();
    }
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match (bytes[i], octal) {
            (b'\\', Some(d)) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID_MOUNTINFO: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    const HYBRID_CGROUP: &str = "\
9:name=systemd:/
8:pids:/
4:memory:/process_api/84fb
2:cpuacct:/
1:cpu:/
0::/
";

    fn set(cs: &[Controller]) -> ControllerSet {
        cs.iter()
            .copied()
            .fold(ControllerSet::EMPTY, ControllerSet::with)
    }

    #[test]
    fn hybrid_host_uses_v1_below_own_cgroups() {
        let mounts = parse_mountinfo(HYBRID_MOUNTINFO);
        assert_eq!(mounts.len(), 6, "tmpfs is not a cgroup mount: {mounts:?}");
        let plan = plan(
            &mounts,
            &parse_proc_cgroup(HYBRID_CGROUP),
            "runtimed-supervisor",
        )
        .unwrap();
        assert_eq!(
            plan,
            Plan::V1(vec![
                ("/sys/fs/cgroup/pids".into(), set(&[Controller::Pids])),
                (
                    "/sys/fs/cgroup/memory/process_api/84fb".into(),
                    set(&[Controller::Memory])
                ),
                ("/sys/fs/cgroup/cpuacct".into(), set(&[Controller::Cpuacct])),
                ("/sys/fs/cgroup/cpu".into(), set(&[Controller::Cpu])),
            ])
        );
    }

    #[test]
    fn co_mounted_cpu_cpuacct_is_one_hierarchy() {
        let mounts = parse_mountinfo(
            "30 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n\
             31 25 0:27 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n",
        );
        let membership = parse_proc_cgroup("3:cpu,cpuacct:/a/b\n2:memory:/a\n0::/a\n");
        assert_eq!(
            plan(&mounts, &membership, "x").unwrap(),
            Plan::V1(vec![
                (
                    "/sys/fs/cgroup/cpu,cpuacct/a/b".into(),
                    set(&[Controller::Cpu, Controller::Cpuacct])
                ),
                ("/sys/fs/cgroup/memory/a".into(), set(&[Controller::Memory])),
            ])
        );
    }

    #[test]
    fn pure_v2_prefers_sys_fs_cgroup_and_strips_supervisor_leaf() {
        let mounts = parse_mountinfo(
            "40 20 0:50 / /mnt/other rw - cgroup2 cgroup2 rw\n\
             29 20 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n",
        );
        let own = parse_proc_cgroup("0::/system.slice/runtimed.service/runtimed-supervisor\n");
        assert_eq!(
            plan(&mounts, &own, "runtimed-supervisor").unwrap(),
            Plan::V2("/sys/fs/cgroup/system.slice/runtimed.service".into())
        );
        let own = parse_proc_cgroup("0::/\n");
        assert_eq!(
            plan(&mounts, &own, "runtimed-supervisor").unwrap(),
            Plan::V2("/sys/fs/cgroup".into())
        );
    }

    #[test]
    fn mount_root_and_escapes_are_honoured() {
        // A container's bind mount of its own subtree, at a path with a space.
        let mounts =
            parse_mountinfo("50 40 0:26 /kubepods/pod1 /my\\040cg rw - cgroup2 cgroup2 rw\n");
        assert_eq!(mounts[0].mount_point, Path::new("/my cg"));
        let inside = parse_proc_cgroup("0::/kubepods/pod1/c\n");
        assert_eq!(
            plan(&mounts, &inside, "s").unwrap(),
            Plan::V2("/my cg/c".into())
        );
        // Our cgroup is not below the mount's root: nothing usable.
        let outside = parse_proc_cgroup("0::/other\n");
        assert!(matches!(
            plan(&mounts, &outside, "s"),
            Err(CgroupError::NoCgroupFs)
        ));
        let escaped = parse_proc_cgroup("0::/kubepods/pod1/../../x\n");
        assert!(matches!(
            plan(&mounts, &escaped, "s"),
            Err(CgroupError::NoCgroupFs)
        ));
    }

    #[test]
    fn no_cgroup_mount_is_an_error() {
        let mounts = parse_mountinfo("22 1 0:21 / /proc rw - proc proc rw\n");
        assert!(matches!(
            plan(&mounts, &parse_proc_cgroup("0::/\n"), "s"),
            Err(CgroupError::NoCgroupFs)
        ));
    }
}
