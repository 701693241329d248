//! Which addresses stand behind each Service, worked out on every node
//! from its replica, as Kubernetes' endpoint controller would write them:
//! for a Service with a selector, the bound pods of its namespace whose
//! labels match and that have an address, ready when their Ready condition
//! holds and their node is not Down (or always, with
//! `publishNotReadyAddresses`); terminating pods are left out. A Service
//! without a selector takes the hand-written Endpoints of its name. Each
//! Service port's target is resolved per pod (`targetPort` by number, by
//! the name of a container port, or the Service port itself).
//!
//! Nothing here is written to the replicated state: readiness already is,
//! and every node derives the same answer, which keeps Raft quiet when
//! pods come and go.

use super::nft::model::{Proto, ServicePort as ProxyPort};
use crate::api::manifest::{EndpointPort, IntOrString, Manual};
use crate::state::service::{EndpointsObject, ServiceObject};
use crate::state::PodObject;
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

/// One address behind a Service.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Backend {
    /// Its address.
    pub ip: Ipv4Addr,
    /// Balanced over (Ready, or the Service publishes not-ready ones).
    pub ready: bool,
    /// Per Service port (same order), the port it serves on; `None` when a
    /// named target port is not one of the pod's.
    pub ports: Vec<Option<u16>>,
    /// The pod: namespace, name, uid (none for hand-written addresses).
    pub pod: Option<(String, String, String)>,
    /// The node it runs on.
    pub node: Option<String>,
    /// Its host name under a headless Service (`<hostname>.<svc>.<ns>.svc…`):
    /// the pod's `hostname` when its `subdomain` is the Service's name, or
    /// the hand-written one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
}

/// A Service with its backends.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    /// The Service.
    pub service: ServiceObject,
    /// Its backends, by address.
    pub backends: Vec<Backend>,
}

/// Every Service's backends.
pub fn resolve(services: &[ServiceObject], manual: &[EndpointsObject], pods: &[PodObject], down: &BTreeSet<String>) -> Vec<Resolved> {
    let mut by_service: BTreeMap<(String, String), Vec<&EndpointsObject>> = BTreeMap::new();
    for e in manual {
        by_service.entry(e.manual.service()).or_default().push(e);
    }
    services
        .iter()
        .map(|s| {
            let spec = &s.service.spec;
            let backends = if spec.service_type() == "ExternalName" {
                Vec::new()
            } else if spec.selector.is_empty() {
                by_service
                    .get(&s.key())
                    .into_iter()
                    .flatten()
                    .flat_map(|e| from_manual(s, &e.manual))
                    .collect()
            } else {
                from_pods(s, pods, down)
            };
            let backends = merge(backends);
            Resolved {
                service: s.clone(),
                backends,
            }
        })
        .collect()
}

fn from_pods(s: &ServiceObject, pods: &[PodObject], down: &BTreeSet<String>) -> Vec<Backend> {
    let ns = s.service.metadata.namespace();
    let spec = &s.service.spec;
    let publish = spec.publish_not_ready_addresses == Some(true);
    pods.iter()
        .filter(|p| p.pod.metadata.namespace() == ns && p.deleting_ms.is_none() && !p.status.terminating)
        // A finished pod is never an endpoint, published or not.
        .filter(|p| {
            !matches!(
                p.status.phase,
                crate::api::status::Phase::Succeeded | crate::api::status::Phase::Failed
            )
        })
        .filter(|p| spec.selector.iter().all(|(k, v)| p.pod.metadata.labels.get(k) == Some(v)))
        .filter_map(|p| {
            let ip = p.status.pod_ip?;
            let node = p.node.clone()?;
            let ready = publish || (crate::controllers::pods::is_ready(p) && !down.contains(&node));
            let ports = spec.ports.iter().map(|sp| target(sp, p)).collect();
            let ps = &p.pod.spec;
            let hostname = ps
                .hostname
                .clone()
                .filter(|_| ps.subdomain.as_deref() == Some(s.service.metadata.name.as_str()));
            Some(Backend {
                ip,
                ready,
                ports,
                pod: Some((ns.to_string(), p.pod.metadata.name.clone(), p.uid.clone())),
                node: Some(node),
                hostname,
            })
        })
        .collect()
}

/// One backend per address, sorted: an address listed twice (two subsets
/// or slices, one per port) serves every port either lists, and is ready
/// if either says so.
fn merge(mut all: Vec<Backend>) -> Vec<Backend> {
    all.sort_by_key(|b| b.ip);
    let mut out: Vec<Backend> = Vec::with_capacity(all.len());
    for b in all {
        match out.last_mut() {
            Some(last) if last.ip == b.ip => {
                for (mine, theirs) in last.ports.iter_mut().zip(&b.ports) {
                    *mine = mine.or(*theirs);
                }
                last.ready |= b.ready;
                last.pod = last.pod.take().or(b.pod);
                last.node = last.node.take().or(b.node);
                last.hostname = last.hostname.take().or(b.hostname);
            }
            _ => out.push(b),
        }
    }
    out
}

