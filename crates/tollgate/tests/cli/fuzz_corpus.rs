//! Replays the checked-in fuzz seed corpus (`fuzz/corpus/<target>`) with the
//! fuzz targets' own invariants, on the stable toolchain, on every test run.
//! `scripts/fuzz-smoke` runs the real fuzzers.

use std::path::{Path, PathBuf};

use tollgate_controlplane::components::{self, ComponentSpec, PlannedEntry};
use tollgate_controlplane::{Catalog, audit};
use tollgate_oci::{Digest, Reference};

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus").join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "empty corpus {target}");
    files.iter().map(|f| std::fs::read(f).unwrap()).collect()
}

#[test]
fn reference_corpus() {
    for data in corpus("reference") {
        let s = String::from_utf8(data).unwrap();
        if let Ok(r) = Reference::parse_normalized(&s) {
            assert_eq!(Reference::parse_normalized(&r.to_string()).as_ref(), Ok(&r));
            let canonical = tollgate_oci::canonical_domain(r.domain());
            assert_eq!(tollgate_oci::canonical_domain(&canonical), canonical);
        }
        if let Ok(d) = Digest::parse(&s) {
            assert_eq!(d.to_string(), s);
        }
    }
}

#[test]
fn catalog_corpus() {
    for data in corpus("catalog") {
        let c = Catalog::parse(&data, "seed").unwrap();
        assert_eq!(Catalog::parse(c.to_json().as_bytes(), "again").ok().as_ref(), Some(&c));
    }
}

#[test]
fn www_authenticate_corpus() {
    for data in corpus("www_authenticate") {
        assert!(tollgate_registry::auth::parse_challenge(&String::from_utf8(data).unwrap()).is_some());
    }
}

#[test]
fn components_list_corpus() {
    // Seeds are valid lists, except regression inputs (named regression-*), which must only never panic.
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/components_list");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let result = components::parse_list(&data, "seed");
        if path.file_name().unwrap().to_string_lossy().starts_with("regression-") {
            continue;
        }
        let list = result.unwrap();
        for (i, c) in list.iter().enumerate() {
            assert!(c.source(i).is_ok());
        }
    }
}

#[test]
fn static_pod_audit_corpus() {
    for data in corpus("static_pod_audit") {
        let r = audit::audit(&[("seed.yaml".to_owned(), data)], &Catalog::embedded(), None);
        assert_eq!(r.manifests, 1);
    }
}

#[test]
fn tar_extract_corpus_never_plans_outside_the_target() {
    let spec = ComponentSpec {
        url: "file:///s.tgz".into(),
        hash: String::new(),
        install_path: "/opt/x".into(),
        extract: true,
        mode: None,
    };
    let mut accepted = 0;
    for data in corpus("tar_extract") {
        if let Ok(plan) = components::plan(&spec, 0, &data, Path::new("/r")) {
            accepted += 1;
            for e in plan {
                let (PlannedEntry::File { path, .. }
                | PlannedEntry::Dir { path, .. }
                | PlannedEntry::Symlink { path, .. }) = &e;
                assert!(path.starts_with("/r/opt/x"), "{}", path.display());
            }
        }
    }
    assert_eq!(accepted, 1, "only the benign seed is accepted");
}

#[test]
fn containers_policy_corpus_round_trips() {
    for data in corpus("containers_policy") {
        let p = tollgate_policy::native::parse_any(&data, "seed").unwrap();
        if !tollgate_policy::native::is_native(&data) {
            assert_eq!(tollgate_policy::Policy::parse(p.to_json().as_bytes(), "again").as_ref().ok(), Some(&p));
        }
    }
}

#[test]
fn signature_payload_corpus() {
    for data in corpus("signature_payload") {
        assert!(tollgate_verify::payload::Payload::parse(&data).is_ok());
    }
}

#[test]
fn rekor_bundle_corpus_never_verifies_foreign_material() {
    let key = tollgate_verify::PublicKey::from_pem(include_bytes!(
        "../../../../../shared/conformance/containers-image/signature/internal/testdata/rekor.pub"
    ))
    .unwrap();
    for data in corpus("rekor_bundle") {
        let keys = [key.clone()];
        let r = tollgate_verify::rekor::verify_bundle(
            &data,
            &keys,
            tollgate_verify::rekor::Signer::Key(&key),
            b"sig",
            b"payload",
        );
        assert!(r.is_err());
    }
}

#[test]
fn auth_file_corpus() {
    for data in corpus("auth_file") {
        let s = tollgate_registry::credentials::CredentialStore::parse(&data, "seed").unwrap();
        assert!(s.lookup("docker.io/library/busybox").is_some());
    }
}

