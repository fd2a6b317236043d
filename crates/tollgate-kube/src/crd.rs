//! The `tollgate.dev/v1alpha1` API: `ClusterImagePolicy`, `ImagePolicy` (namespaced: it can only add
//! requirements) and `TrustRoot`, with structural schemas and CEL rules (`x-kubernetes-validations`)
//! for what a schema cannot say. The same rules run client-side through `validate_cel`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// The API group.
pub const GROUP: &str = "tollgate.dev";
/// The API version.
pub const VERSION: &str = "v1alpha1";

/// A reference to a key in a Secret.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// The Secret's name.
    pub name: String,
    /// Its namespace (default: tollgate-system for cluster objects, the object's own for namespaced ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The key in its data.
    pub key: String,
}

/// A reference to a key in a ConfigMap.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapKeyRef {
    /// The ConfigMap's name.
    pub name: String,
    /// Its namespace (default: tollgate-system).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The key in its data.
    pub key: String,
}

/// A public key: inline PEM, or from a Secret.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[x_kube(
    cel,
    validation = Rule::new("has(self.data) != has(self.secretRef)").message("a key has exactly one of data (inline PEM) or secretRef")
)]
#[serde(rename_all = "camelCase")]
pub struct KeyAuthority {
    /// The public key, PEM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 8192))]
    #[x_kube(validation = Rule::new("self.contains('-----BEGIN PUBLIC KEY-----')").message("data is a PEM public key (-----BEGIN PUBLIC KEY-----)"))]
    pub data: Option<String>,
    /// Or the Secret that holds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretKeyRef>,
}

/// A keyless (Fulcio) identity, logged in Rekor.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[x_kube(
    cel,
    validation = Rule::new("has(self.subject) != has(self.subjectRegExp)").message("a keyless identity has exactly one of subject or subjectRegExp")
)]
#[serde(rename_all = "camelCase")]
pub struct KeylessAuthority {
    /// The OIDC issuer, exactly (`https://accounts.google.com`).
    #[schemars(length(max = 512))]
    #[x_kube(validation = Rule::new("self.startsWith('https://')").message("issuer is an https:// URL"))]
    pub issuer: String,
    /// The certificate's subject (email or URI), exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Or a regular expression the whole subject must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_reg_exp: Option<String>,
    /// The `TrustRoot` with Fulcio, Rekor (and CT) keys. Signatures must be logged in Rekor.
    pub trust_root_ref: String,
}

/// A sigstore bundle attached as an OCI referrer (cosign v3).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BundleAuthority {
    /// Who signed it.
    pub keyless: KeylessAuthority,
    /// In-toto predicate types accepted besides cosign's signature predicate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub predicate_types: Vec<String>,
}

/// A Notary Project (notation) signature attached as an OCI referrer, decided by notation's own
/// trust policy.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct NotationAuthority {
    /// notation's `trustpolicy.json`, verbatim (JSON text).
    #[schemars(length(max = 65536))]
    pub trust_policy: String,
    /// The trust stores its statements name, with their certificates.
    #[schemars(length(max = 16))]
    pub trust_stores: Vec<NotationTrustStore>,
    /// Check the signing chain's CRLs online (absent: revocation is not checked, and decisions
    /// say so). The nodes and the webhook fetch them, with no credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_revocation: Option<NotationRevocation>,
}

/// Online revocation checking for a notation authority.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct NotationRevocation {
    /// Seconds each CRL fetch may take (default 5): a CRL that does not arrive in time leaves the
    /// status unknown, which the trust policy's level enforces or logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 30))]
    pub timeout_seconds: Option<u64>,
}

/// One notation trust store: `TYPE:NAME` as the trust policy names it, and its certificates.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct NotationTrustStore {
    /// `ca:NAME`, `signingAuthority:NAME` or `tsa:NAME`.
    #[schemars(length(max = 128))]
    #[x_kube(validation = Rule::new("self.matches('^(ca|signingAuthority|tsa):[A-Za-z0-9_.-]+$')").message("a trust store is ca:NAME, signingAuthority:NAME or tsa:NAME"))]
    pub name: String,
    /// Its certificates, PEM.
    #[schemars(length(min = 1, max = 8), inner(length(max = 16384)))]
    pub certificates: Vec<String>,
}

