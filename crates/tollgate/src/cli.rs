//! Command-line definitions.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::exit::EXIT_CODES_HELP;
use crate::output::Format;

const ABOUT: &str = "Image trust on the Kubernetes node: pin the control plane by digest, and know that every image a node runs is the one you meant.";

const LONG_ABOUT: &str = "\
tollgate pins the kubeadm control plane to image digests, so the container runtime itself refuses \
any other content, and keeps those pins through init, join and upgrade.

Start here:
  # what kubeadm will run, with digests
  tollgate images list --kubernetes-version v1.36.2 --pinned
  # patches that pin it, which kubeadm applies
  tollgate kubeadm patches --kubernetes-version v1.36.2 --out ./patches
  kubeadm init --patches ./patches ...
  tollgate kubeadm audit    # is every static pod pinned?

Then, on every node:
  tollgate serve                # the verdict daemon (docs/operations.md)
  tollgate containerd install   # every pull decided by your policy
  tollgate harden plan          # a non-root control plane (then apply, audit)

Pinning runs offline on the catalog compiled into tollgate; `images lock`, `mirror`, `verify` and \
`components install` with https URLs talk to registries.";

/// tollgate command line.
#[derive(Debug, Parser)]
#[command(name = "tollgate", version, about = ABOUT, long_about = LONG_ABOUT, after_help = EXIT_CODES_HELP)]
pub struct Cli {
    /// Output format: `text` for people, `json` for machines.
    #[arg(long, short = 'o', global = true, help_heading = "Global options", value_enum, default_value_t = Format::Text)]
    pub output: Format,