/// The port pod `p` serves Service port `sp` on.
fn target(sp: &crate::api::manifest::ServicePort, p: &PodObject) -> Option<u16> {
    match &sp.target_port {
        None => u16::try_from(sp.port).ok(),
        Some(IntOrString::Int(n)) => u16::try_from(*n).ok(),
        Some(IntOrString::String(name)) => p
            .pod
            .spec
            .containers
            .iter()
            .flat_map(|c| c.ports.iter())
            .find(|cp| cp.name.as_deref() == Some(name) && cp.protocol.as_deref().unwrap_or("TCP") == sp.protocol())
            .and_then(|cp| u16::try_from(cp.container_port).ok()),
    }
}

/// Per Service port, the port of `ports` it maps to: by name, or the only
/// one when both sides have one.
fn match_ports(spec: &crate::api::manifest::ServiceSpec, ports: &[EndpointPort]) -> Vec<Option<u16>> {
    spec.ports
        .iter()
        .map(|sp| {
            ports
                .iter()
                .find(|ep| {
                    (ep.name == sp.name || ports.len() == 1 && spec.ports.len() == 1)
                        && ep.protocol.as_deref().unwrap_or("TCP") == sp.protocol()
                })
                .and_then(|ep| u16::try_from(ep.port).ok())
        })
        .collect()
}

fn from_manual(s: &ServiceObject, m: &Manual) -> Vec<Backend> {
    let spec = &s.service.spec;
    let mut out = Vec::new();
    let mut push = |ip: &str, ready: bool, ports: &Vec<Option<u16>>, node: &Option<String>, hostname: &Option<String>| {
        if let Ok(ip) = ip.parse() {
            out.push(Backend {
                ip,
                ready,
                ports: ports.clone(),
                pod: None,
                node: node.clone(),
                hostname: hostname.clone(),
            });
        }
    };
    match m {
        Manual::Endpoints(e) => {
            for subset in &e.subsets {
                let ports = match_ports(spec, &subset.ports);
                for (ready, addrs) in [(true, &subset.addresses), (false, &subset.not_ready_addresses)] {
                    for a in addrs {
                        push(&a.ip, ready, &ports, &a.node_name, &a.hostname);
                    }
                }
            }
        }
        Manual::EndpointSlice(e) => {
            let ports = match_ports(spec, &e.ports);
            for ep in &e.endpoints {
                for a in &ep.addresses {
                    push(a, ep.ready(), &ports, &ep.node_name, &ep.hostname);
                }
            }
        }
    }
    out
}

