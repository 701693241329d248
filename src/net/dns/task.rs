//! The DNS task: serves on the bridge address while the node has a pod
//! subnet, and moves or stops with it.

use super::forward::Upstream;
use super::server::Handler;
use super::zone::Zone;
use crate::daemon::shutdown::Shutdown;
use crate::net::PodNetwork;
use hickory_server::Server;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::{info, warn};

const RETRY: Duration = Duration::from_secs(2);
/// A TCP client that sends nothing for this long is dropped.
const TCP_IDLE: Duration = Duration::from_secs(10);

/// What the task needs.
pub struct DnsDeps {
    /// The pod network (its subnet says where to listen).
    pub net: Arc<PodNetwork>,
    /// The cluster's names, as the network task last built them.
    pub zone: watch::Receiver<Arc<Zone>>,
    /// The node's resolv.conf, for forwarding.
    pub resolv_conf: PathBuf,
    /// Stop.
    pub shutdown: Shutdown,
}

/// Runs until shutdown.
pub async fn run(deps: DnsDeps) {
    let DnsDeps {
        net,
        zone,
        resolv_conf,
        mut shutdown,
    } = deps;
    let mut changes = zone.clone();
    // (this node's address, the cluster DNS address) → the server.
    type Key = (Ipv4Addr, Option<Ipv4Addr>);
    let mut serving: Option<(Key, Server<Handler>)> = None;
    loop {
        let want = net.subnet().map(|s| (crate::net::ipam::gateway(s), zone.borrow().dns_ip()));
        let mut failed = false;
        if serving.as_ref().map(|s| s.0) != want {
            if let Some(((ip, _), mut server)) = serving.take() {
                let _ = server.shutdown_gracefully().await;
                info!(%ip, "cluster DNS stopped");
            }
            if let Some((ip, dns_ip)) = want {
                // Never forward to this node's own address or the cluster
                // DNS address: both come back here.
                let own = [Some(ip), dns_ip].into_iter().flatten().map(IpAddr::V4).collect();
                let upstream = Arc::new(Upstream::new(resolv_conf.clone(), own));
                match serve(ip, Handler::new(zone.clone(), upstream)).await {
                    Ok(server) => {
                        info!(%ip, "cluster DNS answering on port 53");
                        serving = Some(((ip, dns_ip), server));
                    }
                    Err(e) => {
                        warn!(%ip, error = %e, "cluster DNS cannot listen; retrying");
                        failed = true;
                    }
                }
            }
        }
        tokio::select! {
            biased;
            _ = shutdown.wait() => break,
            r = changes.changed() => if r.is_err() { break },
            _ = tokio::time::sleep(RETRY), if failed => {}
        }
    }
    if let Some((_, mut server)) = serving {
        let _ = server.shutdown_gracefully().await;
    }
}

async fn serve(ip: Ipv4Addr, handler: Handler) -> std::io::Result<Server<Handler>> {
    let addr = SocketAddr::from((ip, 53));
    let udp = tokio::net::UdpSocket::bind(addr).await?;
    let tcp = tokio::net::TcpListener::bind(addr).await?;
    let mut server = Server::new(handler);
    server.register_socket(udp);
    server.register_listener(tcp, TCP_IDLE, 65_535);
    Ok(server)
}