    /// More log output on stderr: -v info, -vv each registry request (method, URL, status, time) and retry,
    /// -vvv the HTTP stack too. TOLLGATE_LOG (a tracing filter) overrides.
    #[arg(long, short = 'v', global = true, help_heading = "Global options", action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List and lock the control-plane images of a Kubernetes version.
    #[command(subcommand)]
    Images(ImagesCommand),
    /// Write kubeadm patches and configuration that pin the control plane, and audit it.
    #[command(subcommand)]
    Kubeadm(KubeadmCommand),
    /// Install files from data:, file:// and https:// URLs with hash checks.
    #[command(subcommand)]
    Components(ComponentsCommand),
    /// Decide whether an image may run under a policy, and say why.
    #[command(after_help = "\
Examples:
  tollgate verify registry.example.com/app:1.2 \\
    --policy /etc/containers/policy.json
  tollgate verify 127.0.0.1:5000/app@sha256:… --policy policy.json \\
    --insecure-registry 127.0.0.1:5000 -o json
  tollgate verify oci:examples/signed-layout:v1 --policy examples/policy.json

The digest that would be pulled is the one verified: a tag is resolved to its digest (for a \
multi-platform image, the index digest) and signatures are looked up for that digest.

Exit codes: 0 allowed, 1 denied, 2 usage or configuration error, 3 undecidable (e.g. registry \
unreachable).")]
    Verify(VerifyArgs),
    /// Check and explain policy files.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Run the node daemon: verdicts for containerd's verifier on a unix socket, cached, audited, with metrics.
    #[command(after_help = "\
Examples:
  tollgate serve    # the config in /etc/tollgate/config.yaml
  tollgate serve --policy policy.yaml --socket /tmp/tollgate.sock \\
    --insecure-registry 127.0.0.1:5000

API (HTTP/1.1 on the socket, mode 0600): POST /v1/verify {\"name\":REF,\"digest\":DIGEST}, \
GET /healthz, GET /metrics. Every answer is written to the audit log first.

The policy is re-read every reloadSeconds and on SIGHUP; a broken policy is reported on /healthz \
and the last good one stays in force. While the break-glass file exists every image is allowed, \
loudly. SIGTERM or SIGINT drain in-flight requests and exit 0.

Keys and defaults: docs/operations.md. Exit codes: 0 after a clean shutdown, 2 bad config or \
policy.")]
    Serve(ServeArgs),
    /// Enforce on containerd: install the verifier, check the config, write mirror hosts.
    #[command(subcommand)]
    Containerd(ContainerdCommand),
    /// Run the NRI plugin: every container containerd creates is decided by the node daemon, images
    /// already on the node included.
    #[command(after_help = "\
Examples:
  tollgate nri    # the nri.* keys and socket of /etc/tollgate/config.yaml
  tollgate nri --config /etc/tollgate/config.yaml

It registers with containerd's NRI socket as a validator and on CreateContainer, and asks the \
daemon (`tollgate serve`, same socket, cache, audit log and metrics as pulls) about each \
container's image: the name and digest containerd resolved (containerd 2.4 and later). A \
container is refused when the daemon denies it, cannot decide it (down, registry unreachable: \
failOpen does not apply here), or does not answer within three quarters of NRI's request \
timeout. With `tollgate containerd install --nri`, containerd also refuses every container while \
the plugin is not connected. When containerd restarts, the plugin reconnects (100 ms doubling to \
5 s). Launched by containerd from NRI's plugin path (a script that execs `tollgate nri --config \
FILE`), it serves the connection containerd hands it instead (docs/operations.md).

Exit codes: 0 after SIGTERM or SIGINT, 2 bad config.")]
    Nri(NriArgs),
    /// Run the controller: compile the cluster's ClusterImagePolicies, ImagePolicies and TrustRoots
    /// into the policy bundle ConfigMap the nodes and the webhook read, and report each object's status.
    #[command(after_help = "\
Examples:
  # in the cluster, as its ServiceAccount (tollgate manifests --image)
  tollgate controller
  tollgate controller --kubeconfig ~/.kube/tollgate-controller.conf

It watches the three tollgate.dev kinds, reads the Secret and ConfigMap keys they name (keys, \
trusted roots), compiles everything into one bundle (policy.yaml and namespace.NAMESPACE.yaml) and \
writes it into ConfigMap tollgate-system/tollgate-policy, annotated tollgate.dev/bundle-hash. Each \
object's status says Ready with the bundle's hash, or Invalid with the reason. When any object \
does not compile, nothing is published: the ConfigMap keeps the last good bundle and the other \
objects say they wait. Referenced Secrets and ConfigMaps are read again every --resync-seconds, so \
a deleted key is reported, never dropped. Two replicas are safe: only the holder of Lease \
tollgate-system/tollgate-controller writes, and it gives the Lease up on SIGTERM.

Exit codes: 0 after SIGTERM or SIGINT, 2 bad kubeconfig, 3 the Lease was lost (run it again; a \
Deployment restarts it).")]
    Controller(ControllerArgs),
    /// Run the admission webhook: pods and workloads are admitted only with images the policy allows,
    /// and tags are pinned to the digests verified.
    #[command(after_help = "\
Examples:
  tollgate webhook --tls-cert tls.crt --tls-key tls.key
  tollgate webhook --policy-bundle /etc/tollgate/compiled \\
    --tls-cert tls.crt --tls-key tls.key --listen 127.0.0.1:8443
  tollgate manifests --webhook-url https://10.0.0.5:8443 --ca-file ca.crt \\
    --out ./manifests

POST /validate admits or denies Pods, Deployments, StatefulSets, DaemonSets, ReplicaSets, Jobs \
and CronJobs: every image (init, regular and ephemeral containers) is decided like a pull, with \
the namespace's policy (namespacePolicies, or the bundle's parts). A denial names the \
image, the container and the reason; warn mode admits with a warning. POST /mutate rewrites each \
tag to the digest it verified (repo:tag@sha256:...), never to one it did not. Pods that carry the \
NRI toleration or required-plugins annotations are refused unless a kubelet creates them as \
static pods, they are tollgate's node agent, or the cluster policy names them \
(enforcementOverrides).

What cannot be decided within --deadline-seconds (a registry that does not answer) gets HTTP \
503, so the configuration's failurePolicy decides: Fail (the default written by tollgate \
manifests) refuses, Ignore admits and leaves the node to enforce. Keep the deadline below \
timeoutSeconds. A malformed or unknown-version review gets HTTP 400 with the reason.

The certificate and key are re-read when they change. Registries, credentials, cache and audit \
log come from --config (the node config). Exit codes: 0 after SIGTERM or SIGINT, 2 bad config, \
certificate or address.")]
    Webhook(WebhookArgs),
    /// Make a serving certificate for the webhook without cert-manager: a one-shot CA and a
    /// certificate for the webhook's Service name.
    #[command(after_help = "\
Examples:
  tollgate webhook-cert --out ./webhook-tls
  kubectl -n tollgate-system create secret tls tollgate-webhook-tls \\
    --cert ./webhook-tls/tls.crt --key ./webhook-tls/tls.key
  tollgate manifests --webhook-service --ca-file ./webhook-tls/ca.crt \\
    --image registry.example.com/tollgate@sha256:<digest> --out ./manifests

Writes ca.crt (the configurations' caBundle), tls.crt and tls.key (mode 0600) into DIR, which \
must exist; an existing tls.key is never overwritten. The CA signs this one certificate and its \
key is not kept: to renew, run it again, replace the Secret and re-apply the configurations. \
Names default to tollgate-webhook.tollgate-system.svc, the name the API server checks when it \
calls the webhook through its Service; --name adds others (DNS names or IP addresses, for \
--webhook-url). Exit codes: 0 written, 2 error.")]
    WebhookCert(WebhookCertArgs),
    /// Print or write the Kubernetes manifests: namespace, the tollgate.dev CRDs, an admission policy.
    #[command(after_help = "\
Examples:
  tollgate manifests | kubectl apply -f -
  tollgate manifests --out ./manifests && kubectl apply -f ./manifests
  tollgate manifests --policies examples/kubernetes/policies.yaml \\
    --out ./manifests
  tollgate manifests --webhook-url https://10.0.0.5:8443 --ca-file ca.crt

Writes 00-namespace.yaml (tollgate-system, Pod Security restricted) and 10-crds.yaml \
(ClusterImagePolicy, ImagePolicy, TrustRoot, with structural schemas and CEL rules the API server \
enforces). With --policies, 20-admission-policy.yaml: a ValidatingAdmissionPolicy and binding \
that refuse pods whose images are not pinned by digest or not under a ClusterImagePolicy's \
scopes. It needs no webhook and no network, so it holds while they are down. With \
--webhook-url and --ca-file, 30-webhooks.yaml: the configurations that call `tollgate webhook` \
(failurePolicy Fail, every namespace but tollgate-system). With --image REPO@sha256:..., \
40-node-agent.yaml: the DaemonSet that installs the verifier into containerd and runs the daemon \
and the NRI plugin on every node, reading the policy bundle from its mounted ConfigMap (no API \
credentials), and 50-controller.yaml: `tollgate controller` (two replicas, one leading), which \
compiles the cluster's policies into that ConfigMap, with its least-privilege RBAC.")]
    Manifests(ManifestsArgs),
    /// Copy images by digest, with every platform, signature and referrer, to another registry.
    #[command(after_help = "\
Examples:
  tollgate mirror --to mirror.example.com/k8s --kubernetes-version v1.36.2
  tollgate mirror registry.example.com/team/app:v2 --to 127.0.0.1:5000/mirror \\
    --insecure-registry 127.0.0.1:5000
  # the plan; writes nothing
  tollgate mirror --to mirror.example.com/k8s --kubernetes-version v1.36.2 \\
    --dry-run
  # every version the catalog pins
  tollgate mirror --to mirror.example.com/k8s --catalog tollgate-catalog.json

IMAGE keeps its path below the prefix: registry.k8s.io/kube-apiserver goes to \
HOST/PREFIX/kube-apiserver, with the same digests, so pins and signatures still verify there. A \
signature names the original repository, so the policy at the mirror says signedIdentity \
exactRepository (cosign signatures) or remapIdentity.

Blobs and manifests already present are skipped (HEAD), which also resumes an interrupted run; \
blobs are mounted within one registry and uploaded in chunks when large. Catalog images without a \
known digest are refused (lock them first).

Exit codes: 0 copied, 1 refused content, 2 usage error, 3 transient failure.")]
    Mirror(MirrorArgs),
    /// systemd drop-ins for image overrides.
    #[command(subcommand)]
    Systemd(SystemdCommand),
    /// TLS bootstrap material for joining nodes.
    #[command(subcommand)]
    Bootstrap(BootstrapCommand),
    /// Run the control plane as non-root users: plan, apply, audit, revert.
    #[command(subcommand)]
    Harden(HardenCommand),
    /// Verify a sigstore bundle for a file, like `cosign verify-blob` (and the sigstore-conformance client).
    #[command(after_help = "\
Examples:
  tollgate verify-bundle kubectl --bundle kubectl.sigstore.json \\
    --trusted-root trusted_root.json \\
    --certificate-oidc-issuer https://accounts.google.com \\
    --certificate-identity krel-staging@k8s-releng-prod.iam.gserviceaccount.com
  tollgate verify-bundle file.txt --bundle b.sigstore.json \\
    --trusted-root r.json --key signer.pub

Supported: bundles v0.1-v0.3 logged in Rekor v1 (signed entry timestamp, inclusion proof and \
checkpoint all checked) or Rekor v2 (inclusion proof and checkpoint; the time comes from an RFC \
3161 timestamp that must verify against the trusted root's timestamp authorities), Fulcio \
certificates (with their embedded SCTs, valid at every verified time) and managed keys, message \
signatures and DSSE/in-toto.

Exit codes: 0 verified, 1 refused, 2 usage error.")]
    VerifyBundle(VerifyBundleArgs),
    /// Verify one notation (Notary Project) signature envelope for an artifact, offline, as notation does.
    #[command(after_help = "\
Example:
  tollgate verify-notation --signature sig.jws \\
    --media-type application/jose+json \\
    --artifact registry.example.com/app@sha256:… \\
    --trust-policy trustpolicy.json --trust-store ~/.config/notation

The trust policy is notation's trustpolicy.json, taken as notation reads it; the statement for the \
artifact's repository (or *) decides, at its level (strict, permissive, audit, skip) and overrides. \
--trust-store is notation's configuration directory (holding truststore/x509/TYPE/NAME/) or the \
truststore directory itself. JWS (application/jose+json) and COSE (application/cose) envelopes \
are verified, with their RFC 3161 timestamp countersignatures when the statement names a tsa: \
store; plugins are refused. Revocation is not checked (offline), and the output says so.

Exit codes: 0 verified, 1 refused, 2 usage or configuration error.")]
    VerifyNotation(VerifyNotationArgs),
    /// Print tollgate's version and what its embedded catalog covers (`-o json` for machines).
    Version,
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(after_help = "Example: tollgate completions bash > /etc/bash_completion.d/tollgate")]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), or write one page per command into a directory.
    #[command(after_help = "\
Examples:
  tollgate man | man -l -
  tollgate man --out /usr/local/share/man/man1 && mandb -q

With --out, writes tollgate.1 and one page per command (tollgate-images-lock.1, …), mode 0644, into a \
directory that must exist.")]
    Man {
        /// Write every page into this directory instead of printing tollgate.1.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
}

/// Where the catalog comes from.
#[derive(Debug, Args, Clone)]
pub struct CatalogArgs {
    /// A catalog file merged over the embedded one (versions and images it names replace the embedded ones).
    /// Written by `tollgate images lock`; format in docs/catalog.md.
    #[arg(long, value_name = "FILE")]
    pub catalog: Option<PathBuf>,
}

/// `images` subcommands.
#[derive(Debug, Subcommand)]
pub enum ImagesCommand {
    /// List the images kubeadm uses for a version, in `kubeadm config images list` order. Offline.
    #[command(after_help = "\
Examples:
  tollgate images list --kubernetes-version v1.36.2
  tollgate images list --kubernetes-version v1.36.2 --pinned
  tollgate images list --kubernetes-version v1.36.2 \\
    --image-repository mirror.example.com/k8s -o json

Images with no known digest are printed by tag and named in a warning on stderr.")]
    List(ImagesListArgs),
    /// Resolve image tags to digests against a registry and write them to a catalog file.
    #[command(after_help = "\
Examples:
  tollgate images lock --kubernetes-version v1.36.2 --out catalog.json
  tollgate images lock --kubernetes-version v1.36.2 \\
    --registry 127.0.0.1:5000/k8s --insecure-registry 127.0.0.1:5000

Each manifest is fetched (multi-platform images resolve to their index digest) and its bytes are \
hashed; a registry whose Docker-Content-Digest disagrees with the bytes is refused.

If the catalog already pins an image and the registry now serves another digest for the same tag, \
the tag has moved: lock refuses unless --accept-changes. Nothing is written unless every image \
resolved.")]
    Lock(ImagesLockArgs),
}

/// `images list` arguments.
#[derive(Debug, Args)]
pub struct ImagesListArgs {
    /// Kubernetes version, e.g. v1.36.2.
    #[arg(long, value_name = "VERSION")]
    pub kubernetes_version: String,
    /// Registry and path prefix to use instead of registry.k8s.io (as kubeadm's imageRepository).
    #[arg(long, value_name = "REPO", value_parser = repository)]
    pub image_repository: Option<String>,
    /// Print each image with its digest (`image:tag@sha256:…`).
    #[arg(long)]
    pub pinned: bool,
    #[command(flatten)]
    pub catalog: CatalogArgs,
}

/// `images lock` arguments.
#[derive(Debug, Args)]
pub struct ImagesLockArgs {
    /// Kubernetes versions to resolve (repeatable).
    #[arg(long = "kubernetes-version", value_name = "VERSION", required = true)]
    pub kubernetes_versions: Vec<String>,
    /// Catalog file to write. If it exists, it is read first and updated.
    #[arg(long, value_name = "FILE", default_value = "tollgate-catalog.json")]
    pub out: PathBuf,
    /// Resolve from this registry[/prefix] (a mirror) instead of registry.k8s.io.
    #[arg(long, value_name = "HOST[:PORT][/PREFIX]", value_parser = repository)]
    pub registry: Option<String>,
    #[command(flatten)]
    pub access: RegistryAccess,
    /// Parallel requests.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,
    /// Overwrite pinned digests that the registry now serves differently (a moved tag).
    #[arg(long)]
    pub accept_changes: bool,
    #[command(flatten)]
    pub catalog: CatalogArgs,
}

/// `kubeadm` subcommands.
#[derive(Debug, Subcommand)]
pub enum KubeadmCommand {
    /// Write kubeadm patch files (RFC 6902) that pin every static pod, and CoreDNS from 1.31, by digest.
    #[command(after_help = "\
Examples:
  tollgate kubeadm patches --kubernetes-version v1.36.2 \\
    --out /etc/kubernetes/tollgate-patches
  kubeadm init --patches /etc/kubernetes/tollgate-patches ...

Patches are node-local: kubeadm upgrade apply and kubeadm upgrade node must get --patches again \
(or use `tollgate kubeadm config`), or the regenerated manifests lose their pins. Refuses when an \
image to patch has no known digest, unless --allow-unpinned.")]
    Patches(PatchesArgs),
    /// Render Init/Cluster/Join (and, from 1.31, Upgrade) configuration that reads the patches.
    #[command(after_help = "\
Examples:
  tollgate kubeadm config --kubernetes-version v1.36.2 > kubeadm.yaml
  tollgate kubeadm config --kubernetes-version v1.36.2 \\
    --patches-dir /etc/kubernetes/tollgate-patches
  tollgate kubeadm config --kubernetes-version v1.36.2 --only upgrade \\
    --out upgrade.yaml
  kubeadm upgrade apply --config upgrade.yaml")]
    Config(ConfigArgs),
    /// Check that every static-pod image is pinned by digest and matches the catalog.
    #[command(after_help = "\
Examples:
  tollgate kubeadm audit
  tollgate kubeadm audit --manifests ./manifests \\
    --kubernetes-version v1.36.2 -o json

The version is read from the kube-apiserver image tag unless given. Exits 1 on findings.")]
    Audit(AuditArgs),
}

/// `kubeadm patches` arguments.
#[derive(Debug, Args)]
pub struct PatchesArgs {
    /// Kubernetes version, e.g. v1.36.2.
    #[arg(long, value_name = "VERSION")]
    pub kubernetes_version: String,
    /// Directory to write the patch files to (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Registry and path prefix to use instead of registry.k8s.io (must mirror the content by digest).
    #[arg(long, value_name = "REPO", value_parser = repository)]
    pub image_repository: Option<String>,
    /// Write patches for the pinned images and skip unpinned ones instead of refusing.
    #[arg(long)]
    pub allow_unpinned: bool,
    /// Also annotate the static pods nri.tollgate.dev/tolerate-missing-plugins: "true", so they start
    /// while tollgate's NRI plugin is not up (only needed when the plugin runs as a pod).
    #[arg(long)]
    pub nri_toleration: bool,
    /// Show what would be written without writing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub catalog: CatalogArgs,
}

/// `kubeadm config` arguments.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// Kubernetes version, e.g. v1.36.2.
    #[arg(long, value_name = "VERSION")]
    pub kubernetes_version: String,
    /// Directory on the node that holds the patch files.
    #[arg(long, value_name = "DIR", default_value = "/etc/kubernetes/tollgate-patches")]
    pub patches_dir: String,
    /// Registry and path prefix to use instead of registry.k8s.io.
    #[arg(long, value_name = "REPO", value_parser = repository)]
    pub image_repository: Option<String>,
    /// Write the YAML to this file (mode 0600) instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Render only one kind, e.g. `upgrade` for `kubeadm upgrade apply|node --config`.
    #[arg(long, value_enum, value_name = "KIND")]
    pub only: Option<ConfigKind>,
    #[command(flatten)]
    pub catalog: CatalogArgs,
}

