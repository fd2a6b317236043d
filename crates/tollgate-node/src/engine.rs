//! The decision path for a registry image: fetch what the policy needs (the
//! manifest and signatures, digest-checked by the registry client), then call
//! the pure [`tollgate_policy::evaluate`]. Shared by `tollgate verify`, the
//! containerd verifier entry point and the daemon.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};
use tollgate_oci::manifest::{Descriptor, ImageIndex};
use tollgate_oci::{Digest, Reference};
use tollgate_policy::evaluate::{Image, LoadedPolicy, Needs, PlatformSignatures, Signatures};
use tollgate_policy::scope::Subject;
use tollgate_policy::{Decision, evaluate};
use tollgate_registry::credentials::CredentialStore;
use tollgate_registry::{Client, ClientConfig, RegistryError};
use tollgate_verify::SignatureLayer;

use crate::cache::TtlCache;

/// Platform manifests of one index whose signatures `perPlatform` fetches.
pub const MAX_PLATFORMS: usize = 64;

/// Largest policy, key, config or credentials file read from disk.
pub const MAX_FILE_BYTES: u64 = 16 << 20;

/// Why no decision could be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// A file could not be read.
    #[error("cannot read {path}: {message}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The policy (or its trust material) is invalid.
    #[error(transparent)]
    Policy(#[from] tollgate_policy::PolicyError),
    /// The image reference is not a valid reference (`message` names it already).
    #[error("{message}")]
    Reference {
        /// As given.
        reference: String,
        /// Why.
        message: String,
    },
    /// The given digest contradicts the one in the reference.
    #[error("digest {given} contradicts the digest in {reference}")]
    DigestContradiction {
        /// The digest given separately.
        given: Digest,
        /// The reference with its own digest.
        reference: String,
    },
    /// The registry failed, or served content that was refused, for the image's
    /// own manifest (signature fetches never end in this error: see [`gather`]).
    #[error("cannot fetch {target}")]
    Registry {
        /// What was fetched.
        target: String,
        /// The registry error (boxed: it is large, and errors travel by value).
        #[source]
        source: Box<RegistryError>,
    },
    /// The registry served bytes that are not what they claim to be.
    #[error("{0}")]
    Refused(String),
}

impl EngineError {
    /// Whether trying again later may succeed: the registry could not be
    /// reached (or answered a transient error) for the image's manifest. This
    /// is the only failure `failOpen` applies to; an unsigned image whose
    /// registry fails only its signature requests is never failed open.
    pub fn is_transient(&self) -> bool {
        matches!(self, EngineError::Registry { source, .. } if source.is_transient())
    }
}

/// Reads a file, refusing more than `limit` bytes.
pub fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>, EngineError> {
    let err = |e: std::io::Error| EngineError::Read { path: path.to_owned(), message: e.to_string() };
    let f = std::fs::File::open(path).map_err(err)?;
    let mut buf = Vec::new();
    f.take(limit + 1).read_to_end(&mut buf).map_err(err)?;
    if buf.len() as u64 > limit {
        return Err(EngineError::Read {
            path: path.to_owned(),
            message: format!("larger than {limit} bytes; refusing to read it"),
        });
    }
    Ok(buf)
}

/// A loaded policy and the hash of everything it was built from.
#[derive(Debug)]
pub struct PolicySnapshot {
    /// The policy with its trust material parsed.
    pub policy: LoadedPolicy,
    /// `sha256:` over the policy file and every file it read, in order: a
    /// changed key file is a changed policy.
    pub hash: String,
    /// Where it was read from.
    pub path: PathBuf,
    /// The bytes it was built from: the policy file, then each file it read
    /// (by the name the policy gives), so that a copy can be kept ([`last_good`]).
    pub sources: PolicySources,
}

/// The bytes a policy was built from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PolicySources {
    /// The policy file's content.
    #[serde(with = "b64")]
    pub policy: Vec<u8>,
    /// Each file the policy read, by the (relative or absolute) name it gives, in order.
    pub files: Vec<(String, Blob)>,
}

/// Bytes, stored as base64 in JSON.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Blob(#[serde(with = "b64")] pub Vec<u8>);

mod b64 {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(b))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD.decode(s).map_err(serde::de::Error::custom)
    }
}

/// Reads and loads a policy; relative key paths are resolved against the policy's directory.
pub fn load_policy(path: &Path) -> Result<PolicySnapshot, EngineError> {
    let bytes = read_limited(path, MAX_FILE_BYTES)?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    load_policy_with(path, bytes, &|p| read_limited(&base.join(p), MAX_FILE_BYTES).map_err(|e| e.to_string()))
}

