//! `pull`: an image from a registry into the store, through oci-client.
//! The endpoints come from registries.yaml (mirrors first, the registry
//! itself last); the first that serves the manifest is used. An index gives
//! this node's entry ([`super::platform`]); each layer streams into the
//! store through [`super::blob`] (hashed on the way, resumed after a cut,
//! shared with concurrent pulls, skipped when present) and the image is
//! committed as an import's would be, each layer unpacked once with the same
//! checks. Progress goes to a [`Progress`].

use super::blob::{self, Body};
use super::import::{commit, Candidate};
use super::platform::{self, Platform};
pub use super::progress::Progress;
use super::registries::{Auth, Endpoint, Registries, Scheme};
use super::store::{ImageError, ImageStore};
use super::ImageRef;
use crate::api::wire::ImageInfo;
use futures_util::{StreamExt, TryStreamExt};
use oci_client::client::BlobResponse;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::manifest::{IMAGE_MANIFEST_LIST_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE, OCI_IMAGE_INDEX_MEDIA_TYPE, OCI_IMAGE_MEDIA_TYPE};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};
use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest};

/// Why a pull failed (the reason a pod's `ErrImagePull` shows).
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// The reference did not parse.
    #[error(transparent)]
    Reference(#[from] super::RefError),
    /// Every endpoint failed; the last one's reason (earlier ones are in
    /// `tried`).
    #[error("pull {image}: {reason}{}", if tried.is_empty() { String::new() } else { format!(" (also tried: {})", tried.join("; ")) })]
    Failed {
        /// The image as given.
        image: String,
        /// The last endpoint's failure.
        reason: String,
        /// `endpoint: reason` for the endpoints before it.
        tried: Vec<String>,
    },
    /// No endpoint could be reached at all (no answer, not a refusal).
    #[error("pull {image}: no registry reachable: {reason}{}", if tried.is_empty() { String::new() } else { format!(" (also tried: {})", tried.join("; ")) })]
    Unreachable {
        /// The image as given.
        image: String,
        /// The last endpoint's failure.
        reason: String,
        /// `endpoint: reason` for the endpoints before it.
        tried: Vec<String>,
    },
    /// No entry of the image's index runs here.
    #[error("pull {image}: {source}")]
    Platform {
        /// The image.
        image: String,
        /// What the index offers.
        source: platform::NoMatchingPlatform,
    },
    /// The store refused what arrived (digest, unpacking, disk).
    #[error("pull {image}: {source}")]
    Store {
        /// The image.
        image: String,
        /// Why.
        source: ImageError,
    },
}

/// Credentials given with the pull (a pod's `imagePullSecrets`): they win
/// over registries.yaml's for the registry they name.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    /// Basic auth user and password.
    pub basic: Option<(String, String)>,
    /// The registry host they are for: a mirror is not given them. `None`:
    /// every endpoint.
    pub registry: Option<String>,
}

/// Layers downloaded at once (containerd's default is 3).
const PARALLEL: usize = 3;

/// Pulls `image` into `store`, telling `progress`; returns what was stored.
pub async fn pull(
    store: &ImageStore,
    registries: &Registries,
    image: &str,
    creds: &Credentials,
    progress: &Progress,
) -> Result<Vec<ImageInfo>, PullError> {
    let c = each_endpoint(
        registries,
        image,
        |ep, r| async move { fetch(store, &ep, &r, creds, progress).await },
    )
    .await?;
    let store2 = store.clone();
    let stored = tokio::task::spawn_blocking(move || store2.add(c)).await.expect("store task");
    stored.map_err(|source| PullError::Store {
        image: image.into(),
        source,
    })
}

/// The digest `image` has at its registry now, for this node's platform
/// (what the store records for it): how `imagePullPolicy: Always` finds
/// out whether the local copy is current.
pub async fn current_digest(registries: &Registries, image: &str, creds: &Credentials) -> Result<String, PullError> {
    each_endpoint(registries, image, |ep, r| async move {
        let client = client(&ep)?;
        let auth = auth(&ep, creds)?;
        Ok(manifest(&client, &ep, &r, &auth).await?.digest)
    })
    .await
}

