//! Which nodes vote, decided by the leader as Consul's autopilot and dqlite
//! do: a pure function of the members, their health and the time.
//!
//! - the target is 1 voter below 3 healthy eligible nodes, 3 from 3, 5 from 7;
//! - a learner is promoted only when it has been healthy and caught up for
//!   the stabilisation time, preferring zones the voters do not cover yet;
//! - a voter gossip has seen Down for longer than the grace period is
//!   replaced by such a learner (it stays on as a learner), at most
//!   (voters−1)/2 of them per pass, so a quorum of the old set always
//!   remains in the new one;
//! - the voter set never shrinks for health alone: without a replacement a
//!   dead voter keeps its seat (removing it would not help the quorum).
//!
//! Defaults: grace 30 s (a Pi rebooting after a power blip is back in about
//! that time, and replacing a voter costs a snapshot transfer), stabilisation
//! 10 s (several gossip rounds and Raft heartbeats without a fault).

use std::collections::{BTreeMap, BTreeSet};

/// Autopilot's figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutopilotSettings {
    /// How long a voter may be Down before it is replaced.
    pub grace_ms: u64,
    /// How long a learner must be healthy and caught up before it may vote.
    pub stabilization_ms: u64,
}

impl Default for AutopilotSettings {
    fn default() -> AutopilotSettings {
        AutopilotSettings {
            grace_ms: 30_000,
            stabilization_ms: 10_000,
        }
    }
}

/// What the leader knows of one Raft member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberHealth {
    /// Raft id.
    pub id: u64,
    /// Zone, if the node has one.
    pub zone: Option<String>,
    /// May vote (`join --voter=false` says no).
    pub eligible: bool,
    /// Votes now.
    pub voter: bool,
    /// Gossip sees it Ready (a voter that is the leader itself is healthy).
    pub healthy: bool,
    /// Unix ms since when `healthy` (and, for a learner, caught up) has held.
    pub since_ms: u64,
    /// Its log is within the lag threshold of the leader's.
    pub caught_up: bool,
}

/// How many voters `healthy_eligible` healthy, eligible nodes should give.
pub fn target_voters(healthy_eligible: usize) -> usize {
    match healthy_eligible {
        0..=2 => 1,
        3..=6 => 3,
        _ => 5,
    }
}

