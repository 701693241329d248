//! The edge of the reconcile loop: one task owns the [`Node`] core, carries out
//! its effects with the runtime and the store, and feeds results back.
//!
//! What the node runs comes from the replicated state: the pods bound to it
//! in its own replica. On every applied change the driver compares them with
//! the pods it runs, starts the new ones and tears down the ones gone, and
//! sends every status change to the reporter (`report.rs`), which commits
//! them through the leader. Cut off from the cluster, the node goes on with
//! its replica as it is.
//!
//! Every turn of the loop must be quick: starts, exits, probes and teardowns
//! run in their own tasks and report back over the `node_events` channel.

use super::{Effect, Input, Node, PodKey};
use crate::api::downward::PodFacts;
use crate::api::manifest::Pod;
use crate::api::status::PodStatus;
use crate::daemon::shutdown::Shutdown;
use crate::net::dns::resolv::ResolvConf;
use crate::net::{NetError, PodNetwork};
use crate::runtime::image::ImageError;
use crate::runtime::{proc, shim, Runtime, RuntimeError};
use crate::state::{PodObject, Replica, StatusReport};
use crate::store::{PodRecord, RuntimeHandle, Store};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

/// Everything the loop needs.
pub struct NodeDeps {
    /// The core.
    pub node: Node,
    /// The container runtime.
    pub runtime: Arc<Runtime>,
    /// The pod network.
    pub net: Arc<PodNetwork>,
    /// The store.
    pub store: Arc<Store>,
    /// This node's copy of the cluster state.
    pub replica: Arc<Replica>,
    /// This node's name in it.
    pub node_name: String,
    /// This node's address (the downward API's `status.hostIP`).
    pub host_ip: std::net::IpAddr,
    /// The node's resolv.conf, for pods' DNS.
    pub resolv_conf: std::path::PathBuf,
    /// Status changes for the leader.
    pub reports: mpsc::UnboundedSender<StatusReport>,
    /// Stop.
    pub shutdown: Shutdown,
}

enum Branch {
    Desired,
    Event(Input, Option<RuntimeHandle>),
    Tick,
    Stop,
}

fn now_ms() -> u64 {
    shim::now_ms()
}

struct Driver {
    node: Node,
    runtime: Arc<Runtime>,
    net: Arc<PodNetwork>,
    store: Arc<Store>,
    handles: HashMap<PodKey, Vec<RuntimeHandle>>,
    events: mpsc::Sender<(Input, Option<RuntimeHandle>)>,
    replica: Arc<Replica>,
    node_name: String,
    host_ip: std::net::IpAddr,
    resolv_conf: std::path::PathBuf,
    reports: mpsc::UnboundedSender<StatusReport>,
    /// The last status sent for each pod (uid, status), so each is sent once.
    reported: HashMap<PodKey, (String, PodStatus)>,
    /// What the configMap and secret volumes of each pod were last written
    /// from, so a change in the state reaches them.
    projected: HashMap<PodKey, crate::runtime::projection::PodConfigs>,
}

/// Runs the node loop until shutdown. Containers keep running afterwards.
pub async fn run(deps: NodeDeps) {
    let NodeDeps {
        node,
        runtime,
        net,
        store,
        replica,
        node_name,
        host_ip,
        resolv_conf,
        reports,
        mut shutdown,
    } = deps;
    let (events_tx, mut events) = mpsc::channel(256);
    let mut desired = replica.subscribe();
    let mut d = Driver {
        node,
        runtime,
        net,
        store,
        handles: HashMap::new(),
        events: events_tx,
        replica,
        node_name,
        host_ip,
        resolv_conf,
        reports,
        reported: HashMap::new(),
        projected: HashMap::new(),
    };
    d.restore().await;
    d.sync();
    loop {
        let wake = d.node.next_wake();
        let sleep = async {
            match wake {
                Some(at) => tokio::time::sleep(std::time::Duration::from_millis(at.saturating_sub(now_ms()))).await,
                None => std::future::pending().await,
            }
        };
        let branch = tokio::select! {
            biased;
            _ = shutdown.wait() => Branch::Stop,
            Ok(()) = desired.changed() => Branch::Desired,
            Some((ev, h)) = events.recv() => Branch::Event(ev, h),
            _ = sleep => Branch::Tick,
        };
        match branch {
            Branch::Stop => break,
            Branch::Desired => d.sync(),
            Branch::Event(ev, handle) => {
                if let (Input::Started { key, .. }, Some(h)) = (&ev, handle) {
                    let list = d.handles.entry(key.clone()).or_default();
                    list.retain(|x| x.container != h.container);
                    list.push(h);
                    // The start wrote its volumes from the state as it was
                    // when it began (a pull may have taken minutes): check
                    // them against the state now.
                    d.projected.remove(key);
                    if let Ok(Some(p)) = d.replica.pod(&key.0, &key.1) {
                        d.refresh_volumes(key, &p);
                    }
                }
                d.feed(ev);
            }
            Branch::Tick => d.feed(Input::Tick),
        }
    }
    info!("node loop is done; containers keep running");
}

