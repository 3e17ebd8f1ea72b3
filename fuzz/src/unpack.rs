//! Layer unpacking (`rootfs_builder::unpack::unpack_tar`) of any tar: the
//! fuzz input is a raw tar whose header checksums are fixed up.
//!
//! Invariants, checked after every unpack, failed or not (an error leaves
//! a partial tree, and that must be as safe as a whole one):
//! - nothing changed outside the destination: its parent holds only the
//!   destination and a canary file with its content and mode intact;
//! - no setuid file, no setgid file (setgid directories are allowed: group
//!   inheritance), no block device, no socket, and character devices only
//!   0/0 (overlayfs whiteouts);
//! - no hard link leads outside: each file's link count equals the names
//!   it has inside the tree;
//! - xattrs only `user.*`, and of `user.overlay.*` only the opaque marker;
//! - file bytes (each inode once) and inodes within `LIMITS`.

use std::collections::HashMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use rootfs_builder::unpack::{unpack_tar, UnpackLimits, OPAQUE_XATTR};

use super::framing::fix_tar_checksums;
use super::Scratch;

/// Small enough that the fuzzer reaches them.
pub const LIMITS: UnpackLimits = UnpackLimits {
    max_bytes: 1 << 20,
    max_entries: 512,
};

const CANARY: &[u8] = b"outside the layer: must not change";

pub fn check(data: &[u8]) {
    let mut tar = data.to_vec();
    fix_tar_checksums(&mut tar);
    let scratch = Scratch::new("unpack");
    let parent = &scratch.0;
    prepare(parent);
    let root = parent.join("root");

    let result = unpack_tar(&tar[..], &root, &LIMITS);
    check_tree(parent, &format!("{result:?}"));
    if let Ok(stats) = &result {
        assert!(stats.bytes <= LIMITS.max_bytes);
        assert!(stats.entries <= LIMITS.max_entries);
    }
}

/// Checks the invariants on `parent` (holding `canary` and `root`, as
/// `check` makes them) after an unpack into `root`; `context` goes into
/// failure messages.
pub fn check_tree(parent: &Path, context: &str) {
    let canary = parent.join("canary");
    let root = parent.join("root");
    // Outside: untouched.
    let mut names: Vec<String> = std::fs::read_dir(parent)
        .expect("list the parent")
        .map(|e| {
            e.expect("parent entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    assert_eq!(names, ["canary", "root"], "{context}");
    let meta = std::fs::symlink_metadata(&canary).expect("stat the canary");
    assert!(meta.file_type().is_file(), "the canary was replaced");
    assert_eq!(meta.mode() & 0o7777, 0o600, "the canary's mode changed");
    assert_eq!(meta.nlink(), 1, "the canary was linked into the layer");
    assert_eq!(std::fs::read(&canary).expect("read the canary"), CANARY);
    assert!(
        std::fs::symlink_metadata(&root)
            .expect("stat the root")
            .is_dir(),
        "the destination is no longer a directory"
    );

    // Inside: nothing privileged, nothing linked out, within limits.
    let mut walk = Walk::default();
    walk.dir(&root);
    for (ino, (nlink, seen)) in &walk.links {
        assert_eq!(
            nlink, seen,
            "inode {ino} has {nlink} links but {seen} names in the layer ({context})"
        );
    }
    assert!(
        walk.bytes <= LIMITS.max_bytes,
        "{} bytes unpacked, limit {}",
        walk.bytes,
        LIMITS.max_bytes
    );
    // The root itself is not an entry; each entry makes at most one inode
    // and its implied parents count as entries too.
    assert!(
        walk.inodes <= LIMITS.max_entries,
        "{} inodes, limit {}",
        walk.inodes,
        LIMITS.max_entries
    );
}

/// Makes `parent/canary` and `parent/root/` as `check` does.
pub fn prepare(parent: &Path) {
    let canary = parent.join("canary");
    std::fs::write(&canary, CANARY).expect("write the canary");
    std::fs::set_permissions(&canary, std::fs::Permissions::from_mode(0o600))
        .expect("chmod the canary");
    std::fs::create_dir(parent.join("root")).expect("create the destination");
}

#[derive(Default)]
struct Walk {
    /// Regular files' inode → (link count, names seen).
    links: HashMap<u64, (u64, u64)>,
    bytes: u64,
    inodes: u64,
}

impl Walk {
    fn dir(&mut self, dir: &Path) {
        self.xattrs(dir, true);
        let entries = std::fs::read_dir(dir).expect("list a layer directory");
        for e in entries {
            let e = e.expect("layer directory entry");
            let path = e.path();
            let m = std::fs::symlink_metadata(&path).expect("lstat a layer entry");
            let ft = m.file_type();
            let mode = m.mode();
            let shown = path.display();
            if ft.is_dir() {
                assert_eq!(mode & 0o4000, 0, "{shown}: setuid directory");
                self.inodes += 1;
                self.dir(&path);
                continue;
            }
            assert_eq!(mode & 0o6000, 0, "{shown}: setuid or setgid ({mode:o})");
            assert!(!ft.is_block_device(), "{shown}: block device");
            assert!(!ft.is_socket(), "{shown}: socket");
            if ft.is_char_device() {
                assert_eq!(
                    m.rdev(),
                    0,
                    "{shown}: a character device that is no whiteout"
                );
            }
            if ft.is_file() {
                let seen = self.links.entry(m.ino()).or_insert((m.nlink(), 0));
                seen.1 += 1;
                if seen.1 == 1 {
                    self.bytes += m.size();
                    self.inodes += 1;
                }
                self.xattrs(&path, false);
            } else {
                self.inodes += 1;
            }
        }
    }

    fn xattrs(&self, path: &Path, dir: bool) {
        let Ok(names) = xattr::list(path) else {
            return;
        };
        for n in names {
            let n = n.to_string_lossy().into_owned();
            let shown = path.display();
            assert!(n.starts_with("user."), "{shown}: xattr {n}");
            if n.starts_with("user.overlay.") {
                assert!(dir && n == OPAQUE_XATTR, "{shown}: xattr {n}");
            }
        }
    }
}
