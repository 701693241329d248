//! The probe order every member agrees on. SWIM's shuffled round-robin
//! probes each member once per round *per prober*, so a member may go
//! unprobed for several periods when the probers' shuffles happen to miss
//! it: with five members, a crash went unnoticed for up to three periods.
//! Here the probes start on the boundaries of the probe period on the wall
//! clock, and in period `k` the member at place `i` of the ring of members
//! sorted by name probes the one at `i + 1 + k mod (n - 1)`: a rotation,
//! so in every period each member is probed by exactly one other, and over
//! `n - 1` periods each probes every other once. A dead member is probed
//! within one period. Members whose clocks or views differ for a while only
//! lose the guarantee for that while, never liveness: foca's own
//! round-robin takes over for any probe that is not on a boundary.

use super::MemberId;

/// When the next probe should start, given that foca asked for it `ms`
/// after `now`: the period boundary nearest to that (the wall clock is
/// `now + wall_offset`), and never sooner than `min_gap` from now.
pub(super) fn aligned_due(now: u64, ms: u64, period: u64, wall_offset: u64, min_gap: u64) -> u64 {
    if period == 0 {
        return now + ms;
    }
    let want = now + ms;
    let phase = want.wrapping_add(wall_offset) % period;
    let mut due = if phase < period / 2 {
        want - phase
    } else {
        want + (period - phase)
    };
    while due < now + min_gap {
        due += period;
    }
    due
}

/// The probe period a probe due at `due` opens, if `due` is on a boundary.
pub(super) fn period_at(due: u64, period: u64, wall_offset: u64) -> Option<u64> {
    let wall = due.wrapping_add(wall_offset);
    (period > 0 && wall % period == 0).then(|| wall / period)
}

/// Whom `me` probes in period `k`, among `members` (the active ones, not
/// `me`, names unique).
pub(super) fn target<'a>(me: &MemberId, members: impl Iterator<Item = &'a MemberId>, k: u64) -> Option<&'a MemberId> {
    let mut others: Vec<&MemberId> = members.filter(|m| m.name != me.name).collect();
    if others.is_empty() {
        return None;
    }
    others.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    // The ring is `others` with `me` inserted at `mine`.
    let n = others.len() + 1;
    let mine = others.partition_point(|m| m.name < me.name);
    let place = (mine + 1 + (k % (n as u64 - 1)) as usize) % n;
    // Places after `mine` sit one lower in `others`.
    Some(others[if place > mine { place - 1 } else { place }])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn id(name: &str) -> MemberId {
        MemberId {
            name: name.into(),
            addr: "10.0.0.1:4740".parse().unwrap(),
            generation: 1,
        }
    }

    #[test]
    fn probes_land_on_the_nearest_boundary_at_least_the_gap_away() {
        // Period 900, the wall clock 100 ms ahead of `now`.
        assert_eq!(aligned_due(0, 900, 900, 100, 200), 800);
        // A probe settled early (at 1100) asks for 2000: the boundary at 1700.
        assert_eq!(aligned_due(1100, 900, 900, 100, 200), 1700);
        // Past the middle of a period: the boundary after.
        assert_eq!(aligned_due(1350, 900, 900, 100, 200), 2600);
        // Never sooner than the gap.
        assert_eq!(aligned_due(790, 10, 900, 100, 200), 1700);
        assert_eq!(period_at(1700, 900, 100), Some(2));
        assert_eq!(period_at(1701, 900, 100), None);
    }

    #[test]
    fn a_lone_member_probes_nobody() {
        assert_eq!(target(&id("a"), [id("a")].iter(), 3), None);
    }

    proptest! {
        /// In every period the probes are a permutation without fixed
        /// points: each member probed by exactly one other; and over n - 1
        /// periods each member probes every other.
        #[test]
        fn every_member_is_probed_once_per_period(names in proptest::collection::btree_set("[a-z]{1,6}", 2..12), k0 in 0u64..1_000_000) {
            let ids: Vec<MemberId> = names.iter().map(|n| id(n)).collect();
            let n = ids.len() as u64;
            let mut seen: Vec<BTreeSet<String>> = vec![BTreeSet::new(); ids.len()];
            for k in k0..k0 + n - 1 {
                let mut probed = BTreeSet::new();
                for (i, me) in ids.iter().enumerate() {
                    // Each member sees the others in its own order.
                    let view = ids.iter().rev();
                    let t = target(me, view, k).expect("someone to probe");
                    prop_assert_ne!(&t.name, &me.name);
                    prop_assert!(probed.insert(t.name.clone()), "{} probed twice in period {}", t.name, k);
                    seen[i].insert(t.name.clone());
                }
                prop_assert_eq!(probed.len(), ids.len());
            }
            for s in seen {
                prop_assert_eq!(s.len() as u64, n - 1);
            }
        }
    }
}
