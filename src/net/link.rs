//! The kernel side of pod networking, over rtnetlink: the node's bridge, a
//! veth pair per pod, the pod's address and default route. Every call is
//! idempotent, so an agent restart or a container restart redoes nothing
//! that is in place and breaks no connection.

use super::routes::{Local, PeerRoute};
use super::Names;
use futures_util::TryStreamExt;
use ipnet::Ipv4Net;
use rtnetlink::packet_route::link::{LinkAttribute, LinkMessage};
use rtnetlink::{Handle, LinkBridge, LinkBridgePort, LinkUnspec, LinkVeth, RouteMessageBuilder};
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd};
use std::path::{Path, PathBuf};

/// A netlink request failed.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// Opening a netlink socket (in the host or a pod's namespace) failed.
    #[error("netlink socket for {what}: {source}")]
    Socket {
        /// Which namespace.
        what: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The kernel refused a request.
    #[error("{what}: {source}")]
    Request {
        /// What was asked, in `ip` words.
        what: String,
        /// The kernel's answer.
        #[source]
        source: rtnetlink::Error,
    },
}

pub(super) fn req(what: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> LinkError {
    let what = what.into();
    move |source| LinkError::Request { what, source }
}

/// The errno of a netlink refusal.
pub(super) fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => Some(-m.raw_code()),
        _ => None,
    }
}

/// A netlink connection to the host's namespace, and the node's link names.
#[derive(Clone)]
pub struct Links {
    pub(super) handle: Handle,
    pub(super) names: Names,
}

impl Links {
    /// Connects (inside a tokio runtime).
    pub fn connect(names: Names) -> Result<Links, LinkError> {
        let (conn, handle, _) = rtnetlink::new_connection().map_err(|source| LinkError::Socket {
            what: "the host".into(),
            source,
        })?;
        tokio::spawn(conn);
        Ok(Links { handle, names })
    }

    /// The link names.
    pub fn names(&self) -> &Names {
        &self.names
    }

    /// The bridge, up, with the subnet's gateway address and `mtu`.
    pub async fn ensure_bridge(&self, subnet: Ipv4Net, mtu: u32) -> Result<u32, LinkError> {
        let name = &self.names.bridge;
        let index = match link_by_name(&self.handle, name).await? {
            Some(l) => l.header.index,
            None => {
                let add = self
                    .handle
                    .link()
                    .add(LinkBridge::new(name).mtu(mtu).address(bridge_mac(subnet).to_vec()).up().build())
                    .execute()
                    .await;
                match add {
                    Ok(()) => {}
                    Err(e) if errno(&e) == Some(libc::EEXIST) => {}
                    Err(e) => return Err(req(format!("ip link add {name} type bridge"))(e)),
                }
                self.index_of(name).await?
            }
        };
        self.up_with(index, name, mtu, super::ipam::gateway(subnet), subnet.prefix_len())
            .await?;
        Ok(index)
    }

    /// The index of link `name`, which must exist.
    pub(super) async fn index_of(&self, name: &str) -> Result<u32, LinkError> {
        Ok(link_by_name(&self.handle, name)
            .await?
            .ok_or_else(|| req(format!("ip link show {name}"))(rtnetlink::Error::RequestFailed))?
            .header
            .index)
    }

    /// Link `index` (named `name`) up with `mtu`, holding `addr/prefix`.
    pub(super) async fn up_with(&self, index: u32, name: &str, mtu: u32, addr: Ipv4Addr, prefix: u8) -> Result<(), LinkError> {
        self.handle
            .link()
            .change(LinkUnspec::new_with_index(index).mtu(mtu).up().build())
            .execute()
            .await
            .map_err(req(format!("ip link set {name} mtu {mtu} up")))?;
        self.handle
            .address()
            .add(index, IpAddr::V4(addr), prefix)
            .replace()
            .execute()
            .await
            .map_err(req(format!("ip addr replace {addr}/{prefix} dev {name}")))
    }