/// A kubeadm configuration kind.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ConfigKind {
    /// InitConfiguration.
    Init,
    /// ClusterConfiguration.
    Cluster,
    /// JoinConfiguration.
    Join,
    /// UpgradeConfiguration (kubeadm ≥ 1.31).
    Upgrade,
}

impl ConfigKind {
    /// The kubeadm `kind`.
    pub fn kind(self) -> &'static str {
        match self {
            ConfigKind::Init => "InitConfiguration",
            ConfigKind::Cluster => "ClusterConfiguration",
            ConfigKind::Join => "JoinConfiguration",
            ConfigKind::Upgrade => "UpgradeConfiguration",
        }
    }
}

/// `kubeadm audit` arguments.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Directory of static-pod manifests.
    #[arg(long, value_name = "DIR", default_value = "/etc/kubernetes/manifests")]
    pub manifests: PathBuf,
    /// Compare against this version instead of the one the kube-apiserver image names.
    #[arg(long, value_name = "VERSION")]
    pub kubernetes_version: Option<String>,
    #[command(flatten)]
    pub catalog: CatalogArgs,
}

/// `verify` arguments.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The image: a registry reference (`host/repo:tag`, `host/repo@sha256:…`) or an OCI layout (`oci:DIR[:NAME]`).
    pub image: String,
    /// The policy: containers-policy.json or native YAML. Relative key paths are read relative to the policy file.
    #[arg(long, value_name = "FILE", default_value = "/etc/containers/policy.json")]
    pub policy: PathBuf,
    /// Decide on this digest instead of resolving the tag (what containerd passes).
    #[arg(long, value_name = "DIGEST")]
    pub digest: Option<String>,
    #[command(flatten)]
    pub access: RegistryAccess,
    /// Seconds allowed for each registry request (3 attempts at most for transient failures).
    #[arg(long, value_name = "SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub timeout: u64,
}

