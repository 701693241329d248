//! The node's VXLAN device, to peers behind a router (flannel's vxlan
//! backend): one device with VNI 1 on UDP 8472 over the uplink, learning
//! off, holding the node's tunnel address (its subnet's network address,
//! /32). Each peer gets a permanent neighbour entry (tunnel address → the
//! MAC its subnet gives it) and a forwarding entry (that MAC → the peer's
//! node address), so no multicast and no learning are needed. The device
//! exists only while some peer is behind a router.

use super::link::{errno, link_by_name, req, LinkError};
use super::routes::{vtep_mac, Tunnel};
use super::Links;
use futures_util::TryStreamExt;
use ipnet::Ipv4Net;
use rtnetlink::packet_route::neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::LinkVxlan;
use std::net::{IpAddr, Ipv4Addr};

/// flannel's VNI and port, so a packet capture reads the same.
pub const VNI: u32 = 1;
/// The IANA port is 4789; Linux and flannel use 8472.
pub const PORT: u16 = 8472;

impl Links {
    /// The VXLAN device over the link holding `node_ip`, up, with this
    /// node's tunnel address. Returns its index.
    pub async fn ensure_vxlan(&self, subnet: Ipv4Net, node_ip: Ipv4Addr, mtu: u32) -> Result<u32, LinkError> {
        let name = &self.names.vxlan;
        let index = match link_by_name(&self.handle, name).await? {
            Some(l) => l.header.index,
            None => {
                let (uplink, _) = self
                    .uplink(node_ip)
                    .await?
                    .ok_or_else(|| req(format!("no link holds the node address {node_ip}"))(rtnetlink::Error::RequestFailed))?;
                let add = LinkVxlan::new(name, VNI)
                    .dev(uplink)
                    .local(node_ip)
                    .port(PORT)
                    .learning(false)
                    .mtu(mtu)
                    .address(vtep_mac(subnet).to_vec())
                    .up()
                    .build();
                match self.handle.link().add(add).execute().await {
                    Ok(()) => {}
                    Err(e) if errno(&e) == Some(libc::EEXIST) => {}
                    Err(e) => {
                        return Err(req(format!(
                            "ip link add {name} type vxlan id {VNI} dstport {PORT} local {node_ip} nolearning (another VXLAN device with VNI {VNI} on this host?)"
                        ))(e))
                    }
                }
                self.index_of(name).await?
            }
        };
        self.up_with(index, name, mtu, subnet.network(), 32).await?;
        Ok(index)
    }

    /// Makes the device's neighbour and forwarding entries exactly those of
    /// `want`; with no tunnel wanted, removes the device.
    pub async fn sync_tunnels(&self, subnet: Ipv4Net, node_ip: Ipv4Addr, mtu: u32, want: &[Tunnel]) -> Result<(), LinkError> {
        let name = self.names.vxlan.clone();
        if want.is_empty() {
            return self.delete(&name).await;
        }
        let index = self.ensure_vxlan(subnet, node_ip, mtu).await?;
        let wanted_arp = |m: &NeighbourMessage| {
            let dst = m.attributes.iter().find_map(|a| match a {
                NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)) => Some(*ip),
                _ => None,
            });
            want.iter().any(|t| Some(t.inner()) == dst)
        };
        let wanted_fdb = |m: &NeighbourMessage| {
            let mac = m.attributes.iter().find_map(|a| match a {
                NeighbourAttribute::LinkLayerAddress(l) => Some(l.clone()),
                _ => None,
            });
            let dst = m.attributes.iter().find_map(|a| match a {
                NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)) => Some(*ip),
                _ => None,
            });
            want.iter().any(|t| mac.as_deref() == Some(&t.mac()[..]) && dst == Some(t.remote))
        };
        for (family, wanted) in [
            (AddressFamily::Inet, &wanted_arp as &(dyn Fn(&NeighbourMessage) -> bool + Sync)),
            (AddressFamily::Bridge, &wanted_fdb),
        ] {
            let mut stale = Vec::new();
            let mut dump = self.handle.neighbours().get().set_address_family(family).execute();
            while let Some(m) = dump.try_next().await.map_err(req(format!("ip neigh show dev {name}")))? {
                if m.header.ifindex == index && !wanted(&m) {
                    stale.push(m);
                }
            }
            for m in stale {
                match self.handle.neighbours().del(m).execute().await {
                    Ok(()) => {}
                    Err(e) if matches!(errno(&e), Some(libc::ENOENT) | Some(libc::ESRCH)) => {}
                    Err(e) => return Err(req(format!("ip neigh del (dev {name})"))(e)),
                }
            }
        }
        for t in want {
            self.handle
                .neighbours()
                .add(index, IpAddr::V4(t.inner()))
                .link_layer_address(&t.mac())
                .replace()
                .execute()
                .await
                .map_err(req(format!(
                    "ip neigh replace {} lladdr {} dev {name}",
                    t.inner(),
                    mac_str(&t.mac())
                )))?;
            self.handle
                .neighbours()
                .add_bridge(index, &t.mac())
                .destination(IpAddr::V4(t.remote))
                .flags(NeighbourFlags::Own)
                .replace()
                .execute()
                .await
                .map_err(req(format!(
                    "bridge fdb replace {} dev {name} dst {} self permanent",
                    mac_str(&t.mac()),
                    t.remote
                )))?;
        }
        Ok(())
    }
}

fn mac_str(m: &[u8; 6]) -> String {
    m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}
