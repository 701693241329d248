//! Shutdown is a type every task takes: a cheap clone that resolves once the
//! daemon is told to stop.

use tokio::sync::watch;

/// Fires shutdown for every [`Shutdown`] cloned from its pair.
pub struct Trigger(watch::Sender<bool>);

/// Resolves when shutdown fires.
#[derive(Clone)]
pub struct Shutdown(watch::Receiver<bool>);

/// A linked trigger and signal.
pub fn channel() -> (Trigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (Trigger(tx), Shutdown(rx))
}

impl Trigger {
    /// Tells every task to stop.
    pub fn fire(&self) {
        let _ = self.0.send(true);
    }
}

impl Shutdown {
    /// Waits for shutdown (at once if it already fired or the trigger is gone).
    pub async fn wait(&mut self) {
        let _ = self.0.wait_for(|v| *v).await;
    }
}
