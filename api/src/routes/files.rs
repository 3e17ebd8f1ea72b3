//! Files of a session's /workspace: `GET/PUT/DELETE
//! /v1/sessions/{id}/files/{path}` (raw bytes; a directory lists its
//! entries as JSON), and tar archives of a directory
//! (`GET/PUT /v1/sessions/{id}/archive?path=DIR`). Every path is resolved
//! inside the workspace (`workspace::Workspace`), whatever symlinks the
//! programs inside made.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;

use std::os::fd::BorrowedFd;

use axum::http::StatusCode as Status;
use nix::errno::Errno;

use crate::auth::Tenant;
use crate::engine::session::WriteError;
use crate::engine::SessionSandbox;
use crate::error::{ApiError, ErrorBody};
use crate::state::{AppState, Session};
use crate::types::{DirListing, Unpacked};
use crate::workspace::{Node, Workspace, Writer};

/// Largest file or archive served.
const MAX_READ: u64 = 64 << 20;

/// Opens the session's workspace from the host, inside PID 1's root (see
/// `SessionSandbox::open_root`, `Workspace::in_root`); its files are
/// written by a process of the session. Called on a blocking thread of
/// the runtime (the writer waits for the session there).
pub fn workspace_of(session: &Session) -> Result<Workspace, ApiError> {
    let sb = session.running()?;
    let owner = sb.host_uid + sandbox::options::defaults::UID;
    let root = sb.open_root().map_err(|_| {
        ApiError::new(
            Status::CONFLICT,
            "session_not_running",
            format!("session {} has ended", session.id),
        )
    })?;
    let rt = tokio::runtime::Handle::try_current()
        .map_err(|e| ApiError::internal(format!("no runtime for the session's writer: {e}")))?;
    let writer = SessionWriter { sb: sb.clone(), rt };
    Ok(Workspace::in_root(&root, (owner, owner), Box::new(writer))?)
}

/// Writes a session's files through the session's own writer process
/// (`SessionSandbox::write_files`), so they count against its limits.
struct SessionWriter {
    sb: Arc<SessionSandbox>,
    rt: tokio::runtime::Handle,
}

impl std::fmt::Debug for SessionWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SessionWriter({})", self.sb.id)
    }
}

impl Writer for SessionWriter {
    fn write(&self, files: &[(BorrowedFd<'_>, &[u8])]) -> Result<(), Errno> {
        let mut rest = files;
        while !rest.is_empty() {
            let n = rest.len().min(crate::engine::session::MAX_WRITE_FILES);
            let (now, later) = rest.split_at(n);
            self.rt
                .block_on(self.sb.write_files(now))
                .map_err(|e| match e {
                    WriteError::Failed(errno) => errno,
                    WriteError::MemoryLimit => Errno::ENOMEM,
                    WriteError::SessionGone | WriteError::Killed(_) => Errno::ESRCH,
                    WriteError::TooMany(_) => Errno::E2BIG,
                    WriteError::TimedOut => Errno::ETIMEDOUT,
                    WriteError::Pipe(e) => Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
                })?;
            rest = later;
        }
        Ok(())
    }
}

/// Runs `f` with this thread's filesystem uid/gid set to the session
/// user's host ids, restored afterwards. The workspace is a tmpfs owned by
/// the session's user namespace: files the host's root creates there would
/// have an owner unmapped inside (the kernel refuses: EOVERFLOW), and the
/// session user's own permissions are the right ones for its files anyway
/// (with a non-zero fsuid the filesystem capabilities are not in effect).
pub fn as_session_user<T>(
    owner: u32,
    f: impl FnOnce() -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    struct Restore;
    impl Drop for Restore {
        fn drop(&mut self) {
            nix::unistd::setfsgid(nix::unistd::Gid::from_raw(0));
            nix::unistd::setfsuid(nix::unistd::Uid::from_raw(0));
        }
    }
    let _restore = Restore;
    nix::unistd::setfsgid(nix::unistd::Gid::from_raw(owner));
    nix::unistd::setfsuid(nix::unistd::Uid::from_raw(owner));
    f()
}

/// Opens the session's workspace (as root: /proc/<pid>/root needs it),
/// then runs `op` on it as the session user, on a blocking thread.
async fn with_workspace<T: Send + 'static>(
    session: Arc<Session>,
    op: impl FnOnce(&Workspace) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    blocking(move || {
        let ws = workspace_of(&session)?;
        let owner = session.running()?.host_uid + sandbox::options::defaults::UID;
        as_session_user(owner, || op(&ws))
    })
    .await
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
}

/// Read a file (raw bytes) or list a directory (JSON).
#[utoipa::path(get, path = "/v1/sessions/{id}/files/{path}", params(("id" = String, Path), ("path" = String, Path)),
    responses((status = 200, description = "the file's bytes, or a directory's listing", content(
            (Vec<u8> = "application/octet-stream"),
            (crate::types::DirListing = "application/json"))),
        (status = 400, body = ErrorBody, description = "invalid_path"),
        (status = 403, body = ErrorBody, description = "permission_denied"),
        (status = 404, body = ErrorBody, description = "session_not_found, file_not_found"),
        (status = 409, body = ErrorBody, description = "session_not_running, not_a_directory, is_a_directory, not_a_regular_file, directory_not_empty"),
        (status = 413, body = ErrorBody, description = "file_too_large"),
        (status = 503, body = ErrorBody, description = "output_budget_exhausted: what the answer would hold does not fit the daemon's output budget now",
            headers(("Retry-After" = u64, description = "seconds to wait before trying again")))))]
