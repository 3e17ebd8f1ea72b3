//! The OpenAPI document, generated from the handlers' annotations
//! (utoipa); `docs/openapi.json` is a checked-in copy (a test compares).

use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "runtimed",
        description = "Sandbox runtime daemon: sessions, exec, PTY, files, one-shot runs, images, judge"
    ),
    paths(
        crate::routes::sessions::create,
        crate::routes::sessions::list,
        crate::routes::sessions::get,
        crate::routes::sessions::delete,
        crate::routes::exec::exec,
        crate::routes::pty::open,
        crate::routes::pty::attach,
        crate::routes::pty::list,
        crate::routes::pty::delete,
        crate::routes::files::get,
        crate::routes::files::put,
        crate::routes::files::delete,
        crate::routes::files::archive_get,
        crate::routes::files::archive_put,
        crate::routes::run::run,
        crate::routes::images::list,
        crate::routes::images::build,
        crate::routes::images::pull,
        crate::routes::images::import,
        crate::routes::images::delete,
        crate::routes::judge::submit,
        crate::routes::judge::get,
        crate::routes::judge::events,
        crate::routes::judge::languages,
        crate::routes::system::healthz,
        crate::routes::system::metrics,
    ),
    components(schemas(crate::error::ErrorBody))
)]
struct Doc;

pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = Doc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    doc
}