/// Pass or fail without a signature check.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct StaticAuthority {
    /// `pass` or `fail`.
    #[schemars(length(max = 8))]
    #[x_kube(validation = Rule::new("self in ['pass', 'fail']").message("static.action is pass or fail"))]
    pub action: String,
    /// Said in decisions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// One way an image can be trusted. Exactly one kind per entry.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[x_kube(
    cel,
    validation = Rule::new("[has(self.key), has(self.keyless), has(self.sigstoreBundle), has(self.notation), has(self.digests), has(self.static)].filter(k, k).size() == 1").message("each authority has exactly one of key, keyless, sigstoreBundle, notation, digests or static")
)]
#[serde(rename_all = "camelCase")]
pub struct Authority {
    /// A name for decisions and status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A cosign signature by this key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<KeyAuthority>,
    /// A cosign keyless signature by this identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyless: Option<KeylessAuthority>,
    /// A sigstore bundle by this identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sigstore_bundle: Option<BundleAuthority>,
    /// A notation signature under this trust policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notation: Option<NotationAuthority>,
    /// Exactly these digests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256), inner(length(max = 71)))]
    #[x_kube(validation = Rule::new("self.all(d, d.matches('^sha256:[0-9a-f]{64}$'))").message("digests are sha256:<64 hex>"))]
    pub digests: Option<Vec<String>>,
    /// Pass or fail.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "static")]
    pub static_: Option<StaticAuthority>,
}

/// Which identity a signature must claim (containers-policy.json's `signedIdentity`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SignedIdentity {
    /// `matchRepository` (default), `matchRepoDigestOrExact`, `matchExact`, `exactRepository`, `remapIdentity`.
    #[serde(rename = "type")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new("self in ['matchRepository', 'matchRepoDigestOrExact', 'matchExact', 'exactRepository', 'remapIdentity']").message("signedIdentity.type is matchRepository, matchRepoDigestOrExact, matchExact, exactRepository or remapIdentity"))]
    pub type_: String,
    /// For `exactRepository`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker_repository: Option<String>,
    /// For `remapIdentity`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// For `remapIdentity`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_prefix: Option<String>,
}

/// An image that is allowed by digest whatever the authorities say.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Exemption {
    /// `sha256:…`.
    #[schemars(length(max = 71))]
    #[x_kube(validation = Rule::new("self.matches('^sha256:[0-9a-f]{64}$')").message("an exemption is a digest, sha256:<64 hex>"))]
    pub digest: String,
    /// Why: recorded in every decision it makes.
    pub reason: String,
}

/// Pods that may carry the annotations that switch node enforcement off for them (tollgate's NRI
/// toleration, NRI's `required-plugins`): the webhook and the generated admission policy refuse
/// them on every other pod. A kubelet's static pods need no entry.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct EnforcementOverride {
    /// The pods' namespace.
    #[schemars(length(max = 63))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')").message("namespace is a Kubernetes namespace name"))]
    pub namespace: String,
    /// The pod's (or workload's) name, or a prefix of it followed by `*` (`etcd-*`).
    #[schemars(length(max = 253))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9][-a-z0-9.]*[*]?$')").message("name is a pod name, or a prefix of one followed by * (etcd-*)"))]
    pub name: String,
    /// Why: recorded with every admission it allows.
    #[schemars(length(max = 1024))]
    #[x_kube(validation = Rule::new("self.trim().size() > 0").message("reason says why these pods may switch node enforcement off"))]
    pub reason: String,
}

/// What a policy has done with the object.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PolicyStatus {
    /// The generation the conditions describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, or `Invalid` with the compile error.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The hash of the bundle that holds this object's rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle_hash: Option<String>,
}