/// Loads a policy from `bytes`, reading the files it names with `read`.
pub fn load_policy_with(
    path: &Path,
    bytes: Vec<u8>,
    read: &dyn Fn(&str) -> Result<Vec<u8>, String>,
) -> Result<PolicySnapshot, EngineError> {
    let name = path.display().to_string();
    let hasher = std::cell::RefCell::new(Sha256::new());
    let files = std::cell::RefCell::new(Vec::new());
    hasher.borrow_mut().update(&bytes);
    let policy = tollgate_policy::native::parse_any(&bytes, &name)?;
    let recorded = |p: &str| -> Result<Vec<u8>, String> {
        let content = read(p)?;
        let mut h = hasher.borrow_mut();
        h.update(p.as_bytes());
        h.update(&content);
        files.borrow_mut().push((p.to_owned(), Blob(content.clone())));
        Ok(content)
    };
    let policy = LoadedPolicy::load(policy, &name, &recorded)?;
    let hash = format!("sha256:{}", hex::encode(hasher.into_inner().finalize()));
    let sources = PolicySources { policy: bytes, files: files.into_inner() };
    Ok(PolicySnapshot { policy, hash, path: path.to_owned(), sources })
}

/// The last policy that loaded, kept on disk so that a node whose configured
/// policy stops loading (a bad push, then a restart or a reboot) keeps
/// enforcing it instead of refusing everything.
pub mod last_good {
    use std::path::Path;

    use super::{EngineError, PolicySnapshot, PolicySources, read_limited};

    #[derive(serde::Serialize, serde::Deserialize)]
    struct Saved {
        version: u32,
        source: String,
        hash: String,
        #[serde(flatten)]
        sources: PolicySources,
    }

    /// Writes `snapshot`'s sources to `path` (atomically, mode 0600). The
    /// directory must exist: tollgate does not create it.
    pub fn save(path: &Path, snapshot: &PolicySnapshot) -> std::io::Result<()> {
        use std::io::Write as _;
        let saved = Saved {
            version: 1,
            source: snapshot.path.display().to_string(),
            hash: snapshot.hash.clone(),
            sources: snapshot.sources.clone(),
        };
        let bytes = serde_json::to_vec(&saved).map_err(std::io::Error::other)?;
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let mut tmp = tempfile::Builder::new().prefix(".tollgate-last-good-").tempfile_in(dir)?;
        tmp.as_file_mut().write_all(&bytes)?;
        tmp.as_file().sync_all()?;
        tmp.persist(path).map_err(|e| e.error)?;
        Ok(())
    }

    /// Loads the policy saved at `path`; its hash must be the one recorded.
    pub fn load(path: &Path) -> Result<PolicySnapshot, EngineError> {
        let bytes = read_limited(path, super::MAX_FILE_BYTES * 4)?;
        let err = |message: String| EngineError::Read { path: path.to_owned(), message };
        let saved: Saved = serde_json::from_slice(&bytes).map_err(|e| err(format!("not a saved policy: {e}")))?;
        if saved.version != 1 {
            return Err(err(format!("saved policy version {} is not 1", saved.version)));
        }
        let files = saved.sources.files;
        let read = |p: &str| -> Result<Vec<u8>, String> {
            files.iter().find(|(n, _)| n == p).map(|(_, b)| b.0.clone()).ok_or_else(|| format!("{p} was not saved"))
        };
        let snapshot = super::load_policy_with(Path::new(&saved.source), saved.sources.policy, &read)?;
        if snapshot.hash != saved.hash {
            return Err(err(format!("the saved policy hashes to {}, not {}", snapshot.hash, saved.hash)));
        }
        Ok(snapshot)
    }
}

/// Signatures fetched recently, by repository and digest, so a policy reload
/// or a second tag of the same image does not fetch them again.
#[derive(Debug)]
pub struct SignatureCache {
    entries: Mutex<TtlCache<(String, Digest), Vec<SignatureLayer>>>,
    ttl: Duration,
}

impl SignatureCache {
    /// A cache of at most `capacity` signature sets holding at most
    /// `max_bytes` of payloads and annotations, each kept for `ttl`.
    pub fn new(capacity: usize, max_bytes: u64, ttl: Duration) -> Self {
        SignatureCache { entries: Mutex::new(TtlCache::weighted(capacity, max_bytes)), ttl }
    }

    fn get(&self, key: &(String, Digest)) -> Option<Vec<SignatureLayer>> {
        let mut entries = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        entries.get(key, Instant::now()).cloned()
    }