/// `verify-bundle` arguments.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("signer").required(true).args(["key", "certificate_identity"])))]
pub struct VerifyBundleArgs {
    /// The bundle (`*.sigstore.json`).
    #[arg(long, value_name = "FILE")]
    pub bundle: PathBuf,
    /// The signer's public key (PEM), for bundles signed with a managed key.
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// The certificate SAN that must have signed (URI or email), matched exactly.
    #[arg(long, value_name = "SAN", requires = "certificate_oidc_issuer")]
    pub certificate_identity: Option<String>,
    /// The OIDC issuer of that identity, matched exactly.
    #[arg(long, value_name = "URL")]
    pub certificate_oidc_issuer: Option<String>,
    /// The trusted root (`trusted_root.json`): Fulcio CAs, Rekor and CT log keys, timestamp authorities.
    #[arg(long, value_name = "FILE")]
    pub trusted_root: PathBuf,
    /// The signed file, or `sha256:<hex>` of it (DSSE bundles, and ECDSA message signatures; Ed25519 and RSA
    /// message signatures need the file).
    pub artifact: String,
}

/// `mirror` arguments.
#[derive(Debug, Args)]
pub struct MirrorArgs {
    /// Destination registry and optional prefix.
    #[arg(long, value_name = "HOST[:PORT][/PREFIX]", value_parser = repository)]
    pub to: String,
    /// Mirror the control-plane images of these Kubernetes versions (from the catalog; repeatable). With
    /// --catalog FILE and no version, every version that file pins.
    #[arg(long = "kubernetes-version", value_name = "VERSION")]
    pub kubernetes_versions: Vec<String>,
    /// Images to mirror (tag, digest or both).
    #[arg(value_name = "IMAGE")]
    pub images: Vec<String>,
    /// Read and report what would be copied; write nothing. Images that cannot be copied (no known digest)
    /// are listed instead of stopping the plan.
    #[arg(long)]
    pub dry_run: bool,
    /// Copy the catalog's images from this registry and prefix (another mirror, laid out as kubeadm's
    /// --image-repository expects) instead of registry.k8s.io. Digests are checked all the same.
    #[arg(long, value_name = "HOST[:PORT][/PREFIX]", value_parser = repository)]
    pub from: Option<String>,
    #[command(flatten)]
    pub access: RegistryAccess,
    #[command(flatten)]
    pub catalog: CatalogArgs,
}

/// `systemd` subcommands.
#[derive(Debug, Subcommand)]
pub enum SystemdCommand {
    /// Write (or --revert) a drop-in that sets a unit's image variable to a pinned image.
    #[command(after_help = "\
Examples:
  tollgate systemd image-override --unit kubelet --env KUBELET_IMAGE \\
    --image mirror.example.com/poseidon/kubelet:v1.36.1@sha256:…
  tollgate systemd image-override --unit kubelet --env KUBELET_IMAGE --revert

Writes DIR/UNIT.d/10-image-override.conf ([Service] Environment=ENV=IMAGE, mode 0644, \
atomically), then: systemctl daemon-reload && systemctl restart UNIT. Tag-only images are refused \
unless --allow-tag.")]
    ImageOverride(ImageOverrideArgs),
}

