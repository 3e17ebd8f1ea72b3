//! The compile cache: "compile once" across submissions. A successful
//! compile's box directory (the source and what the compiler wrote) is
//! kept under a key of everything the result depends on: the caller's
//! scope (the daemon uses the tenant, so that one tenant cannot learn from
//! a fast answer what another submitted), the language's whole table entry
//! (argv, env, limits, image, probed toolchain version) and the source. A
//! rejudge, a resubmission, and a problem's custom checker then compile
//! once. Failed compiles are not kept (their output is cheap to redo and
//! may depend on limits that ran out).
//!
//! Entries are directories `<dir>/<key>/` holding `box/` and `output`
//! (the compiler's messages); made under a temporary name and renamed into
//! place, so a reader never sees half an entry. Beyond `max_entries` the
//! least recently used go.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

use crate::language::Language;

#[derive(Debug)]
pub struct CompileCache {
    dir: PathBuf,
    max_entries: usize,
    hits: AtomicU64,
    misses: AtomicU64,
    next_tmp: AtomicU64,
}

impl CompileCache {
    /// A cache in `dir` (created if missing) of at most `max_entries`.
    pub fn open(dir: impl Into<PathBuf>, max_entries: usize) -> io::Result<CompileCache> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        // Half-made entries of a process that died while storing.
        for e in std::fs::read_dir(&dir)?.flatten() {
            if e.file_name().to_string_lossy().starts_with(".tmp-") {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
        Ok(CompileCache {
            dir,
            max_entries: max_entries.max(1),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            next_tmp: AtomicU64::new(0),
        })
    }

    /// (hits, misses) so far.
    pub fn stats(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }

    /// The key of `source` in `lang` for `scope`.
    pub fn key(scope: &str, lang: &Language, source: &str) -> String {
        let mut h = Sha256::new();
        for part in [
            scope.as_bytes(),
            serde_json::to_string(lang).unwrap_or_default().as_bytes(),
            source.as_bytes(),
        ] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part);
        }
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Fills `box_dir` (which must not exist) from the entry; returns the
    /// compiler's output, or `None` on a miss.
    pub fn restore(&self, key: &str, box_dir: &Path) -> Option<String> {
        let entry = self.dir.join(key);
        let output = match std::fs::read_to_string(entry.join("output")) {
            Ok(o) => o,
            Err(_) => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                return None;
            }
        };
        if let Err(e) = copy_tree(&entry.join("box"), box_dir) {
            tracing::warn!(entry = %entry.display(), error = %e, "compile cache: restoring failed; compiling");
            let _ = std::fs::remove_dir_all(box_dir);
            self.misses.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        // Recently used: the mtime orders eviction.
        let _ = std::fs::File::open(entry.join("output"))
            .and_then(|f| f.set_modified(std::time::SystemTime::now()));
        self.hits.fetch_add(1, Ordering::Relaxed);
        Some(output)
    }

    /// Keeps a successful compile's `box_dir` under `key`. Failures are
    /// logged, never the submission's problem.
    pub fn store(&self, key: &str, box_dir: &Path, output: &str) {
        if let Err(e) = self.try_store(key, box_dir, output) {
            tracing::warn!(error = %e, "compile cache: storing failed");
        }
        self.evict();
    }

    fn try_store(&self, key: &str, box_dir: &Path, output: &str) -> io::Result<()> {
        let entry = self.dir.join(key);
        if entry.exists() {
            return Ok(());
        }
        let n = self.next_tmp.fetch_add(1, Ordering::Relaxed);
        let tmp = self
            .dir
            .join(format!(".tmp-{}-{n}-{key}", std::process::id()));
        let made = (|| {
            std::fs::create_dir(&tmp)?;
            copy_tree(box_dir, &tmp.join("box"))?;
            std::fs::write(tmp.join("output"), output)?;
            match std::fs::rename(&tmp, &entry) {
                // Someone stored the same entry meanwhile.
                Err(_) if entry.exists() => {
                    let _ = std::fs::remove_dir_all(&tmp);
                    Ok(())
                }
                r => r,
            }
        })();
        if made.is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        made
    }