impl Driver {
    fn feed(&mut self, input: Input) {
        let failed = match &input {
            Input::ProbeResult {
                key,
                container,
                kind,
                ok: false,
                message,
                ..
            } => {
                debug!(pod = ?key, %container, %kind, %message, "probe failed");
                Some((key.clone(), container.clone(), *kind, message.clone()))
            }
            _ => None,
        };
        let fx = self.node.handle(input, now_ms());
        if let Some((key, container, kind, message)) = failed {
            if fx.iter().any(|e| matches!(e, Effect::Kill { .. })) {
                warn!(pod = ?key, %container, %kind, %message, "probe failed past its threshold; killing the container");
            }
        }
        for e in fx {
            self.effect(e);
        }
    }

    /// Brings the pods this node runs in line with the pods bound to it in
    /// the replica, and reports statuses the replica does not have yet.
    fn sync(&mut self) {
        let desired = match self.replica.pods_on(&self.node_name) {
            Ok(p) => p,
            Err(e) => return warn!(error = %e, "could not read the pods bound to this node"),
        };
        let wanted: HashMap<PodKey, &PodObject> = desired.iter().map(|p| (p.key(), p)).collect();
        let running: Vec<PodKey> = self.node.keys().cloned().collect();
        for key in running {
            let Some((uid, deleting)) = self.node.incarnation(&key) else {
                continue;
            };
            let keep = wanted.get(&key).is_some_and(|p| p.uid == uid && p.deleting_ms.is_none());
            if !keep && !deleting {
                info!(pod = ?key, "pod is no longer bound here; deleting");
                self.feed(Input::Delete(key));
            }
        }
        for p in &desired {
            let key = p.key();
            match self.node.incarnation(&key) {
                None if p.deleting_ms.is_none() => self.start_pod(p),
                // The pod is gone here but not yet in the state: say so again.
                None => self.report(key, &p.uid, None),
                Some((uid, _)) if uid == p.uid => {
                    self.refresh_volumes(&key, p);
                    if let Some(mut s) = self.node.status(&key) {
                        s.terminating = p.deleting_ms.is_some();
                        if s != p.status {
                            self.report(key, &p.uid.clone(), Some(s));
                        }
                    }
                }
                Some(_) => {} // the old incarnation is still being torn down
            }
        }
    }

    /// Rewrites a running pod's configMap and secret volumes when what
    /// they show changed in the state (the environment stays as started,
    /// as in Kubernetes).
    fn refresh_volumes(&mut self, key: &PodKey, p: &PodObject) {
        if !super::configs::has_config_volumes(&p.pod) || p.deleting_ms.is_some() {
            return;
        }
        let now = super::configs::pod_configs(&self.replica, &p.pod);
        if self.projected.get(key) == Some(&now) {
            return;
        }
        self.projected.insert(key.clone(), now.clone());
        let (rt, uid, pod, key) = (self.runtime.clone(), p.uid.clone(), p.pod.clone(), key.clone());
        tokio::task::spawn_blocking(move || match rt.project(&uid, &pod, &now) {
            Ok(changed) if !changed.is_empty() => info!(pod = ?key, volumes = ?changed, "volumes updated from the state"),
            Ok(_) => {}
            Err(e) => warn!(pod = ?key, error = %e, "updating volumes failed"),
        });
    }

