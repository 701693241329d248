//! The cluster's names, as CoreDNS's `kubernetes` plugin answers them
//! (`pods insecure`), built by a pure function from the Services with their
//! endpoints and the pods:
//!
//! ```text
//! web.shop.svc.cluster.local            A     the ClusterIP; for a headless Service, every ready pod
//! _http._tcp.web.shop.svc.cluster.local SRV   0 100 80 web.shop.svc.cluster.local. (headless: one per pod)
//! db-0.db.shop.svc.cluster.local        A     a headless Service's pod, by hostname or 10-42-1-5
//! 10-42-1-5.shop.pod.cluster.local      A     10.42.1.5
//! 5.1.42.10.in-addr.arpa                PTR   the Service or pod name of the address
//! ```
//!
//! A name in `cluster.local` that is not here is NXDOMAIN; a name that is
//! only the parent of others (`shop.svc.cluster.local`) has no data; an
//! address in the cluster's ranges with no name is NXDOMAIN; anything else
//! is forwarded to the node's resolvers.

use super::CLUSTER_DOMAIN;
use crate::net::endpoints::Resolved;
use crate::state::PodObject;
use ipnet::Ipv4Net;
use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;

/// One record's data.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Data {
    /// An address.
    A(Ipv4Addr),
    /// An alias (`ExternalName`), as written in the Service.
    Cname(String),
    /// A port of a Service.
    Srv {
        /// Always 0.
        priority: u16,
        /// 100 shared over the targets.
        weight: u16,
        /// The port.
        port: u16,
        /// The name serving it (fully qualified, no final dot).
        target: String,
    },
    /// The name of an address (fully qualified, no final dot).
    Ptr(String),
}

/// What a question asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A.
    A,
    /// SRV.
    Srv,
    /// PTR.
    Ptr,
    /// CNAME.
    Cname,
    /// SOA.
    Soa,
    /// ANY.
    Any,
    /// Anything else (AAAA, TXT, MX...): no data in the cluster's names.
    Other,
}

/// The answer to one question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Not a cluster name: ask the node's resolvers.
    Forward,
    /// Records of the name asked, and records of their targets.
    Found {
        /// (owner, data), for the answer section.
        answers: Vec<(String, Data)>,
        /// (owner, data), for the additional section.
        additional: Vec<(String, Data)>,
    },
    /// The zone's apex was asked for its SOA.
    Soa,
    /// The name exists without records of that kind.
    NoData,
    /// No such name.
    NxDomain,
}

/// Every cluster name, and the reverse names of the cluster's ranges.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Zone {
    names: HashMap<String, Vec<Data>>,
    /// Names that are only parents of others (empty non-terminals).
    parents: HashSet<String>,
    ptr: HashMap<Ipv4Addr, String>,
    /// The pod and service ranges, whose reverse names are ours.
    ranges: Vec<Ipv4Net>,
    /// The cluster DNS address.
    dns_ip: Option<Ipv4Addr>,
}

/// `10.42.1.5` as a DNS label: `10-42-1-5`.
fn dashed(ip: Ipv4Addr) -> String {
    ip.octets().map(|o| o.to_string()).join("-")
}

