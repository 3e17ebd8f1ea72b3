//! runtimed's images. An OCI image layout in the data dir holds every blob
//! (content-addressed, sha256 verified before use) and names → manifests;
//! layers are unpacked once per digest and shared read-only by every
//! sandbox that runs the image.
#![forbid(unsafe_code)]

pub mod atomic_write;
pub mod digest;
pub mod export;
pub mod gc;
pub mod import;
pub mod layers;
pub mod recipe;
pub mod registry;
pub mod runtime;
pub mod store;
pub mod unpack;

pub use digest::Digest;
pub use store::{Image, ImageContent, ImageName, Store, StoreError};
