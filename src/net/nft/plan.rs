//! From one table model to the next: the operations of one nftables
//! transaction, in an order the kernel accepts (a chain exists before
//! anything jumps to it; nothing still points at a chain or set when it is
//! deleted). A sync after a change of one Service touches only that
//! Service's chains and map elements; the first sync of an agent rebuilds
//! the table whole (`add`, `delete`, `add` in one transaction, so
//! established connections, which live in conntrack, are not touched).

use super::model::{Hook, Key, MapName, Model, Rule};

/// One step of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `add table` (no error if it exists).
    AddTable,
    /// `delete table`.
    DeleteTable,
    /// `add chain` (no error if it exists).
    AddChain(String, Option<Hook>),
    /// `flush chain`.
    FlushChain(String),
    /// `delete chain`.
    DeleteChain(String),
    /// `add rule` at the end of a chain.
    AddRule(String, Rule),
    /// `add map`.
    AddMap(MapName),
    /// `add set` with a timeout in seconds.
    AddSet(String, u32),
    /// `delete set`.
    DeleteSet(String),
    /// `add element` to a map: key → goto chain.
    AddElem(MapName, Key, String),
    /// `delete element` from a map.
    DeleteElem(MapName, Key),
}

/// The table built from nothing: whatever was there goes, in the same
/// transaction.
pub fn full(new: &Model) -> Vec<Op> {
    let mut ops = vec![Op::AddTable, Op::DeleteTable, Op::AddTable];
    ops.extend(new.sets.iter().map(|(n, t)| Op::AddSet(n.clone(), *t)));
    ops.extend(new.maps.keys().map(|m| Op::AddMap(*m)));
    ops.extend(new.chains.iter().map(|(n, c)| Op::AddChain(n.clone(), c.hook)));
    for (name, chain) in &new.chains {
        ops.extend(chain.rules.iter().map(|r| Op::AddRule(name.clone(), r.clone())));
    }
    for (map, elems) in &new.maps {
        ops.extend(elems.iter().map(|(k, c)| Op::AddElem(*map, *k, c.clone())));
    }
    ops
}

