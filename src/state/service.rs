//! Services and hand-written Endpoints in the replicated state.
//!
//! A Service's virtual IP and node ports are chosen when its write is
//! applied, so every replica agrees without another round: the lowest free
//! address of the service CIDR (its network address, `.1`, kept as
//! Kubernetes keeps it for the API, the cluster DNS address and the
//! broadcast address never), the lowest free port of 30000–32767. A
//! re-apply keeps what was chosen, as Kubernetes keeps `clusterIP` and
//! `nodePort`s that the manifest leaves out; an address or port asked for
//! by the manifest must be free and in range, or the write is refused
//! with the reason.

use super::network::{nth, ClusterNetwork};
use super::read::{decode, network_in};
pub use crate::api::manifest::Manual;
use crate::api::manifest::Service;
use rusqlite::{params, OptionalExtension, Transaction};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::net::Ipv4Addr;

/// The node port range, as Kubernetes' default.
pub const NODE_PORTS: std::ops::RangeInclusive<u16> = 30_000..=32_767;

/// A Service as stored: the manifest with its address and node ports
/// filled in, and what the cluster gave it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceObject {
    /// The Service, `spec.clusterIP(s)` and `ports[].nodePort` filled in.
    pub service: Service,
    /// Unique id.
    pub uid: String,
    /// Unix ms it was created.
    pub created_ms: u64,
}

impl ServiceObject {
    /// `(namespace, name)`.
    pub fn key(&self) -> (String, String) {
        (self.service.metadata.namespace().to_string(), self.service.metadata.name.clone())
    }

    /// Its virtual IP (`None`: headless or ExternalName).
    pub fn cluster_ip(&self) -> Option<Ipv4Addr> {
        self.service.spec.cluster_ip.as_deref().and_then(|s| s.parse().ok())
    }
}

/// Hand-written endpoints as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointsObject {
    /// The object.
    pub manual: Manual,
    /// Unix ms it was created.
    pub created_ms: u64,
}

/// The first free virtual IP of `plan`'s service CIDR.
pub fn free_ip(plan: &ClusterNetwork, used: &BTreeSet<Ipv4Addr>) -> Option<Ipv4Addr> {
    let size = 1u64 << (32 - plan.service_cidr.prefix_len());
    (2..size.saturating_sub(1))
        .map(|i| nth(plan.service_cidr, i as u32))
        .find(|ip| *ip != plan.dns_ip() && !used.contains(ip))
}

/// Whether `ip` may be asked for in `plan`: inside the service CIDR, not
/// its network, `.1`, broadcast or the DNS address (unless `dns`).
pub fn allowed_ip(plan: &ClusterNetwork, ip: Ipv4Addr, dns: bool) -> bool {
    let c = plan.service_cidr;
    c.contains(&ip) && ip != c.network() && ip != nth(c, 1) && ip != c.broadcast() && (dns || ip != plan.dns_ip())
}

