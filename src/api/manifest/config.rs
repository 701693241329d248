//! ConfigMaps and Secrets (v1): configuration and credentials kept out of
//! the image. A Secret's `data` is base64 on the wire, as in Kubernetes;
//! `stringData` is write-only and is merged into `data` when applied.

use super::ObjectMeta;
use base64::Engine;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A v1 ConfigMap.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigMap {
    /// Always `v1`.
    pub api_version: String,
    /// Always `ConfigMap`.
    pub kind: String,
    /// Name, namespace, labels.
    pub metadata: ObjectMeta,
    /// UTF-8 values by key.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub data: BTreeMap<String, String>,
    /// Binary values by key, base64.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub binary_data: BTreeMap<String, String>,
    /// When true, `data` and `binaryData` can no longer change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub immutable: Option<bool>,
}

/// A v1 Secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Secret {
    /// Always `v1`.
    pub api_version: String,
    /// Always `Secret`.
    pub kind: String,
    /// Name, namespace, labels.
    pub metadata: ObjectMeta,
    /// `Opaque` when absent; `kubernetes.io/dockerconfigjson` for pull secrets.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub secret_type: Option<String>,
    /// Values by key, base64.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub data: BTreeMap<String, String>,
    /// Values by key in clear; merged into `data` when applied.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub string_data: BTreeMap<String, String>,
    /// When true, `data` can no longer change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub immutable: Option<bool>,
}

/// The type of a Secret with `type` left out.
pub const OPAQUE: &str = "Opaque";
/// The type of an image pull secret.
pub const DOCKER_CONFIG_JSON: &str = "kubernetes.io/dockerconfigjson";

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// Base64 of `bytes`, as `data` carries it.
pub fn encode(bytes: &[u8]) -> String {
    b64().encode(bytes)
}

/// The bytes of a `data` value.
pub fn decode(value: &str) -> Result<Vec<u8>, base64::DecodeError> {
    b64().decode(value.trim())
}

impl Secret {
    /// Its type, `Opaque` when not given.
    pub fn type_name(&self) -> &str {
        self.secret_type.as_deref().unwrap_or(OPAQUE)
    }

    /// `stringData` merged into `data` (a key in both takes `stringData`'s
    /// value, as in Kubernetes) and the type filled in.
    pub fn normalised(mut self) -> Secret {
        for (k, v) in std::mem::take(&mut self.string_data) {
            self.data.insert(k, encode(v.as_bytes()));
        }
        self.secret_type = Some(self.type_name().to_string());
        self
    }

    /// Every value, decoded (a value that is not base64 is skipped: the
    /// validation refuses such a Secret before it is stored).
    pub fn values(&self) -> BTreeMap<String, Vec<u8>> {
        let mut out: BTreeMap<String, Vec<u8>> = self.data.iter().filter_map(|(k, v)| Some((k.clone(), decode(v).ok()?))).collect();
        for (k, v) in &self.string_data {
            out.insert(k.clone(), v.as_bytes().to_vec());
        }
        out
    }
}

impl ConfigMap {
    /// Every value as bytes: `data` and decoded `binaryData`.
    pub fn values(&self) -> BTreeMap<String, Vec<u8>> {
        let mut out: BTreeMap<String, Vec<u8>> = self.data.iter().map(|(k, v)| (k.clone(), v.clone().into_bytes())).collect();
        for (k, v) in &self.binary_data {
            if let Ok(b) = decode(v) {
                out.insert(k.clone(), b);
            }
        }
        out
    }
}

/// A ConfigMap or a Secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Config {
    /// A ConfigMap.
    ConfigMap(ConfigMap),
    /// A Secret.
    Secret(Secret),
}

impl Config {
    /// `ConfigMap` or `Secret`.
    pub fn kind(&self) -> &'static str {
        match self {
            Config::ConfigMap(_) => "ConfigMap",
            Config::Secret(_) => "Secret",
        }
    }

    /// Name, namespace, labels.
    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            Config::ConfigMap(c) => &c.metadata,
            Config::Secret(s) => &s.metadata,
        }
    }

    /// Every value as bytes.
    pub fn values(&self) -> BTreeMap<String, Vec<u8>> {
        match self {
            Config::ConfigMap(c) => c.values(),
            Config::Secret(s) => s.values(),
        }
    }

    /// Whether it was made immutable.
    pub fn immutable(&self) -> bool {
        match self {
            Config::ConfigMap(c) => c.immutable,
            Config::Secret(s) => s.immutable,
        }
        .unwrap_or(false)
    }
}
