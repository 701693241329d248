//! `imagePullPolicy` as the kubelet reads it: when the field is left out,
//! an image named by `:latest` or by no tag at all is `Always` pulled,
//! any other (another tag, or a digest) `IfNotPresent`. `Always` with a
//! copy in the store asks the registry for the image's current digest and
//! pulls only when it differs, as the kubelet does.
//!
//! Two rules of Shoal's own, for nodes at the edge:
//! - The registry `localhost` (no port) is never contacted: as in Podman,
//!   `localhost/NAME` names an image imported on the node (or fetched from a
//!   peer), so `shoal image import` and a manifest with the default policy
//!   work together.
//! - `Always` with a copy in the store goes on with that copy when no
//!   registry answers at all (the uplink is down); a registry that answers
//!   with a refusal still fails the start, as in Kubernetes.

use super::ImageRef;
use crate::api::manifest::PullPolicy;

/// What to do about a container's image before it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullDecision {
    /// Run the image already in the store.
    UseLocal,
    /// Pull first (and run what arrives).
    Pull,
    /// `Always` with a copy in the store: ask the registry for the current
    /// digest; pull if it differs, keep the copy if no registry answers.
    Refresh,
    /// `Never` and not in the store: the container waits in
    /// `ErrImageNeverPull`.
    NeverPullMissing,
    /// A `localhost/` image that is not in the store: no registry to ask.
    LocalMissing,
}

/// The policy in force: the pod's, or Kubernetes' default for the image.
pub fn effective(image: &ImageRef, policy: Option<PullPolicy>) -> PullPolicy {
    policy.unwrap_or(match (&image.digest, image.tag.as_deref()) {
        (None, None | Some("latest")) => PullPolicy::Always,
        _ => PullPolicy::IfNotPresent,
    })
}

/// Whether `image` is a local name that no registry is asked for.
pub fn local_only(image: &ImageRef) -> bool {
    image.domain == "localhost"
}

/// What `policy` means for `image` when it is (or is not) in the store.
pub fn decide(image: &ImageRef, policy: PullPolicy, present: bool) -> PullDecision {
    match (policy, present) {
        (PullPolicy::Never, false) => PullDecision::NeverPullMissing,
        (_, true) if local_only(image) => PullDecision::UseLocal,
        (_, false) if local_only(image) => PullDecision::LocalMissing,
        (PullPolicy::Always, true) => PullDecision::Refresh,
        (PullPolicy::Always | PullPolicy::IfNotPresent, false) => PullDecision::Pull,
        (PullPolicy::IfNotPresent | PullPolicy::Never, true) => PullDecision::UseLocal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(s: &str) -> ImageRef {
        ImageRef::parse(s).unwrap()
    }

    fn policy_of(i: &str, given: Option<PullPolicy>) -> PullPolicy {
        effective(&image(i), given)
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
        let reg = image("reg.example/app:1");
        assert_eq!(decide(&reg, PullPolicy::Always, true), PullDecision::Refresh);
        assert_eq!(decide(&reg, PullPolicy::Always, false), PullDecision::Pull);
        assert_eq!(decide(&reg, PullPolicy::IfNotPresent, true), PullDecision::UseLocal);
        assert_eq!(decide(&reg, PullPolicy::IfNotPresent, false), PullDecision::Pull);
        assert_eq!(decide(&reg, PullPolicy::Never, true), PullDecision::UseLocal);
        assert_eq!(decide(&reg, PullPolicy::Never, false), PullDecision::NeverPullMissing);
    }

    #[test]
    fn localhost_images_are_never_pulled() {
        let local = image("localhost/busybox");
        assert!(local_only(&local));
        assert!(!local_only(&image("localhost:5000/busybox")), "a registry on a port is a registry");
        assert!(!local_only(&image("busybox")));
        for p in [PullPolicy::Always, PullPolicy::IfNotPresent, PullPolicy::Never] {
            assert_eq!(decide(&local, p, true), PullDecision::UseLocal);
        }
        assert_eq!(decide(&local, PullPolicy::Always, false), PullDecision::LocalMissing);
        assert_eq!(decide(&local, PullPolicy::Never, false), PullDecision::NeverPullMissing);
    }
}
