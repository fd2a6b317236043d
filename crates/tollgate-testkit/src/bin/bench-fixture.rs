//! Benchmark fixture: a docker-registry on 127.0.0.1 holding a signed
//! two-platform image, with its key and policy written to DIR, and an
//! in-memory registry serving the same index, signature manifest and
//! signature blob (its policy in DIR/policy-memory.json).
//! Prints `IMAGE REGISTRY MEMORY_REGISTRY` on stdout, then serves until stdin
//! closes (at most 10 minutes).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods, missing_docs)]

use std::io::Write;

use tollgate_oci::Reference;
use tollgate_testkit::memory::{MemoryRegistry, Object};
use tollgate_testkit::sign::{Attached, TestKey, attach};
use tollgate_testkit::{Registry, image};

fn main() {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).expect("usage: bench-fixture DIR"));
    let reg = Registry::start();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let repo = Reference::parse_normalized(&format!("{}/bench/app", reg.addr)).expect("ref");
    let key = TestKey::generate();
    let digest = rt.block_on(async {
        let client = reg.client();
        let d = image::push_index(&client, &repo, "v1", b"bench").await.digest;
        attach(&client, &repo, &d, &[Attached::cosign(&key, &repo.repository(), &d)]).await;
        d
    });
    let memory = rt.block_on(memory_copy(&reg.client(), &repo, &digest));
    std::fs::write(dir.join("key.pub"), key.public_pem()).expect("key");
    // The signature names the docker-registry repository; at the in-memory
    // registry's address the policy says which repository to expect.
    let memory_policy = format!(
        r#"{{"default":[{{"type":"reject"}}],"transports":{{"docker":{{"{}/bench":[{{"type":"sigstoreSigned","keyPath":"key.pub","signedIdentity":{{"type":"exactRepository","dockerRepository":"{}"}}}}]}}}}}}"#,
        memory.addr,
        repo.repository()
    );
    std::fs::write(dir.join("policy-memory.json"), memory_policy).expect("policy");
    let policy = format!(
        r#"{{"default":[{{"type":"reject"}}],"transports":{{"docker":{{"{}/bench":[{{"type":"sigstoreSigned","keyPath":"key.pub","signedIdentity":{{"type":"matchRepository"}}}}]}}}}}}"#,
        reg.addr
    );
    std::fs::write(dir.join("policy.json"), policy).expect("policy");
    println!("{}:v1 {} {}", repo.repository(), reg.addr, memory.addr);
    std::io::stdout().flush().expect("flush");
    tollgate_testkit::serve_until_stdin_closes(std::time::Duration::from_secs(600));
}

/// Serves, from memory, what a cold `tollgate verify` of `repo:v1` fetches:
/// the index (by tag and digest), its `.sig` manifest and signature blobs.
async fn memory_copy(
    client: &tollgate_registry::Client,
    repo: &Reference,
    digest: &tollgate_oci::Digest,
) -> MemoryRegistry {
    let mut objects = std::collections::HashMap::new();
    let index = client.get_manifest(&repo.clone().with_digest(digest.clone())).await.expect("index");
    let object = |m: &tollgate_registry::Manifest| Object {
        media_type: m.media_type.clone(),
        bytes: m.bytes.clone(),
        digest: m.digest.to_string(),
    };
    objects.insert("/v2/bench/app/manifests/v1".to_owned(), object(&index));
    objects.insert(format!("/v2/bench/app/manifests/{digest}"), object(&index));
    let tag = tollgate_oci::manifest::signature_tag(digest);
    let sig_ref = Reference::parse_normalized(&format!("{}:{tag}", repo.repository())).expect("sig ref");
    let sig = client.get_manifest(&sig_ref).await.expect("signature manifest");
    objects.insert(format!("/v2/bench/app/manifests/{tag}"), object(&sig));
    let parsed = tollgate_oci::manifest::ImageManifest::parse(&sig.bytes).expect("signature manifest");
    for layer in &parsed.layers {
        let bytes = client.get_blob(repo, &layer.digest, 1 << 20).await.expect("signature blob");
        objects.insert(
            format!("/v2/bench/app/blobs/{}", layer.digest),
            Object { media_type: "application/octet-stream".into(), bytes, digest: layer.digest.to_string() },
        );
    }
    MemoryRegistry::start(objects)
}
