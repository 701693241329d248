//! Builds a container's OCI runtime spec (`config.json`) from its pod, its
//! container entry and its image, with Kubernetes' meaning for every field.

use super::image::ResolvedImage;
use super::layout::NodePaths;
use super::projection::{ConfigError, Source};
use super::RuntimeError;
use crate::api::downward::PodFacts;
use crate::api::manifest::{Container, Pod};
use crate::api::quantity::Quantity;
use oci_spec::runtime::Spec;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Capabilities a container gets: Docker's default set.
pub const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Syscalls refused with EPERM: those Docker's default profile leaves out
/// that a container without extra capabilities could still reach.
const BLOCKED_SYSCALLS: &[&str] = &[
    "acct",
    "add_key",
    "bpf",
    "clock_adjtime",
    "clock_settime",
    "create_module",
    "delete_module",
    "finit_module",
    "fsconfig",
    "fsmount",
    "fsopen",
    "fspick",
    "get_kernel_syms",
    "get_mempolicy",
    "init_module",
    "ioperm",
    "iopl",
    "kcmp",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "lookup_dcookie",
    "mbind",
    "mount",
    "mount_setattr",
    "move_mount",
    "move_pages",
    "name_to_handle_at",
    "nfsservctl",
    "open_by_handle_at",
    "open_tree",
    "perf_event_open",
    "personality",
    "pivot_root",
    "process_vm_readv",
    "process_vm_writev",
    "ptrace",
    "query_module",
    "quotactl",
    "reboot",
    "request_key",
    "set_mempolicy",
    "setns",
    "settimeofday",
    "stime",
    "swapoff",
    "swapon",
    "sysfs",
    "_sysctl",
    "umount",
    "umount2",
    "unshare",
    "uselib",
    "userfaultfd",
    "ustat",
    "vm86",
    "vm86old",
];

fn seccomp() -> Value {
    let arches: &[&str] = match std::env::consts::ARCH {
        "x86_64" => &["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "aarch64" => &["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
        "arm" => &["SCMP_ARCH_ARM"],
        _ => &[],
    };
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": arches,
        "syscalls": [{"names": BLOCKED_SYSCALLS, "action": "SCMP_ACT_ERRNO", "errnoRet": 1}],
    })
}

