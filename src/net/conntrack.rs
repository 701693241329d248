//! Stale UDP conntrack entries, removed when an endpoint goes, as
//! kube-proxy does: UDP has no end, so a client that keeps sending from one
//! port would keep its entry (and its DNAT to the gone pod) for as long as
//! it sends. Which entries are stale is decided here from the last and the
//! new Service ports (pure); the kernel side dumps the conntrack table over
//! netlink (netlink-packet-netfilter) and deletes the matching entries.

use super::nft::model::{Proto, ServicePort};
use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST};
use netlink_packet_netfilter::conntrack::{ConntrackAttribute, ConntrackMessage, IPTuple, ProtoTuple, Protocol, Tuple};
use netlink_packet_netfilter::{NetfilterHeader, NetfilterMessage, NetfilterMessageInner, NetfilterProtoFamily};
use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

/// UDP entries to delete: every given field must match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Flush {
    /// The original destination (a Service address); any when `None`.
    pub orig_dst: Option<Ipv4Addr>,
    /// The original destination port.
    pub orig_dport: u16,
    /// The reply's source: the endpoint the entry was DNATed to; any when `None`.
    pub reply_src: Option<Ipv4Addr>,
}

/// What to flush going from `old` to `new`: for every UDP port, the
/// entries DNATed to an endpoint that is gone (through its address, its
/// external addresses and its node port), and, when a port that had no
/// endpoints gets some, every entry to it (made while it had none).
pub fn stale(old: &[ServicePort], new: &[ServicePort]) -> Vec<Flush> {
    let key = |p: &ServicePort| (p.service.clone(), p.port_name.clone(), p.port);
    let new: BTreeMap<_, &ServicePort> = new.iter().filter(|p| p.proto == Proto::Udp).map(|p| (key(p), p)).collect();
    let mut out = BTreeSet::new();
    for o in old.iter().filter(|p| p.proto == Proto::Udp) {
        let n = new.get(&key(o));
        let now: BTreeSet<(Ipv4Addr, u16)> = n.map(|n| n.endpoints.iter().copied().collect()).unwrap_or_default();
        for (ip, _) in o.endpoints.iter().filter(|e| !now.contains(e)) {
            for (dst, port) in ways_in(o) {
                out.insert(Flush {
                    orig_dst: dst,
                    orig_dport: port,
                    reply_src: Some(*ip),
                });
            }
        }
    }
    for n in new.values() {
        let had = old
            .iter()
            .any(|o| key(o) == key(n) && o.proto == Proto::Udp && !o.endpoints.is_empty());
        if !had && !n.endpoints.is_empty() {
            for (dst, port) in ways_in(n) {
                out.insert(Flush {
                    orig_dst: dst,
                    orig_dport: port,
                    reply_src: None,
                });
            }
        }
    }
    out.into_iter().collect()
}

/// The destinations a port is reached at: its addresses with its port, and
/// any local address with its node port.
fn ways_in(p: &ServicePort) -> Vec<(Option<Ipv4Addr>, u16)> {
    let mut t: Vec<(Option<Ipv4Addr>, u16)> = p.cluster_ip.iter().chain(&p.external_ips).map(|ip| (Some(*ip), p.port)).collect();
    t.extend(p.node_port.map(|np| (None, np)));
    t
}

/// One UDP entry, as far as matching goes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    orig: Vec<Tuple>,
    orig_dst: Option<Ipv4Addr>,
    orig_dport: Option<u16>,
    reply_src: Option<Ipv4Addr>,
}

impl Flush {
    fn matches(&self, e: &Entry) -> bool {
        e.orig_dport == Some(self.orig_dport)
            && self.orig_dst.is_none_or(|d| e.orig_dst == Some(d))
            && self.reply_src.is_none_or(|s| e.reply_src == Some(s))
    }
}

/// Deletes the UDP entries any of `flushes` matches, in this network
/// namespace; returns how many went. Blocking: run it off the async workers.
pub fn flush(flushes: &[Flush]) -> std::io::Result<usize> {
    if flushes.is_empty() {
        return Ok(0);
    }
    let mut sock = Socket::new(NETLINK_NETFILTER)?;
    sock.bind_auto()?;
    sock.connect(&SocketAddr::new(0, 0))?;
    let entries = dump(&mut sock)?;
    let mut gone = 0;
    for e in entries.iter().filter(|e| flushes.iter().any(|f| f.matches(e))) {
        let msg = ConntrackMessage::Delete(vec![ConntrackAttribute::CtaTupleOrig(e.orig.clone())]);
        // An entry that expired meanwhile answers ENOENT: fine.
        if request(&mut sock, msg, NLM_F_REQUEST | NLM_F_ACK, &mut |_| {}).is_ok() {
            gone += 1;
        }
    }
    Ok(gone)
}

fn dump(sock: &mut Socket) -> std::io::Result<Vec<Entry>> {
    let mut out = Vec::new();
    request(sock, ConntrackMessage::Get(vec![]), NLM_F_REQUEST | NLM_F_DUMP, &mut |m| {
        if let NetfilterMessageInner::Conntrack(ConntrackMessage::New(attrs)) = m.inner {
            if let Some(e) = entry(attrs) {
                out.push(e);
            }
        }
    })?;
    Ok(out)
}

