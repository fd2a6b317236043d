//! The distribution-API client: the network edge around the pure core.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, LOCATION, WWW_AUTHENTICATE};
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};
use tollgate_oci::manifest::{Descriptor, ImageManifest, signature_tag};
use tollgate_oci::{Digest, Reference, media_types};

use crate::auth::{Challenge, parse_challenge};
use crate::credentials::{CredentialStore, Credentials};
use crate::error::{RegistryError, is_transient_status};

/// Largest manifest read (matches containerd and containers/image).
pub const MAX_MANIFEST_BYTES: u64 = 4 << 20;
/// Signatures (layers of a `.sig` manifest, or sigstore bundles) considered per
/// image and digest; above it the image's signatures are refused, naming the cap.
pub const MAX_SIGNATURES: usize = 64;
/// Bytes of signature material fetched per image and digest: the sum of the
/// declared sizes of its signature layers (or bundles), each listing counted.
pub const MAX_SIGNATURE_BYTES: u64 = 8 << 20;
/// Referrers of one digest looked at when searching for bundles.
pub const MAX_REFERRERS: usize = 64;
/// Signature blobs fetched at once (over the client's shared connections).
const SIGNATURE_FETCHES: usize = 4;
/// Largest token response read.
const MAX_TOKEN_BYTES: u64 = 1 << 20;
/// Largest error body read.
const MAX_ERROR_BODY: u64 = 64 << 10;

/// Client settings. `Default` gives safe values.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Registries (`host[:port]`) reached over plain HTTP. Every other one
    /// must speak HTTPS with a certificate the system trusts.
    pub insecure_registries: Vec<String>,
    /// Time allowed to connect.
    pub connect_timeout: Duration,
    /// Time allowed for one whole request, body included.
    pub request_timeout: Duration,
    /// Manifest size cap.
    pub max_manifest_bytes: u64,
    /// Attempts per request, for transient failures only.
    pub max_attempts: u32,
    /// First retry delay; doubled each attempt.
    pub retry_base: Duration,
    /// `User-Agent` header.
    pub user_agent: String,
    /// Credentials by registry (from auth files); sent only to their registry.
    pub credentials: CredentialStore,
    /// Extra trusted CA certificates (PEM bundles), added to the system roots.
    pub extra_ca_pems: Vec<Vec<u8>>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            insecure_registries: Vec::new(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_manifest_bytes: MAX_MANIFEST_BYTES,
            max_attempts: 3,
            retry_base: Duration::from_millis(250),
            user_agent: concat!("tollgate/", env!("CARGO_PKG_VERSION")).to_owned(),
            credentials: CredentialStore::default(),
            extra_ca_pems: Vec::new(),
        }
    }
}

/// A manifest as fetched and verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The digest of `bytes` (what a runtime pins).
    pub digest: Digest,
    /// The media type (index, manifest list, or single-platform manifest).
    pub media_type: String,
    /// The raw bytes, exactly as hashed.
    pub bytes: Vec<u8>,
}

/// An OCI distribution client. Cheap to clone; clones share connections and tokens.
#[derive(Debug, Clone)]
pub struct Client {
    /// For plain-HTTP (insecure-listed) registries: no trust roots are loaded.
    plain: reqwest::Client,
    /// For HTTPS, with the platform's trust roots; built on first use, since
    /// loading the system roots costs milliseconds a node-local check should not pay.
    tls: Arc<std::sync::OnceLock<Result<reqwest::Client, String>>>,
    cfg: Arc<ClientConfig>,
    tokens: Arc<Mutex<HashMap<(String, String), String>>>,
}

/// The shared client settings: timeouts, no https→http redirects, no redirect
/// from a plain-HTTP registry to another host, at most 5 redirects. reqwest
/// drops `Authorization` when a redirect leaves the original host, and
/// `send_raw` ignores a 401 challenge from any host but the registry's, so
/// credentials never follow a redirect to another host.
fn builder(cfg: &ClientConfig) -> reqwest::ClientBuilder {
    let policy = reqwest::redirect::Policy::custom(|attempt| {
        let downgrade =
            attempt.previous().last().is_some_and(|p| p.scheme() == "https") && attempt.url().scheme() != "https";
        // A plain-HTTP registry is trusted by address only: it must not send the
        // node to another host (a metadata address, an internal service).
        let plain_elsewhere = attempt
            .previous()
            .first()
            .is_some_and(|first| first.scheme() == "http" && !same_origin(first, attempt.url()));
        if attempt.previous().len() >= 5 {
            attempt.error("more than 5 redirects")
        } else if downgrade {
            attempt.error("refusing a redirect from https to plain http")
        } else if plain_elsewhere {
            attempt.error("refusing a redirect from a plain-HTTP registry to another host")
        } else {
            attempt.follow()
        }
    });
    reqwest::Client::builder()
        .connect_timeout(cfg.connect_timeout)
        .timeout(cfg.request_timeout)
        .redirect(policy)
        .user_agent(cfg.user_agent.clone())
}

/// Same scheme, host and port.
fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme() && a.host_str() == b.host_str() && a.port_or_known_default() == b.port_or_known_default()
}

/// Installs ring as the process-wide rustls provider (idempotent).
fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Err means another provider is installed already, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

