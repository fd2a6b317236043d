//! The distribution client against a real docker-registry on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::time::Duration;

use tollgate_oci::{Digest, Reference, media_types};
use tollgate_registry::{Client, ClientConfig, RegistryError};
use tollgate_testkit::{Registry, image};

fn reference(s: &str) -> Reference {
    Reference::parse_normalized(s).unwrap()
}

#[tokio::test]
async fn resolves_a_multi_arch_tag_to_its_index_digest() {
    let reg = Registry::start();
    let client = reg.client();
    let repo = reference(&format!("{}/k8s/kube-apiserver", reg.addr));
    let pushed = image::push_index(&client, &repo, "v1.32.9", b"apiserver").await;
    let got = client.get_manifest(&reference(&format!("{}/k8s/kube-apiserver:v1.32.9", reg.addr))).await.unwrap();
    assert_eq!(got.digest, pushed.digest);
    assert_eq!(got.media_type, media_types::OCI_INDEX);
    assert_eq!(got.bytes, pushed.manifest);
    let by_digest = client.get_manifest(&repo.clone().with_digest(pushed.digest.clone())).await.unwrap();
    assert_eq!(by_digest.digest, pushed.digest);
}

#[tokio::test]
async fn bearer_token_auth_against_the_registry_token_mode() {
    let reg = Registry::start_with_token_auth();
    let client = reg.client();
    let repo = reference(&format!("{}/k8s/etcd", reg.addr));
    let pushed = image::push_image(&client, &repo, Some("3.5.16-0"), "amd64", b"etcd").await;
    let fresh = reg.client();
    let got = fresh.get_manifest(&reference(&format!("{}/k8s/etcd:3.5.16-0", reg.addr))).await.unwrap();
    assert_eq!(got.digest, pushed.digest);
    assert!(reg.token_server.as_ref().map(|t| t.issued()).unwrap_or(0) >= 2);
}

