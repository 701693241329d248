//! Operations into nftables' JSON schema (the `nftables` crate's types),
//! which `nft -j` reads as one transaction.

use super::model::{Hook, Key, MapName, Rule, MASQ_MARK};
use super::plan::Op;
use nftables::expr::{
    BinaryOperation, Expression, Fib, FibFlag, FibResult, Meta, MetaKey, NamedExpression, NgMode, Numgen, Payload, PayloadField, Prefix,
    SetItem, Verdict, CT,
};
use nftables::schema::{Chain, Element, NfCmd, NfListObject, NfObject, Rule as NfRule, Set, SetFlag, SetType, SetTypeValue, Table};
use nftables::stmt::{JumpTarget, Mangle, Match, NATFamily, NATFlag, Operator, Reject, SetOp, Statement, VerdictMap, NAT};
use nftables::types::{NfChainType, NfFamily, NfHook};
use std::borrow::Cow;
use std::collections::HashSet;

/// The transaction for `ops` on table `table` (family ip), as the JSON
/// `nft -j -f -` reads.
pub fn transaction(table: &str, ops: &[Op]) -> String {
    let objects: Vec<serde_json::Value> = ops.iter().map(|op| object(table, op)).collect();
    serde_json::json!({ "nftables": objects }).to_string()
}

/// `add table; delete table`: everything the table held goes.
pub fn remove(table: &str) -> String {
    transaction(table, &[Op::AddTable, Op::DeleteTable])
}

fn object(table: &str, op: &Op) -> serde_json::Value {
    match op {
        // The crate's `SetType` (0.6.3) has no `verdict`, so a verdict
        // map is written by hand, in the same schema.
        Op::AddMap(m) => {
            let key: &[&str] = if m.keyed_by_ip() {
                &["ipv4_addr", "inet_proto", "inet_service"]
            } else {
                &["inet_proto", "inet_service"]
            };
            serde_json::json!({ "add": { "map": {
                "family": "ip", "table": table, "name": m.as_str(), "type": key, "map": "verdict"
            } } })
        }
        other => serde_json::to_value(NfObject::CmdObject(cmd(table, other))).expect("plain data"),
    }
}

fn s(x: &str) -> Cow<'static, str> {
    Cow::Owned(x.to_string())
}

fn cmd(table: &str, op: &Op) -> NfCmd<'static> {
    let tbl = || Table {
        family: NfFamily::IP,
        name: s(table),
        handle: None,
    };
    let chain = |name: &str, hook: Option<Hook>| {
        let mut c = Chain {
            family: NfFamily::IP,
            table: s(table),
            name: s(name),
            ..Default::default()
        };
        if let Some(h) = hook {
            let (ty, hook, prio) = match h {
                Hook::NatPrerouting => (NfChainType::NAT, NfHook::Prerouting, -100),
                Hook::NatOutput => (NfChainType::NAT, NfHook::Output, -100),
                Hook::NatPostrouting => (NfChainType::NAT, NfHook::Postrouting, 100),
                Hook::FilterInput => (NfChainType::Filter, NfHook::Input, -110),
                Hook::FilterForward => (NfChainType::Filter, NfHook::Forward, -110),
                Hook::FilterOutput => (NfChainType::Filter, NfHook::Output, -110),
            };
            c._type = Some(ty);
            c.hook = Some(hook);
            c.prio = Some(prio);
        }
        c
    };
    let set_name = |name: &str| Set {
        family: NfFamily::IP,
        table: s(table),
        name: s(name),
        handle: None,
        set_type: SetTypeValue::Single(SetType::Ipv4Addr),
        policy: None,
        flags: None,
        elem: None,
        timeout: None,
        gc_interval: None,
        size: None,
        comment: None,
    };
    // A map element is `[key, verdict]`; deleting one names the key alone.
    let element = |map: MapName, key: &Key, to: Option<&str>| Element {
        family: NfFamily::IP,
        table: s(table),
        name: s(map.as_str()),
        elem: Cow::Owned(vec![match to {
            Some(c) => Expression::List(vec![key_expr(map, key), goto_verdict(c)]),
            None => key_expr(map, key),
        }]),
    };
    match op {
        Op::AddTable => NfCmd::Add(NfListObject::Table(tbl())),
        Op::DeleteTable => NfCmd::Delete(NfListObject::Table(tbl())),
        Op::AddChain(n, hook) => NfCmd::Add(NfListObject::Chain(chain(n, *hook))),
        Op::FlushChain(n) => NfCmd::Flush(nftables::schema::FlushObject::Chain(chain(n, None))),
        Op::DeleteChain(n) => NfCmd::Delete(NfListObject::Chain(chain(n, None))),
        Op::AddRule(n, r) => NfCmd::Add(NfListObject::Rule(NfRule {
            family: NfFamily::IP,
            table: s(table),
            chain: s(n),
            expr: Cow::Owned(statements(r)),
            handle: None,
            index: None,
            comment: None,
        })),
        Op::AddMap(_) => unreachable!("written by `object`"),
        Op::AddSet(n, timeout) => {
            let mut set = set_name(n);
            set.flags = Some(HashSet::from([SetFlag::Timeout]));
            set.timeout = Some(*timeout);
            NfCmd::Add(NfListObject::Set(Box::new(set)))
        }
        Op::DeleteSet(n) => NfCmd::Delete(NfListObject::Set(Box::new(set_name(n)))),
        Op::AddElem(m, k, c) => NfCmd::Add(NfListObject::Element(element(*m, k, Some(c)))),
        Op::DeleteElem(m, k) => NfCmd::Delete(NfListObject::Element(element(*m, k, None))),
    }
}

