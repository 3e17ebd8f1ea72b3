//! Host-side tar for `runtimed cp`: packing a host directory (or one file)
//! for the daemon's archive endpoint, and unpacking the archives it sends.
//!
//! What comes out of a session was made by the code that ran there, so an
//! archive is checked as a whole before anything is written: absolute
//! names and `..` components (CVE-2001-1267 and its many successors),
//! hard links, devices and FIFOs are refused, and so is any symlink whose
//! target resolves outside the destination (following the archive's own
//! links on the way) and any entry placed beneath one of the archive's
//! symlinks, so nothing is ever written through a link the archive made.
//! The tar crate then unpacks, itself refusing to write outside the
//! destination and never keeping setuid bits or owners.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::fs;
use std::os::unix::ffi::OsStringExt;
use std::path::{Component, Path, PathBuf};

use tar::{Archive, Builder, EntryType, Header};

/// Symlinks followed when resolving one link target (Linux's MAXSYMLINKS).
const MAX_LINK_HOPS: usize = 40;

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("packing {}", path.display())]
    Pack {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("malformed tar archive")]
    Malformed { source: std::io::Error },
    #[error("refusing the archive: entry {entry:?}: {reason}")]
    Refused { entry: String, reason: &'static str },
    #[error("unpacking into {}", dest.display())]
    Unpack {
        dest: PathBuf,
        source: std::io::Error,
    },
}

/// A tar of everything below `src`, names relative to it. Symlinks are
/// stored as links (not followed); sockets, FIFOs and devices are left
/// out (the daemon refuses them anyway).
pub fn pack_dir(src: &Path) -> Result<Vec<u8>, ArchiveError> {
    let mut builder = Builder::new(Vec::new());
    builder.follow_symlinks(false);
    walk(&mut builder, src, Path::new(""))?;
    builder.into_inner().map_err(|source| ArchiveError::Pack {
        path: src.to_path_buf(),
        source,
    })
}

fn walk(builder: &mut Builder<Vec<u8>>, dir: &Path, rel: &Path) -> Result<(), ArchiveError> {
    let err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ArchiveError::Pack { path, source }
    };
    let mut names = fs::read_dir(dir)
        .and_then(|entries| {
            entries
                .map(|e| e.map(|e| e.file_name()))
                .collect::<Result<Vec<_>, _>>()
        })
        .map_err(err(dir))?;
    names.sort();
    for name in names {
        let (path, arc) = (dir.join(&name), rel.join(&name));
        let kind = fs::symlink_metadata(&path).map_err(err(&path))?.file_type();
        if kind.is_dir() {
            builder.append_dir(&arc, &path).map_err(err(&path))?;
            walk(builder, &path, &arc)?;
        } else if kind.is_file() || kind.is_symlink() {
            builder
                .append_path_with_name(&path, &arc)
                .map_err(err(&path))?;
        }
    }
    Ok(())
}

/// A tar holding one regular file.
pub fn pack_file(name: &str, data: &[u8], mode: u32, mtime: u64) -> Result<Vec<u8>, ArchiveError> {
    let err = |source| ArchiveError::Pack {
        path: PathBuf::from(name),
        source,
    };
    let mut header = Header::new_gnu();
    header.set_entry_type(EntryType::Regular);
    header.set_mode(mode & 0o7777);
    header.set_mtime(mtime);
    header.set_size(data.len() as u64);
    let mut builder = Builder::new(Vec::new());
    builder.append_data(&mut header, name, data).map_err(err)?;
    builder.into_inner().map_err(err)
}

/// The path of an entry below the destination: relative, no `..`; empty
/// for the destination itself. `None` when it is neither.
fn relative(raw: &[u8]) -> Option<PathBuf> {
    if raw.starts_with(b"/") {
        return None;
    }
    let mut out = PathBuf::new();
    for part in raw.split(|b| *b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => return None,
            p => out.push(OsString::from_vec(p.to_vec())),
        }
    }
    Some(out)
}