#[test]
fn without_a_token_the_registry_refuses() {
    use std::io::{Read, Write};
    let reg = Registry::start_with_token_auth();
    let mut s = std::net::TcpStream::connect(&reg.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /v2/k8s/etcd/manifests/x HTTP/1.0\r\n\r\n").unwrap();
    let mut head = [0u8; 12];
    s.read_exact(&mut head).unwrap();
    assert_eq!(&head[9..12], b"401");
}

#[tokio::test]
async fn unknown_tag_is_not_found_and_not_transient() {
    let reg = Registry::start();
    let err = reg.client().get_manifest(&reference(&format!("{}/k8s/none:v1", reg.addr))).await.unwrap_err();
    assert!(matches!(err, RegistryError::NotFound { .. }), "{err}");
    assert!(!err.is_transient());
}

#[tokio::test]
async fn unreachable_registry_is_transient_and_named() {
    let port = tollgate_testkit::free_port();
    let addr = format!("127.0.0.1:{port}");
    let cfg = ClientConfig {
        insecure_registries: vec![addr.clone()],
        retry_base: Duration::from_millis(1),
        ..Default::default()
    };
    let err = Client::new(cfg).unwrap().get_manifest(&reference(&format!("{addr}/x:1"))).await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(err.to_string().starts_with(&format!("registry {addr} is unreachable: ")), "{err}");
}

#[tokio::test]
async fn https_is_required_unless_listed_insecure() {
    let reg = Registry::start();
    let strict = Client::new(ClientConfig { retry_base: Duration::from_millis(1), ..Default::default() }).unwrap();
    let err = strict.get_manifest(&reference(&format!("{}/x:1", reg.addr))).await.unwrap_err();
    assert!(matches!(err, RegistryError::Tls { .. }), "plain-HTTP registry must fail TLS: {err}");
    assert!(!err.is_transient(), "a TLS failure is not retried");
}

/// The registry serves bytes that do not match the digest it stores them
/// under (its storage was tampered with): the client refuses them.
#[tokio::test]
async fn tampered_registry_content_is_refused() {
    let reg = Registry::start();
    let client = reg.client();
    let repo = reference(&format!("{}/k8s/kube-scheduler", reg.addr));
    let pushed = image::push_image(&client, &repo, Some("v1"), "amd64", b"scheduler").await;
    let hex = pushed.digest.hex();
    let blob = reg.storage_dir().join(format!("docker/registry/v2/blobs/sha256/{}/{hex}/data", &hex[..2]));
    // Still a valid manifest, so the registry serves it; only the bytes differ.
    let mut evil = b"{ ".to_vec();
    evil.extend_from_slice(&pushed.manifest[1..]);
    std::fs::write(&blob, &evil).unwrap();
    let err = client.get_manifest(&reference(&format!("{}/k8s/kube-scheduler:v1", reg.addr))).await.unwrap_err();
    assert!(matches!(err, RegistryError::DigestMismatch { .. }), "{err}");
    let err = client.get_manifest(&repo.clone().with_digest(pushed.digest.clone())).await.unwrap_err();
    assert!(matches!(err, RegistryError::DigestMismatch { .. }), "{err}");
}

#[tokio::test]
async fn oversize_manifest_is_refused() {
    let reg = Registry::start();
    let client = reg.client();
    let repo = reference(&format!("{}/k8s/big", reg.addr));
    let pushed = image::push_image(&client, &repo, Some("v1"), "amd64", b"x").await;
    let small = Client::new(ClientConfig {
        insecure_registries: vec![reg.addr.clone()],
        max_manifest_bytes: (pushed.manifest.len() - 1) as u64,
        ..Default::default()
    })
    .unwrap();
    let err = small.get_manifest(&reference(&format!("{}/k8s/big:v1", reg.addr))).await.unwrap_err();
    assert!(matches!(err, RegistryError::TooLarge { .. }), "{err}");
}

fn stub_client(addr: &str, timeout: Duration) -> Client {
    Client::new(ClientConfig {
        insecure_registries: vec![addr.to_owned()],
        retry_base: Duration::from_millis(5),
        request_timeout: timeout,
        ..Default::default()
    })
    .unwrap()
}

#[tokio::test]
async fn transient_statuses_are_retried_a_bounded_number_of_times() {
    use tollgate_testkit::stub::{Reply, Stub};
    let stub = Stub::start(vec![Reply::Status(503), Reply::Status(503), Reply::Status(404)]);
    let err = stub_client(&stub.addr, Duration::from_secs(5))
        .get_manifest(&reference(&format!("{}/x:1", stub.addr)))
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::NotFound { .. }), "recovered past two 503s to the real answer: {err}");
    assert_eq!(stub.requests(), 3);

    let always = Stub::start(vec![Reply::Status(503)]);
    let err = stub_client(&always.addr, Duration::from_secs(5))
        .get_manifest(&reference(&format!("{}/x:1", always.addr)))
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert_eq!(always.requests(), 3, "attempts are bounded");
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    use tollgate_testkit::stub::{Reply, Stub};
    let stub = Stub::start(vec![Reply::Status(400)]);
    let err = stub_client(&stub.addr, Duration::from_secs(5))
        .get_manifest(&reference(&format!("{}/x:1", stub.addr)))
        .await
        .unwrap_err();
    assert!(!err.is_transient(), "{err}");
    assert_eq!(stub.requests(), 1);
}

#[tokio::test]
async fn a_hanging_registry_times_out() {
    use tollgate_testkit::stub::{Reply, Stub};
    let stub = Stub::start(vec![Reply::Hang]);
    let err = stub_client(&stub.addr, Duration::from_millis(300))
        .get_manifest(&reference(&format!("{}/x:1", stub.addr)))
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(err.to_string().contains("timed out"), "{err}");
}

#[tokio::test]
async fn basic_auth_with_credentials_from_an_auth_file() {
    let reg = Registry::start_with_basic_auth();
    let client = reg.client();
    let repo = reference(&format!("{}/team/app", reg.addr));
    let pushed = image::push_image(&client, &repo, Some("v1"), "amd64", b"private").await;
    let got = client.get_manifest(&reference(&format!("{}/team/app:v1", reg.addr))).await.unwrap();
    assert_eq!(got.digest, pushed.digest);
    let anonymous =
        Client::new(ClientConfig { insecure_registries: vec![reg.addr.clone()], ..Default::default() }).unwrap();
    let err = anonymous.get_manifest(&reference(&format!("{}/team/app:v1", reg.addr))).await.unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized { status: 401, .. }), "{err}");
}

