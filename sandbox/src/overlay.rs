//! An engine's overlayfs rootfs, rebuilt from idmapped layers.
//!
//! Docker (overlay2) and containerd (the overlayfs snapshotter) hand the
//! runtime a bundle whose rootfs is an overlay mount made by host root. The
//! kernel does not idmap an overlay mount itself, only the directories it
//! is made of, so a container with a fresh host uid range cannot simply be
//! given an idmapped clone of that mount. Instead the runtime reads the
//! overlay's layers from `/proc/self/mountinfo`, clones each layer
//! directory as a detached mount idmapped onto the container's user
//! namespace, and makes a new, detached overlay of them with the same
//! upper and work directories and options (the new mount API: layers as
//! fds, Linux 6.13+). The container's root is that overlay; what it writes
//! lands in the engine's upper directory with the image's ids, where
//! `docker diff`/`commit` look. Nothing is attached to the host's tree at
//! any point, so nothing is left mounted there on any path.
//!
//! The overlay is made by host root in the initial user namespace (as the
//! engine made the original), so it keeps the engine's `trusted.overlay.*`
//! xattrs for whiteouts and opaque directories.

use std::ffi::CString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::stat::Mode;

use crate::helper::{self, Forked, SingleThreaded};
use crate::process::channel::Channel;
use crate::sys;

/// What the uid range error tells the operator to do instead.
const HOST_IDS_HINT: &str = "give this runtime class host ids (--no-uid-range, \
     or uid_range = false in /etc/runtimed/oci.toml; docs/oci.md)";

#[derive(Debug, thiserror::Error)]
pub enum OverlayError {
    #[error("read /proc/self/mountinfo: {0}")]
    Mountinfo(std::io::Error),
    /// An overlay this module cannot rebuild (data-only layers, relative
    /// layer paths, a bind of part of an overlay).
    #[error("overlay rootfs {root}: {reason}; {HOST_IDS_HINT}")]
    Unsupported { root: PathBuf, reason: String },
    /// A layer's filesystem refuses `MOUNT_ATTR_IDMAP`.
    #[error("overlay layer {layer} cannot be idmapped ({source}): {HOST_IDS_HINT}")]
    Idmap { layer: PathBuf, source: Errno },
    #[error("{what}: {source}")]
    Sys { what: String, source: Errno },
}

/// An overlay mount's layers and options, as `/proc/self/mountinfo` shows
/// them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OverlayRoot {
    /// Lower layer directories, topmost first (`lowerdir=`'s order).
    pub lowers: Vec<PathBuf>,
    pub upper: Option<PathBuf>,
    pub work: Option<PathBuf>,
    /// The other superblock options, in order: `(key, Some(value))` for
    /// `key=value`, `(key, None)` for a flag (`ro` included; `rw` is the
    /// default and dropped).
    pub options: Vec<(String, Option<String>)>,
    /// The mount's own flags as `MOUNT_ATTR_*` (ro, nosuid, nodev,
    /// noexec), kept on the new mount.
    pub mount_attrs: u64,
}

/// The overlay mounted at `root` (a canonical path), if the topmost mount
/// there is one; `None` for any other filesystem, or when `root` is not a
/// mount point.
pub fn find(root: &Path) -> Result<Option<OverlayRoot>, OverlayError> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").map_err(OverlayError::Mountinfo)?;
    find_in(&text, root)
}

