//! `imagePullPolicy` as the kubelet reads it: when the field is left out,
//! an image named by `:latest` or by no tag at all is `Always` pulled,
//! any other (another tag, or a digest) `IfNotPresent`.

use super::ImageRef;
use crate::api::manifest::PullPolicy;

/// What to do about a container's image before it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullDecision {
    /// Run the image already in the store.
    UseLocal,
    /// Pull first (and run what arrives).
    Pull,
    /// `Never` and not in the store: the container waits in
    /// `ErrImageNeverPull`.
    NeverPullMissing,
}

/// The policy in force: the pod's, or Kubernetes' default for the image.
pub fn effective(image: &ImageRef, policy: Option<PullPolicy>) -> PullPolicy {
    policy.unwrap_or(match (&image.digest, image.tag.as_deref()) {
        (None, None | Some("latest")) => PullPolicy::Always,
        _ => PullPolicy::IfNotPresent,
    })
}

/// What `policy` means for an image that is (or is not) in the store.
pub fn decide(policy: PullPolicy, present: bool) -> PullDecision {
    match (policy, present) {
        (PullPolicy::Always, _) | (PullPolicy::IfNotPresent, false) => PullDecision::Pull,
        (PullPolicy::Never, false) => PullDecision::NeverPullMissing,
        (PullPolicy::IfNotPresent | PullPolicy::Never, true) => PullDecision::UseLocal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy_of(image: &str, given: Option<PullPolicy>) -> PullPolicy {
        effective(&ImageRef::parse(image).unwrap(), given)
    }

    #[test]
    fn defaults_follow_the_tag_as_in_kubernetes() {
        assert_eq!(policy_of("nginx", None), PullPolicy::Always);
        assert_eq!(policy_of("nginx:latest", None), PullPolicy::Always);
        assert_eq!(policy_of("registry.example:5000/team/app", None), PullPolicy::Always);
        assert_eq!(policy_of("nginx:1.25", None), PullPolicy::IfNotPresent);
        let digest = format!("nginx@sha256:{}", "a".repeat(64));
        assert_eq!(policy_of(&digest, None), PullPolicy::IfNotPresent);
        // A given policy always wins.
        assert_eq!(policy_of("nginx:latest", Some(PullPolicy::Never)), PullPolicy::Never);
        assert_eq!(policy_of("nginx:1.25", Some(PullPolicy::Always)), PullPolicy::Always);
    }

    #[test]
    fn decisions() {
        assert_eq!(decide(PullPolicy::Always, true), PullDecision::Pull);
        assert_eq!(decide(PullPolicy::Always, false), PullDecision::Pull);
        assert_eq!(decide(PullPolicy::IfNotPresent, true), PullDecision::UseLocal);
        assert_eq!(decide(PullPolicy::IfNotPresent, false), PullDecision::Pull);
        assert_eq!(decide(PullPolicy::Never, true), PullDecision::UseLocal);
        assert_eq!(decide(PullPolicy::Never, false), PullDecision::NeverPullMissing);
    }
}