/// What turns `old` (in place) into `new`.
pub fn diff(old: &Model, new: &Model) -> Vec<Op> {
    let mut ops = Vec::new();
    for (n, t) in &new.sets {
        if old.sets.get(n) != Some(t) {
            ops.push(Op::AddSet(n.clone(), *t));
        }
    }
    for m in new.maps.keys().filter(|m| !old.maps.contains_key(m)) {
        ops.push(Op::AddMap(*m));
    }
    for (n, c) in new.chains.iter().filter(|(n, _)| !old.chains.contains_key(*n)) {
        ops.push(Op::AddChain(n.clone(), c.hook));
    }
    for (n, c) in &new.chains {
        match old.chains.get(n) {
            Some(o) if o.rules == c.rules => continue,
            Some(_) => ops.push(Op::FlushChain(n.clone())),
            None => {}
        }
        ops.extend(c.rules.iter().map(|r| Op::AddRule(n.clone(), r.clone())));
    }
    let none = Default::default();
    for (map, old_elems) in &old.maps {
        let new_elems = new.maps.get(map).unwrap_or(&none);
        for (k, c) in old_elems {
            if new_elems.get(k) != Some(c) {
                ops.push(Op::DeleteElem(*map, *k));
            }
        }
    }
    for (map, new_elems) in &new.maps {
        let old_elems = old.maps.get(map).unwrap_or(&none);
        for (k, c) in new_elems {
            if old_elems.get(k) != Some(c) {
                ops.push(Op::AddElem(*map, *k, c.clone()));
            }
        }
    }
    let gone: Vec<&String> = old.chains.keys().filter(|n| !new.chains.contains_key(*n)).collect();
    ops.extend(gone.iter().map(|n| Op::FlushChain((*n).clone())));
    ops.extend(gone.iter().map(|n| Op::DeleteChain((*n).clone())));
    for n in old.sets.keys().filter(|n| !new.sets.contains_key(*n)) {
        ops.push(Op::DeleteSet(n.clone()));
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::super::model::{desired, Proto, ServicePort};
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    /// The kernel's rules for one table, as far as they matter here: what
    /// it refuses, it refuses with a message.
    #[derive(Default)]
    struct Kernel {
        table: bool,
        model: Model,
    }

    impl Kernel {
        fn referenced(&self, chain: &str) -> bool {
            self.model
                .chains
                .values()
                .any(|c| c.rules.iter().any(|r| r.targets().contains(&chain)))
                || self.model.maps.values().any(|m| m.values().any(|c| c == chain))
        }

        fn apply(&mut self, ops: &[Op]) -> Result<(), String> {
            for op in ops {
                let m = &mut self.model;
                match op {
                    Op::AddTable => self.table = true,
                    Op::DeleteTable if !self.table => return Err("delete table: no such table".into()),
                    Op::DeleteTable => {
                        self.table = false;
                        self.model = Model::default();
                    }
                    _ if !self.table => return Err(format!("{op:?}: no table")),
                    Op::AddChain(n, hook) => {
                        m.chains.entry(n.clone()).or_insert(super::super::model::Chain {
                            hook: *hook,
                            rules: vec![],
                        });
                    }
                    Op::FlushChain(n) => m.chains.get_mut(n).ok_or(format!("flush {n}: no chain"))?.rules.clear(),
                    Op::DeleteChain(n) => {
                        let c = m.chains.get(n).ok_or(format!("delete {n}: no chain"))?;
                        if !c.rules.is_empty() {
                            return Err(format!("delete {n}: not empty"));
                        }
                        if self.referenced(n) {
                            return Err(format!("delete {n}: still referenced"));
                        }
                        self.model.chains.remove(n);
                    }
                    Op::AddRule(n, r) => {
                        for t in r.targets() {
                            if !m.chains.contains_key(t) {
                                return Err(format!("rule in {n}: no chain {t}"));
                            }
                        }
                        if let Some(s) = r.set() {
                            if !m.sets.contains_key(s) {
                                return Err(format!("rule in {n}: no set {s}"));
                            }
                        }
                        m.chains.get_mut(n).ok_or(format!("rule: no chain {n}"))?.rules.push(r.clone());
                    }
                    Op::AddMap(map) => {
                        m.maps.entry(*map).or_default();
                    }
                    Op::AddSet(n, t) => {
                        if m.sets.get(n).is_some_and(|old| old != t) {
                            return Err(format!("add set {n}: exists with another timeout"));
                        }
                        m.sets.insert(n.clone(), *t);
                    }
                    Op::DeleteSet(n) => {
                        if m.chains.values().any(|c| c.rules.iter().any(|r| r.set() == Some(n))) {
                            return Err(format!("delete set {n}: in use"));
                        }
                        m.sets.remove(n).ok_or(format!("delete set {n}: none"))?;
                    }
                    Op::AddElem(map, k, c) => {
                        if !m.chains.contains_key(c) {
                            return Err(format!("element {k:?}: no chain {c}"));
                        }
                        let elems = m.maps.get_mut(map).ok_or(format!("no map {map:?}"))?;
                        if elems.insert(*k, c.clone()).is_some() {
                            return Err(format!("element {k:?} exists"));
                        }
                    }
                    Op::DeleteElem(map, k) => {
                        m.maps
                            .get_mut(map)
                            .and_then(|e| e.remove(k))
                            .ok_or(format!("delete element {k:?}: none"))?;
                    }
                }
            }
            Ok(())
        }
    }

    fn services() -> impl Strategy<Value = Vec<ServicePort>> {
        let one = (
            0u8..6,
            any::<bool>(),
            0u8..3,
            any::<bool>(),
            proptest::collection::vec((0u8..5, 0u8..2), 0..4),
        );
        proptest::collection::vec(one, 0..8).prop_map(|v| {
            let mut seen = std::collections::BTreeSet::new();
            v.into_iter()
                .filter(|(i, udp, ..)| seen.insert((*i, *udp)))
                .map(|(i, udp, np, aff, eps)| ServicePort {
                    service: format!("default/s{i}"),
                    port_name: "p".into(),
                    proto: if udp { Proto::Udp } else { Proto::Tcp },
                    cluster_ip: (i != 5).then(|| std::net::Ipv4Addr::new(10, 43, 0, 20 + i)),
                    external_ips: if np == 2 {
                        vec![std::net::Ipv4Addr::new(192, 0, 2, i)]
                    } else {
                        vec![]
                    },
                    port: 80,
                    node_port: (np > 0).then_some(30000 + i as u16 * 2 + udp as u16),
                    affinity_secs: aff.then_some(10_800 + np as u32),
                    endpoints: eps
                        .into_iter()
                        .map(|(h, p)| (std::net::Ipv4Addr::new(10, 42, 0, 2 + h), 8080 + p as u16))
                        .collect(),
                })
                .collect()
        })
    }

    fn cluster() -> super::super::model::Addresses {
        super::super::model::Addresses {
            cluster: "10.42.0.0/16".parse().unwrap(),
            services: "10.43.0.0/16".parse().unwrap(),
            dns: Some(("10.43.0.10".parse().unwrap(), "10.42.3.1".parse().unwrap())),
        }
    }

    proptest! {
        /// Any table, changed into any other, through what `diff` says,
        /// ends up exactly as wanted, and the kernel refuses no step.
        #[test]
        fn diff_takes_any_table_to_any_other(a in services(), b in services(), c in services()) {
            let (ma, mb, mc) = (desired(&cluster(), &a), desired(&cluster(), &b), desired(&cluster(), &c));
            let mut k = Kernel::default();
            k.apply(&full(&ma)).map_err(TestCaseError::fail)?;
            prop_assert_eq!(&k.model, &ma);
            k.apply(&diff(&ma, &mb)).map_err(TestCaseError::fail)?;
            prop_assert_eq!(&k.model, &mb);
            k.apply(&diff(&mb, &mc)).map_err(TestCaseError::fail)?;
            prop_assert_eq!(&k.model, &mc);
            // A restart rebuilds whole over what is there.
            k.apply(&full(&ma)).map_err(TestCaseError::fail)?;
            prop_assert_eq!(&k.model, &ma);
            prop_assert!(diff(&ma, &ma).is_empty());
        }
    }

    #[test]
    fn one_changed_service_touches_only_its_own_chains_and_elements() {
        let sp = |i: u8, eps: Vec<(std::net::Ipv4Addr, u16)>| ServicePort {
            service: format!("default/s{i}"),
            port_name: "http".into(),
            proto: Proto::Tcp,
            cluster_ip: Some(std::net::Ipv4Addr::new(10, 43, 1, i)),
            external_ips: vec![],
            port: 80,
            node_port: None,
            affinity_secs: None,
            endpoints: eps,
        };
        let ep = |h: u8| (std::net::Ipv4Addr::new(10, 42, 0, h), 8080);
        let many: Vec<ServicePort> = (1..=200).map(|i| sp(i, vec![ep(2), ep(3)])).collect();
        let mut changed = many.clone();
        changed[7].endpoints.pop();
        let ops = diff(&desired(&cluster(), &many), &desired(&cluster(), &changed));
        // The service chain is rewritten (2 rules), the gone endpoint's chain flushed and deleted.
        let touched: BTreeMap<String, usize> = ops.iter().fold(BTreeMap::new(), |mut acc, op| {
            let name = match op {
                Op::FlushChain(n) | Op::DeleteChain(n) | Op::AddRule(n, _) => n.clone(),
                other => format!("{other:?}"),
            };
            *acc.entry(name).or_default() += 1;
            acc
        });
        assert!(touched.keys().all(|n| n.contains("default/s8/")), "{touched:?}");
        assert_eq!(ops.len(), 1 + 2 + 2, "{ops:?}");
    }
}