/// Where the link at `link` (a path below the destination) points, as a
/// path below the destination, following the archive's own `links`;
/// `None` when it leads out (absolute, or `..` past the top) or loops.
fn resolve_link(link: &Path, links: &HashMap<PathBuf, PathBuf>) -> Option<Vec<OsString>> {
    let mut hops = 0;
    let mut at: Vec<OsString> = match link.parent() {
        Some(p) => p.iter().map(OsString::from).collect(),
        None => Vec::new(),
    };
    // Components still to walk, the next one last.
    let mut todo: Vec<Component<'_>> = links.get(link)?.components().rev().collect();
    while let Some(c) = todo.pop() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                at.pop()?;
            }
            Component::Normal(name) => {
                at.push(name.to_os_string());
                let here: PathBuf = at.iter().collect();
                if let Some(target) = links.get(&here) {
                    hops += 1;
                    if hops > MAX_LINK_HOPS {
                        return None;
                    }
                    at.pop();
                    todo.extend(target.components().rev());
                }
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(at)
}

/// Checks the whole archive (see the module comment); returns the number
/// of entries.
pub fn check(tar: &[u8]) -> Result<usize, ArchiveError> {
    let refuse = |raw: &[u8], reason| ArchiveError::Refused {
        entry: String::from_utf8_lossy(raw).into_owned(),
        reason,
    };
    let malformed = |source| ArchiveError::Malformed { source };
    let mut archive = Archive::new(tar);
    let mut links: HashMap<PathBuf, PathBuf> = HashMap::new();
    let mut seen: HashSet<PathBuf> = HashSet::new();
    let mut paths: Vec<(PathBuf, Vec<u8>)> = Vec::new();
    for entry in archive.entries().map_err(malformed)? {
        let entry = entry.map_err(malformed)?;
        let raw = entry.path_bytes().into_owned();
        let path = relative(&raw).ok_or_else(|| refuse(&raw, "absolute or `..` path"))?;
        let kind = entry.header().entry_type();
        match kind {
            EntryType::Directory => {}
            EntryType::XGlobalHeader => continue,
            _ if path.as_os_str().is_empty() => {
                return Err(refuse(&raw, "names the destination itself"))
            }
            EntryType::Regular | EntryType::Continuous => {}
            EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| refuse(&raw, "symlink without a target"))?;
                links.insert(
                    path.clone(),
                    PathBuf::from(OsString::from_vec(target.into_owned())),
                );
            }
            EntryType::Link => return Err(refuse(&raw, "hard links are not allowed")),
            EntryType::Char | EntryType::Block => {
                return Err(refuse(&raw, "device nodes are not allowed"))
            }
            EntryType::Fifo => return Err(refuse(&raw, "FIFOs are not allowed")),
            _ => return Err(refuse(&raw, "unsupported entry type")),
        }
        if !seen.insert(path.clone()) && links.contains_key(&path) {
            return Err(refuse(&raw, "appears twice, once as a symlink"));
        }
        paths.push((path, raw));
    }
    for (path, raw) in &paths {
        if path.ancestors().skip(1).any(|a| links.contains_key(a)) {
            return Err(refuse(raw, "lies beneath a symlink of the same archive"));
        }
        if links.contains_key(path) && resolve_link(path, &links).is_none() {
            return Err(refuse(raw, "symlink leads out of the destination"));
        }
    }
    Ok(paths.len())
}

