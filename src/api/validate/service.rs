//! Semantic checks on Services and Endpoints, each naming the field it
//! refuses, worded as the Kubernetes API server words them where it can.
//! Checks that need the cluster (a free address, a free node port, the
//! service CIDR) happen when the write is applied (`state::service`).

use super::{dns_label, label_key, label_value};
use crate::api::manifest::{EndpointPort, EndpointSlice, Endpoints, IntOrString, ObjectMeta, Service};
use std::collections::HashSet;
use std::net::Ipv4Addr;

/// Every problem found in a Service, each as `field.path: what is wrong`.
pub fn validate_service(s: &Service) -> Vec<String> {
    let mut problems = Vec::new();
    let mut bad = |field: &str, why: String| problems.push(format!("{field}: {why}"));
    if s.api_version != "v1" {
        bad("apiVersion", format!("{:?} is not supported for Service (use v1)", s.api_version));
    }
    meta(&s.metadata, &mut bad);
    let spec = &s.spec;
    let ty = spec.service_type();
    if !matches!(ty, "ClusterIP" | "NodePort" | "LoadBalancer" | "ExternalName") {
        bad(
            "spec.type",
            format!("Unsupported value: {ty:?}: supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\""),
        );
    }
    if ty == "ExternalName" {
        match spec.external_name.as_deref() {
            None | Some("") => bad("spec.externalName", "Required value".into()),
            Some(n) => {
                if let Err(why) = super::dns_subdomain(n.trim_end_matches('.')) {
                    bad("spec.externalName", why);
                }
            }
        }
    } else if spec.external_name.is_some() {
        bad(
            "spec.externalName",
            format!("may only be set when `type` is 'ExternalName', not {ty:?}"),
        );
    }
    for (k, v) in &spec.selector {
        if let Err(why) = label_key(k).and_then(|_| label_value(v)) {
            bad(&format!("spec.selector[{k:?}]"), why);
        }
    }
    match spec.cluster_ip.as_deref() {
        None | Some("") | Some("None") => {}
        Some(ip) => {
            if ip.parse::<Ipv4Addr>().is_err() {
                bad("spec.clusterIP", format!("{ip:?} must be a valid IPv4 address, \"None\" or empty"));
            }
        }
    }
    for (i, ip) in spec.external_ips.iter().enumerate() {
        if ip.parse::<Ipv4Addr>().is_err() {
            bad(&format!("spec.externalIPs[{i}]"), format!("{ip:?} must be a valid IPv4 address"));
        }
    }
    if spec.headless() && spec.has_node_ports() {
        bad("spec.clusterIP", format!("may not be \"None\" for type {ty:?}"));
    }
    match spec.cluster_ips.as_slice() {
        [] => {}
        [one] if Some(one.as_str()) == spec.cluster_ip.as_deref() || spec.cluster_ip.is_none() => {}
        [_] => bad("spec.clusterIPs[0]", "must match spec.clusterIP".into()),
        _ => bad("spec.clusterIPs", "one IPv4 address at most (Shoal is single-stack IPv4)".into()),
    }
    for (i, f) in spec.ip_families.iter().enumerate() {
        if f != "IPv4" {
            bad(
                &format!("spec.ipFamilies[{i}]"),
                format!("Unsupported value: {f:?}: supported values: \"IPv4\""),
            );
        }
    }
    if let Some(p) = spec.ip_family_policy.as_deref().filter(|p| *p != "SingleStack") {
        // PreferDualStack falls back to one family, as Kubernetes does on a single-stack cluster.
        if p != "PreferDualStack" {
            bad(
                "spec.ipFamilyPolicy",
                format!("Unsupported value: {p:?}: this cluster is single-stack IPv4"),
            );
        }
    }
    for (field, v) in [
        ("spec.externalTrafficPolicy", &spec.external_traffic_policy),
        ("spec.internalTrafficPolicy", &spec.internal_traffic_policy),
    ] {
        if let Some(v) = v.as_deref().filter(|v| *v != "Cluster") {
            bad(field, format!("Unsupported value: {v:?}: supported values: \"Cluster\""));
        }
    }
    match spec.session_affinity.as_deref() {
        None | Some("None") | Some("ClientIP") => {}
        Some(other) => bad(
            "spec.sessionAffinity",
            format!("Unsupported value: {other:?}: supported values: \"ClientIP\", \"None\""),
        ),
    }
    if let Some(t) = spec
        .session_affinity_config
        .as_ref()
        .and_then(|c| c.client_ip.as_ref())
        .and_then(|c| c.timeout_seconds)
    {
        if !(1..=86_400).contains(&t) {
            bad(
                "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                "must be greater than 0 and less than 86400".into(),
            );
        }
    }
    if spec.ports.is_empty() && ty != "ExternalName" && !spec.headless() {
        bad("spec.ports", "Required value".into());
    }
    let mut names = HashSet::new();
    let mut seen = HashSet::new();
    for (i, p) in spec.ports.iter().enumerate() {
        let at = |f: &str| format!("spec.ports[{i}].{f}");
        match &p.name {
            Some(n) => {
                if let Err(why) = dns_label(n) {
                    bad(&at("name"), why);
                }
                if !names.insert(n.clone()) {
                    bad(&at("name"), format!("Duplicate value: {n:?}"));
                }
            }
            None if spec.ports.len() > 1 => bad(&at("name"), "Required value (the Service has several ports)".into()),
            None => {}
        }
        if !matches!(p.protocol(), "TCP" | "UDP") {
            bad(
                &at("protocol"),
                format!("Unsupported value: {:?}: supported values: \"TCP\", \"UDP\"", p.protocol()),
            );
        }
        if !(1..=65_535).contains(&p.port) {
            bad(&at("port"), "must be between 1 and 65535, inclusive".into());
        }
        if !seen.insert((p.port, p.protocol().to_string())) {
            bad(&at("port"), format!("Duplicate value: {}/{}", p.port, p.protocol()));
        }
        match &p.target_port {
            Some(IntOrString::Int(t)) if !(1..=65_535).contains(t) => {
                bad(&at("targetPort"), "must be between 1 and 65535, inclusive".into())
            }
            Some(IntOrString::String(n)) => {
                if let Err(why) = dns_label(n).and_then(|_| {
                    if n.len() > 15 {
                        Err("must be no more than 15 characters".into())
                    } else {
                        Ok(())
                    }
                }) {
                    bad(&at("targetPort"), why);
                }
            }
            _ => {}
        }
        if let Some(np) = p.node_port {
            if !spec.has_node_ports() {
                bad(&at("nodePort"), format!("may not be used when `type` is {ty:?}"));
            } else if !(30_000..=32_767).contains(&np) {
                bad(
                    &at("nodePort"),
                    format!("provided port is not in the valid range. The range of valid ports is 30000-32767 (got {np})"),
                );
            }
        }
    }
    problems
}