/// Runs `f` on the endpoints in order until one succeeds.
async fn each_endpoint<T, F, Fut>(registries: &Registries, image: &str, f: F) -> Result<T, PullError>
where
    F: Fn(Endpoint, ImageRef) -> Fut,
    Fut: std::future::Future<Output = Result<T, Fetch>>,
{
    let r = ImageRef::parse(image)?;
    let mut tried = Vec::new();
    let mut all_unreachable = true;
    let endpoints = registries.endpoints(&r.domain, &r.path);
    let last = endpoints.len() - 1;
    for (i, ep) in endpoints.iter().enumerate() {
        let reason = match f(ep.clone(), r.clone()).await {
            Ok(t) => return Ok(t),
            Err(Fetch::Platform(source)) => {
                return Err(PullError::Platform {
                    image: image.into(),
                    source,
                })
            }
            Err(Fetch::Unreachable(reason)) => reason,
            Err(Fetch::Other(reason)) => {
                all_unreachable = false;
                reason
            }
        };
        if i < last {
            tried.push(format!("{}: {reason}", ep.api()));
            continue;
        }
        let image = image.to_string();
        return Err(if all_unreachable {
            PullError::Unreachable { image, reason, tried }
        } else {
            PullError::Failed { image, reason, tried }
        });
    }
    unreachable!("the registry itself is always an endpoint")
}

impl PullError {
    /// No registry answered at all: the case where a node with the image
    /// may go on with its own copy.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, PullError::Unreachable { .. })
    }
}

enum Fetch {
    Platform(platform::NoMatchingPlatform),
    /// No answer: the name does not resolve, the connection is refused or
    /// times out.
    Unreachable(String),
    Other(String),
}

impl From<OciDistributionError> for Fetch {
    fn from(e: OciDistributionError) -> Fetch {
        match &e {
            OciDistributionError::RequestError(r) if r.is_connect() || r.is_timeout() => Fetch::Unreachable(chain(&e)),
            _ => Fetch::Other(chain(&e)),
        }
    }
}

impl From<oci_spec::OciSpecError> for Fetch {
    fn from(e: oci_spec::OciSpecError) -> Fetch {
        Fetch::Other(chain(&e))
    }
}

/// The error with its causes (a TLS failure is a cause of reqwest's "error
/// sending request").
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        cause = c.source();
    }
    text
}

/// A refusal, with whose credentials it came.
fn refused(e: OciDistributionError, auth: &RegistryAuth) -> Fetch {
    match e {
        OciDistributionError::UnauthorizedError { .. } | OciDistributionError::AuthenticationFailure(_) => {
            let who = match auth {
                RegistryAuth::Basic(user, _) => format!("as user {user}"),
                RegistryAuth::Bearer(_) => "with a token".into(),
                RegistryAuth::Anonymous => {
                    "without credentials (give the pod an imagePullSecret, or configs.<host>.auth in registries.yaml)".into()
                }
            };
            Fetch::Other(format!("{e} ({who})"))
        }
        e => e.into(),
    }
}

fn client(ep: &Endpoint) -> Result<Client, Fetch> {
    // reqwest is built without a default crypto provider; ring is the one
    // the rest of Shoal uses. A second install is refused, harmlessly.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tls = ep.config.tls.clone().unwrap_or_default();
    if tls.cert_file.is_some() || tls.key_file.is_some() {
        return Err(Fetch::Other(format!(
            "{}: client certificates (cert_file, key_file) are not supported yet",
            ep.host
        )));
    }
    if !ep.prefix.is_empty() {
        return Err(Fetch::Other(format!("{}: a path before /v2 is not supported yet", ep.api())));
    }
    let mut extra = Vec::new();
    if let Some(ca) = &tls.ca_file {
        let data = std::fs::read(ca).map_err(|e| Fetch::Other(format!("ca_file {}: {e}", ca.display())))?;
        extra.push(Certificate {
            encoding: CertificateEncoding::Pem,
            data,
        });
    }
    let config = ClientConfig {
        protocol: match ep.scheme {
            Scheme::Https => ClientProtocol::Https,
            Scheme::Http => ClientProtocol::Http,
        },
        extra_root_certificates: extra,
        accept_invalid_certificates: tls.insecure_skip_verify,
        connect_timeout: Some(std::time::Duration::from_secs(10)),
        read_timeout: Some(std::time::Duration::from_secs(30)),
        ..Default::default()
    };
    Ok(Client::try_from(config)?)
}

