//! Shoal: a single-binary edge orchestrator.
pub mod api;
pub mod cli;
pub mod daemon;
pub mod node;
pub mod runtime;
pub mod store;
pub mod transport;
