//! The "upstream registry is down" runbook: `mirror` between two real
//! registries, `containerd mirrors`, `systemd image-override`, `bootstrap token`.

use std::os::unix::fs::PermissionsExt as _;

use tollgate_testkit::sign::Attached;
use tollgate_testkit::{Registry, image};

use crate::util::tollgate;
use crate::verify::Setup;

#[test]
fn mirror_copies_platforms_signatures_and_referrer_tags_and_verification_passes_at_the_destination() {
    let s = Setup::new();
    s.attach(&[Attached::cosign(&s.key, &s.repository(), &s.digest)]);
    // An artifact under the OCI 1.1 referrers fallback tag (docker-registry 2.8 has no referrers API).
    let fallback = s.digest.to_string().replacen(':', "-", 1);
    s.rt.block_on(image::push_image(&s.reg.client(), &s.repo, Some(&fallback), "amd64", b"sbom"));
    let dst = Registry::start();
    let to = format!("{}/mirror", dst.addr);
    let insecure = ["--insecure-registry", &s.reg.addr, "--insecure-registry", &dst.addr];
    let app = s.app();
    let mirror = |extra: &[&str]| {
        let mut a = vec!["mirror", "--to", &to, &app];
        a.extend_from_slice(&insecure);
        a.extend_from_slice(extra);
        tollgate(&a)
    };
    let moved = format!("{to}/team/app:v1");
    let policy = s.dir.path().join("mirror-policy.json");
    std::fs::write(
        &policy,
        format!(
            r#"{{"default":[{{"type":"reject"}}],"transports":{{"docker":{{"{to}/team":[{{"type":"sigstoreSigned","keyPath":"trusted.pub",
            "signedIdentity":{{"type":"exactRepository","dockerRepository":"{}/team/app"}}}}]}}}}}}"#,
            s.reg.addr
        ),
    )
    .unwrap();
    let verify =
        || tollgate(&["verify", &moved, "--policy", policy.to_str().unwrap(), "--insecure-registry", &dst.addr]);

    let dry = mirror(&["--dry-run"]);
    assert_eq!(dry.code, 0, "{}{}", dry.stdout, dry.stderr);
    assert!(dry.stdout.starts_with(&format!("would copy {} -> {moved}@{}", s.app(), s.digest)), "{}", dry.stdout);
    assert_ne!(verify().code, 0, "a dry run writes nothing");

    let r = mirror(&["-o", "json"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let c = &r.json()["images"][0];
    assert_eq!(c["digest"], s.digest.to_string(), "digests are unchanged");
    assert_eq!(c["manifests"].as_u64(), Some(5), "index, 2 platforms, signature, fallback-tag artifact: {c}");
    assert!(c["blobsUploaded"].as_u64().unwrap() >= 5, "{c}");
    let artifacts: Vec<&str> = c["artifacts"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    assert_eq!(artifacts, [format!("{fallback}.sig"), fallback.clone()]);
    let v = verify();
    assert_eq!(v.code, 0, "signatures verify at the mirror:\n{}{}", v.stdout, v.stderr);
    assert!(v.stdout.starts_with("ALLOWED"), "{}", v.stdout);

    // Again: everything is already there (this is how an interrupted mirror resumes).
    let again = mirror(&["-o", "json"]).json();
    let c = &again["images"][0];
    assert_eq!((c["blobsUploaded"].as_u64(), c["blobsPresent"].as_u64().unwrap() >= 5), (Some(0), true), "{c}");

    let r = tollgate(&["mirror", "--to", "noregistry", &s.app()]);
    assert!(r.one_line_error(2).contains("must start with a registry host"), "{}", r.stderr);
}

#[test]
fn mirroring_a_version_refuses_unpinned_catalog_images() {
    // Every request stays on 127.0.0.1: the source is another (here: dead) mirror.
    let from = ["--from", "127.0.0.1:1/upstream", "--insecure-registry", "127.0.0.1:1"];
    let mut args = vec!["mirror", "--to", "127.0.0.1:1/k8s", "--kubernetes-version", "v1.32.9"];
    args.extend(from);
    let r = tollgate(&args);
    // kube-proxy has no digest in the embedded catalog: refused before anything is copied.
    let line = r.one_line_error(1);
    assert!(line.contains("kube-proxy") && line.contains("has no known digest"), "{line}");
    // A dry run plans what it can and lists the rest, in kubeadm's layout (TO/coredns, not TO/coredns/coredns).
    args.push("--dry-run");
    let r = tollgate(&args);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let cannot: Vec<&str> = r.stdout.lines().filter(|l| l.starts_with("cannot copy: ")).collect();
    assert_eq!(cannot.len(), 7, "{}", r.stdout);
    assert!(cannot.iter().any(|l| l.contains("kube-proxy") && l.contains("has no known digest")), "{cannot:?}");
    assert!(r.stdout.contains("-> 127.0.0.1:1/k8s/coredns:v1.11.3:"), "{}", r.stdout);
    assert!(
        r.stdout.contains("127.0.0.1:1/upstream/coredns:v1.11.3@sha256:"),
        "--from in kubeadm's layout too: {}",
        r.stdout
    );
    // --catalog alone: the versions that file pins.
    let file = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/catalog-override.json");
    let mut args = vec!["mirror", "--to", "127.0.0.1:1/k8s", "--catalog", file.to_str().unwrap()];
    args.extend(from);
    assert!(tollgate(&args).one_line_error(1).contains("has no known digest"));
    let r = tollgate(&["mirror", "--to", "127.0.0.1:1/k8s"]);
    assert!(r.one_line_error(2).contains("nothing to mirror"), "{}", r.stderr);
}

#[test]
fn containerd_hosts_files_put_mirrors_first() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();
    let r = tollgate(&[
        "containerd",
        "mirrors",
        "--mirror",
        "mirror.example.com/k8s",
        "--mirror",
        "http://10.0.0.5:5000",
        "--config-path",
        path,
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("Do not set CRI's registry.mirrors instead"), "{}", r.stdout);
    let file = dir.path().join("registry.k8s.io/hosts.toml");
    eqnice!(
        "# registry.k8s.io: mirrors first, then the upstream. Written by `tollgate containerd mirrors`.\n\
         # Pulls through these hosts still go through containerd's transfer service and its image verifiers.\n\
         server = \"https://registry.k8s.io\"\n\
         \n[host.\"https://mirror.example.com/v2/k8s\"]\n  capabilities = [\"pull\", \"resolve\"]\n  override_path = true\n\
         \n[host.\"http://10.0.0.5:5000\"]\n  capabilities = [\"pull\", \"resolve\"]\n",
        std::fs::read_to_string(&file).unwrap()
    );
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o644);
    let dry = tollgate(&[
        "containerd",
        "mirrors",
        "--mirror",
        "m.example.com",
        "--registry",
        "docker.io",
        "--config-path",
        path,
        "--dry-run",
    ]);
    assert!(dry.stdout.contains("server = \"https://registry-1.docker.io\""), "{}", dry.stdout);
    assert!(!dir.path().join("docker.io").exists(), "a dry run writes nothing");
}

#[test]
fn image_override_drop_ins_are_pinned_and_revertible() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let img =
        "quay.io/poseidon/kubelet:v1.36.1@sha256:6df11cc2ad9679b1117be34d3a0230add88bc0a08fd7a3ebc26b680575e8de97";
    let base = ["systemd", "image-override", "--unit", "kubelet.service", "--env", "KUBELET_IMAGE", "--dir", d];
    let r = tollgate(&[&base[..], &["--image", img]].concat());
    assert_eq!(r.code, 0, "{}", r.stderr);
    let file = dir.path().join("kubelet.service.d/10-image-override.conf");
    eqnice!(
        format!(
            "# Written by tollgate: kubelet.service runs KUBELET_IMAGE={img}.\n\
             # Undo: tollgate systemd image-override --unit kubelet.service --env KUBELET_IMAGE --revert; systemctl daemon-reload\n\
             [Service]\nEnvironment=KUBELET_IMAGE={img}\n"
        ),
        std::fs::read_to_string(&file).unwrap()
    );
    let tag = tollgate(&[&base[..], &["--image", "quay.io/poseidon/kubelet:v1.36.1"]].concat());
    assert!(tag.one_line_error(2).contains("has no digest"), "{}", tag.stderr);
    let r = tollgate(&[&base[..], &["--revert"]].concat());
    assert!(r.stdout.starts_with("removed "), "{}", r.stdout);
    assert!(!dir.path().join("kubelet.service.d").exists());
    // `--unit kubelet` is systemctl's shorthand for kubelet.service.
    let short = ["systemd", "image-override", "--unit", "kubelet", "--env", "KUBELET_IMAGE", "--dir", d];
    let r = tollgate(&[&short[..], &["--image", img]].concat());
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(std::fs::read_to_string(&file).unwrap().contains("kubelet.service runs KUBELET_IMAGE="));
    assert!(tollgate(&[&short[..], &["--revert"]].concat()).stdout.starts_with("removed "));
}