    fn evict(&self) {
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let mut entries: Vec<(std::time::SystemTime, PathBuf)> = rd
            .flatten()
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .filter_map(|e| {
                let used = std::fs::metadata(e.path().join("output"))
                    .and_then(|m| m.modified())
                    .ok()?;
                Some((used, e.path()))
            })
            .collect();
        if entries.len() <= self.max_entries {
            return;
        }
        entries.sort();
        let extra = entries.len() - self.max_entries;
        for (_, path) in entries.into_iter().take(extra) {
            let _ = std::fs::remove_dir_all(path);
        }
    }
}

/// Copies a directory tree of regular files, directories and symlinks,
/// keeping modes (the box holds what a compiler wrote: no devices).
fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    std::fs::create_dir(to)?;
    std::fs::set_permissions(to, std::fs::metadata(from)?.permissions())?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let t = e.file_type()?;
        let dest = to.join(e.file_name());
        if t.is_dir() {
            copy_tree(&e.path(), &dest)?;
        } else if t.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(e.path())?, &dest)?;
        } else if t.is_file() {
            std::fs::copy(e.path(), &dest)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lang() -> Language {
        crate::Languages::load(None)
            .expect("the shipped table")
            .get("cpp")
            .expect("cpp")
            .clone()
    }

    #[test]
    fn keys_depend_on_scope_language_and_source() {
        let l = lang();
        let k = CompileCache::key("alice", &l, "int main(){}");
        assert_eq!(k, CompileCache::key("alice", &l, "int main(){}"));
        assert_ne!(k, CompileCache::key("bob", &l, "int main(){}"));
        assert_ne!(k, CompileCache::key("alice", &l, "int main(){ }"));
        let mut other = l.clone();
        other.availability = crate::Availability::Available {
            version: "g++ 99".into(),
        };
        assert_ne!(k, CompileCache::key("alice", &other, "int main(){}"));
        // Lengths are part of the key: no ambiguity between parts.
        assert_ne!(
            CompileCache::key("ab", &l, "c"),
            CompileCache::key("a", &l, "bc")
        );
    }

    #[test]
    fn entries_round_trip_and_the_least_recently_used_go() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = CompileCache::open(tmp.path().join("cache"), 2).unwrap();
        let src = tmp.path().join("box");
        std::fs::create_dir_all(src.join("sub")).unwrap();
        std::fs::write(src.join("main"), b"\x7fELF").unwrap();
        std::fs::write(src.join("sub/Main.class"), b"cafe").unwrap();
        std::os::unix::fs::symlink("main", src.join("link")).unwrap();
        assert_eq!(cache.restore("k1", &tmp.path().join("x")), None);
        cache.store("k1", &src, "warning: x");
        let out = tmp.path().join("restored");
        assert_eq!(cache.restore("k1", &out).as_deref(), Some("warning: x"));
        assert_eq!(std::fs::read(out.join("main")).unwrap(), b"\x7fELF");
        assert_eq!(std::fs::read(out.join("sub/Main.class")).unwrap(), b"cafe");
        assert_eq!(
            std::fs::read_link(out.join("link")).unwrap(),
            Path::new("main")
        );
        assert_eq!(cache.stats(), (1, 1));
        // Two more entries: k1 was used last-but-one, k2 is the oldest.
        std::thread::sleep(std::time::Duration::from_millis(20));
        cache.store("k2", &src, "");
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(cache.restore("k1", &tmp.path().join("r2")).is_some());
        std::thread::sleep(std::time::Duration::from_millis(20));
        cache.store("k3", &src, "");
        assert!(
            cache.restore("k2", &tmp.path().join("r3")).is_none(),
            "evicted"
        );
        assert!(cache.restore("k1", &tmp.path().join("r4")).is_some());
        assert!(cache.restore("k3", &tmp.path().join("r5")).is_some());
    }
}