/// [`find`] over a mountinfo text.
pub fn find_in(mountinfo: &str, root: &Path) -> Result<Option<OverlayRoot>, OverlayError> {
    // The last line for a mount point is the mount on top (the one a path
    // lookup reaches).
    let Some(m) = mountinfo
        .lines()
        .rev()
        .filter_map(MountLine::parse)
        .find(|m| Path::new(std::ffi::OsStr::from_bytes(&m.point)) == root)
    else {
        return Ok(None);
    };
    if m.fstype != "overlay" {
        return Ok(None);
    }
    let unsupported = |reason: String| OverlayError::Unsupported {
        root: root.to_path_buf(),
        reason,
    };
    if m.root != b"/" {
        return Err(unsupported("a bind of part of an overlay".into()));
    }
    let mut o = OverlayRoot {
        mount_attrs: mount_attrs(m.mount_opts),
        ..Default::default()
    };
    for opt in m.super_opts.split(',') {
        let (key, value) = match opt.split_once('=') {
            Some((k, v)) => (k, Some(unescape_octal(v))),
            None => (opt, None),
        };
        let path = |v: Option<Vec<u8>>| -> Result<PathBuf, OverlayError> {
            let v = v.unwrap_or_default();
            let p = PathBuf::from(std::ffi::OsStr::from_bytes(&unescape_layer(&v)));
            if !p.is_absolute() {
                return Err(unsupported(format!(
                    "{key} {} is a relative path",
                    p.display()
                )));
            }
            Ok(p)
        };
        match key {
            "" | "rw" => {}
            "lowerdir" => {
                let v = value.unwrap_or_default();
                for layer in split_layers(&v) {
                    if layer.is_empty() {
                        return Err(unsupported("it has data-only lower layers".into()));
                    }
                    o.lowers.push(path(Some(layer))?);
                }
            }
            "upperdir" => o.upper = Some(path(value)?),
            "workdir" => o.work = Some(path(value)?),
            _ => o.options.push((
                key.to_string(),
                value.map(|v| String::from_utf8_lossy(&v).into_owned()),
            )),
        }
    }
    if o.lowers.is_empty() {
        return Err(unsupported("no lowerdir in its options".into()));
    }
    if o.upper.is_some() != o.work.is_some() {
        return Err(unsupported("an upperdir needs a workdir".into()));
    }
    Ok(Some(o))
}

impl OverlayRoot {
    /// A detached overlay of the same layers, each idmapped onto `userns`
    /// (a user namespace whose maps are written): host uid 0 on disk is
    /// that namespace's root. Lower layers are read-only clones; the upper
    /// and work directories go through one clone of their common parent
    /// (overlayfs wants both on one mount).
    ///
    /// overlayfs takes private clones of its layers and refuses detached
    /// mounts there, so the clones are attached first, in a forked
    /// helper's own mount namespace: on a tmpfs over `staging` (a
    /// directory that exists; the host's stays untouched), where the
    /// overlay is made and handed back as a detached mount. The helper's
    /// namespace, and every mount in it, dies with it.
    pub fn mount_idmapped(
        &self,
        userns: BorrowedFd<'_>,
        root_host_id: u32,
        staging: &Path,
        single: &SingleThreaded,
    ) -> Result<OwnedFd, OverlayError> {
        // Cloned and idmapped here, so a layer that cannot be idmapped is
        // named in the error.
        let lowers = self
            .lowers
            .iter()
            .map(|l| idmapped_clone(l, sys::MOUNT_ATTR_RDONLY, userns))
            .collect::<Result<Vec<_>, _>>()?;
        let upper = match (&self.upper, &self.work) {
            (Some(upper), Some(work)) => {
                let parent = common_parent(upper, work);
                let tree = idmapped_clone(&parent, 0, userns)?;
                let below = |d: &Path| -> PathBuf {
                    d.strip_prefix(&parent)
                        .map(Path::to_path_buf)
                        .unwrap_or_default()
                };
                Some((tree, below(upper), below(work)))
            }
            _ => None,
        };
        let (ours, theirs) = Channel::pair().map_err(sys_err("overlay helper socketpair"))?;
        match helper::fork(single).map_err(sys_err("fork the overlay helper"))? {
            Forked::Child(_) => {
                drop(ours);
                let reply = match self.build_in_private_ns(
                    &lowers,
                    upper.as_ref(),
                    root_host_id,
                    staging,
                ) {
                    Ok(fd) => theirs.send_json(&Reply::Mounted, &[fd.as_fd()]),
                    Err((what, errno, log)) => theirs.send_json(
                        &Reply::Failed {
                            what,
                            errno: errno as i32,
                            log,
                        },
                        &[],
                    ),
                };
                helper::exit_now(i32::from(reply.is_err()))
            }
            Forked::Parent(pid) => {
                drop(theirs);
                let got = ours.recv_json::<Reply>();
                // The helper has sent (or died): reap it either way.
                let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
                match got.map_err(sys_err("read the overlay helper's reply"))? {
                    Some((Reply::Mounted, mut fds)) if fds.len() == 1 => Ok(fds.remove(0)),
                    Some((Reply::Failed { what, errno, log }, _)) => Err(OverlayError::Sys {
                        what: if log.is_empty() {
                            what
                        } else {
                            format!("{what} ({log})")
                        },
                        source: Errno::from_raw(errno),
                    }),
                    _ => Err(OverlayError::Sys {
                        what: "the overlay helper exited without a mount".into(),
                        source: Errno::EPROTO,
                    }),
                }
            }
        }
    }

