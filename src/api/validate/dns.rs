//! Checks on `hostname`, `subdomain`, `dnsPolicy` and `dnsConfig`, with
//! Kubernetes' rules (`validateDNSPolicy`, `validatePodDNSConfig`).

use super::{dns_label, dns_subdomain};
use crate::api::manifest::{DnsPolicy, PodSpec};

/// At most this many name servers (glibc reads no more).
pub const MAX_NAMESERVERS: usize = 3;
/// At most this many search domains.
pub const MAX_SEARCHES: usize = 32;
/// At most this many characters in the search line.
pub const MAX_SEARCH_CHARS: usize = 2048;

/// Reports each problem as (`spec.…` field path, reason).
pub(super) fn validate_dns(spec: &PodSpec, bad: &mut impl FnMut(String, String)) {
    for (field, v) in [("spec.hostname", &spec.hostname), ("spec.subdomain", &spec.subdomain)] {
        if let Some(v) = v {
            if let Err(why) = dns_label(v) {
                bad(field.into(), why);
            }
        }
    }
    let none = spec.dns_policy == Some(DnsPolicy::None);
    let Some(c) = &spec.dns_config else {
        if none {
            bad("spec.dnsConfig".into(), "required when dnsPolicy is None".into());
        }
        return;
    };
    if none && c.nameservers.is_empty() {
        bad(
            "spec.dnsConfig.nameservers".into(),
            "at least one name server is required when dnsPolicy is None".into(),
        );
    }
    if c.nameservers.len() > MAX_NAMESERVERS {
        bad(
            "spec.dnsConfig.nameservers".into(),
            format!("{} given, at most {MAX_NAMESERVERS} allowed", c.nameservers.len()),
        );
    }
    for (i, ns) in c.nameservers.iter().enumerate() {
        if ns.parse::<std::net::IpAddr>().is_err() {
            bad(format!("spec.dnsConfig.nameservers[{i}]"), format!("{ns:?} is not an IP address"));
        }
    }
    if c.searches.len() > MAX_SEARCHES {
        bad(
            "spec.dnsConfig.searches".into(),
            format!("{} given, at most {MAX_SEARCHES} allowed", c.searches.len()),
        );
    }
    let chars = c.searches.iter().map(|s| s.len()).sum::<usize>() + c.searches.len().saturating_sub(1);
    if chars > MAX_SEARCH_CHARS {
        bad(
            "spec.dnsConfig.searches".into(),
            format!("{chars} characters, at most {MAX_SEARCH_CHARS} allowed"),
        );
    }
    for (i, s) in c.searches.iter().enumerate() {
        if let Err(why) = dns_subdomain(s.strip_suffix('.').unwrap_or(s)) {
            bad(format!("spec.dnsConfig.searches[{i}]"), why);
        }
    }
    for (i, o) in c.options.iter().enumerate() {
        if o.name.is_empty() {
            bad(format!("spec.dnsConfig.options[{i}].name"), "required".into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(yaml: &str) -> Vec<String> {
        let spec: PodSpec = serde_yaml_ng::from_str(&format!("containers: [{{name: c, image: busybox}}]\n{yaml}")).unwrap();
        let mut out = Vec::new();
        validate_dns(&spec, &mut |f, why| out.push(format!("{f}: {why}")));
        out
    }

    #[test]
    fn the_kubernetes_examples_pass() {
        // From "DNS for Services and Pods": dnsPolicy None with a dnsConfig.
        let ok = problems(
            "dnsPolicy: \"None\"\ndnsConfig:\n  nameservers: [192.0.2.1]\n  searches: [ns1.svc.cluster-domain.example, my.dns.search.suffix]\n  options:\n  - name: ndots\n    value: \"2\"\n  - name: edns0\n",
        );
        assert!(ok.is_empty(), "{ok:?}");
        assert!(problems("hostname: busybox-1\nsubdomain: busybox-subdomain\n").is_empty());
        assert!(problems("dnsPolicy: Default\n").is_empty());
    }

    #[test]
    fn each_problem_names_its_field() {
        assert_eq!(problems("dnsPolicy: None\n"), ["spec.dnsConfig: required when dnsPolicy is None"]);
        let p = problems("dnsPolicy: None\ndnsConfig: {searches: [a.b]}\n");
        assert!(p[0].starts_with("spec.dnsConfig.nameservers: at least one"), "{p:?}");
        let p = problems("dnsConfig: {nameservers: [1.1.1.1, 1.0.0.1, 8.8.8.8, 9.9.9.9]}\n");
        assert!(p[0].contains("4 given, at most 3"), "{p:?}");
        let p = problems("dnsConfig: {nameservers: [dns.example]}\n");
        assert!(
            p[0].starts_with("spec.dnsConfig.nameservers[0]: \"dns.example\" is not an IP"),
            "{p:?}"
        );
        let p = problems("dnsConfig: {searches: [Bad_Domain]}\n");
        assert!(p[0].starts_with("spec.dnsConfig.searches[0]"), "{p:?}");
        let p = problems("dnsConfig: {options: [{name: \"\"}]}\n");
        assert_eq!(p, ["spec.dnsConfig.options[0].name: required"]);
        let p = problems("hostname: Web_1\nsubdomain: a.b\n");
        assert!(p[0].starts_with("spec.hostname") && p[1].starts_with("spec.subdomain"), "{p:?}");
        let many: Vec<String> = (0..33).map(|i| format!("d{i}.example")).collect();
        let p = problems(&format!("dnsConfig: {{searches: [{}]}}\n", many.join(", ")));
        assert!(p[0].contains("33 given, at most 32"), "{p:?}");
    }

    #[test]
    fn an_unknown_policy_is_refused_by_name() {
        let e = serde_yaml_ng::from_str::<PodSpec>("containers: []\ndnsPolicy: ClusterLast\n").unwrap_err();
        assert!(e.to_string().contains("ClusterLast"), "{e}");
    }
}
