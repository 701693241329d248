//! The node's nftables table as plain data: which chains hold which rules,
//! which map elements send a Service's address to which chain. Built by a
//! pure function from the cluster's address plan and the Services with
//! their endpoints, shaped like kube-proxy's nftables mode:
//!
//! ```text
//! nat-prerouting / nat-output ─ jump services ─ vmap @service-ips ─ goto service-… ─ numgen random ─ goto endpoint-… ─ dnat
//!                                             └ vmap @service-nodeports ─ goto external-… ─ mark, goto service-…
//! filter-input / -forward / -output ─ ct state new ─ vmap @no-endpoint-services|@no-endpoint-nodeports ─ reject
//! nat-postrouting ─ jump masquerading (marked packets) ─ pod egress masquerade (pods → outside the cluster)
//! ```
//!
//! A lookup is one map access however many Services there are, and a
//! change of one Service touches only its own chains and map elements.

use ipnet::Ipv4Net;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// The mark that asks `masquerading` to masquerade a packet (kube-proxy's).
pub const MASQ_MARK: u32 = 0x4000;

/// TCP or UDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Proto {
    /// As nftables writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// One port of one Service, with the endpoints it balances over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    /// `namespace/name`.
    pub service: String,
    /// The port's name, or its number when unnamed.
    pub port_name: String,
    /// Its protocol.
    pub proto: Proto,
    /// The virtual IP (`None` for headless Services, which get no rules).
    pub cluster_ip: Option<Ipv4Addr>,
    /// `externalIPs`: more addresses served like node ports.
    pub external_ips: Vec<Ipv4Addr>,
    /// The Service port.
    pub port: u16,
    /// The node port, for NodePort Services.
    pub node_port: Option<u16>,
    /// `sessionAffinity: ClientIP`'s timeout, in seconds.
    pub affinity_secs: Option<u32>,
    /// Ready endpoints: address and target port.
    pub endpoints: Vec<(Ipv4Addr, u16)>,
}

/// A chain's place in the kernel's paths, for base chains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Hook {
    /// `type nat hook prerouting priority dstnat`.
    NatPrerouting,
    /// `type nat hook output priority dstnat`.
    NatOutput,
    /// `type nat hook postrouting priority srcnat`.
    NatPostrouting,
    /// `type filter hook input priority dstnat - 10`.
    FilterInput,
    /// `type filter hook forward priority dstnat - 10`.
    FilterForward,
    /// `type filter hook output priority dstnat - 10`.
    FilterOutput,
}

/// The maps, each keyed by a Service's address or node port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum MapName {
    /// `ipv4_addr . inet_proto . inet_service : verdict`.
    ServiceIps,
    /// `inet_proto . inet_service : verdict`.
    ServiceNodePorts,
    /// Service addresses without endpoints: reject.
    NoEndpointServices,
    /// Node ports without endpoints: reject.
    NoEndpointNodePorts,
}

impl MapName {
    /// Every map.
    pub const ALL: [MapName; 4] = [
        MapName::ServiceIps,
        MapName::ServiceNodePorts,
        MapName::NoEndpointServices,
        MapName::NoEndpointNodePorts,
    ];

    /// Its name in the table.
    pub fn as_str(self) -> &'static str {
        match self {
            MapName::ServiceIps => "service-ips",
            MapName::ServiceNodePorts => "service-nodeports",
            MapName::NoEndpointServices => "no-endpoint-services",
            MapName::NoEndpointNodePorts => "no-endpoint-nodeports",
        }
    }

    /// Whether its key starts with an address.
    pub fn keyed_by_ip(self) -> bool {
        matches!(self, MapName::ServiceIps | MapName::NoEndpointServices)
    }
}

/// A map element's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    /// The Service address (`None` for node ports).
    pub ip: Option<Ipv4Addr>,
    /// The protocol.
    pub proto: Proto,
    /// The port.
    pub port: u16,
}