fn entry(attrs: Vec<ConntrackAttribute>) -> Option<Entry> {
    let mut e = Entry {
        orig: Vec::new(),
        orig_dst: None,
        orig_dport: None,
        reply_src: None,
    };
    let mut udp = false;
    for a in attrs {
        match a {
            ConntrackAttribute::CtaTupleOrig(t) => {
                for x in &t {
                    match x {
                        Tuple::Ip(ips) => {
                            for ip in ips {
                                if let IPTuple::DestinationAddress(IpAddr::V4(d)) = ip {
                                    e.orig_dst = Some(*d);
                                }
                            }
                        }
                        Tuple::Proto(ps) => {
                            for p in ps {
                                match p {
                                    ProtoTuple::Protocol(Protocol::Udp) => udp = true,
                                    ProtoTuple::DestinationPort(d) => e.orig_dport = Some(*d),
                                    _ => {}
                                }
                            }
                        }
                        _ => {}
                    }
                }
                e.orig = t;
            }
            ConntrackAttribute::CtaTupleReply(t) => {
                for x in &t {
                    if let Tuple::Ip(ips) = x {
                        for ip in ips {
                            if let IPTuple::SourceAddress(IpAddr::V4(s)) = ip {
                                e.reply_src = Some(*s);
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
    (udp && !e.orig.is_empty()).then_some(e)
}

/// Sends one conntrack request and reads every answer to its end, giving
/// each message to `each`; a netlink error answer is an error.
fn request(sock: &mut Socket, msg: ConntrackMessage, flags: u16, each: &mut dyn FnMut(NetfilterMessage)) -> std::io::Result<()> {
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    let nf = NetfilterMessage::new(NetfilterHeader::new(NetfilterProtoFamily::IPv4, 0, 0), msg);
    let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(nf));
    packet.finalize();
    let mut buf = vec![0u8; packet.buffer_len()];
    packet.serialize(&mut buf);
    sock.send(&buf, 0)?;
    let mut rx = Vec::with_capacity(64 * 1024);
    loop {
        rx.clear();
        sock.recv(&mut rx, 0)?;
        let mut offset = 0;
        while offset < rx.len() {
            let m = NetlinkMessage::<NetfilterMessage>::deserialize(&rx[offset..]).map_err(|e| std::io::Error::other(e.to_string()))?;
            let len = m.header.length as usize;
            match m.payload {
                NetlinkPayload::Done(_) => return Ok(()),
                NetlinkPayload::Error(e) if e.code.is_some() => return Err(std::io::Error::from_raw_os_error(-e.raw_code())),
                NetlinkPayload::Error(_) => return Ok(()), // the ACK
                NetlinkPayload::InnerMessage(inner) => each(inner),
                _ => {}
            }
            if len == 0 {
                break;
            }
            offset += (len + 3) & !3;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(eps: &[(u8, u16)], node_port: Option<u16>) -> ServicePort {
        ServicePort {
            service: "default/dns".into(),
            port_name: "dns".into(),
            proto: Proto::Udp,
            cluster_ip: Some(Ipv4Addr::new(10, 43, 0, 9)),
            external_ips: vec![],
            port: 53,
            node_port,
            affinity_secs: None,
            endpoints: eps.iter().map(|(h, p)| (Ipv4Addr::new(10, 42, 0, *h), *p)).collect(),
        }
    }

    #[test]
    fn a_gone_endpoint_is_flushed_through_every_way_in_and_a_first_endpoint_clears_the_port() {
        let vip = Some(Ipv4Addr::new(10, 43, 0, 9));
        let f = stale(&[port(&[(2, 53), (3, 53)], Some(30053))], &[port(&[(2, 53)], Some(30053))]);
        let gone = Some(Ipv4Addr::new(10, 42, 0, 3));
        assert_eq!(
            f,
            vec![
                Flush {
                    orig_dst: None,
                    orig_dport: 30053,
                    reply_src: gone
                },
                Flush {
                    orig_dst: vip,
                    orig_dport: 53,
                    reply_src: gone
                },
            ]
        );
        assert!(stale(&[port(&[(2, 53)], None)], &[port(&[(2, 53)], None)]).is_empty());
        let first = stale(&[port(&[], None)], &[port(&[(2, 53)], None)]);
        assert_eq!(
            first,
            vec![Flush {
                orig_dst: vip,
                orig_dport: 53,
                reply_src: None
            }]
        );
        let mut tcp = port(&[(2, 53)], None);
        tcp.proto = Proto::Tcp;
        assert!(stale(&[tcp.clone()], &[]).is_empty(), "TCP ends on its own");
        let e = Entry {
            orig: vec![],
            orig_dst: vip,
            orig_dport: Some(53),
            reply_src: gone,
        };
        assert!(f[1].matches(&e) && !f[0].matches(&e));
    }
}