fn auth(ep: &Endpoint, creds: &Credentials) -> Result<RegistryAuth, Fetch> {
    let for_here = creds
        .registry
        .as_deref()
        .is_none_or(|r| super::docker_config::registry_host(&ep.host) == r);
    if let (Some((u, p)), true) = (&creds.basic, for_here) {
        return Ok(RegistryAuth::Basic(u.clone(), p.clone()));
    }
    let Some(a) = &ep.config.auth else {
        return Ok(RegistryAuth::Anonymous);
    };
    let Auth {
        username,
        password,
        auth,
        identitytoken,
        token,
    } = a;
    if let (Some(u), Some(p)) = (username, password) {
        return Ok(RegistryAuth::Basic(u.clone(), p.clone()));
    }
    if let Some(b64) = auth {
        use base64::Engine;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|e| Fetch::Other(format!("configs.{}.auth.auth: not base64: {e}", ep.host)))?;
        let text = String::from_utf8(raw).unwrap_or_default();
        let (u, p) = text
            .split_once(':')
            .ok_or_else(|| Fetch::Other(format!("configs.{}.auth.auth: not base64 of user:password", ep.host)))?;
        return Ok(RegistryAuth::Basic(u.into(), p.into()));
    }
    if let Some(t) = token {
        return Ok(RegistryAuth::Bearer(t.clone()));
    }
    if identitytoken.is_some() {
        return Err(Fetch::Other(format!("configs.{}.auth.identitytoken is not supported yet", ep.host)));
    }
    Ok(RegistryAuth::Anonymous)
}

/// The manifest of `r` for this node at one endpoint.
struct Manifest {
    bytes: Vec<u8>,
    digest: String,
    /// Pinned to the manifest's digest.
    reference: Reference,
}

/// Logs in (so a refusal says whose credentials were refused) and fetches
/// the manifest, taking this node's entry of an index.
async fn manifest(client: &Client, ep: &Endpoint, r: &ImageRef, auth: &RegistryAuth) -> Result<Manifest, Fetch> {
    let reference = match (&r.digest, &r.tag) {
        (Some(d), _) => Reference::with_digest(ep.host.clone(), ep.repository.clone(), d.clone()),
        (None, tag) => Reference::with_tag(
            ep.host.clone(),
            ep.repository.clone(),
            tag.clone().unwrap_or_else(|| "latest".into()),
        ),
    };
    if !matches!(auth, RegistryAuth::Anonymous) {
        client
            .auth(&reference, auth, RegistryOperation::Pull)
            .await
            .map_err(|e| refused(e, auth))?;
    }
    let accept = [
        OCI_IMAGE_INDEX_MEDIA_TYPE,
        IMAGE_MANIFEST_LIST_MEDIA_TYPE,
        OCI_IMAGE_MEDIA_TYPE,
        IMAGE_MANIFEST_MEDIA_TYPE,
    ];
    let (bytes, digest) = client
        .pull_manifest_raw(&reference, auth, &accept)
        .await
        .map_err(|e| refused(e, auth))?;
    Ok(match ImageIndex::from_reader(&bytes[..]) {
        Ok(index) if !index.manifests().is_empty() => {
            let entry = platform::choose(&Platform::host(), index.manifests()).map_err(Fetch::Platform)?;
            let pinned = reference.clone_with_digest(entry.digest().to_string());
            let (b, d) = client.pull_manifest_raw(&pinned, auth, &accept).await?;
            Manifest {
                bytes: b.to_vec(),
                digest: d,
                reference: pinned,
            }
        }
        _ => Manifest {
            bytes: bytes.to_vec(),
            reference: reference.clone_with_digest(digest.clone()),
            digest,
        },
    })
}