/// `systemd image-override` arguments.
#[derive(Debug, Args)]
pub struct ImageOverrideArgs {
    /// The unit, e.g. kubelet.service or etcd-member.service.
    #[arg(long)]
    pub unit: String,
    /// The environment variable the unit reads its image from.
    #[arg(long, value_name = "NAME")]
    pub env: String,
    /// The image, pinned by digest.
    #[arg(long, required_unless_present = "revert")]
    pub image: Option<String>,
    /// Accept an image without a digest.
    #[arg(long)]
    pub allow_tag: bool,
    /// Remove the drop-in instead.
    #[arg(long)]
    pub revert: bool,
    /// systemd's unit directory.
    #[arg(long, value_name = "DIR", default_value = "/etc/systemd/system")]
    pub dir: PathBuf,
    /// Print the drop-in; write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// `bootstrap` subcommands.
#[derive(Debug, Subcommand)]
pub enum BootstrapCommand {
    /// Generate a bootstrap token, its Secret, the node RBAC and a bootstrap kubeconfig.
    #[command(after_help = "\
Example:
  tollgate bootstrap token --server https://10.0.0.10:6443 \\
    --ca-file /etc/kubernetes/pki/ca.crt --out ./bootstrap
  kubectl apply -f bootstrap/bootstrap-token-<id>.yaml \\
    -f bootstrap/bootstrap-rbac.yaml
  # on the new node:
  install -m 0600 bootstrap/bootstrap-kubelet.conf \\
    /etc/kubernetes/bootstrap-kubelet.conf

The token ([a-z0-9]{6}.[a-z0-9]{16}) comes from the operating system's CSPRNG. The Secret and the \
kubeconfig hold it and are written 0600; the token itself is never printed.

Rotate: generate a new one, distribute its kubeconfig, then delete the old Secret (kubectl -n \
kube-system delete secret bootstrap-token-<id>), which revokes it at once; --ttl makes it expire \
by itself (kube-controller-manager's tokencleaner deletes it).")]
    Token(TokenArgs),
}

/// `bootstrap token` arguments.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The API server URL nodes join.
    #[arg(long, value_name = "URL")]
    pub server: String,
    /// The cluster CA certificate (PEM).
    #[arg(long, value_name = "FILE")]
    pub ca_file: PathBuf,
    /// Directory for the three files.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub out: PathBuf,
    /// Expire the token after this long: 30m, 24h, 7d; 0 for never.
    #[arg(long, default_value = "24h")]
    pub ttl: String,
    /// Extra group (system:bootstrappers:NAME) for the token (repeatable).
    #[arg(long = "group", value_name = "GROUP")]
    pub groups: Vec<String>,
    /// The Secret's description.
    #[arg(long, default_value = "tollgate bootstrap token")]
    pub description: String,
}

/// `harden` subcommands.
#[derive(Debug, Subcommand)]
pub enum HardenCommand {
    /// Show the users, file ownership and securityContext that apply would set. Writes nothing.
    #[command(after_help = "\
Examples:
  tollgate harden plan
  tollgate harden plan --root /mnt/node --user etcd=etcd -o json

Users kubeadm-etcd, kubeadm-kas, kubeadm-kcm, kubeadm-ks and group kubeadm-sa-key-readers \
(kubeadm's RootlessControlPlane names), with the lowest free IDs in SYS_UID/GID_MIN..MAX of \
/etc/login.defs (default 100-999), reusing valid existing entries.

Exit codes: 0, or 2 on a corrupt passwd/group line, an exhausted ID range or an existing account \
that cannot be reused.")]
    Plan(HardenArgs),
    /// Create the accounts, chown/chmod the keys and kubeconfigs, write kubeadm patches. Idempotent, journaled.
    #[command(after_help = "\
Examples:
  tollgate harden apply --patches /etc/kubernetes/tollgate-patches
  kubeadm upgrade apply v1.36.2 --patches /etc/kubernetes/tollgate-patches
  # or also rewrite the running static pods now
  tollgate harden apply --now

passwd and group are edited under the lckpwdf(3) and kubeadm fcntl locks and replaced \
atomically. The securityContext goes into <target>9harden+strategic.yaml patch files, which \
kubeadm applies after tollgate's image-pin patches (<target>+json.json) in the same directory. \
Everything changed is recorded in /var/lib/tollgate/harden/journal.json for `harden revert`.

Exit codes: 0, 2 on errors, 3 when the account files stay locked for 5 s.")]
    Apply(HardenApplyArgs),
    /// Check the manifests' securityContext, file owners and modes, and CIS 1.1.1-1.1.21. Exit 1 on findings.
    #[command(after_help = "\
Examples:
  tollgate harden audit
  tollgate harden audit --profile cis -o json

CIS 1.1.16/1.1.18/1.1.19 want kubeconfigs and PKI owned by root:root, which a non-root component \
cannot read. With --profile hardened (default) a file owned exactly as the hardening plans is an \
accepted deviation, shown with the reason; with --profile cis it is a finding. Both views are \
always printed.")]
    Audit(HardenAuditArgs),
    /// Undo apply exactly: accounts, owners and modes, patches and manifests, from the journal.
    #[command(after_help = "\
Examples:
  tollgate harden revert
  tollgate harden revert --root /mnt/node -o json

Everything comes from /var/lib/tollgate/harden/journal.json, which apply wrote: the names, IDs \
and paths used then, so revert takes no --user, --id or --pki-dir.

Exit codes: 0, 2 when there is no journal (nothing was applied, or it was reverted already), 3 \
when the account files stay locked for 5 s.")]
    Revert(HardenRevertArgs),
}

/// Where and with which names `harden` works.
#[derive(Debug, Args)]
pub struct HardenArgs {
    /// The node's root directory (a mounted image or a copy of /etc for testing).
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// ClusterConfiguration.certificatesDir.
    #[arg(long, value_name = "DIR", default_value = "/etc/kubernetes/pki")]
    pub pki_dir: String,
    /// Use another account name: etcd=NAME, kube-apiserver=NAME, kube-controller-manager=NAME,
    /// kube-scheduler=NAME or sa-key-readers=NAME (repeatable).
    #[arg(long = "user", value_name = "COMPONENT=NAME")]
    pub users: Vec<String>,
    /// Use this UID/GID for an account (repeatable): NAME=ID.
    #[arg(long = "id", value_name = "NAME=ID")]
    pub ids: Vec<String>,
}

/// `harden revert` arguments: the journal knows the rest.
#[derive(Debug, Args)]
pub struct HardenRevertArgs {
    /// The node's root directory (a mounted image or a copy of /etc for testing).
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
}

/// `harden apply` arguments.
#[derive(Debug, Args)]
pub struct HardenApplyArgs {
    #[command(flatten)]
    pub node: HardenArgs,
    /// kubeadm's patches directory: the one the image pins are in (kubeadm reads only one).
    #[arg(long, value_name = "DIR", default_value = tollgate_controlplane::patchdir::DEFAULT_DIR)]
    pub patches: String,
    /// Also rewrite the live static-pod manifests (the kubelet restarts the pods as the new users).
    #[arg(long)]
    pub now: bool,
}

/// `harden audit` arguments.
#[derive(Debug, Args)]
pub struct HardenAuditArgs {
    #[command(flatten)]
    pub node: HardenArgs,
    /// Which view counts findings.
    #[arg(long, value_enum, default_value = "hardened")]
    pub profile: AuditProfile,
}

/// `--profile`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuditProfile {
    /// Non-root control plane: planned ownership deviations from CIS are accepted.
    Hardened,
    /// CIS as kube-bench scores it.
    Cis,
}

/// How to reach registries: shared by every command that talks to one.
#[derive(Debug, Args)]
pub struct RegistryAccess {
    /// Reach this registry over plain HTTP (repeatable). Every other registry needs HTTPS.
    #[arg(long, value_name = "HOST[:PORT]", value_parser = host_port)]
    pub insecure_registry: Vec<String>,
    /// Registry credentials (docker config.json or containers auth.json format), each used only for its own
    /// registry. Default: $REGISTRY_AUTH_FILE, $XDG_RUNTIME_DIR/containers/auth.json, then ~/.docker/config.json.
    #[arg(long, value_name = "FILE")]
    pub authfile: Option<PathBuf>,
    /// Also trust the CA certificates in this PEM file for registry TLS (repeatable).
    #[arg(long, value_name = "FILE")]
    pub ca_file: Vec<PathBuf>,
}

/// A registry as `HOST[:PORT]`: a URL scheme or path would never match a
/// registry name, so they are refused with the fix.
fn host_port(s: &str) -> Result<String, String> {
    if let Some(rest) = s.strip_prefix("http://").or_else(|| s.strip_prefix("https://")) {
        return Err(format!(
            "give HOST[:PORT], without the scheme: --insecure-registry {}",
            rest.trim_end_matches('/')
        ));
    }
    if s.is_empty() || s.contains('/') || s.contains(char::is_whitespace) {
        return Err(format!("{s:?} is not HOST[:PORT] (for example 127.0.0.1:5000 or registry.local)"));
    }
    Ok(s.to_owned())
}

/// A registry and path prefix (`HOST[:PORT][/PREFIX]`, as kubeadm's
/// imageRepository): a URL scheme is refused with the spelling to use, since
/// `https://host` would otherwise be read as a registry named `https:`.
fn repository(s: &str) -> Result<String, String> {
    for scheme in ["https://", "http://", "docker://"] {
        if let Some(rest) = s.strip_prefix(scheme) {
            let plain = if scheme == "http://" { " (and --insecure-registry HOST[:PORT] for plain HTTP)" } else { "" };
            return Err(format!("give HOST[:PORT][/PREFIX], without {scheme}: {}{plain}", rest.trim_end_matches('/')));
        }
    }
    if s.is_empty() || s.contains(char::is_whitespace) {
        return Err(format!("{s:?} is not HOST[:PORT][/PREFIX] (for example registry.local/k8s)"));
    }
    Ok(s.trim_end_matches('/').to_owned())
}

/// `containerd` subcommands.
#[derive(Debug, Subcommand)]
pub enum ContainerdCommand {
    /// Report every setting that silently turns image verification off. Exit 1 on critical findings.
    #[command(after_help = "\
Example:
  tollgate containerd doctor --config /etc/containerd/config.toml

Checks: the image-verifier plugin disabled; its bin_dir missing or empty (containerd then allows \
every pull); CRI settings that make kubelet pulls fall back to the unverified local path \
(use_local_image_pull, registry.mirrors/configs/auths, max_concurrent_downloads other than 3, \
discard_unpacked_layers, image_pull_with_sync_fs, disable_snapshot_annotations = false); entries \
of bin_dir that are not executable files (containerd then fails every pull); containerd older \
than 2.1 (kubelet pulls are not verified).")]
    Doctor {
        /// containerd's config file.
        #[arg(long, value_name = "FILE", default_value = "/etc/containerd/config.toml")]
        config: PathBuf,
        /// The containerd binary asked for its version (`--version`); skipped when not found.
        #[arg(long, value_name = "BIN", default_value = "containerd")]
        containerd: PathBuf,
    },
    /// Put tollgate into containerd's image-verifier bin_dir and enable the plugin in its config.
    #[command(after_help = "\
Examples:
  tollgate containerd install && systemctl restart containerd
  tollgate containerd install --config /etc/containerd/config.toml \\
    --bin-dir /opt/containerd/image-verifier/bin --dry-run

It copies tollgate-verifier (the small verifier next to this binary) to \
BIN_DIR/tollgate-verifier (mode 0755, atomically), and sets \
[plugins.\"io.containerd.image-verifier.v1.bindir\"] bin_dir in the config, keeping every other \
line and comment (config versions 2, 3 and 4; a missing config is created as version 3). Then it \
runs `containerd doctor` on the result. The verifier reads /etc/tollgate/config.yaml for the \
daemon's socket.

Exit codes: 0 installed with no critical findings, 1 installed but doctor found something, 2 error.")]
    Install(ContainerdInstallArgs),
    /// Write containerd hosts.toml files: mirrors first, the upstream last; verification stays on.
    #[command(after_help = "\
Examples:
  # for registry.k8s.io
  tollgate containerd mirrors --mirror mirror.example.com/k8s
  tollgate containerd mirrors --registry docker.io \\
    --mirror http://10.0.0.5:5000/hub --dry-run

Writes CONFIG_PATH/<registry>/hosts.toml (mode 0644, atomically). containerd must read them: \
[plugins.'io.containerd.cri.v1.images'.registry] config_path = '/etc/containerd/certs.d'. Do not \
use CRI's legacy registry.mirrors instead: it makes kubelet pulls skip the transfer service and \
its image verifiers (containerd doctor reports it).")]
    Mirrors(MirrorsArgs),
}

/// `containerd mirrors` arguments.
#[derive(Debug, Args)]
pub struct MirrorsArgs {
    /// A mirror, tried in the order given: [https://|http://]HOST[:PORT][/PREFIX] (repeatable).
    #[arg(long = "mirror", value_name = "MIRROR", required = true)]
    pub mirrors: Vec<String>,
    /// The upstream registries these mirror (repeatable).
    #[arg(long = "registry", value_name = "HOST", default_value = "registry.k8s.io")]
    pub registries: Vec<String>,
    /// containerd's registry config_path.
    #[arg(long, value_name = "DIR", default_value = "/etc/containerd/certs.d")]
    pub config_path: PathBuf,
    /// CA file for the mirrors' TLS.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<String>,
    /// Skip TLS verification for the mirrors (content is still checked against pinned digests; tags are not).
    #[arg(long)]
    pub skip_verify: bool,
    /// Print the files; write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// `containerd install` arguments.
#[derive(Debug, Args)]
pub struct ContainerdInstallArgs {
    /// containerd's config file (created if missing).
    #[arg(long, value_name = "FILE", default_value = "/etc/containerd/config.toml")]
    pub config: PathBuf,
    /// The verifier directory. Default: the config's bin_dir, else containerd's default.
    #[arg(long, value_name = "DIR")]
    pub bin_dir: Option<PathBuf>,
    /// The daemon socket the verifier should ask; must match `socket` in the tollgate config.
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// The tollgate config the verifier reads.
    #[arg(long, value_name = "FILE", default_value = tollgate_node::config::DEFAULT_CONFIG)]
    pub tollgate_config: PathBuf,
    /// Also turn on NRI with its default validator requiring tollgate's plugin (`tollgate nri`), so
    /// that containers from images already on the node are decided too, and none start while the
    /// plugin is down (pods annotated nri.tollgate.dev/tolerate-missing-plugins: "true" excepted).
    #[arg(long)]
    pub nri: bool,
    /// Print what would change; write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// `serve` arguments; each flag overrides the config file.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The config file. When it is the default and missing, defaults apply.
    #[arg(long, value_name = "FILE", env = "TOLLGATE_CONFIG", default_value = tollgate_node::config::DEFAULT_CONFIG)]
    pub config: PathBuf,
    /// The policy file (native YAML or containers-policy.json).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// The unix socket to listen on.
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Reach this registry over plain HTTP (repeatable); replaces the config's list.
    #[arg(long, value_name = "HOST[:PORT]")]
    pub insecure_registry: Vec<String>,
}

/// `verify-notation` arguments.
#[derive(Debug, Args)]
pub struct VerifyNotationArgs {
    /// The signature envelope.
    #[arg(long, value_name = "FILE")]
    pub signature: PathBuf,
    /// The envelope's media type (application/jose+json).
    #[arg(long, value_name = "TYPE")]
    pub media_type: String,
    /// The signed artifact, REPOSITORY@DIGEST.
    #[arg(long, value_name = "REF@DIGEST")]
    pub artifact: String,
    /// notation's trustpolicy.json (or trustpolicy.oci.json).
    #[arg(long, value_name = "FILE")]
    pub trust_policy: PathBuf,
    /// notation's configuration directory, or its truststore directory.
    #[arg(long, value_name = "DIR")]
    pub trust_store: PathBuf,
    /// An annotation the signed payload must carry with this value (repeatable), as `notation verify --user-metadata`.
    #[arg(long = "user-metadata", value_name = "KEY=VALUE", value_parser = key_value)]
    pub user_metadata: Vec<(String, String)>,
}

/// `KEY=VALUE`, the key not empty.
fn key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("{s:?} is not KEY=VALUE")),
    }
}

