//! ConfigMaps and Secrets: `get`, `describe`, `delete`, and `create secret
//! generic|docker-registry`, `create configmap` as kubectl's. `get -o yaml`
//! shows a Secret's values base64-encoded, as kubectl does; `describe`
//! shows their sizes only.

use super::{age, Ctx, Output};
use crate::api::manifest::{encode_base64, Config, DOCKER_CONFIG_JSON};
use crate::api::wire::{Reply, Request};
use crate::state::config::ConfigObject;
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::path::Path;

/// `ConfigMap` or `Secret` for a kind word.
pub(super) fn kind_of(word: &str) -> Option<&'static str> {
    match word {
        "configmap" | "configmaps" | "cm" => Some("ConfigMap"),
        "secret" | "secrets" => Some("Secret"),
        _ => None,
    }
}

async fn fetch(ctx: &Ctx, kind: &str, name: Option<String>, all: bool) -> Result<Vec<ConfigObject>> {
    let req = Request::GetConfigs {
        kind: kind.into(),
        namespace: (!all || name.is_some()).then(|| ctx.namespace.clone()),
        name,
    };
    let Reply::Configs { items } = ctx.read(&req).await? else {
        bail!("unexpected answer")
    };
    Ok(items)
}

/// The object as Kubernetes shows it.
fn shape(o: &ConfigObject) -> serde_json::Value {
    let mut j = match &o.config {
        Config::ConfigMap(c) => serde_json::to_value(c),
        Config::Secret(s) => serde_json::to_value(s),
    }
    .expect("plain struct");
    j["metadata"]["uid"] = o.uid.clone().into();
    j["metadata"]["creationTimestamp"] =
        humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_millis(o.created_ms))
            .to_string()
            .into();
    j["metadata"]["resourceVersion"] = o.version.to_string().into();
    if j["metadata"].get("namespace").is_none() {
        j["metadata"]["namespace"] = "default".into();
    }
    j
}

pub(super) async fn get(ctx: &Ctx, kind: &str, name: Option<String>, output: Option<Output>, all: bool) -> Result<i32> {
    let one = name.is_some();
    let items = fetch(ctx, kind, name, all).await?;
    let shaped = || -> serde_json::Value {
        if one {
            shape(&items[0])
        } else {
            serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items.iter().map(shape).collect::<Vec<_>>()})
        }
    };
    match output {
        Some(Output::Json) => println!("{}", serde_json::to_string_pretty(&shaped())?),
        Some(Output::Yaml) => print!("{}", serde_yaml_ng::to_string(&shaped())?),
        _ => {
            let ns = if all { format!("{:<16}", "NAMESPACE") } else { String::new() };
            match kind {
                "Secret" => println!("{ns}{:<32} {:<36} {:<5} AGE", "NAME", "TYPE", "DATA"),
                _ => println!("{ns}{:<32} {:<5} AGE", "NAME", "DATA"),
            }
            for o in &items {
                let (n, name) = o.key();
                let ns = if all { format!("{n:<16}") } else { String::new() };
                let count = o.config.values().len();
                match &o.config {
                    Config::Secret(s) => println!("{ns}{name:<32} {:<36} {count:<5} {}", s.type_name(), age(o.created_ms)),
                    Config::ConfigMap(_) => println!("{ns}{name:<32} {count:<5} {}", age(o.created_ms)),
                }
            }
        }
    }
    Ok(0)
}

pub(super) async fn describe(ctx: &Ctx, kind: &str, name: String) -> Result<i32> {
    let o = fetch(ctx, kind, Some(name), false).await?.remove(0);
    let m = o.config.metadata();
    println!("Name:         {}", m.name);
    println!("Namespace:    {}", m.namespace());
    println!(
        "Labels:       {}",
        m.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ")
    );
    println!("Age:          {}", age(o.created_ms));
    match &o.config {
        Config::Secret(s) => {
            println!("Type:         {}", s.type_name());
            println!("\nData\n====");
            for (k, v) in s.values() {
                println!("{k}:  {} bytes", v.len());
            }
        }
        Config::ConfigMap(c) => {
            println!("\nData\n====");
            for (k, v) in &c.data {
                println!("{k}:\n----\n{v}\n");
            }
            if !c.binary_data.is_empty() {
                println!("\nBinaryData\n====");
                for (k, v) in c.values().iter().filter(|(k, _)| c.binary_data.contains_key(*k)) {
                    println!("{k}: {} bytes", v.len());
                }
            }
        }
    }
    Ok(0)
}

pub(super) async fn delete(ctx: &Ctx, kind: &str, name: String) -> Result<i32> {
    let req = Request::DeleteConfig {
        kind: kind.into(),
        namespace: ctx.namespace.clone(),
        name,
    };
    if let Reply::Deleted { object } = ctx.simple(&req).await? {
        println!("{object} deleted");
    }
    Ok(0)
}

/// `shoal create ...`
#[derive(clap::Subcommand, Debug)]
pub(super) enum CreateCmd {
    /// Create a Secret.
    #[command(subcommand)]
    Secret(SecretCmd),
    /// Create a ConfigMap from literals, files or directories.
    #[command(alias = "cm")]
    Configmap(FromArgs),
}