/// Applies a Service: fills in its address and node ports, or refuses.
pub fn put(tx: &Transaction<'_>, mut svc: Service, uid: &str, now_ms: u64) -> rusqlite::Result<super::Response> {
    use super::Response::{Done, Refused};
    let ns = svc.metadata.namespace().to_string();
    let name = svc.metadata.name.clone();
    let old = get(tx, &ns, &name)?;
    let others: Vec<ServiceObject> = all(tx)?.into_iter().filter(|o| o.key() != (ns.clone(), name.clone())).collect();
    let plan = network_in(tx)?;
    let spec = &mut svc.spec;
    // The address: kept, asked for, or chosen.
    if spec.service_type() == "ExternalName" {
        spec.cluster_ip = None;
        spec.cluster_ips.clear();
    } else if let Some(o) = old.as_ref().filter(|o| o.service.spec.headless() != spec.headless()) {
        let (was, now) = (o.service.spec.cluster_ip.clone(), spec.cluster_ip.clone());
        return Ok(Refused(format!(
            "service {ns}/{name}: spec.clusterIP: Invalid value: {now:?}: field is immutable (it is {was:?}); delete the Service to change it"
        )));
    } else if !spec.headless() {
        let kept = old.as_ref().and_then(|o| o.cluster_ip());
        let asked: Option<Ipv4Addr> = spec
            .cluster_ip
            .as_deref()
            .or(spec.cluster_ips.first().map(String::as_str))
            .filter(|s| !s.is_empty())
            .and_then(|s| s.parse().ok());
        let used: BTreeSet<Ipv4Addr> = others.iter().filter_map(|o| o.cluster_ip()).collect();
        let ip = match (asked, kept) {
            (Some(a), Some(k)) if a != k => {
                return Ok(Refused(format!(
                    "service {ns}/{name}: spec.clusterIP: Invalid value: \"{a}\": field is immutable (it is {k})"
                )))
            }
            (Some(a), _) => {
                let dns = ns == "kube-system" && name == "kube-dns";
                if !allowed_ip(&plan, a, dns) {
                    return Ok(Refused(format!(
                        "service {ns}/{name}: spec.clusterIP: Invalid value: \"{a}\": provided IP is not in the valid range; the service CIDR is {} ({} and {} are reserved)",
                        plan.service_cidr,
                        nth(plan.service_cidr, 1),
                        plan.dns_ip()
                    )));
                }
                if used.contains(&a) {
                    return Ok(Refused(format!(
                        "service {ns}/{name}: spec.clusterIP: Invalid value: \"{a}\": provided IP is already allocated"
                    )));
                }
                a
            }
            (None, Some(k)) => k,
            (None, None) => match free_ip(&plan, &used) {
                Some(ip) => ip,
                None => {
                    return Ok(Refused(format!(
                        "service {ns}/{name}: no free address left in the service CIDR {}",
                        plan.service_cidr
                    )))
                }
            },
        };
        spec.cluster_ip = Some(ip.to_string());
        spec.cluster_ips = vec![ip.to_string()];
    } else {
        spec.cluster_ips = vec!["None".into()];
    }
    // Node ports: kept per (port, protocol), asked for, or chosen.
    if spec.has_node_ports() {
        let mut used: BTreeSet<(u16, String)> = others
            .iter()
            .flat_map(|o| o.service.spec.ports.iter())
            .filter_map(|p| p.node_port.map(|n| (n as u16, p.protocol().to_string())))
            .collect();
        let old_ports = old.as_ref().map(|o| o.service.spec.ports.clone()).unwrap_or_default();
        // First every port asked for or kept, so a new port cannot take
        // one of them; then the new ones get the lowest free.
        for p in spec.ports.iter_mut() {
            let proto = p.protocol().to_string();
            let kept = old_ports
                .iter()
                .find(|o| o.port == p.port && o.protocol() == proto)
                .and_then(|o| o.node_port);
            if let Some(n) = p.node_port.or(kept) {
                let n = n as u16;
                if !used.insert((n, proto)) {
                    return Ok(Refused(format!(
                        "service {ns}/{name}: spec.ports[].nodePort: Invalid value: {n}: provided port is already allocated"
                    )));
                }
                p.node_port = Some(n as i64);
            }
        }
        for p in spec.ports.iter_mut().filter(|p| p.node_port.is_none()) {
            let proto = p.protocol().to_string();
            let Some(n) = NODE_PORTS.clone().find(|n| !used.contains(&(*n, proto.clone()))) else {
                return Ok(Refused(format!("service {ns}/{name}: no free node port left")));
            };
            used.insert((n, proto));
            p.node_port = Some(n as i64);
        }
    } else {
        for p in spec.ports.iter_mut() {
            p.node_port = None;
        }
    }
    svc.status = None;
    let (uid, created_ms, action) = match &old {
        Some(o) if o.service == svc => return Ok(Done("unchanged".into())),
        Some(o) => (o.uid.clone(), o.created_ms, "configured"),
        None => (uid.to_string(), now_ms, "created"),
    };
    let obj = ServiceObject {
        service: svc,
        uid,
        created_ms,
    };
    tx.execute(
        "INSERT OR REPLACE INTO sm_services VALUES (?1, ?2, ?3)",
        params![ns, name, serde_json::to_string(&obj).expect("plain struct")],
    )?;
    Ok(Done(action.into()))
}