#[test]
fn oci_manifest_corpus() {
    for data in corpus("oci_manifest") {
        let m = tollgate_oci::manifest::ImageManifest::parse(&data).is_ok();
        let i = tollgate_oci::manifest::ImageIndex::parse(&data).is_ok();
        assert!(m || i);
        let classified = tollgate_oci::media_types::of_manifest(&data, None).unwrap();
        assert_eq!(tollgate_oci::media_types::is_index(&classified), i && !m, "{classified}");
    }
}

#[test]
fn certificates_corpus() {
    for data in corpus("certificates") {
        let key = tollgate_verify::PublicKey::from_pem(&data).is_ok();
        let certs = tollgate_verify::x509::certs_from_pem(&data).is_ok();
        assert!(key || certs);
    }
}

#[test]
fn sigstore_bundle_corpus_parses_and_never_verifies_for_another_identity() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/conformance/sigstore");
    for root in ["public-good/trusted_root.json", "bundle-verify/rekor2-happy-path/trusted_root.json"] {
        let root = std::fs::read(format!("{dir}/{root}")).unwrap();
        let root = tollgate_verify::bundle::TrustedRoot::parse(&root).unwrap();
        for data in corpus("sigstore_bundle") {
            let expected = tollgate_verify::bundle::Expected::Identity {
                san: tollgate_verify::x509::San::Exact("x"),
                issuer: "y",
            };
            let r = tollgate_verify::bundle::verify(
                &data,
                &root,
                tollgate_verify::bundle::Artifact::Bytes(b"a"),
                expected,
                1_795_392_000,
            );
            assert!(r.is_err());
        }
    }
}

#[test]
fn timestamp_corpus_verifies_only_for_the_signature_it_covers() {
    let dir =
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/conformance/sigstore/bundle-verify/rekor2-happy-path");
    let json = |f: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(format!("{dir}/{f}")).unwrap()).unwrap()
    };
    let b64 = |v: &serde_json::Value| tollgate_verify::decode_base64(v.as_str().unwrap()).unwrap();
    let sig = b64(&json("bundle.sigstore.json")["messageSignature"]["signature"]);
    let chain: Vec<Vec<u8>> = json("trusted_root.json")["timestampAuthorities"][0]["certChain"]["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| b64(&c["rawBytes"]))
        .collect();
    let mut verified = 0;
    for data in corpus("timestamp") {
        if let Ok(t) = tollgate_verify::tsa::verify(&data, &sig, &chain) {
            assert_eq!(tollgate_verify::tsa::gen_time_unverified(&data), Ok(t));
            verified += 1;
        }
        assert!(tollgate_verify::tsa::verify(&data, b"other bytes", &chain).is_err());
    }
    assert!(verified >= 1, "the seed timestamp verifies");
}

#[test]
fn node_inputs_corpus() {
    use tollgate_node::{config::NodeConfig, doctor, install, verifier};
    for data in corpus("node_inputs") {
        let (which, rest) = data.split_first().unwrap();
        match which % 5 {
            0 => {
                let args: Vec<String> = String::from_utf8_lossy(rest).split('\0').map(str::to_owned).collect();
                assert!(verifier::is_invocation(&args), "{args:?}");
                assert_eq!(verifier::parse(&args).unwrap().name, "docker.io/library/busybox:1");
            }
            1 => assert!(serde_json::from_slice::<tollgate_node::api::VerifyRequest>(rest).is_ok()),
            2 => assert!(NodeConfig::parse(rest, "seed").is_ok()),
            3 => assert!(doctor::diagnose(std::str::from_utf8(rest).unwrap(), Some(&[])).is_ok()),
            _ => {
                let m = install::merge(Some(std::str::from_utf8(rest).unwrap()), "/v").unwrap();
                assert_eq!(doctor::bin_dir(&m.text).unwrap(), "/v");
            }
        }
    }
}

#[test]
fn harden_inputs_corpus() {
    use tollgate_harden::{accounts, logindefs};
    for data in corpus("harden_inputs") {
        let s = String::from_utf8(data).unwrap();
        assert!(logindefs::parse(Some(&s)).is_ok(), "{s}");
        assert!(accounts::parse_group(&s).is_ok() || accounts::parse_passwd(&s).is_ok() || s.contains("SYS_"), "{s}");
    }
}

