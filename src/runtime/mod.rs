//! Running containers: images, OCI bundles, and libcontainer behind a shim.
pub mod image;
