//! `runtimed cp SRC DST`: copies between the host and a session's
//! /workspace, one side written `ID:PATH`, with `docker cp`'s rules: a
//! directory is copied whole (into an existing directory under its own
//! name, else as the new name), `DIR/.` copies its contents, `-` is a tar
//! stream on stdin or stdout.
//!
//! Uploads go through the archive endpoint even for one file, so the mode
//! (the executable bit) and mtime survive; downloads read the file itself,
//! or the directory's archive, which is checked before it is unpacked
//! (`archive`).

use std::io::{IsTerminal, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use clap::Args;
use hyper::Method;
use serde::Deserialize;

use super::archive;
use super::http::{Client, HttpError, Payload};
use super::{encode_url, output_error, session_path, ClientError, ConnectArgs};

/// Mode of a downloaded file whose mode the daemon did not tell.
const DEFAULT_FILE_MODE: u32 = 0o644;

#[derive(Debug, thiserror::Error)]
pub enum CpError {
    #[error(
        "cp copies between the host and a session: exactly one of SRC and DST is ID:PATH \
(the other a host path, or - for a tar stream)"
    )]
    Endpoints,
    #[error("session path {path:?} is outside /workspace, the only directory cp reaches")]
    OutsideWorkspace { path: String },
    #[error("session path {path:?} leads out of /workspace")]
    LeavesWorkspace { path: String },
    #[error("{op} {}", path.display())]
    Host {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot copy a directory onto the file {shown}")]
    DirectoryOntoFile { shown: String },
    #[error("{shown} is not a directory")]
    NotADirectory { shown: String },
    #[error("destination directory {shown} does not exist")]
    MissingDirectory { shown: String },
    #[error("{} is neither a regular file nor a directory", path.display())]
    Special { path: PathBuf },
    #[error("no name to copy {} under", path.display())]
    NoName { path: PathBuf },
    #[error("refusing to write a tar archive to a terminal (redirect stdout)")]
    TarToTerminal,
    #[error("reading the tar archive from stdin")]
    Stdin { source: std::io::Error },
}

#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
runtimed cp ./src ID:         the host directory src to /workspace/src\n  \
runtimed cp ./src/. ID:app    the contents of src into /workspace/app\n  \
runtimed cp ID:out.txt .      /workspace/out.txt to ./out.txt\n  \
runtimed cp ID:results - | tar t   a tar of /workspace/results on stdout\n\
Session paths are relative to /workspace (or absolute below it); a host path \
with a colon is written ./a:b.")]
pub struct CpArgs {
    #[command(flatten)]
    conn: ConnectArgs,
    /// What to copy: a host path, ID:PATH, or - (a tar archive on stdin).
    #[arg(value_name = "SRC")]
    src: String,
    /// Where to: a host path, ID:PATH, or - (a tar archive on stdout).
    #[arg(value_name = "DST")]
    dst: String,
}

pub fn main(args: CpArgs) -> i32 {
    super::run(cp(args))
}

/// A path in a session's /workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Remote {
    id: String,
    /// Relative to /workspace, normalised; empty for /workspace itself.
    rel: String,
    /// Written with a trailing `/`: must be a directory.
    dir: bool,
    /// Written `DIR/.`: the directory's contents, not the directory.
    contents: bool,
    /// As the user wrote it, for messages.
    shown: String,
}