/// `manifests` arguments.
#[derive(Debug, Args)]
pub struct ManifestsArgs {
    /// Write one file per part into this directory (created if its parent exists) instead of stdout.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Also generate a ValidatingAdmissionPolicy from the ClusterImagePolicies in this YAML file: every
    /// pod image pinned by digest and under a scope they cover.
    #[arg(long, value_name = "FILE")]
    pub policies: Option<PathBuf>,
    /// Name the admission policy for AdmissionConfiguration's staticManifestsDir (Kubernetes 1.36+),
    /// where the API cannot delete it.
    #[arg(long, requires = "policies")]
    pub static_admission: bool,
    /// Also write the webhook configurations for `tollgate webhook` at this https URL (outside the
    /// cluster, static manifests, tests); `/validate` and `/mutate` are appended.
    #[arg(long, value_name = "URL", requires = "ca_file", conflicts_with = "webhook_service")]
    pub webhook_url: Option<String>,
    /// Also write the in-cluster webhook (Deployment, Service, no API credentials) running --image,
    /// and the configurations that call it through its Service.
    #[arg(long, requires_all = ["ca_file", "image"])]
    pub webhook_service: bool,
    /// The CA that signed the webhook's serving certificate (PEM), for the configurations' caBundle
    /// (`tollgate webhook-cert` writes one).
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// The webhook configurations' timeoutSeconds; run `tollgate webhook` with a smaller
    /// --deadline-seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=30))]
    pub webhook_timeout: u32,
    /// Also write the node agent (a DaemonSet on every node: the verifier installed into containerd,
    /// the daemon, the NRI plugin) and the controller, running this tollgate image, pinned by digest
    /// (REPO@sha256:...).
    #[arg(long, value_name = "IMAGE@DIGEST")]
    pub image: Option<String>,
}

