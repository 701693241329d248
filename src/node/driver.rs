//! The edge of the reconcile loop: one task owns the [`Node`] core, carries out
//! its effects with the runtime and the store, and feeds results back.
//!
//! Every turn of the loop must be quick: starts, exits and teardowns run in
//! their own tasks and report back over the `node_events` channel.

use super::{Effect, Input, Node, PodKey};
use crate::api::manifest::Pod;
use crate::api::wire::Applied;
use crate::daemon::shutdown::Shutdown;
use crate::runtime::image::ImageError;
use crate::runtime::{proc, shim, Runtime, RuntimeError};
use crate::store::{PodRecord, RuntimeHandle, Store};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

/// Requests from the API to the node loop.
#[derive(Debug)]
pub enum NodeCmd {
    /// Create or update a pod; replies with what happened or why not.
    Apply {
        /// The pod.
        pod: Box<Pod>,
        /// The answer.
        reply: oneshot::Sender<Result<Applied, String>>,
    },
    /// Delete a pod.
    Delete {
        /// The pod.
        key: PodKey,
        /// The answer.
        reply: oneshot::Sender<Result<(), String>>,
    },
}

/// Everything the loop needs.
pub struct NodeDeps {
    /// The core.
    pub node: Node,
    /// The container runtime.
    pub runtime: Arc<Runtime>,
    /// The store.
    pub store: Arc<Store>,
    /// API requests.
    pub cmds: mpsc::Receiver<NodeCmd>,
    /// Stop.
    pub shutdown: Shutdown,
}

enum Branch {
    Cmd(NodeCmd),
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
    store: Arc<Store>,
    handles: HashMap<PodKey, Vec<RuntimeHandle>>,
    events: mpsc::Sender<(Input, Option<RuntimeHandle>)>,
}

/// Runs the node loop until shutdown. Containers keep running afterwards.
pub async fn run(deps: NodeDeps) {
    let NodeDeps {
        node,
        runtime,
        store,
        mut cmds,
        mut shutdown,
    } = deps;
    let (events_tx, mut events) = mpsc::channel(256);
    let mut d = Driver {
        node,
        runtime,
        store,
        handles: HashMap::new(),
        events: events_tx,
    };
    d.restore().await;
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
            Some(cmd) = cmds.recv() => Branch::Cmd(cmd),
            Some((ev, h)) = events.recv() => Branch::Event(ev, h),
            _ = sleep => Branch::Tick,
        };
        match branch {
            Branch::Stop => break,
            Branch::Cmd(cmd) => d.on_cmd(cmd),
            Branch::Event(ev, handle) => {
                if let (Input::Started { key, .. }, Some(h)) = (&ev, handle) {
                    let list = d.handles.entry(key.clone()).or_default();
                    list.retain(|x| x.container != h.container);
                    list.push(h);
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
        let fx = self.node.handle(input, now_ms());
        for e in fx {
            self.effect(e);
        }
    }

    fn on_cmd(&mut self, cmd: NodeCmd) {
        match cmd {
            NodeCmd::Apply { pod, reply } => {
                let _ = reply.send(self.apply(pod));
            }
            NodeCmd::Delete { key, reply } => {
                let known = self.node.keys().any(|k| *k == key);
                let _ = reply.send(if known {
                    self.feed(Input::Delete(key));
                    Ok(())
                } else {
                    Err(format!("pod {:?} not found in namespace {:?}", key.1, key.0))
                });
            }
        }
    }

    fn apply(&mut self, pod: Box<Pod>) -> Result<Applied, String> {
        let key = (pod.metadata.namespace().to_string(), pod.metadata.name.clone());
        let object = format!("pod/{}", key.1);
        let existing = self.store.get_pod(&key.0, &key.1).map_err(|e| e.to_string())?;
        if let Some(mut rec) = existing {
            if rec.pod.spec != pod.spec {
                return Err(format!(
                    "{object}: a pod's spec cannot change once created (as in Kubernetes); delete it and apply again"
                ));
            }
            if rec.pod == *pod {
                return Ok(Applied {
                    object,
                    action: "unchanged".into(),
                });
            }
            rec.pod = *pod;
            self.store.put_pod(&rec).map_err(|e| e.to_string())?;
            return Ok(Applied {
                object,
                action: "configured".into(),
            });
        }
        let uid = format!("{:016x}{:016x}", rand::random::<u64>(), rand::random::<u64>());
        let rec = PodRecord {
            pod: (*pod).clone(),
            uid: uid.clone(),
            created_at: now_ms(),
            status: Default::default(),
            runtime: Vec::new(),
        };
        // Durable before acknowledged.
        self.store.put_pod(&rec).map_err(|e| e.to_string())?;
        self.feed(Input::Apply { pod, uid });
        Ok(Applied {
            object,
            action: "created".into(),
        })
    }

    fn effect(&mut self, e: Effect) {
        match e {
            Effect::Start { key, uid, container } => {
                let rt = self.runtime.clone();
                let events = self.events.clone();
                let pod = match self.store.get_pod(&key.0, &key.1) {
                    Ok(Some(rec)) => rec.pod,
                    other => {
                        warn!(pod = ?key, ?other, "start for a pod missing from the store");
                        return;
                    }
                };
                tokio::spawn(async move { start_container(rt, events, key, uid, pod, container).await });
            }
            Effect::Kill { pid, signal } => {
                if let Ok(sig) = nix::sys::signal::Signal::try_from(signal) {
                    self.runtime.kill(pid, sig);
                }
            }
            Effect::Teardown { key, uid, containers } => {
                self.handles.remove(&key);
                if let Err(e) = self.store.delete_pod(&key.0, &key.1) {
                    warn!(pod = ?key, error = %e, "could not remove pod from the store");
                }
                let rt = self.runtime.clone();
                tokio::task::spawn_blocking(move || rt.delete_pod(&uid, &containers));
                info!(pod = ?key, "pod deleted");
            }
            Effect::Persist(key) => {
                let Some(status) = self.node.status(&key) else { return };
                let Ok(Some(mut rec)) = self.store.get_pod(&key.0, &key.1) else {
                    return;
                };
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

async fn start_container(
    rt: Arc<Runtime>,
    events: mpsc::Sender<(Input, Option<RuntimeHandle>)>,
    key: PodKey,
    uid: String,
    pod: Pod,
    name: String,
) {
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
    let result = async {
        rt.create_sandbox(&uid, &pod).await?;
        rt.create_bundle(&uid, &pod, &c)?;
        rt.start(&uid, &name).await
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
                RuntimeError::Image(ImageError::NotFound { .. }) => "ErrImageNeverPull",
                RuntimeError::Image(_) => "InvalidImage",
                _ => "CreateContainerError",
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