/// Deletes a Service.
pub fn delete(tx: &Transaction<'_>, ns: &str, name: &str) -> rusqlite::Result<super::Response> {
    Ok(
        match tx.execute("DELETE FROM sm_services WHERE namespace = ?1 AND name = ?2", params![ns, name])? {
            0 => super::Response::Refused(format!("service {name:?} not found in namespace {ns:?}")),
            _ => super::Response::Done("deleted".into()),
        },
    )
}

/// Applies hand-written Endpoints or an EndpointSlice.
pub fn put_endpoints(tx: &Transaction<'_>, e: Manual, now_ms: u64) -> rusqlite::Result<super::Response> {
    let kind = e.kind();
    let ns = e.metadata().namespace().to_string();
    let name = e.metadata().name.clone();
    let old: Option<EndpointsObject> = tx
        .query_row(
            "SELECT json FROM sm_endpoints WHERE kind = ?1 AND namespace = ?2 AND name = ?3",
            params![kind, ns, name],
            |r| r.get::<_, String>(0),
        )
        .optional()?
        .map(|j| decode(&j))
        .transpose()?;
    let (created_ms, action) = match &old {
        Some(o) if o.manual == e => return Ok(super::Response::Done("unchanged".into())),
        Some(o) => (o.created_ms, "configured"),
        None => (now_ms, "created"),
    };
    let obj = EndpointsObject { manual: e, created_ms };
    tx.execute(
        "INSERT OR REPLACE INTO sm_endpoints VALUES (?1, ?2, ?3, ?4)",
        params![kind, ns, name, serde_json::to_string(&obj).expect("plain struct")],
    )?;
    Ok(super::Response::Done(action.into()))
}

/// Deletes hand-written Endpoints (`kind` `Endpoints`) or an EndpointSlice.
pub fn delete_endpoints(tx: &Transaction<'_>, kind: &str, ns: &str, name: &str) -> rusqlite::Result<super::Response> {
    let sql = "DELETE FROM sm_endpoints WHERE kind = ?1 AND namespace = ?2 AND name = ?3";
    Ok(match tx.execute(sql, params![kind, ns, name])? {
        0 => super::Response::Refused(format!("{} {name:?} not found in namespace {ns:?}", kind.to_lowercase())),
        _ => super::Response::Done("deleted".into()),
    })
}

fn get(tx: &Transaction<'_>, ns: &str, name: &str) -> rusqlite::Result<Option<ServiceObject>> {
    tx.query_row(
        "SELECT json FROM sm_services WHERE namespace = ?1 AND name = ?2",
        params![ns, name],
        |r| r.get::<_, String>(0),
    )
    .optional()?
    .map(|j| decode(&j))
    .transpose()
}

/// Every Service, by namespace and name.
pub(crate) fn all(c: &rusqlite::Connection) -> rusqlite::Result<Vec<ServiceObject>> {
    super::read::query_json(c, "SELECT json FROM sm_services ORDER BY namespace, name", &[])
}

/// Every hand-written Endpoints object.
pub(crate) fn all_endpoints(c: &rusqlite::Connection) -> rusqlite::Result<Vec<EndpointsObject>> {
    super::read::query_json(c, "SELECT json FROM sm_endpoints ORDER BY namespace, name", &[])
}

