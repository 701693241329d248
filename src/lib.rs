//! Shoal: a single-binary edge orchestrator.
//!
//! # Layout
//! Modules follow the path of an `apply` (docs/ARCHITECTURE.md has the details):
//! `cli` → `transport` (QUIC, mTLS, frames) → `daemon` (wiring, API handlers)
//! → `api` (manifests, validation) → `node` (sans-IO reconcile core and its
//! driver) → `runtime` (images, bundles, the libcontainer shim) and `store`
//! (SQLite); `net` gives each pod its address and link.
pub mod api;
pub mod cli;
pub mod consensus;
pub mod controllers;
pub mod daemon;
pub mod gossip;
pub mod join;
pub mod leader;
pub mod net;
pub mod node;
pub mod runtime;
pub mod scheduler;
pub mod state;
pub mod store;
pub mod transport;