impl Client {
    /// Builds a client: rustls with the platform's trust roots, no
    /// https→http redirects, at most 5 redirects. reqwest drops the
    /// `Authorization` header when a redirect leaves the original host, so
    /// credentials never follow a redirect to another host.
    pub fn new(cfg: ClientConfig) -> Result<Client, RegistryError> {
        install_crypto_provider();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let no_roots = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| RegistryError::Config(e.to_string()))?
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        let plain =
            builder(&cfg).use_preconfigured_tls(no_roots).build().map_err(|e| RegistryError::Config(e.to_string()))?;
        Ok(Client { plain, tls: Arc::default(), cfg: Arc::new(cfg), tokens: Arc::new(Mutex::new(HashMap::new())) })
    }

    /// The HTTP client for `url`: the TLS one (built now if needed) for https.
    fn http_for(&self, url: &str) -> Result<&reqwest::Client, RegistryError> {
        if !url.starts_with("https://") {
            return Ok(&self.plain);
        }
        self.tls
            .get_or_init(|| {
                let mut extra = Vec::new();
                for pem in &self.cfg.extra_ca_pems {
                    extra
                        .extend(reqwest::Certificate::from_pem_bundle(pem).map_err(|e| format!("extra CA file: {e}"))?);
                }
                builder(&self.cfg).tls_certs_merge(extra).build().map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|e| RegistryError::Config(e.clone()))
    }

    /// The API base URL of `domain`: plain HTTP only if listed as insecure.
    pub fn base_url(&self, domain: &str) -> String {
        let host = if domain == "docker.io" { "registry-1.docker.io" } else { domain };
        let scheme = if self.cfg.insecure_registries.iter().any(|r| r == domain) { "http" } else { "https" };
        format!("{scheme}://{host}")
    }

    /// Fetches a manifest or index by tag or digest and verifies it:
    /// the body must hash to the requested digest (if any) and to the
    /// `Docker-Content-Digest` header (if sent), be at most the manifest
    /// size cap, and have a manifest media type. Indexes are preferred, so a
    /// multi-platform image yields its index digest.
    pub async fn get_manifest(&self, r: &Reference) -> Result<Manifest, RegistryError> {
        let registry = r.domain().to_owned();
        let what = r.to_string();
        let reference = match (r.digest(), r.tag()) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.to_owned(),
            (None, None) => "latest".to_owned(),
        };
        let url = format!("{}/v2/{}/manifests/{reference}", self.base_url(&registry), r.path());
        let accept = media_types::MANIFEST_ACCEPT.join(", ");
        let scope = format!("repository:{}:pull", r.path());
        let http = self.http_for(&url)?;
        let resp = self.send(&registry, &scope, &what, || http.get(&url).header(ACCEPT, &accept)).await?;
        let headers = resp.headers().clone();
        let bytes = read_capped(resp, self.cfg.max_manifest_bytes, &registry, &what).await?;
        let algorithm = r.digest().map_or(tollgate_oci::Algorithm::Sha256, Digest::algorithm);
        let actual = Digest::of(algorithm, &bytes);
        if let Some(expected) = r.digest() {
            if *expected != actual {
                return Err(mismatch(&registry, &what, expected.to_string(), actual));
            }
        }
        if let Some(announced) = headers.get("docker-content-digest").and_then(|v| v.to_str().ok()) {
            let ok = Digest::parse(announced).map(|d| Digest::of(d.algorithm(), &bytes) == d).unwrap_or(false);
            if !ok {
                return Err(mismatch(&registry, &what, announced.to_owned(), actual));
            }
        }
        let media_type = media_types::of_manifest(&bytes, content_type(&headers))
            .map_err(|message| RegistryError::Malformed { registry: registry.clone(), what: what.clone(), message })?;
        if !media_types::is_manifest(&media_type) {
            return Err(RegistryError::UnsupportedMediaType { registry, what, media_type });
        }
        let digest = if algorithm == tollgate_oci::Algorithm::Sha256 { actual } else { Digest::sha256_of(&bytes) };
        Ok(Manifest { digest, media_type, bytes })
    }

    /// Fetches a blob and checks that it hashes to `digest`; refuses more than `limit` bytes.
    pub async fn get_blob(&self, repo: &Reference, digest: &Digest, limit: u64) -> Result<Vec<u8>, RegistryError> {
        let registry = repo.domain().to_owned();
        let what = format!("blob {digest} of {}", repo.repository());
        let url = format!("{}/v2/{}/blobs/{digest}", self.base_url(&registry), repo.path());
        let scope = format!("repository:{}:pull", repo.path());
        let http = self.http_for(&url)?;
        let resp = self.send(&registry, &scope, &what, || http.get(&url)).await?;
        let bytes = read_capped(resp, limit, &registry, &what).await?;
        digest.verify(&bytes).map_err(|m| mismatch(&registry, &what, digest.to_string(), m.actual))?;
        Ok(bytes)
    }

    /// The cosign signature layers attached to `digest` in `repo` under the tag
    /// `sha256-<hex>.sig`: each layer's descriptor and its bytes (digest-checked,
    /// at most the manifest size cap each). No such tag means no signatures.
    pub async fn signature_layers(
        &self,
        repo: &Reference,
        digest: &Digest,
    ) -> Result<Vec<(Descriptor, Vec<u8>)>, RegistryError> {
        let tag = signature_tag(digest);
        let sig_ref = Reference::parse_normalized(&format!("{}:{tag}", repo.repository()))
            .map_err(|e| RegistryError::Config(e.to_string()))?;
        let manifest = match self.get_manifest(&sig_ref).await {
            Ok(m) => m,
            Err(RegistryError::NotFound { .. }) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let parsed = ImageManifest::parse(&manifest.bytes).map_err(|e| RegistryError::Malformed {
            registry: repo.domain().to_owned(),
            what: sig_ref.to_string(),
            message: e.to_string(),
        })?;
        let what = || format!("signatures of {}@{digest}", repo.repository());
        self.signature_blobs(repo, parsed.layers, what, "signature layer").await
    }

    /// Fetches `layers` (signatures or bundles of one digest) after checking
    /// the caps on their number and declared total size: concurrently, a few
    /// at a time, each distinct blob once, and in the order listed, so the
    /// decision does not depend on which fetch finished first.
    async fn signature_blobs(
        &self,
        repo: &Reference,
        layers: Vec<Descriptor>,
        what: impl Fn() -> String,
        kind: &str,
    ) -> Result<Vec<(Descriptor, Vec<u8>)>, RegistryError> {
        let too_many = |count: u64, limit: u64, unit| RegistryError::TooMany {
            registry: repo.domain().to_owned(),
            what: what(),
            count,
            limit,
            unit,
        };
        if layers.len() > MAX_SIGNATURES {
            return Err(too_many(layers.len() as u64, MAX_SIGNATURES as u64, "signatures"));
        }
        let declared = layers.iter().map(|l| l.size).fold(0u64, u64::saturating_add);
        if declared > MAX_SIGNATURE_BYTES {
            return Err(too_many(declared, MAX_SIGNATURE_BYTES, "bytes of signatures"));
        }
        let mut distinct: Vec<&Descriptor> = Vec::new();
        for l in &layers {
            if !distinct.iter().any(|d| d.digest == l.digest) {
                distinct.push(l);
            }
        }
        // Chunks of a few joined futures rather than a buffered stream: a stream
        // of borrowing closures is not provably `Send` in the daemon's tasks.
        let mut fetched: Vec<(Digest, Vec<u8>)> = Vec::with_capacity(distinct.len());
        for chunk in distinct.chunks(SIGNATURE_FETCHES) {
            let got = futures_util::future::try_join_all(chunk.iter().map(|l| self.small_layer(repo, l, kind))).await?;
            fetched.extend(chunk.iter().map(|l| l.digest.clone()).zip(got));
        }
        Ok(layers
            .into_iter()
            .filter_map(|l| {
                let bytes = fetched.iter().find(|(d, _)| *d == l.digest).map(|(_, b)| b.clone())?;
                Some((l, bytes))
            })
            .collect())
    }

    /// A signature or bundle layer: declared and served within the manifest
    /// size cap, digest-checked.
    async fn small_layer(&self, repo: &Reference, layer: &Descriptor, what: &str) -> Result<Vec<u8>, RegistryError> {
        if layer.size > self.cfg.max_manifest_bytes {
            return Err(RegistryError::TooLarge {
                registry: repo.domain().to_owned(),
                what: format!("{what} {}", layer.digest),
                limit: self.cfg.max_manifest_bytes,
            });
        }
        self.get_blob(repo, &layer.digest, self.cfg.max_manifest_bytes).await
    }

    /// The layers of the referrers of `digest` in `repo` whose artifact type
    /// is `artifact_type` (sigstore bundles, notation signatures) and whose
    /// media type is one of `layer_types`: found through the referrers API, or
    /// the `sha256-<hex>` fallback tag when the registry has no such API. A
    /// referrer whose manifest names another subject is ignored, whatever the
    /// index said. Each layer is fetched digest-checked and at most the
    /// manifest size cap; `what` names one in errors ("sigstore bundle").
    pub async fn referrer_layers(
        &self,
        repo: &Reference,
        digest: &Digest,
        artifact_type: &str,
        layer_types: &[&str],
        what: &str,
    ) -> Result<Vec<(Descriptor, Vec<u8>)>, RegistryError> {
        let index = match self.referrers(repo, digest).await? {
            Some(i) => Some(i),
            None => {
                let tag = tollgate_oci::manifest::referrers_tag(digest);
                let r = Reference::parse_normalized(&format!("{}:{tag}", repo.repository()))
                    .map_err(|e| RegistryError::Config(e.to_string()))?;
                match self.get_manifest(&r).await {
                    Ok(m) if media_types::is_index(&m.media_type) => Some(m),
                    Ok(_) | Err(RegistryError::NotFound { .. }) => None,
                    Err(e) => return Err(e),
                }
            }
        };
        let Some(index) = index else { return Ok(Vec::new()) };
        let parsed = tollgate_oci::manifest::ImageIndex::parse(&index.bytes).map_err(|e| RegistryError::Malformed {
            registry: repo.domain().to_owned(),
            what: format!("referrers of {digest}"),
            message: e.to_string(),
        })?;
        let referrers: Vec<&Descriptor> =
            parsed.manifests.iter().filter(|d| d.artifact_type.as_deref() == Some(artifact_type)).collect();
        let kind = what;
        let what = || format!("{kind}s of {}@{digest}", repo.repository());
        if referrers.len() > MAX_REFERRERS {
            return Err(RegistryError::TooMany {
                registry: repo.domain().to_owned(),
                what: what(),
                count: referrers.len() as u64,
                limit: MAX_REFERRERS as u64,
                unit: "referrers",
            });
        }
        let mut layers = Vec::new();
        for d in referrers {
            let m = self.get_manifest(&repo.clone().without_digest().with_digest(d.digest.clone())).await?;
            let artifact = ImageManifest::parse(&m.bytes).map_err(|e| RegistryError::Malformed {
                registry: repo.domain().to_owned(),
                what: format!("referrer {}", d.digest),
                message: e.to_string(),
            })?;
            // The referrer must be about this digest, whatever the index said.
            if artifact.subject.as_ref().map(|s| &s.digest) != Some(digest) {
                continue;
            }
            layers.extend(artifact.layers.into_iter().filter(|l| layer_types.contains(&l.media_type.as_str())));
        }
        self.signature_blobs(repo, layers, what, kind).await
    }

    /// Uploads a blob (monolithic POST then PUT) unless the registry has it,
    /// and returns its digest.
    pub async fn put_blob(&self, repo: &Reference, bytes: &[u8]) -> Result<Digest, RegistryError> {
        let registry = repo.domain().to_owned();
        let digest = Digest::sha256_of(bytes);
        let what = format!("blob {digest}");
        let scope = format!("repository:{}:pull,push", repo.path());
        let base = self.base_url(&registry);
        let head_url = format!("{base}/v2/{}/blobs/{digest}", repo.path());
        let http = self.http_for(&base)?;
        let exists = self.send_raw(&registry, &scope, &what, || http.head(&head_url)).await?;
        if exists.status() == StatusCode::OK {
            return Ok(digest);
        }
        let start = format!("{base}/v2/{}/blobs/uploads/", repo.path());
        let resp = self.send(&registry, &scope, &what, || http.post(&start)).await?;
        let location = resp
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| RegistryError::Status { registry: registry.clone(), what: what.clone(), status: 202 })?;
        let mut put_url = Url::parse(&base)
            .and_then(|b| b.join(location))
            .map_err(|e| RegistryError::Config(format!("bad upload location {location:?}: {e}")))?;
        put_url.query_pairs_mut().append_pair("digest", &digest.to_string());
        let body = bytes.to_vec();
        self.send(&registry, &scope, &what, || {
            http.request(Method::PUT, put_url.clone())
                .header(CONTENT_TYPE, "application/octet-stream")
                .body(body.clone())
        })
        .await?;
        Ok(digest)
    }

    /// Whether `repo` has the blob `digest` (HEAD).
    pub async fn blob_exists(&self, repo: &Reference, digest: &Digest) -> Result<bool, RegistryError> {
        let registry = repo.domain().to_owned();
        let base = self.base_url(&registry);
        let url = format!("{base}/v2/{}/blobs/{digest}", repo.path());
        let http = self.http_for(&base)?;
        let scope = format!("repository:{}:pull,push", repo.path());
        let resp = self.send_raw(&registry, &scope, &format!("blob {digest}"), || http.head(&url)).await?;
        Ok(resp.status() == StatusCode::OK)
    }

    /// Whether `target` (by digest or tag) exists (HEAD of the manifest).
    pub async fn manifest_exists(&self, target: &Reference) -> Result<bool, RegistryError> {
        let registry = target.domain().to_owned();
        let reference = match (target.digest(), target.tag()) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.to_owned(),
            (None, None) => "latest".to_owned(),
        };
        let base = self.base_url(&registry);
        let url = format!("{base}/v2/{}/manifests/{reference}", target.path());
        let accept = media_types::MANIFEST_ACCEPT.join(", ");
        let http = self.http_for(&base)?;
        let scope = format!("repository:{}:pull,push", target.path());
        let resp =
            self.send_raw(&registry, &scope, &target.to_string(), || http.head(&url).header(ACCEPT, &accept)).await?;
        Ok(resp.status() == StatusCode::OK)
    }

    /// Asks the registry to mount `digest` into `repo` from `from` (a
    /// repository on the same registry) without uploading it. `false` when it
    /// would not (the caller then uploads).
    pub async fn mount_blob(&self, repo: &Reference, digest: &Digest, from: &Reference) -> Result<bool, RegistryError> {
        let registry = repo.domain().to_owned();
        if from.domain() != registry {
            return Ok(false);
        }
        let base = self.base_url(&registry);
        let mut url = Url::parse(&format!("{base}/v2/{}/blobs/uploads/", repo.path()))
            .map_err(|e| RegistryError::Config(e.to_string()))?;
        url.query_pairs_mut().append_pair("mount", &digest.to_string()).append_pair("from", from.path());
        let scope = format!("repository:{}:pull,push repository:{}:pull", repo.path(), from.path());
        let http = self.http_for(&base)?;
        let resp = self.send_raw(&registry, &scope, &format!("blob {digest}"), || http.post(url.clone())).await?;
        Ok(resp.status() == StatusCode::CREATED)
    }

    /// Uploads a blob in `chunk`-byte PATCH requests (for large layers), then
    /// commits it under its digest. The registry checks the digest on commit.
    pub async fn put_blob_chunked(
        &self,
        repo: &Reference,
        bytes: &[u8],
        chunk: usize,
    ) -> Result<Digest, RegistryError> {
        let digest = Digest::sha256_of(bytes);
        let read = |offset: u64, len: usize| -> std::io::Result<Vec<u8>> {
            let start = usize::try_from(offset).unwrap_or(usize::MAX).min(bytes.len());
            Ok(bytes[start..(start + len).min(bytes.len())].to_vec())
        };
        self.upload_chunks(repo, &digest, bytes.len() as u64, chunk, read).await?;
        Ok(digest)
    }

    /// Uploads `size` bytes of `file` (already verified to hash to `digest`)
    /// in `chunk`-byte PATCH requests, reading one chunk at a time.
    pub async fn put_blob_file(
        &self,
        repo: &Reference,
        file: &std::fs::File,
        size: u64,
        digest: &Digest,
        chunk: usize,
    ) -> Result<(), RegistryError> {
        use std::os::unix::fs::FileExt as _;
        let read = |offset: u64, len: usize| -> std::io::Result<Vec<u8>> {
            let mut buf = vec![0u8; len];
            file.read_exact_at(&mut buf, offset)?;
            Ok(buf)
        };
        self.upload_chunks(repo, digest, size, chunk, read).await
    }

    async fn upload_chunks(
        &self,
        repo: &Reference,
        digest: &Digest,
        size: u64,
        chunk: usize,
        read: impl Fn(u64, usize) -> std::io::Result<Vec<u8>>,
    ) -> Result<(), RegistryError> {
        let registry = repo.domain().to_owned();
        let what = format!("blob {digest}");
        let scope = format!("repository:{}:pull,push", repo.path());
        let base = self.base_url(&registry);
        let http = self.http_for(&base)?;
        let start = format!("{base}/v2/{}/blobs/uploads/", repo.path());
        let location = |resp: &reqwest::Response| -> Result<Url, RegistryError> {
            let loc = resp.headers().get(LOCATION).and_then(|v| v.to_str().ok()).ok_or_else(|| {
                RegistryError::Status { registry: registry.clone(), what: what.clone(), status: resp.status().as_u16() }
            })?;
            Url::parse(&base)
                .and_then(|b| b.join(loc))
                .map_err(|e| RegistryError::Config(format!("bad upload location {loc:?}: {e}")))
        };
        let resp = self.send(&registry, &scope, &what, || http.post(&start)).await?;
        let mut at = location(&resp)?;
        let chunk = chunk.max(1) as u64;
        let mut offset = 0u64;
        while offset < size {
            let len = chunk.min(size - offset);
            let body = read(offset, usize::try_from(len).unwrap_or(usize::MAX))
                .map_err(|e| RegistryError::Config(format!("cannot read {what} for upload: {e}")))?;
            let range = format!("{offset}-{}", offset + len - 1);
            let url = at.clone();
            let resp = self
                .send(&registry, &scope, &what, || {
                    http.request(Method::PATCH, url.clone())
                        .header(CONTENT_TYPE, "application/octet-stream")
                        .header("Content-Range", &range)
                        .body(body.clone())
                })
                .await?;
            at = location(&resp)?;
            offset += len;
        }
        at.query_pairs_mut().append_pair("digest", &digest.to_string());
        self.send(&registry, &scope, &what, || http.request(Method::PUT, at.clone())).await?;
        Ok(())
    }

    /// Streams the blob `digest` of `repo` into `out`, hashing as it goes;
    /// refuses more than `limit` bytes and content that does not hash to
    /// `digest` (the caller must then discard `out`). Returns the size.
    pub async fn download_blob(
        &self,
        repo: &Reference,
        digest: &Digest,
        limit: u64,
        out: &mut std::fs::File,
    ) -> Result<u64, RegistryError> {
        use std::io::Write as _;
        let registry = repo.domain().to_owned();
        let what = format!("blob {digest} of {}", repo.repository());
        let url = format!("{}/v2/{}/blobs/{digest}", self.base_url(&registry), repo.path());
        let scope = format!("repository:{}:pull", repo.path());
        let http = self.http_for(&url)?;
        let mut resp = self.send(&registry, &scope, &what, || http.get(&url)).await?;
        let too_large = || RegistryError::TooLarge { registry: registry.clone(), what: what.clone(), limit };
        if resp.content_length().is_some_and(|n| n > limit) {
            return Err(too_large());
        }
        let mut hasher = digest.hasher();
        let mut size = 0u64;
        while let Some(chunk) = resp.chunk().await.map_err(|e| transport_error(&registry, e))? {
            size += chunk.len() as u64;
            if size > limit {
                return Err(too_large());
            }
            hasher.update(&chunk);
            out.write_all(&chunk).map_err(|e| RegistryError::Config(format!("cannot write {what} to disk: {e}")))?;
        }
        let actual = hasher.finish();
        if actual != *digest {
            return Err(mismatch(&registry, &what, digest.to_string(), actual));
        }
        Ok(size)
    }

    /// The referrers of `digest` through the OCI 1.1 referrers API, as an
    /// index; `None` when the registry does not implement it (404), in which
    /// case the caller falls back to the `sha256-<hex>` tag schema.
    pub async fn referrers(&self, repo: &Reference, digest: &Digest) -> Result<Option<Manifest>, RegistryError> {
        let registry = repo.domain().to_owned();
        let what = format!("referrers of {digest}");
        let url = format!("{}/v2/{}/referrers/{digest}", self.base_url(&registry), repo.path());
        let scope = format!("repository:{}:pull", repo.path());
        let http = self.http_for(&url)?;
        let resp =
            match self.send(&registry, &scope, &what, || http.get(&url).header(ACCEPT, media_types::OCI_INDEX)).await {
                Err(RegistryError::NotFound { .. }) => return Ok(None),
                Err(e) => return Err(e),
                Ok(r) => r,
            };
        let header = content_type(resp.headers()).map(str::to_owned);
        let bytes = read_capped(resp, self.cfg.max_manifest_bytes, &registry, &what).await?;
        // Not an OCI 1.1 answer (some registries serve an HTML or v1 error here): no API.
        let Ok(media_type) = media_types::of_manifest(&bytes, header.as_deref()) else { return Ok(None) };
        if !media_types::is_index(&media_type) {
            return Ok(None);
        }
        Ok(Some(Manifest { digest: Digest::sha256_of(&bytes), media_type, bytes }))
    }

    /// Uploads a manifest under `target`'s tag (or digest) and checks that
    /// the registry stored it under the digest of `bytes`.
    pub async fn put_manifest(
        &self,
        target: &Reference,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<Digest, RegistryError> {
        let registry = target.domain().to_owned();
        let digest = Digest::sha256_of(bytes);
        let what = target.to_string();
        let reference = target.tag().map_or_else(|| digest.to_string(), str::to_owned);
        let url = format!("{}/v2/{}/manifests/{reference}", self.base_url(&registry), target.path());
        let http = self.http_for(&url)?;
        let scope = format!("repository:{}:pull,push", target.path());
        let body = bytes.to_vec();
        let resp = self
            .send(&registry, &scope, &what, || http.put(&url).header(CONTENT_TYPE, media_type).body(body.clone()))
            .await?;
        if let Some(stored) = resp.headers().get("docker-content-digest").and_then(|v| v.to_str().ok()) {
            if stored != digest.to_string() {
                return Err(mismatch(&registry, &what, stored.to_owned(), digest));
            }
        }
        Ok(digest)
    }

    /// Downloads `url` (no registry auth) with the client's timeouts and
    /// retries, refusing more than `limit` bytes. Used for component installs;
    /// the caller checks the content's hash.
    pub async fn fetch_url(&self, url: &str, limit: u64) -> Result<Vec<u8>, RegistryError> {
        let parsed = Url::parse(url).map_err(|e| RegistryError::Config(format!("invalid URL: {e}")))?;
        let host = parsed.host_str().unwrap_or_default().to_owned();
        let shown = format!("{}://{host}{}", parsed.scheme(), parsed.path());
        let http = self.http_for(parsed.as_str())?;
        let resp = self.send(&host, "", &shown, || http.get(parsed.clone())).await?;
        read_capped(resp, limit, &host, &shown).await
    }

    /// Sends with auth and retries, and maps non-success statuses to errors.
    async fn send(
        &self,
        registry: &str,
        scope: &str,
        what: &str,
        build: impl Fn() -> RequestBuilder,
    ) -> Result<Response, RegistryError> {
        let resp = self.send_raw(registry, scope, what, build).await?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let err = |status: u16| match status {
            404 => RegistryError::NotFound { registry: registry.to_owned(), what: what.to_owned() },
            401 | 403 => RegistryError::Unauthorized { registry: registry.to_owned(), what: what.to_owned(), status },
            s => RegistryError::Status { registry: registry.to_owned(), what: what.to_owned(), status: s },
        };
        let _ = read_capped(resp, MAX_ERROR_BODY, registry, what).await;
        Err(err(status.as_u16()))
    }

    /// Sends with bearer-token auth and bounded retries on transient
    /// failures; returns whatever status the registry finally answered.
    async fn send_raw(
        &self,
        registry: &str,
        scope: &str,
        what: &str,
        build: impl Fn() -> RequestBuilder,
    ) -> Result<Response, RegistryError> {
        let key = (registry.to_owned(), scope.to_owned());
        let creds = self.credentials_for(registry, scope);
        let mut fetched_token = false;
        let mut use_basic = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let token = self.tokens.lock().ok().and_then(|t| t.get(&key).cloned());
            let mut req = build();
            if let Some(t) = &token {
                req = req.header(AUTHORIZATION, format!("Bearer {t}"));
            } else if let (true, Some(c)) = (use_basic, creds) {
                req = req.basic_auth(&c.username, Some(&c.password));
            }
            let probe = build().build().ok();
            let origin = probe.as_ref().map(|r| r.url().clone());
            let method = probe.as_ref().map(|r| r.method().to_string()).unwrap_or_default();
            let started = std::time::Instant::now();
            let outcome = req.send().await;
            // -vv: every request, as `skopeo --debug` shows them (never the query: signed URLs carry credentials).
            match &outcome {
                Ok(resp) => {
                    let url = resp.url();
                    tracing::debug!(
                        "{method} {}://{}{} -> {} in {:.1} ms",
                        url.scheme(),
                        url.host_str().unwrap_or_default(),
                        url.port().map(|p| format!(":{p}")).unwrap_or_default() + url.path(),
                        resp.status().as_u16(),
                        started.elapsed().as_secs_f64() * 1000.0
                    )
                }
                Err(_) => tracing::debug!(
                    registry,
                    what,
                    "{method} failed after {:.1} ms",
                    started.elapsed().as_secs_f64() * 1000.0
                ),
            }
            let retry = match outcome {
                // A challenge counts only from the host the request was for: after a
                // redirect, another host must not choose where our credentials go.
                Ok(resp)
                    if resp.status() == StatusCode::UNAUTHORIZED
                        && origin.as_ref().is_some_and(|o| !same_origin(o, resp.url())) =>
                {
                    tracing::debug!(registry, what, "401 from another host after a redirect; not authenticating");
                    return Ok(resp);
                }
                Ok(resp) if resp.status() == StatusCode::UNAUTHORIZED && !fetched_token => {
                    let challenge = resp
                        .headers()
                        .get_all(WWW_AUTHENTICATE)
                        .iter()
                        .filter_map(|v| v.to_str().ok())
                        .find_map(parse_challenge);
                    match challenge {
                        Some(Challenge::Bearer { realm, service, scope: asked }) => {
                            let scope = if scope.is_empty() { asked.unwrap_or_default() } else { scope.to_owned() };
                            let t = self.fetch_token(registry, &realm, service.as_deref(), &scope, creds).await?;
                            if let Ok(mut tokens) = self.tokens.lock() {
                                tokens.insert(key.clone(), t);
                            }
                            fetched_token = true;
                            attempt -= 1;
                            continue;
                        }
                        Some(Challenge::Basic) if creds.is_some() && !use_basic => {
                            use_basic = true;
                            fetched_token = true;
                            attempt -= 1;
                            continue;
                        }
                        _ => return Ok(resp),
                    }
                }
                Ok(resp) if is_transient_status(resp.status().as_u16()) && attempt < self.cfg.max_attempts => {
                    tracing::debug!(
                        registry,
                        what,
                        status = resp.status().as_u16(),
                        attempt,
                        "transient status; retrying"
                    );
                    true
                }
                Ok(resp) => return Ok(resp),
                Err(e)
                    if attempt < self.cfg.max_attempts
                        && (e.is_connect() || e.is_timeout())
                        && tls_cause(&e).is_none() =>
                {
                    tracing::debug!(registry, what, error = %e, attempt, "transport error; retrying");
                    true
                }
                Err(e) => return Err(transport_error(registry, e)),
            };
            if retry {
                let factor = 1u32 << (attempt - 1).min(6);
                tokio::time::sleep(self.cfg.retry_base.saturating_mul(factor)).await;
            }
        }
    }

    /// Credentials for requests to `registry` in `scope` (`repository:<path>:…`).
    fn credentials_for(&self, registry: &str, scope: &str) -> Option<&Credentials> {
        let path = scope.strip_prefix("repository:").and_then(|s| s.rsplit_once(':')).map(|(p, _)| p);
        let repository = match path {
            Some(p) => format!("{registry}/{p}"),
            None => registry.to_owned(),
        };
        self.cfg.credentials.lookup(&repository)
    }

    async fn fetch_token(
        &self,
        registry: &str,
        realm: &str,
        service: Option<&str>,
        scope: &str,
        creds: Option<&Credentials>,
    ) -> Result<String, RegistryError> {
        let shown_realm = realm.split('?').next().unwrap_or(realm).to_owned();
        let token_err = |message: String| RegistryError::Token {
            registry: registry.to_owned(),
            realm: shown_realm.clone(),
            message,
        };
        let mut url = Url::parse(realm).map_err(|e| token_err(format!("invalid realm URL: {e}")))?;
        let insecure_ok = self.cfg.insecure_registries.iter().any(|r| r == registry);
        if url.scheme() != "https" && !(url.scheme() == "http" && insecure_ok) {
            return Err(token_err("realm must be https unless the registry is listed as insecure".into()));
        }
        {
            let mut q = url.query_pairs_mut();
            if let Some(s) = service {
                q.append_pair("service", s);
            }
            if !scope.is_empty() {
                q.append_pair("scope", scope);
            }
        }
        let mut req = self.http_for(url.as_str())?.get(url.clone());
        // Credentials go to the token service the registry named, over HTTPS
        // (or when the registry itself is listed as insecure).
        if let Some(c) = creds {
            if url.scheme() == "https" || insecure_ok {
                req = req.basic_auth(&c.username, Some(&c.password));
            }
        }
        let resp = req.send().await.map_err(|e| token_err(e.without_url().to_string()))?;
        if !resp.status().is_success() {
            return Err(token_err(format!("HTTP {}", resp.status().as_u16())));
        }
        let body = read_capped(resp, MAX_TOKEN_BYTES, registry, "token").await?;
        #[derive(serde::Deserialize)]
        struct TokenResponse {
            token: Option<String>,
            access_token: Option<String>,
        }
        let parsed: TokenResponse =
            serde_json::from_slice(&body).map_err(|e| token_err(format!("invalid JSON: {e}")))?;
        parsed
            .token
            .or(parsed.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| token_err("response has no token".into()))
    }
}