/// The CEL rule for image scopes: `HOST[:PORT][/PATH]` or `*.DOMAIN`, as containers-policy.json scopes.
const SCOPE_RULE: &str = r"self.all(s, s.matches('^(\\*\\.[a-z0-9-]+(\\.[a-z0-9-]+)*|[a-z0-9-]+(\\.[a-z0-9-]+)*(:[0-9]+)?(/[a-z0-9._-]+)*)$'))";

macro_rules! policy_spec {
    ($(#[$meta:meta])* $name:ident, $kind:literal, $short:literal, [$($rule:expr),*] $(, $namespaced:ident)?) => {
        $(#[$meta])*
        #[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
        #[kube(
            group = "tollgate.dev",
            version = "v1alpha1",
            kind = $kind,
            shortname = $short,
            status = "PolicyStatus",
            $($namespaced,)?
            cel,
            printcolumn = r#"{"name":"Mode","type":"string","jsonPath":".spec.mode"}"#,
            printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#
        )]
        #[x_kube(cel $(, validation = $rule)*)]
        #[serde(rename_all = "camelCase")]
        pub struct $name {
            /// Image scopes with containers-policy.json semantics: `registry.example.com/team`,
            /// `registry:5000/app`, `*.example.com`. The most specific scope that matches an image decides.
            #[schemars(length(max = 64), inner(length(max = 255)))]
            #[x_kube(validation = Rule::new(SCOPE_RULE).message("each image scope is HOST[:PORT][/PATH] or *.DOMAIN, lower case, as containers-policy.json scopes"))]
            #[x_kube(validation = Rule::new("self.size() > 0").message("images names at least one scope"))]
            pub images: Vec<String>,
            /// Any one of them is enough.
            #[schemars(length(max = 32))]
            #[x_kube(validation = Rule::new("self.size() > 0").message("authorities names at least one way to trust an image"))]
            pub authorities: Vec<Authority>,
            /// The identity signatures must claim (default `matchRepository`).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub signed_identity: Option<SignedIdentity>,
            /// `enforce` (default) or `warn`: allow, and record what would have been denied.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            #[schemars(length(max = 8))]
            #[x_kube(validation = Rule::new("self in ['enforce', 'warn']").message("mode is enforce or warn"))]
            pub mode: Option<String>,
            /// Digests allowed whatever the authorities say.
            #[serde(default, skip_serializing_if = "Vec::is_empty")]
            #[schemars(length(max = 256))]
            pub exemptions: Vec<Exemption>,
            /// Pods that may switch node enforcement off (cluster policies only).
            #[serde(default, skip_serializing_if = "Vec::is_empty")]
            #[schemars(length(max = 64))]
            pub enforcement_overrides: Vec<EnforcementOverride>,
        }
    };
}

policy_spec!(
    /// Cluster-wide image trust.
    ClusterImagePolicySpec,
    "ClusterImagePolicy",
    "cip",
    []
);
policy_spec!(
    /// Image trust for the pods of one namespace. It only adds requirements to what cluster policies
    /// demand there: a namespace admin cannot switch checks off.
    ImagePolicySpec,
    "ImagePolicy",
    "ip",
    [
        Rule::new("!has(self.exemptions)").message(
            "an ImagePolicy cannot exempt: exemptions would relax what cluster policies demand; ask for a ClusterImagePolicy exemption"
        ),
        Rule::new("!has(self.enforcementOverrides)").message(
            "an ImagePolicy cannot allow enforcement overrides: only a ClusterImagePolicy can let pods switch node enforcement off"
        )
    ],
    namespaced
);

/// A sigstore `trusted_root.json` from a ConfigMap (or inline).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[x_kube(
    cel,
    validation = Rule::new("has(self.trustedRootJson) != has(self.configMapRef)").message("sigstore has exactly one of trustedRootJson or configMapRef")
)]
#[serde(rename_all = "camelCase")]
pub struct SigstoreRoot {
    /// The `trusted_root.json` text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trusted_root_json: Option<String>,
    /// Or the ConfigMap key that holds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_ref: Option<ConfigMapKeyRef>,
}

