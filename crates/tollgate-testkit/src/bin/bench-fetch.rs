//! Benchmark baseline: the registry work of one cold `tollgate verify --digest`
//! and nothing else. A new process fetches the image manifest by digest and, at
//! the same time, the `.sig` manifest and its signature blob, over a fresh
//! connection with tollgate's own registry client (digest checks included), then
//! exits. `bench/verify.sh` times it next to `tollgate verify`: the difference
//! is what tollgate adds (policy, keys, verification, CLI) on top of the
//! requests any verifier has to make.
//!   bench-fetch REGISTRY IMAGE DIGEST
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use tollgate_oci::{Digest, Reference};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [registry, image, digest] = &args[..] else {
        eprintln!("usage: bench-fetch REGISTRY IMAGE DIGEST");
        std::process::exit(2);
    };
    let repo = Reference::parse_normalized(image).expect("image reference");
    let digest = Digest::parse(digest).expect("digest");
    let by_digest = Reference::parse_normalized(&format!("{}@{digest}", repo.repository())).expect("reference");
    let client = tollgate_registry::Client::new(tollgate_registry::ClientConfig {
        insecure_registries: vec![registry.clone()],
        ..Default::default()
    })
    .expect("client");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let (manifest, signatures) =
        rt.block_on(async { tokio::join!(client.get_manifest(&by_digest), client.signature_layers(&repo, &digest)) });
    manifest.expect("manifest");
    assert!(!signatures.expect("signatures").is_empty(), "the fixture image is signed");
}