/// Checks `tar`, then unpacks it into the directory `dest` (which exists).
/// Returns the number of entries.
pub fn unpack(tar: &[u8], dest: &Path) -> Result<usize, ArchiveError> {
    let n = check(tar)?;
    let mut archive = Archive::new(tar);
    archive.set_preserve_permissions(false);
    archive.set_overwrite(true);
    archive
        .unpack(dest)
        .map_err(|source| ArchiveError::Unpack {
            dest: dest.to_path_buf(),
            source,
        })?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    type Spec<'a> = (&'a str, EntryType, &'a [u8]);

    /// An archive written by hand, as hostile code could.
    fn raw_tar(entries: &[Spec<'_>]) -> Vec<u8> {
        let mut b = Builder::new(Vec::new());
        for (path, kind, data) in entries {
            let mut h = Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_mode(0o644);
            // Bypass the builder's own path checks: write the name raw.
            let name = &mut h.as_old_mut().name;
            name[..path.len()].copy_from_slice(path.as_bytes());
            if *kind == EntryType::Symlink || *kind == EntryType::Link {
                h.set_link_name_literal(data).unwrap();
                h.set_size(0);
                h.set_cksum();
                b.append(&h, &[][..]).unwrap();
            } else {
                h.set_size(data.len() as u64);
                h.set_cksum();
                b.append(&h, *data).unwrap();
            }
        }
        b.into_inner().unwrap()
    }

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "runtimed-archive-{name}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn trees_round_trip() {
        let src = temp("src");
        fs::create_dir_all(src.join("d/e")).unwrap();
        fs::write(src.join("d/e/f.txt"), b"deep").unwrap();
        fs::write(src.join("run.sh"), b"#!/bin/sh\n").unwrap();
        fs::set_permissions(src.join("run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
        symlink("d/e/f.txt", src.join("link")).unwrap();
        let tar = pack_dir(&src).unwrap();
        let out = temp("out");
        assert_eq!(unpack(&tar, &out).unwrap(), 5);
        assert_eq!(fs::read(out.join("d/e/f.txt")).unwrap(), b"deep");
        let mode = fs::metadata(out.join("run.sh"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);
        assert_eq!(
            fs::read_link(out.join("link")).unwrap(),
            Path::new("d/e/f.txt")
        );
        let _ = fs::remove_dir_all(&src);
        let _ = fs::remove_dir_all(&out);
    }

    #[test]
    fn hostile_entries_are_refused_before_anything_is_written() {
        let cases: &[(&[Spec<'_>], &str)] = &[
            (&[("/etc/x", EntryType::Regular, b"x")], "absolute"),
            (&[("a/../../x", EntryType::Regular, b"x")], "`..`"),
            (&[("l", EntryType::Symlink, b"/etc")], "leads out"),
            (&[("l", EntryType::Symlink, b"../x")], "leads out"),
            (&[("d/l", EntryType::Symlink, b"../../x")], "leads out"),
            // Each link alone looks inside; together they climb out.
            (
                &[
                    ("s/b", EntryType::Symlink, b".."),
                    ("s/a", EntryType::Symlink, b"b/.."),
                ],
                "leads out",
            ),
            (&[("l", EntryType::Symlink, b"l")], "leads out"),
            (
                &[
                    ("l", EntryType::Symlink, b"sub"),
                    ("l/x", EntryType::Regular, b"x"),
                ],
                "beneath a symlink",
            ),
            (
                &[
                    ("ok", EntryType::Regular, b"x"),
                    ("h", EntryType::Link, b"ok"),
                ],
                "hard links",
            ),
            (&[("dev", EntryType::Char, b"")], "device"),
            (&[("p", EntryType::Fifo, b"")], "FIFO"),
        ];
        for (entries, reason) in cases {
            let tar = raw_tar(entries);
            let out = temp("hostile");
            let err = unpack(&tar, &out).unwrap_err().to_string();
            assert!(err.contains(reason), "{entries:?}: {err}");
            assert_eq!(fs::read_dir(&out).unwrap().count(), 0, "{entries:?} wrote");
            let _ = fs::remove_dir_all(&out);
        }
    }

    #[test]
    fn links_that_stay_inside_are_kept() {
        let tar = raw_tar(&[
            ("d/f", EntryType::Regular, b"x"),
            ("d/up", EntryType::Symlink, b".."),
            ("d/self", EntryType::Symlink, b"up/d/f"),
            ("dangling", EntryType::Symlink, b"nowhere"),
        ]);
        assert_eq!(check(&tar).unwrap(), 4);
    }

    #[test]
    fn one_file_archives() {
        let tar = pack_file("a.sh", b"echo", 0o4755, 7).unwrap();
        let out = temp("one");
        unpack(&tar, &out).unwrap();
        let meta = fs::metadata(out.join("a.sh")).unwrap();
        // setuid is never kept.
        assert_eq!(meta.permissions().mode() & 0o7777, 0o755);
        let _ = fs::remove_dir_all(&out);
    }
}