/// Trust material for keyless identities: a sigstore trusted root, or a set of keys. Never fetched
/// from the network (air-gapped clusters are the main users).
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[kube(
    group = "tollgate.dev",
    version = "v1alpha1",
    kind = "TrustRoot",
    shortname = "tr",
    status = "PolicyStatus",
    cel
)]
#[x_kube(
    cel,
    validation = Rule::new("has(self.sigstore) != has(self.keys)").message("a TrustRoot has exactly one of sigstore or keys")
)]
#[serde(rename_all = "camelCase")]
pub struct TrustRootSpec {
    /// A sigstore trusted root (Fulcio, Rekor, CT logs, timestamp authorities).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sigstore: Option<SigstoreRoot>,
    /// Or PEM public keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<Vec<String>>,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use kube::CustomResourceExt as _;
    use serde_json::json;

    use super::*;

    fn spec(authorities: serde_json::Value) -> serde_json::Value {
        json!({"images": ["registry.example.com/team"], "authorities": authorities})
    }

    fn errors(v: &serde_json::Value) -> String {
        match ClusterImagePolicySpec::validate_cel(v, None) {
            Ok(()) => String::new(),
            Err(e) => format!("{e:?}"),
        }
    }

    const PEM: &str = "-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n";
    const DIGEST: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000001";

    #[test]
    fn a_policy_with_one_kind_per_authority_is_valid() {
        let v = spec(json!([
            {"key": {"data": PEM}},
            {"keyless": {"issuer": "https://accounts.google.com", "subject": "a@example.com", "trustRootRef": "public-good"}},
            {"digests": [DIGEST]},
            {"static": {"action": "pass"}},
        ]));
        assert_eq!(errors(&v), "");
    }

    #[test]
    fn each_rule_says_what_is_wrong() {
        for (authorities, message) in [
            (
                json!([{"key": {"data": PEM}, "digests": [DIGEST]}]),
                "exactly one of key, keyless, sigstoreBundle, notation, digests or static",
            ),
            (json!([{}]), "exactly one of key, keyless, sigstoreBundle, notation, digests or static"),
            (json!([{"key": {}}]), "exactly one of data (inline PEM) or secretRef"),
            (json!([{"key": {"data": "not a key"}}]), "data is a PEM public key"),
            (
                json!([{"keyless": {"issuer": "https://i", "trustRootRef": "r"}}]),
                "exactly one of subject or subjectRegExp",
            ),
            (
                json!([{"keyless": {"issuer": "http://i", "subject": "s", "trustRootRef": "r"}}]),
                "issuer is an https:// URL",
            ),
            (json!([{"digests": ["sha256:abc"]}]), "digests are sha256:<64 hex>"),
            (json!([{"static": {"action": "maybe"}}]), "static.action is pass or fail"),
            (json!([]), "authorities names at least one way"),
        ] {
            let e = errors(&spec(authorities.clone()));
            assert!(e.contains(message), "{authorities}: {e}");
        }
        let mut v = spec(json!([{"static": {"action": "pass"}}]));
        v["mode"] = json!("audit");
        assert!(errors(&v).contains("mode is enforce or warn"), "{}", errors(&v));
        v["mode"] = json!("warn");
        assert_eq!(errors(&v), "");
        for bad in
            ["", "Registry.example.com", "registry.example.com/", "*", "*.", "https://r.example/x", "r.example/a b"]
        {
            let v = json!({"images": [bad], "authorities": [{"static": {"action": "pass"}}]});
            assert!(
                errors(&v).contains("each image scope is HOST[:PORT][/PATH] or *.DOMAIN"),
                "{bad:?}: {}",
                errors(&v)
            );
        }
        for good in ["registry.example.com", "registry:5000/ns/app", "*.example.com", "docker.io/library/busybox"] {
            let v = json!({"images": [good], "authorities": [{"static": {"action": "pass"}}]});
            assert_eq!(errors(&v), "", "{good}");
        }
    }

