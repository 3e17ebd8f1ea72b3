//! Child-side mount steps: build the new root below a staging directory in
//! the sandbox's private mount namespace, pivot into it, then mask and
//! write-protect /proc paths as the OCI/moby defaults do.
//!
//! Runs in the sandbox's PID 1 before the program exists. Every function
//! returns a [`StepError`] naming what failed on what.

use std::os::fd::RawFd;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::MsFlags;
use nix::sys::statvfs::{statvfs, FsFlags};

use crate::process::StepError;
use crate::report::Step;
use crate::spec::plan::{EtcEntry, HostLayout, MountKind, MountPlan, Plan, RootPlan};
use crate::sys::ops::{MountOps, PointKind};

fn err(step: Step, e: Errno, what: impl std::fmt::Display) -> StepError {
    StepError::new(step, Some(e), what.to_string())
}

/// Mount flags of the mount at `path` that a bind remount must keep: in a
/// user namespace the kernel refuses to clear flags locked by the mount's
/// owner (mount(2), EPERM; bubblewrap's bind_mount does the same).
/// Computed in the parent for host paths (see `HostLayout`, `plan`), so the
/// child does not statvfs each mount.
pub fn locked_flags(path: &Path) -> MsFlags {
    let mut f = MsFlags::empty();
    if let Ok(st) = statvfs(path) {
        let fl = st.flags();
        for (s, m) in [
            (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
            (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
            (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
            (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
            (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
            (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
            (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
        ] {
            if fl.contains(s) {
                f |= m;
            }
        }
    }
    f
}

/// Bind `src` on `dst`, then remount with `extra` flags (read-only etc.);
/// the flags to keep are read from the new mount.
pub fn bind(
    ops: &mut dyn MountOps,
    step: Step,
    src: &Path,
    dst: &Path,
    recursive: bool,
    extra: MsFlags,
) -> Result<(), StepError> {
    bind_keeping(ops, step, src, dst, recursive, extra, None)
}

/// [`bind`] with the source mount's locked flags known in advance.
pub fn bind_keeping(
    ops: &mut dyn MountOps,
    step: Step,
    src: &Path,
    dst: &Path,
    recursive: bool,
    extra: MsFlags,
    locked: Option<MsFlags>,
) -> Result<(), StepError> {
    let mut flags = MsFlags::MS_BIND;
    if recursive {
        flags |= MsFlags::MS_REC;
    }
    ops.mount(Some(src), dst, None, flags, None).map_err(|e| {
        err(
            step,
            e,
            format!("bind {} on {}", src.display(), dst.display()),
        )
    })?;
    if !extra.is_empty() {
        let keep = locked.unwrap_or_else(|| ops.locked_flags(dst));
        let f = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | keep | extra;
        ops.mount(None, dst, None, f, None)
            .map_err(|e| err(step, e, format!("remount {} {:?}", dst.display(), extra)))?;
    }
    Ok(())
}

fn tmpfs(
    ops: &mut dyn MountOps,
    step: Step,
    dst: &Path,
    flags: MsFlags,
    data: &str,
) -> Result<(), StepError> {
    ops.mount(
        Some(Path::new("tmpfs")),
        dst,
        Some("tmpfs"),
        flags,
        Some(data),
    )
    .map_err(|e| {
        err(
            step,
            e,
            format!("mount tmpfs on {} ({data})", dst.display()),
        )
    })
}

fn mkdir(ops: &mut dyn MountOps, step: Step, p: &Path, mode: u32) -> Result<(), StepError> {
    ops.mkdir_all(p, mode)
        .map_err(|e| err(step, e, format!("mkdir {}", p.display())))
}

/// Creates an empty file as a mount point (its directory exists).
fn touch(ops: &mut dyn MountOps, step: Step, p: &Path) -> Result<(), StepError> {
    ops.touch(p)
        .map_err(|e| err(step, e, format!("create {}", p.display())))
}

fn symlink(
    ops: &mut dyn MountOps,
    step: Step,
    target: &Path,
    link: &Path,
) -> Result<(), StepError> {
    ops.symlink(target, link)
        .map_err(|e| err(step, e, format!("symlink {}", link.display())))
}

/// `root` joined with an absolute in-sandbox path.
fn inside(root: &Path, p: &Path) -> PathBuf {
    root.join(p.strip_prefix("/").unwrap_or(p))
}

/// The mount points every sandbox has, whatever is mounted there (a tmpfs
/// of ours, or a caller's bind on /workspace): checked by [`check_point`].
/// The daemon reaches /workspace from outside, and an image's link here
/// would put /proc or /tmp somewhere nobody meant.
const STANDARD_POINTS: [&str; 4] = ["/proc", "/dev", "/tmp", "/workspace"];

/// Longest symlink target quoted in a refusal (the image chose it).
const SHOWN_TARGET: usize = 100;

/// The standard mount point `dest` of the new root at `staging`, checked
/// before anything is mounted or created there: a real directory (a
/// regular file for a file bind), or absent (then made by the caller).
/// Returns whether it exists.
///
/// A symlink is refused, never followed. Before pivot_root an absolute
/// link would be resolved from the host's root (an image's `proc -> /etc`
/// would put the sandbox's /proc over the host's /etc in our mount
/// namespace), and the daemon reaches /workspace through the session's
/// root from outside; resolving it inside the root instead would be safe
/// but mount a tmpfs over /proc or over the root itself
/// (`workspace -> /`), which nobody means. Other destinations, chosen by
/// the caller, are resolved inside the root, links included, as runc does
/// (CVE-2021-30465 came from following them outside it).
fn check_point(
    ops: &mut dyn MountOps,
    staging: &Path,
    dest: &Path,
    dir: bool,
) -> Result<bool, StepError> {
    let refuse = |errno: Errno, what: String| {
        let want = if dir {
            "a directory"
        } else {
            "a regular file (a file is bound there)"
        };
        // The errno's text would only repeat the reason.
        StepError {
            step: Step::MountPoints,
            errno: Some(errno),
            message: format!(
                "mount point {} {what}; it must be {want} of the root or absent",
                dest.display()
            ),
        }
    };
    let kind = ops.point_kind(staging, dest).map_err(|e| {
        err(
            Step::MountPoints,
            e,
            format!("inspect mount point {}", dest.display()),
        )
    })?;
    match kind {
        PointKind::Absent => Ok(false),
        PointKind::Dir if dir => Ok(true),
        PointKind::File if !dir => Ok(true),
        PointKind::Symlink(target) => {
            let full = target.to_string_lossy();
            let mut shown: String = full.chars().take(SHOWN_TARGET).collect();
            if shown.len() < full.len() {
                shown.push('…');
            }
            Err(refuse(
                Errno::ELOOP,
                format!("is a symbolic link (to {shown:?})"),
            ))
        }
        PointKind::Dir => Err(refuse(Errno::EISDIR, "is a directory".into())),
        PointKind::File => Err(refuse(Errno::ENOTDIR, "is a regular file".into())),
        PointKind::Other => Err(refuse(
            Errno::EINVAL,
            "is a FIFO, socket or device node".into(),
        )),
    }
}

/// /proc and /dev of an image or a directory root: checked (see
/// [`check_point`]), then made when absent if `create`.
fn root_points(
    ops: &mut dyn MountOps,
    step: Step,
    staging: &Path,
    create: bool,
) -> Result<(), StepError> {
    for d in &STANDARD_POINTS[..2] {
        let exists = check_point(ops, staging, Path::new(d), true)?;
        if !exists && create {
            mkdir(ops, step, &inside(staging, Path::new(d)), 0o755)?;
        } else if !exists {
            return Err(StepError::new(
                step,
                Some(Errno::ENOENT),
                format!("the root has no {d} directory to mount on"),
            ));
        }
    }
    Ok(())
}

/// Step `mount_propagation`: nothing we mount may propagate to the host, and
/// host mount events must not reach us (mount_namespaces(7)).
pub fn make_private(ops: &mut dyn MountOps) -> Result<(), StepError> {
    ops.mount(
        None,
        Path::new("/"),
        None,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None,
    )
    .map_err(|e| err(Step::MountPropagation, e, "make / private"))
}

/// Detached mount trees of a layered root, made by the parent (idmapped
/// onto the sandbox's ids): one per layer, bottom first, and the upper
/// directory's when it is on the host.
#[derive(Clone, Copy, Debug, Default)]
pub struct LayerTrees<'a> {
    pub lowers: &'a [RawFd],
    pub upper: Option<RawFd>,
}

/// Step `mount_root`: the new root at `staging`.
pub fn mount_root(
    ops: &mut dyn MountOps,
    plan: &Plan,
    staging: &Path,
    trees: LayerTrees<'_>,
) -> Result<(), StepError> {
    match &plan.root {
        RootPlan::Layers(l) => mount_layers(ops, plan, l, staging, trees),
        RootPlan::Bundle { path, .. } => mount_bundle(ops, path, staging, trees),
        // A small tmpfs holds only directories, symlinks and /etc files; it
        // is remounted read-only after setup.
        RootPlan::Host(_) => tmpfs(
            ops,
            Step::MountRoot,
            staging,
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            "mode=0755,size=4m,nr_inodes=4096",
        ),
        RootPlan::Dir(dir) => {
            // An overlay: the caller's directory is the read-only lower
            // layer, a small tmpfs holds the upper layer, so mount points
            // the directory lacks (/proc, /dev, /tmp, /workspace, bind
            // targets) can be made without writing to it. The root is
            // remounted read-only after setup. Where the directory cannot
            // be an overlay layer, a plain bind (it must then have /proc
            // and /dev).
            let upper = staging.with_file_name("root-upper");
            tmpfs(
                ops,
                Step::MountRoot,
                &upper,
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                "mode=0755,size=1m,nr_inodes=1024",
            )?;
            mkdir(ops, Step::MountRoot, &upper.join("up"), 0o755)?;
            mkdir(ops, Step::MountRoot, &upper.join("work"), 0o755)?;
            let data = format!(
                "lowerdir={},upperdir={},workdir={},userxattr",
                dir.display(),
                upper.join("up").display(),
                upper.join("work").display()
            );
            let overlay = ops.mount(
                Some(Path::new("overlay")),
                staging,
                Some("overlay"),
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                Some(data.as_str()),
            );
            // /proc and /dev are used by path below: real directories of
            // the root. The bind cannot get new ones (it is the caller's
            // directory itself).
            if overlay.is_ok() {
                return root_points(ops, Step::MountRoot, staging, true);
            }
            bind(ops, Step::MountRoot, dir, staging, true, MsFlags::empty())?;
            root_points(ops, Step::MountRoot, staging, false)
        }
    }
}

/// An OCI container's root: the parent's idmapped tree of the bundle's
/// root directory (the only "layer"), attached on the staging dir. The
/// container owns it (host root's files are its root's), so missing
/// mount points are made in it, as runc does.
fn mount_bundle(
    ops: &mut dyn MountOps,
    path: &Path,
    staging: &Path,
    trees: LayerTrees<'_>,
) -> Result<(), StepError> {
    const STEP: Step = Step::MountRoot;
    let [tree] = trees.lowers else {
        return Err(StepError::new(
            STEP,
            Some(Errno::EINVAL),
            format!("no tree for the root {}", path.display()),
        ));
    };
    let (Some(parent), Some(name)) = (staging.parent(), staging.file_name()) else {
        return Err(StepError::new(
            STEP,
            Some(Errno::EINVAL),
            format!("staging dir {} has no parent", staging.display()),
        ));
    };
    let point = ops
        .mount_point(parent, &Path::new("/").join(name), true)
        .map_err(|e| err(STEP, e, "open the staging dir"))?;
    ops.attach_tree(*tree, &point)
        .map_err(|e| err(STEP, e, format!("attach the root {}", path.display())))?;
    root_points(ops, STEP, staging, true)
}

/// A layered root: a tmpfs beside the staging dir holds a mount point per
/// layer (the parent's idmapped trees are attached there) and the upper
/// layer (its own files for a tmpfs upper, the host directory's tree
/// otherwise); the overlay of them all is the new root.
fn mount_layers(
    ops: &mut dyn MountOps,
    plan: &Plan,
    l: &crate::options::LayeredRoot,
    staging: &Path,
    trees: LayerTrees<'_>,
) -> Result<(), StepError> {
    const STEP: Step = Step::MountRoot;
    use crate::options::Upper;
    let base = staging.with_file_name("root-upper");
    let data = match l.upper {
        Upper::Tmpfs { bytes } => format!("mode=0755,size={bytes}"),
        Upper::Dir(_) => "mode=0755,size=64k,nr_inodes=1024".to_string(),
    };
    tmpfs(
        ops,
        STEP,
        &base,
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        &data,
    )?;
    if trees.lowers.len() != l.layers.len() {
        return Err(StepError::new(
            STEP,
            Some(Errno::EINVAL),
            format!(
                "{} layer trees for {} layers",
                trees.lowers.len(),
                l.layers.len()
            ),
        ));
    }
    let mut lowers = Vec::new();
    for (i, (tree, dir)) in trees.lowers.iter().zip(&l.layers).enumerate() {
        let name = format!("l{i}");
        let point = ops
            .mount_point(&base, &Path::new("/").join(&name), true)
            .map_err(|e| err(STEP, e, format!("make the mount point of layer {i}")))?;
        ops.attach_tree(*tree, &point)
            .map_err(|e| err(STEP, e, format!("attach layer {}", dir.display())))?;
        lowers.push(name);
    }
    if lowers.is_empty() {
        // No layers (a scratch image): an empty lower directory.
        mkdir(ops, STEP, &base.join("empty"), 0o755)?;
        lowers.push("empty".into());
    }
    let (upper, work) = match (&l.upper, trees.upper) {
        (Upper::Tmpfs { .. }, _) => {
            mkdir(ops, STEP, &base.join("up"), 0o755)?;
            mkdir(ops, STEP, &base.join("work"), 0o755)?;
            ("up".to_string(), "work".to_string())
        }
        (Upper::Dir(dir), Some(tree)) => {
            let point = ops
                .mount_point(&base, Path::new("/host"), true)
                .map_err(|e| err(STEP, e, "make the mount point of the upper layer"))?;
            ops.attach_tree(tree, &point)
                .map_err(|e| err(STEP, e, format!("attach the upper layer {}", dir.display())))?;
            ("host/upper".to_string(), "host/work".to_string())
        }
        (Upper::Dir(dir), None) => {
            return Err(StepError::new(
                STEP,
                Some(Errno::EINVAL),
                format!("no tree for the upper layer {}", dir.display()),
            ))
        }
    };
    // Relative to the tmpfs (overlay resolves them from our cwd): short
    // options, far from the one-page limit of mount data.
    let top_first: Vec<&str> = lowers.iter().rev().map(|s| s.as_str()).collect();
    let data = format!(
        "lowerdir={},upperdir={upper},workdir={work},userxattr",
        top_first.join(":")
    );
    ops.chdir(&base)
        .map_err(|e| err(STEP, e, format!("chdir {}", base.display())))?;
    ops.mount(
        Some(Path::new("overlay")),
        staging,
        Some("overlay"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(data.as_str()),
    )
    .map_err(|e| {
        err(
            STEP,
            e,
            format!("mount the overlay of {} layers", l.layers.len()),
        )
    })?;
    ops.chdir(Path::new("/"))
        .map_err(|e| err(STEP, e, "chdir /"))?;
    // Used by path below: real directories of the root.
    root_points(ops, STEP, staging, true)?;
    // hostname and hosts over the image's, unless /etc is not a real
    // directory or the file is not a regular one (a link would be followed
    // from outside the new root, a FIFO would block).
    let etc = Path::new("/etc");
    let kind = |ops: &mut dyn MountOps, p: &Path| ops.point_kind(staging, p).ok();
    if !plan.etc_files.is_empty() && kind(ops, etc) == Some(PointKind::Dir) {
        for (name, contents) in &plan.etc_files {
            let p = etc.join(name);
            if !matches!(kind(ops, &p), Some(PointKind::File | PointKind::Absent)) {
                continue;
            }
            let p = inside(staging, &p);
            ops.write_file(&p, contents.as_bytes())
                .map_err(|e| err(STEP, e, format!("write {}", p.display())))?;
        }
    }
    Ok(())
}

/// Step `mount_host_layout`: read-only /usr (and friends), merged-usr links,
/// and the generated /etc.
pub fn mount_host_layout(
    ops: &mut dyn MountOps,
    plan: &Plan,
    layout: &HostLayout,
    staging: &Path,
) -> Result<(), StepError> {
    const STEP: Step = Step::MountHostLayout;
    let ro = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    for (dir, locked) in layout.ro_dirs.iter().zip(&layout.ro_dir_flags) {
        let dst = inside(staging, dir);
        mkdir(ops, STEP, &dst, 0o755)?;
        let locked = MsFlags::from_bits_truncate(*locked as _);
        bind_keeping(ops, STEP, dir, &dst, true, ro, Some(locked))?;
    }
    let etc_locked = Some(MsFlags::from_bits_truncate(layout.etc_flags as _));
    for (link, target) in &layout.symlinks {
        let dst = inside(staging, link);
        symlink(ops, STEP, target, &dst)?;
    }
    let etc = staging.join("etc");
    mkdir(ops, STEP, &etc, 0o755)?;
    for entry in &layout.etc_entries {
        match entry {
            EtcEntry::Symlink { name, target } => {
                let dst = etc.join(name);
                symlink(ops, STEP, target, &dst)?;
            }
            EtcEntry::Bind { name, is_dir } => {
                let dst = etc.join(name);
                if *is_dir {
                    mkdir(ops, STEP, &dst, 0o755)?;
                } else {
                    touch(ops, STEP, &dst)?;
                }
                bind_keeping(
                    ops,
                    STEP,
                    &Path::new("/etc").join(name),
                    &dst,
                    true,
                    ro,
                    etc_locked,
                )?;
            }
        }
    }
    for (name, contents) in &plan.etc_files {
        let p = etc.join(name);
        ops.write_file(&p, contents.as_bytes())
            .map_err(|e| err(STEP, e, format!("write {}", p.display())))?;
    }
    for d in ["proc", "dev", "root"] {
        mkdir(ops, STEP, &staging.join(d), 0o755)?;
    }
    Ok(())
}

/// Step `mount_dev`: a minimal /dev — null, zero, full, random, urandom, tty
/// bound from the host (mknod is not possible in a user namespace), a fresh
/// devpts instance, a size-capped /dev/shm, the usual symlinks.
pub fn mount_dev(ops: &mut dyn MountOps, plan: &Plan, staging: &Path) -> Result<(), StepError> {
    const STEP: Step = Step::MountDev;
    let dev = staging.join("dev");
    tmpfs(
        ops,
        STEP,
        &dev,
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        "mode=0755,size=64k,nr_inodes=64",
    )?;
    for name in ["null", "zero", "full", "random", "urandom", "tty"] {
        let dst = dev.join(name);
        touch(ops, STEP, &dst)?;
        bind(
            ops,
            STEP,
            &Path::new("/dev").join(name),
            &dst,
            false,
            MsFlags::empty(),
        )?;
    }
    let pts = dev.join("pts");
    mkdir(ops, STEP, &pts, 0o755)?;
    // newinstance: the sandbox sees only its own ptys (devpts(5)).
    ops.mount(
        Some(Path::new("devpts")),
        &pts,
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some(&plan.devpts.data()),
    )
    .map_err(|e| err(STEP, e, format!("mount devpts on {}", pts.display())))?;
    // mqueue: the sandbox's own IPC namespace's queues (mq_overview(7)),
    // when the spec lists it; before /dev turns read-only.
    if plan.mqueue {
        let mq = dev.join("mqueue");
        mkdir(ops, STEP, &mq, 0o755)?;
        ops.mount(
            Some(Path::new("mqueue")),
            &mq,
            Some("mqueue"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            None,
        )
        .map_err(|e| err(STEP, e, format!("mount mqueue on {}", mq.display())))?;
    }
    let shm = dev.join("shm");
    mkdir(ops, STEP, &shm, 0o755)?;
    tmpfs(
        ops,
        STEP,
        &shm,
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        &format!("mode=1777,size={}", plan.shm_bytes),
    )?;
    for (link, target) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        let dst = dev.join(link);
        symlink(ops, STEP, Path::new(target), &dst)?;
    }
    // The tmpfs itself becomes read-only: nothing inside may add nodes.
    ops.mount(
        None,
        &dev,
        None,
        MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("mode=0755"),
    )
    .map_err(|e| err(STEP, e, "remount /dev read-only"))
}

/// Step `mount_proc`: a fresh procfs for the new pid namespace. Must happen
/// before the old root is detached: the kernel only allows a new proc mount
/// in a user namespace while a fully visible one exists (mount_too_revealing).
pub fn mount_proc(ops: &mut dyn MountOps, staging: &Path) -> Result<(), StepError> {
    let p = staging.join("proc");
    ops.mount(
        Some(Path::new("proc")),
        &p,
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None,
    )
    .map_err(|e| err(Step::MountProc, e, format!("mount proc on {}", p.display())))
}

/// Step `mount_extra`: /tmp, /workspace and the spec's binds and tmpfs.
///
/// `bind_trees`: the caller's binds, which the parent prepared as detached
/// mount trees (fds; read-write ones idmapped), attached with move_mount.
pub fn mount_extra(
    ops: &mut dyn MountOps,
    plan: &Plan,
    staging: &Path,
    bind_trees: &[(PathBuf, RawFd)],
) -> Result<(), StepError> {
    const STEP: Step = Step::MountExtra;
    for m in &plan.mounts {
        let tree = bind_trees
            .iter()
            .find(|(d, _)| *d == m.destination)
            .map(|(_, fd)| *fd);
        mount_one(ops, STEP, m, staging, tree)?;
    }
    Ok(())
}

fn mount_one(
    ops: &mut dyn MountOps,
    step: Step,
    m: &MountPlan,
    staging: &Path,
    tree: Option<RawFd>,
) -> Result<(), StepError> {
    let mut flags = MsFlags::empty();
    if m.readonly {
        flags |= MsFlags::MS_RDONLY;
    }
    if m.nosuid {
        flags |= MsFlags::MS_NOSUID;
    }
    if m.nodev {
        flags |= MsFlags::MS_NODEV;
    }
    if m.noexec {
        flags |= MsFlags::MS_NOEXEC;
    }
    let dest = &m.destination;
    let is_dir = match &m.kind {
        MountKind::Bind { is_dir, .. } => *is_dir,
        MountKind::Tmpfs { .. }
        | MountKind::Sysfs
        | MountKind::Cgroup2
        | MountKind::CgroupV1 { .. } => true,
    };
    // The mount point is resolved inside the new root: a symlink in an
    // image or a caller's root directory cannot make us create or mount
    // anything outside it. The sandbox's own points must not be links at
    // all (see STANDARD_POINTS); a caller's other destinations follow a
    // final link inside the root, as runc does.
    if STANDARD_POINTS.iter().any(|p| dest == Path::new(p)) {
        check_point(ops, staging, dest, is_dir)?;
    }
    let point = |ops: &mut dyn MountOps| {
        ops.mount_point(staging, dest, is_dir)
            .map_err(|e| err(step, e, format!("make the mount point {}", dest.display())))
    };
    let target = point(ops)?;
    match &m.kind {
        MountKind::Bind {
            source, recursive, ..
        } => {
            if let Some(fd) = tree {
                // Flags were set on the tree by the parent.
                return ops.attach_tree(fd, &target).map_err(|e| {
                    err(
                        step,
                        e,
                        format!(
                            "attach the bind of {} on {}",
                            source.display(),
                            dest.display()
                        ),
                    )
                });
            }
            let mut bind_flags = MsFlags::MS_BIND;
            if *recursive {
                bind_flags |= MsFlags::MS_REC;
            }
            ops.mount(Some(source), &target.target, None, bind_flags, None)
                .map_err(|e| {
                    err(
                        step,
                        e,
                        format!("bind {} on {}", source.display(), dest.display()),
                    )
                })?;
            if !flags.is_empty() {
                // Resolved again: the point now leads to the new mount (the
                // held fd still names the directory under it).
                let again = point(ops)?;
                let keep = ops.locked_flags(&again.target);
                let f = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | keep | flags;
                ops.mount(None, &again.target, None, f, None)
                    .map_err(|e| err(step, e, format!("remount {} {:?}", dest.display(), flags)))?;
            }
            Ok(())
        }
        MountKind::Tmpfs {
            size,
            mode,
            uid,
            gid,
        } => ops
            .mount(
                Some(Path::new("tmpfs")),
                &target.target,
                Some("tmpfs"),
                flags,
                Some(&format!("size={size},mode={mode:o},uid={uid},gid={gid}")),
            )
            .map_err(|e| err(step, e, format!("mount tmpfs on {}", dest.display()))),
        // sysfs of the sandbox's own network namespace, cgroup2 rooted at
        // its own cgroup (its cgroup namespace): fresh mounts, nothing of
        // the host's tree above them.
        MountKind::Sysfs => ops
            .mount(
                Some(Path::new("sysfs")),
                &target.target,
                Some("sysfs"),
                flags,
                None,
            )
            .map_err(|e| err(step, e, format!("mount sysfs on {}", dest.display()))),
        MountKind::Cgroup2 => ops
            .mount(
                Some(Path::new("cgroup2")),
                &target.target,
                Some("cgroup2"),
                flags,
                None,
            )
            .map_err(|e| err(step, e, format!("mount cgroup2 on {}", dest.display()))),
        MountKind::CgroupV1 { hierarchies } => {
            // A small tmpfs for the directories, each hierarchy mounted in
            // it read-only (rooted at the sandbox's cgroup namespace), then
            // the tmpfs itself turned read-only.
            let base = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
            ops.mount(
                Some(Path::new("tmpfs")),
                &target.target,
                Some("tmpfs"),
                base,
                Some("mode=755,size=64k,nr_inodes=64"),
            )
            .map_err(|e| err(step, e, format!("mount tmpfs on {}", dest.display())))?;
            let top = point(ops)?;
            for (dir, options) in hierarchies {
                let p = top.target.join(dir);
                mkdir(ops, step, &p, 0o755)?;
                ops.mount(
                    Some(Path::new("cgroup")),
                    &p,
                    Some("cgroup"),
                    base | MsFlags::MS_RDONLY,
                    Some(options),
                )
                .map_err(|e| {
                    err(
                        step,
                        e,
                        format!("mount cgroup {options} on {}", dest.join(dir).display()),
                    )
                })?;
            }
            ops.mount(
                None,
                &top.target,
                None,
                MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | base,
                Some("mode=755"),
            )
            .map_err(|e| err(step, e, format!("remount {} read-only", dest.display())))
        }
    }
}

/// Step `pivot_root`: switch to the new root and detach the old one
/// (pivot_root(".", ".") as in pivot_root(2) NOTES; runc does the same).
pub fn pivot(ops: &mut dyn MountOps, staging: &Path) -> Result<(), StepError> {
    const STEP: Step = Step::PivotRoot;
    ops.pivot_root_into(staging)
        .map_err(|e| err(STEP, e, format!("pivot_root into {}", staging.display())))?;
    ops.detach(Path::new("."))
        .map_err(|e| err(STEP, e, "detach the old root"))?;
    ops.chdir(Path::new("/"))
        .map_err(|e| err(STEP, e, "chdir /"))
}

/// Step `mask_paths`: masked paths get /dev/null (files) or an empty
/// read-only tmpfs (directories); read-only paths a read-only bind of
/// themselves. Missing paths are skipped (not every kernel has them).
pub fn mask_paths(ops: &mut dyn MountOps, plan: &Plan) -> Result<(), StepError> {
    const STEP: Step = Step::MaskPaths;
    // No stat first: a missing path (ENOENT) is skipped, a directory
    // (ENOTDIR for a file bind) gets the empty tmpfs instead.
    for p in &plan.masked_paths {
        match ops.mount(
            Some(Path::new("/dev/null")),
            p,
            None,
            MsFlags::MS_BIND,
            None,
        ) {
            Ok(()) | Err(Errno::ENOENT) => {}
            Err(Errno::ENOTDIR) => tmpfs(
                ops,
                STEP,
                p,
                MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                "size=4k,nr_inodes=1",
            )?,
            Err(e) => return Err(err(STEP, e, format!("mask {}", p.display()))),
        }
    }
    // Our own proc mount's flags, so the remount needs no statvfs.
    let proc_flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    for p in &plan.readonly_paths {
        match ops.mount(
            Some(p.as_path()),
            p,
            None,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None,
        ) {
            Ok(()) => {}
            Err(Errno::ENOENT) => continue,
            Err(e) => return Err(err(STEP, e, format!("bind {} on itself", p.display()))),
        }
        let f = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
        ops.mount(None, p, None, f | proc_flags, None)
            .map_err(|e| err(STEP, e, format!("remount {} read-only", p.display())))?;
    }
    Ok(())
}

/// Step `readonly_root`: the root mount becomes read-only (writes go to
/// /tmp, /workspace, /dev/shm and rw binds only).
pub fn readonly_root(ops: &mut dyn MountOps, plan: &Plan) -> Result<(), StepError> {
    let root = Path::new("/");
    let keep = match &plan.root {
        // Our own tmpfs root: its flags are known.
        RootPlan::Host(_) => MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        RootPlan::Dir(_) => ops.locked_flags(root),
        // A writable image root stays writable (its upper layer is capped).
        RootPlan::Layers(l) if !l.readonly => return Ok(()),
        RootPlan::Layers(_) => MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        RootPlan::Bundle {
            readonly: false, ..
        } => return Ok(()),
        RootPlan::Bundle { .. } => ops.locked_flags(root),
    };
    let f = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | keep;
    ops.mount(None, root, None, f, None)
        .map_err(|e| err(Step::ReadonlyRoot, e, "remount / read-only"))
}

#[cfg(test)]
mod tests {
    //! The mount steps against the recording fake: order, targets and error
    //! reporting, without root.
    use super::*;
    use crate::options::RunOptions;
    use crate::spec::plan;
    use crate::sys::ops::Recorder;

    const STAGING: &str = "/run/runtimed/root";

    fn host_plan() -> Plan {
        plan(
            &crate::request::Request::builder(vec!["/bin/true".into()])
                .build()
                .unwrap()
                .spec,
            &RunOptions::default(),
        )
        .unwrap()
    }

    /// All steps in the order PID 1 runs them.
    fn run_all(ops: &mut Recorder, plan: &Plan) -> Result<(), StepError> {
        let staging = Path::new(STAGING);
        make_private(ops)?;
        mount_root(ops, plan, staging, LayerTrees::default())?;
        if let RootPlan::Host(layout) = &plan.root {
            mount_host_layout(ops, plan, layout, staging)?;
        }
        mount_dev(ops, plan, staging)?;
        mount_proc(ops, staging)?;
        mount_extra(ops, plan, staging, &[])?;
        pivot(ops, staging)?;
        mask_paths(ops, plan)?;
        readonly_root(ops, plan)
    }

    fn index(calls: &[String], needle: &str) -> usize {
        calls
            .iter()
            .position(|c| c.contains(needle))
            .unwrap_or_else(|| panic!("no call with {needle:?} in {calls:#?}"))
    }

    #[test]
    fn steps_run_in_the_documented_order() {
        let plan = host_plan();
        let mut ops = Recorder::default();
        run_all(&mut ops, &plan).unwrap();
        let c = &ops.calls;
        // Propagation first: nothing may leak to the host.
        assert!(
            c[0].starts_with("mount - / ")
                && c[0].contains("MS_PRIVATE")
                && c[0].contains("MS_REC"),
            "{}",
            c[0]
        );
        let proc_mount = index(c, "type=proc");
        let pivot_at = index(c, "pivot_root");
        let detach = index(c, "detach .");
        assert!(
            proc_mount < pivot_at,
            "proc must be mounted before the old root goes"
        );
        assert_eq!(detach, pivot_at + 1);
        // Masking happens on the sandbox's own /proc, after the pivot.
        assert!(index(c, "mount /dev/null /proc/kcore") > detach);
        assert!(index(c, "mount /proc/sys /proc/sys") > detach);
        // The root is made read-only last.
        let last = c.last().unwrap();
        assert!(
            last.starts_with("mount - / ")
                && last.contains("MS_RDONLY")
                && last.contains("MS_REMOUNT"),
            "{last}"
        );
    }

    #[test]
    fn nothing_is_mounted_outside_the_new_root_before_the_pivot() {
        let plan = host_plan();
        let mut ops = Recorder::default();
        run_all(&mut ops, &plan).unwrap();
        let pivot_at = index(&ops.calls, "pivot_root");
        for call in &ops.calls[1..pivot_at] {
            let Some(rest) = call.strip_prefix("mount ") else {
                continue;
            };
            let target = rest.split_whitespace().nth(1).unwrap();
            assert!(
                target.starts_with(STAGING),
                "mounted outside the new root before pivot_root: {call}"
            );
        }
    }

    #[test]
    fn host_binds_are_remounted_read_only_and_devpts_is_a_new_instance() {
        let plan = host_plan();
        let mut ops = Recorder::default();
        run_all(&mut ops, &plan).unwrap();
        let c = &ops.calls;
        let usr_bind = index(c, &format!("mount /usr {STAGING}/usr "));
        let remount = &c[usr_bind + 1];
        assert!(
            remount.starts_with(&format!("mount - {STAGING}/usr "))
                && remount.contains("MS_RDONLY")
                && remount.contains("MS_REMOUNT"),
            "{remount}"
        );
        let devpts = &c[index(c, "type=devpts")];
        assert!(devpts.contains("newinstance"), "{devpts}");
        let shm = &c[index(c, &format!("{STAGING}/dev/shm type=tmpfs"))];
        assert!(shm.contains(&format!("size={}", plan.shm_bytes)), "{shm}");
        assert!(c
            .iter()
            .any(|l| l.starts_with(&format!("write {STAGING}/etc/passwd"))));
    }

    #[test]
    fn missing_masked_paths_are_skipped_and_directories_get_a_tmpfs() {
        let plan = host_plan();
        let mut ops = Recorder::default();
        ops.missing.insert("/proc/sched_debug".into());
        ops.dirs.insert("/proc/acpi".into());
        mask_paths(&mut ops, &plan).unwrap();
        let c = &ops.calls;
        let acpi = index(c, "mount /dev/null /proc/acpi");
        assert!(
            c[acpi + 1].starts_with("mount tmpfs /proc/acpi") && c[acpi + 1].contains("MS_RDONLY"),
            "{}",
            c[acpi + 1]
        );
        // The absent one was tried once and not retried as a directory.
        assert_eq!(
            c.iter().filter(|l| l.contains("/proc/sched_debug")).count(),
            1
        );
    }

    #[test]
    fn a_failing_call_stops_the_step_and_names_it() {
        let plan = host_plan();
        let mut ops = Recorder {
            fail_on: Some(("type=devpts".into(), Errno::EPERM)),
            ..Default::default()
        };
        let err = run_all(&mut ops, &plan).unwrap_err();
        assert_eq!(err.step, Step::MountDev);
        assert_eq!(err.errno, Some(Errno::EPERM));
        assert!(
            err.message.contains("devpts") && err.message.contains("/dev/pts"),
            "{}",
            err.message
        );
        assert!(
            ops.calls.last().unwrap().contains("type=devpts"),
            "nothing may run after the failure"
        );
        assert!(!ops.calls.iter().any(|l| l.contains("pivot_root")));
    }

    #[test]
    fn rootfs_dir_is_an_overlay_with_a_tmpfs_upper() {
        let mut p = host_plan();
        p.root = RootPlan::Dir("/srv/rootfs".into());
        let mut ops = Recorder::default();
        mount_root(&mut ops, &p, Path::new(STAGING), LayerTrees::default()).unwrap();
        let c = &ops.calls;
        assert!(
            c[0].starts_with("mount tmpfs /run/runtimed/root-upper "),
            "{}",
            c[0]
        );
        let overlay = &c[index(c, "type=overlay")];
        assert!(
            overlay.contains("lowerdir=/srv/rootfs,upperdir=/run/runtimed/root-upper/up,workdir=/run/runtimed/root-upper/work"),
            "{overlay}"
        );
        // If the overlay fails, a bind of the directory, which must then
        // have /proc and /dev.
        let mut ops = Recorder {
            fail_on: Some(("type=overlay".into(), Errno::EINVAL)),
            ..Default::default()
        };
        let err = mount_root(&mut ops, &p, Path::new(STAGING), LayerTrees::default()).unwrap_err();
        assert!(ops
            .calls
            .iter()
            .any(|l| l.starts_with("mount /srv/rootfs /run/runtimed/root ")));
        assert!(err.message.contains("no /proc"), "{}", err.message);
    }

    fn layered_plan() -> Plan {
        let mut p = host_plan();
        p.root = RootPlan::Layers(crate::options::LayeredRoot {
            layers: vec!["/data/l/a".into()],
            upper: crate::options::Upper::Tmpfs { bytes: 8 << 20 },
            readonly: false,
        });
        p
    }

    /// Runs the steps up to the pivot on an image root holding `planted`.
    fn run_layered(ops: &mut Recorder) -> Result<(), StepError> {
        let plan = layered_plan();
        let staging = Path::new(STAGING);
        let trees = LayerTrees {
            lowers: &[10],
            upper: None,
        };
        mount_root(ops, &plan, staging, trees)?;
        mount_dev(ops, &plan, staging)?;
        mount_proc(ops, staging)?;
        mount_extra(ops, &plan, staging, &[])
    }

    #[test]
    fn mount_points_that_are_links_or_files_are_refused_before_any_mount_on_them() {
        let at = |name: &str| PathBuf::from(format!("{STAGING}/{name}"));
        // (mount point, a symlink's target or a regular file, errno)
        let cases = [
            ("workspace", Some("/proc"), Errno::ELOOP),
            ("workspace", Some("/"), Errno::ELOOP),
            ("tmp", Some(".."), Errno::ELOOP),
            ("proc", Some("/etc"), Errno::ELOOP),
            ("dev", Some("/"), Errno::ELOOP),
            ("workspace", None, Errno::ENOTDIR),
            ("proc", None, Errno::ENOTDIR),
        ];
        for (name, link, errno) in cases {
            let mut ops = Recorder::default();
            if let Some(to) = link {
                ops.symlinks.insert(at(name), to.into());
            } else {
                ops.files.insert(at(name));
            }
            let err = run_layered(&mut ops).unwrap_err();
            assert_eq!(err.step, Step::MountPoints, "{name}: {err:?}");
            assert_eq!(err.errno, Some(errno), "{name}: {err:?}");
            assert!(
                err.message.contains(&format!("mount point /{name} ")),
                "{}",
                err.message
            );
            // Nothing was mounted on it, nor created through it.
            let target = at(name).display().to_string();
            assert!(
                !ops.calls
                    .iter()
                    .any(|c| c.split_whitespace().any(|w| w.starts_with(&target))),
                "{name}: {:#?}",
                ops.calls
            );
        }
        // A real directory, or none, is fine.
        let mut ops = Recorder::default();
        ops.dirs.insert(at("workspace"));
        run_layered(&mut ops).unwrap();
        // A file bind needs a regular file (or nothing) at its destination.
        let mut ops = Recorder::default();
        ops.dirs.insert(at("etc/motd"));
        let err =
            check_point(&mut ops, Path::new(STAGING), Path::new("/etc/motd"), false).unwrap_err();
        assert_eq!(
            (err.step, err.errno),
            (Step::MountPoints, Some(Errno::EISDIR))
        );
    }

    #[test]
    fn image_etc_files_are_written_only_over_regular_files() {
        let mut plan = layered_plan();
        plan.etc_files = vec![
            ("hostname".into(), "box\n".into()),
            ("hosts".into(), "x".into()),
        ];
        let trees = LayerTrees {
            lowers: &[10],
            upper: None,
        };
        let mut ops = Recorder::default();
        ops.dirs.insert(format!("{STAGING}/etc").into());
        ops.symlinks.insert(
            format!("{STAGING}/etc/hostname").into(),
            "/etc/hostname".into(),
        );
        mount_root(&mut ops, &plan, Path::new(STAGING), trees).unwrap();
        let writes: Vec<_> = ops
            .calls
            .iter()
            .filter(|c| c.starts_with("write "))
            .collect();
        assert_eq!(writes.len(), 1, "{writes:?}");
        assert!(writes[0].contains("/etc/hosts "), "{writes:?}");
        // /etc itself a link: nothing written.
        let mut ops = Recorder::default();
        ops.symlinks
            .insert(format!("{STAGING}/etc").into(), "/etc".into());
        mount_root(&mut ops, &plan, Path::new(STAGING), trees).unwrap();
        assert!(
            !ops.calls.iter().any(|c| c.starts_with("write ")),
            "{:#?}",
            ops.calls
        );
    }

    #[test]
    fn image_layers_are_attached_then_overlaid_top_first() {
        let mut p = host_plan();
        p.root = RootPlan::Layers(crate::options::LayeredRoot {
            layers: vec!["/data/l/a".into(), "/data/l/b".into(), "/data/l/c".into()],
            upper: crate::options::Upper::Tmpfs { bytes: 8 << 20 },
            readonly: false,
        });
        let mut ops = Recorder::default();
        let trees = LayerTrees {
            lowers: &[10, 11, 12],
            upper: None,
        };
        mount_root(&mut ops, &p, Path::new(STAGING), trees).unwrap();
        let c = &ops.calls;
        assert!(c[0].contains("size=8388608"), "{}", c[0]);
        let attach = index(c, "attach fd 10");
        let overlay = index(c, "type=overlay");
        assert!(attach < overlay, "{c:#?}");
        assert!(
            c[overlay].contains("lowerdir=l2:l1:l0,upperdir=up,workdir=work,userxattr"),
            "{}",
            c[overlay]
        );
        // Fewer trees than layers: refused before anything is overlaid.
        let mut ops = Recorder::default();
        let short = LayerTrees {
            lowers: &[10],
            upper: None,
        };
        let err = mount_root(&mut ops, &p, Path::new(STAGING), short).unwrap_err();
        assert_eq!(err.step, Step::MountRoot);
        assert!(!ops.calls.iter().any(|l| l.contains("type=overlay")));
    }
}
