//! The `shoal-api` server: one task per connection, one per stream; each
//! stream carries one request.

use crate::api::manifest::Container;
use crate::api::status::ContainerState;
use crate::api::wire::{PodRef, Reply, Request};
use crate::daemon::shutdown::Shutdown;
use crate::runtime::image::ImageStore;
use crate::runtime::Runtime;
use crate::store::{PodRecord, Store};
use crate::transport::framing::{read_frame, write_frame, Frame, FrameError};
use std::sync::Arc;
use tokio::io::AsyncReadExt;
use tracing::{debug, info, warn};

/// What request handlers share.
#[derive(Clone)]
pub struct ApiDeps {
    /// The node's local store: the pods it runs, for logs and exec.
    pub store: Arc<Store>,
    /// The runtime, for logs and exec.
    pub runtime: Arc<Runtime>,
    /// Membership, tokens, leave, and Raft for every object write.
    pub cluster: super::cluster_api::ClusterDeps,
}

/// Serves one API connection: a task per stream. `peer` is the client
/// certificate's common name (`user:admin`, `node:NAME`).
pub async fn connection(conn: quinn::Connection, peer: String, deps: ApiDeps, mut shutdown: Shutdown) {
    let peer: Arc<str> = peer.into();
    loop {
        let (send, recv) = tokio::select! {
            biased;
            _ = shutdown.wait() => return,
            s = conn.accept_bi() => match s {
                Ok(s) => s,
                Err(_) => return,
            },
        };
        let deps = deps.clone();
        let peer = peer.clone();
        tokio::spawn(async move {
            if let Err(e) = stream(send, recv, deps, &peer).await {
                debug!(error = %e, "api stream ended early");
            }
        });
    }
}

async fn reply(send: &mut quinn::SendStream, r: &Reply) -> Result<(), FrameError> {
    write_frame(send, &Frame::json(r)).await
}

fn error(message: impl Into<String>) -> Reply {
    Reply::Error { message: message.into() }
}