impl Remote {
    fn parse(id: &str, path: &str) -> Result<Remote, CpError> {
        let shown = format!("{id}:{path}");
        let contents = path == "." || path.ends_with("/.");
        let dir = contents || path.ends_with('/');
        let inside = match path.strip_prefix('/') {
            None => path,
            Some(abs) => match abs.strip_prefix("workspace") {
                Some(rest) if rest.is_empty() || rest.starts_with('/') => rest,
                _ => {
                    return Err(CpError::OutsideWorkspace {
                        path: path.to_string(),
                    })
                }
            },
        };
        let mut parts: Vec<&str> = Vec::new();
        for part in inside.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    if parts.pop().is_none() {
                        return Err(CpError::LeavesWorkspace {
                            path: path.to_string(),
                        });
                    }
                }
                p => parts.push(p),
            }
        }
        Ok(Remote {
            id: id.to_string(),
            rel: parts.join("/"),
            dir,
            contents,
            shown,
        })
    }

    /// The name it is copied under: its last component (`workspace` for
    /// the workspace itself, as `docker cp c:/workspace .` would).
    fn name(&self) -> &str {
        self.rel
            .rsplit('/')
            .next()
            .filter(|n| !n.is_empty())
            .unwrap_or("workspace")
    }

    fn join(&self, name: &str) -> String {
        match self.rel.is_empty() {
            true => name.to_string(),
            false => format!("{}/{name}", self.rel),
        }
    }

    fn files_path(&self, rel: &str) -> String {
        format!("{}/files/{}", session_path(&self.id), encode_url(rel, true))
    }

    fn archive_path(&self, rel: &str) -> String {
        format!(
            "{}/archive?path={}",
            session_path(&self.id),
            encode_url(rel, false)
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Endpoint {
    Host(PathBuf),
    /// `-`: a tar archive on stdin or stdout.
    Stdio,
    Session(Remote),
}

/// `ID:PATH` when a colon comes before any slash (so `./a:b` and `/a:b`
/// are host paths), `-` for stdio, a host path otherwise.
fn endpoint(arg: &str) -> Result<Endpoint, CpError> {
    if arg == "-" {
        return Ok(Endpoint::Stdio);
    }
    match arg.split_once(':') {
        Some((id, path)) if !id.is_empty() && !id.contains('/') => {
            Ok(Endpoint::Session(Remote::parse(id, path)?))
        }
        _ => Ok(Endpoint::Host(PathBuf::from(arg))),
    }
}

async fn cp(a: CpArgs) -> Result<i32, ClientError> {
    let client = a.conn.client();
    match (endpoint(&a.src)?, endpoint(&a.dst)?) {
        (Endpoint::Host(src), Endpoint::Session(dst)) => {
            upload(&client, &src, &a.src, &dst).await?
        }
        (Endpoint::Stdio, Endpoint::Session(dst)) => {
            let mut tar = Vec::new();
            std::io::stdin()
                .lock()
                .read_to_end(&mut tar)
                .map_err(|source| CpError::Stdin { source })?;
            put_archive(&client, &dst, &dst.rel, tar).await?;
        }
        (Endpoint::Session(src), Endpoint::Host(dst)) => {
            download(&client, &src, &dst, &a.dst).await?
        }
        (Endpoint::Session(src), Endpoint::Stdio) => to_stdout(&client, &src).await?,
        _ => return Err(CpError::Endpoints.into()),
    }
    Ok(0)
}

/// What a session path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Missing,
    File,
    Dir,
}

#[derive(Deserialize)]
struct Listing {
    entries: Vec<ListEntry>,
}

#[derive(Deserialize)]
struct ListEntry {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    mode: u32,
    mtime: i64,
}

fn is_file_not_found(e: &HttpError) -> bool {
    matches!(e, HttpError::Api { code, .. } if code == "file_not_found" || code == "not_a_directory")
}

/// The entry `rel` in its parent's listing (no file content is read);
/// `None` when it does not exist.
async fn lookup(client: &Client, r: &Remote, rel: &str) -> Result<Option<ListEntry>, HttpError> {
    let (parent, name) = match rel.rsplit_once('/') {
        Some((p, n)) => (p, n),
        None => ("", rel),
    };
    let listing: Listing = match client.json(Method::GET, &r.files_path(parent), None).await {
        Ok(l) => l,
        Err(e) if is_file_not_found(&e) => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(listing.entries.into_iter().find(|e| e.name == name))
}

/// What `rel` is, following a final symlink (inside the workspace, as
/// the daemon does).
async fn kind_of(client: &Client, r: &Remote, rel: &str) -> Result<Kind, HttpError> {
    if rel.is_empty() {
        // The workspace itself; the listing also proves the session exists.
        client.call(Method::GET, &r.files_path(""), None).await?;
        return Ok(Kind::Dir);
    }
    match lookup(client, r, rel).await? {
        None => Ok(Kind::Missing),
        Some(e) if e.kind == "dir" => Ok(Kind::Dir),
        Some(e) if e.kind == "symlink" => {
            match client.call(Method::GET, &r.files_path(rel), None).await {
                Ok(reply) if reply.is_json() => Ok(Kind::Dir),
                Ok(_) => Ok(Kind::File),
                // Dangling: writing makes the daemon refuse or replace it.
                Err(e) if is_file_not_found(&e) => Ok(Kind::File),
                Err(e) => Err(e),
            }
        }
        Some(_) => Ok(Kind::File),
    }
}

async fn put_archive(
    client: &Client,
    r: &Remote,
    rel: &str,
    tar: Vec<u8>,
) -> Result<(), ClientError> {
    let body = Payload::bytes("application/x-tar", tar);
    client
        .call(Method::PUT, &r.archive_path(rel), Some(body))
        .await?;
    Ok(())
}

fn host_error(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> CpError {
    let path = path.to_path_buf();
    move |source| CpError::Host { op, path, source }
}

/// `.` and `DIR/.`: the contents of the directory.
fn means_contents(arg: &str) -> bool {
    arg == "." || arg.ends_with("/.")
}

/// The name a host path is copied under (`..` and `.` resolved first).
fn host_name(path: &Path) -> Result<String, CpError> {
    let name = match path.file_name() {
        Some(n) => Some(n.to_os_string()),
        None => std::fs::canonicalize(path)
            .map_err(host_error("resolving", path))?
            .file_name()
            .map(|n| n.to_os_string()),
    };
    name.and_then(|n| n.into_string().ok())
        .ok_or_else(|| CpError::NoName {
            path: path.to_path_buf(),
        })
}

/// Host → session.
async fn upload(
    client: &Client,
    src: &Path,
    src_arg: &str,
    dst: &Remote,
) -> Result<(), ClientError> {
    let meta = std::fs::metadata(src).map_err(host_error("reading", src))?;
    let dst_kind = kind_of(client, dst, &dst.rel).await?;
    if meta.is_dir() {
        let target = match dst_kind {
            Kind::Dir if means_contents(src_arg) => dst.rel.clone(),
            Kind::Dir => dst.join(&host_name(src)?),
            Kind::Missing => dst.rel.clone(),
            Kind::File => {
                return Err(CpError::DirectoryOntoFile {
                    shown: dst.shown.clone(),
                }
                .into())
            }
        };
        let tar = archive::pack_dir(src)?;
        return put_archive(client, dst, &target, tar).await;
    }
    if !meta.is_file() {
        return Err(CpError::Special {
            path: src.to_path_buf(),
        }
        .into());
    }
    if means_contents(src_arg) || src_arg.ends_with('/') {
        return Err(CpError::NotADirectory {
            shown: src_arg.to_string(),
        }
        .into());
    }
    let target = match dst_kind {
        Kind::Dir => dst.join(&host_name(src)?),
        Kind::Missing if dst.dir => {
            return Err(CpError::MissingDirectory {
                shown: dst.shown.clone(),
            }
            .into())
        }
        Kind::File if dst.dir => {
            return Err(CpError::NotADirectory {
                shown: dst.shown.clone(),
            }
            .into())
        }
        Kind::Missing | Kind::File => dst.rel.clone(),
    };
    let (parent, name) = match target.rsplit_once('/') {
        Some((p, n)) => (p.to_string(), n.to_string()),
        None => (String::new(), target.clone()),
    };
    let data = std::fs::read(src).map_err(host_error("reading", src))?;
    let mtime = u64::try_from(meta.mtime()).unwrap_or(0);
    let tar = archive::pack_file(&name, &data, meta.permissions().mode(), mtime)?;
    put_archive(client, dst, &parent, tar).await
}

/// Session → host.
async fn download(
    client: &Client,
    src: &Remote,
    dst: &Path,
    dst_arg: &str,
) -> Result<(), ClientError> {
    let reply = client
        .call(Method::GET, &src.files_path(&src.rel), None)
        .await?;
    let dst_meta = std::fs::metadata(dst).ok();
    let dst_is_dir = dst_meta.as_ref().is_some_and(|m| m.is_dir());
    if reply.is_json() {
        let target = match &dst_meta {
            Some(m) if m.is_dir() && src.contents => dst.to_path_buf(),
            Some(m) if m.is_dir() => dst.join(src.name()),
            Some(_) => {
                return Err(CpError::DirectoryOntoFile {
                    shown: dst_arg.to_string(),
                }
                .into())
            }
            None => dst.to_path_buf(),
        };
        let tar = client
            .call(Method::GET, &src.archive_path(&src.rel), None)
            .await?
            .body;
        // Refused archives must not leave an empty directory behind.
        archive::check(&tar)?;
        match std::fs::create_dir(&target) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && target.is_dir() => {}
            other => other.map_err(host_error("creating", &target))?,
        }
        archive::unpack(&tar, &target)?;
        return Ok(());
    }
    if src.dir {
        return Err(CpError::NotADirectory {
            shown: src.shown.clone(),
        }
        .into());
    }
    let target = if dst_is_dir {
        dst.join(src.name())
    } else if dst_arg.ends_with('/') {
        return Err(CpError::MissingDirectory {
            shown: dst_arg.to_string(),
        }
        .into());
    } else {
        dst.to_path_buf()
    };
    // The mode from the listing; the bytes are what counts if it fails.
    let mode = lookup(client, src, &src.rel)
        .await
        .ok()
        .flatten()
        .map_or(DEFAULT_FILE_MODE, |e| e.mode)
        & 0o777;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&target)
        .map_err(host_error("creating", &target))?;
    file.write_all(&reply.body)
        .and_then(|()| file.set_permissions(std::fs::Permissions::from_mode(mode)))
        .map_err(host_error("writing", &target))?;
    Ok(())
}

/// Session → a tar archive on stdout.
async fn to_stdout(client: &Client, src: &Remote) -> Result<(), ClientError> {
    if std::io::stdout().is_terminal() {
        return Err(CpError::TarToTerminal.into());
    }
    let reply = client
        .call(Method::GET, &src.files_path(&src.rel), None)
        .await?;
    let tar = if reply.is_json() {
        client
            .call(Method::GET, &src.archive_path(&src.rel), None)
            .await?
            .body
            .to_vec()
    } else {
        let entry = lookup(client, src, &src.rel).await.ok().flatten();
        let (mode, mtime) = entry.map_or((DEFAULT_FILE_MODE, 0), |e| {
            (e.mode, u64::try_from(e.mtime).unwrap_or(0))
        });
        archive::pack_file(src.name(), &reply.body, mode & 0o777, mtime)?
    };
    let mut out = std::io::stdout().lock();
    out.write_all(&tar)
        .and_then(|()| out.flush())
        .map_err(output_error("stdout"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(arg: &str) -> Remote {
        match endpoint(arg).unwrap() {
            Endpoint::Session(r) => r,
            other => panic!("{arg}: {other:?}"),
        }
    }

    #[test]
    fn endpoints() {
        assert_eq!(endpoint("-").unwrap(), Endpoint::Stdio);
        assert_eq!(endpoint("./a:b").unwrap(), Endpoint::Host("./a:b".into()));
        assert_eq!(endpoint("/a:b").unwrap(), Endpoint::Host("/a:b".into()));
        assert_eq!(endpoint(":x").unwrap(), Endpoint::Host(":x".into()));
        let r = remote("s1:/workspace/a/./b/");
        assert_eq!((r.id.as_str(), r.rel.as_str(), r.dir), ("s1", "a/b", true));
        assert_eq!(remote("s1:").rel, "");
        assert_eq!(remote("s1:/workspace").rel, "");
        assert_eq!(remote("s1:a/../b").rel, "b");
        assert!(remote("s1:d/.").contents);
        assert_eq!(remote("s1:").name(), "workspace");
        assert_eq!(remote("s1:x/y.txt").name(), "y.txt");
    }

    #[test]
    fn paths_outside_the_workspace_are_refused() {
        for bad in ["s1:/etc/passwd", "s1:/workspacex", "s1:..", "s1:a/../../b"] {
            assert!(endpoint(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn urls() {
        let r = remote("s1:a b/c");
        assert_eq!(r.files_path(&r.rel), "/v1/sessions/s1/files/a%20b/c");
        assert_eq!(
            r.archive_path(&r.rel),
            "/v1/sessions/s1/archive?path=a%20b%2Fc"
        );
    }
}