    /// The helper's work, in its own process: a private mount namespace,
    /// the trees attached below `staging`, the overlay made of them.
    /// Errors are (what, errno, the kernel's log of the overlay context).
    fn build_in_private_ns(
        &self,
        lowers: &[OwnedFd],
        upper: Option<&(OwnedFd, PathBuf, PathBuf)>,
        root_host_id: u32,
        staging: &Path,
    ) -> Result<OwnedFd, (String, Errno, String)> {
        let fail = |what: &str| {
            let what = what.to_string();
            move |e: Errno| (what, e, String::new())
        };
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
            .map_err(fail("unshare the mount namespace"))?;
        let none: Option<&str> = None;
        nix::mount::mount(
            none,
            "/",
            none,
            nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_PRIVATE,
            none,
        )
        .map_err(fail("make / private"))?;
        nix::mount::mount(
            Some("tmpfs"),
            staging,
            Some("tmpfs"),
            nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV,
            Some("mode=0700,size=64k,nr_inodes=1024"),
        )
        .map_err(fail("mount the staging tmpfs"))?;
        let attach = |name: &str, tree: &OwnedFd| -> Result<PathBuf, (String, Errno, String)> {
            let point = staging.join(name);
            nix::unistd::mkdir(&point, Mode::from_bits_truncate(0o700))
                .map_err(fail("make a layer's mount point"))?;
            sys::move_mount_to(tree.as_fd(), &point).map_err(fail("attach a layer"))?;
            Ok(point)
        };
        let fs = sys::fsopen(c"overlay").map_err(fail("fsopen overlay"))?;
        let log = |fs: &OwnedFd| {
            // The kernel's own words about a refused option or layer.
            let mut buf = [0u8; 512];
            match nix::unistd::read(fs.as_fd(), &mut buf) {
                Ok(n) => String::from_utf8_lossy(&buf[..n]).trim().to_string(),
                Err(_) => String::new(),
            }
        };
        let set = |key: &str, value: Option<&[u8]>| -> Result<(), (String, Errno, String)> {
            let bad = || {
                (
                    format!("overlay option {key}"),
                    Errno::EINVAL,
                    String::new(),
                )
            };
            let k = CString::new(key).map_err(|_| bad())?;
            let r = match value {
                Some(v) => {
                    let v = CString::new(v).map_err(|_| bad())?;
                    sys::fsconfig_set_string(fs.as_fd(), &k, &v)
                }
                None => sys::fsconfig_set_flag(fs.as_fd(), &k),
            };
            r.map_err(|e| (format!("overlay option {key}"), e, log(&fs)))
        };
        for (i, tree) in lowers.iter().enumerate() {
            let point = attach(&i.to_string(), tree)?;
            set("lowerdir+", Some(point.as_os_str().as_bytes()))?;
        }
        if let Some((tree, up, work)) = upper {
            let point = attach("u", tree)?;
            set("upperdir", Some(point.join(up).as_os_str().as_bytes()))?;
            set("workdir", Some(point.join(work).as_os_str().as_bytes()))?;
        }
        for (key, value) in &self.options {
            set(key, value.as_deref().map(str::as_bytes))?;
        }
        // overlayfs does its own work in the upper dir (the work dir,
        // copy-ups, whiteouts) with its creator's credentials, through the
        // idmapped upper: host uid 0 has no id there (EOVERFLOW, and the
        // overlay falls back to read-only). Its creator is the container's
        // root instead (fs ids only; the effective capabilities that
        // setfsuid clears are raised again from the permitted set, since
        // copy-up chowns and sets trusted xattrs).
        nix::unistd::setfsgid(nix::unistd::Gid::from_raw(root_host_id));
        nix::unistd::setfsuid(nix::unistd::Uid::from_raw(root_host_id));
        let permitted = permitted_caps().ok_or_else(|| {
            (
                "read this process's capabilities".to_string(),
                Errno::EIO,
                String::new(),
            )
        })?;
        sys::set_capabilities(&crate::capabilities::CapabilitySets {
            effective: permitted,
            permitted,
            ..Default::default()
        })
        .map_err(fail("raise the capabilities again"))?;
        sys::fsconfig_create(fs.as_fd()).map_err(|e| {
            (
                format!("create the overlay of {} idmapped layers", lowers.len()),
                e,
                log(&fs),
            )
        })?;
        sys::fsmount(fs.as_fd(), self.mount_attrs).map_err(fail("fsmount the overlay"))
    }
}