    fn put(&self, key: (String, Digest), layers: Vec<SignatureLayer>) {
        let bytes: usize = layers
            .iter()
            .map(|l| l.payload.len() + l.annotations.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>())
            .sum();
        let mut entries = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        entries.insert_weighted(key, layers, bytes as u64, Instant::now(), self.ttl);
    }

    /// Bytes held.
    pub fn bytes(&self) -> u64 {
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner).weight()
    }
}

/// Where a decision's material comes from.
#[derive(Debug, Clone)]
pub struct Sources {
    /// The registry client (shares connections and tokens across clones).
    pub client: Client,
    /// Optional signature cache (the daemon has one; one-shot commands do not).
    pub signatures: Option<Arc<SignatureCache>>,
}

impl Sources {
    /// Sources with no cache.
    pub fn new(client: Client) -> Self {
        Sources { client, signatures: None }
    }

    /// What `needs` asks for: cosign signatures, and sigstore bundles and
    /// notation signatures attached as referrers.
    async fn material(&self, reference: &Reference, digest: &Digest, needs: Needs, anchors: &[Vec<u8>]) -> Signatures {
        use tollgate_policy::evaluate::{
            BUNDLE_MEDIA_TYPE, NOTATION_ARTIFACT_TYPE, NOTATION_ENVELOPES, REVOCATION_MEDIA_TYPES,
        };
        let mut layers = Vec::new();
        if needs.cosign {
            match self.signatures(reference, digest).await {
                Signatures::Found(l) => layers.extend(l),
                unavailable => return unavailable,
            }
        }
        let referrers = [
            (needs.bundles, BUNDLE_MEDIA_TYPE, &[BUNDLE_MEDIA_TYPE][..], "sigstore bundle"),
            (needs.notation, NOTATION_ARTIFACT_TYPE, &NOTATION_ENVELOPES[..], "notation signature"),
        ];
        for (_, artifact_type, layer_types, what) in referrers.into_iter().filter(|r| r.0) {
            match self.client.referrer_layers(reference, digest, artifact_type, layer_types, what).await {
                Ok(b) => layers.extend(to_layers(b)),
                Err(e) => return Signatures::Unavailable { transient: e.is_transient(), reason: e.to_string() },
            }
        }
        // Revocation material counts only when fetched here, from what a trusted chain names.
        layers.retain(|l| !REVOCATION_MEDIA_TYPES.contains(&l.media_type.as_str()));
        if let Some(timeout) = needs.revocation {
            layers.extend(self.revocation(&layers, anchors, timeout).await);
        }
        Signatures::Found(layers)
    }

    /// The OCSP answers and CRLs the trusted notation signing chains among `layers` name, fetched
    /// concurrently, each within `timeout`; one that could not be fetched is a layer saying why.
    async fn revocation(
        &self,
        layers: &[SignatureLayer],
        anchors: &[Vec<u8>],
        timeout: Duration,
    ) -> Vec<SignatureLayer> {
        use tollgate_policy::evaluate::{Query, revocation_layer, revocation_queries};
        let mut fetches = tokio::task::JoinSet::new();
        for (i, query) in revocation_queries(layers, anchors).into_iter().enumerate() {
            let client = self.client.clone();
            fetches.spawn(async move {
                let body = match &query {
                    Query::Ocsp { request, .. } => Some(("application/ocsp-request", request.clone())),
                    Query::Crl(_) => None,
                };
                let got = client.fetch_revocation(query.url(), body, timeout, query.limit() as u64).await;
                if let Err(e) = &got {
                    tracing::warn!(url = query.url(), reason = %e, "revocation material could not be fetched; the status is unknown");
                }
                (i, revocation_layer(&query, got.map_err(|e| e.to_string())))
            });
        }
        let mut out: Vec<(usize, SignatureLayer)> = fetches.join_all().await;
        out.sort_by_key(|(i, _)| *i);
        out.into_iter().map(|(_, l)| l).collect()
    }

    async fn signatures(&self, reference: &Reference, digest: &Digest) -> Signatures {
        let key = (reference.repository(), digest.clone());
        if let Some(found) = self.signatures.as_ref().and_then(|c| c.get(&key)) {
            return Signatures::Found(found);
        }
        match self.client.signature_layers(reference, digest).await {
            Ok(found) => {
                let layers = to_layers(found);
                // "No signatures" is not kept: a signature published next minute must count.
                if let Some(c) = self.signatures.as_ref().filter(|_| !layers.is_empty()) {
                    c.put(key, layers.clone());
                }
                Signatures::Found(layers)
            }
            Err(e) => Signatures::Unavailable { transient: e.is_transient(), reason: e.to_string() },
        }
    }
}

