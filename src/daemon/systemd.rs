//! systemd notifications: READY once serving, WATCHDOG while alive, STOPPING
//! on the way out. Without `NOTIFY_SOCKET` every call is a no-op.

use super::shutdown::Shutdown;
use sd_notify::NotifyState;

/// Tells systemd the agent serves.
pub fn ready() {
    let _ = sd_notify::notify(false, &[NotifyState::Ready]);
}

/// Tells systemd the agent is stopping.
pub fn stopping() {
    let _ = sd_notify::notify(false, &[NotifyState::Stopping]);
}

/// Pings the watchdog at half its interval until shutdown.
pub async fn watchdog(mut shutdown: Shutdown) {
    let mut usec = 0;
    if !sd_notify::watchdog_enabled(false, &mut usec) || usec == 0 {
        return;
    }
    let mut tick = tokio::time::interval(std::time::Duration::from_micros(usec / 2));
    loop {
        tokio::select! {
            biased;
            _ = shutdown.wait() => break,
            _ = tick.tick() => {
                let _ = sd_notify::notify(false, &[NotifyState::Watchdog]);
            }
        }
    }
}
