//! The DNS server on this node's bridge address, port 53, UDP and TCP
//! (hickory-server): cluster names from the zone the network task
//! publishes, authoritative, with the zone's SOA on negative answers;
//! everything else forwarded. An `ExternalName` alias is followed
//! upstream, so the pod gets the address with the alias, as from CoreDNS.

use super::forward::Upstream;
use super::zone::{Answer, Data, Kind, Zone};
use super::{CLUSTER_DOMAIN, TTL};
use hickory_server::net::runtime::Time;
use hickory_server::net::xfer::Protocol;
use hickory_server::proto::op::{Edns, Header, HeaderCounts, Message, MessageType, Metadata, OpCode, Query, ResponseCode};
use hickory_server::proto::rr::rdata::{A, CNAME, PTR, SOA, SRV};
use hickory_server::proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use std::sync::Arc;
use tokio::sync::watch;
use tracing::debug;

/// Answers one query at a time, from the zone or upstream.
pub struct Handler {
    zone: watch::Receiver<Arc<Zone>>,
    upstream: Arc<Upstream>,
}

impl Handler {
    /// A handler over the zone the network task publishes.
    pub fn new(zone: watch::Receiver<Arc<Zone>>, upstream: Arc<Upstream>) -> Handler {
        Handler { zone, upstream }
    }
}

/// What goes back, before it is encoded.
struct Reply {
    code: ResponseCode,
    authoritative: bool,
    answers: Vec<Record>,
    authorities: Vec<Record>,
    additionals: Vec<Record>,
    /// From upstream: its flags as they were.
    upstream: Option<Metadata>,
}

impl Reply {
    fn local(code: ResponseCode) -> Reply {
        Reply {
            code,
            authoritative: true,
            answers: vec![],
            authorities: vec![],
            additionals: vec![],
            upstream: None,
        }
    }
}

fn kind_of(t: RecordType) -> Kind {
    match t {
        RecordType::A => Kind::A,
        RecordType::SRV => Kind::Srv,
        RecordType::PTR => Kind::Ptr,
        RecordType::CNAME => Kind::Cname,
        RecordType::SOA => Kind::Soa,
        RecordType::ANY => Kind::Any,
        _ => Kind::Other,
    }
}

fn name(s: &str) -> Name {
    let mut n = Name::from_ascii(s).unwrap_or_else(|_| Name::root());
    n.set_fqdn(true);
    n
}

fn record(owner: &str, d: &Data) -> Record {
    let rdata = match d {
        Data::A(ip) => RData::A(A(*ip)),
        Data::Cname(t) => RData::CNAME(CNAME(name(t))),
        Data::Ptr(t) => RData::PTR(PTR(name(t))),
        Data::Srv {
            priority,
            weight,
            port,
            target,
        } => RData::SRV(SRV::new(*priority, *weight, *port, name(target))),
    };
    Record::from_rdata(name(owner), TTL, rdata)
}

/// The cluster domain's SOA (its minimum is the negative-answer TTL).
fn soa() -> Record {
    let rdata = SOA::new(
        name(&format!("ns.dns.{CLUSTER_DOMAIN}")),
        name(&format!("hostmaster.{CLUSTER_DOMAIN}")),
        1,
        7200,
        1800,
        86400,
        TTL,
    );
    Record::from_rdata(name(CLUSTER_DOMAIN), TTL, RData::SOA(rdata))
}

impl Handler {
    async fn reply(&self, request: &Request) -> Reply {
        if request.metadata.message_type != MessageType::Query || request.metadata.op_code != OpCode::Query {
            return Reply::local(ResponseCode::NotImp);
        }
        let Ok(info) = request.request_info() else {
            return Reply::local(ResponseCode::FormErr);
        };
        let q = info.query;
        let asked = q.name().to_string();
        let zone = self.zone.borrow().clone();
        let answer = if q.query_class() == DNSClass::IN {
            zone.lookup(&asked, kind_of(q.query_type()))
        } else {
            Answer::Forward
        };
        let tcp = request.protocol() == Protocol::Tcp;
        match answer {
            Answer::Forward => self.forward(request.as_slice(), tcp).await,
            Answer::Found { answers, additional } => {
                let mut r = Reply::local(ResponseCode::NoError);
                r.answers = answers.iter().map(|(o, d)| record(o, d)).collect();
                r.additionals = additional.iter().map(|(o, d)| record(o, d)).collect();
                if let Some(target) = answers.iter().find_map(|(_, d)| match d {
                    Data::Cname(t) => Some(t),
                    _ => None,
                }) {
                    if !matches!(q.query_type(), RecordType::CNAME) {
                        r.answers.extend(self.chase(target, q.query_type(), tcp).await);
                    }
                }
                r
            }
            Answer::Soa => {
                let mut r = Reply::local(ResponseCode::NoError);
                r.answers.push(soa());
                r
            }
            Answer::NoData => {
                let mut r = Reply::local(ResponseCode::NoError);
                r.authorities.push(soa());
                r
            }
            Answer::NxDomain => {
                let mut r = Reply::local(ResponseCode::NXDomain);
                r.authorities.push(soa());
                r
            }
        }
    }

    async fn forward(&self, query: &[u8], tcp: bool) -> Reply {
        let decoded = match self.upstream.exchange(query, tcp).await {
            Ok(bytes) => Message::from_vec(&bytes).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match decoded {
            Ok(m) => Reply {
                code: m.metadata.response_code,
                authoritative: m.metadata.authoritative,
                answers: m.answers,
                authorities: m.authorities,
                additionals: m.additionals,
                upstream: Some(m.metadata),
            },
            Err(e) => {
                debug!(error = %e, "forwarding a query failed");
                let mut r = Reply::local(ResponseCode::ServFail);
                r.authoritative = false;
                r
            }
        }
    }

    /// The records of `target` (an alias's target) from upstream.
    async fn chase(&self, target: &str, t: RecordType, tcp: bool) -> Vec<Record> {
        let mut m = Message::query();
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(name(target), t));
        let Ok(bytes) = m.to_vec() else { return vec![] };
        match self.upstream.exchange(&bytes, tcp).await.map(|b| Message::from_vec(&b)) {
            Ok(Ok(answer)) => answer.answers,
            _ => vec![],
        }
    }
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(&self, request: &Request, mut response_handle: R) -> ResponseInfo {
        let r = self.reply(request).await;
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.response_code = r.code;
        metadata.authoritative = r.authoritative;
        metadata.recursion_available = true;
        if let Some(up) = &r.upstream {
            metadata.truncation = up.truncation;
            metadata.authentic_data = up.authentic_data;
        }
        let edns = request.edns.as_ref().map(|asked| {
            let mut e = Edns::new();
            e.set_max_payload(asked.max_payload().max(512));
            e.set_version(0);
            e
        });
        let builder = MessageResponseBuilder::new(&request.queries, edns.as_ref());
        let response = builder.build(
            metadata,
            r.answers.iter(),
            r.authorities.iter(),
            std::iter::empty(),
            r.additionals.iter(),
        );
        match response_handle.send_response(response).await {
            Ok(info) => info,
            Err(e) => {
                debug!(error = %e, "sending a DNS answer failed");
                ResponseInfo::from(Header {
                    metadata,
                    counts: HeaderCounts::default(),
                })
            }
        }
    }
}
