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
//! place, so a reader never sees half an entry.
//!
//! Bounded twice: at most `max_entries` entries and `max_bytes` bytes on
//! disk (blocks, as `du` counts them), the least recently used going
//! first. A compile may leave up to 256 MiB (RLIMIT_FSIZE of a compile),
//! so the count alone bounded nothing. Space is reserved before an entry
//! is copied in, so the entries and the copies in progress stay within
//! `max_bytes` at every moment; an entry larger than the whole budget is
//! not kept. An entry being restored is pinned and never evicted under
//! the copy; a restored box is a copy, so the tests running from it do
//! not depend on the entry at all.

use std::collections::HashMap;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use sha2::{Digest, Sha256};

use crate::language::Language;

#[derive(Debug)]
pub struct CompileCache {
    dir: PathBuf,
    max_entries: usize,
    max_bytes: u64,
    index: Mutex<Index>,
    hits: AtomicU64,
    misses: AtomicU64,
    next_tmp: AtomicU64,
}

/// What is on disk, in memory: found at open, kept up to date under the
/// lock (the daemon is the only writer of its cache directory).
#[derive(Debug, Default)]
struct Index {
    entries: HashMap<String, Entry>,
    /// Bytes of the entries plus the space reserved by stores in progress.
    bytes: u64,
    /// Orders uses: the entry with the smallest `used` goes first.
    clock: u64,
}

#[derive(Debug)]
struct Entry {
    bytes: u64,
    used: u64,
    /// Restores copying from it now.
    pins: usize,
}

impl Index {
    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }
}

/// Bytes an entry takes beyond its box: its directory and the `output`
/// file's blocks are measured after the copy; this is the guess before.
const ENTRY_OVERHEAD: u64 = 8 << 10;

