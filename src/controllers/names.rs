//! Generated names, as Kubernetes makes them: a template hash for
//! ReplicaSets (`web-5d4b8c7f9`) and a random 5-character suffix for pods
//! (`web-5d4b8c7f9-x2k1q`), from the alphabet Kubernetes uses so no name
//! spells a word.

use crate::api::manifest::PodTemplateSpec;

/// Kubernetes' `SafeEncodeString` alphabet: no vowels, no 0, 1, 3.
const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// The `pod-template-hash` of a template: FNV-1a (32 bits) of its JSON,
/// its decimal digits mapped onto the safe alphabet.
pub fn template_hash(t: &PodTemplateSpec) -> String {
    let json = serde_json::to_vec(t).expect("plain struct");
    let mut h: u32 = 0x811c_9dc5;
    for b in json {
        h ^= b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    h.to_string()
        .bytes()
        .map(|b| ALPHABET[b as usize % ALPHABET.len()] as char)
        .collect()
}

/// Random names and uids for one controller pass, from a seed (splitmix64),
/// so a pass is a pure function of its inputs.
pub struct Names {
    state: u64,
}

impl Names {
    /// A generator for one pass.
    pub fn new(seed: u64) -> Names {
        Names { state: seed }
    }

    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// `<base>-<5 safe characters>`.
    pub fn pod_name(&mut self, base: &str) -> String {
        let mut x = self.next();
        let suffix: String = (0..5)
            .map(|_| {
                let c = ALPHABET[(x % ALPHABET.len() as u64) as usize] as char;
                x /= ALPHABET.len() as u64;
                c
            })
            .collect();
        format!("{base}-{suffix}")
    }

    /// A new uid.
    pub fn uid(&mut self) -> String {
        format!("{:016x}{:016x}", self.next(), self.next())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_stable_and_follows_the_template() {
        let mut t = PodTemplateSpec::default();
        let a = template_hash(&t);
        assert_eq!(a, template_hash(&t));
        assert!(a.bytes().all(|b| ALPHABET.contains(&b)), "{a}");
        t.metadata.labels.insert("app".into(), "web".into());
        assert_ne!(a, template_hash(&t));
    }

    #[test]
    fn pod_names_differ_and_use_the_safe_alphabet() {
        let mut n = Names::new(7);
        let (a, b) = (n.pod_name("web"), n.pod_name("web"));
        assert_ne!(a, b);
        assert_eq!(a.len(), "web-".len() + 5);
        assert!(a[4..].bytes().all(|c| ALPHABET.contains(&c)), "{a}");
    }
}