/// Signature layers as the policy evaluates them.
pub fn to_layers(found: Vec<(Descriptor, Vec<u8>)>) -> Vec<SignatureLayer> {
    found
        .into_iter()
        .map(|(d, payload)| SignatureLayer { media_type: d.media_type, payload, annotations: d.annotations })
        .collect()
}

/// Everything a decision is made from, fetched and digest-checked: owned, so
/// the CPU-bound evaluation can run off the async runtime ([`Material::evaluate`]).
#[derive(Debug)]
pub struct Material {
    reference: Reference,
    digest: Digest,
    manifest: Option<Vec<u8>>,
    platforms: Vec<PlatformSignatures>,
    signatures: Signatures,
}

impl Material {
    /// The pure decision over this material at time `now` (Unix seconds). It
    /// verifies signatures and certificates: milliseconds of CPU per signature.
    pub fn evaluate(&self, policy: &LoadedPolicy, now: u64) -> Decision {
        let image = Image {
            subject: Subject::Docker(&self.reference),
            digest: &self.digest,
            manifest: self.manifest.as_deref(),
            platforms: &self.platforms,
        };
        evaluate(policy, &image, &self.signatures, now)
    }
}

/// What containerd says it is pulling: the digest and, when it sent one, the
/// descriptor's media type.
#[derive(Debug, Clone, Copy)]
pub struct Given<'a> {
    /// The digest decided on.
    pub digest: &'a Digest,
    /// The descriptor's media type; the manifest's bytes must agree with it
    /// (index or image manifest), whatever the registry's headers say.
    pub media_type: Option<&'a str>,
}

impl<'a> From<&'a Digest> for Given<'a> {
    fn from(digest: &'a Digest) -> Self {
        Given { digest, media_type: None }
    }
}

/// Decides on a registry image at time `now` (Unix seconds): [`gather`], then
/// [`Material::evaluate`] on the calling task. The daemon evaluates on a
/// bounded blocking pool instead.
pub async fn decide(
    image: &str,
    given: Option<Given<'_>>,
    policy: &LoadedPolicy,
    sources: &Sources,
    now: u64,
) -> Result<Decision, EngineError> {
    Ok(gather(image, given, policy, sources).await?.evaluate(policy, now))
}

/// Fetches what `policy` needs to decide on `image`. With `given` (what
/// containerd passes) the digest is the one decided on, and nothing is fetched
/// that the policy does not need: an allowlist or reject rule answers without
/// the network. Without it the tag is resolved, and the digest served is the
/// one decided on. An `Err` from the registry is about the manifest itself
/// (the only failure `failOpen` may apply to); failures fetching signatures
/// after it are part of the material and make the decision undecidable.
pub async fn gather(
    image: &str,
    given: Option<Given<'_>>,
    policy: &LoadedPolicy,
    sources: &Sources,
) -> Result<Material, EngineError> {
    let reference = Reference::parse_normalized(image)
        .map_err(|e| EngineError::Reference { reference: image.to_owned(), message: e.to_string() })?
        .with_default_tag();
    let expected_type = given.and_then(|g| g.media_type).filter(|m| tollgate_oci::media_types::is_manifest(m));
    let given = given.map(|g| g.digest);
    if let (Some(g), Some(d)) = (given, reference.digest())
        && g != d
    {
        return Err(EngineError::DigestContradiction { given: g.clone(), reference: reference.to_string() });
    }
    let target = match given {
        Some(d) => reference.clone().without_digest().with_digest(d.clone()),
        None => reference.clone(),
    };
    let needs = policy.needs(&Subject::Docker(&reference));
    let (wants_signatures, wants_platforms) = (needs.signatures(), needs.platforms);
    let anchors = match needs.revocation {
        Some(_) => policy.notation_anchors(&Subject::Docker(&reference)),
        None => Vec::new(),
    };
    let client = &sources.client;
    let fetch = |t: &Reference| {
        let t = t.clone();
        async move {
            client
                .get_manifest(&t)
                .await
                .map_err(|e| EngineError::Registry { target: t.to_string(), source: Box::new(e) })
        }
    };
    let no_signatures = || Signatures::Found(Vec::new());
    let (manifest, signatures) = match given {
        Some(_) if !wants_signatures => (None, no_signatures()),
        // The manifest and the signatures are fetched concurrently.
        Some(d) => {
            let (m, s) = tokio::join!(fetch(&target), sources.material(&reference, d, needs, &anchors));
            (Some(m?), s)
        }
        None => {
            let m = fetch(&target).await?;
            let s = if wants_signatures {
                sources.material(&reference, &m.digest, needs, &anchors).await
            } else {
                no_signatures()
            };
            (Some(m), s)
        }
    };
    if let (Some(m), Some(expected)) = (&manifest, expected_type)
        && tollgate_oci::media_types::is_index(expected) != tollgate_oci::media_types::is_index(&m.media_type)
    {
        return Err(EngineError::Refused(format!(
            "{reference}: containerd pulls {} as {expected}, but the registry served {}",
            m.digest, m.media_type
        )));
    }
    let digest = match (&manifest, given) {
        (Some(m), _) => m.digest.clone(),
        (None, Some(d)) => d.clone(),
        (None, None) => return Err(EngineError::Refused(format!("{reference}: no digest to decide on"))),
    };
    let platforms = match &manifest {
        Some(m) if wants_platforms && tollgate_oci::media_types::is_index(&m.media_type) => {
            platform_signatures(sources, &reference, &m.bytes).await?
        }
        _ => Vec::new(),
    };
    Ok(Material { reference, digest, manifest: manifest.map(|m| m.bytes), platforms, signatures })
}