/// What the node's nftables table balances: one entry per port of every
/// Service with a virtual IP, over its ready backends.
pub fn proxy_ports(resolved: &[Resolved]) -> Vec<ProxyPort> {
    let mut out = Vec::new();
    for r in resolved {
        let Some(vip) = r.service.cluster_ip() else { continue };
        let (ns, name) = r.service.key();
        let spec = &r.service.service.spec;
        for (i, sp) in spec.ports.iter().enumerate() {
            let (Ok(port), proto) = (u16::try_from(sp.port), sp.protocol()) else {
                continue;
            };
            out.push(ProxyPort {
                service: format!("{ns}/{name}"),
                port_name: sp.name.clone().unwrap_or_else(|| port.to_string()),
                proto: if proto == "UDP" { Proto::Udp } else { Proto::Tcp },
                cluster_ip: Some(vip),
                external_ips: spec.external_ips.iter().filter_map(|i| i.parse().ok()).collect(),
                port,
                node_port: sp.node_port.and_then(|n| u16::try_from(n).ok()),
                affinity_secs: spec.affinity_secs(),
                endpoints: r
                    .backends
                    .iter()
                    .filter(|b| b.ready)
                    .filter_map(|b| Some((b.ip, b.ports.get(i).copied().flatten()?)))
                    .collect(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::manifest::{Service, ServicePort};
    use crate::api::status::{ContainerState, ContainerStatus, Phase};

    fn svc(name: &str, selector: &[(&str, &str)], ports: Vec<ServicePort>) -> ServiceObject {
        let yaml = format!("apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec: {{clusterIP: 10.43.0.5}}\n");
        let mut service: Service = serde_yaml_ng::from_str(&yaml).unwrap();
        service.spec.selector = selector.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        service.spec.ports = ports;
        ServiceObject {
            service,
            uid: "u".into(),
            created_ms: 0,
        }
    }

    fn pod(name: &str, app: &str, ip: &str, node: &str, ready: bool) -> PodObject {
        let yaml = format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, labels: {{app: {app}}}}}\nspec:\n  containers:\n  - name: c\n    image: busybox\n    ports: [{{name: web, containerPort: 8080}}]\n"
        );
        let mut p = PodObject {
            pod: serde_yaml_ng::from_str(&yaml).unwrap(),
            uid: format!("uid-{name}"),
            created_ms: 0,
            node: Some(node.into()),
            status: Default::default(),
            deleting_ms: None,
            unschedulable: None,
        };
        p.status.pod_ip = Some(ip.parse().unwrap());
        p.status.phase = Phase::Running;
        p.status.container_statuses = vec![ContainerStatus {
            name: "c".into(),
            image: "busybox".into(),
            state: ContainerState::Running { started_at: 1 },
            last_state: None,
            restart_count: 0,
            ready,
            started: Some(true),
            pid: None,
        }];
        p
    }

    fn port(name: Option<&str>, port: i64, target: Option<IntOrString>) -> ServicePort {
        ServicePort {
            name: name.map(str::to_string),
            port,
            target_port: target,
            ..Default::default()
        }
    }

    #[test]
    fn ready_matching_pods_on_live_nodes_are_balanced_over_by_their_own_port() {
        let s = svc(
            "web",
            &[("app", "web")],
            vec![
                port(Some("http"), 80, Some(IntOrString::String("web".into()))),
                port(Some("alt"), 81, None),
            ],
        );
        let pods = [
            pod("a", "web", "10.42.0.2", "n1", true),
            pod("b", "web", "10.42.1.2", "n2", false),
            pod("c", "web", "10.42.2.2", "n3", true),
            pod("d", "db", "10.42.0.3", "n1", true),
        ];
        let down = BTreeSet::from(["n3".to_string()]);
        let r = resolve(&[s], &[], &pods, &down);
        let b = &r[0].backends;
        assert_eq!(b.len(), 3, "{b:?}");
        assert_eq!(
            b.iter().filter(|b| b.ready).map(|b| b.ip.to_string()).collect::<Vec<_>>(),
            ["10.42.0.2"]
        );
        let ports = proxy_ports(&r);
        assert_eq!(ports.len(), 2);
        assert_eq!(ports[0].endpoints, vec![("10.42.0.2".parse().unwrap(), 8080)]);
        assert_eq!(ports[1].endpoints, vec![("10.42.0.2".parse().unwrap(), 81)]);
    }

    #[test]
    fn a_service_without_selector_takes_its_hand_written_endpoints() {
        let s = svc("ext", &[], vec![port(None, 80, Some(IntOrString::Int(9376)))]);
        let e: crate::api::manifest::Endpoints = serde_yaml_ng::from_str(
            "apiVersion: v1\nkind: Endpoints\nmetadata: {name: ext}\nsubsets:\n- addresses: [{ip: 192.0.2.42}]\n  ports: [{port: 9376}]\n",
        )
        .unwrap();
        let r = resolve(
            &[s],
            &[EndpointsObject {
                manual: Manual::Endpoints(e),
                created_ms: 0,
            }],
            &[],
            &BTreeSet::new(),
        );
        assert_eq!(proxy_ports(&r)[0].endpoints, vec![("192.0.2.42".parse().unwrap(), 9376)]);
    }

    #[test]
    fn an_address_in_two_slices_serves_both_ports_and_a_finished_pod_none() {
        let s = svc("two", &[], vec![port(Some("http"), 80, None), port(Some("https"), 443, None)]);
        let slice = |name: &str, port_name: &str, p: i64| -> crate::api::manifest::EndpointSlice {
            serde_yaml_ng::from_str(&format!(
                "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: {name}, labels: {{kubernetes.io/service-name: two}}}}\naddressType: IPv4\nports: [{{name: {port_name}, port: {p}}}]\nendpoints: [{{addresses: [10.4.5.6]}}]\n"
            ))
            .unwrap()
        };
        let manual = [
            EndpointsObject {
                manual: Manual::EndpointSlice(slice("a", "http", 8080)),
                created_ms: 0,
            },
            EndpointsObject {
                manual: Manual::EndpointSlice(slice("b", "https", 8443)),
                created_ms: 0,
            },
        ];
        let r = resolve(&[s], &manual, &[], &BTreeSet::new());
        assert_eq!(r[0].backends.len(), 1);
        assert_eq!(r[0].backends[0].ports, vec![Some(8080), Some(8443)]);

        let mut published = svc("web", &[("app", "web")], vec![port(None, 80, None)]);
        published.service.spec.publish_not_ready_addresses = Some(true);
        let mut done = pod("done", "web", "10.42.0.9", "n1", false);
        done.status.phase = Phase::Succeeded;
        let r = resolve(
            &[published],
            &[],
            &[done, pod("up", "web", "10.42.0.8", "n1", false)],
            &BTreeSet::new(),
        );
        let ips: Vec<String> = r[0].backends.iter().map(|b| b.ip.to_string()).collect();
        assert_eq!(ips, ["10.42.0.8"]);
    }
}
