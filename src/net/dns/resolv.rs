//! `/etc/resolv.conf`: the node's, read, and each pod's, written as the
//! kubelet writes it (`GetPodDNS`): the policy's name servers, search
//! path and options, then `dnsConfig` merged in, cut to the resolver's
//! limits.

use super::CLUSTER_DOMAIN;
use crate::api::manifest::{DnsPolicy, PodSpec};
use crate::api::validate::dns::{MAX_NAMESERVERS, MAX_SEARCHES, MAX_SEARCH_CHARS};
use std::net::Ipv4Addr;

/// What a resolv.conf says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvConf {
    /// `nameserver` lines, in order.
    pub nameservers: Vec<String>,
    /// The `search` (or `domain`) line's domains.
    pub searches: Vec<String>,
    /// The `options` line's options (`ndots:5`, `edns0`).
    pub options: Vec<String>,
}

impl ResolvConf {
    /// Reads a resolv.conf's text; lines it does not know are skipped, as
    /// the resolver skips them.
    pub fn parse(text: &str) -> ResolvConf {
        let mut out = ResolvConf::default();
        let mut domain = None;
        for line in text.lines() {
            let line = line.split(['#', ';']).next().unwrap_or("");
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => out.nameservers.extend(words.next().map(str::to_string)),
                // The last search or domain line wins (resolv.conf(5)).
                Some("search") => {
                    out.searches = words
                        .map(|w| w.trim_end_matches('.').to_string())
                        .filter(|w| !w.is_empty())
                        .collect();
                    domain = None;
                }
                Some("domain") => {
                    domain = words.next().map(|w| w.trim_end_matches('.').to_string());
                    out.searches.clear();
                }
                Some("options") => out.options.extend(words.map(str::to_string)),
                _ => {}
            }
        }
        out.searches.extend(domain.filter(|d| !d.is_empty()));
        out
    }

    /// The file's text.
    pub fn render(&self) -> String {
        let mut s = String::new();
        for ns in &self.nameservers {
            s.push_str(&format!("nameserver {ns}\n"));
        }
        if !self.searches.is_empty() {
            s.push_str(&format!("search {}\n", self.searches.join(" ")));
        }
        if !self.options.is_empty() {
            s.push_str(&format!("options {}\n", self.options.join(" ")));
        }
        s
    }
}

/// The resolv.conf of a pod in `namespace` with `spec`, on a node whose
/// own is `host`, in a cluster whose DNS answers at `cluster_dns`.
pub fn for_pod(spec: &PodSpec, namespace: &str, cluster_dns: Option<Ipv4Addr>, host: &ResolvConf) -> ResolvConf {
    let policy = spec.dns_policy.unwrap_or_default();
    let mut conf = match (policy, cluster_dns) {
        (DnsPolicy::None, _) => ResolvConf::default(),
        (DnsPolicy::ClusterFirst | DnsPolicy::ClusterFirstWithHostNet, Some(dns)) => {
            let mut searches = vec![
                format!("{namespace}.svc.{CLUSTER_DOMAIN}"),
                format!("svc.{CLUSTER_DOMAIN}"),
                CLUSTER_DOMAIN.to_string(),
            ];
            searches.extend(host.searches.iter().cloned());
            ResolvConf {
                nameservers: vec![dns.to_string()],
                searches,
                options: vec!["ndots:5".into()],
            }
        }
        // Default, or a cluster without a DNS address: the node's own.
        _ => host.clone(),
    };
    if let Some(c) = &spec.dns_config {
        conf.nameservers.extend(c.nameservers.iter().cloned());
        conf.searches.extend(c.searches.iter().map(|s| s.trim_end_matches('.').to_string()));
        for o in &c.options {
            conf.options.retain(|have| have.split(':').next() != Some(o.name.as_str()));
            conf.options.push(match &o.value {
                Some(v) => format!("{}:{v}", o.name),
                None => o.name.clone(),
            });
        }
    }
    dedup(&mut conf.nameservers);
    dedup(&mut conf.searches);
    conf.nameservers.truncate(MAX_NAMESERVERS);
    conf.searches.truncate(MAX_SEARCHES);
    while conf.searches.iter().map(|s| s.len() + 1).sum::<usize>() > MAX_SEARCH_CHARS + 1 {
        conf.searches.pop();
    }
    conf
}