#[tokio::test]
async fn credentials_are_never_sent_to_another_registry() {
    use tollgate_registry::credentials::CredentialStore;
    use tollgate_testkit::stub::{Reply, Stub};
    let stub = Stub::start(vec![Reply::Challenge("Basic realm=\"x\"".into())]);
    let creds = CredentialStore::parse(br#"{"auths":{"other.example.com":{"auth":"dTpzZWNyZXQ="}}}"#, "a").unwrap();
    let client = Client::new(ClientConfig {
        insecure_registries: vec![stub.addr.clone()],
        credentials: creds,
        ..Default::default()
    })
    .unwrap();
    let err = client.get_manifest(&reference(&format!("{}/team/app:v1", stub.addr))).await.unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err}");
    let heads = stub.heads();
    assert_eq!(heads.len(), 1, "no retry with credentials: {heads:?}");
    assert!(!heads[0].to_ascii_lowercase().contains("authorization"), "{}", heads[0]);
}

#[test]
fn chunked_uploads_and_cross_repository_mounts_store_the_same_digest() {
    let reg = Registry::start();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let client = reg.client();
    let a = Reference::parse_normalized(&format!("{}/team/a", reg.addr)).unwrap();
    let b = Reference::parse_normalized(&format!("{}/team/b", reg.addr)).unwrap();
    let bytes: Vec<u8> = (0..10_000u32).flat_map(|i| i.to_le_bytes()).collect();
    rt.block_on(async {
        // 40 000 bytes in 4 096-byte PATCH requests.
        let d = client.put_blob_chunked(&a, &bytes, 4096).await.unwrap();
        assert_eq!(d, Digest::sha256_of(&bytes));
        assert_eq!(client.get_blob(&a, &d, 1 << 20).await.unwrap(), bytes);
        assert!(!client.blob_exists(&b, &d).await.unwrap());
        assert!(client.mount_blob(&b, &d, &a).await.unwrap(), "mounted within one registry");
        assert!(client.blob_exists(&b, &d).await.unwrap());
        let elsewhere = Reference::parse_normalized("example.com/team/c").unwrap();
        assert!(!client.mount_blob(&elsewhere, &d, &a).await.unwrap(), "never across registries");
        assert!(client.referrers(&a, &d).await.unwrap().is_none(), "docker-registry 2.8 has no referrers API");
    });
}

#[test]
fn mirror_streams_large_blobs_through_a_file_in_chunks() {
    use tollgate_registry::mirror::{Mirror, destination};
    let (a, b) = (Registry::start(), Registry::start());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let client =
        Client::new(ClientConfig { insecure_registries: vec![a.addr.clone(), b.addr.clone()], ..Default::default() })
            .unwrap();
    let src = Reference::parse_normalized(&format!("{}/team/app", a.addr)).unwrap();
    rt.block_on(async {
        let pushed = image::push_index(&a.client(), &src, "v1", b"streamed through a temporary file").await;
        let source = Reference::parse_normalized(&format!("{}/team/app:v1", a.addr)).unwrap();
        let dst = destination(&source, &format!("{}/m", b.addr)).unwrap();
        // Every config and layer here is larger than 64 bytes: all take the file-and-chunks path.
        let copied =
            Mirror { client: &client, dry_run: false, chunk_bytes: 64 }.copy_image(&source, &dst).await.unwrap();
        assert_eq!(copied.digest, pushed.digest.to_string());
        assert!(copied.blobs_uploaded >= 4, "{copied:?}");
        let at_b = client
            .get_manifest(&Reference::parse_normalized(&format!("{}/m/team/app:v1", b.addr)).unwrap())
            .await
            .unwrap();
        assert_eq!(at_b.digest, pushed.digest);
        let index = tollgate_oci::manifest::ImageIndex::parse(&at_b.bytes).unwrap();
        for m in &index.manifests {
            let child = client.get_manifest(&dst.clone().with_digest(m.digest.clone())).await.unwrap();
            let parsed = tollgate_oci::manifest::ImageManifest::parse(&child.bytes).unwrap();
            for l in &parsed.layers {
                // get_blob checks the digest: the chunks were reassembled exactly.
                client.get_blob(&dst, &l.digest, 1 << 20).await.unwrap();
            }
        }
    });
}