    /// Pod `uid`'s network: a veth pair whose pod end is `eth0` in the
    /// namespace at `netns` with `ip`, the host end on the bridge (hairpin
    /// on, so a pod reaches itself through a Service), and a default route
    /// through the bridge. Nothing in place is redone.
    pub async fn attach(&self, uid: &str, netns: &Path, ip: Ipv4Addr, subnet: Ipv4Net, mtu: u32) -> Result<(), LinkError> {
        let host_if = self.names.veth(uid);
        let bridge = link_by_name(&self.handle, &self.names.bridge)
            .await?
            .ok_or_else(|| req(format!("ip link show {}", self.names.bridge))(rtnetlink::Error::RequestFailed))?
            .header
            .index;
        if link_by_name(&self.handle, &host_if).await?.is_none() {
            let ns = std::fs::File::open(netns).map_err(|source| LinkError::Socket {
                what: netns.display().to_string(),
                source,
            })?;
            let peer = LinkUnspec::new_with_name("eth0").setns_by_fd(ns.as_raw_fd()).mtu(mtu).build();
            self.handle
                .link()
                .add(
                    LinkVeth::new(&host_if, "eth0")
                        .set_info_data(rtnetlink::packet_route::link::InfoData::Veth(
                            rtnetlink::packet_route::link::InfoVeth::Peer(peer),
                        ))
                        .mtu(mtu)
                        .controller(bridge)
                        .up()
                        .build(),
                )
                .execute()
                .await
                .map_err(req(format!("ip link add {host_if} type veth peer eth0 netns {}", netns.display())))?;
            drop(ns);
        }
        let host = link_by_name(&self.handle, &host_if)
            .await?
            .ok_or_else(|| req(format!("ip link show {host_if}"))(rtnetlink::Error::RequestFailed))?;
        self.handle
            .link()
            .set_port(LinkBridgePort::new(host.header.index).hairpin(true).build())
            .execute()
            .await
            .map_err(req(format!("bridge link set dev {host_if} hairpin on")))?;
        let pod = handle_in(netns.to_path_buf()).await?;
        configure_pod(&pod, ip, subnet, mtu).await
    }

    /// Removes pod `uid`'s veth pair (gone already is fine).
    pub async fn detach(&self, uid: &str) -> Result<(), LinkError> {
        self.delete(&self.names.veth(uid)).await
    }

    /// Removes the bridge and the veths of `uids`: what the node added.
    pub async fn remove_all(&self, uids: &[String]) -> Result<(), LinkError> {
        for u in uids {
            self.detach(u).await?;
        }
        self.delete(&self.names.bridge.clone()).await
    }

    pub(super) async fn delete(&self, name: &str) -> Result<(), LinkError> {
        let Some(l) = link_by_name(&self.handle, name).await? else {
            return Ok(());
        };
        match self.handle.link().del(l.header.index).execute().await {
            Ok(()) => Ok(()),
            Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(()),
            Err(e) => Err(req(format!("ip link del {name}"))(e)),
        }
    }

    /// The index and MTU of the link holding `addr` (the node's uplink),
    /// if any.
    pub async fn uplink(&self, addr: Ipv4Addr) -> Result<Option<(u32, u32)>, LinkError> {
        use rtnetlink::packet_route::address::AddressAttribute;
        let mut addrs = self.handle.address().get().execute();
        let mut index = None;
        while let Some(a) = addrs.try_next().await.map_err(req("ip addr show"))? {
            let has = a
                .attributes
                .iter()
                .any(|x| matches!(x, AddressAttribute::Local(IpAddr::V4(ip)) | AddressAttribute::Address(IpAddr::V4(ip)) if *ip == addr));
            if has {
                index = Some(a.header.index);
                break;
            }
        }
        let Some(index) = index else { return Ok(None) };
        let mut links = self.handle.link().get().match_index(index).execute();
        let link = links.try_next().await.map_err(req(format!("ip link show index {index}")))?;
        let mtu = link.and_then(|l| {
            l.attributes.iter().find_map(|a| match a {
                LinkAttribute::Mtu(m) => Some(*m),
                _ => None,
            })
        });
        Ok(Some((index, mtu.unwrap_or(1500))))
    }
}

