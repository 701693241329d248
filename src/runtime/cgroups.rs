//! The few cgroup reads and clean-ups Shoal does itself (libcontainer does
//! the rest), on cgroup v1, v2 and hybrid hosts alike.

use std::path::PathBuf;

const ROOT: &str = "/sys/fs/cgroup";

/// Every directory a cgroup path `rel` has across the mounted hierarchies.
pub fn dirs(rel: &str) -> Vec<PathBuf> {
    let rel = rel.trim_start_matches('/');
    let root = PathBuf::from(ROOT);
    if root.join("cgroup.controllers").exists() {
        return vec![root.join(rel)];
    }
    let Ok(entries) = std::fs::read_dir(&root) else { return Vec::new() };
    entries.flatten().map(|e| e.path().join(rel)).filter(|p| p.is_dir()).collect()
}

/// How often the OOM killer struck in the cgroup `rel`.
pub fn oom_kills(rel: &str) -> u64 {
    let rel = rel.trim_start_matches('/');
    let candidates = [
        PathBuf::from(ROOT).join(rel).join("memory.events"),
        PathBuf::from(ROOT).join("unified").join(rel).join("memory.events"),
        PathBuf::from(ROOT).join("memory").join(rel).join("memory.oom_control"),
    ];
    candidates
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .filter_map(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("oom_kill ").and_then(|n| n.trim().parse::<u64>().ok()))
        })
        .max()
        .unwrap_or(0)
}

/// Removes the cgroup `rel` and its empty children in every hierarchy.
pub fn remove(rel: &str) {
    for dir in dirs(rel) {
        remove_tree(&dir);
    }
}

fn remove_tree(dir: &std::path::Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_tree(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}