/// A `.sig` manifest is small, but may list blobs of up to 4 MiB many times:
/// the caps on count and declared bytes are checked before anything is fetched,
/// and a blob listed twice is fetched once.
#[tokio::test]
async fn signature_material_is_capped_before_it_is_fetched_and_fetched_once_per_blob() {
    use tollgate_testkit::hostile::{Action, Hostile, path};
    use tollgate_testkit::sign::{Attached, TestKey, attach};
    let reg = Registry::start();
    let client = reg.client();
    let repo = reference(&format!("{}/team/app", reg.addr));
    let key = TestKey::generate();
    let pushed = image::push_image(&client, &repo, Some("v1"), "amd64", b"app").await;
    let sig = Attached::cosign(&key, &repo.repository(), &pushed.digest);

    // The same small signature listed three times: three layers, one blob fetch.
    attach(&client, &repo, &pushed.digest, &[sig.clone(), sig.clone(), sig.clone()]).await;
    let proxy = Hostile::start(&reg.addr, |_| Action::Forward);
    let through =
        Client::new(ClientConfig { insecure_registries: vec![proxy.addr.clone()], ..Default::default() }).unwrap();
    let proxied = reference(&format!("{}/team/app", proxy.addr));
    let layers = through.signature_layers(&proxied, &pushed.digest).await.unwrap();
    assert_eq!(layers.len(), 3);
    assert!(layers.iter().all(|(_, b)| *b == sig.payload));
    assert_eq!(proxy.heads().iter().filter(|h| path(h).contains("/blobs/")).count(), 1, "{:?}", proxy.heads());

    // More signatures than one decision considers.
    let many = vec![sig.clone(); tollgate_registry::MAX_SIGNATURES + 1];
    attach(&client, &repo, &pushed.digest, &many).await;
    let err = client.signature_layers(&repo, &pushed.digest).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "signatures of {}@{} in registry {}: 65 signatures, more than the 64 one decision considers; refusing them",
            repo.repository(),
            pushed.digest,
            reg.addr
        )
    );
    assert!(!err.is_transient(), "refused content is never failed open");

    // One 4 MiB blob listed three times declares 12 MiB: refused, and not fetched.
    let mut big = sig.clone();
    big.payload = vec![b' '; 4 << 20];
    attach(&client, &repo, &pushed.digest, &[big.clone(), big.clone(), big]).await;
    let before = proxy.heads().len();
    let err = through.signature_layers(&proxied, &pushed.digest).await.unwrap_err();
    assert!(err.to_string().contains("12582912 bytes of signatures, more than the 8388608"), "{err}");
    let blob_gets = proxy.heads()[before..].iter().filter(|h| path(h).contains("/blobs/")).count();
    assert_eq!(blob_gets, 0, "nothing was fetched");
}

/// A layout whose `blobs/sha256` directory is a link could make the verifier
/// read (and hash-check against) files elsewhere; it is refused like a linked blob.
#[test]
fn an_oci_layout_with_a_linked_blobs_directory_is_refused() {
    use tollgate_registry::layout::Layout;
    let real = tempfile::tempdir().unwrap();
    let key = tollgate_testkit::sign::TestKey::generate();
    let digest = image::write_signed_layout(real.path(), "v1", &key, "registry.example.com/demo/hello");
    let linked = tempfile::tempdir().unwrap();
    for f in ["oci-layout", "index.json"] {
        std::fs::copy(real.path().join(f), linked.path().join(f)).unwrap();
    }
    std::fs::create_dir(linked.path().join("blobs")).unwrap();
    std::os::unix::fs::symlink(real.path().join("blobs/sha256"), linked.path().join("blobs/sha256")).unwrap();
    let layout = Layout::open(linked.path(), tollgate_registry::MAX_MANIFEST_BYTES).unwrap();
    let err = layout.blob(&digest, tollgate_registry::MAX_MANIFEST_BYTES).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("blobs/sha256 in {}: is a symbolic link; refusing to follow it", linked.path().display())
    );
    let direct = Layout::open(real.path(), tollgate_registry::MAX_MANIFEST_BYTES).unwrap();
    assert!(direct.blob(&digest, tollgate_registry::MAX_MANIFEST_BYTES).is_ok());
}
