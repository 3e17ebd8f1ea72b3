//! `api`: runtimed's native HTTP + WebSocket API, served on the Unix socket
//! and on TCP: sessions, exec, PTY, files, one-shot runs. `router()` is
//! the whole API without sockets; `serve` binds the listeners and runs the
//! reaper until a shutdown signal.
#![forbid(unsafe_code)]

pub mod auth;
pub mod budget;
pub mod config;
pub mod engine;
pub mod error;
pub mod images;
pub mod judge;
pub mod judge0;
pub mod metrics;
pub mod openapi;
pub mod request_body;
pub mod routes;
pub mod serve;
pub mod spec;
pub mod state;
pub mod store;
pub mod types;
pub mod workspace;

pub use routes::router;