/// `controller` arguments.
#[derive(Debug, Args)]
pub struct ControllerArgs {
    /// The kubeconfig to reach the API server with (its current context); without it, the pod's
    /// ServiceAccount (in-cluster).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// This replica's name in the Lease; default: $POD_NAME, else the host name and process id.
    #[arg(long, value_name = "NAME", env = "POD_NAME")]
    pub identity: Option<String>,
    /// How long a leader that stopped renewing keeps the Lease, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 15, value_parser = clap::value_parser!(u64).range(2..=300))]
    pub lease_seconds: u64,
    /// How often everything is compiled again without a change to the objects, in seconds (Secrets
    /// and ConfigMaps they name are not watched).
    #[arg(long, value_name = "SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub resync_seconds: u64,
}

/// `webhook` arguments.
#[derive(Debug, Args)]
pub struct WebhookArgs {
    /// The node config: registries, credentials, cache, audit log, policy and namespacePolicies.
    /// When it is the default and missing, defaults apply.
    #[arg(long, value_name = "FILE", env = "TOLLGATE_CONFIG", default_value = tollgate_node::config::DEFAULT_CONFIG)]
    pub config: PathBuf,
    /// A compiled policy bundle (`tollgate policy compile --out DIR`, or its ConfigMap mounted):
    /// DIR/policy.yaml and DIR/namespace.NAMESPACE.yaml replace the config's policy and
    /// namespacePolicies (the config's policyBundle).
    #[arg(long, value_name = "DIR", conflicts_with = "kubeconfig")]
    pub policy_bundle: Option<PathBuf>,
    /// Read the compiled bundle from its ConfigMap through the API server of this kubeconfig
    /// (current context), following new versions every reloadSeconds; its identity needs only
    /// `get` on that ConfigMap. For a webhook outside the cluster.
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// The ConfigMap --kubeconfig reads.
    #[arg(
        long,
        value_name = "NAMESPACE/NAME",
        default_value = "tollgate-system/tollgate-policy",
        requires = "kubeconfig"
    )]
    pub configmap: String,
    /// The serving certificate chain (PEM).
    #[arg(long, value_name = "FILE")]
    pub tls_cert: PathBuf,
    /// Its private key (PEM).
    #[arg(long, value_name = "FILE")]
    pub tls_key: PathBuf,
    /// The address to listen on.
    #[arg(long, value_name = "ADDR:PORT", default_value = "0.0.0.0:8443")]
    pub listen: std::net::SocketAddr,
    /// How long one review may take before it is undecidable (HTTP 503); below the configurations'
    /// timeoutSeconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=29))]
    pub deadline_seconds: u64,
    /// Admit, and log, objects of kinds the webhook does not handle, instead of denying them.
    #[arg(long)]
    pub allow_unhandled_kinds: bool,
    /// Reach this registry over plain HTTP (repeatable); replaces the config's list.
    #[arg(long, value_name = "HOST[:PORT]")]
    pub insecure_registry: Vec<String>,
}

/// `webhook-cert` arguments.
#[derive(Debug, Args)]
pub struct WebhookCertArgs {
    /// The directory to write ca.crt, tls.crt and tls.key into (it must exist).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// A name to certify, DNS or IP address (repeatable); replaces the default Service name.
    #[arg(long, value_name = "NAME")]
    pub name: Vec<String>,
    /// How long the certificates are valid, in days.
    #[arg(long, value_name = "DAYS", default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub days: u32,
}

/// `nri` arguments.
#[derive(Debug, Args)]
pub struct NriArgs {
    /// The config file (keys `nri.*` and `socket`). When it is the default and missing, defaults apply.
    #[arg(long, value_name = "FILE", env = "TOLLGATE_CONFIG", default_value = tollgate_node::config::DEFAULT_CONFIG)]
    pub config: PathBuf,
}

/// `policy` subcommands.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Print a complete node policy for official Kubernetes images (registry.k8s.io).
    #[command(after_help = "\
Example:
  tollgate policy default > /etc/tollgate/policy.yaml
  tollgate policy check /etc/tollgate/policy.yaml

registry.k8s.io images must carry Kubernetes' keyless release signature (the built-in trust \
kubernetes-release: krel-trust@k8s-releng-prod.iam.gserviceaccount.com via \
https://accounts.google.com, Fulcio and Rekor from the embedded Sigstore public-good trusted \
root); the control-plane, DNS and kube-proxy repositories accept exactly the catalog's published \
digests; the pod sandbox is exempt by digest; everything else is refused. Add your own images' \
scopes.

A newer trusted_root.json replaces the embedded one without a rebuild: define kubernetes-release \
under trust: with sigstore.trustedRoot.")]
    Default,
    /// Validate a policy, load its keys, and list what each scope requires.
    #[command(after_help = "\
Example:
  tollgate policy check /etc/containers/policy.json

Exits 2 when the file is invalid (the whole file is refused, as containers/image does) or a key \
cannot be loaded. Warnings name scopes that can never match and requirements tollgate denies.")]
    Check {
        /// The policy file (containers-policy.json or native YAML).
        file: PathBuf,
    },
    /// Convert a containers-policy.json to the native format (YAML), naming its trust material, or a
    /// policy of either format to ClusterImagePolicy objects.
    #[command(after_help = "\
Examples:
  tollgate policy import /etc/containers/policy.json \\
    --out /etc/tollgate/policy.yaml
  tollgate policy import --to crd /etc/containers/policy.json \\
    --out policies.yaml

Lossless: exporting the result gives back an equivalent containers-policy.json. signedBy (GPG) \
and signedBaseLayer rules cannot be imported and are named in the error.

With --to crd, each requirement of each docker scope becomes a ClusterImagePolicy (with a \
TrustRoot for a keyless trusted root), keys and certificates inlined, the same decisions as the \
file: what the CRDs cannot say with the same meaning is refused, each rule named (a default \
other than reject, a scope inside another that demands less, Rekor keys on key signatures, GPG, \
per-platform and bundle requirements). The result is checked by compiling it.")]
    Import {
        /// The policy: containers-policy.json (or, with --to crd, native YAML too).
        file: PathBuf,
        /// Write here (mode 0644) instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// What to convert to: the native policy format, or tollgate.dev ClusterImagePolicy objects.
        #[arg(long, value_enum, default_value_t = ImportTarget::Native)]
        to: ImportTarget,
    },
    /// Convert a native policy to containers-policy.json, for CRI-O, Podman and skopeo.
    #[command(after_help = "\
Example:
  tollgate policy export /etc/tollgate/policy.yaml \\
    --out /etc/containers/policy.json

Refuses, naming each rule, when the policy uses what containers-policy.json cannot express: warn \
mode, exemptions, digestAllowlist, sigstoreBundle, perPlatform signatures, key files mixed with \
inline keys in one requirement, and a trusted_root.json as trust (sigstore, kubernetes-release).")]
    Export {
        /// The native policy.
        file: PathBuf,
        /// Write here (mode 0644) instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Compile ClusterImagePolicy and ImagePolicy objects into the node's policy files.
    #[command(after_help = "\
Example:
  tollgate policy compile policies.yaml --out /etc/tollgate/compiled
  # then, in /etc/tollgate/config.yaml:
  #   policyBundle: /etc/tollgate/compiled
  tollgate policy compile policies.yaml --configmap | kubectl apply -f -

An image must satisfy every ClusterImagePolicy whose scopes cover it; images none covers are \
refused. Each ImagePolicy becomes its namespace's part (namespace.NAMESPACE.yaml), which only \
adds requirements. The bundle (policy.yaml and the parts) goes into DIR, or into the ConfigMap \
tollgate-system/tollgate-policy with its hash, for nodes that mount it. This release compiles \
key (inline data), digests, static, single keyless (email subject, inline TrustRoot) and \
notation authorities; the rest are refused, each object named (docs/kubernetes.md). Nothing is \
written unless every object compiles.")]
    Compile {
        /// A YAML stream of tollgate.dev objects (other kinds are skipped).
        file: PathBuf,
        /// The bundle directory to write policy.yaml and namespace.NAMESPACE.yaml into (created if its
        /// parent exists); with --configmap, the file to write the ConfigMap to (default: stdout).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Write the bundle as the ConfigMap tollgate-system/tollgate-policy (its hash as an
        /// annotation), for nodes that mount it (`policyBundle`).
        #[arg(long)]
        configmap: bool,
    },
}

