//! Which entry of an image index this node runs: the one for its OS,
//! architecture and variant, by containerd's rules. `arm64` matches with
//! variant `v8` or none; an ARMv7 node takes `arm/v7`, or a plain `arm`
//! entry (which means v7), then `arm/v6`, then `arm/v5`; `amd64` takes no
//! variant or `v1` before any other. Entries for another OS, and
//! attestation entries (`unknown/unknown`), never match.

use oci_spec::image::Descriptor;
use std::fmt;

/// An OS, architecture and variant as an image index names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    /// `linux`.
    pub os: String,
    /// Go's name: `amd64`, `arm64`, `arm`...
    pub architecture: String,
    /// `v7`, `v8`... (none for most).
    pub variant: Option<String>,
}

impl Platform {
    /// What this build of Shoal runs on (the 32-bit ARM build needs ARMv7).
    pub fn host() -> Platform {
        let (architecture, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "aarch64" => ("arm64", Some("v8")),
            "arm" => ("arm", Some("v7")),
            "x86" => ("386", None),
            other => (other, None),
        };
        Platform {
            os: "linux".into(),
            architecture: architecture.into(),
            variant: variant.map(String::from),
        }
    }

    /// How well an entry for `offered` suits this platform: `None` if it
    /// cannot run here, lower is better.
    fn rank(&self, offered: &Platform) -> Option<u8> {
        if offered.os != self.os || offered.architecture != self.architecture {
            return None;
        }
        let v = offered.variant.as_deref().unwrap_or("");
        match self.architecture.as_str() {
            "arm64" => matches!(v, "" | "v8").then_some(0),
            // Newest first, down to the oldest this CPU also runs.
            "arm" => {
                let order = ["v8", "v7", "v6", "v5"];
                let mine = self.variant.as_deref().unwrap_or("v7");
                let from = order.iter().position(|o| *o == mine)?;
                let v = if v.is_empty() { "v7" } else { v };
                order[from..].iter().position(|o| *o == v).map(|i| i as u8)
            }
            _ => Some(if matches!(v, "" | "v1") { 0 } else { 1 }),
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// No entry of an index runs here.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("no image for {want} in the index; it offers {}", if offered.is_empty() { "no platforms".to_string() } else { offered.join(", ") })]
pub struct NoMatchingPlatform {
    /// This node's platform.
    pub want: String,
    /// What the index offers.
    pub offered: Vec<String>,
}

/// The entry of `manifests` (an image index's) this platform runs; an
/// entry without a platform counts as this one's (as containerd reads an
/// index made for one platform).
pub fn choose<'a>(host: &Platform, manifests: &'a [Descriptor]) -> Result<&'a Descriptor, NoMatchingPlatform> {
    let offered = |d: &Descriptor| {
        d.platform().as_ref().map(|p| Platform {
            os: p.os().to_string(),
            architecture: p.architecture().to_string(),
            variant: p.variant().clone(),
        })
    };
    manifests
        .iter()
        .enumerate()
        .filter_map(|(i, d)| match offered(d) {
            Some(p) => host.rank(&p).map(|r| (r, i, d)),
            None => Some((0, i, d)),
        })
        .min_by_key(|(rank, i, _)| (*rank, *i))
        .map(|(_, _, d)| d)
        .ok_or_else(|| NoMatchingPlatform {
            want: host.to_string(),
            offered: manifests.iter().filter_map(offered).map(|p| p.to_string()).collect(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::image::{DescriptorBuilder, MediaType, PlatformBuilder};

    fn entry(platform: &str) -> Descriptor {
        let parts: Vec<&str> = platform.split('/').collect();
        let mut p = PlatformBuilder::default().os(parts[0]).architecture(parts[1]);
        if let Some(v) = parts.get(2) {
            p = p.variant(*v);
        }
        DescriptorBuilder::default()
            .media_type(MediaType::ImageManifest)
            .digest(
                format!("sha256:{:064x}", platform.len() * 7 + parts.len())
                    .parse::<oci_spec::image::Digest>()
                    .unwrap(),
            )
            .size(1u64)
            .platform(p.build().unwrap())
            .build()
            .unwrap()
    }

    fn host(s: &str) -> Platform {
        let parts: Vec<&str> = s.split('/').collect();
        Platform {
            os: parts[0].into(),
            architecture: parts[1].into(),
            variant: parts.get(2).map(|v| v.to_string()),
        }
    }

    fn pick(h: &str, offered: &[&str]) -> Result<String, NoMatchingPlatform> {
        let index: Vec<Descriptor> = offered.iter().map(|p| entry(p)).collect();
        let d = choose(&host(h), &index)?;
        let p = d.platform().as_ref().unwrap();
        Ok(Platform {
            os: p.os().to_string(),
            architecture: p.architecture().to_string(),
            variant: p.variant().clone(),
        }
        .to_string())
    }

    const DOCKER_HUB: &[&str] = &[
        "linux/amd64",
        "unknown/unknown",
        "linux/arm/v5",
        "linux/arm/v6",
        "linux/arm/v7",
        "linux/arm64/v8",
        "linux/386",
        "windows/amd64",
    ];

    #[test]
    fn each_node_gets_its_own_entry() {
        assert_eq!(pick("linux/amd64", DOCKER_HUB).unwrap(), "linux/amd64");
        assert_eq!(pick("linux/arm64/v8", DOCKER_HUB).unwrap(), "linux/arm64/v8");
        assert_eq!(pick("linux/arm/v7", DOCKER_HUB).unwrap(), "linux/arm/v7");
        // arm64 without a variant is v8.
        assert_eq!(pick("linux/arm64/v8", &["linux/arm/v7", "linux/arm64"]).unwrap(), "linux/arm64");
    }

    #[test]
    fn armv7_takes_plain_arm_then_older_variants_never_newer() {
        assert_eq!(pick("linux/arm/v7", &["linux/arm64/v8", "linux/arm"]).unwrap(), "linux/arm");
        assert_eq!(pick("linux/arm/v7", &["linux/arm/v5", "linux/arm/v6"]).unwrap(), "linux/arm/v6");
        assert_eq!(pick("linux/arm/v7", &["linux/arm/v5"]).unwrap(), "linux/arm/v5");
        // An ARMv6 board (Pi Zero) cannot run v7 code.
        assert!(pick("linux/arm/v6", &["linux/arm/v7", "linux/arm"]).is_err());
        assert_eq!(pick("linux/arm/v6", &["linux/arm/v7", "linux/arm/v6"]).unwrap(), "linux/arm/v6");
    }

    #[test]
    fn no_match_names_what_the_index_offers() {
        let e = pick("linux/arm/v7", &["linux/amd64", "linux/arm64/v8", "windows/arm/v7"]).unwrap_err();
        assert_eq!(e.want, "linux/arm/v7");
        assert_eq!(
            e.to_string(),
            "no image for linux/arm/v7 in the index; it offers linux/amd64, linux/arm64/v8, windows/arm/v7"
        );
        assert!(pick("linux/amd64", &["unknown/unknown"]).is_err());
    }

    #[test]
    fn amd64_prefers_the_baseline_variant() {
        assert_eq!(pick("linux/amd64", &["linux/amd64/v3", "linux/amd64"]).unwrap(), "linux/amd64");
        assert_eq!(pick("linux/amd64", &["linux/amd64/v3"]).unwrap(), "linux/amd64/v3");
    }

    #[test]
    fn this_build_names_its_platform() {
        let h = Platform::host();
        assert_eq!(h.os, "linux");
        #[cfg(target_arch = "x86_64")]
        assert_eq!(h.to_string(), "linux/amd64");
        #[cfg(target_arch = "aarch64")]
        assert_eq!(h.to_string(), "linux/arm64/v8");
        #[cfg(target_arch = "arm")]
        assert_eq!(h.to_string(), "linux/arm/v7");
    }
}
