//! Benchmark fixture for `bench/skopeo.sh`: a docker-registry on 127.0.0.1
//! with one single-platform image per case under `REG/bench/CASE:v1`, signed
//! as the case says, and in DIR the keys, the policies and skopeo's
//! configuration (registries.d with sigstore attachments, registries.conf).
//! Cases: `one` (1 valid signature), `unsigned`, `wrongkey`, `keyless`
//! (Fulcio + Rekor stand-ins), `allow8`/`allow32` (the valid signature last,
//! after wrong-key ones), `deny8`/`deny32` (wrong-key signatures only).
//! Prints `REGISTRY` on stdout, then serves until stdin closes (at most 10 minutes).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods, missing_docs)]

use std::io::Write;

use tollgate_oci::{Digest, Reference};
use tollgate_testkit::fulcio::TestFulcio;
use tollgate_testkit::sign::{Attached, TestKey, attach};
use tollgate_testkit::{Registry, image};

const EMAIL: &str = "release@example.com";
const ISSUER: &str = "https://issuer.example.com";

fn main() {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).expect("usage: bench-skopeo-fixture DIR"));
    let reg = Registry::start();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let (key, wrong, fulcio) = (TestKey::generate(), TestKey::generate(), TestFulcio::generate());
    let now = i64::try_from(unix_now()).expect("time");
    let client = reg.client();
    type Sigs = Box<dyn Fn(&str, &Digest) -> Vec<Attached>>;
    let n_wrong_then_good = |n: usize, good: bool| -> Sigs {
        let (key, wrong) = (TestKey::from_pkcs8(key.pkcs8_der()), TestKey::from_pkcs8(wrong.pkcs8_der()));
        Box::new(move |r, d| {
            let mut v: Vec<Attached> = (0..n - usize::from(good)).map(|_| Attached::cosign(&wrong, r, d)).collect();
            if good {
                v.push(Attached::cosign(&key, r, d));
            }
            v
        })
    };
    let cases: Vec<(&str, Sigs)> = vec![
        ("one", n_wrong_then_good(1, true)),
        ("unsigned", Box::new(|_, _| Vec::new())),
        ("wrongkey", n_wrong_then_good(1, false)),
        ("allow8", n_wrong_then_good(8, true)),
        ("deny8", n_wrong_then_good(8, false)),
        ("allow32", n_wrong_then_good(32, true)),
        ("deny32", n_wrong_then_good(32, false)),
    ];
    rt.block_on(async {
        for (name, sigs) in &cases {
            let repo = Reference::parse_normalized(&format!("{}/bench/{name}", reg.addr)).expect("ref");
            let d = image::push_image(&client, &repo, Some("v1"), "amd64", name.as_bytes()).await.digest;
            let s = sigs(&repo.repository(), &d);
            if !s.is_empty() {
                attach(&client, &repo, &d, &s).await;
            }
        }
        let repo = Reference::parse_normalized(&format!("{}/bench/keyless", reg.addr)).expect("ref");
        let d = image::push_image(&client, &repo, Some("v1"), "amd64", b"keyless").await.digest;
        attach(&client, &repo, &d, &[fulcio.cosign(EMAIL, ISSUER, &repo.repository(), &d, now - 30)]).await;
    });
    let write = |name: &str, text: &str| std::fs::write(dir.join(name), text).expect("write");
    write("key.pub", &key.public_pem());
    write("fulcio.pem", &fulcio.ca_pem());
    write("rekor.pub", &fulcio.rekor_pem());
    let scope = format!("{}/bench", reg.addr);
    write(
        "policy.json",
        &format!(
            r#"{{"default":[{{"type":"reject"}}],"transports":{{"docker":{{"{scope}":[{{"type":"sigstoreSigned","keyPath":"{}","signedIdentity":{{"type":"matchRepository"}}}}]}}}}}}"#,
            dir.join("key.pub").display()
        ),
    );
    write(
        "policy-keyless.json",
        &format!(
            r#"{{"default":[{{"type":"reject"}}],"transports":{{"docker":{{"{scope}":[{{"type":"sigstoreSigned","fulcio":{{"caPath":"{}","oidcIssuer":"{ISSUER}","subjectEmail":"{EMAIL}"}},"rekorPublicKeyPath":"{}","signedIdentity":{{"type":"matchRepository"}}}}]}}}}}}"#,
            dir.join("fulcio.pem").display(),
            dir.join("rekor.pub").display()
        ),
    );
    std::fs::create_dir_all(dir.join("registries.d")).expect("registries.d");
    write("registries.d/default.yaml", "default-docker:\n  use-sigstore-attachments: true\n");
    write("registries.conf", &format!("[[registry]]\nlocation = \"{}\"\ninsecure = true\n", reg.addr));
    println!("{}", reg.addr);
    std::io::stdout().flush().expect("flush");
    tollgate_testkit::serve_until_stdin_closes(std::time::Duration::from_secs(600));
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