pub async fn get(
    State(state): State<Arc<AppState>>,
    Extension(tenant): Extension<Tenant>,
    Path((id, path)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    read(state, tenant, id, path).await
}

/// List the workspace's top directory.
#[utoipa::path(get, path = "/v1/sessions/{id}/files", params(("id" = String, Path)),
    responses((status = 200, body = crate::types::DirListing),
        (status = 400, body = ErrorBody, description = "invalid_path"),
        (status = 403, body = ErrorBody, description = "permission_denied"),
        (status = 404, body = ErrorBody, description = "session_not_found, file_not_found"),
        (status = 409, body = ErrorBody, description = "session_not_running, not_a_directory, is_a_directory, not_a_regular_file, directory_not_empty"),
        (status = 413, body = ErrorBody, description = "file_too_large"),
        (status = 503, body = ErrorBody, description = "output_budget_exhausted: what the answer would hold does not fit the daemon's output budget now",
            headers(("Retry-After" = u64, description = "seconds to wait before trying again")))))]
pub async fn get_root(
    State(state): State<Arc<AppState>>,
    Extension(tenant): Extension<Tenant>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    read(state, tenant, id, String::new()).await
}

async fn read(
    state: Arc<AppState>,
    tenant: Tenant,
    id: String,
    path: String,
) -> Result<Response, ApiError> {
    let session = state.get(&tenant, &id)?;
    session.touch();
    let mut grant = output_grant(&state, &tenant)?;
    let (node, grant) = with_workspace(session, move |ws| {
        let node = ws.read_within(&path, MAX_READ, &mut grant)?;
        Ok((node, grant))
    })
    .await?;
    // The bytes keep their share of the budget until the client has them
    // (or went away).
    let (bytes, kind) = match node {
        Node::File(bytes) => (bytes, "application/octet-stream"),
        Node::Dir(entries) => {
            let json = serde_json::to_vec(&DirListing { entries })
                .map_err(|e| ApiError::internal(format!("listing: {e}")))?;
            (json, "application/json")
        }
    };
    let body = crate::budget::paid_bytes(bytes, grant);
    Ok(([(header::CONTENT_TYPE, kind)], body).into_response())
}

/// An empty reservation from the daemon's output budget, which a read
/// grows as it holds names, listings and bytes for its client
/// (`workspace::Allowance`): a sandbox's big file or huge directory can
/// then make the daemon hold at most the tenant's share for clients that
/// do not read.
fn output_grant(state: &AppState, tenant: &Tenant) -> Result<crate::budget::Grant, ApiError> {
    state
        .output_budget
        .try_reserve(&tenant.0, 0)
        .ok_or_else(|| ApiError::from(crate::workspace::WorkspaceError::Busy))
}

/// Write a file (`?parents=true` creates missing directories).
#[utoipa::path(put, path = "/v1/sessions/{id}/files/{path}", params(("id" = String, Path), ("path" = String, Path), ("parents" = Option<bool>, Query)),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 204, description = "written"),
        (status = 400, body = ErrorBody, description = "invalid_path"),
        (status = 403, body = ErrorBody, description = "permission_denied"),
        (status = 404, body = ErrorBody, description = "session_not_found, file_not_found"),
        (status = 409, body = ErrorBody, description = "session_not_running, not_a_directory, is_a_directory, not_a_regular_file, directory_not_empty"),
        (status = 413, body = ErrorBody, description = "body_too_large, workspace_full")))]
