//! Pods of workloads as the cluster tests and benchmarks look at them.

use super::netns::Net;
use serde_json::Value;

/// A pod as the tests look at it.
#[derive(Debug, Clone)]
pub struct Live {
    pub name: String,
    pub node: String,
    pub image: String,
    pub ready: bool,
    pub terminating: bool,
}

pub fn parse(pods: &[Value], app: &str) -> Vec<Live> {
    pods.iter()
        .filter(|p| p["pod"]["metadata"]["labels"]["app"] == app)
        .map(|p| {
            let cs = p["status"]["containerStatuses"].as_array().cloned().unwrap_or_default();
            Live {
                name: p["pod"]["metadata"]["name"].as_str().unwrap_or("").into(),
                node: p["status"]["nodeName"].as_str().unwrap_or("").into(),
                image: p["pod"]["spec"]["containers"][0]["image"].as_str().unwrap_or("").into(),
                ready: p["status"]["phase"] == "Running" && !cs.is_empty() && cs.iter().all(|c| c["ready"] == true),
                terminating: p["status"]["terminating"] == true,
            }
        })
        .collect()
}

/// Pods with label `app`, as host `i` sees them.
pub fn pods(net: &Net, i: usize, app: &str) -> Option<Vec<Live>> {
    Some(parse(&net.pods(i, false)?, app))
}

/// Waits until host `i` sees exactly `n` Ready, non-terminating pods of `app` satisfying `f`.
pub fn wait_ready(net: &Net, i: usize, app: &str, n: usize, secs: u64, f: impl Fn(&[Live]) -> bool) -> Vec<Live> {
    net.wait_for(secs, &format!("{n} ready {app} pods"), || {
        let all = pods(net, i, app)?;
        let live: Vec<Live> = all.into_iter().filter(|p| !p.terminating).collect();
        (live.len() == n && live.iter().all(|p| p.ready) && f(&live)).then_some(live)
    })
}