/// Manifest, config and layers of `r` from one endpoint.
async fn fetch(store: &ImageStore, ep: &Endpoint, r: &ImageRef, creds: &Credentials, progress: &Progress) -> Result<Candidate, Fetch> {
    let client = client(ep)?;
    let auth = auth(ep, creds)?;
    let Manifest { bytes, digest, reference } = manifest(&client, ep, r, &auth).await?;
    let manifest = ImageManifest::from_reader(&bytes[..])?;
    let cfg_digest = manifest.config().digest().to_string();
    let mut config = Vec::new();
    client.pull_blob(&reference, cfg_digest.as_str(), &mut config).await?;
    let diff_ids = ImageConfiguration::from_reader(&config[..])?.rootfs().diff_ids().clone();
    if diff_ids.len() != manifest.layers().len() {
        return Err(Fetch::Other(format!(
            "manifest {digest}: {} layers but the config has {} diff_ids",
            manifest.layers().len(),
            diff_ids.len()
        )));
    }
    progress.layers(manifest.layers().iter().map(|l| (l.digest().to_string(), l.size())).collect());
    // Up to PARALLEL layers download at once; each is unpacked as soon as
    // it is here, while the others still download.
    let wanted: Vec<(String, u64, String)> = manifest
        .layers()
        .iter()
        .zip(&diff_ids)
        .map(|(l, id)| (l.digest().to_string(), l.size(), id.to_string()))
        .collect();
    let jobs = wanted
        .into_iter()
        .map(|(d, size, id)| fetch_layer(store, &client, &reference, progress, d, size, id));
    let layers: Vec<(String, std::path::PathBuf, u64)> = futures_util::stream::iter(jobs).buffered(PARALLEL).try_collect().await?;
    Ok(Candidate {
        references: vec![r.to_string()],
        manifest: Some((digest, bytes)),
        config: (cfg_digest, config),
        layers,
        diff_ids,
    })
}

/// One layer into the store, then unpacked.
async fn fetch_layer(
    store: &ImageStore,
    client: &Client,
    reference: &Reference,
    progress: &Progress,
    digest: String,
    size: u64,
    diff_id: String,
) -> Result<(String, std::path::PathBuf, u64), Fetch> {
    let path = blob::fetch(store, &digest, size, progress, |offset| {
        open_blob(client, reference, &digest, offset)
    })
    .await
    .map_err(|e| Fetch::Other(e.to_string()))?;
    let (st, d, p) = (store.clone(), digest.clone(), path.clone());
    tokio::task::spawn_blocking(move || super::import::unpack_once(&st, &d, &diff_id, &p))
        .await
        .expect("unpack task")
        .map_err(|e| Fetch::Other(e.to_string()))?;
    Ok((digest, path, size))
}

/// A blob from `offset` on (a range request); the registry may send all.
async fn open_blob(client: &Client, reference: &Reference, digest: &str, offset: u64) -> Result<Body, String> {
    let got = client
        .pull_blob_stream_partial(reference, digest, offset, None)
        .await
        .map_err(|e| chain(&e))?;
    Ok(match got {
        BlobResponse::Full(s) => Body {
            stream: s.stream,
            from_offset: offset == 0,
        },
        BlobResponse::Partial(s) => Body {
            stream: s.stream,
            from_offset: true,
        },
    })
}

impl ImageStore {
    /// Stores a pulled image (its blobs in place) as an import would.
    fn add(&self, c: Candidate) -> Result<Vec<ImageInfo>, ImageError> {
        self.committing(|| self.put(&commit(self, c)?))
    }
}