fn mismatch(registry: &str, what: &str, expected: String, actual: Digest) -> RegistryError {
    RegistryError::DigestMismatch { registry: registry.to_owned(), what: what.to_owned(), expected, actual }
}

impl Client {
    /// Fetches what a certificate names for its revocation status: a CRL distribution point (GET),
    /// or an OCSP responder (POST of `body`, with its content type). `http://` or `https://` only
    /// (HTTPS verified with the platform's roots and the configured extra CAs), with no credentials
    /// and no cookies, at most `limit` bytes, within `timeout`. The redirect rules are the registry
    /// client's.
    pub async fn fetch_revocation(
        &self,
        url: &str,
        body: Option<(&str, Vec<u8>)>,
        timeout: Duration,
        limit: u64,
    ) -> Result<Vec<u8>, FetchError> {
        let parsed = Url::parse(url).map_err(|e| FetchError(format!("not a URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(FetchError(format!("{} URLs are not fetched (only http and https)", parsed.scheme())));
        }
        let http = self.http_for(url).map_err(|e| FetchError(e.to_string()))?;
        let describe = |e: reqwest::Error| {
            if e.is_timeout() {
                return FetchError(format!("no answer within {} s", timeout.as_secs()));
            }
            match transport_error("", e) {
                RegistryError::Tls { message, .. } => FetchError(format!("TLS failed: {message}")),
                RegistryError::Unreachable { message, .. } => FetchError(message),
                other => FetchError(other.to_string()),
            }
        };
        let fetch = async {
            let request = match body {
                Some((content_type, bytes)) => http.post(parsed).header(CONTENT_TYPE, content_type).body(bytes),
                None => http.get(parsed),
            };
            let resp = request.send().await.map_err(describe)?;
            if !resp.status().is_success() {
                return Err(FetchError(format!("HTTP {}", resp.status().as_u16())));
            }
            read_limited(resp, limit).await.map_err(|e| match e {
                Capped::TooLarge => FetchError(format!("larger than the {limit}-byte limit; refusing to read it")),
                Capped::Transport(e) => describe(e),
            })
        };
        // The whole exchange, body included, within the timeout.
        tokio::time::timeout(timeout, fetch)
            .await
            .unwrap_or_else(|_| Err(FetchError(format!("no answer within {} s", timeout.as_secs()))))
    }
}

/// Fetching a URL a certificate names failed: why, without the URL (the caller names it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FetchError(pub String);

/// The rustls error inside a transport failure, if TLS is what failed.
/// hyper-util nests it in `io::Error`s, sometimes twice.
fn tls_cause(e: &reqwest::Error) -> Option<String> {
    fn find(e: &(dyn std::error::Error + 'static), depth: usize) -> Option<String> {
        if depth > 16 {
            return None;
        }
        if let Some(t) = e.downcast_ref::<rustls::Error>() {
            return Some(t.to_string());
        }
        if let Some(inner) = e.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
            if let Some(found) = find(inner, depth + 1) {
                return Some(found);
            }
        }
        e.source().and_then(|s| find(s, depth + 1))
    }
    std::error::Error::source(e).and_then(|s| find(s, 0))
}

/// Describes a transport failure without its URL: query strings can hold
/// credentials (signed URLs), and the registry is named separately.
fn transport_error(registry: &str, e: reqwest::Error) -> RegistryError {
    if let Some(message) = tls_cause(&e) {
        return RegistryError::Tls { registry: registry.to_owned(), message };
    }
    let e = e.without_url();
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        message = format!("{message}: {s}");
        source = s.source();
    }
    RegistryError::Unreachable { registry: registry.to_owned(), message }
}

/// The `Content-Type` without parameters.
fn content_type(headers: &HeaderMap) -> Option<&str> {
    headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(|v| v.split(';').next().unwrap_or_default().trim())
}

/// Reads a registry's body, refusing more than `limit` bytes (announced or actual).
async fn read_capped(resp: Response, limit: u64, registry: &str, what: &str) -> Result<Vec<u8>, RegistryError> {
    read_limited(resp, limit).await.map_err(|e| match e {
        Capped::TooLarge => RegistryError::TooLarge { registry: registry.to_owned(), what: what.to_owned(), limit },
        Capped::Transport(e) => transport_error(registry, e),
    })
}

/// Why a capped read stopped.
enum Capped {
    /// More than the limit was announced or sent.
    TooLarge,
    /// The transport failed.
    Transport(reqwest::Error),
}

/// Reads a body, refusing more than `limit` bytes (announced or actual): every read from a
/// registry or a revocation server goes through here.
async fn read_limited(mut resp: Response, limit: u64) -> Result<Vec<u8>, Capped> {
    if resp.content_length().is_some_and(|n| n > limit) {
        return Err(Capped::TooLarge);
    }
    let mut buf = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(Capped::Transport)? {
        if buf.len() as u64 + chunk.len() as u64 > limit {
            return Err(Capped::TooLarge);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf)
}