async fn stream(mut send: quinn::SendStream, mut recv: quinn::RecvStream, deps: ApiDeps, peer: &str) -> Result<(), FrameError> {
    let Some(frame) = read_frame(&mut recv).await? else { return Ok(()) };
    let req: Request = match frame.decode() {
        Ok(r) => r,
        Err(e) => {
            reply(&mut send, &error(format!("bad request: {e}"))).await?;
            return Ok(());
        }
    };
    let writes = matches!(
        req,
        Request::Apply { .. }
            | Request::DeletePod(_)
            | Request::DeleteWorkload { .. }
            | Request::Workload { .. }
            | Request::Drain { .. }
            | Request::DeleteService { .. }
            | Request::DeleteConfig { .. }
            | Request::Create { .. }
    );
    if writes && peer != super::cluster_api::ADMIN {
        reply(
            &mut send,
            &error(format!("{peer} may read but not write objects; use the admin credentials")),
        )
        .await?;
        return Ok(());
    }
    match req {
        Request::Apply { manifest } => {
            let r = super::objects::apply(&deps.cluster.consensus, &manifest).await;
            reply(&mut send, &r).await?;
        }
        Request::GetPods { namespace } => {
            let r = super::objects::pods(&deps.cluster.consensus, namespace.as_deref());
            reply(&mut send, &r).await?;
        }
        Request::GetPod(p) => {
            let r = super::objects::pod(&deps.cluster.consensus, &p);
            reply(&mut send, &r).await?;
        }
        Request::DeletePod(p) => {
            let r = super::objects::delete(&deps.cluster.consensus, &p).await;
            reply(&mut send, &r).await?;
        }
        Request::GetWorkloads { kind, namespace, name } => {
            let r = super::workloads::get(&deps.cluster.consensus, kind, namespace.as_deref(), name.as_deref());
            reply(&mut send, &r).await?;
        }
        Request::DeleteWorkload {
            kind,
            namespace,
            name,
            cascade,
        } => {
            let r = super::workloads::delete(&deps.cluster.consensus, kind, &namespace, &name, cascade).await;
            reply(&mut send, &r).await?;
        }
        Request::Workload {
            kind,
            namespace,
            name,
            action,
        } => {
            let r = super::workloads::act(&deps.cluster.consensus, kind, &namespace, &name, action).await;
            reply(&mut send, &r).await?;
        }
        Request::Drain { node, include_daemonsets } => {
            let r = super::workloads::drain(&deps.cluster.consensus, &node, include_daemonsets).await;
            reply(&mut send, &r).await?;
        }
        Request::GetServices { namespace, name } => {
            let r = super::services::get(&deps.cluster, namespace.as_deref(), name.as_deref()).await;
            reply(&mut send, &r).await?;
        }
        Request::DeleteService { kind, namespace, name } => {
            let r = super::services::delete(&deps.cluster.consensus, &kind, &namespace, &name).await;
            reply(&mut send, &r).await?;
        }
        Request::GetConfigs { kind, namespace, name } => {
            let r = super::objects::configs(&deps.cluster.consensus, &kind, namespace.as_deref(), name.as_deref());
            reply(&mut send, &r).await?;
        }
        Request::DeleteConfig { kind, namespace, name } => {
            let r = super::objects::delete_config(&deps.cluster.consensus, &kind, &namespace, &name).await;
            reply(&mut send, &r).await?;
        }
        Request::Create { manifest } => {
            let r = super::objects::create(&deps.cluster.consensus, &manifest).await;
            reply(&mut send, &r).await?;
        }
        Request::ImagePull { reference } => pull(&deps, &mut send, &reference).await?,
        Request::Logs { pod, container, follow } => logs(&deps, &mut send, &pod, container, follow).await?,
        Request::Exec { pod, container, command } => exec(&deps, &mut send, &pod, container, command).await?,
        Request::ImageImport { size } => {
            let r = import(deps.runtime.images(), &mut recv, size).await;
            reply(&mut send, &r).await?;
        }
        Request::ImageList => {
            let nodes = deps.cluster.consensus.replica.nodes().unwrap_or_default();
            let r = match deps.runtime.images().list() {
                Ok(local) => Reply::Images {
                    images: cluster_images(local, &nodes),
                },
                Err(e) => error(e.to_string()),
            };
            reply(&mut send, &r).await?;
        }
        Request::ImageRemove { reference } => {
            let pods = deps.store.list_pods().unwrap_or_default();
            let in_use = |r: &str| {
                pods.iter()
                    .find(|p| {
                        p.pod
                            .spec
                            .init_containers
                            .iter()
                            .chain(&p.pod.spec.containers)
                            .any(|c| normal(&c.image) == r)
                    })
                    .map(|p| format!("{}/{}", p.key().0, p.key().1))
            };
            let r = match deps.runtime.images().remove(&reference, in_use) {
                Ok(i) => Reply::Images { images: vec![i] },
                Err(e) => error(e.to_string()),
            };
            reply(&mut send, &r).await?;
        }
        Request::GetNodes
        | Request::GossipInfo
        | Request::Leave
        | Request::TokenCreate { .. }
        | Request::TokenList
        | Request::TokenRemove { .. }
        | Request::GetClusterNodes
        | Request::Cordon { .. }
        | Request::DeleteNode { .. }
        | Request::GetEvents { .. }
        | Request::Linearize
        | Request::Taint { .. }
        | Request::Label { .. } => {
            let r = super::cluster_api::handle(&deps.cluster, peer, req).await;
            reply(&mut send, &r).await?;
            if matches!(r, Reply::Left { .. }) {
                let _ = send.finish();
                let _ = send.stopped().await;
                deps.cluster.stop.fire();
                return Ok(());
            }
        }
    }
    let _ = send.finish();
    let _ = send.stopped().await;
    Ok(())
}

fn normal(image: &str) -> String {
    crate::runtime::image::ImageRef::parse(image)
        .map(|r| r.to_string())
        .unwrap_or_default()
}

