//! The imperative shell: one connection to the runtime's NRI socket, registration, the calls the
//! runtime makes, and [`run`], which reconnects with a bounded backoff when the runtime restarts.
//!
//! Parsing a call ([`parse_call`]) and naming what a container runs ([`target`]) are pure; the
//! decision is the [`Decide`] implementation's. Every failure to decide refuses the container:
//! tollgate registers as a validator, and containerd refuses a container whose validator rejects
//! it, fails or times out.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prost::Message as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::UnixStream;
use tokio::net::unix::OwnedWriteHalf;
use tokio::sync::Mutex;

use crate::api::{self, event};
use crate::mux::{self, MuxError, PLUGIN_CONN, RUNTIME_CONN};
use crate::ttrpc::{self, TYPE_REQUEST, TYPE_RESPONSE, TtrpcError, code};

/// How to reach the runtime and what to register as.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The runtime's NRI socket (`/var/run/nri/nri.sock`).
    pub socket: PathBuf,
    /// The plugin name (`required_plugins` in containerd's default validator names it).
    pub name: String,
    /// Two digits ordering the plugin among others.
    pub index: String,
    /// How long the runtime may take to accept the registration.
    pub registration_timeout: Duration,
}

/// What a container would run, as the runtime resolved it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Target {
    /// The image reference.
    pub name: String,
    /// The digest containerd will run (the index digest for a multi-platform image); empty when the
    /// runtime gave none (containerd before 2.4), and `name` is then the CRI image-name annotation,
    /// to be looked up in the runtime's image store ([`CRI_IMAGE_NAME`]).
    pub digest: String,
    /// The pod's Kubernetes namespace (empty when the runtime gave none).
    pub namespace: String,
    /// `namespace/pod/container`, for reasons and logs.
    pub container: String,
}

/// A decision about one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// It may be created.
    Allow,
    /// It must not be, and why (shown to whoever created it: kubelet's event, crictl's error).
    Refuse(String),
}

/// Decides containers. tollgate's asks the node daemon.
pub trait Decide: Send + Sync + 'static {
    /// The verdict for `target`. It should come well within the runtime's request timeout; the
    /// plugin refuses the container when it does not come within three quarters of it.
    fn decide(&self, target: Target) -> impl Future<Output = Verdict> + Send;
}

/// Counters a caller can show (logs, metrics).
#[derive(Debug, Default)]
pub struct Stats {
    /// Connections that registered with the runtime.
    pub registrations: AtomicU64,
    /// Registered connections that ended, with the reason logged.
    pub disconnects: AtomicU64,
    /// Connection attempts that ended before registering (the runtime not up yet, say).
    pub failed_connects: AtomicU64,
    /// Containers allowed.
    pub allowed: AtomicU64,
    /// Containers refused.
    pub refused: AtomicU64,
}

/// A call from the runtime, decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    /// `Configure`: which events the plugin wants.
    Configure(api::ConfigureRequest),
    /// `Synchronize`: what exists already.
    Synchronize(api::SynchronizeRequest),
    /// `CreateContainer`.
    CreateContainer(api::CreateContainerRequest),
    /// `ValidateContainerAdjustment`.
    Validate(api::ValidateContainerAdjustmentRequest),
    /// `Shutdown`: the runtime is going away.
    Shutdown,
    /// A method tollgate does not serve (answered `Unimplemented`).
    Other(String),
}

/// Decodes one call on the plugin connection. A request that does not decode ends the connection.
pub fn parse_call(stream: u32, body: &[u8]) -> Result<Call, TtrpcError> {
    let malformed = |message: String| TtrpcError::Malformed { what: "request", stream, message };
    let req = ttrpc::Request::decode(body).map_err(|e| malformed(e.to_string()))?;
    if req.service != api::PLUGIN_SERVICE {
        return Ok(Call::Other(format!("{}/{}", req.service, req.method)));
    }
    let p = req.payload.as_slice();
    let bad = |e: prost::DecodeError| malformed(format!("{}: {e}", req.method));
    Ok(match req.method.as_str() {
        "Configure" => Call::Configure(api::ConfigureRequest::decode(p).map_err(bad)?),
        "Synchronize" => Call::Synchronize(api::SynchronizeRequest::decode(p).map_err(bad)?),
        "CreateContainer" => Call::CreateContainer(api::CreateContainerRequest::decode(p).map_err(bad)?),
        "ValidateContainerAdjustment" => {
            Call::Validate(api::ValidateContainerAdjustmentRequest::decode(p).map_err(bad)?)
        }
        "Shutdown" => Call::Shutdown,
        other => Call::Other(other.to_owned()),
    })
}