/// `shoal create secret ...`
#[derive(clap::Subcommand, Debug)]
pub(super) enum SecretCmd {
    /// A Secret from literals, files or directories.
    Generic {
        #[command(flatten)]
        from: FromArgs,
        /// The Secret's type.
        #[arg(long = "type", default_value = "Opaque")]
        secret_type: String,
    },
    /// An image pull Secret (`kubernetes.io/dockerconfigjson`).
    DockerRegistry(DockerArgs),
}

/// Where the values come from.
#[derive(clap::Args, Debug)]
pub(super) struct FromArgs {
    /// Name.
    name: String,
    /// `KEY=VALUE`, repeatable.
    #[arg(long = "from-literal")]
    literal: Vec<String>,
    /// `[KEY=]PATH`: a file (its name is the key) or a directory (each
    /// regular file in it), repeatable.
    #[arg(long = "from-file")]
    file: Vec<String>,
}

/// `create secret docker-registry` settings.
#[derive(clap::Args, Debug)]
pub(super) struct DockerArgs {
    /// Name.
    name: String,
    /// The registry, as images name it (`registry.example:5000`).
    #[arg(long, default_value = "https://index.docker.io/v1/")]
    docker_server: String,
    /// User name.
    #[arg(long)]
    docker_username: String,
    /// Password.
    #[arg(long)]
    docker_password: String,
    /// E-mail (kept in the file, not used).
    #[arg(long)]
    docker_email: Option<String>,
}

/// The values of `--from-literal` and `--from-file`, each key once.
pub(super) fn values(from: &FromArgs) -> Result<BTreeMap<String, Vec<u8>>> {
    let mut out = BTreeMap::new();
    let mut add = |k: String, v: Vec<u8>| -> Result<()> {
        if let Some(why) = crate::api::validate::key_problem(&k) {
            bail!("key {k:?}: {why}");
        }
        if out.insert(k.clone(), v).is_some() {
            bail!("cannot add key {k:?}: another key by that name already exists");
        }
        Ok(())
    };
    for l in &from.literal {
        let (k, v) = l
            .split_once('=')
            .with_context(|| format!("--from-literal {l:?}: expected KEY=VALUE"))?;
        add(k.into(), v.as_bytes().to_vec())?;
    }
    for f in &from.file {
        let (key, path) = match f.split_once('=') {
            Some((k, p)) => (Some(k.to_string()), Path::new(p)),
            None => (None, Path::new(f.as_str())),
        };
        if path.is_dir() {
            if key.is_some() {
                bail!("--from-file {f:?}: a key cannot be given for a directory");
            }
            let mut entries: Vec<_> = std::fs::read_dir(path)
                .with_context(|| format!("--from-file {}", path.display()))?
                .flatten()
                .filter(|e| e.path().is_file())
                .collect();
            entries.sort_by_key(|e| e.file_name());
            for e in entries {
                let data = std::fs::read(e.path()).with_context(|| format!("--from-file {}", e.path().display()))?;
                add(e.file_name().to_string_lossy().into_owned(), data)?;
            }
        } else {
            let data = std::fs::read(path).with_context(|| format!("--from-file {}", path.display()))?;
            let key = key.unwrap_or_else(|| path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
            add(key, data)?;
        }
    }
    Ok(out)
}

/// The manifest `create` sends.
pub(super) fn manifest(cmd: &CreateCmd, namespace: &str) -> Result<serde_json::Value> {
    let meta = |name: &str| serde_json::json!({"name": name, "namespace": namespace});
    let b64 = |m: BTreeMap<String, Vec<u8>>| -> BTreeMap<String, String> { m.into_iter().map(|(k, v)| (k, encode_base64(&v))).collect() };
    Ok(match cmd {
        CreateCmd::Configmap(from) => {
            let (mut data, mut binary) = (BTreeMap::new(), BTreeMap::new());
            for (k, v) in values(from)? {
                match String::from_utf8(v) {
                    Ok(s) => data.insert(k, s),
                    Err(e) => binary.insert(k, encode_base64(e.as_bytes())),
                };
            }
            serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(&from.name), "data": data, "binaryData": binary})
        }
        CreateCmd::Secret(SecretCmd::Generic { from, secret_type }) => {
            serde_json::json!({"apiVersion": "v1", "kind": "Secret", "metadata": meta(&from.name), "type": secret_type, "data": b64(values(from)?)})
        }
        CreateCmd::Secret(SecretCmd::DockerRegistry(d)) => {
            let auth = encode_base64(format!("{}:{}", d.docker_username, d.docker_password).as_bytes());
            let mut entry = serde_json::json!({"username": d.docker_username, "password": d.docker_password, "auth": auth});
            if let Some(e) = &d.docker_email {
                entry["email"] = e.clone().into();
            }
            let file = serde_json::json!({"auths": {d.docker_server.clone(): entry}});
            let data = BTreeMap::from([(".dockerconfigjson".to_string(), serde_json::to_vec(&file)?)]);
            serde_json::json!({"apiVersion": "v1", "kind": "Secret", "metadata": meta(&d.name), "type": DOCKER_CONFIG_JSON, "data": b64(data)})
        }
    })
}

pub(super) async fn create(ctx: &Ctx, cmd: CreateCmd) -> Result<i32> {
    let m = manifest(&cmd, &ctx.namespace)?;
    let req = Request::Create {
        manifest: serde_json::to_string(&m)?,
    };
    if let Reply::Applied { objects } = ctx.simple(&req).await? {
        for a in objects {
            println!("{} {}", a.object, a.action);
        }
    }
    Ok(0)
}
