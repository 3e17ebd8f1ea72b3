//! Child-side mount steps: build the new root below a staging directory in
//! the sandbox's private mount namespace, pivot into it, then mask and
//! write-protect /proc paths as the OCI/moby defaults do.
//!
//! Runs in the sandbox's PID 1 before the program exists. Every function
//! returns a [`StepError`] naming what failed on what.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::Write;
use std::os::fd::RawFd;
use std::os::unix::fs::{symlink, DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::statvfs::{statvfs, FsFlags};
use nix::unistd::{chdir, pivot_root};

use crate::process::StepError;
use crate::spec::plan::{EtcEntry, HostLayout, MountKind, MountPlan, Plan, RootPlan};

const NONE: Option<&str> = None;

fn err(step: &'static str, e: Errno, what: impl std::fmt::Display) -> StepError {
    StepError::new(step, Some(e), what.to_string())
}

fn io_err(step: &'static str, e: std::io::Error, what: impl std::fmt::Display) -> StepError {
    let errno = e.raw_os_error().map(Errno::from_raw);
    StepError::new(step, errno, what.to_string())
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
    step: &'static str,
    src: &Path,
    dst: &Path,
    recursive: bool,
    extra: MsFlags,
) -> Result<(), StepError> {
    bind_keeping(step, src, dst, recursive, extra, None)
}

/// [`bind`] with the source mount's locked flags known in advance.
pub fn bind_keeping(
    step: &'static str,
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
    mount(Some(src), dst, NONE, flags, NONE).map_err(|e| {
        err(
            step,
            e,
            format!("bind {} on {}", src.display(), dst.display()),
        )
    })?;
    if !extra.is_empty() {
        let keep = locked.unwrap_or_else(|| locked_flags(dst));
        let f = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | keep | extra;
        mount(NONE, dst, NONE, f, NONE)
            .map_err(|e| err(step, e, format!("remount {} {:?}", dst.display(), extra)))?;
    }
    Ok(())
}

fn tmpfs(step: &'static str, dst: &Path, flags: MsFlags, data: &str) -> Result<(), StepError> {
    mount(Some("tmpfs"), dst, Some("tmpfs"), flags, Some(data)).map_err(|e| {
        err(
            step,
            e,
            format!("mount tmpfs on {} ({data})", dst.display()),
        )
    })
}

fn mkdir(step: &'static str, p: &Path, mode: u32) -> Result<(), StepError> {
    match DirBuilder::new().recursive(true).mode(mode).create(p) {
        Ok(()) => Ok(()),
        Err(e) => Err(io_err(step, e, format!("mkdir {}", p.display()))),
    }
}

/// Creates an empty file as a mount point (its directory exists).
fn touch(step: &'static str, p: &Path) -> Result<(), StepError> {
    match OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o644)
        .open(p)
    {
        Ok(_) => Ok(()),
        Err(e) => Err(io_err(step, e, format!("create {}", p.display()))),
    }
}

/// `root` joined with an absolute in-sandbox path.
fn inside(root: &Path, p: &Path) -> PathBuf {
    root.join(p.strip_prefix("/").unwrap_or(p))
}

/// Step `mount_propagation`: nothing we mount may propagate to the host, and
/// host mount events must not reach us (mount_namespaces(7)).
pub fn make_private() -> Result<(), StepError> {
    mount(NONE, "/", NONE, MsFlags::MS_REC | MsFlags::MS_PRIVATE, NONE)
        .map_err(|e| err("mount_propagation", e, "make / private"))
}

/// Step `mount_root`: the new root at `staging`.
pub fn mount_root(plan: &Plan, staging: &Path) -> Result<(), StepError> {
    match &plan.root {
        // A small tmpfs holds only directories, symlinks and /etc files; it
        // is remounted read-only after setup.
        RootPlan::Host(_) => tmpfs(
            "mount_root",
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
                "mount_root",
                &upper,
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                "mode=0755,size=1m,nr_inodes=1024",
            )?;
            mkdir("mount_root", &upper.join("up"), 0o755)?;
            mkdir("mount_root", &upper.join("work"), 0o755)?;
            let data = format!(
                "lowerdir={},upperdir={},workdir={},userxattr",
                dir.display(),
                upper.join("up").display(),
                upper.join("work").display()
            );
            let overlay = mount(
                Some("overlay"),
                staging,
                Some("overlay"),
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                Some(data.as_str()),
            );
            if overlay.is_ok() {
                for d in ["proc", "dev"] {
                    mkdir("mount_root", &staging.join(d), 0o755)?;
                }
                return Ok(());
            }
            bind("mount_root", dir, staging, true, MsFlags::empty())?;
            for d in ["proc", "dev"] {
                if !staging.join(d).is_dir() {
                    return Err(StepError::new(
                        "mount_root",
                        Some(Errno::ENOENT),
                        format!("root {} has no /{d} directory to mount on", dir.display()),
                    ));
                }
            }
            Ok(())
        }
    }
}

