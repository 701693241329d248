//! Image pull Secrets: the `.dockerconfigjson` file of a Secret of type
//! `kubernetes.io/dockerconfigjson`, and the credentials it holds for the
//! registry an image names.

use super::pull::Credentials;
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Deserialize)]
struct File {
    #[serde(default)]
    auths: BTreeMap<String, Entry>,
}

#[derive(Deserialize)]
struct Entry {
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    auth: Option<String>,
}

/// `https://host:port/v1/` or `host:port` as a registry host; Docker Hub's
/// names as `docker.io`.
pub fn registry_host(server: &str) -> String {
    let s = server.trim();
    let s = s.strip_prefix("https://").or_else(|| s.strip_prefix("http://")).unwrap_or(s);
    let host = s.split('/').next().unwrap_or(s).to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => "docker.io".into(),
        _ => host,
    }
}

/// Every registry's credentials in a `.dockerconfigjson`.
pub fn parse(json: &[u8]) -> Result<BTreeMap<String, (String, String)>, String> {
    let f: File = serde_json::from_slice(json).map_err(|e| format!(".dockerconfigjson: {e}"))?;
    let mut out = BTreeMap::new();
    for (server, e) in f.auths {
        let pair = match (e.username, e.password, e.auth) {
            (Some(u), Some(p), _) => (u, p),
            (_, _, Some(a)) => {
                let raw = crate::api::manifest::decode_base64(&a).map_err(|e| format!(".dockerconfigjson: auths[{server:?}].auth: {e}"))?;
                let text = String::from_utf8_lossy(&raw).into_owned();
                let (u, p) = text
                    .split_once(':')
                    .ok_or_else(|| format!(".dockerconfigjson: auths[{server:?}].auth is not base64 of user:password"))?;
                (u.to_string(), p.to_string())
            }
            _ => continue,
        };
        out.insert(registry_host(&server), pair);
    }
    Ok(out)
}

/// The credentials for `domain` (an image's registry) among pull Secrets'
/// files, the first Secret that has them winning, as the kubelet.
pub fn for_registry(files: &[BTreeMap<String, (String, String)>], domain: &str) -> Credentials {
    let want = registry_host(domain);
    let basic = files.iter().find_map(|f| f.get(&want).cloned());
    Credentials {
        basic,
        registry: Some(want),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_match_by_host_and_docker_hub_by_any_of_its_names() {
        let f =
            parse(br#"{"auths":{"https://index.docker.io/v1/":{"auth":"Ym9iOnB3"},"reg.example:5000":{"username":"u","password":"p"}}}"#)
                .unwrap();
        assert_eq!(
            for_registry(std::slice::from_ref(&f), "docker.io").basic,
            Some(("bob".into(), "pw".into()))
        );
        assert_eq!(
            for_registry(std::slice::from_ref(&f), "reg.example:5000").basic,
            Some(("u".into(), "p".into()))
        );
        assert_eq!(for_registry(&[f], "other.example").basic, None);
        assert!(parse(br#"{"auths":{"x":{"auth":"bm9jb2xvbg=="}}}"#)
            .unwrap_err()
            .contains("user:password"));
    }
}