/// What `policy import` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ImportTarget {
    /// The native policy format (YAML).
    Native,
    /// ClusterImagePolicy (and TrustRoot) objects, for `kubectl apply`.
    Crd,
}

/// `components` subcommands.
#[derive(Debug, Subcommand)]
pub enum ComponentsCommand {
    /// Install every entry of a components list; nothing is written unless every entry checks out.
    #[command(after_help = "\
Example list (YAML, or the same in JSON):
  - url: https://dl.k8s.io/v1.36.2/bin/linux/amd64/kubeadm
    hash: sha256:…
    install_path: /usr/local/bin/kubeadm
    mode: \"0755\"
  - url: data:application/json;base64,…
    install_path: /etc/kubernetes/patches/etcd+json.json

hash is mandatory except for data: URLs. With extract: true a tar.gz is unpacked into \
install_path; entries that would escape it (.., absolute paths, outward links) are refused. \
Re-running is a no-op.")]
    Install(InstallArgs),
}

/// `components install` arguments.
#[derive(Debug, Args)]
pub struct InstallArgs {
    /// The components list.
    pub file: PathBuf,
    /// Install under this root instead of / (for images and tests).
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// Fetch and check everything, but write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[cfg(test)]
mod help_tests {
    //! Every command's help, rendered at the widths people use, reads evenly and its examples copy.

    use clap::{CommandFactory, Parser};

    use super::Cli;

    /// Every command below `cmd`, with its full name (`tollgate images lock`).
    fn commands(cmd: &clap::Command, name: String, out: &mut Vec<(String, clap::Command)>) {
        out.push((name.clone(), cmd.clone()));
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            commands(sub, format!("{name} {}", sub.get_name()), out);
        }
    }

    fn all(width: usize) -> Vec<(String, clap::Command)> {
        let mut root = Cli::command().term_width(width).max_term_width(width);
        root.build();
        let mut out = Vec::new();
        commands(&root, "tollgate".into(), &mut out);
        out
    }

    /// The texts we write ourselves: about, long about and after-help.
    fn own_texts(cmd: &clap::Command) -> Vec<String> {
        [cmd.get_long_about(), cmd.get_after_help(), cmd.get_after_long_help()]
            .into_iter()
            .flatten()
            .map(|s| s.to_string())
            .collect()
    }

    /// Flags of `cmd` that take a value, as written on a command line.
    fn value_flags(cmd: &clap::Command) -> Vec<String> {
        let mut flags = Vec::new();
        for arg in cmd.get_arguments().filter(|a| a.get_action().takes_values() && !a.is_positional()) {
            flags.extend(arg.get_long().map(|l| format!("--{l}")));
            flags.extend(arg.get_short().map(|s| format!("-{s}")));
        }
        flags
    }

    /// The preformatted lines of a text (examples, tables: the indented ones), and which of them are
    /// (parts of) tollgate command lines, with any trailing `# comment` dropped.
    fn preformatted(text: &str) -> (Vec<&str>, Vec<&str>) {
        let (mut lines, mut commands) = (Vec::new(), Vec::new());
        let mut continued = false;
        for line in text.lines().filter(|l| l.starts_with(' ')) {
            lines.push(line);
            let command = line.split(" # ").next().unwrap_or_default().trim();
            if continued || command.starts_with("tollgate ") {
                commands.push(command);
            }
            continued = command.ends_with('\\');
        }
        (lines, commands)
    }

    #[test]
    fn help_fits_80_and_100_columns() {
        for width in [80, 100] {
            for (name, cmd) in all(width) {
                let help = cmd.clone().render_long_help().to_string();
                for line in help.lines() {
                    // clap does not wrap its usage line; it is one command, so copying it works.
                    let breakable = line.trim().contains(' ') && !line.starts_with("Usage:");
                    assert!(
                        line.chars().count() <= width || !breakable,
                        "`{name} --help` at {width} columns has a line of {} characters:\n{line}",
                        line.chars().count()
                    );
                }
            }
        }
    }

    /// Prose is one source line per paragraph, so that clap wraps it evenly at any width; a hard break
    /// inside a paragraph leaves a ragged short line (as "refuses\nany\nother content" did).
    #[test]
    fn prose_paragraphs_have_no_hard_line_breaks() {
        for (name, cmd) in all(100) {
            for text in own_texts(&cmd) {
                let lines: Vec<&str> = text.lines().collect();
                for pair in lines.windows(2) {
                    let (a, b) = (pair[0], pair[1]);
                    let prose = |l: &str| !l.is_empty() && !l.starts_with(' ');
                    assert!(
                        !(prose(a) && prose(b) && !a.ends_with(':')),
                        "`{name} --help`: a paragraph breaks between\n{a}\n{b}"
                    );
                }
            }
        }
    }

    /// Each example line is shown as written (clap did not wrap it), and no command line ends in a flag
    /// that takes a value, so pasting a line runs what it says; a long example continues with `\\`.
    #[test]
    fn examples_copy_as_written() {
        let mut seen = 0;
        for width in [80, 100] {
            for (name, cmd) in all(width) {
                let help = cmd.clone().render_long_help().to_string();
                let flags = value_flags(&cmd);
                for text in own_texts(&cmd) {
                    let (lines, commands) = preformatted(&text);
                    for line in lines {
                        assert!(
                            help.lines().any(|l| l == line),
                            "`{name} --help` at {width} columns wraps the example line\n{line}"
                        );
                    }
                    for command in commands {
                        seen += 1;
                        let last = command.trim_end_matches('\\').split_whitespace().last().unwrap_or_default();
                        assert!(
                            !flags.iter().any(|f| f == last),
                            "`{name} --help`: the example line ends in {last}, which takes a value:\n{command}"
                        );
                    }
                }
            }
        }
        assert!(seen > 40, "the examples were found ({seen} command lines)");
    }

    /// Every tollgate command in the help's examples parses: no example names a flag that does not exist
    /// or gives a value the command refuses.
    #[test]
    fn every_example_command_parses() {
        let mut parsed = 0;
        for (name, cmd) in all(100) {
            for text in own_texts(&cmd) {
                let (_, commands) = preformatted(&text);
                let joined = commands.join("\n").replace("\\\n", " ");
                for command in joined.lines().filter(|c| c.starts_with("tollgate ")) {
                    // Shell syntax ends the command: a redirection, `&&`, a pipe.
                    let words: Vec<&str> =
                        command.split_whitespace().take_while(|w| !matches!(*w, ">" | "&&" | "|")).collect();
                    if let Err(e) = Cli::try_parse_from(&words) {
                        panic!("`{name} --help` shows an example that does not parse:\n{command}\n{e}");
                    }
                    parsed += 1;
                }
            }
        }
        assert!(parsed > 30, "the examples were found ({parsed} commands)");
    }

    #[test]
    fn global_options_have_their_own_section() {
        for (name, cmd) in all(100) {
            let help = cmd.clone().render_long_help().to_string();
            let Some(global) = help.find("Global options:") else {
                panic!("`{name} --help` has no global options section")
            };
            let output = help.find("-o, --output").unwrap_or_default();
            assert!(output > global, "`{name} --help` lists --output outside the global options");
        }
    }
}
