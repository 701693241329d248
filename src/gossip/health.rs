//! Lifeguard's local health multiplier: a node that is itself slow (its
//! timers fire late, it had to refute suspicion of itself, several of its
//! probes failed at once) stretches its own probe interval and probe
//! timeout, so it raises fewer suspicions against healthy members.

/// Highest multiplier minus one (Lifeguard uses 8).
pub const MAX_SCORE: u32 = 8;
/// A timer this late means the node itself is starved.
pub const LATE_MS: u64 = 100;

/// The local health score, 0 (healthy) to [`MAX_SCORE`].
#[derive(Debug, Clone, Default)]
pub struct LocalHealth {
    score: u32,
    recent_failures: Vec<u64>,
}

impl LocalHealth {
    /// The current score.
    pub fn score(&self) -> u32 {
        self.score
    }

    /// Scales a timeout by the multiplier `score + 1`.
    pub fn scale(&self, ms: u64) -> u64 {
        ms * u64::from(self.score + 1)
    }

    fn worse(&mut self) {
        self.score = (self.score + 1).min(MAX_SCORE);
    }

    /// A timer fired `late_ms` after its due time.
    pub fn timer_fired(&mut self, late_ms: u64) {
        if late_ms >= LATE_MS {
            self.worse();
        }
    }

    /// Someone suspected us and we had to refute it.
    pub fn refuted(&mut self) {
        self.worse();
    }

    /// A probe got no answer, directly or indirectly. One failure is most
    /// likely the target's fault; two different members in a short window
    /// point at us.
    pub fn probe_failed(&mut self, now_ms: u64, window_ms: u64) {
        self.recent_failures.retain(|t| now_ms.saturating_sub(*t) <= window_ms);
        self.recent_failures.push(now_ms);
        if self.recent_failures.len() >= 2 {
            self.worse();
        }
    }

    /// A probe period passed without trouble.
    pub fn probe_period_ok(&mut self) {
        self.score = self.score.saturating_sub(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn late_timers_raise_the_score_and_quiet_periods_lower_it() {
        let mut h = LocalHealth::default();
        h.timer_fired(10);
        assert_eq!(h.score(), 0);
        for _ in 0..20 {
            h.timer_fired(500);
        }
        assert_eq!(h.score(), MAX_SCORE);
        assert_eq!(h.scale(100), 900);
        for _ in 0..20 {
            h.probe_period_ok();
        }
        assert_eq!(h.score(), 0);
    }

    #[test]
    fn one_failed_probe_is_the_targets_fault_two_are_ours() {
        let mut h = LocalHealth::default();
        h.probe_failed(1_000, 2_000);
        assert_eq!(h.score(), 0);
        h.probe_failed(10_000, 2_000);
        assert_eq!(h.score(), 0, "far apart: still the targets' fault");
        h.probe_failed(10_500, 2_000);
        assert_eq!(h.score(), 1);
    }
}