/// The overlay helper's answer (with the mount's fd when `Mounted`).
#[derive(serde::Serialize, serde::Deserialize)]
enum Reply {
    Mounted,
    Failed {
        what: String,
        errno: i32,
        log: String,
    },
}

/// `CapPrm` of /proc/self/status.
fn permitted_caps() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let hex = status.lines().find_map(|l| l.strip_prefix("CapPrm:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}

fn sys_err(what: &str) -> impl FnOnce(Errno) -> OverlayError {
    let what = what.to_string();
    move |source| OverlayError::Sys { what, source }
}

/// `dir` as a detached mount idmapped onto `userns`, with `attrs`.
fn idmapped_clone(dir: &Path, attrs: u64, userns: BorrowedFd<'_>) -> Result<OwnedFd, OverlayError> {
    let tree = sys::open_tree_clone(dir, false).map_err(|source| OverlayError::Sys {
        what: format!("open_tree {}", dir.display()),
        source,
    })?;
    sys::mount_setattr(tree.as_fd(), attrs | sys::MOUNT_ATTR_IDMAP, Some(userns)).map_err(
        |source| OverlayError::Idmap {
            layer: dir.to_path_buf(),
            source,
        },
    )?;
    Ok(tree)
}

/// The deepest directory holding both `a` and `b`.
fn common_parent(a: &Path, b: &Path) -> PathBuf {
    a.components()
        .zip(b.components())
        .take_while(|(x, y)| x == y)
        .map(|(x, _)| x)
        .collect()
}

/// One parsed line of mountinfo (proc(5)).
struct MountLine<'a> {
    root: Vec<u8>,
    point: Vec<u8>,
    mount_opts: &'a str,
    fstype: &'a str,
    super_opts: &'a str,
}

impl<'a> MountLine<'a> {
    fn parse(line: &'a str) -> Option<Self> {
        let (head, tail) = line.split_once(" - ")?;
        let mut h = head.split(' ');
        let (_id, _parent, _dev) = (h.next()?, h.next()?, h.next()?);
        let root = unescape_octal(h.next()?);
        let point = unescape_octal(h.next()?);
        let mount_opts = h.next()?;
        let mut t = tail.split(' ');
        let fstype = t.next()?;
        let _source = t.next()?;
        let super_opts = t.next().unwrap_or("");
        Some(MountLine {
            root,
            point,
            mount_opts,
            fstype,
            super_opts,
        })
    }
}

/// The mount's flags (mountinfo's sixth field) as `MOUNT_ATTR_*`.
fn mount_attrs(opts: &str) -> u64 {
    opts.split(',')
        .map(|o| match o {
            "ro" => sys::MOUNT_ATTR_RDONLY,
            "nosuid" => sys::MOUNT_ATTR_NOSUID,
            "nodev" => sys::MOUNT_ATTR_NODEV,
            "noexec" => sys::MOUNT_ATTR_NOEXEC,
            _ => 0,
        })
        .fold(0, |a, b| a | b)
}

/// mountinfo's `\NNN` octal escapes (space, tab, newline, backslash,
/// comma...) undone.
fn unescape_octal(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        if let (b'\\', Some(d)) = (b[i], octal) {
            // Three octal digits fit a byte for mountinfo's escapes (<= \177); wrap otherwise.
            out.push(
                (d[0] - b'0')
                    .wrapping_mul(64)
                    .wrapping_add((d[1] - b'0') * 8 + (d[2] - b'0')),
            );
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// `lowerdir`'s list split on its unescaped `:` (an empty item is where
/// `::` marks data-only layers), escapes kept for [`unescape_layer`].
fn split_layers(v: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut cur = Vec::new();
    let mut escaped = false;
    for &c in v {
        if escaped {
            cur.push(c);
            escaped = false;
        } else if c == b'\\' {
            cur.push(c);
            escaped = true;
        } else if c == b':' {
            out.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    out.push(cur);
    out
}

/// A layer path's backslash escapes (`\:`, `\,`, `\\`) undone, as
/// overlayfs does when it parses the option.
fn unescape_layer(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    let mut it = v.iter();
    while let Some(&c) = it.next() {
        if c == b'\\' {
            if let Some(&n) = it.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = "\
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n\
117 27 0:44 / /tmp/b/rootfs rw,nosuid,relatime - overlay overlay rw,lowerdir=/tmp/l1:/tmp/l\\134:2:/tmp/a\\134\\054b,upperdir=/tmp/u/diff,workdir=/tmp/u/work,uuid=on,index=off,xino=off,redirect_dir=on,metacopy=off\n";

    #[test]
    fn parses_layers_escapes_and_options() {
        let o = find_in(INFO, Path::new("/tmp/b/rootfs")).unwrap().unwrap();
        assert_eq!(
            o.lowers,
            [
                PathBuf::from("/tmp/l1"),
                PathBuf::from("/tmp/l:2"),
                PathBuf::from("/tmp/a,b")
            ]
        );
        assert_eq!(o.upper.as_deref(), Some(Path::new("/tmp/u/diff")));
        assert_eq!(o.work.as_deref(), Some(Path::new("/tmp/u/work")));
        let keys: Vec<&str> = o.options.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["uuid", "index", "xino", "redirect_dir", "metacopy"]);
        assert_eq!(o.options[1].1.as_deref(), Some("off"));
        assert_eq!(o.mount_attrs, sys::MOUNT_ATTR_NOSUID);
    }

    #[test]
    fn other_filesystems_and_paths_are_none() {
        assert!(find_in(INFO, Path::new("/")).unwrap().is_none());
        assert!(find_in(INFO, Path::new("/tmp/b")).unwrap().is_none());
        // A later mount on top hides the overlay.
        let top = format!("{INFO}130 117 0:50 / /tmp/b/rootfs rw - tmpfs tmpfs rw\n");
        assert!(find_in(&top, Path::new("/tmp/b/rootfs")).unwrap().is_none());
    }

    #[test]
    fn what_cannot_be_rebuilt_is_refused_with_the_hint() {
        for opts in [
            "rw,lowerdir=/a::/data,upperdir=/u/d,workdir=/u/w",
            "rw,lowerdir=l/ABC:l/DEF,upperdir=/u/d,workdir=/u/w",
            "rw,upperdir=/u/d,workdir=/u/w",
            "rw,lowerdir=/a,upperdir=/u/d",
        ] {
            let info = format!("5 1 0:9 / /r rw - overlay overlay {opts}\n");
            let e = find_in(&info, Path::new("/r")).unwrap_err().to_string();
            assert!(e.contains("uid_range = false"), "{opts}: {e}");
        }
        let info = "5 1 0:9 /sub /r rw - overlay overlay rw,lowerdir=/a\n";
        assert!(find_in(info, Path::new("/r")).is_err());
    }

    #[test]
    fn common_parent_of_upper_and_work() {
        assert_eq!(
            common_parent(Path::new("/v/o/x/diff"), Path::new("/v/o/x/work")),
            PathBuf::from("/v/o/x")
        );
    }
}