/// The NRI seeds are what containerd sends: each complete call decodes, and a create names its
/// image; the oversized frame is refused from its header.
#[test]
fn nri_messages_corpus() {
    use tollgate_nri::{mux, plugin, ttrpc};
    let mut targets = 0;
    for data in corpus("nri_messages") {
        let (which, rest) = data.split_first().unwrap();
        match which % 5 {
            0 => {
                let mut d = mux::Decoder::default();
                d.push(rest);
                while d.next_frame().unwrap().is_some() {}
                assert_eq!(d.pending(), 0);
            }
            4 => {
                let digest = tollgate_node::containerd_images::target_digest(rest, "r.example/app:v1").unwrap();
                assert!(digest.starts_with("sha256:6df11cc2"), "{digest}");
                targets += 1;
            }
            1 => {
                let mut d = ttrpc::Decoder::default();
                d.push(rest);
                assert!(d.next_message().unwrap().is_some());
            }
            2 => {
                let plugin::Call::CreateContainer(c) = plugin::parse_call(1, rest).unwrap() else { panic!("a create") };
                assert_eq!(plugin::target(c.pod.as_ref(), c.container.as_ref()).unwrap().namespace, "shop");
                targets += 1;
            }
            _ => {
                let mut frames = mux::Decoder::default();
                frames.push(&rest[1..]);
                let mut calls = ttrpc::Decoder::default();
                match frames.next_frame() {
                    Err(e) => assert!(e.to_string().contains("more than the"), "{e}"),
                    Ok(first) => {
                        calls.push(&first.unwrap().payload);
                        while let Some(f) = frames.next_frame().unwrap() {
                            calls.push(&f.payload);
                        }
                        while let Some(m) = calls.next_message().unwrap() {
                            match plugin::parse_call(m.stream, &m.body).unwrap() {
                                plugin::Call::CreateContainer(c) => {
                                    plugin::target(c.pod.as_ref(), c.container.as_ref()).unwrap();
                                    targets += 1;
                                }
                                plugin::Call::Validate(c) => {
                                    plugin::target(c.pod.as_ref(), c.container.as_ref()).unwrap();
                                    targets += 1;
                                }
                                plugin::Call::Configure(c) => assert_eq!(c.request_timeout, 2000),
                                other => panic!("{other:?}"),
                            }
                        }
                    }
                }
            }
        }
    }
    assert_eq!(targets, 4, "the create and validate seeds name their image, and containerd's answer its digest");
}

/// The ClusterImagePolicy seeds pass the CRD rules and generate an admission policy.
#[test]
fn kube_objects_corpus() {
    for data in corpus("kube_objects") {
        let text = std::str::from_utf8(&data).unwrap();
        let policies = tollgate_kube::manifests::cluster_policies(text, "seed").unwrap();
        assert!(!policies.is_empty());
        assert!(
            tollgate_kube::manifests::admission_policy(&policies, false).unwrap().contains("ValidatingAdmissionPolicy")
        );
    }
}

/// The notation seeds: certificate files read with a subject notation can match, DNs parse, and the
/// CRL seed lists its certificate (revoked, but not for a signing authority's earlier signature), and
/// the OCSP seed (made by openssl) says its certificate is revoked.
#[test]
fn notation_trust_corpus() {
    use tollgate_notation::{certs, identity};
    for data in corpus("notation_trust") {
        let (which, rest) = data.split_first().unwrap();
        match which % 5 {
            4 => {
                let split = |b: &[u8]| {
                    let n = usize::from(u16::from_be_bytes([b[0], b[1]]));
                    (b[2..2 + n].to_vec(), b[2 + n..].to_vec())
                };
                let (cert, rest) = split(rest);
                let (issuer, crl) = split(&rest);
                // An OCSP response (from openssl) that says revoked, or a CRL that lists the certificate.
                let (now, signed) = (1_767_225_600, Some(1_767_225_000));
                if let Ok(answer) = tollgate_notation::ocsp::answer(&cert, &issuer, &crl, now, signed) {
                    assert_eq!(answer, tollgate_notation::ocsp::Answer::Revoked);
                    continue;
                }
                let listed = |t| tollgate_notation::revocation::listed(&cert, &issuer, &crl, now, t);
                assert_eq!(listed(None), Ok(true));
                assert_eq!(listed(signed), Ok(false));
            }
            0 => {
                let ders = certs::read_certificates(rest).unwrap();
                assert!(ders.iter().all(|d| certs::facts(d).is_ok()));
            }
            1 => {
                let dn = identity::parse_dn(std::str::from_utf8(rest).unwrap()).unwrap();
                assert_eq!(dn.get("ST").map(String::as_str), Some("WA"));
            }
            2 => assert!(tollgate_notation::trustpolicy::parse(rest).is_ok()),
            _ if rest.first() == Some(&0xd2) => {
                assert!(matches!(tollgate_notation::cbor::decode(rest), Ok(tollgate_notation::cbor::Value::Tag(18, _))))
            }
            _ => assert!(serde_json::from_slice::<serde_json::Value>(rest).unwrap()["protected"].is_string()),
        }
    }
}

/// The AdmissionReview seeds parse, and their images are found where their kind keeps the pod spec.
#[test]
fn admission_review_corpus() {
    use tollgate_kube::admission;
    let mut images = 0;
    for data in corpus("admission_review") {
        let r = admission::parse(&data).unwrap();
        let (spec, _) = admission::pod_paths(&r.group, &r.kind).unwrap();
        images += admission::images(&r.object, spec).unwrap().len();
    }
    assert_eq!(images, 3, "the pod seed has an init and a regular container, the CronJob one");
}
