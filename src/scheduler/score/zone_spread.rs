//! Zone spread: prefer the zone with the fewest pods: of the same owner for
//! a pod with a controller, of all pods for a bare one (placed before and
//! during this call). Normalised as
//! Kubernetes' PodTopologySpread is: the zone with the most pods scores 0, an
//! empty one 100, and a node without a zone 0 (it cannot help spreading).

use super::default_normalize;

/// 0–100 from the node zone's pod count and the largest count among the candidates.
pub(crate) fn normalize(zone_pods: Option<u64>, max: u64) -> u64 {
    zone_pods.map_or(0, |count| default_normalize(count, max, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fewer_pods_score_higher_and_no_zone_scores_zero() {
        assert_eq!(normalize(Some(0), 4), 100);
        assert_eq!(normalize(Some(1), 4), 75);
        assert_eq!(normalize(Some(4), 4), 0);
        assert_eq!(normalize(Some(0), 0), 100);
        assert_eq!(normalize(None, 4), 0);
    }
}