/// The annotation containerd's CRI sets on every container: the image as the CRI client asked for it
/// (`user_specified_image`, the pod spec's image for the kubelet), else the image's name.
pub const CRI_IMAGE_NAME: &str = "io.kubernetes.cri.image-name";

/// What `container` of `pod` runs, or why it cannot be said (then the container is refused: an
/// image tollgate cannot name is an image it cannot verify). Without an image from the runtime
/// (containerd before 2.4), the CRI image-name annotation gives the name, with no digest: the
/// caller looks the digest up in containerd's image store.
pub fn target(pod: Option<&api::PodSandbox>, container: Option<&api::Container>) -> Result<Target, String> {
    let namespace = pod.map(|p| p.namespace.clone()).unwrap_or_default();
    let pod_name = pod.map(|p| p.name.as_str()).unwrap_or("?");
    let Some(c) = container else { return Err("the runtime sent no container".into()) };
    let shown = format!("{namespace}/{pod_name}/{}", c.name);
    match &c.image {
        Some(i) if !i.name.is_empty() && i.digest.starts_with("sha256:") => {
            Ok(Target { name: i.name.clone(), digest: i.digest.clone(), namespace, container: shown })
        }
        None => match c.annotations.get(CRI_IMAGE_NAME).filter(|n| !n.is_empty()) {
            Some(name) => Ok(Target { name: name.clone(), digest: String::new(), namespace, container: shown }),
            None => Err(format!(
                "container {shown}: the runtime gave no image and no {CRI_IMAGE_NAME} annotation; tollgate refuses \
                 what it cannot identify"
            )),
        },
        _ => Err(format!(
            "container {shown}: the runtime gave no image digest (NRI passes it from containerd 2.4 on); \
             tollgate refuses what it cannot identify"
        )),
    }
}