    fn start_pod(&mut self, p: &PodObject) {
        let key = p.key();
        let rec = PodRecord {
            pod: p.pod.clone(),
            uid: p.uid.clone(),
            created_at: p.created_ms,
            status: Default::default(),
            runtime: Vec::new(),
        };
        if let Err(e) = self.store.put_pod(&rec) {
            return warn!(pod = ?key, error = %e, "could not record the pod locally");
        }
        info!(pod = ?key, uid = %p.uid, "starting pod bound to this node");
        self.feed(Input::Apply {
            pod: Box::new(p.pod.clone()),
            uid: p.uid.clone(),
        });
    }

    /// Queues a status for the leader unless this one was sent already.
    fn report(&mut self, key: PodKey, uid: &str, status: Option<PodStatus>) {
        let sent = self.reported.get(&key);
        match &status {
            Some(s) if sent.is_some_and(|(u, x)| u == uid && x == s) => return,
            _ => {}
        }
        match &status {
            Some(s) => self.reported.insert(key.clone(), (uid.to_string(), s.clone())),
            None => self.reported.remove(&key),
        };
        let _ = self.reports.send(StatusReport {
            namespace: key.0,
            name: key.1,
            uid: uid.to_string(),
            status,
        });
    }

    /// What a pod's resolv.conf is made of: the cluster DNS address and
    /// the node's own resolv.conf (empty if unreadable, which leaves
    /// `dnsPolicy: Default` pods without name servers, as the kubelet).
    fn pod_dns(&self) -> PodDns {
        let cluster_dns = match self.replica.network() {
            Ok(plan) => Some(plan.dns_ip()),
            Err(e) => {
                warn!(error = %e, "reading the address plan failed; pods start with the node's resolvers");
                None
            }
        };
        let host = match std::fs::read_to_string(&self.resolv_conf) {
            Ok(text) => ResolvConf::parse(&text),
            Err(e) => {
                warn!(path = %self.resolv_conf.display(), error = %e, "the node's resolv.conf is unreadable");
                ResolvConf::default()
            }
        };
        PodDns { cluster_dns, host }
    }

    fn effect(&mut self, e: Effect) {
        match e {
            Effect::Start { key, uid, container } => {
                let rt = self.runtime.clone();
                let net = self.net.clone();
                let events = self.events.clone();
                let pod = match self.store.get_pod(&key.0, &key.1) {
                    Ok(Some(rec)) => rec.pod,
                    other => {
                        warn!(pod = ?key, ?other, "start for a pod missing from the store");
                        return;
                    }
                };
                let configs = super::configs::pod_configs(&self.replica, &pod);
                if super::configs::has_config_volumes(&pod) {
                    self.projected.insert(key.clone(), configs.clone());
                }
                let facts = PodFacts {
                    uid: uid.clone(),
                    node_name: self.node_name.clone(),
                    pod_ip: None,
                    host_ip: Some(self.host_ip),
                    configs,
                };
                let dns = self.pod_dns();
                let job = StartJob {
                    key,
                    facts,
                    dns,
                    pull_secrets: super::configs::pull_secrets(&self.replica, &pod),
                    pod,
                    name: container,
                };
                tokio::spawn(async move { start_container(rt, net, events, job).await });
            }
            Effect::Probe {
                key,
                uid,
                container,
                kind,
                probe,
                pid,
            } => {
                let rt = self.runtime.clone();
                let events = self.events.clone();
                tokio::spawn(async move {
                    let result = rt.probe(&uid, &container, &probe).await;
                    let input = Input::ProbeResult {
                        key,
                        container,
                        kind,
                        pid,
                        ok: result.is_ok(),
                        message: result.err().map(|e| e.to_string()).unwrap_or_default(),
                    };
                    let _ = events.send((input, None)).await;
                });
            }
            Effect::Kill { pid, signal } => {
                if let Ok(sig) = nix::sys::signal::Signal::try_from(signal) {
                    self.runtime.kill(pid, sig);
                }
            }
            Effect::Teardown { key, uid, containers } => {
                self.handles.remove(&key);
                self.projected.remove(&key);
                if let Err(e) = self.store.delete_pod(&key.0, &key.1) {
                    warn!(pod = ?key, error = %e, "could not remove pod from the store");
                }
                let (rt, net) = (self.runtime.clone(), self.net.clone());
                let gone = uid.clone();
                tokio::spawn(async move {
                    if let Err(e) = net.detach(&gone).await {
                        warn!(uid = %gone, error = %e, "could not remove the pod's network");
                    }
                    let _ = tokio::task::spawn_blocking(move || rt.delete_pod(&gone, &containers)).await;
                });
                info!(pod = ?key, "pod deleted");
                self.report(key, &uid, None);
                // A new incarnation of the same name may be waiting.
                self.sync();
            }
            Effect::Persist(key) => {
                let Some(status) = self.node.status(&key) else { return };
                let Ok(Some(mut rec)) = self.store.get_pod(&key.0, &key.1) else {
                    return;
                };
                self.report(key.clone(), &rec.uid, Some(status.clone()));
                rec.status = status;
                rec.runtime = self.handles.get(&key).cloned().unwrap_or_default();
                if let Err(e) = self.store.put_pod(&rec) {
                    warn!(pod = ?key, error = %e, "could not store pod status");
                }
            }
        }
    }