impl Zone {
    /// The zone of `services` (with their backends) and `pods`, for a
    /// cluster whose pod and service ranges are `ranges`.
    pub fn build(services: &[Resolved], pods: &[PodObject], ranges: &[Ipv4Net]) -> Zone {
        let mut z = Zone {
            ranges: ranges.to_vec(),
            ..Zone::default()
        };
        for r in services {
            let (ns, name) = r.service.key();
            let spec = &r.service.service.spec;
            let fq = format!("{name}.{ns}.svc.{CLUSTER_DOMAIN}");
            z.parent_of(&fq);
            if spec.service_type() == "ExternalName" {
                if let Some(target) = &spec.external_name {
                    z.add(&fq, Data::Cname(target.trim_end_matches('.').to_string()));
                }
                continue;
            }
            let ready: Vec<_> = r.backends.iter().filter(|b| b.ready).collect();
            let vip = r.service.cluster_ip();
            if let Some(vip) = vip {
                z.add(&fq, Data::A(vip));
                z.ptr.entry(vip).or_insert_with(|| fq.clone());
            } else {
                for b in &ready {
                    let host = format!("{}.{fq}", b.hostname.clone().unwrap_or_else(|| dashed(b.ip)));
                    z.add(&fq, Data::A(b.ip));
                    z.add(&host, Data::A(b.ip));
                    z.ptr.entry(b.ip).or_insert(host);
                }
            }
            for (i, sp) in spec.ports.iter().enumerate() {
                let Some(port_name) = sp.name.as_deref().filter(|n| !n.is_empty()) else {
                    continue;
                };
                let srv = format!("_{port_name}._{}.{fq}", sp.protocol().to_ascii_lowercase());
                let targets: Vec<(u16, String)> = match vip {
                    Some(_) => u16::try_from(sp.port).ok().map(|p| (p, fq.clone())).into_iter().collect(),
                    None => ready
                        .iter()
                        .filter_map(|b| {
                            let port = b.ports.get(i).copied().flatten()?;
                            Some((port, format!("{}.{fq}", b.hostname.clone().unwrap_or_else(|| dashed(b.ip)))))
                        })
                        .collect(),
                };
                let weight = (100 / targets.len().max(1)) as u16;
                for (port, target) in targets {
                    let d = Data::Srv {
                        priority: 0,
                        weight,
                        port,
                        target,
                    };
                    z.add(&srv, d.clone());
                    z.add(&fq, d);
                }
            }
        }
        for p in pods {
            let Some(ip) = p.status.pod_ip else { continue };
            let name = format!("{}.{}.pod.{CLUSTER_DOMAIN}", dashed(ip), p.pod.metadata.namespace());
            z.parent_of(&name);
            z.ptr.entry(ip).or_insert(name);
        }
        z
    }

    /// The same zone, answered at the cluster DNS address `ip`.
    pub fn at(mut self, ip: Ipv4Addr) -> Zone {
        self.dns_ip = Some(ip);
        self
    }

    /// The cluster DNS address.
    pub fn dns_ip(&self) -> Option<Ipv4Addr> {
        self.dns_ip
    }

    fn add(&mut self, name: &str, d: Data) {
        self.parent_of(name);
        let v = self.names.entry(name.to_string()).or_default();
        if !v.contains(&d) {
            v.push(d);
        }
    }

    /// Marks every ancestor of `name` inside the cluster domain as existing.
    fn parent_of(&mut self, name: &str) {
        let mut rest = name;
        while let Some((_, parent)) = rest.split_once('.') {
            if !self.parents.insert(parent.to_string()) || parent == CLUSTER_DOMAIN {
                break;
            }
            rest = parent;
        }
        self.parents.insert(name.to_string());
    }

    /// The answer to `kind` questions about `name` (any case, final dot or not).
    pub fn lookup(&self, name: &str, kind: Kind) -> Answer {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if let Some(rev) = name.strip_suffix(".in-addr.arpa") {
            return self.reverse(rev, kind);
        }
        if name == CLUSTER_DOMAIN {
            return if matches!(kind, Kind::Soa | Kind::Any) {
                Answer::Soa
            } else {
                Answer::NoData
            };
        }
        if !name.ends_with(&format!(".{CLUSTER_DOMAIN}")) {
            return Answer::Forward;
        }
        let records = self.names.get(&name).map(Vec::as_slice).unwrap_or_default();
        let answers: Vec<(String, Data)> = records
            .iter()
            .filter(|d| {
                matches!(
                    (kind, d),
                    (Kind::Any, _) | (_, Data::Cname(_)) | (Kind::A, Data::A(_)) | (Kind::Srv, Data::Srv { .. })
                )
            })
            .map(|d| (name.clone(), d.clone()))
            .collect();
        if !answers.is_empty() {
            let additional = answers
                .iter()
                .filter_map(|(_, d)| match d {
                    Data::Srv { target, .. } => Some(target),
                    _ => None,
                })
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .flat_map(|t| {
                    self.names
                        .get(t)
                        .into_iter()
                        .flatten()
                        .filter(|d| matches!(d, Data::A(_)))
                        .map(|d| (t.clone(), d.clone()))
                })
                .collect();
            return Answer::Found { answers, additional };
        }
        if let Some(ip) = pod_address(&name) {
            return match kind {
                Kind::A | Kind::Any => Answer::Found {
                    answers: vec![(name, Data::A(ip))],
                    additional: vec![],
                },
                _ => Answer::NoData,
            };
        }
        if !records.is_empty() || self.parents.contains(&name) {
            Answer::NoData
        } else {
            Answer::NxDomain
        }
    }