/// A pod this node runs; for one that runs elsewhere, where to ask.
fn find(deps: &ApiDeps, p: &PodRef) -> Result<PodRecord, String> {
    if let Some(rec) = deps.store.get_pod(&p.namespace, &p.name).map_err(|e| e.to_string())? {
        return Ok(rec);
    }
    let c = &deps.cluster.consensus;
    match c.replica.pod(&p.namespace, &p.name).map_err(|e| e.to_string())? {
        None => Err(format!("pod {:?} not found in namespace {:?}", p.name, p.namespace)),
        Some(obj) => match obj.node.and_then(|n| c.replica.node(&n).ok().flatten()) {
            Some(n) => Err(format!(
                "pod {:?} runs on node {}; ask that node: --server {}",
                p.name, n.name, n.addr
            )),
            None => Err(format!("pod {:?} is not running on any node yet", p.name)),
        },
    }
}

fn pick(rec: &PodRecord, container: Option<String>) -> Result<Container, String> {
    let all: Vec<&Container> = rec.pod.spec.init_containers.iter().chain(&rec.pod.spec.containers).collect();
    match container {
        Some(name) => all
            .into_iter()
            .find(|c| c.name == name)
            .cloned()
            .ok_or_else(|| format!("container {name:?} is not in pod {:?}", rec.pod.metadata.name)),
        None => Ok(rec.pod.spec.containers[0].clone()),
    }
}

async fn logs(deps: &ApiDeps, send: &mut quinn::SendStream, p: &PodRef, container: Option<String>, follow: bool) -> Result<(), FrameError> {
    let rec = match find(deps, p).and_then(|rec| pick(&rec, container).map(|c| (rec, c))) {
        Ok(x) => x,
        Err(e) => return reply(send, &error(e)).await,
    };
    let (rec, c) = rec;
    let path = deps.runtime.paths().log(&rec.uid, &c.name);
    reply(send, &Reply::Streaming).await?;
    let mut file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(_) if !follow => return Ok(()),
        Err(_) => loop {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            if let Ok(f) = tokio::fs::File::open(&path).await {
                break f;
            }
            if deps.store.get_pod(&p.namespace, &p.name).ok().flatten().is_none() {
                return Ok(());
            }
        },
    };
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf).await?;
        if n > 0 {
            write_frame(send, &Frame::Stdout(buf[..n].to_vec())).await?;
            continue;
        }
        if !follow {
            return Ok(());
        }
        // Follow: poll while a client watches; stop when the pod is gone.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        if deps.store.get_pod(&p.namespace, &p.name).ok().flatten().map(|r| r.uid) != Some(rec.uid.clone()) {
            return Ok(());
        }
    }
}

async fn exec(
    deps: &ApiDeps,
    send: &mut quinn::SendStream,
    p: &PodRef,
    container: Option<String>,
    command: Vec<String>,
) -> Result<(), FrameError> {
    let found = find(deps, p).and_then(|rec| pick(&rec, container).map(|c| (rec, c)));
    let (rec, c) = match found {
        Ok(x) => x,
        Err(e) => return reply(send, &error(e)).await,
    };
    let running = rec
        .status
        .container_statuses
        .iter()
        .chain(&rec.status.init_container_statuses)
        .any(|s| s.name == c.name && matches!(s.state, ContainerState::Running { .. }));
    if !running {
        return reply(send, &error(format!("container {:?} of pod {:?} is not running", c.name, p.name))).await;
    }
    if command.is_empty() {
        return reply(send, &error("no command given")).await;
    }
    let mut child = match deps.runtime.exec(&rec.uid, &c.name, &command) {
        Ok(c) => c,
        Err(e) => return reply(send, &error(e.to_string())).await,
    };
    reply(send, &Reply::Streaming).await?;
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    let (mut ob, mut eb) = (vec![0u8; 32 * 1024], vec![0u8; 32 * 1024]);
    let (mut out_open, mut err_open) = (true, true);
    while out_open || err_open {
        tokio::select! {
            n = out.read(&mut ob), if out_open => match n {
                Ok(0) | Err(_) => out_open = false,
                Ok(n) => write_frame(send, &Frame::Stdout(ob[..n].to_vec())).await?,
            },
            n = err.read(&mut eb), if err_open => match n {
                Ok(0) | Err(_) => err_open = false,
                Ok(n) => write_frame(send, &Frame::Stderr(eb[..n].to_vec())).await?,
            },
        }
    }
    let code = child.wait().await.ok().and_then(|s| s.code()).unwrap_or(255);
    write_frame(send, &Frame::Exit(code)).await
}