pub async fn put(
    State(state): State<Arc<AppState>>,
    Extension(tenant): Extension<Tenant>,
    Path((id, path)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let session = state.get(&tenant, &id)?;
    session.touch();
    let parents = flag(&q, "parents")?;
    with_workspace(session, move |ws| Ok(ws.write(&path, &body, parents)?)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Remove a file, a symlink, or (`?recursive=true`) a directory tree.
#[utoipa::path(delete, path = "/v1/sessions/{id}/files/{path}", params(("id" = String, Path), ("path" = String, Path), ("recursive" = Option<bool>, Query)),
    responses((status = 204, description = "removed"),
        (status = 400, body = ErrorBody, description = "invalid_path"),
        (status = 403, body = ErrorBody, description = "permission_denied"),
        (status = 404, body = ErrorBody, description = "session_not_found, file_not_found"),
        (status = 409, body = ErrorBody, description = "session_not_running, not_a_directory, is_a_directory, not_a_regular_file, directory_not_empty"),
        (status = 503, body = ErrorBody, description = "output_budget_exhausted: what the answer would hold does not fit the daemon's output budget now",
            headers(("Retry-After" = u64, description = "seconds to wait before trying again")))))]
pub async fn delete(
    State(state): State<Arc<AppState>>,
    Extension(tenant): Extension<Tenant>,
    Path((id, path)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<StatusCode, ApiError> {
    let session = state.get(&tenant, &id)?;
    session.touch();
    let recursive = flag(&q, "recursive")?;
    let mut grant = output_grant(&state, &tenant)?;
    with_workspace(session, move |ws| {
        Ok(ws.remove_within(&path, recursive, &mut grant)?)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

fn flag(q: &HashMap<String, String>, name: &str) -> Result<bool, ApiError> {
    match q.get(name).map(String::as_str) {
        None | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") | Some("") => Ok(true),
        Some(other) => Err(ApiError::invalid(format!(
            "{name}={other}: use true or false"
        ))),
    }
}

/// A tar of a directory (`?path=`, default the workspace).
#[utoipa::path(get, path = "/v1/sessions/{id}/archive", params(("id" = String, Path), ("path" = Option<String>, Query)),
    responses((status = 200, description = "a tar of the directory", body = Vec<u8>, content_type = "application/x-tar"),
        (status = 400, body = ErrorBody, description = "invalid_path"),
        (status = 403, body = ErrorBody, description = "permission_denied"),
        (status = 404, body = ErrorBody, description = "session_not_found, file_not_found"),
        (status = 409, body = ErrorBody, description = "session_not_running, not_a_directory, is_a_directory, not_a_regular_file, directory_not_empty"),
        (status = 413, body = ErrorBody, description = "file_too_large: the tar would be over 64 MiB"),
        (status = 503, body = ErrorBody, description = "output_budget_exhausted: what the answer would hold does not fit the daemon's output budget now",
            headers(("Retry-After" = u64, description = "seconds to wait before trying again")))))]
pub async fn archive_get(
    State(state): State<Arc<AppState>>,
    Extension(tenant): Extension<Tenant>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let session = state.get(&tenant, &id)?;
    session.touch();
    let path = q.get("path").cloned().unwrap_or_default();
    let mut grant = output_grant(&state, &tenant)?;
    let (tar, grant) = with_workspace(session, move |ws| {
        let tar = ws.tar_within(&path, MAX_READ, &mut grant)?;
        Ok((tar, grant))
    })
    .await?;
    let body = crate::budget::paid_bytes(tar, grant);
    Ok(([(header::CONTENT_TYPE, "application/x-tar")], body).into_response())
}

/// Unpack a tar into a directory (`?path=`, created when missing).
#[utoipa::path(put, path = "/v1/sessions/{id}/archive", params(("id" = String, Path), ("path" = Option<String>, Query)),
    request_body(content = Vec<u8>, content_type = "application/x-tar"),
    responses((status = 200, body = crate::types::Unpacked),
        (status = 400, body = ErrorBody, description = "invalid_path, invalid_archive"),
        (status = 403, body = ErrorBody, description = "permission_denied"),
        (status = 404, body = ErrorBody, description = "session_not_found"),
        (status = 409, body = ErrorBody, description = "session_not_running, not_a_directory, is_a_directory"),
        (status = 413, body = ErrorBody, description = "body_too_large, workspace_full")))]
pub async fn archive_put(
    State(state): State<Arc<AppState>>,
    Extension(tenant): Extension<Tenant>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let session = state.get(&tenant, &id)?;
    session.touch();
    let path = q.get("path").cloned().unwrap_or_default();
    let max = session.limits.disk_bytes;
    let n = with_workspace(session, move |ws| Ok(ws.untar(&path, &body, max)?)).await?;
    Ok(axum::Json(Unpacked { entries: n }).into_response())
}