/// `lo` and `eth0` up, `eth0` with `ip`, the default route via the gateway.
async fn configure_pod(h: &Handle, ip: Ipv4Addr, subnet: Ipv4Net, mtu: u32) -> Result<(), LinkError> {
    let lo = link_by_name(h, "lo").await?;
    if let Some(lo) = lo {
        h.link()
            .change(LinkUnspec::new_with_index(lo.header.index).up().build())
            .execute()
            .await
            .map_err(req("ip link set lo up (pod)"))?;
    }
    let eth0 = link_by_name(h, "eth0")
        .await?
        .ok_or_else(|| req("ip link show eth0 (pod)")(rtnetlink::Error::RequestFailed))?
        .header
        .index;
    h.address()
        .add(eth0, IpAddr::V4(ip), subnet.prefix_len())
        .replace()
        .execute()
        .await
        .map_err(req(format!("ip addr replace {ip}/{} dev eth0 (pod)", subnet.prefix_len())))?;
    h.link()
        .change(LinkUnspec::new_with_index(eth0).mtu(mtu).up().build())
        .execute()
        .await
        .map_err(req("ip link set eth0 up (pod)"))?;
    let gw = super::ipam::gateway(subnet);
    h.route()
        .add(RouteMessageBuilder::<Ipv4Addr>::new().gateway(gw).output_interface(eth0).build())
        .replace()
        .execute()
        .await
        .map_err(req(format!("ip route replace default via {gw} (pod)")))?;
    Ok(())
}

/// `ip link show NAME`; a missing link is `None`.
pub(super) async fn link_by_name(h: &Handle, name: &str) -> Result<Option<LinkMessage>, LinkError> {
    match h.link().get().match_name(name.to_string()).execute().try_next().await {
        Ok(m) => Ok(m),
        Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(None),
        Err(e) => Err(req(format!("ip link show {name}"))(e)),
    }
}

/// A netlink connection inside the namespace at `netns`: the socket is made
/// by a short-lived thread that entered the namespace (a socket stays in the
/// namespace it was made in), then driven by this runtime. No tokio thread
/// ever changes namespace.
async fn handle_in(netns: PathBuf) -> Result<Handle, LinkError> {
    use rtnetlink::sys::{protocols::NETLINK_ROUTE, Socket, TokioSocket};
    let what = netns.display().to_string();
    let err = |what: &str| {
        let what = what.to_string();
        move |source| LinkError::Socket { what, source }
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("shoal-netns".into())
        .spawn(move || {
            let r = (|| -> std::io::Result<Socket> {
                let ns = std::fs::File::open(&netns)?;
                nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)?;
                Socket::new(NETLINK_ROUTE)
            })();
            let _ = tx.send(r);
        })
        .map_err(err(&what))?;
    let sock = rx
        .await
        .map_err(|_| LinkError::Socket {
            what: what.clone(),
            source: std::io::Error::other("namespace thread ended"),
        })?
        .map_err(err(&what))?;
    // SAFETY: the fd was just taken out of a live, owned netlink socket.
    let sock = unsafe { TokioSocket::from_raw_fd(sock.into_raw_fd()) };
    let (conn, handle, _) = rtnetlink::from_socket(sock);
    tokio::spawn(conn);
    Ok(handle)
}

/// A fixed, locally administered MAC for the bridge (from its subnet), so
/// the pods' gateway MAC never changes as pods come and go.
fn bridge_mac(subnet: Ipv4Net) -> [u8; 6] {
    let o = subnet.network().octets();
    [0x0a, 0x58, o[0], o[1], o[2], 0x01]
}

/// Routes Shoal adds carry this protocol number, so a sync finds its own
/// routes and nobody else's (free in iproute2's rt_protos).
pub const RTPROT_SHOAL: u8 = 83;

