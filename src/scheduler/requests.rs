//! A pod's effective requests, by Kubernetes' rules.

use super::Requests;
use crate::api::manifest::{Container, PodSpec};
use crate::api::quantity::Quantity;

/// Kubernetes' `DefaultMilliCPURequest`: what scoring assumes for a pod that requests no CPU.
const DEFAULT_CPU_MILLI: u64 = 100;
/// Kubernetes' `DefaultMemoryRequest` (200 MiB), the same for memory.
const DEFAULT_MEMORY_BYTES: u64 = 200 << 20;

/// The pod's effective requests: per resource, the sum over app containers
/// or the largest init container, whichever is greater. A container with a
/// limit and no request requests its limit (Kubernetes' defaulting). A value
/// that does not parse counts as 0; `validate_pod` refuses it anyway.
pub fn requests_of(spec: &PodSpec) -> Requests {
    let apps = spec.containers.iter().map(container).fold(Requests::default(), Requests::plus);
    spec.init_containers.iter().map(container).fold(apps, |acc, r| Requests {
        cpu_milli: acc.cpu_milli.max(r.cpu_milli),
        memory_bytes: acc.memory_bytes.max(r.memory_bytes),
    })
}

fn container(c: &Container) -> Requests {
    Requests {
        cpu_milli: quantity(c, "cpu", Quantity::milli),
        memory_bytes: quantity(c, "memory", Quantity::whole_ceil),
    }
}

fn quantity(c: &Container, resource: &str, unit: fn(Quantity) -> i64) -> u64 {
    let r = &c.resources;
    let text = r.requests.get(resource).or_else(|| r.limits.get(resource));
    text.and_then(|q| Quantity::parse(q).ok()).map_or(0, |q| unit(q).max(0) as u64)
}

impl Requests {
    /// Both resources added, saturating.
    pub(crate) fn plus(self, other: Requests) -> Requests {
        Requests {
            cpu_milli: self.cpu_milli.saturating_add(other.cpu_milli),
            memory_bytes: self.memory_bytes.saturating_add(other.memory_bytes),
        }
    }

    /// What scoring counts for a pod (Kubernetes' `GetNonzeroRequests`): a
    /// resource requested at 0 counts as 100m CPU or 200 MiB, so pods without
    /// requests still spread. Kubernetes applies this per container; a placed
    /// pod is known here only by its totals, so it is applied per pod.
    pub(crate) fn non_zero(self) -> Requests {
        Requests {
            cpu_milli: if self.cpu_milli == 0 { DEFAULT_CPU_MILLI } else { self.cpu_milli },
            memory_bytes: if self.memory_bytes == 0 {
                DEFAULT_MEMORY_BYTES
            } else {
                self.memory_bytes
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::manifest::Resources;

    fn c(requests: &[(&str, &str)], limits: &[(&str, &str)]) -> Container {
        let map = |kv: &[(&str, &str)]| kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Container {
            name: "c".into(),
            resources: Resources {
                requests: map(requests),
                limits: map(limits),
            },
            ..Default::default()
        }
    }

    fn req(cpu_milli: u64, memory_bytes: u64) -> Requests {
        Requests { cpu_milli, memory_bytes }
    }

    #[test]
    fn app_containers_add_up() {
        let spec = PodSpec {
            containers: vec![c(&[("cpu", "250m"), ("memory", "64Mi")], &[]), c(&[("cpu", "0.5")], &[])],
            ..Default::default()
        };
        assert_eq!(requests_of(&spec), req(750, 64 << 20));
    }

    #[test]
    fn largest_init_container_wins_per_resource() {
        let spec = PodSpec {
            init_containers: vec![c(&[("cpu", "2")], &[]), c(&[("memory", "1Gi")], &[])],
            containers: vec![c(&[("cpu", "100m"), ("memory", "2Gi")], &[]), c(&[("cpu", "100m")], &[])],
            ..Default::default()
        };
        assert_eq!(requests_of(&spec), req(2000, 2 << 30));
    }

    #[test]
    fn a_limit_without_a_request_is_the_request() {
        let spec = PodSpec {
            containers: vec![c(&[("memory", "1Mi")], &[("cpu", "300m"), ("memory", "8Mi")])],
            ..Default::default()
        };
        assert_eq!(requests_of(&spec), req(300, 1 << 20));
    }

    #[test]
    fn no_requests_is_zero_but_scores_as_kubernetes_defaults() {
        let spec = PodSpec {
            containers: vec![c(&[], &[])],
            ..Default::default()
        };
        assert_eq!(requests_of(&spec), Requests::default());
        assert_eq!(requests_of(&spec).non_zero(), req(100, 200 << 20));
        assert_eq!(req(5, 0).non_zero(), req(5, 200 << 20));
    }
}
