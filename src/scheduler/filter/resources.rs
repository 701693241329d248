//! Resource fit (Kubernetes' NodeResourcesFit filter): a pod's cpu and
//! memory requests must fit in what the node's allocatable leaves after the
//! pods placed on it. A resource requested at 0 always fits, as in Kubernetes,
//! even on a node already over-committed.

use super::Failure;
use crate::scheduler::pipeline::NodeView;
use crate::scheduler::Requests;

/// Fails naming every resource that does not fit.
pub(crate) fn check<'a>(requests: Requests, node: &NodeView<'_>) -> Result<(), Failure<'a>> {
    let fits = |want: u64, allocatable: u64, used: u64| want == 0 || want <= allocatable.saturating_sub(used);
    let info = node.info;
    let cpu = !fits(requests.cpu_milli, info.allocatable_cpu_milli, node.used.cpu_milli);
    let memory = !fits(requests.memory_bytes, info.allocatable_memory_bytes, node.used.memory_bytes);
    if cpu || memory {
        Err(Failure::Resources { cpu, memory })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::tests::node;

    fn req(cpu_milli: u64, memory_bytes: u64) -> Requests {
        Requests { cpu_milli, memory_bytes }
    }

    #[test]
    fn requests_must_fit_what_is_left() {
        let mut n = node("a");
        (n.allocatable_cpu_milli, n.allocatable_memory_bytes) = (1000, 1000);
        let mut view = NodeView::new(&n, None);
        view.used = req(600, 300);
        assert_eq!(check(req(400, 700), &view), Ok(()));
        assert_eq!(check(req(401, 700), &view), Err(Failure::Resources { cpu: true, memory: false }));
        assert_eq!(check(req(400, 701), &view), Err(Failure::Resources { cpu: false, memory: true }));
        assert_eq!(check(req(900, 900), &view), Err(Failure::Resources { cpu: true, memory: true }));
    }

    #[test]
    fn zero_requests_fit_even_an_overcommitted_node() {
        let mut n = node("a");
        (n.allocatable_cpu_milli, n.allocatable_memory_bytes) = (0, 100);
        let mut view = NodeView::new(&n, None);
        view.used = req(5, 200);
        assert_eq!(check(req(0, 0), &view), Ok(()));
        assert_eq!(check(req(1, 0), &view), Err(Failure::Resources { cpu: true, memory: false }));
    }
}