fn key_expr(map: MapName, k: &Key) -> Expression<'static> {
    let mut parts = Vec::new();
    if map.keyed_by_ip() {
        parts.push(Expression::String(s(&k.ip.map(|i| i.to_string()).unwrap_or_default())));
    }
    parts.push(Expression::String(s(k.proto.as_str())));
    parts.push(Expression::Number(k.port as u32));
    Expression::Named(NamedExpression::Concat(parts))
}

fn goto_verdict(chain: &str) -> Expression<'static> {
    Expression::Verdict(Verdict::Goto(JumpTarget { target: s(chain) }))
}

fn field(proto: &str, f: &str) -> Expression<'static> {
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(PayloadField {
        protocol: s(proto),
        field: s(f),
    })))
}

fn meta(key: MetaKey) -> Expression<'static> {
    Expression::Named(NamedExpression::Meta(Meta { key }))
}

fn prefix(net: ipnet::Ipv4Net) -> Expression<'static> {
    Expression::Named(NamedExpression::Prefix(Prefix {
        addr: Box::new(Expression::String(s(&net.network().to_string()))),
        len: net.prefix_len() as u32,
    }))
}

fn is(left: Expression<'static>, op: Operator, right: Expression<'static>) -> Statement<'static> {
    Statement::Match(Match { left, right, op })
}

fn jump(c: &str) -> Statement<'static> {
    Statement::Jump(JumpTarget { target: s(c) })
}

fn dest_tuple(by_ip: bool) -> Expression<'static> {
    let mut parts = Vec::new();
    if by_ip {
        parts.push(field("ip", "daddr"));
    }
    parts.push(meta(MetaKey::L4proto));
    parts.push(field("th", "dport"));
    Expression::Named(NamedExpression::Concat(parts))
}

fn local_daddr() -> Vec<Statement<'static>> {
    vec![
        is(
            Expression::Named(NamedExpression::Fib(Fib {
                result: FibResult::Type,
                flags: HashSet::from([FibFlag::Daddr]),
            })),
            Operator::EQ,
            Expression::String(s("local")),
        ),
        is(field("ip", "daddr"), Operator::NEQ, prefix("127.0.0.0/8".parse().expect("valid"))),
    ]
}

fn masquerade() -> Statement<'static> {
    Statement::Masquerade(Some(NAT {
        addr: None,
        family: None,
        port: None,
        flags: Some(HashSet::from([NATFlag::FullyRandom])),
    }))
}