impl super::Replica {
    /// Every Service.
    pub fn services(&self) -> rusqlite::Result<Vec<ServiceObject>> {
        all(&self.conn())
    }

    /// Every hand-written Endpoints object.
    pub fn endpoints_objects(&self) -> rusqlite::Result<Vec<EndpointsObject>> {
        all_endpoints(&self.conn())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_skip_the_reserved_ones_and_the_used_ones() {
        let plan = ClusterNetwork::default();
        let mut used = BTreeSet::new();
        assert_eq!(free_ip(&plan, &used), Some(Ipv4Addr::new(10, 43, 0, 2)));
        for i in 2..=9 {
            used.insert(Ipv4Addr::new(10, 43, 0, i));
        }
        assert_eq!(free_ip(&plan, &used), Some(Ipv4Addr::new(10, 43, 0, 11)), ".10 is the DNS address");
        assert!(!allowed_ip(&plan, Ipv4Addr::new(10, 43, 0, 1), false));
        assert!(!allowed_ip(&plan, Ipv4Addr::new(10, 43, 0, 10), false));
        assert!(allowed_ip(&plan, Ipv4Addr::new(10, 43, 0, 10), true));
        assert!(!allowed_ip(&plan, Ipv4Addr::new(10, 44, 0, 5), false));
        let tiny = ClusterNetwork::checked("10.42.0.0/16".parse().unwrap(), "10.43.0.0/28".parse().unwrap(), 24).unwrap();
        let all: BTreeSet<_> = (0..16).map(|i| nth(tiny.service_cidr, i)).collect();
        assert_eq!(free_ip(&tiny, &all), None);
    }

    fn apply(r: &crate::state::Replica, yaml: &str) -> crate::state::Response {
        let svc: Service = serde_yaml_ng::from_str(yaml).unwrap();
        let cmd = crate::state::Command::PutService {
            service: Box::new(svc),
            uid: "u".into(),
            now_ms: 1,
        };
        let mut conn = r.conn();
        let tx = conn.transaction().unwrap();
        let resp = crate::state::apply_command(&tx, &cmd).unwrap();
        tx.commit().unwrap();
        resp
    }

    #[test]
    fn node_ports_and_addresses_are_kept_on_reapply_and_a_new_port_cannot_take_them() {
        use crate::state::Response::{Done, Refused};
        let dir = tempfile::tempdir().unwrap();
        let r = crate::state::Replica::open(&dir.path().join("c.db")).unwrap();
        let head = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  type: NodePort\n";
        assert_eq!(
            apply(&r, &format!("{head}  ports: [{{name: a, port: 80}}]\n")),
            Done("created".into())
        );
        let one = &r.services().unwrap()[0];
        let vip = one.cluster_ip().unwrap();
        assert_eq!(one.service.spec.ports[0].node_port, Some(30000));
        // A new port listed first does not take 80's node port.
        let two = format!("{head}  ports: [{{name: b, port: 8080}}, {{name: a, port: 80}}]\n");
        assert_eq!(apply(&r, &two), Done("configured".into()));
        let ports: Vec<_> = r.services().unwrap()[0]
            .service
            .spec
            .ports
            .iter()
            .map(|p| (p.port, p.node_port))
            .collect();
        assert_eq!(ports, [(8080, Some(30001)), (80, Some(30000))]);
        assert_eq!(r.services().unwrap()[0].cluster_ip(), Some(vip), "the address is kept");
        // Another Service cannot ask for a taken port; headless cannot replace an address.
        let other =
            "apiVersion: v1\nkind: Service\nmetadata: {name: other}\nspec:\n  type: NodePort\n  ports: [{port: 80, nodePort: 30001}]\n";
        assert!(matches!(apply(&r, other), Refused(m) if m.contains("already allocated")));
        let headless = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  clusterIP: None\n  ports: [{port: 80}]\n";
        assert!(matches!(apply(&r, headless), Refused(m) if m.contains("immutable")));
    }
}