/// Every problem found in an Endpoints object.
pub fn validate_endpoints(e: &Endpoints) -> Vec<String> {
    let mut problems = Vec::new();
    let mut bad = |field: &str, why: String| problems.push(format!("{field}: {why}"));
    if e.api_version != "v1" {
        bad("apiVersion", format!("{:?} is not supported for Endpoints (use v1)", e.api_version));
    }
    meta(&e.metadata, &mut bad);
    for (i, s) in e.subsets.iter().enumerate() {
        for (list, addrs) in [("addresses", &s.addresses), ("notReadyAddresses", &s.not_ready_addresses)] {
            for (j, a) in addrs.iter().enumerate() {
                endpoint_ip(&format!("subsets[{i}].{list}[{j}].ip"), &a.ip, &mut bad);
            }
        }
        for (j, p) in s.ports.iter().enumerate() {
            endpoint_port(&format!("subsets[{i}].ports[{j}]"), p, &mut bad);
        }
    }
    problems
}

/// Every problem found in an EndpointSlice.
pub fn validate_endpoint_slice(e: &EndpointSlice) -> Vec<String> {
    let mut problems = Vec::new();
    let mut bad = |field: &str, why: String| problems.push(format!("{field}: {why}"));
    if e.api_version != "discovery.k8s.io/v1" {
        bad(
            "apiVersion",
            format!("{:?} is not supported for EndpointSlice (use discovery.k8s.io/v1)", e.api_version),
        );
    }
    if let Err(why) = super::dns_subdomain(&e.metadata.name) {
        bad("metadata.name", why);
    }
    if e.address_type != "IPv4" {
        bad(
            "addressType",
            format!(
                "Unsupported value: {:?}: this cluster is single-stack IPv4 (use \"IPv4\")",
                e.address_type
            ),
        );
    }
    for (i, ep) in e.endpoints.iter().enumerate() {
        if ep.addresses.len() != 1 {
            bad(&format!("endpoints[{i}].addresses"), "must contain exactly 1 address".into());
        }
        for (j, a) in ep.addresses.iter().enumerate() {
            endpoint_ip(&format!("endpoints[{i}].addresses[{j}]"), a, &mut bad);
        }
    }
    for (j, p) in e.ports.iter().enumerate() {
        endpoint_port(&format!("ports[{j}]"), p, &mut bad);
    }
    problems
}

fn endpoint_ip(field: &str, ip: &str, bad: &mut impl FnMut(&str, String)) {
    match ip.parse::<Ipv4Addr>() {
        Err(_) => bad(field, format!("{ip:?} must be a valid IPv4 address")),
        Ok(ip) if ip.is_loopback() || ip.is_unspecified() || ip.is_multicast() || ip.is_link_local() => bad(
            field,
            format!("{ip} may not be a loopback, link-local, multicast or unspecified address"),
        ),
        Ok(_) => {}
    }
}

fn endpoint_port(field: &str, p: &EndpointPort, bad: &mut impl FnMut(&str, String)) {
    if !(1..=65_535).contains(&p.port) {
        bad(&format!("{field}.port"), "must be between 1 and 65535, inclusive".into());
    }
    let proto = p.protocol.as_deref().unwrap_or("TCP");
    if !matches!(proto, "TCP" | "UDP") {
        bad(
            &format!("{field}.protocol"),
            format!("Unsupported value: {proto:?}: supported values: \"TCP\", \"UDP\""),
        );
    }
}

fn meta(m: &ObjectMeta, bad: &mut impl FnMut(&str, String)) {
    // A Service's name is a DNS label: it becomes `<name>.<ns>.svc.cluster.local`.
    if let Err(why) = dns_label(&m.name) {
        bad("metadata.name", why);
    }
    if let Some(ns) = &m.namespace {
        if let Err(why) = dns_label(ns) {
            bad("metadata.namespace", why);
        }
    }
    for (k, v) in &m.labels {
        if let Err(why) = label_key(k).and_then(|_| label_value(v)) {
            bad(&format!("metadata.labels[{k:?}]"), why);
        }
    }
}