/// Expands `$(VAR)` from `env` as Kubernetes does; `$$(VAR)` stays literal.
pub fn expand(s: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(t) = tail.strip_prefix("$$") {
            out.push('$');
            rest = t;
        } else if let Some(inner) = tail.strip_prefix("$(") {
            match inner.find(')') {
                Some(end) if env.contains_key(&inner[..end]) => {
                    out.push_str(&env[&inner[..end]]);
                    rest = &inner[end + 1..];
                }
                Some(end) => {
                    out.push_str(&tail[..end + 3]);
                    rest = &inner[end + 1..];
                }
                None => {
                    out.push_str(tail);
                    rest = "";
                }
            }
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

/// The process's environment, argv and working dir after Kubernetes' rules.
pub fn process_of(
    pod: &Pod,
    c: &Container,
    image: &ResolvedImage,
    facts: &PodFacts,
) -> Result<(Vec<String>, Vec<String>, String), RuntimeError> {
    let cfg = image.config.config().clone().unwrap_or_default();
    let mut env: Vec<(String, String)> = Vec::new();
    let set = |env: &mut Vec<(String, String)>, k: String, v: String| match env.iter_mut().find(|(n, _)| *n == k) {
        Some(e) => e.1 = v,
        None => env.push((k, v)),
    };
    if !cfg
        .env()
        .as_ref()
        .map(|e| e.iter().any(|v| v.starts_with("PATH=")))
        .unwrap_or(false)
    {
        set(
            &mut env,
            "PATH".into(),
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        );
    }
    for kv in cfg.env().clone().unwrap_or_default() {
        let (k, v) = kv.split_once('=').unwrap_or((&kv, ""));
        set(&mut env, k.into(), v.into());
    }
    set(&mut env, "HOSTNAME".into(), pod.metadata.name.clone());
    let ns = pod.metadata.namespace();
    for e in &c.env_from {
        let (source, r) = match (&e.config_map_ref, &e.secret_ref) {
            (Some(r), _) => (Source::ConfigMap, r),
            (None, Some(r)) => (Source::Secret, r),
            (None, None) => continue,
        };
        let Some(values) = facts.configs.get(source, &r.name) else {
            if r.optional.unwrap_or(false) {
                continue;
            }
            return Err(ConfigError::Missing {
                of: source,
                name: r.name.clone(),
            }
            .into());
        };
        for (k, v) in values {
            let name = format!("{}{k}", e.prefix.as_deref().unwrap_or(""));
            // As the kubelet: keys that are not variable names are skipped.
            if name.is_empty() || name.contains('=') || name.as_bytes()[0].is_ascii_digit() {
                continue;
            }
            set(&mut env, name, String::from_utf8_lossy(v).into_owned());
        }
    }
    for e in &c.env {
        let from = e.value_from.as_ref();
        let key_ref = from.and_then(|f| {
            f.config_map_key_ref
                .as_ref()
                .map(|k| (Source::ConfigMap, k))
                .or(f.secret_key_ref.as_ref().map(|k| (Source::Secret, k)))
        });
        let v = match (from.and_then(|f| f.field_ref.as_ref()), key_ref) {
            (Some(f), _) => crate::api::downward::field_value(pod, facts, &f.field_path),
            (None, Some((source, k))) => {
                let optional = k.optional.unwrap_or(false);
                match facts.configs.get(source, &k.name).map(|vals| vals.get(&k.key)) {
                    Some(Some(v)) => String::from_utf8_lossy(v).into_owned(),
                    _ if optional => continue,
                    None => {
                        return Err(ConfigError::Missing {
                            of: source,
                            name: k.name.clone(),
                        }
                        .into())
                    }
                    Some(None) => {
                        return Err(ConfigError::NoKey {
                            of: source,
                            namespace: ns.into(),
                            name: k.name.clone(),
                            key: k.key.clone(),
                        }
                        .into())
                    }
                }
            }
            (None, None) => {
                let known: BTreeMap<String, String> = env.iter().cloned().collect();
                expand(&e.value, &known)
            }
        };
        set(&mut env, e.name.clone(), v);
    }
    let known: BTreeMap<String, String> = env.iter().cloned().collect();
    let entrypoint = cfg.entrypoint().clone().unwrap_or_default();
    let cmd = cfg.cmd().clone().unwrap_or_default();
    let argv: Vec<String> = match (&c.command, &c.args) {
        (Some(command), args) => command.iter().chain(args.iter().flatten()).map(|a| expand(a, &known)).collect(),
        (None, Some(args)) => entrypoint.iter().cloned().chain(args.iter().map(|a| expand(a, &known))).collect(),
        (None, None) => entrypoint.into_iter().chain(cmd).collect(),
    };
    if argv.is_empty() {
        return Err(RuntimeError::Spec(format!(
            "container {:?}: no command: the image {} has no ENTRYPOINT or CMD and the manifest sets none",
            c.name, image.reference
        )));
    }
    let cwd = c
        .working_dir
        .clone()
        .or_else(|| cfg.working_dir().clone().filter(|w| !w.is_empty()))
        .unwrap_or_else(|| "/".into());
    Ok((argv, env.into_iter().map(|(k, v)| format!("{k}={v}")).collect(), cwd))
}

fn user_of(c: &Container, image: &ResolvedImage) -> Result<(u32, u32), RuntimeError> {
    let cfg = image.config.config().clone().unwrap_or_default();
    let image_user = cfg.user().clone().unwrap_or_default();
    let (iu, ig) = image_user
        .split_once(':')
        .map(|(u, g)| (u.to_string(), Some(g.to_string())))
        .unwrap_or((image_user.clone(), None));
    let numeric = |s: &str, what: &str| -> Result<u32, RuntimeError> {
        match s {
            "" | "root" => Ok(0),
            s => s.parse().map_err(|_| {
                RuntimeError::Spec(format!(
                    "container {:?}: image {what} {s:?} is not numeric; set securityContext.runAsUser",
                    c.name
                ))
            }),
        }
    };
    let sc = c.security_context.clone().unwrap_or_default();
    let uid = match sc.run_as_user {
        Some(u) => u as u32,
        None => numeric(&iu, "user")?,
    };
    let gid = match sc.run_as_group {
        Some(g) => g as u32,
        None => match ig {
            Some(g) => numeric(&g, "group")?,
            None => 0,
        },
    };
    Ok((uid, gid))
}

fn resources(c: &Container) -> Value {
    let get = |m: &BTreeMap<String, String>, k: &str| m.get(k).and_then(|v| Quantity::parse(v).ok());
    let mut res = json!({});
    let limits = &c.resources.limits;
    let requests = &c.resources.requests;
    if let Some(mem) = get(limits, "memory") {
        let bytes = mem.whole_ceil();
        // No swap: a container that exceeds its limit is OOM-killed, as in Kubernetes.
        res["memory"] = json!({"limit": bytes, "swap": bytes});
    }
    let mut cpu = json!({});
    // Kubernetes' mapping: shares = millicores * 1024 / 1000, at least 2;
    // a limit becomes a CFS quota over a 100 ms period.
    if let Some(req) = get(requests, "cpu").or_else(|| get(limits, "cpu")) {
        cpu["shares"] = json!((req.milli() * 1024 / 1000).max(2));
    }
    if let Some(lim) = get(limits, "cpu") {
        cpu["quota"] = json!((lim.milli() * 100).max(1000));
        cpu["period"] = json!(100_000);
    }
    if cpu.as_object().is_some_and(|o| !o.is_empty()) {
        res["cpu"] = cpu;
    }
    res["devices"] = json!([
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 7, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 8, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 9, "access": "rwm"},
        {"allow": true, "type": "c", "major": 5, "minor": 0, "access": "rwm"},
        {"allow": true, "type": "c", "major": 5, "minor": 2, "access": "rwm"},
        {"allow": true, "type": "c", "major": 136, "access": "rwm"},
    ]);
    res
}

/// Where a configMap or secret volume's files are: secrets on the pod's
/// tmpfs, ConfigMaps on disk.
pub fn config_volume_dir(paths: &NodePaths, uid: &str, vol: &crate::api::manifest::Volume) -> PathBuf {
    match vol.secret {
        Some(_) => paths.pod_tmpfs(uid).join("volumes").join(&vol.name),
        None => paths.pod(uid).join("volumes").join(&vol.name),
    }
}

/// Volume mounts; creates hostPath targets where the type asks for it.
fn volume_mounts(paths: &NodePaths, uid: &str, pod: &Pod, c: &Container) -> Result<Vec<Value>, RuntimeError> {
    let mut out = Vec::new();
    for m in &c.volume_mounts {
        let vol = pod
            .spec
            .volumes
            .iter()
            .find(|v| v.name == m.name)
            .ok_or_else(|| RuntimeError::Spec(format!("no volume {:?}", m.name)))?;
        let ro = if m.read_only { "ro" } else { "rw" };
        if vol.config_map.is_some() || vol.secret.is_some() {
            // Written by `Runtime::project` before the spec; always read-only.
            let src = config_volume_dir(paths, uid, vol);
            out.push(json!({"destination": m.mount_path, "type": "bind", "source": src, "options": ["rbind", "ro"]}));
            continue;
        }
        if let Some(e) = &vol.empty_dir {
            if e.medium.as_deref() == Some("Memory") {
                let mut opts = vec!["nosuid".to_string(), "nodev".into(), ro.into()];
                if let Some(limit) = e.size_limit.as_deref().and_then(|s| Quantity::parse(s).ok()) {
                    opts.push(format!("size={}", limit.whole_ceil()));
                }
                out.push(json!({"destination": m.mount_path, "type": "tmpfs", "source": "tmpfs", "options": opts}));
                continue;
            }
            let src = paths.pod(uid).join("volumes").join(&vol.name);
            std::fs::create_dir_all(&src).map_err(|e| RuntimeError::Io {
                path: src.clone(),
                source: e,
            })?;
            out.push(json!({"destination": m.mount_path, "type": "bind", "source": src, "options": ["rbind", ro]}));
        } else if let Some(h) = &vol.host_path {
            let src = Path::new(&h.path);
            let kind = h.kind.as_deref().unwrap_or("");
            let exists = src.exists();
            match kind {
                "DirectoryOrCreate" if !exists => std::fs::create_dir_all(src).map_err(|e| RuntimeError::Io {
                    path: src.into(),
                    source: e,
                })?,
                "FileOrCreate" if !exists => {
                    std::fs::write(src, b"").map_err(|e| RuntimeError::Io {
                        path: src.into(),
                        source: e,
                    })?;
                }
                "Directory" if !src.is_dir() => return Err(RuntimeError::Spec(format!("hostPath {:?} is not a directory", h.path))),
                "File" if !src.is_file() => return Err(RuntimeError::Spec(format!("hostPath {:?} is not a file", h.path))),
                _ if !exists => return Err(RuntimeError::Spec(format!("hostPath {:?} does not exist", h.path))),
                _ => {}
            }
            out.push(json!({"destination": m.mount_path, "type": "bind", "source": h.path, "options": ["rbind", ro]}));
        }
    }
    Ok(out)
}

/// Writes `config.json` into `bundle` for container `c` of `pod`.
pub fn write_spec(
    paths: &NodePaths,
    uid: &str,
    pod: &Pod,
    c: &Container,
    image: &ResolvedImage,
    facts: &PodFacts,
    bundle: &Path,
) -> Result<(), RuntimeError> {
    let (args, env, cwd) = process_of(pod, c, image, facts)?;
    let (user, group) = user_of(c, image)?;
    let sc = c.security_context.clone().unwrap_or_default();
    let caps = DEFAULT_CAPS;
    let ns = paths.pod(uid).join("ns");
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc"}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]}),
        json!({"destination": "/etc/hosts", "type": "bind", "source": paths.pod(uid).join("hosts"), "options": ["rbind", "ro"]}),
        json!({"destination": "/etc/resolv.conf", "type": "bind", "source": paths.pod(uid).join("resolv.conf"), "options": ["rbind", "ro"]}),
    ];
    mounts.extend(volume_mounts(paths, uid, pod, c)?);
    let spec = json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": user, "gid": group},
            "args": args,
            "env": env,
            "cwd": cwd,
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "noNewPrivileges": !sc.allow_privilege_escalation.unwrap_or(false),
        },
        "root": {"path": bundle.join("rootfs"), "readonly": sc.read_only_root_filesystem.unwrap_or(false)},
        "mounts": mounts,
        "annotations": {"io.shoal.pod": format!("{}/{}", pod.metadata.namespace(), pod.metadata.name), "io.shoal.container": c.name},
        "linux": {
            "cgroupsPath": format!("{}/{}", paths.pod_cgroup(uid), c.name),
            "resources": resources(c),
            "namespaces": [
                {"type": "pid"},
                {"type": "mount"},
                {"type": "network", "path": ns.join("net")},
                {"type": "ipc", "path": ns.join("ipc")},
                {"type": "uts", "path": ns.join("uts")},
            ],
            "seccomp": seccomp(),
            "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
                "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
        },
    });
    let spec: Spec = serde_json::from_value(spec).map_err(|e| RuntimeError::Spec(format!("building OCI spec: {e}")))?;
    // The spec holds the environment, Secrets' values included: it lives
    // on the pod's tmpfs, and the bundle links to it.
    let path = paths.pod_tmpfs(uid).join(format!("{}.json", c.name));
    spec.save(&path)
        .map_err(|e| RuntimeError::Spec(format!("{}: {e}", path.display())))?;
    let link = bundle.join("config.json");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&path, &link).map_err(|e| RuntimeError::Io { path: link, source: e })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollar_references_expand_like_kubernetes() {
        let env: BTreeMap<String, String> = [("A".to_string(), "x".to_string())].into();
        assert_eq!(expand("$(A)-$(B)-$$(A)-$", &env), "x-$(B)-$(A)-$");
        assert_eq!(expand("$(A", &env), "$(A");
    }
}
