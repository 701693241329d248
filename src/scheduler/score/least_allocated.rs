//! Least allocated (Kubernetes' NodeResourcesFit score, LeastAllocated
//! strategy): the mean over cpu and memory of the share left free once the
//! pod is placed, counting requests with Kubernetes' non-zero defaults.

use super::MAX_SCORE;
use crate::scheduler::pipeline::NodeView;
use crate::scheduler::Requests;

/// 0–100: `((allocatable − requested) × 100 / allocatable)`, averaged over cpu and memory.
pub(crate) fn score(pod_non_zero: Requests, node: &NodeView<'_>) -> u64 {
    let used = node.used_non_zero.plus(pod_non_zero);
    let cpu = least_requested(used.cpu_milli, node.info.allocatable_cpu_milli);
    let memory = least_requested(used.memory_bytes, node.info.allocatable_memory_bytes);
    (cpu + memory) / 2
}

/// Kubernetes' `leastRequestedScore`; 0 when nothing is allocatable or it is over-committed.
fn least_requested(requested: u64, capacity: u64) -> u64 {
    if capacity == 0 || requested > capacity {
        return 0;
    }
    let free = capacity - requested;
    match free.checked_mul(MAX_SCORE) {
        Some(scaled) => scaled / capacity,
        None => (u128::from(free) * u128::from(MAX_SCORE) / u128::from(capacity)) as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::tests::node;

    #[test]
    fn score_is_the_mean_free_share_after_placing() {
        let mut n = node("a");
        (n.allocatable_cpu_milli, n.allocatable_memory_bytes) = (4000, 1000);
        let mut view = NodeView::new(&n, None);
        view.used_non_zero = Requests {
            cpu_milli: 1000,
            memory_bytes: 500,
        };
        let pod = Requests {
            cpu_milli: 1000,
            memory_bytes: 250,
        };
        // cpu: (4000 − 2000) × 100 / 4000 = 50; memory: (1000 − 750) × 100 / 1000 = 25.
        assert_eq!(score(pod, &view), 37);
    }

    #[test]
    fn edge_cases_score_zero_without_overflow() {
        assert_eq!(least_requested(1, 0), 0);
        assert_eq!(least_requested(11, 10), 0);
        assert_eq!(least_requested(0, u64::MAX), 100);
        assert_eq!(least_requested(u64::MAX / 2, u64::MAX), 50);
    }
}