    /// Loads the pods of the store and finds their containers again.
    async fn restore(&mut self) {
        let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .unwrap_or_default()
            .trim()
            .to_string();
        let rebooted = self.store.meta("boot_id").ok().flatten().is_some_and(|b| b != boot);
        let _ = self.store.set_meta("boot_id", &boot);
        let pods = match self.store.list_pods() {
            Ok(p) => p,
            Err(e) => {
                warn!(error = %e, "could not load pods");
                return;
            }
        };
        // A teardown cut short by a stop of the agent finishes now.
        let known: std::collections::HashSet<&str> = pods.iter().map(|p| p.uid.as_str()).collect();
        let pods_dir = self.runtime.paths().data.join("pods");
        for e in std::fs::read_dir(&pods_dir).into_iter().flatten().flatten() {
            let uid = e.file_name().to_string_lossy().into_owned();
            if !known.contains(uid.as_str()) {
                let containers: Vec<String> = std::fs::read_dir(e.path().join("containers"))
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(|c| c.file_name().to_string_lossy().into_owned())
                    .collect();
                info!(%uid, "removing leftovers of a deleted pod");
                self.runtime.delete_pod(&uid, &containers);
            }
        }
        let now = now_ms();
        for rec in pods {
            let key = rec.key();
            self.node.restore(rec.pod.clone(), rec.uid.clone(), &rec.status, now);
            for (name, pid) in self.node.pids(&key) {
                let handle = rec.runtime.iter().find(|h| h.container == name).cloned();
                match handle {
                    Some(h) if !rebooted && proc::is_same(h.shim_pid, h.shim_start) => {
                        info!(pod = ?key, container = %name, pid, "re-adopted running container");
                        self.handles.entry(key.clone()).or_default().push(h.clone());
                        let bundle = self.runtime.paths().bundle(&rec.uid, &name);
                        watch_exit(self.events.clone(), key.clone(), name, bundle, None, h.shim_pid);
                    }
                    _ => {
                        let bundle = self.runtime.paths().bundle(&rec.uid, &name);
                        let input = match shim::read_exit(&bundle) {
                            Some(exit) if !rebooted => Input::Exited {
                                key: key.clone(),
                                container: name,
                                exit,
                            },
                            _ => Input::Lost {
                                key: key.clone(),
                                container: name,
                            },
                        };
                        self.feed(input);
                    }
                }
            }
            // A deletion that was under way when the agent stopped goes on.
            if rec.status.terminating {
                self.feed(Input::Delete(key));
            }
        }
        self.feed(Input::Tick);
    }
}

