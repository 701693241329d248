//! Image garbage collection, as the kubelet's: when the disk that holds the
//! data dir is fuller than the high-water mark, images no pod on the node
//! uses are removed, least recently used first, until it is at or below the
//! low-water mark (Kubernetes' defaults: 85 % and 80 %). An image is used
//! when it was pulled, imported or started from (the mtime of its manifest
//! blob records that). The choice is pure (`plan`); `collect` measures the
//! disk, removes one image at a time and measures again.

use super::store::{ImageError, ImageStore};
use std::path::Path;

/// The water marks, in percent of the disk.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// Start above this.
    pub high: f64,
    /// Stop at or below this.
    pub low: f64,
}

impl Default for Thresholds {
    /// The kubelet's `--image-gc-high-threshold` and `--image-gc-low-threshold`.
    fn default() -> Thresholds {
        Thresholds { high: 85.0, low: 80.0 }
    }
}

/// An image as GC sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// Its reference.
    pub reference: String,
    /// Last used, Unix ms.
    pub last_used_ms: u64,
    /// A pod on the node uses it.
    pub in_use: bool,
}

/// The images to remove, in order, if the disk is `used_percent` full: the
/// unused ones, least recently used first; none at or below the high mark.
pub fn plan(used_percent: f64, t: Thresholds, images: &[Candidate]) -> Vec<String> {
    if used_percent <= t.high {
        return Vec::new();
    }
    let mut unused: Vec<&Candidate> = images.iter().filter(|c| !c.in_use).collect();
    unused.sort_by(|a, b| (a.last_used_ms, &a.reference).cmp(&(b.last_used_ms, &b.reference)));
    unused.into_iter().map(|c| c.reference.clone()).collect()
}

/// How full the disk holding `path` is, in percent, as `df` shows it:
/// used over used plus what is available to users (blocks reserved for
/// root count as neither).
pub fn used_percent(path: &Path) -> std::io::Result<f64> {
    let s = nix::sys::statvfs::statvfs(path).map_err(std::io::Error::from)?;
    let used = s.blocks().saturating_sub(s.blocks_free()) as f64;
    let avail = s.blocks_available() as f64;
    if used + avail <= 0.0 {
        return Ok(0.0);
    }
    Ok(used / (used + avail) * 100.0)
}

/// Runs one collection: returns the references removed. `in_use` says
/// whether a pod on the node uses a reference.
pub fn collect(store: &ImageStore, t: Thresholds, in_use: impl Fn(&str) -> bool) -> Result<Vec<String>, ImageError> {
    let io = |source| ImageError::Io {
        path: store.root().to_path_buf(),
        source,
    };
    let used = used_percent(store.root()).map_err(io)?;
    let candidates: Vec<Candidate> = store
        .list()?
        .into_iter()
        .map(|i| Candidate {
            last_used_ms: store.last_used_ms(&i.digest),
            in_use: in_use(&i.reference),
            reference: i.reference,
        })
        .collect();
    let mut removed = Vec::new();
    for reference in plan(used, t, &candidates) {
        if used_percent(store.root()).map_err(io)? <= t.low {
            break;
        }
        // Asked again at removal: a pod may have started since.
        match store.remove(&reference, |r| in_use(r).then(|| "a pod".to_string())) {
            Ok(_) => removed.push(reference),
            Err(ImageError::InUse { .. } | ImageError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn c(r: &str, t: u64, in_use: bool) -> Candidate {
        Candidate {
            reference: r.into(),
            last_used_ms: t,
            in_use,
        }
    }

    #[test]
    fn nothing_below_the_high_mark_and_the_least_recently_used_first_above_it() {
        let t = Thresholds::default();
        let images = [c("new", 30, false), c("old", 10, false), c("running", 5, true), c("mid", 20, false)];
        assert!(plan(85.0, t, &images).is_empty());
        assert_eq!(plan(85.1, t, &images), ["old", "mid", "new"]);
    }

    proptest! {
        #[test]
        fn an_image_in_use_is_never_planned(
            used in 0.0f64..100.0,
            imgs in proptest::collection::vec((0u64..100, any::<bool>()), 0..20),
        ) {
            let images: Vec<Candidate> = imgs.iter().enumerate().map(|(i, (t, u))| c(&format!("i{i}"), *t, *u)).collect();
            let p = plan(used, Thresholds::default(), &images);
            for r in &p {
                prop_assert!(images.iter().any(|x| &x.reference == r && !x.in_use));
            }
            let times: Vec<u64> = p.iter().map(|r| images.iter().find(|x| &x.reference == r).unwrap().last_used_ms).collect();
            prop_assert!(times.windows(2).all(|w| w[0] <= w[1]), "oldest first");
            if used > 85.0 {
                prop_assert_eq!(p.len(), images.iter().filter(|x| !x.in_use).count());
            }
        }
    }
}
