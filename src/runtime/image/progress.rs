//! What a pull has done so far: events from the downloads, and the tally a
//! pod's status or the CLI's bars are drawn from.

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

/// One step of a pull.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PullEvent {
    /// The layers the image has, bottom first: digest and size.
    Layers(Vec<(String, u64)>),
    /// How many bytes of a layer are here.
    Bytes {
        /// The layer.
        digest: String,
        /// Bytes here so far.
        done: u64,
    },
}

/// Where a pull sends its events; the default sends none.
#[derive(Debug, Clone, Default)]
pub struct Progress(Option<mpsc::UnboundedSender<PullEvent>>);

impl Progress {
    /// Events go to `tx`.
    pub fn to(tx: mpsc::UnboundedSender<PullEvent>) -> Progress {
        Progress(Some(tx))
    }

    pub(super) fn layers(&self, layers: Vec<(String, u64)>) {
        self.send(PullEvent::Layers(layers));
    }

    pub(super) fn bytes(&self, digest: &str, done: u64) {
        self.send(PullEvent::Bytes {
            digest: digest.into(),
            done,
        });
    }

    fn send(&self, e: PullEvent) {
        if let Some(tx) = &self.0 {
            let _ = tx.send(e);
        }
    }
}

/// The sum of a pull's events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// Layers: digest, size, bytes here.
    pub layers: Vec<(String, u64, u64)>,
}

impl Tally {
    /// Counts one event in.
    pub fn add(&mut self, e: &PullEvent) {
        match e {
            PullEvent::Layers(l) => self.layers = l.iter().map(|(d, s)| (d.clone(), *s, 0)).collect(),
            PullEvent::Bytes { digest, done } => {
                for l in self.layers.iter_mut().filter(|l| &l.0 == digest) {
                    l.2 = *done;
                }
            }
        }
    }

    /// Bytes here and in all.
    pub fn bytes(&self) -> (u64, u64) {
        self.layers.iter().fold((0, 0), |(d, t), l| (d + l.2.min(l.1), t + l.1))
    }

    /// Layers complete and in all.
    pub fn layer_count(&self) -> (usize, usize) {
        (self.layers.iter().filter(|l| l.1 > 0 && l.2 >= l.1).count(), self.layers.len())
    }

    /// `12.3 of 48.1 MB, 2 of 5 layers`.
    pub fn summary(&self) -> String {
        let (done, total) = self.bytes();
        let (ld, lt) = self.layer_count();
        if lt == 0 {
            return "fetching the manifest".into();
        }
        format!("{} of {} MB, {ld} of {lt} layers", mb(done), mb(total))
    }
}

fn mb(b: u64) -> String {
    format!("{:.1}", b as f64 / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tally_sums_layers_and_counts_the_complete_ones() {
        let mut t = Tally::default();
        assert_eq!(t.summary(), "fetching the manifest");
        t.add(&PullEvent::Layers(vec![("a".into(), 2_000_000), ("b".into(), 1_000_000)]));
        t.add(&PullEvent::Bytes {
            digest: "a".into(),
            done: 2_000_000,
        });
        t.add(&PullEvent::Bytes {
            digest: "b".into(),
            done: 500_000,
        });
        assert_eq!(t.bytes(), (2_500_000, 3_000_000));
        assert_eq!(t.layer_count(), (1, 2));
        assert_eq!(t.summary(), "2.5 of 3.0 MB, 1 of 2 layers");
    }
}