/// Why a container did not start.
#[derive(Debug, thiserror::Error)]
enum StartError {
    #[error(transparent)]
    Image(#[from] super::pull::ImageFailure),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("pod network: {0}")]
    Net(#[from] NetError),
}

/// What a pod's resolv.conf is made of.
struct PodDns {
    cluster_dns: Option<std::net::Ipv4Addr>,
    host: ResolvConf,
}

/// One container to start, and what its pod needs.
struct StartJob {
    key: PodKey,
    facts: PodFacts,
    dns: PodDns,
    pod: Pod,
    name: String,
    /// The registry credentials of the pod's `imagePullSecrets`.
    pull_secrets: Vec<std::collections::BTreeMap<String, (String, String)>>,
}

async fn start_container(rt: Arc<Runtime>, net: Arc<PodNetwork>, events: mpsc::Sender<(Input, Option<RuntimeHandle>)>, job: StartJob) {
    let StartJob {
        key,
        mut facts,
        dns,
        pod,
        name,
        pull_secrets,
    } = job;
    let Some(c) = pod
        .spec
        .init_containers
        .iter()
        .chain(&pod.spec.containers)
        .find(|c| c.name == name)
        .cloned()
    else {
        return;
    };
    let uid = facts.uid.clone();
    let domain = crate::runtime::image::ImageRef::parse(&c.image)
        .map(|r| r.domain)
        .unwrap_or_default();
    let creds = crate::runtime::image::docker_config::for_registry(&pull_secrets, &domain);
    let result = async {
        rt.create_sandbox(&uid, &pod).await?;
        let ip = net.attach(&uid, &rt.paths().pod(&uid).join("ns/net")).await?;
        let _ = events.send((Input::Addressed { key: key.clone(), ip }, None)).await;
        facts.pod_ip = Some(ip.into());
        let resolv = crate::net::dns::resolv::for_pod(&pod.spec, pod.metadata.namespace(), dns.cluster_dns, &dns.host);
        rt.write_pod_files(&uid, &pod, ip, &resolv.render()).await?;
        let report = |progress| {
            let input = Input::Pulling {
                key: key.clone(),
                container: name.clone(),
                progress,
            };
            let _ = events.try_send((input, None));
        };
        super::pull::ensure(&rt, &c, &creds, report).await?;
        rt.create_bundle(&uid, &pod, &c, &facts)?;
        Ok::<_, StartError>(rt.start(&uid, &name).await?)
    }
    .await;
    match result {
        Ok(started) => {
            let bundle = rt.paths().bundle(&uid, &name);
            let shim_pid = started.handle.shim_pid;
            let _ = events
                .send((
                    Input::Started {
                        key: key.clone(),
                        container: name.clone(),
                        pid: started.pid,
                    },
                    Some(started.handle),
                ))
                .await;
            watch_exit(events, key, name, bundle, Some(started.child), shim_pid);
        }
        Err(e) => {
            let reason = match &e {
                StartError::Image(f) => f.reason,
                StartError::Runtime(RuntimeError::Image(ImageError::NotFound { .. })) => "ErrImageNeverPull",
                StartError::Runtime(RuntimeError::Config(_)) => "CreateContainerConfigError",
                StartError::Runtime(RuntimeError::Image(_)) => "InvalidImage",
                StartError::Runtime(_) => "CreateContainerError",
                StartError::Net(NetError::NotReady) => "NetworkNotReady",
                StartError::Net(_) => "CreatePodSandboxError",
            };
            warn!(pod = ?key, container = %name, error = %e, "container did not start");
            let _ = events
                .send((
                    Input::StartFailed {
                        key,
                        container: name,
                        reason: reason.into(),
                        message: e.to_string(),
                    },
                    None,
                ))
                .await;
        }
    }
}

/// Waits for the shim to exit, then reports how the container ended.
fn watch_exit(
    events: mpsc::Sender<(Input, Option<RuntimeHandle>)>,
    key: PodKey,
    name: String,
    bundle: std::path::PathBuf,
    child: Option<tokio::process::Child>,
    shim_pid: i32,
) {
    tokio::spawn(async move {
        match child {
            Some(mut c) => {
                let _ = c.wait().await;
            }
            None => proc::exited(shim_pid).await,
        }
        let input = match shim::read_exit(&bundle) {
            Some(exit) => Input::Exited {
                key,
                container: name,
                exit,
            },
            None => Input::Lost { key, container: name },
        };
        let _ = events.send((input, None)).await;
    });
}
