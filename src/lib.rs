//! Shoal: a single-binary edge orchestrator.
pub mod api;
pub mod runtime;
pub mod store;
pub mod transport;
pub mod node;
pub mod daemon;
pub mod cli;
