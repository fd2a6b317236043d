//! A token service for distribution's `auth.token` mode: it signs ES256
//! JWTs that the real registry verifies against a generated root certificate.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use sha2::Digest as _;

/// The `service` the registry announces.
pub const SERVICE: &str = "tollgate-test-registry";
/// The token issuer the registry trusts.
pub const ISSUER: &str = "tollgate-test-issuer";

/// A running token service. Stops on drop.
pub struct TokenServer {
    addr: String,
    cert_path: PathBuf,
    stop: Arc<AtomicBool>,
    issued: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl TokenServer {
    /// Generates a key and root certificate in `dir` and starts serving.
    pub fn start(dir: &Path) -> TokenServer {
        let key = rcgen::KeyPair::generate().expect("key");
        let params = rcgen::CertificateParams::new(vec!["tollgate-test-token".to_owned()]).expect("params");
        let cert = params.self_signed(&key).expect("cert");
        let cert_path = dir.join("token-root.crt");
        std::fs::write(&cert_path, cert.pem()).expect("write cert");
        let kid = libtrust_key_id(&rcgen::PublicKeyData::subject_public_key_info(&key));
        let rng = ring::rand::SystemRandom::new();
        let signer =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &key.serialize_der(), &rng).expect("signer");

        let (listener, addr) = crate::serve::bind();
        let stop = Arc::new(AtomicBool::new(false));
        let issued = Arc::new(AtomicUsize::new(0));
        let counter = issued.clone();
        let thread = crate::serve::spawn(listener, stop.clone(), move |stream, request_line| {
            let scope = query_param(&request_line, "scope").unwrap_or_default();
            let jwt = sign_token(&signer, &rng, &kid, &scope);
            counter.fetch_add(1, Ordering::Relaxed);
            let body = format!("{{\"token\":\"{jwt}\",\"expires_in\":300}}");
            let mut w = &stream;
            let _ = write!(
                w,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        });
        TokenServer { addr, cert_path, stop, issued, thread: Some(thread) }
    }

    /// The token endpoint URL.
    pub fn realm(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    /// The root certificate the registry trusts.
    pub fn cert_path(&self) -> &Path {
        &self.cert_path
    }

    /// How many tokens were issued so far.
    pub fn issued(&self) -> usize {
        self.issued.load(Ordering::Relaxed)
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn query_param(request_line: &str, name: &str) -> Option<String> {
    let target = request_line.split_whitespace().nth(1)?;
    let query = target.split_once('?')?.1;
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn sign_token(signer: &EcdsaKeyPair, rng: &ring::rand::SystemRandom, kid: &str, scope: &str) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let access: Vec<serde_json::Value> = scope
        .split(' ')
        .filter_map(|s| {
            let mut parts = s.splitn(3, ':');
            let (kind, name, actions) = (parts.next()?, parts.next()?, parts.next()?);
            Some(serde_json::json!({"type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>()}))
        })
        .collect();
    let header = serde_json::json!({"typ": "JWT", "alg": "ES256", "kid": kid});
    let claims = serde_json::json!({
        "iss": ISSUER, "sub": "tollgate-test", "aud": SERVICE,
        "exp": now + 300, "nbf": now - 10, "iat": now, "jti": format!("{now}-{}", scope.len()),
        "access": access,
    });
    let signing_input = format!("{}.{}", b64.encode(header.to_string()), b64.encode(claims.to_string()));
    let sig = signer.sign(rng, signing_input.as_bytes()).expect("sign");
    format!("{signing_input}.{}", b64.encode(sig.as_ref()))
}

/// libtrust's key ID: base32 of the first 240 bits of SHA-256(SPKI DER), in groups of 4.
fn libtrust_key_id(spki_der: &[u8]) -> String {
    let hash = sha2::Sha256::digest(spki_der);
    let encoded = base32(&hash[..30]);
    encoded.as_bytes().chunks(4).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join(":")
}

fn base32(data: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in data {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            out.push(ALPHABET[((buffer >> (bits - 5)) & 31) as usize] as char);
            bits -= 5;
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}