impl CompileCache {
    /// A cache in `dir` (created if missing) of at most `max_entries`
    /// entries and `max_bytes` bytes on disk. What an earlier process left
    /// is kept, in its order of use (the `output` file's mtime), down to
    /// the bounds.
    pub fn open(
        dir: impl Into<PathBuf>,
        max_entries: usize,
        max_bytes: u64,
    ) -> io::Result<CompileCache> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        let mut found = Vec::new();
        for e in std::fs::read_dir(&dir)?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let used = std::fs::metadata(e.path().join("output")).and_then(|m| m.modified());
            match used {
                // Half-made entries of a process that died while storing
                // start with a dot; entries without `output` are broken.
                Ok(used) if !name.starts_with('.') => {
                    found.push((used, name, disk_usage(&e.path())?))
                }
                _ => {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        found.sort();
        let mut index = Index::default();
        for (_, key, bytes) in found {
            let used = index.tick();
            index.bytes += bytes;
            index.entries.insert(
                key,
                Entry {
                    bytes,
                    used,
                    pins: 0,
                },
            );
        }
        let cache = CompileCache {
            dir,
            max_entries: max_entries.max(1),
            max_bytes,
            index: Mutex::new(index),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            next_tmp: AtomicU64::new(0),
        };
        // The bounds may have shrunk since.
        let mut index = cache.lock();
        cache.make_room(&mut index, 0);
        drop(index);
        Ok(cache)
    }

    fn lock(&self) -> MutexGuard<'_, Index> {
        // A panic under this lock leaves counters that may be a little off;
        // the next open measures the disk again.
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// (hits, misses) so far.
    pub fn stats(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }

    /// Bytes the entries take on disk (and stores in progress reserve).
    pub fn bytes(&self) -> u64 {
        self.lock().bytes
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

    /// Marks `key` in use (not evictable) and recently used; false when
    /// there is no such entry.
    fn pin(&self, key: &str) -> bool {
        let mut index = self.lock();
        let used = index.tick();
        match index.entries.get_mut(key) {
            Some(e) => {
                e.pins += 1;
                e.used = used;
                true
            }
            None => false,
        }
    }

    fn unpin(&self, key: &str) {
        if let Some(e) = self.lock().entries.get_mut(key) {
            e.pins = e.pins.saturating_sub(1);
        }
    }

    /// Fills `box_dir` (which must not exist) from the entry; returns the
    /// compiler's output, or `None` on a miss.
    pub fn restore(&self, key: &str, box_dir: &Path) -> Option<String> {
        if !self.pin(key) {
            self.misses.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let entry = self.dir.join(key);
        let restored = std::fs::read_to_string(entry.join("output"))
            .and_then(|output| copy_tree(&entry.join("box"), box_dir).map(|()| output));
        self.unpin(key);
        match restored {
            Ok(output) => {
                // The order of use survives a restart through this mtime.
                let _ = std::fs::File::open(entry.join("output"))
                    .and_then(|f| f.set_modified(std::time::SystemTime::now()));
                self.hits.fetch_add(1, Ordering::Relaxed);
                Some(output)
            }
            Err(e) => {
                tracing::warn!(entry = %entry.display(), error = %e, "compile cache: restoring failed; compiling");
                let _ = std::fs::remove_dir_all(box_dir);
                // A broken entry goes, and its bytes with it.
                let mut index = self.lock();
                if index.entries.get(key).is_some_and(|e| e.pins == 0) {
                    if let Some(gone) = index.entries.remove(key) {
                        index.bytes = index.bytes.saturating_sub(gone.bytes);
                    }
                    let _ = std::fs::remove_dir_all(&entry);
                }
                drop(index);
                self.misses.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Keeps a successful compile's `box_dir` under `key`. Failures are
    /// logged, never the submission's problem.
    pub fn store(&self, key: &str, box_dir: &Path, output: &str) {
        if let Err(e) = self.try_store(key, box_dir, output) {
            tracing::warn!(error = %e, "compile cache: storing failed");
        }
    }

    fn try_store(&self, key: &str, box_dir: &Path, output: &str) -> io::Result<()> {
        let guess = disk_usage(box_dir)? + ENTRY_OVERHEAD;
        if guess > self.max_bytes {
            tracing::debug!(
                bytes = guess,
                "compile cache: larger than the whole cache; not kept"
            );
            return Ok(());
        }
        {
            let mut index = self.lock();
            if index.entries.contains_key(key) || !self.make_room(&mut index, guess) {
                return Ok(());
            }
            index.bytes += guess;
        }
        let n = self.next_tmp.fetch_add(1, Ordering::Relaxed);
        let tmp = self
            .dir
            .join(format!(".tmp-{}-{n}-{key}", std::process::id()));
        let made = (|| {
            std::fs::create_dir(&tmp)?;
            copy_tree(box_dir, &tmp.join("box"))?;
            std::fs::write(tmp.join("output"), output)?;
            disk_usage(&tmp)
        })();
        let mut index = self.lock();
        index.bytes -= guess;
        let bytes = match made {
            Ok(bytes) => bytes,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&tmp);
                return Err(e);
            }
        };
        // Stored meanwhile by another judgement, or no room left (every
        // other entry is being restored): not kept, not an error.
        if index.entries.contains_key(key) || !self.make_room(&mut index, bytes) {
            let _ = std::fs::remove_dir_all(&tmp);
            return Ok(());
        }
        if let Err(e) = std::fs::rename(&tmp, self.dir.join(key)) {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
        let used = index.tick();
        index.bytes += bytes;
        index.entries.insert(
            key.to_string(),
            Entry {
                bytes,
                used,
                pins: 0,
            },
        );
        Ok(())
    }

    /// Evicts the least recently used entries that nobody is restoring
    /// until one more entry of `need` bytes fits (`need` 0: until the
    /// bounds hold); false when it cannot.
    fn make_room(&self, index: &mut Index, need: u64) -> bool {
        let extra = usize::from(need > 0);
        while index.entries.len() + extra > self.max_entries || index.bytes + need > self.max_bytes
        {
            let victim = index
                .entries
                .iter()
                .filter(|(_, e)| e.pins == 0)
                .min_by_key(|(_, e)| e.used)
                .map(|(k, _)| k.clone());
            let Some(key) = victim else {
                return false;
            };
            if let Some(e) = index.entries.remove(&key) {
                index.bytes = index.bytes.saturating_sub(e.bytes);
            }
            // Under the lock: the space is free before anyone reserves it.
            if let Err(e) = std::fs::remove_dir_all(self.dir.join(&key)) {
                tracing::warn!(error = %e, "compile cache: evicting an entry failed");
            }
        }
        true
    }
}

/// Bytes `path` takes on disk: the blocks of every file and directory in
/// it, as `du` counts them.
fn disk_usage(path: &Path) -> io::Result<u64> {
    let meta = std::fs::symlink_metadata(path)?;
    let mut total = meta.blocks() * 512;
    if meta.is_dir() {
        for e in std::fs::read_dir(path)? {
            total += disk_usage(&e?.path())?;
        }
    }
    Ok(total)
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
        let cache = CompileCache::open(tmp.path().join("cache"), 2, u64::MAX).unwrap();
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
        cache.store("k2", &src, "");
        assert!(cache.restore("k1", &tmp.path().join("r2")).is_some());
        cache.store("k3", &src, "");
        assert!(
            cache.restore("k2", &tmp.path().join("r3")).is_none(),
            "evicted"
        );
        assert!(cache.restore("k1", &tmp.path().join("r4")).is_some());
        assert!(cache.restore("k3", &tmp.path().join("r5")).is_some());
    }

    /// A box holding a program of `kib` KiB (real blocks, not a hole).
    fn program_box(at: &Path, kib: usize, fill: u8) -> PathBuf {
        std::fs::create_dir_all(at).unwrap();
        std::fs::write(at.join("main"), vec![fill; kib << 10]).unwrap();
        at.to_path_buf()
    }

    /// What `du` says the directory takes, in bytes: measured apart from
    /// the cache's own accounting.
    fn du(path: &Path) -> u64 {
        let out = std::process::Command::new("du")
            .args(["-s", "--block-size=1"])
            .arg(path)
            .output()
            .expect("du");
        assert!(out.status.success(), "du failed");
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .expect("du's number")
    }

    #[test]
    fn the_cache_stays_within_its_bytes_evicting_the_least_recently_used() {
        let tmp = tempfile::tempdir().unwrap();
        let src = program_box(&tmp.path().join("box"), 256, 7);
        // One entry's size, from a cache with room for anything.
        let probe = CompileCache::open(tmp.path().join("probe"), 512, u64::MAX).unwrap();
        probe.store("k", &src, "ok");
        let entry = probe.bytes();
        assert!(entry >= 256 << 10, "{entry}");
        // Room for two and a half entries.
        let budget = entry * 5 / 2;
        let dir = tmp.path().join("cache");
        let cache = CompileCache::open(&dir, 512, budget).unwrap();
        let empty = du(&dir);
        let on_disk = || du(&dir) - empty;
        cache.store("k1", &src, "");
        cache.store("k2", &src, "");
        assert!(on_disk() <= budget, "{} > {budget}", on_disk());
        assert!(cache.restore("k1", &tmp.path().join("r1")).is_some());
        // k2 is now the least recently used: the third store evicts it.
        cache.store("k3", &src, "");
        assert!(on_disk() <= budget, "{} > {budget}", on_disk());
        assert_eq!(cache.bytes(), on_disk(), "the accounting matches du");
        assert!(!dir.join("k2").exists(), "k2 evicted");
        assert!(cache.restore("k2", &tmp.path().join("r2")).is_none());
        assert!(cache.restore("k1", &tmp.path().join("r3")).is_some());
        assert!(cache.restore("k3", &tmp.path().join("r4")).is_some());
        // Many more: never over the budget, the last two kept.
        for i in 0..10 {
            cache.store(&format!("n{i}"), &src, "");
            assert!(on_disk() <= budget, "{} > {budget}", on_disk());
        }
        assert!(dir.join("n9").exists() && dir.join("n8").exists());
        assert!(!dir.join("n7").exists());
        // A reopen keeps what is there, and a smaller budget evicts down
        // to it (the least recently used first).
        drop(cache);
        let cache = CompileCache::open(&dir, 512, entry * 3 / 2).unwrap();
        assert!(dir.join("n9").exists() && !dir.join("n8").exists());
        assert!(on_disk() <= entry * 3 / 2);
        assert!(cache.restore("n9", &tmp.path().join("r5")).is_some());
    }

    #[test]
    fn an_artifact_larger_than_the_whole_cache_is_not_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let small = program_box(&tmp.path().join("small"), 16, 1);
        let big = program_box(&tmp.path().join("big"), 1024, 2);
        let dir = tmp.path().join("cache");
        let cache = CompileCache::open(&dir, 512, 512 << 10).unwrap();
        cache.store("small", &small, "");
        cache.store("big", &big, "");
        assert!(cache.restore("big", &tmp.path().join("r1")).is_none());
        assert!(!dir.join("big").exists());
        // Nor did it push the small one out trying.
        assert!(cache.restore("small", &tmp.path().join("r2")).is_some());
        let leftovers: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(leftovers, ["small"], "no temporary copy left");
    }

    #[test]
    fn an_entry_in_use_is_not_evicted_and_a_restored_box_outlives_its_entry() {
        let tmp = tempfile::tempdir().unwrap();
        let a = program_box(&tmp.path().join("a"), 128, b'a');
        let b = program_box(&tmp.path().join("b"), 128, b'b');
        let dir = tmp.path().join("cache");
        // Room for one entry.
        let cache = CompileCache::open(&dir, 512, 200 << 10).unwrap();
        cache.store("a", &a, "");
        // A test is running from a box restored from "a".
        let running = tmp.path().join("running");
        assert!(cache.restore("a", &running).is_some());
        // A restore of "a" is copying (pinned): "b" finds no room.
        assert!(cache.pin("a"));
        cache.store("b", &b, "");
        assert!(dir.join("a/box/main").exists(), "pinned: kept");
        assert!(!dir.join("b").exists());
        cache.unpin("a");
        // A broken entry (its box gone) is a miss, and goes.
        std::fs::remove_dir_all(dir.join("a/box")).unwrap();
        let before = cache.bytes();
        assert!(cache.restore("a", &tmp.path().join("broken")).is_none());
        assert!(cache.bytes() < before && !dir.join("a").exists());
        assert!(!tmp.path().join("broken").exists(), "no half box");
        cache.store("a", &a, "");
        // Free again: "b" evicts it.
        cache.store("b", &b, "");
        assert!(!dir.join("a").exists());
        assert!(dir.join("b").exists());
        // The running test's program is its own copy, whole.
        assert_eq!(
            std::fs::read(running.join("main")).unwrap(),
            vec![b'a'; 128 << 10]
        );
    }
}
