//! The image step of a start: what the container's `imagePullPolicy` asks
//! for ([`crate::runtime::image::policy`]), the pull with its progress fed
//! into the pod's status, and the waiting reason a failure shows
//! (`ErrImageNeverPull`, `ErrImagePull`).

use crate::api::manifest::Container;
use crate::runtime::image::policy::{decide, effective, PullDecision};
use crate::runtime::image::progress::Tally;
use crate::runtime::image::pull::{current_digest, pull, Credentials, Progress};
use crate::runtime::image::registries::Registries;
use crate::runtime::image::ImageRef;
use crate::runtime::Runtime;
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// How long `Always` waits for the registry's answer before it goes on
/// with the copy in the store.
const REFRESH_WAIT: Duration = Duration::from_secs(5);

/// Progress reaches the pod's status at most this often.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// Why the image is not here: the waiting reason and the detail.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ImageFailure {
    /// `InvalidImageName`, `ErrImageNeverPull` or `ErrImagePull`.
    pub reason: &'static str,
    /// For people: the registry's reason on a failed pull.
    pub message: String,
}

/// Makes sure `c`'s image is in the store as its pull policy asks, pulling
/// with `creds` and the node's registries.yaml; `report` gets the progress.
pub async fn ensure(rt: &Runtime, c: &Container, creds: &Credentials, report: impl Fn(String)) -> Result<(), ImageFailure> {
    let r = ImageRef::parse(&c.image).map_err(|e| ImageFailure {
        reason: "InvalidImageName",
        message: e.to_string(),
    })?;
    let local = rt.images().resolve(&c.image).ok();
    let failed = |message: String| ImageFailure {
        reason: "ErrImagePull",
        message,
    };
    match decide(&r, effective(&r, c.image_pull_policy), local.is_some()) {
        PullDecision::UseLocal => return Ok(()),
        PullDecision::NeverPullMissing => {
            return Err(ImageFailure {
                reason: "ErrImageNeverPull",
                message: format!("Container image \"{}\" is not present with pull policy of Never", c.image),
            })
        }
        PullDecision::LocalMissing => {
            return Err(failed(format!(
                "image {r} is not on this node, and localhost/ images are never pulled from a registry: import it with `shoal image import FILE`"
            )))
        }
        PullDecision::Pull | PullDecision::Refresh => {}
    }
    let registries = Registries::load(&rt.paths().data.join("registries.yaml")).map_err(|e| failed(e.to_string()))?;
    if let Some(local) = local {
        // Always, with a copy here: pull only if the registry has another.
        match tokio::time::timeout(REFRESH_WAIT, current_digest(&registries, &c.image, creds)).await {
            Ok(Ok(d)) if d == local.digest => return Ok(()),
            Ok(Ok(d)) => info!(image = %c.image, here = %local.digest, registry = %d, "the registry has another image; pulling"),
            Ok(Err(e)) if e.is_unreachable() => {
                warn!(image = %c.image, error = %e, "no registry answers; starting with the copy on this node");
                return Ok(());
            }
            Ok(Err(e)) => return Err(failed(e.to_string())),
            Err(_) => {
                warn!(image = %c.image, "no registry answered in {}s; starting with the copy on this node", REFRESH_WAIT.as_secs());
                return Ok(());
            }
        }
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let progress = Progress::to(tx);
    let pulling = pull(rt.images(), &registries, &c.image, creds, &progress);
    tokio::pin!(pulling);
    let mut tally = Tally::default();
    let mut shown: Option<Instant> = None;
    report(format!("Pulling image \"{}\"", c.image));
    let result = loop {
        tokio::select! {
            result = &mut pulling => break result,
            Some(e) = rx.recv() => {
                tally.add(&e);
                if shown.is_none_or(|t| t.elapsed() >= PROGRESS_EVERY) {
                    shown = Some(Instant::now());
                    report(format!("Pulling image \"{}\": {}", c.image, tally.summary()));
                }
            }
        }
    };
    result.map(|_| ()).map_err(|e| failed(e.to_string()))
}