/// Keeps the first of each.
fn dedup(v: &mut Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    v.retain(|x| seen.insert(x.clone()));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> PodSpec {
        serde_yaml_ng::from_str(&format!("containers: [{{name: c, image: busybox}}]\n{yaml}")).unwrap()
    }

    fn host() -> ResolvConf {
        ResolvConf::parse(
            "# from DHCP\nnameserver 192.168.1.1\nnameserver 192.168.1.2 ; backup\nsearch lan. example.org\noptions edns0 timeout:2\n",
        )
    }

    #[test]
    fn the_node_file_is_read_as_the_resolver_reads_it() {
        let h = host();
        assert_eq!(h.nameservers, ["192.168.1.1", "192.168.1.2"]);
        assert_eq!(h.searches, ["lan", "example.org"]);
        assert_eq!(h.options, ["edns0", "timeout:2"]);
        assert_eq!(ResolvConf::parse("search a b\ndomain c\n").searches, ["c"]);
        assert_eq!(ResolvConf::parse("domain c\nsearch a b\n").searches, ["a", "b"]);
        assert_eq!(ResolvConf::parse(&h.render()), h);
    }

    #[test]
    fn cluster_first_is_the_kubernetes_file() {
        let c = for_pod(&spec(""), "shop", Some(Ipv4Addr::new(10, 43, 0, 10)), &host());
        assert_eq!(
            c.render(),
            "nameserver 10.43.0.10\nsearch shop.svc.cluster.local svc.cluster.local cluster.local lan example.org\noptions ndots:5\n"
        );
        let with_host_net = for_pod(
            &spec("dnsPolicy: ClusterFirstWithHostNet\n"),
            "shop",
            Some(Ipv4Addr::new(10, 43, 0, 10)),
            &host(),
        );
        assert_eq!(with_host_net, c);
        // No cluster DNS: the node's own, as the kubelet falls back.
        assert_eq!(for_pod(&spec(""), "shop", None, &host()), host());
    }

    #[test]
    fn default_is_the_node_file_and_none_only_dns_config() {
        assert_eq!(
            for_pod(&spec("dnsPolicy: Default\n"), "a", Some(Ipv4Addr::new(10, 43, 0, 10)), &host()),
            host()
        );
        // The "DNS for Services and Pods" page's example, with its output.
        let c = for_pod(
            &spec("dnsPolicy: \"None\"\ndnsConfig:\n  nameservers: [192.0.2.1]\n  searches: [ns1.svc.cluster-domain.example, my.dns.search.suffix]\n  options:\n  - name: ndots\n    value: \"2\"\n  - name: edns0\n"),
            "default",
            Some(Ipv4Addr::new(10, 43, 0, 10)),
            &host(),
        );
        assert_eq!(
            c.render(),
            "nameserver 192.0.2.1\nsearch ns1.svc.cluster-domain.example my.dns.search.suffix\noptions ndots:2 edns0\n"
        );
    }

    #[test]
    fn dns_config_merges_and_limits_hold() {
        let c = for_pod(
            &spec("dnsConfig:\n  nameservers: [10.43.0.10, 1.1.1.1, 8.8.8.8]\n  searches: [svc.cluster.local, extra.example.]\n  options: [{name: ndots, value: \"1\"}, {name: single-request}]\n"),
            "a",
            Some(Ipv4Addr::new(10, 43, 0, 10)),
            &host(),
        );
        assert_eq!(c.nameservers, ["10.43.0.10", "1.1.1.1", "8.8.8.8"]);
        assert_eq!(
            c.searches,
            [
                "a.svc.cluster.local",
                "svc.cluster.local",
                "cluster.local",
                "lan",
                "example.org",
                "extra.example"
            ]
        );
        assert_eq!(c.options, ["ndots:1", "single-request"]);
        let many = ResolvConf {
            nameservers: (1..=5).map(|i| format!("10.0.0.{i}")).collect(),
            searches: (0..40).map(|i| format!("{}.example", "d".repeat(60 + i))).collect(),
            options: vec![],
        };
        let c = for_pod(&spec("dnsPolicy: Default\n"), "a", None, &many);
        assert_eq!(c.nameservers.len(), 3);
        assert!(c.searches.len() <= 32 && c.render().lines().nth(3).unwrap().len() <= "search ".len() + 2048);
    }
}