/// Every image of the cluster: this node's (`local`) and those the state
/// lists for other nodes, each with the nodes that hold it.
fn cluster_images(local: Vec<crate::api::wire::ImageInfo>, nodes: &[crate::state::NodeObject]) -> Vec<crate::api::wire::ImageInfo> {
    use crate::api::wire::ImageInfo;
    let mut all: std::collections::BTreeMap<String, ImageInfo> = local.into_iter().map(|i| (i.reference.clone(), i)).collect();
    for n in nodes {
        for img in &n.images {
            for name in &img.names {
                all.entry(name.clone()).or_insert_with(|| ImageInfo {
                    reference: name.clone(),
                    digest: img.digest.clone(),
                    size: img.size_bytes,
                    nodes: Vec::new(),
                });
            }
        }
    }
    for i in all.values_mut() {
        i.nodes = nodes
            .iter()
            .filter(|n| n.images.iter().any(|x| x.digest == i.digest && x.names.contains(&i.reference)))
            .map(|n| n.name.clone())
            .collect();
    }
    all.into_values().collect()
}

/// Pulls an image with the node's registries.yaml, streaming progress.
async fn pull(deps: &ApiDeps, send: &mut quinn::SendStream, reference: &str) -> Result<(), FrameError> {
    use crate::runtime::image::pull::{pull, Credentials, Progress};
    use crate::runtime::image::registries::Registries;
    let registries = match Registries::load(&deps.runtime.paths().data.join("registries.yaml")) {
        Ok(r) => r,
        Err(e) => return reply(send, &error(e.to_string())).await,
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let progress = Progress::to(tx);
    let creds = Credentials::default();
    let pulling = pull(deps.runtime.images(), &registries, reference, &creds, &progress);
    tokio::pin!(pulling);
    let result = loop {
        tokio::select! {
            r = &mut pulling => break r,
            Some(e) = rx.recv() => {
                let bytes = serde_json::to_vec(&e).expect("plain enum");
                write_frame(send, &Frame::Data(bytes)).await?;
            }
        }
    };
    while let Ok(e) = rx.try_recv() {
        write_frame(send, &Frame::Data(serde_json::to_vec(&e).expect("plain enum"))).await?;
    }
    let r = match result {
        Ok(images) => {
            info!(image = %reference, "pulled");
            Reply::Images { images }
        }
        Err(e) => error(e.to_string()),
    };
    reply(send, &r).await
}

async fn import(images: &Arc<ImageStore>, recv: &mut quinn::RecvStream, size: u64) -> Reply {
    use tokio::io::AsyncWriteExt;
    let path = images.upload_path();
    let received = async {
        let mut f = tokio::fs::File::create(&path).await?;
        let mut got = 0u64;
        while got < size {
            match read_frame(recv).await.map_err(std::io::Error::other)? {
                Some(Frame::Data(b)) => {
                    got += b.len() as u64;
                    f.write_all(&b).await?;
                }
                _ => return Err(std::io::Error::other(format!("upload ended after {got} of {size} bytes"))),
            }
        }
        f.flush().await
    }
    .await;
    if let Err(e) = received {
        let _ = std::fs::remove_file(&path);
        return error(format!("image upload: {e}"));
    }
    let store = images.clone();
    let p = path.clone();
    let result = tokio::task::spawn_blocking(move || store.import(&p)).await;
    let _ = std::fs::remove_file(&path);
    match result {
        Ok(Ok(images)) => {
            info!(images = ?images.iter().map(|i| &i.reference).collect::<Vec<_>>(), "imported");
            Reply::Images { images }
        }
        Ok(Err(e)) => {
            warn!(error = %e, "image import refused");
            error(e.to_string())
        }
        Err(e) => error(format!("import task: {e}")),
    }
}