/// Step `mount_host_layout`: read-only /usr (and friends), merged-usr links,
/// and the generated /etc.
pub fn mount_host_layout(
    plan: &Plan,
    layout: &HostLayout,
    staging: &Path,
) -> Result<(), StepError> {
    const STEP: &str = "mount_host_layout";
    let ro = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    for (dir, locked) in layout.ro_dirs.iter().zip(&layout.ro_dir_flags) {
        let dst = inside(staging, dir);
        mkdir(STEP, &dst, 0o755)?;
        let locked = MsFlags::from_bits_truncate(*locked as _);
        bind_keeping(STEP, dir, &dst, true, ro, Some(locked))?;
    }
    let etc_locked = Some(MsFlags::from_bits_truncate(layout.etc_flags as _));
    for (link, target) in &layout.symlinks {
        let dst = inside(staging, link);
        symlink(target, &dst).map_err(|e| io_err(STEP, e, format!("symlink {}", dst.display())))?;
    }
    let etc = staging.join("etc");
    mkdir(STEP, &etc, 0o755)?;
    for entry in &layout.etc_entries {
        match entry {
            EtcEntry::Symlink { name, target } => {
                let dst = etc.join(name);
                symlink(target, &dst)
                    .map_err(|e| io_err(STEP, e, format!("symlink {}", dst.display())))?;
            }
            EtcEntry::Bind { name, is_dir } => {
                let dst = etc.join(name);
                if *is_dir {
                    mkdir(STEP, &dst, 0o755)?;
                } else {
                    touch(STEP, &dst)?;
                }
                bind_keeping(
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
        let mut f =
            File::create(&p).map_err(|e| io_err(STEP, e, format!("create {}", p.display())))?;
        f.write_all(contents.as_bytes())
            .map_err(|e| io_err(STEP, e, format!("write {}", p.display())))?;
    }
    for d in ["proc", "dev", "root"] {
        mkdir(STEP, &staging.join(d), 0o755)?;
    }
    Ok(())
}

/// Step `mount_dev`: a minimal /dev — null, zero, full, random, urandom, tty
/// bound from the host (mknod is not possible in a user namespace), a fresh
/// devpts instance, a size-capped /dev/shm, the usual symlinks.
pub fn mount_dev(plan: &Plan, staging: &Path) -> Result<(), StepError> {
    const STEP: &str = "mount_dev";
    let dev = staging.join("dev");
    tmpfs(
        STEP,
        &dev,
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        "mode=0755,size=64k,nr_inodes=64",
    )?;
    for name in ["null", "zero", "full", "random", "urandom", "tty"] {
        let dst = dev.join(name);
        touch(STEP, &dst)?;
        bind(
            STEP,
            &Path::new("/dev").join(name),
            &dst,
            false,
            MsFlags::empty(),
        )?;
    }
    let pts = dev.join("pts");
    mkdir(STEP, &pts, 0o755)?;
    // newinstance: the sandbox sees only its own ptys (devpts(5)).
    mount(
        Some("devpts"),
        &pts,
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620"),
    )
    .map_err(|e| err(STEP, e, format!("mount devpts on {}", pts.display())))?;
    let shm = dev.join("shm");
    mkdir(STEP, &shm, 0o755)?;
    tmpfs(
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
        symlink(target, &dst).map_err(|e| io_err(STEP, e, format!("symlink {}", dst.display())))?;
    }
    // The tmpfs itself becomes read-only: nothing inside may add nodes.
    mount(
        NONE,
        &dev,
        NONE,
        MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("mode=0755"),
    )
    .map_err(|e| err(STEP, e, "remount /dev read-only"))
}

/// Step `mount_proc`: a fresh procfs for the new pid namespace. Must happen
/// before the old root is detached: the kernel only allows a new proc mount
/// in a user namespace while a fully visible one exists (mount_too_revealing).
pub fn mount_proc(staging: &Path) -> Result<(), StepError> {
    let p = staging.join("proc");
    mount(
        Some("proc"),
        &p,
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        NONE,
    )
    .map_err(|e| err("mount_proc", e, format!("mount proc on {}", p.display())))
}

/// Step `mount_extra`: /tmp, /workspace and the spec's binds and tmpfs.
///
/// `idmapped`: destinations for which the parent prepared a detached,
/// idmapped mount tree (an fd), attached here with move_mount instead of a
/// bind.
pub fn mount_extra(
    plan: &Plan,
    staging: &Path,
    idmapped: &[(PathBuf, RawFd)],
) -> Result<(), StepError> {
    const STEP: &str = "mount_extra";
    for m in &plan.mounts {
        let tree = idmapped
            .iter()
            .find(|(d, _)| *d == m.destination)
            .map(|(_, fd)| *fd);
        mount_one(STEP, m, staging, tree)?;
    }
    Ok(())
}

fn mount_one(
    step: &'static str,
    m: &MountPlan,
    staging: &Path,
    tree: Option<RawFd>,
) -> Result<(), StepError> {
    let dst = inside(staging, &m.destination);
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
    match &m.kind {
        MountKind::Bind {
            source,
            recursive,
            is_dir,
        } => {
            if *is_dir {
                mkdir(step, &dst, 0o755)?;
            } else {
                if let Some(parent) = dst.parent() {
                    mkdir(step, parent, 0o755)?;
                }
                touch(step, &dst)?;
            }
            match tree {
                // Flags were set on the tree by the parent.
                Some(fd) => crate::sys::with_borrowed(fd, |f| crate::sys::move_mount_to(f, &dst))
                    .map_err(|e| {
                        err(
                            step,
                            e,
                            format!(
                                "attach the idmapped {} on {}",
                                source.display(),
                                dst.display()
                            ),
                        )
                    }),
                None => bind(step, source, &dst, *recursive, flags),
            }
        }
        MountKind::Tmpfs {
            size,
            mode,
            uid,
            gid,
        } => {
            mkdir(step, &dst, 0o755)?;
            tmpfs(
                step,
                &dst,
                flags,
                &format!("size={size},mode={mode:o},uid={uid},gid={gid}"),
            )
        }
    }
}

/// Step `pivot_root`: switch to the new root and detach the old one
/// (pivot_root(".", ".") as in pivot_root(2) NOTES; runc does the same).
pub fn pivot(staging: &Path) -> Result<(), StepError> {
    const STEP: &str = "pivot_root";
    chdir(staging).map_err(|e| err(STEP, e, format!("chdir {}", staging.display())))?;
    pivot_root(".", ".")
        .map_err(|e| err(STEP, e, format!("pivot_root into {}", staging.display())))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(|e| err(STEP, e, "detach the old root"))?;
    chdir("/").map_err(|e| err(STEP, e, "chdir /"))
}

/// Step `mask_paths`: masked paths get /dev/null (files) or an empty
/// read-only tmpfs (directories); read-only paths a read-only bind of
/// themselves. Missing paths are skipped (not every kernel has them).
pub fn mask_paths(plan: &Plan) -> Result<(), StepError> {
    const STEP: &str = "mask_paths";
    // No stat first: a missing path (ENOENT) is skipped, a directory
    // (ENOTDIR for a file bind) gets the empty tmpfs instead.
    for p in &plan.masked_paths {
        match mount(Some("/dev/null"), p, NONE, MsFlags::MS_BIND, NONE) {
            Ok(()) | Err(Errno::ENOENT) => {}
            Err(Errno::ENOTDIR) => tmpfs(
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
        match mount(
            Some(p.as_path()),
            p,
            NONE,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            NONE,
        ) {
            Ok(()) => {}
            Err(Errno::ENOENT) => continue,
            Err(e) => return Err(err(STEP, e, format!("bind {} on itself", p.display()))),
        }
        let f = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
        mount(NONE, p, NONE, f | proc_flags, NONE)
            .map_err(|e| err(STEP, e, format!("remount {} read-only", p.display())))?;
    }
    Ok(())
}

/// Step `readonly_root`: the root mount becomes read-only (writes go to
/// /tmp, /workspace, /dev/shm and rw binds only).
pub fn readonly_root(plan: &Plan) -> Result<(), StepError> {
    let root = Path::new("/");
    let keep = match plan.root {
        // Our own tmpfs root: its flags are known.
        RootPlan::Host(_) => MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        RootPlan::Dir(_) => locked_flags(root),
    };
    let f = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | keep;
    mount(NONE, root, NONE, f, NONE).map_err(|e| err("readonly_root", e, "remount / read-only"))
}
