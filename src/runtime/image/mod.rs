//! Images: references, the content-addressed store, archive import, the
//! platform an index entry is for, the node's registry settings, and layer
//! unpacking.
//!
//! ```text
//! DATA/images/blobs/sha256/<hex>    every blob, verified against its digest
//! DATA/images/layers/<diff-id hex>/ each layer unpacked once (overlay lower dir)
//! DATA/images/tmp/                  uploads and half-done work, cleared on start
//! DATA/images/partial/<hex>         a download so far, resumed; hashed again before use
//! ```

pub mod blob;
pub mod docker_config;
pub mod gc;
mod import;
pub mod platform;
pub mod policy;
pub mod progress;
pub mod pull;
mod reference;
pub mod registries;
mod store;
pub mod unpack;

pub use reference::{ImageRef, RefError};
pub use store::{ImageError, ImageStore, ResolvedImage};