/// A warning when `runtime` at `version` passes plugins no image identity (containerd before 2.4):
/// images are then named by the CRI image-name annotation and looked up in containerd's store.
pub fn identity_warning(runtime: &str, version: &str) -> Option<String> {
    if runtime != "containerd" {
        return None;
    }
    let mut parts = version.trim_start_matches('v').split(['.', '-', '+']);
    let major: u32 = parts.next()?.parse().ok()?;
    let minor: u32 = parts.next()?.parse().ok()?;
    ((major, minor) < (2, 4)).then(|| {
        format!(
            "running degraded: containerd {version} gives NRI plugins no image digest (from 2.4 on), so each \
             container's image is the digest containerd's image store has for the name in its {CRI_IMAGE_NAME} \
             annotation, which the CRI client sets; upgrade containerd to decide on what it resolved itself"
        )
    })
}

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
pub enum NriError {
    /// The socket could not be reached.
    #[error("cannot connect to the NRI socket {socket}: {cause}")]
    Connect {
        /// The socket.
        socket: String,
        /// Why.
        cause: std::io::Error,
    },
    /// Reading or writing failed.
    #[error("NRI connection: {0}")]
    Io(#[from] std::io::Error),
    /// The runtime broke the multiplexer's framing.
    #[error("malformed message from the runtime: {0}")]
    Mux(#[from] MuxError),
    /// The runtime broke ttrpc's framing or sent a message that does not decode.
    #[error("malformed message from the runtime: {0}")]
    Ttrpc(#[from] TtrpcError),
    /// The runtime refused the registration.
    #[error("the runtime refused the registration: {0}")]
    Refused(String),
    /// No answer to the registration in time.
    #[error("the runtime did not answer the registration within {0:?}")]
    RegistrationTimeout(Duration),
}

/// How a connection that worked ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The runtime closed it (it stopped or restarted).
    Closed,
    /// The runtime said `Shutdown`.
    Shutdown,
}

/// The runtime's request timeout until `Configure` says otherwise (NRI's default).
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

type Writer = Arc<Mutex<OwnedWriteHalf>>;

async fn send(writer: &Writer, conn: u32, m: &ttrpc::Message) -> std::io::Result<()> {
    let mut out = Vec::new();
    mux::encode(conn, &ttrpc::encode(m), &mut out);
    let mut w = writer.lock().await;
    w.write_all(&out).await?;
    w.flush().await
}

fn response(payload: Vec<u8>, status: Option<ttrpc::Status>) -> Vec<u8> {
    ttrpc::Response { status, payload }.encode_to_vec()
}

fn error_status(code: i32, message: String) -> Vec<u8> {
    response(Vec::new(), Some(ttrpc::Status { code, message }))
}

/// One connection to the runtime's socket: registers, then answers calls until the runtime closes it
/// or says `Shutdown`.
pub async fn serve_connection<D: Decide>(
    settings: &Settings,
    decider: Arc<D>,
    stats: Arc<Stats>,
) -> Result<Ended, NriError> {
    let stream = UnixStream::connect(&settings.socket)
        .await
        .map_err(|cause| NriError::Connect { socket: settings.socket.display().to_string(), cause })?;
    serve_stream(stream, settings, decider, stats).await
}

/// Serves the connection the runtime launched this plugin with ([`crate::launched::inherited`]) until
/// the runtime closes it, says `Shutdown`, or `stop` completes. There is no reconnecting: the runtime
/// launches its plugins again when it restarts.
pub async fn run_launched<D: Decide>(
    stream: std::os::unix::net::UnixStream,
    settings: Settings,
    decider: Arc<D>,
    stats: Arc<Stats>,
    stop: impl Future<Output = ()>,
) -> Result<Ended, NriError> {
    stream.set_nonblocking(true)?;
    let stream = UnixStream::from_std(stream)?;
    tokio::select! {
        r = serve_stream(stream, &settings, decider, stats) => r,
        () = stop => Ok(Ended::Shutdown),
    }
}

/// One connected stream: registers, then answers calls until the runtime closes it or says `Shutdown`.
async fn serve_stream<D: Decide>(
    stream: UnixStream,
    settings: &Settings,
    decider: Arc<D>,
    stats: Arc<Stats>,
) -> Result<Ended, NriError> {
    let (mut reader, writer) = stream.into_split();
    let writer: Writer = Arc::new(Mutex::new(writer));
    let register = api::RegisterPluginRequest {
        plugin_name: settings.name.clone(),
        plugin_idx: settings.index.clone(),
        nri_version: api::NRI_VERSION.into(),
    };
    let call = ttrpc::Request {
        service: api::RUNTIME_SERVICE.into(),
        method: "RegisterPlugin".into(),
        payload: register.encode_to_vec(),
        timeout_nano: i64::try_from(settings.registration_timeout.as_nanos()).unwrap_or(i64::MAX),
        metadata: Vec::new(),
    };
    send(
        &writer,
        RUNTIME_CONN,
        &ttrpc::Message { stream: 1, kind: TYPE_REQUEST, flags: 0, body: call.encode_to_vec() },
    )
    .await?;

    let request_timeout = Arc::new(AtomicU64::new(DEFAULT_REQUEST_TIMEOUT.as_millis() as u64));
    let (mut frames, mut calls, mut answers) =
        (mux::Decoder::default(), ttrpc::Decoder::default(), ttrpc::Decoder::default());
    let registration_deadline = tokio::time::Instant::now() + settings.registration_timeout;
    let mut registered = false;
    let mut tasks = tokio::task::JoinSet::new();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = if registered {
            reader.read(&mut buf).await?
        } else {
            tokio::time::timeout_at(registration_deadline, reader.read(&mut buf))
                .await
                .map_err(|_| NriError::RegistrationTimeout(settings.registration_timeout))??
        };
        if n == 0 {
            return Ok(Ended::Closed);
        }
        frames.push(&buf[..n]);
        while let Some(frame) = frames.next_frame()? {
            match frame.conn {
                PLUGIN_CONN => calls.push(&frame.payload),
                RUNTIME_CONN => answers.push(&frame.payload),
                // No other connection is opened on NRI's socket; Go's multiplexer drops such frames too.
                _ => {}
            }
        }
        while let Some(m) = answers.next_message()? {
            if m.kind != TYPE_RESPONSE || m.stream != 1 {
                continue;
            }
            let r = ttrpc::Response::decode(m.body.as_slice()).map_err(|e| TtrpcError::Malformed {
                what: "response",
                stream: m.stream,
                message: e.to_string(),
            })?;
            if let Some(s) = r.status.filter(|s| s.code != code::OK) {
                return Err(NriError::Refused(s.message));
            }
            registered = true;
            stats.registrations.fetch_add(1, Ordering::Relaxed);
            tracing::info!(socket = %settings.socket.display(), name = %settings.name, index = %settings.index, "registered with the runtime as an NRI validator");
        }
        while let Some(m) = calls.next_message()? {
            if m.kind != TYPE_REQUEST {
                continue;
            }
            let stream = m.stream;
            let call = parse_call(stream, &m.body)?;
            if call == Call::Shutdown {
                let body = response(api::Empty {}.encode_to_vec(), None);
                send(&writer, PLUGIN_CONN, &ttrpc::Message { stream, kind: TYPE_RESPONSE, flags: 0, body }).await?;
                return Ok(Ended::Shutdown);
            }
            let (writer, decider, stats, timeout) =
                (writer.clone(), decider.clone(), stats.clone(), request_timeout.clone());
            tasks.spawn(async move {
                let body = answer(call, decider, &stats, &timeout).await;
                let m = ttrpc::Message { stream, kind: TYPE_RESPONSE, flags: 0, body };
                if let Err(e) = send(&writer, PLUGIN_CONN, &m).await {
                    tracing::warn!(error = %e, "cannot answer the runtime");
                }
            });
        }
        // Reap finished answers so the set stays small.
        while tasks.try_join_next().is_some() {}
    }
}

/// [`serve_connection`] with owned settings, for spawning.
pub async fn serve_connection_owned<D: Decide>(
    settings: Settings,
    decider: Arc<D>,
    stats: Arc<Stats>,
) -> Result<Ended, NriError> {
    serve_connection(&settings, decider, stats).await
}

/// The answer to one call, as a ttrpc `Response` body.
async fn answer<D: Decide>(call: Call, decider: Arc<D>, stats: &Stats, request_timeout: &AtomicU64) -> Vec<u8> {
    let within = || Duration::from_millis(request_timeout.load(Ordering::Relaxed).saturating_mul(3) / 4);
    let decide = |target: Result<Target, String>| {
        let decider = decider.clone();
        let limit = within();
        async move {
            let target = match target {
                Ok(t) => t,
                Err(reason) => return Verdict::Refuse(format!("tollgate: {reason}")),
            };
            let shown = format!("{}@{}", target.name, target.digest);
            match tokio::time::timeout(limit, decider.decide(target)).await {
                Ok(v) => v,
                Err(_) => Verdict::Refuse(format!(
                    "tollgate: undecidable: no verdict for {shown} within {} ms; refused",
                    limit.as_millis()
                )),
            }
        }
    };
    let count = |v: &Verdict| match v {
        Verdict::Allow => stats.allowed.fetch_add(1, Ordering::Relaxed),
        Verdict::Refuse(_) => stats.refused.fetch_add(1, Ordering::Relaxed),
    };
    match call {
        Call::Configure(c) => {
            // The runtime's value, within reason: a verdict is never awaited longer than a minute.
            if let Ok(ms) = u64::try_from(c.request_timeout)
                && ms > 0
            {
                request_timeout.store(ms.min(60_000), Ordering::Relaxed);
            }
            tracing::info!(runtime = %c.runtime_name, version = %c.runtime_version, nri = %c.nri_version, request_timeout_ms = c.request_timeout, "configured by the runtime");
            if let Some(w) = identity_warning(&c.runtime_name, &c.runtime_version) {
                tracing::warn!("{w}");
            }
            let events = event::mask(&[event::CREATE_CONTAINER, event::VALIDATE_CONTAINER_ADJUSTMENT]);
            response(api::ConfigureResponse { events }.encode_to_vec(), None)
        }
        Call::Synchronize(s) => {
            // Answered at once; the images of running containers are verified in the background,
            // so that their restarts find a warm cache.
            let pods: HashMap<&str, &api::PodSandbox> = s.pods.iter().map(|p| (p.id.as_str(), p)).collect();
            // One decision per image and namespace, however many containers run it.
            let mut seen = BTreeSet::new();
            let targets: Vec<Target> = s
                .containers
                .iter()
                .filter_map(|c| target(pods.get(c.pod_sandbox_id.as_str()).copied(), Some(c)).ok())
                .filter(|t| seen.insert((t.name.clone(), t.digest.clone(), t.namespace.clone())))
                .collect();
            let decider = decider.clone();
            tracing::info!(
                containers = s.containers.len(),
                images = targets.len(),
                "synchronized; verifying running images in the background"
            );
            tokio::spawn(async move {
                for t in targets {
                    let _ = decider.decide(t).await;
                }
            });
            response(api::SynchronizeResponse { more: s.more }.encode_to_vec(), None)
        }
        Call::CreateContainer(c) => {
            let v = decide(target(c.pod.as_ref(), c.container.as_ref())).await;
            count(&v);
            match v {
                Verdict::Allow => response(api::CreateContainerResponse {}.encode_to_vec(), None),
                Verdict::Refuse(reason) => error_status(code::PERMISSION_DENIED, reason),
            }
        }
        Call::Validate(c) => {
            let v = decide(target(c.pod.as_ref(), c.container.as_ref())).await;
            let (reject, reason) = match v {
                Verdict::Allow => (false, String::new()),
                Verdict::Refuse(reason) => (true, reason),
            };
            response(api::ValidateContainerAdjustmentResponse { reject, reason }.encode_to_vec(), None)
        }
        Call::Shutdown => response(api::Empty {}.encode_to_vec(), None),
        Call::Other(method) => error_status(code::UNIMPLEMENTED, format!("tollgate does not serve {method}")),
    }
}

/// Serves the runtime until `stop` completes: connects, and after every disconnect reconnects
/// with a backoff from 100 ms doubling to 5 s (reset by a connection that registered), logging why.
pub async fn run<D: Decide>(settings: Settings, decider: Arc<D>, stats: Arc<Stats>, stop: impl Future<Output = ()>) {
    tokio::pin!(stop);
    let mut backoff = Duration::from_millis(100);
    loop {
        let before = stats.registrations.load(Ordering::Relaxed);
        let ended = tokio::select! {
            r = serve_connection(&settings, decider.clone(), stats.clone()) => r,
            () = &mut stop => return,
        };
        let registered = stats.registrations.load(Ordering::Relaxed) > before;
        let ends = if registered { &stats.disconnects } else { &stats.failed_connects };
        ends.fetch_add(1, Ordering::Relaxed);
        match ended {
            Ok(how) => tracing::warn!(?how, "the runtime closed the NRI connection; reconnecting"),
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "NRI connection failed; reconnecting")
            }
        }
        if registered {
            backoff = Duration::from_millis(100);
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = &mut stop => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn request(method: &str, payload: Vec<u8>) -> Vec<u8> {
        ttrpc::Request { service: api::PLUGIN_SERVICE.into(), method: method.into(), payload, ..Default::default() }
            .encode_to_vec()
    }

    #[test]
    fn calls_decode_by_method_and_unknown_ones_are_named() {
        let c =
            api::ConfigureRequest { runtime_name: "containerd".into(), request_timeout: 2000, ..Default::default() };
        assert_eq!(parse_call(1, &request("Configure", c.encode_to_vec())), Ok(Call::Configure(c)));
        assert_eq!(parse_call(3, &request("StateChange", vec![])), Ok(Call::Other("StateChange".into())));
        assert_eq!(parse_call(5, &request("Shutdown", vec![])), Ok(Call::Shutdown));
    }

    #[test]
    fn a_payload_that_does_not_decode_ends_the_connection() {
        let e = parse_call(7, &request("CreateContainer", vec![0x0a, 0x05, 1])).unwrap_err();
        assert!(matches!(e, TtrpcError::Malformed { stream: 7, .. }), "{e:?}");
        assert!(e.to_string().contains("CreateContainer"), "{e}");
    }

    #[test]
    fn containerd_before_2_4_is_said_to_run_degraded() {
        assert!(identity_warning("containerd", "v2.3.4").is_some_and(|w| w.starts_with("running degraded")));
        assert_eq!(identity_warning("containerd", "v2.4.0-dev+301026e"), None);
        assert_eq!(identity_warning("cri-o", "1.30.0"), None);
        assert_eq!(identity_warning("containerd", "garbage"), None);
    }

    #[test]
    fn a_container_without_an_image_digest_cannot_be_named() {
        let pod = api::PodSandbox { name: "web".into(), namespace: "shop".into(), ..Default::default() };
        let mut c = api::Container { name: "app".into(), ..Default::default() };
        let e = target(Some(&pod), Some(&c)).unwrap_err();
        assert!(
            e.starts_with("container shop/web/app: the runtime gave no image and no io.kubernetes.cri.image-name"),
            "{e}"
        );
        // containerd before 2.4: the CRI annotation names it, with no digest (looked up by the caller).
        c.annotations.insert(CRI_IMAGE_NAME.into(), "r.example/app:1".into());
        let named = target(Some(&pod), Some(&c)).unwrap();
        assert_eq!((named.name.as_str(), named.digest.as_str()), ("r.example/app:1", ""));
        // An image without a digest is refused, whatever the annotation says.
        c.image =
            Some(api::Image { name: "r.example/app:1".into(), digest: String::new(), config_digest: String::new() });
        let e = target(Some(&pod), Some(&c)).unwrap_err();
        assert!(e.starts_with("container shop/web/app: the runtime gave no image digest"), "{e}");
        c.image = Some(api::Image {
            name: "r.example/app:1".into(),
            digest: "sha256:ab".into(),
            config_digest: String::new(),
        });
        assert_eq!(
            target(Some(&pod), Some(&c)),
            Ok(Target {
                name: "r.example/app:1".into(),
                digest: "sha256:ab".into(),
                namespace: "shop".into(),
                container: "shop/web/app".into()
            })
        );
    }
}