/// One rule, in the handful of shapes the table uses.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rule {
    /// `jump CHAIN`.
    Jump(String),
    /// `goto CHAIN`.
    Goto(String),
    /// `ct state new jump CHAIN`.
    NewJump(String),
    /// `meta mark set meta mark | 0x4000`.
    SetMasqMark,
    /// `meta mark & 0x4000 == 0 return`.
    ReturnUnmarked,
    /// `meta mark set meta mark ^ 0x4000`.
    ClearMasqMark,
    /// `masquerade fully-random`.
    Masquerade,
    /// `ip saddr CLUSTER ip daddr != CLUSTER ip daddr != 224.0.0.0/4 masquerade fully-random`.
    PodEgress(Ipv4Net),
    /// `ip daddr . meta l4proto . th dport vmap @MAP`.
    VmapByIp(MapName),
    /// `fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @MAP`.
    VmapByLocalPort(MapName),
    /// `reject`.
    Reject,
    /// `ip daddr VIP ip saddr != CLUSTER jump mark-for-masquerade`.
    MasqOffCluster {
        /// The Service address.
        vip: Ipv4Addr,
        /// The pod CIDR.
        cluster: Ipv4Net,
    },
    /// `ip saddr IP jump mark-for-masquerade` (hairpin).
    MasqFrom(Ipv4Addr),
    /// `ip saddr @SET goto CHAIN` (session affinity).
    AffinityGoto {
        /// The endpoint's recent clients.
        set: String,
        /// The endpoint's chain.
        chain: String,
    },
    /// `update @SET { ip saddr }`.
    AffinityUpdate(String),
    /// `numgen random mod N vmap { 0 : goto C0, … }`.
    Spread(Vec<String>),
    /// `ip daddr VIP meta l4proto PROTO th dport PORT dnat to TO`: the
    /// cluster DNS address, answered by this node.
    Redirect {
        /// The address asked.
        vip: Ipv4Addr,
        /// Protocol.
        proto: Proto,
        /// Port.
        port: u16,
        /// The local address that answers.
        to: Ipv4Addr,
    },
    /// `ip daddr NET reject`: a Service address on a port no Service has.
    RejectTo(Ipv4Net),
    /// `meta l4proto PROTO dnat to IP:PORT`.
    Dnat {
        /// Protocol.
        proto: Proto,
        /// Endpoint address.
        ip: Ipv4Addr,
        /// Endpoint port.
        port: u16,
    },
}

impl Rule {
    /// The chains this rule sends packets to.
    pub fn targets(&self) -> Vec<&str> {
        match self {
            Rule::Jump(c) | Rule::Goto(c) | Rule::NewJump(c) => vec![c],
            Rule::AffinityGoto { chain, .. } => vec![chain],
            Rule::Spread(cs) => cs.iter().map(String::as_str).collect(),
            Rule::MasqOffCluster { .. } | Rule::MasqFrom(_) => vec![MARK],
            _ => vec![],
        }
    }

    /// The set this rule reads or writes.
    pub fn set(&self) -> Option<&str> {
        match self {
            Rule::AffinityGoto { set, .. } | Rule::AffinityUpdate(set) => Some(set),
            _ => None,
        }
    }
}

/// A chain: its hook (base chains) and rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    /// Where it hooks in, for base chains.
    pub hook: Option<Hook>,
    /// Its rules, in order.
    pub rules: Vec<Rule>,
}

/// The whole table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Model {
    /// Chains by name.
    pub chains: BTreeMap<String, Chain>,
    /// Map elements: map → key → the chain it goes to.
    pub maps: BTreeMap<MapName, BTreeMap<Key, String>>,
    /// Affinity sets: name → timeout in seconds.
    pub sets: BTreeMap<String, u32>,
}

/// `mark-for-masquerade`.
pub const MARK: &str = "mark-for-masquerade";
const MASQUERADING: &str = "masquerading";
const SERVICES: &str = "services";
const REJECT: &str = "reject-chain";
const SVC_CHECK: &str = "service-endpoints-check";
const NODEPORT_CHECK: &str = "nodeport-endpoints-check";

/// What the table needs to know of the cluster and the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addresses {
    /// The pods' range.
    pub cluster: Ipv4Net,
    /// The Services' range.
    pub services: Ipv4Net,
    /// The cluster DNS address, and this node's address that answers it.
    pub dns: Option<(Ipv4Addr, Ipv4Addr)>,
}

