//! Load generator for `tollgate serve`: CLIENTS concurrent clients send
//! REQUESTS verify requests over the daemon's socket, one connection per
//! request like the containerd verifier (one thread each), cycling through DISTINCT digests.
//! Prints one JSON line: requests, errors, seconds, rps, p50/p99/max in µs.
//!   bench-load SOCKET CLIENTS REQUESTS DISTINCT
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods, missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tollgate_node_api::api::VerifyRequest;
use tollgate_node_api::client;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: bench-load SOCKET CLIENTS REQUESTS DISTINCT";
    let socket = std::path::PathBuf::from(args.first().expect(usage));
    let num = |i: usize| args.get(i).expect(usage).parse::<usize>().expect(usage);
    let (clients, requests, distinct) = (num(1), num(2), num(3).max(1));
    let digests: Arc<Vec<String>> = Arc::new(
        (0..distinct).map(|i| tollgate_oci::Digest::sha256_of(format!("bench-{i}").as_bytes()).to_string()).collect(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..clients)
        .map(|_| {
            let (socket, digests, next) = (socket.clone(), digests.clone(), next.clone());
            std::thread::spawn(move || {
                let (mut lat, mut errors) = (Vec::new(), 0usize);
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= requests {
                        break;
                    }
                    let req = VerifyRequest {
                        name: format!("example.com/bench/app{}:v1", n % digests.len()),
                        digest: digests[n % digests.len()].clone(),
                        namespace: None,
                        media_type: None,
                    };
                    let t = Instant::now();
                    match client::verify(&socket, &req, Duration::from_secs(10)) {
                        Ok(_) => lat.push(t.elapsed().as_micros() as u64),
                        Err(_) => errors += 1,
                    }
                }
                (lat, errors)
            })
        })
        .collect();
    let (mut latencies, mut errors) = (Vec::new(), 0);
    for w in workers {
        let (l, e) = w.join().unwrap();
        latencies.extend(l);
        errors += e;
    }
    let seconds = started.elapsed().as_secs_f64();
    let mut lat = latencies;
    lat.sort_unstable();
    let pct =
        |p: f64| lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1))).copied().unwrap_or(0);
    println!(
        "{{\"requests\":{requests},\"errors\":{errors},\"clients\":{clients},\"distinct\":{distinct},\"seconds\":{seconds:.3},\"rps\":{:.0},\"p50_us\":{},\"p99_us\":{},\"max_us\":{}}}",
        lat.len() as f64 / seconds,
        pct(0.50),
        pct(0.99),
        lat.last().copied().unwrap_or(0)
    );
}