    /// `examples/kubernetes/policies.yaml` parses as the kinds it names and passes their rules.
    #[test]
    fn the_example_policies_are_valid() {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/kubernetes/policies.yaml"))
                .unwrap();
        let mut kinds = Vec::new();
        for doc in serde_yaml_ng::Deserializer::from_str(&text) {
            let v: serde_json::Value = serde::Deserialize::deserialize(doc).unwrap();
            let kind = v["kind"].as_str().unwrap().to_owned();
            match kind.as_str() {
                "ClusterImagePolicy" => {
                    serde_json::from_value::<ClusterImagePolicy>(v).unwrap().validate_cel().unwrap()
                }
                "ImagePolicy" => serde_json::from_value::<ImagePolicy>(v).unwrap().validate_cel().unwrap(),
                "TrustRoot" => serde_json::from_value::<TrustRoot>(v).unwrap().validate_cel().unwrap(),
                other => panic!("{other}"),
            }
            kinds.push(kind);
        }
        assert_eq!(kinds, ["TrustRoot", "ClusterImagePolicy", "ClusterImagePolicy", "ImagePolicy"]);
    }

    #[test]
    fn the_crds_are_structural_and_carry_the_rules() {
        let crd = serde_json::to_value(ClusterImagePolicy::crd()).unwrap();
        assert_eq!(crd["spec"]["group"], GROUP);
        assert_eq!(crd["spec"]["scope"], "Cluster");
        assert_eq!(serde_json::to_value(ImagePolicy::crd()).unwrap()["spec"]["scope"], "Namespaced");
        let version = &crd["spec"]["versions"][0];
        assert_eq!(version["name"], VERSION);
        assert!(version["subresources"]["status"].is_object(), "status is a subresource");
        let text = crd.to_string();
        assert!(text.contains("x-kubernetes-validations") && text.contains("exactly one of key, keyless"), "{text}");
        // Structural: no anyOf/oneOf without types at the top of a property.
        assert!(!text.contains("\"oneOf\""), "{text}");
        let e = ImagePolicySpec::validate_cel(
            &json!({"images": ["r.example"], "authorities": [{"static": {"action": "pass"}}], "exemptions": [{"digest": DIGEST, "reason": "x"}]}),
            None,
        )
        .unwrap_err();
        assert!(format!("{e:?}").contains("an ImagePolicy cannot exempt"), "{e:?}");
        let overrides = |o: serde_json::Value| json!({"images": ["r.example"], "authorities": [{"static": {"action": "pass"}}], "enforcementOverrides": [o]});
        let e = ImagePolicySpec::validate_cel(&overrides(json!({"namespace": "a", "name": "b", "reason": "c"})), None)
            .unwrap_err();
        assert!(format!("{e:?}").contains("an ImagePolicy cannot allow enforcement overrides"), "{e:?}");
        assert_eq!(errors(&overrides(json!({"namespace": "kube-system", "name": "etcd-*", "reason": "r"}))), "");
        for (o, message) in [
            (json!({"namespace": "Kube", "name": "x", "reason": "r"}), "namespace is a Kubernetes namespace name"),
            (json!({"namespace": "ns", "name": "*", "reason": "r"}), "name is a pod name, or a prefix"),
            (json!({"namespace": "ns", "name": "a*b", "reason": "r"}), "name is a pod name, or a prefix"),
            (json!({"namespace": "ns", "name": "x", "reason": " "}), "reason says why"),
        ] {
            let e = errors(&overrides(o.clone()));
            assert!(e.contains(message), "{o}: {e}");
        }
        let tr = serde_json::to_value(TrustRoot::crd()).unwrap();
        assert_eq!(tr["spec"]["scope"], "Cluster");
        let e = TrustRootSpec::validate_cel(&json!({}), None).unwrap_err();
        assert!(format!("{e:?}").contains("exactly one of sigstore or keys"), "{e:?}");
    }
}