/// The table for a node at `addrs`, with `services` (their ports,
/// endpoints resolved).
pub fn desired(addrs: &Addresses, services: &[ServicePort]) -> Model {
    let cluster = addrs.cluster;
    let mut m = Model::default();
    for map in MapName::ALL {
        m.maps.insert(map, BTreeMap::new());
    }
    let base = |hook, rules| Chain { hook: Some(hook), rules };
    let plain = |rules| Chain { hook: None, rules };
    // The cluster DNS address goes to this node's own server, before any
    // Service rule (nothing else answers it).
    let mut nat = Vec::new();
    if let Some((vip, to)) = addrs.dns {
        for proto in [Proto::Udp, Proto::Tcp] {
            nat.push(Rule::Redirect { vip, proto, port: 53, to });
        }
    }
    nat.push(Rule::Jump(SERVICES.into()));
    let chains = [
        ("nat-prerouting", base(Hook::NatPrerouting, nat.clone())),
        ("nat-output", base(Hook::NatOutput, nat)),
        (
            "nat-postrouting",
            base(
                Hook::NatPostrouting,
                vec![Rule::Jump(MASQUERADING.into()), Rule::PodEgress(cluster)],
            ),
        ),
        (
            "filter-input",
            base(
                Hook::FilterInput,
                vec![Rule::NewJump(NODEPORT_CHECK.into()), Rule::NewJump(SVC_CHECK.into())],
            ),
        ),
        // Forwarded packets are past DNAT: one still bound for the service
        // range asked for a port no Service has (kube-proxy's cluster-ips-check).
        (
            "filter-forward",
            base(
                Hook::FilterForward,
                vec![Rule::NewJump(SVC_CHECK.into()), Rule::RejectTo(addrs.services)],
            ),
        ),
        ("filter-output", base(Hook::FilterOutput, vec![Rule::NewJump(SVC_CHECK.into())])),
        (MARK, plain(vec![Rule::SetMasqMark])),
        (
            MASQUERADING,
            plain(vec![Rule::ReturnUnmarked, Rule::ClearMasqMark, Rule::Masquerade]),
        ),
        (
            SERVICES,
            plain(vec![
                Rule::VmapByIp(MapName::ServiceIps),
                Rule::VmapByLocalPort(MapName::ServiceNodePorts),
            ]),
        ),
        (SVC_CHECK, plain(vec![Rule::VmapByIp(MapName::NoEndpointServices)])),
        (NODEPORT_CHECK, plain(vec![Rule::VmapByLocalPort(MapName::NoEndpointNodePorts)])),
        (REJECT, plain(vec![Rule::Reject])),
    ];
    for (name, chain) in chains {
        m.chains.insert(name.to_string(), chain);
    }
    for sp in services {
        add_service_port(&mut m, cluster, sp);
    }
    m
}

fn add_service_port(m: &mut Model, cluster: Ipv4Net, sp: &ServicePort) {
    let Some(vip) = sp.cluster_ip else { return };
    let id = format!("{}/{}/{}", sp.service, sp.proto.as_str(), sp.port_name);
    let key = Key {
        ip: Some(vip),
        proto: sp.proto,
        port: sp.port,
    };
    let node_key = sp.node_port.map(|p| Key {
        ip: None,
        proto: sp.proto,
        port: p,
    });
    let mut eps = sp.endpoints.clone();
    eps.sort();
    eps.dedup();
    let external_keys: Vec<Key> = sp
        .external_ips
        .iter()
        .filter(|ip| **ip != vip)
        .map(|ip| Key {
            ip: Some(*ip),
            proto: sp.proto,
            port: sp.port,
        })
        .collect();
    if eps.is_empty() {
        let no_eps = m.maps.entry(MapName::NoEndpointServices).or_default();
        no_eps.insert(key, REJECT.into());
        for k in &external_keys {
            no_eps.insert(*k, REJECT.into());
        }
        if let Some(k) = node_key {
            m.maps.entry(MapName::NoEndpointNodePorts).or_default().insert(k, REJECT.into());
        }
        return;
    }
    let svc_chain = format!("service-{id}");
    let mut svc_rules = vec![Rule::MasqOffCluster { vip, cluster }];
    let mut ep_chains = Vec::new();
    for (ip, port) in &eps {
        let chain = format!("endpoint-{id}__{ip}/{port}");
        let mut rules = vec![Rule::MasqFrom(*ip)];
        if let Some(secs) = sp.affinity_secs {
            // The timeout is in the name: a new timeout is a new set, and
            // the chains that use it change with it.
            let set = format!("affinity-{secs}-{id}__{ip}/{port}");
            m.sets.insert(set.clone(), secs);
            svc_rules.push(Rule::AffinityGoto {
                set: set.clone(),
                chain: chain.clone(),
            });
            rules.push(Rule::AffinityUpdate(set));
        }
        rules.push(Rule::Dnat {
            proto: sp.proto,
            ip: *ip,
            port: *port,
        });
        m.chains.insert(chain.clone(), Chain { hook: None, rules });
        ep_chains.push(chain);
    }
    svc_rules.push(Rule::Spread(ep_chains));
    m.chains.insert(
        svc_chain.clone(),
        Chain {
            hook: None,
            rules: svc_rules,
        },
    );
    m.maps.entry(MapName::ServiceIps).or_default().insert(key, svc_chain.clone());
    if node_key.is_some() || !external_keys.is_empty() {
        let ext = format!("external-{id}");
        m.chains.insert(
            ext.clone(),
            Chain {
                hook: None,
                rules: vec![Rule::Jump(MARK.into()), Rule::Goto(svc_chain)],
            },
        );
        if let Some(k) = node_key {
            m.maps.entry(MapName::ServiceNodePorts).or_default().insert(k, ext.clone());
        }
        let ips = m.maps.entry(MapName::ServiceIps).or_default();
        for k in external_keys {
            ips.insert(k, ext.clone());
        }
    }
}