#[test]
fn bootstrap_token_material_parses_as_kubernetes_objects_and_keeps_the_secret_private() {
    use k8s_openapi::api::core::v1::Secret;
    use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.crt");
    std::fs::write(&ca, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n").unwrap();
    let out = dir.path().join("out");
    let args = [
        "bootstrap",
        "token",
        "--server",
        "https://10.0.0.10:6443",
        "--ca-file",
        ca.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    let r = tollgate(&[&args[..], &["--group", "system:bootstrappers:workers", "-o", "json"]].concat());
    assert_eq!(r.code, 0, "{}", r.stderr);
    let j = r.json();
    let id = j["tokenId"].as_str().unwrap();
    let secret_file = out.join(format!("bootstrap-token-{id}.yaml"));
    let secret: Secret = serde_yaml_ng::from_str(&std::fs::read_to_string(&secret_file).unwrap()).unwrap();
    assert_eq!(secret.type_.as_deref(), Some("bootstrap.kubernetes.io/token"));
    assert_eq!(secret.metadata.namespace.as_deref(), Some("kube-system"));
    let data = secret.string_data.unwrap();
    let value = format!("{}.{}", data["token-id"], data["token-secret"]);
    assert!(tollgate_controlplane::bootstrap::Token::is_valid(&value), "{value}");
    assert_eq!(data["usage-bootstrap-authentication"], "true");
    assert_eq!(data["auth-extra-groups"], "system:bootstrappers:workers");
    assert!(data["expiration"].ends_with('Z'), "--ttl 24h by default");
    assert!(!r.stdout.contains(&data["token-secret"]), "the secret is never printed");
    let rbac = std::fs::read_to_string(out.join("bootstrap-rbac.yaml")).unwrap();
    let bindings: Vec<ClusterRoleBinding> = rbac.split("---\n").map(|d| serde_yaml_ng::from_str(d).unwrap()).collect();
    let roles: Vec<&str> = bindings.iter().map(|b| b.role_ref.name.as_str()).collect();
    assert_eq!(
        roles,
        [
            "system:node-bootstrapper",
            "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
            "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient"
        ]
    );
    let kubeconfig: serde_json::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(out.join("bootstrap-kubelet.conf")).unwrap()).unwrap();
    assert_eq!(kubeconfig["users"][0]["user"]["token"], value);
    assert_eq!(kubeconfig["clusters"][0]["cluster"]["server"], "https://10.0.0.10:6443");
    for (f, mode) in
        [(secret_file, 0o600), (out.join("bootstrap-kubelet.conf"), 0o600), (out.join("bootstrap-rbac.yaml"), 0o644)]
    {
        assert_eq!(std::fs::metadata(&f).unwrap().permissions().mode() & 0o777, mode, "{}", f.display());
    }
    // Two runs, two different tokens (the OS CSPRNG, not a fixed seed).
    let other = tempfile::tempdir().unwrap();
    let r2 = tollgate(&[
        "bootstrap",
        "token",
        "--server",
        "https://x:6443",
        "--ca-file",
        ca.to_str().unwrap(),
        "--out",
        other.path().to_str().unwrap(),
        "-o",
        "json",
    ]);
    assert_ne!(r2.json()["tokenId"], j["tokenId"]);
    let bad = tollgate(&[&args[..], &["--group", "admins"]].concat());
    assert!(bad.one_line_error(2).contains("system:bootstrappers:NAME"));
}

/// The documented check after mirroring: lock against the mirror, with the
/// same catalog. kubeadm (and so `images lock --registry`) looks for CoreDNS at
/// TO/coredns; a mirror that kept TO/coredns/coredns made the lock fail.
#[test]
fn a_mirror_of_a_version_passes_the_lock_check_against_the_mirror() {
    let (src, dst) = (tollgate_testkit::Registry::start(), tollgate_testkit::Registry::start());
    crate::lock::push_v1_37_0(&src);
    let dir = tempfile::tempdir().unwrap();
    let catalog = dir.path().join("site-catalog.json");
    let (from, to) = (format!("{}/k8s", src.addr), format!("{}/k8s", dst.addr));
    let insecure = ["--insecure-registry", src.addr.as_str(), "--insecure-registry", dst.addr.as_str()];
    let mut lock = vec!["images", "lock", "--kubernetes-version", "v1.37.0", "--registry", &from];
    lock.extend(["--out", catalog.to_str().unwrap()]);
    lock.extend(insecure);
    assert_eq!(tollgate(&lock).code, 0, "locked against the source mirror");
    let mut mirror = vec!["mirror", "--to", &to, "--from", &from, "--kubernetes-version", "v1.37.0"];
    mirror.extend(["--catalog", catalog.to_str().unwrap()]);
    mirror.extend(insecure);
    let r = tollgate(&mirror);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains(&format!("-> {to}/coredns:v1.14.6@sha256:")), "kubeadm's layout: {}", r.stdout);
    let check = dir.path().join("check.json");
    let mut again = vec!["images", "lock", "--kubernetes-version", "v1.37.0", "--registry", &to];
    again.extend(["--catalog", catalog.to_str().unwrap(), "--out", check.to_str().unwrap()]);
    again.extend(insecure);
    let r = tollgate(&again);
    assert_eq!(r.code, 0, "the lock against the mirror passes: {}", r.stderr);
    let first: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&catalog).unwrap()).unwrap();
    let second: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&check).unwrap()).unwrap();
    assert_eq!(first["versions"], second["versions"], "the same digests at the mirror");
}