/// The voter set autopilot wants, or `None` when the current one stays.
pub fn plan(members: &[MemberHealth], s: &AutopilotSettings, now_ms: u64) -> Option<BTreeSet<u64>> {
    let voters: Vec<&MemberHealth> = members.iter().filter(|m| m.voter).collect();
    let healthy_eligible = members.iter().filter(|m| m.eligible && m.healthy).count();
    let target = target_voters(healthy_eligible).max(voters.len().min(5));
    let dead: Vec<u64> = voters
        .iter()
        .filter(|m| !m.healthy && now_ms.saturating_sub(m.since_ms) >= s.grace_ms)
        .map(|m| m.id)
        .collect();
    let mut ready: Vec<&MemberHealth> = members
        .iter()
        .filter(|m| !m.voter && m.eligible && m.healthy && m.caught_up && now_ms.saturating_sub(m.since_ms) >= s.stabilization_ms)
        .collect();
    ready.sort_by_key(|m| m.id);
    let mut next: BTreeSet<u64> = voters.iter().map(|m| m.id).collect();
    let mut zones: BTreeMap<Option<String>, usize> = BTreeMap::new();
    for m in voters.iter().filter(|m| !dead.contains(&m.id)) {
        *zones.entry(m.zone.clone()).or_default() += 1;
    }
    let max_removals = voters.len().saturating_sub(1) / 2;
    // Grow to the target, by an even number so the count stays odd, then
    // replace dead voters one for one.
    let mut grow = target.saturating_sub(next.len()).min(ready.len());
    if (next.len() + grow) % 2 == 0 {
        grow = grow.saturating_sub(1);
    }
    let replace = dead.len().min(max_removals).min(ready.len() - grow);
    for step in 0..grow + replace {
        // The learner whose zone the voters cover least; ties by id.
        let (i, _) = ready
            .iter()
            .enumerate()
            .min_by_key(|(_, m)| (zones.get(&m.zone).copied().unwrap_or(0), m.id))
            .expect("counted");
        let pick = ready.remove(i);
        if step >= grow {
            next.remove(&dead[step - grow]);
        }
        next.insert(pick.id);
        *zones.entry(pick.zone.clone()).or_default() += 1;
    }
    let current: BTreeSet<u64> = voters.iter().map(|m| m.id).collect();
    (next != current).then_some(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn m(id: u64, voter: bool, healthy: bool, since_ms: u64) -> MemberHealth {
        MemberHealth {
            id,
            zone: None,
            eligible: true,
            voter,
            healthy,
            since_ms,
            caught_up: true,
        }
    }

    const S: AutopilotSettings = AutopilotSettings {
        grace_ms: 30_000,
        stabilization_ms: 10_000,
    };

    #[test]
    fn grows_to_three_once_learners_are_stable() {
        let members = [m(1, true, true, 0), m(2, false, true, 0), m(3, false, true, 5_000)];
        assert_eq!(plan(&members, &S, 12_000), None, "learner 3 is not stable yet");
        assert_eq!(plan(&members, &S, 15_000), Some([1, 2, 3].into()));
    }

    #[test]
    fn two_nodes_keep_one_voter() {
        let members = [m(1, true, true, 0), m(2, false, true, 0)];
        assert_eq!(plan(&members, &S, 100_000), None);
    }

    #[test]
    fn five_voters_from_seven_nodes_spread_over_zones() {
        let mut members: Vec<MemberHealth> = (1..=7).map(|i| m(i, i <= 3, true, 0)).collect();
        for (i, z) in ["a", "a", "a", "a", "a", "b", "c"].iter().enumerate() {
            members[i].zone = Some(z.to_string());
        }
        assert_eq!(plan(&members, &S, 20_000), Some([1, 2, 3, 6, 7].into()));
    }

    #[test]
    fn a_dead_voter_is_replaced_after_the_grace_period() {
        let members = [
            m(1, true, true, 0),
            m(2, true, true, 0),
            m(3, true, false, 10_000),
            m(4, false, true, 0),
        ];
        assert_eq!(plan(&members, &S, 30_000), None, "within grace");
        assert_eq!(plan(&members, &S, 40_000), Some([1, 2, 4].into()));
    }

    #[test]
    fn ineligible_and_lagging_learners_never_vote() {
        let mut members = vec![
            m(1, true, true, 0),
            m(2, true, true, 0),
            m(3, true, false, 0),
            m(4, false, true, 0),
            m(5, false, true, 0),
        ];
        members[3].eligible = false;
        members[4].caught_up = false;
        assert_eq!(plan(&members, &S, 100_000), None);
    }

    fn member() -> impl Strategy<Value = MemberHealth> {
        (
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            0u64..100_000,
            proptest::option::of(0u8..3),
        )
            .prop_map(|(eligible, voter, healthy, caught_up, since_ms, zone)| MemberHealth {
                id: 0,
                zone: zone.map(|z| format!("z{z}")),
                eligible,
                voter: voter && eligible,
                healthy,
                since_ms,
                caught_up,
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn plans_are_safe(mut members in proptest::collection::vec(member(), 1..12), now in 0u64..200_000) {
            for (i, m) in members.iter_mut().enumerate() { m.id = i as u64 + 1; }
            if !members.iter().any(|m| m.voter) { members[0].voter = true; members[0].eligible = true; }
            let current: BTreeSet<u64> = members.iter().filter(|m| m.voter).map(|m| m.id).collect();
            if let Some(next) = plan(&members, &S, now) {
                let kept = current.intersection(&next).count();
                // A majority of the old voters stays: at most (n-1)/2 removed.
                prop_assert!(current.len() - kept <= current.len().saturating_sub(1) / 2);
                prop_assert!(next.len() >= current.len(), "never shrinks");
                prop_assert!(next.len() <= 5.max(current.len()));
                for id in next.difference(&current) {
                    let m = members.iter().find(|m| m.id == *id).unwrap();
                    prop_assert!(m.eligible && m.healthy && m.caught_up && now - m.since_ms >= S.stabilization_ms);
                }
                for id in current.difference(&next) {
                    let m = members.iter().find(|m| m.id == *id).unwrap();
                    prop_assert!(!m.healthy && now - m.since_ms >= S.grace_ms);
                }
                prop_assert_eq!(plan(&members, &S, now), Some(next), "deterministic");
            }
        }
    }
}