    fn reverse(&self, rev: &str, kind: Kind) -> Answer {
        let octets: Vec<u8> = rev.split('.').rev().filter_map(|o| o.parse().ok()).collect();
        let Ok([a, b, c, d]) = <[u8; 4]>::try_from(octets) else {
            return Answer::Forward;
        };
        if rev.split('.').count() != 4 {
            return Answer::Forward;
        }
        let ip = Ipv4Addr::new(a, b, c, d);
        let owner = format!("{rev}.in-addr.arpa");
        match self.ptr.get(&ip) {
            Some(n) if matches!(kind, Kind::Ptr | Kind::Any) => Answer::Found {
                answers: vec![(owner, Data::Ptr(n.clone()))],
                additional: vec![],
            },
            Some(_) => Answer::NoData,
            None if self.ranges.iter().any(|r| r.contains(&ip)) => Answer::NxDomain,
            None => Answer::Forward,
        }
    }
}

/// `10-42-1-5.<ns>.pod.cluster.local` → 10.42.1.5 (any namespace, as
/// CoreDNS's `pods insecure`).
fn pod_address(name: &str) -> Option<Ipv4Addr> {
    let rest = name.strip_suffix(&format!(".pod.{CLUSTER_DOMAIN}"))?;
    let (label, ns) = rest.split_once('.')?;
    if ns.is_empty() || ns.contains('.') {
        return None;
    }
    let octets: Vec<u8> = label.split('-').map(str::parse).collect::<Result<_, _>>().ok()?;
    let [a, b, c, d] = <[u8; 4]>::try_from(octets).ok()?;
    Some(Ipv4Addr::new(a, b, c, d))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::endpoints::Backend;
    use crate::state::service::ServiceObject;
    use proptest::prelude::*;

    fn svc(yaml_spec: &str, ns: &str, name: &str, backends: &[(&str, bool, Option<&str>, Option<u16>)]) -> Resolved {
        let yaml = format!("apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {ns}}}\nspec: {yaml_spec}\n");
        Resolved {
            service: ServiceObject {
                service: serde_yaml_ng::from_str(&yaml).unwrap(),
                uid: "u".into(),
                created_ms: 0,
            },
            backends: backends
                .iter()
                .map(|(ip, ready, host, port)| Backend {
                    ip: ip.parse().unwrap(),
                    ready: *ready,
                    ports: vec![*port],
                    pod: None,
                    node: None,
                    hostname: host.map(str::to_string),
                })
                .collect(),
        }
    }

    fn zone() -> Zone {
        let services = [
            svc(
                "{clusterIP: 10.43.0.20, ports: [{name: http, port: 80, targetPort: 8080}]}",
                "shop",
                "web",
                &[("10.42.0.5", true, None, Some(8080))],
            ),
            svc(
                "{clusterIP: None, ports: [{name: pg, port: 5432}]}",
                "shop",
                "db",
                &[
                    ("10.42.1.7", true, Some("db-0"), Some(5432)),
                    ("10.42.2.9", true, None, Some(5432)),
                    ("10.42.3.3", false, None, Some(5432)),
                ],
            ),
            svc("{type: ExternalName, externalName: my.database.example.com}", "shop", "ext", &[]),
            svc("{clusterIP: None}", "shop", "empty", &[]),
        ];
        let ranges = ["10.42.0.0/16".parse().unwrap(), "10.43.0.0/16".parse().unwrap()];
        Zone::build(&services, &[], &ranges)
    }

    fn a(z: &Zone, name: &str) -> Vec<String> {
        match z.lookup(name, Kind::A) {
            Answer::Found { answers, .. } => answers
                .into_iter()
                .map(|(_, d)| match d {
                    Data::A(ip) => ip.to_string(),
                    other => format!("{other:?}"),
                })
                .collect(),
            other => vec![format!("{other:?}")],
        }
    }

    #[test]
    fn a_service_answers_with_its_cluster_ip_in_any_case() {
        let z = zone();
        assert_eq!(a(&z, "web.shop.svc.cluster.local."), ["10.43.0.20"]);
        assert_eq!(a(&z, "WEB.Shop.svc.cluster.local"), ["10.43.0.20"]);
        assert_eq!(z.lookup("web.shop.svc.cluster.local", Kind::Other), Answer::NoData);
    }

    #[test]
    fn a_headless_service_answers_with_its_ready_pods_and_each_by_name() {
        let z = zone();
        assert_eq!(a(&z, "db.shop.svc.cluster.local"), ["10.42.1.7", "10.42.2.9"]);
        assert_eq!(a(&z, "db-0.db.shop.svc.cluster.local"), ["10.42.1.7"]);
        assert_eq!(a(&z, "10-42-2-9.db.shop.svc.cluster.local"), ["10.42.2.9"]);
        assert_eq!(z.lookup("10-42-3-3.db.shop.svc.cluster.local", Kind::A), Answer::NxDomain);
        assert_eq!(z.lookup("empty.shop.svc.cluster.local", Kind::A), Answer::NoData);
    }

    #[test]
    fn named_ports_have_srv_records_with_their_targets_addresses() {
        let z = zone();
        let Answer::Found { answers, additional } = z.lookup("_http._tcp.web.shop.svc.cluster.local", Kind::Srv) else {
            panic!()
        };
        assert_eq!(
            answers[0].1,
            Data::Srv {
                priority: 0,
                weight: 100,
                port: 80,
                target: "web.shop.svc.cluster.local".into()
            }
        );
        assert_eq!(
            additional,
            [("web.shop.svc.cluster.local".into(), Data::A("10.43.0.20".parse().unwrap()))]
        );
        let Answer::Found { answers, additional } = z.lookup("_pg._tcp.db.shop.svc.cluster.local", Kind::Srv) else {
            panic!()
        };
        let targets: Vec<_> = answers
            .iter()
            .map(|(_, d)| match d {
                Data::Srv { target, port, weight, .. } => format!("{weight} {port} {target}"),
                _ => panic!(),
            })
            .collect();
        assert_eq!(
            targets,
            [
                "50 5432 db-0.db.shop.svc.cluster.local",
                "50 5432 10-42-2-9.db.shop.svc.cluster.local"
            ]
        );
        assert_eq!(additional.len(), 2);
        assert_eq!(z.lookup("_pg._udp.db.shop.svc.cluster.local", Kind::Srv), Answer::NxDomain);
    }

    #[test]
    fn an_external_name_is_an_alias_for_every_kind() {
        let z = zone();
        for kind in [Kind::A, Kind::Other, Kind::Cname] {
            let Answer::Found { answers, .. } = z.lookup("ext.shop.svc.cluster.local", kind) else {
                panic!()
            };
            assert_eq!(answers[0].1, Data::Cname("my.database.example.com".into()));
        }
    }

    #[test]
    fn parents_have_no_data_and_strangers_do_not_exist() {
        let z = zone();
        assert_eq!(z.lookup("shop.svc.cluster.local", Kind::A), Answer::NoData);
        assert_eq!(z.lookup("svc.cluster.local", Kind::A), Answer::NoData);
        assert_eq!(z.lookup("cluster.local", Kind::Soa), Answer::Soa);
        assert_eq!(z.lookup("nope.shop.svc.cluster.local", Kind::A), Answer::NxDomain);
        // What ndots:5 makes a resolver try first for an outside name.
        assert_eq!(z.lookup("example.com.shop.svc.cluster.local", Kind::A), Answer::NxDomain);
        assert_eq!(z.lookup("example.com", Kind::A), Answer::Forward);
        assert_eq!(z.lookup("local", Kind::A), Answer::Forward);
    }

    #[test]
    fn pod_names_are_their_dashed_addresses() {
        let z = zone();
        assert_eq!(a(&z, "10-42-0-5.shop.pod.cluster.local"), ["10.42.0.5"]);
        assert_eq!(z.lookup("10-42-0-5.shop.pod.cluster.local", Kind::Srv), Answer::NoData);
        assert_eq!(z.lookup("10-42-0-500.shop.pod.cluster.local", Kind::A), Answer::NxDomain);
    }

    #[test]
    fn reverse_names_of_services_and_pods() {
        let mut pod: crate::state::PodObject = crate::state::PodObject {
            pod: serde_yaml_ng::from_str("apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: shop}\nspec: {containers: []}\n")
                .unwrap(),
            uid: "u".into(),
            created_ms: 0,
            node: None,
            status: Default::default(),
            deleting_ms: None,
            unschedulable: None,
        };
        pod.status.pod_ip = Some("10.42.0.5".parse().unwrap());
        let z = Zone::build(
            &[svc("{clusterIP: None}", "shop", "db", &[("10.42.1.7", true, Some("db-0"), None)])],
            &[pod],
            &["10.42.0.0/16".parse().unwrap()],
        );
        let ptr = |n: &str| match z.lookup(n, Kind::Ptr) {
            Answer::Found { answers, .. } => format!("{:?}", answers[0].1),
            other => format!("{other:?}"),
        };
        assert_eq!(ptr("7.1.42.10.in-addr.arpa."), "Ptr(\"db-0.db.shop.svc.cluster.local\")");
        assert_eq!(ptr("5.0.42.10.in-addr.arpa"), "Ptr(\"10-42-0-5.shop.pod.cluster.local\")");
        assert_eq!(ptr("6.0.42.10.in-addr.arpa"), "NxDomain");
        assert_eq!(ptr("1.1.168.192.in-addr.arpa"), "Forward");
        assert_eq!(ptr("42.10.in-addr.arpa"), "Forward");
        assert_eq!(ptr("x.0.42.10.in-addr.arpa"), "Forward");
        let z = zone();
        assert_eq!(
            z.lookup("20.0.43.10.in-addr.arpa", Kind::Ptr),
            Answer::Found {
                answers: vec![("20.0.43.10.in-addr.arpa".into(), Data::Ptr("web.shop.svc.cluster.local".into()))],
                additional: vec![]
            }
        );
    }

    proptest! {
        /// Every name the zone answers for is in the cluster domain or a
        /// reverse name, and every parent of a name that answers exists.
        #[test]
        fn answers_stay_in_the_zone_and_parents_exist(label in "[a-z0-9-]{1,12}", ns in "[a-z]{1,8}", kind in 0..4u8) {
            let z = zone();
            let kind = [Kind::A, Kind::Srv, Kind::Ptr, Kind::Other][kind as usize];
            for name in [format!("{label}.{ns}.svc.cluster.local"), format!("{label}.shop.svc.cluster.local"), format!("{label}.example")] {
                match z.lookup(&name, kind) {
                    Answer::Forward => prop_assert!(!name.ends_with("cluster.local")),
                    Answer::Found { answers, .. } => {
                        prop_assert!(answers.iter().all(|(o, _)| *o == name));
                        let mut parent = name.as_str();
                        while let Some((_, p)) = parent.split_once('.') {
                            if p == "local" { break; }
                            prop_assert_ne!(z.lookup(p, Kind::A), Answer::NxDomain, "{}", p);
                            parent = p;
                        }
                    }
                    _ => prop_assert!(name.ends_with("cluster.local")),
                }
            }
        }
    }
}
