//! The image GC task: every period, one collection
//! ([`crate::runtime::image::gc`]) with the images the node's pods use kept.

use crate::daemon::shutdown::Shutdown;
use crate::runtime::image::gc::{collect, Thresholds};
use crate::runtime::image::{ImageRef, ImageStore};
use crate::store::Store;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

/// What the task needs.
pub struct GcDeps {
    /// The image store.
    pub images: Arc<ImageStore>,
    /// The node's store (its pods).
    pub store: Arc<Store>,
    /// Water marks.
    pub thresholds: Thresholds,
    /// Between collections (the kubelet: 5 minutes).
    pub period: Duration,
    /// Stop.
    pub shutdown: Shutdown,
}

/// The normalised references the pods on this node use.
pub fn images_in_use(store: &Store) -> HashSet<String> {
    store
        .list_pods()
        .unwrap_or_default()
        .iter()
        .flat_map(|p| p.pod.spec.init_containers.iter().chain(&p.pod.spec.containers))
        .filter_map(|c| ImageRef::parse(&c.image).ok().map(|r| r.to_string()))
        .collect()
}

/// Collects every `period` until shutdown.
pub async fn run(deps: GcDeps) {
    let GcDeps {
        images,
        store,
        thresholds,
        period,
        mut shutdown,
    } = deps;
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = shutdown.wait() => break,
            _ = tick.tick() => {}
        }
        let (images, store) = (images.clone(), store.clone());
        let done = tokio::task::spawn_blocking(move || {
            let used = images_in_use(&store);
            collect(&images, thresholds, |r| used.contains(r))
        })
        .await;
        match done {
            Ok(Ok(removed)) if !removed.is_empty() => info!(?removed, "image GC removed unused images"),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => warn!(error = %e, "image GC failed"),
            Err(e) => warn!(error = %e, "image GC task failed"),
        }
    }
}
