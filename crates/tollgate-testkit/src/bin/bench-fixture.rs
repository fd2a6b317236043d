//! Benchmark fixture: a docker-registry on 127.0.0.1 holding a signed
//! two-platform image, with its key and policy written to DIR.
//! Prints `IMAGE REGISTRY` on stdout, then serves until stdin closes (at most 10 minutes).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods, missing_docs)]

use std::io::{BufRead, Write};
use std::time::{Duration, Instant};

use tollgate_oci::Reference;
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
    let _ = digest;
    std::fs::write(dir.join("key.pub"), key.public_pem()).expect("key");
    let policy = format!(
        r#"{{"default":[{{"type":"reject"}}],"transports":{{"docker":{{"{}/bench":[{{"type":"sigstoreSigned","keyPath":"key.pub","signedIdentity":{{"type":"matchRepository"}}}}]}}}}}}"#,
        reg.addr
    );
    std::fs::write(dir.join("policy.json"), policy).expect("policy");
    println!("{}:v1 {}", repo.repository(), reg.addr);
    std::io::stdout().flush().expect("flush");
    let deadline = Instant::now() + Duration::from_secs(600);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        while std::io::stdin().lock().read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
            line.clear();
        }
        let _ = tx.send(());
    });
    while Instant::now() < deadline && rx.recv_timeout(Duration::from_millis(200)).is_err() {}
}