impl Links {
    /// This node's IPv4 networks and addresses, its bridge and VXLAN
    /// device left out: a peer inside one of the networks is on the same
    /// link, a peer at one of the addresses is on this very host.
    pub async fn local(&self) -> Result<Local, LinkError> {
        let mut ours = Vec::new();
        for name in [&self.names.bridge, &self.names.vxlan] {
            if let Some(l) = link_by_name(&self.handle, name).await? {
                ours.push(l.header.index);
            }
        }
        let mut out = Local::default();
        let mut addrs = self.handle.address().get().execute();
        while let Some(a) = addrs.try_next().await.map_err(req("ip addr show"))? {
            if ours.contains(&a.header.index) {
                continue;
            }
            for x in &a.attributes {
                if let rtnetlink::packet_route::address::AddressAttribute::Local(IpAddr::V4(ip)) = x {
                    out.addrs.push(*ip);
                    if let Ok(n) = Ipv4Net::new(*ip, a.header.prefix_len) {
                        if !ip.is_loopback() {
                            out.networks.push(n.trunc());
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// Makes the routes to peers' pod subnets exactly `want`: adds what is
    /// missing, removes Shoal's routes that are no longer wanted, leaves
    /// every other route alone. Tunnelled routes go through the VXLAN
    /// device, which must exist when there are any.
    pub async fn sync_routes(&self, want: &[PeerRoute]) -> Result<(), LinkError> {
        use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteHeader, RouteProtocol};
        let proto = RouteProtocol::from(RTPROT_SHOAL);
        let vxlan = link_by_name(&self.handle, &self.names.vxlan).await?.map(|l| l.header.index);
        let mut have = Vec::new();
        let mut routes = self.handle.route().get(RouteMessageBuilder::<Ipv4Addr>::new().build()).execute();
        while let Some(r) = routes.try_next().await.map_err(req("ip route show"))? {
            if r.header.table != RouteHeader::RT_TABLE_MAIN || r.header.protocol != proto {
                continue;
            }
            let dst = r.attributes.iter().find_map(|a| match a {
                RouteAttribute::Destination(RouteAddress::Inet(ip)) => Ipv4Net::new(*ip, r.header.destination_prefix_length).ok(),
                _ => None,
            });
            let via = r.attributes.iter().find_map(|a| match a {
                RouteAttribute::Gateway(RouteAddress::Inet(ip)) => Some(*ip),
                _ => None,
            });
            let oif = r.attributes.iter().find_map(|a| match a {
                RouteAttribute::Oif(i) => Some(*i),
                _ => None,
            });
            let found = match (dst, via) {
                (Some(subnet), Some(via)) => want
                    .iter()
                    .find(|w| w.subnet == subnet && w.via == via && (!w.tunnel || oif == vxlan)),
                _ => None,
            };
            match found {
                Some(w) => have.push(*w),
                None => {
                    let what = format!("ip route del {dst:?} proto {RTPROT_SHOAL}");
                    match self.handle.route().del(r).execute().await {
                        Ok(()) => {}
                        Err(e) if errno(&e) == Some(libc::ESRCH) => {}
                        Err(e) => return Err(req(what)(e)),
                    }
                }
            }
        }
        for r in want.iter().filter(|r| !have.contains(r)) {
            let mut msg = RouteMessageBuilder::<Ipv4Addr>::new()
                .destination_prefix(r.subnet.network(), r.subnet.prefix_len())
                .gateway(r.via)
                .protocol(proto);
            let mut what = format!("ip route replace {} via {} proto {RTPROT_SHOAL}", r.subnet, r.via);
            if r.tunnel {
                let index = vxlan.ok_or_else(|| req(format!("ip link show {}", self.names.vxlan))(rtnetlink::Error::RequestFailed))?;
                msg = msg.output_interface(index).onlink();
                what.push_str(&format!(" dev {} onlink", self.names.vxlan));
            }
            self.handle.route().add(msg.build()).replace().execute().await.map_err(req(what))?;
        }
        Ok(())
    }
}
