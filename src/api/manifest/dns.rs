//! A pod's DNS settings: `dnsPolicy`, `dnsConfig`, `hostname` and
//! `subdomain`, with Kubernetes' meanings.

use serde::{Deserialize, Serialize};

/// Where the pod's `/etc/resolv.conf` comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum DnsPolicy {
    /// The cluster DNS first, with the namespace's search path; the
    /// node's resolvers if the cluster has no DNS address.
    #[default]
    ClusterFirst,
    /// As `ClusterFirst` (Shoal runs no pods in the host's network, the
    /// only case where the two differ).
    ClusterFirstWithHostNet,
    /// The node's own resolvers and search path.
    Default,
    /// Only what `dnsConfig` says.
    None,
}

/// `dnsConfig`: merged into what the policy gives.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodDnsConfig {
    /// More name server addresses (at most 3 in all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    /// More search domains (at most 32).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub searches: Vec<String>,
    /// Resolver options; one of the same name replaces the policy's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<PodDnsConfigOption>,
}

/// One resolver option: `ndots` with value `2` is `options ndots:2`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodDnsConfigOption {
    /// The option.
    pub name: String,
    /// Its value, if it takes one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}