/// Each platform manifest of an index, with the signatures attached to it.
async fn platform_signatures(
    sources: &Sources,
    reference: &Reference,
    index: &[u8],
) -> Result<Vec<PlatformSignatures>, EngineError> {
    // Served bytes that are not an index are an integrity refusal.
    let index =
        ImageIndex::parse(index).map_err(|e| EngineError::Refused(format!("{reference}: the registry served {e}")))?;
    let platforms: Vec<_> =
        index.manifests.iter().filter(|d| tollgate_oci::media_types::is_manifest(&d.media_type)).collect();
    if platforms.len() > MAX_PLATFORMS {
        return Err(EngineError::Refused(format!(
            "{reference}: the index lists {} platform manifests; perPlatform checks at most {MAX_PLATFORMS}",
            platforms.len()
        )));
    }
    let mut out = Vec::new();
    for d in platforms {
        let platform = d.platform.as_ref().map_or_else(
            || "unknown".to_owned(),
            |p| match &p.variant {
                Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
                None => format!("{}/{}", p.os, p.architecture),
            },
        );
        let signatures = sources.signatures(reference, &d.digest).await;
        out.push(PlatformSignatures { platform, digest: d.digest.clone(), signatures });
    }
    Ok(out)
}

/// Registry credentials: `auth_file` (which must exist), else the first of
/// `$REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json` and
/// `~/.docker/config.json` that exists. A malformed file is an error.
pub fn load_credentials(auth_file: Option<&Path>) -> Result<CredentialStore, EngineError> {
    let parse = |p: &Path| -> Result<CredentialStore, EngineError> {
        CredentialStore::parse(&read_limited(p, MAX_FILE_BYTES)?, &p.display().to_string())
            .map_err(|e| EngineError::Read { path: p.to_owned(), message: e.to_string() })
    };
    if let Some(p) = auth_file {
        return parse(p);
    }
    let env = |k: &str| std::env::var_os(k).map(PathBuf::from);
    let candidates = [
        env("REGISTRY_AUTH_FILE"),
        env("XDG_RUNTIME_DIR").map(|d| d.join("containers/auth.json")),
        env("HOME").map(|h| h.join(".docker/config.json")),
    ];
    for p in candidates.into_iter().flatten() {
        if p.is_file() {
            return parse(&p);
        }
    }
    Ok(CredentialStore::default())
}

/// Reads PEM CA bundles (capped); each must hold at least one certificate.
pub fn load_ca_files(files: &[PathBuf]) -> Result<Vec<Vec<u8>>, EngineError> {
    files
        .iter()
        .map(|f| {
            let pem = read_limited(f, MAX_FILE_BYTES)?;
            if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
                return Err(EngineError::Read { path: f.clone(), message: "no PEM certificate in it".into() });
            }
            Ok(pem)
        })
        .collect()
}

/// The registry client settings a node config asks for, with `per_request` as
/// the connect and request timeouts.
pub fn client_config(cfg: &crate::config::NodeConfig, per_request: Duration) -> Result<ClientConfig, EngineError> {
    Ok(ClientConfig {
        insecure_registries: cfg.insecure_registries.clone(),
        request_timeout: per_request,
        connect_timeout: per_request,
        credentials: load_credentials(cfg.auth_file.as_deref())?,
        extra_ca_pems: load_ca_files(&cfg.ca_files)?,
        ..Default::default()
    })
}

/// An error and its causes on one line: `error: cause: cause`.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// The clock, read at the edge and passed into the pure core (Unix seconds).
pub fn now_unix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
