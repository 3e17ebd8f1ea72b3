//! The one way runtimed publishes a file: write it under a temporary name
//! in a directory on the destination's filesystem, fsync it, rename it into
//! place, fsync the directory. A reader (or a crash) then sees the old
//! file or the whole new one, never a torn one, and the name survives a
//! power cut only once the directory entry is on disk (rename(2) alone
//! gives atomicity, not durability; see ext4's `auto_da_alloc` notes and
//! the LWN "ext4 and data loss" discussion of 2009).
//!
//! The temporary file is created `O_EXCL | O_NOFOLLOW` under a random name
//! (a planted file or symlink is never opened) and removed on every error
//! path, including a panic in the caller's writer: nothing is left behind.
//!
//! The store's index, blobs and build cache and the daemon's token file go
//! through here; the unpacked-layer cache publishes directories with
//! [`rename_durable`].

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{renameat2, RenameFlags, AT_FDCWD};

/// What happens when the destination name exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replace {
    /// The new file replaces it (index files, caches).
    Yes,
    /// The existing one stays and the new one is dropped (content-addressed
    /// blobs, a token another process created first): `RENAME_NOREPLACE`,
    /// so two writers never both win.
    No,
}

/// Whether a publish put the new file in place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Published {
    Written,
    /// `Replace::No` and the name existed: nothing changed.
    Existed,
}

/// A file being written under a temporary name; removed on drop unless
/// [`AtomicFile::publish`] renamed it away.
#[derive(Debug)]
pub struct AtomicFile {
    tmp: PathBuf,
    file: File,
}

impl AtomicFile {
    /// A new empty file with permission bits `mode` (before the umask) in
    /// `dir`, which must be on the destination's filesystem.
    pub fn create_in(dir: &Path, mode: u32) -> io::Result<AtomicFile> {
        let mut last = None;
        // 64 random bits: a collision means someone plants names; give up
        // after a few rather than loop.
        for _ in 0..8 {
            let tmp = dir.join(format!(".tmp-{}", random_hex()));
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(&tmp)
            {
                Ok(file) => return Ok(AtomicFile { tmp, file }),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::from(io::ErrorKind::AlreadyExists)))
    }

    /// The open file, for the caller's writer.
    pub fn file(&mut self) -> &mut File {
        &mut self.file
    }

    /// Syncs the file, renames it to `dest` and syncs `dest`'s directory.
    /// On error the temporary file is removed and `dest` is as it was.
    pub fn publish(self, dest: &Path, replace: Replace) -> io::Result<Published> {
        // Data before the name: a crash must not leave a complete-looking
        // name on empty content.
        self.file.sync_all()?;
        rename_durable(&self.tmp, dest, replace)
        // On success the drop's unlink of the old name finds nothing (or, for
        // `Existed`, removes the unused copy).
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.tmp);
    }
}

/// Writes `bytes` as `dest` (permission bits `mode`) through a temporary
/// file in `dest`'s directory; replaces what was there.
pub fn write_atomic(dest: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let dir = parent_dir(dest);
    let mut f = AtomicFile::create_in(dir, mode)?;
    f.file().write_all(bytes)?;
    f.publish(dest, Replace::Yes).map(|_| ())
}

/// Renames `from` to `to` (same filesystem) and syncs `to`'s directory so
/// the new name is durable. With `Replace::No` an existing `to` (file, or
/// non-empty directory) stays and `Existed` is returned.
pub fn rename_durable(from: &Path, to: &Path, replace: Replace) -> io::Result<Published> {
    let flags = match replace {
        Replace::Yes => RenameFlags::empty(),
        Replace::No => RenameFlags::RENAME_NOREPLACE,
    };
    match renameat2(AT_FDCWD, from, AT_FDCWD, to, flags) {
        Ok(()) => {}
        Err(Errno::EEXIST | Errno::ENOTEMPTY) if replace == Replace::No => {
            return Ok(Published::Existed)
        }
        Err(e) => return Err(io::Error::from_raw_os_error(e as i32)),
    }
    File::open(parent_dir(to))?.sync_all()?;
    Ok(Published::Written)
}

fn parent_dir(p: &Path) -> &Path {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// 16 random hex digits: the unique part of temporary names in the store
/// (a collision is harmless, creations are `O_EXCL`).
pub fn random_hex() -> String {
    let mut buf = [0u8; 8];
    if let Ok(mut f) = File::open("/dev/urandom") {
        let _ = std::io::Read::read_exact(&mut f, &mut buf);
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn writes_and_replaces_with_the_mode_and_no_temporary_left() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("index.json");
        write_atomic(&dest, b"one", 0o600).unwrap();
        write_atomic(&dest, b"two", 0o600).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"two");
        assert_eq!(
            std::fs::metadata(&dest).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(names(dir.path()), ["index.json"]);
    }

    #[test]
    fn a_failed_rename_leaves_nothing_and_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where the file goes: rename(2) fails with EISDIR.
        let dest = dir.path().join("blocked");
        std::fs::create_dir(&dest).unwrap();
        std::fs::write(dest.join("keep"), b"x").unwrap();
        let err = write_atomic(&dest, b"new", 0o644).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EISDIR), "{err}");
        assert_eq!(names(dir.path()), ["blocked"]);
        assert_eq!(names(&dest), ["keep"]);
    }

    #[test]
    fn a_writer_that_fails_or_panics_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut f = AtomicFile::create_in(dir.path(), 0o644).unwrap();
            f.file().write_all(b"half").unwrap();
            // The caller hits an error and returns: `f` drops unpublished.
        }
        let caught = std::panic::catch_unwind(|| {
            let mut f = AtomicFile::create_in(dir.path(), 0o644).unwrap();
            f.file().write_all(b"half").unwrap();
            panic!("the writer failed");
        });
        assert!(caught.is_err());
        assert!(names(dir.path()).is_empty(), "{:?}", names(dir.path()));
    }

    #[test]
    fn no_replace_keeps_the_first_file_and_removes_the_second() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("blob");
        std::fs::write(&dest, b"first").unwrap();
        let ino = std::fs::metadata(&dest).unwrap().ino();
        let mut f = AtomicFile::create_in(dir.path(), 0o644).unwrap();
        f.file().write_all(b"second").unwrap();
        assert_eq!(f.publish(&dest, Replace::No).unwrap(), Published::Existed);
        assert_eq!(std::fs::read(&dest).unwrap(), b"first");
        assert_eq!(std::fs::metadata(&dest).unwrap().ino(), ino);
        assert_eq!(names(dir.path()), ["blob"]);
    }

    #[test]
    fn a_directory_is_published_once() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, dest) = (
            dir.path().join("a"),
            dir.path().join("b"),
            dir.path().join("layer"),
        );
        for (d, f) in [(&a, "from-a"), (&b, "from-b")] {
            std::fs::create_dir(d).unwrap();
            std::fs::write(d.join(f), b"").unwrap();
        }
        assert_eq!(
            rename_durable(&a, &dest, Replace::No).unwrap(),
            Published::Written
        );
        assert_eq!(
            rename_durable(&b, &dest, Replace::No).unwrap(),
            Published::Existed
        );
        assert_eq!(names(&dest), ["from-a"]);
        assert_eq!(names(dir.path()), ["b", "layer"]);
    }
}