fn statements(r: &Rule) -> Vec<Statement<'static>> {
    let mark = || meta(MetaKey::Mark);
    match r {
        Rule::Jump(c) => vec![jump(c)],
        Rule::Goto(c) => vec![Statement::Goto(JumpTarget { target: s(c) })],
        Rule::NewJump(c) => vec![
            is(
                Expression::Named(NamedExpression::CT(CT {
                    key: s("state"),
                    family: None,
                    dir: None,
                })),
                Operator::IN,
                Expression::String(s("new")),
            ),
            jump(c),
        ],
        Rule::SetMasqMark => vec![Statement::Mangle(Mangle {
            key: mark(),
            value: Expression::BinaryOperation(Box::new(BinaryOperation::OR(vec![mark(), Expression::Number(MASQ_MARK)]))),
        })],
        Rule::ReturnUnmarked => vec![
            is(
                Expression::BinaryOperation(Box::new(BinaryOperation::AND(mark(), Expression::Number(MASQ_MARK)))),
                Operator::EQ,
                Expression::Number(0),
            ),
            Statement::Return(None),
        ],
        Rule::ClearMasqMark => vec![Statement::Mangle(Mangle {
            key: mark(),
            value: Expression::BinaryOperation(Box::new(BinaryOperation::XOR(mark(), Expression::Number(MASQ_MARK)))),
        })],
        Rule::Masquerade => vec![masquerade()],
        Rule::PodEgress(cluster) => vec![
            is(field("ip", "saddr"), Operator::EQ, prefix(*cluster)),
            is(field("ip", "daddr"), Operator::NEQ, prefix(*cluster)),
            is(field("ip", "daddr"), Operator::NEQ, prefix("224.0.0.0/4".parse().expect("valid"))),
            masquerade(),
        ],
        Rule::VmapByIp(m) => vec![Statement::VerdictMap(VerdictMap {
            key: dest_tuple(true),
            data: Expression::String(s(&format!("@{}", m.as_str()))),
        })],
        Rule::VmapByLocalPort(m) => {
            let mut v = local_daddr();
            v.push(Statement::VerdictMap(VerdictMap {
                key: dest_tuple(false),
                data: Expression::String(s(&format!("@{}", m.as_str()))),
            }));
            v
        }
        Rule::Reject => vec![Statement::Reject(Some(Reject::new(None, None)))],
        Rule::MasqOffCluster { vip, cluster } => vec![
            is(field("ip", "daddr"), Operator::EQ, Expression::String(s(&vip.to_string()))),
            is(field("ip", "saddr"), Operator::NEQ, prefix(*cluster)),
            jump(super::model::MARK),
        ],
        Rule::MasqFrom(ip) => vec![
            is(field("ip", "saddr"), Operator::EQ, Expression::String(s(&ip.to_string()))),
            jump(super::model::MARK),
        ],
        Rule::AffinityGoto { set, chain } => vec![
            is(field("ip", "saddr"), Operator::EQ, Expression::String(s(&format!("@{set}")))),
            Statement::Goto(JumpTarget { target: s(chain) }),
        ],
        Rule::AffinityUpdate(set) => vec![Statement::Set(nftables::stmt::Set {
            op: SetOp::Update,
            elem: field("ip", "saddr"),
            set: s(&format!("@{set}")),
        })],
        Rule::Spread(chains) => {
            let items: Vec<SetItem<'static>> = chains
                .iter()
                .enumerate()
                .map(|(i, c)| SetItem::Mapping(Expression::Number(i as u32), goto_verdict(c)))
                .collect();
            vec![Statement::VerdictMap(VerdictMap {
                key: Expression::Named(NamedExpression::Numgen(Numgen {
                    mode: NgMode::Random,
                    ng_mod: chains.len() as u32,
                    offset: None,
                })),
                data: Expression::Named(NamedExpression::Set(items)),
            })]
        }
        Rule::Redirect { vip, proto, port, to } => vec![
            is(field("ip", "daddr"), Operator::EQ, Expression::String(s(&vip.to_string()))),
            is(meta(MetaKey::L4proto), Operator::EQ, Expression::String(s(proto.as_str()))),
            is(field("th", "dport"), Operator::EQ, Expression::Number(*port as u32)),
            Statement::DNAT(Some(NAT {
                addr: Some(Expression::String(s(&to.to_string()))),
                family: Some(NATFamily::IP),
                port: None,
                flags: None,
            })),
        ],
        Rule::RejectTo(net) => vec![
            is(field("ip", "daddr"), Operator::EQ, prefix(*net)),
            Statement::Reject(Some(Reject::new(None, None))),
        ],
        Rule::Dnat { proto, ip, port } => vec![
            is(meta(MetaKey::L4proto), Operator::EQ, Expression::String(s(proto.as_str()))),
            Statement::DNAT(Some(NAT {
                addr: Some(Expression::String(s(&ip.to_string()))),
                family: Some(NATFamily::IP),
                port: Some(Expression::Number(*port as u32)),
                flags: None,
            })),
        ],
    }
}
