//! A serving certificate for the webhook without cert-manager: a fresh CA (kept only as its
//! certificate: it signs this one certificate and its key is dropped) and a certificate for the
//! names the API server calls the webhook by.

/// The PEM files of a generated serving certificate.
#[derive(Debug, Clone)]
pub struct ServingCert {
    /// The CA certificate: the configurations' `caBundle` (`tollgate manifests --ca-file`).
    pub ca_pem: String,
    /// The serving certificate.
    pub cert_pem: String,
    /// Its private key (P-256, PKCS#8).
    pub key_pem: String,
}

/// Why a certificate could not be made.
#[derive(Debug, thiserror::Error)]
#[error("cannot make the serving certificate: {0}")]
pub struct CertError(String);

/// The name the API server verifies when it calls the webhook through its Service.
pub const SERVICE_NAME: &str = "tollgate-webhook.tollgate-system.svc";

/// A CA and a serving certificate for `names` (DNS names, or IP addresses), valid from `now` (Unix
/// seconds) for `days` days. Randomness comes from the system (the key pairs).
pub fn serving_cert(names: &[String], now: i64, days: u32) -> Result<ServingCert, CertError> {
    let e = |e: rcgen::Error| CertError(e.to_string());
    if names.is_empty() {
        return Err(CertError("no name to certify".into()));
    }
    let from = time::OffsetDateTime::from_unix_timestamp(now).map_err(|x| CertError(x.to_string()))?;
    let until = from + time::Duration::days(i64::from(days));
    let ca_key = rcgen::KeyPair::generate().map_err(e)?;
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(e)?;
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    ca.distinguished_name.push(rcgen::DnType::CommonName, "tollgate webhook CA");
    ca.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
    ca.not_before = from;
    ca.not_after = until;
    let ca_cert = ca.self_signed(&ca_key).map_err(e)?;
    let issuer = rcgen::Issuer::from_params(&ca, &ca_key);
    let key = rcgen::KeyPair::generate().map_err(e)?;
    let mut leaf = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(e)?;
    leaf.distinguished_name.push(rcgen::DnType::CommonName, names[0].as_str());
    leaf.subject_alt_names = names
        .iter()
        .map(|n| match n.parse::<std::net::IpAddr>() {
            Ok(ip) => Ok(rcgen::SanType::IpAddress(ip)),
            Err(_) => n.clone().try_into().map(rcgen::SanType::DnsName).map_err(e),
        })
        .collect::<Result<_, _>>()?;
    leaf.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    leaf.not_before = from;
    leaf.not_after = until;
    let cert = leaf.signed_by(&key, &issuer).map_err(e)?;
    Ok(ServingCert { ca_pem: ca_cert.pem(), cert_pem: cert.pem(), key_pem: key.serialize_pem() })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_certificate_loads_as_the_webhook_serves_it_and_names_what_it_was_asked_for() {
        let c = serving_cert(&[SERVICE_NAME.to_owned(), "127.0.0.1".to_owned()], 1_767_225_600, 365).unwrap();
        let dir = tempfile::tempdir().unwrap();
        #[allow(clippy::disallowed_methods)]
        {
            std::fs::write(dir.path().join("tls.crt"), &c.cert_pem).unwrap();
            std::fs::write(dir.path().join("tls.key"), &c.key_pem).unwrap();
        }
        let files = crate::TlsFiles { cert: dir.path().join("tls.crt"), key: dir.path().join("tls.key") };
        let server = files.load().unwrap();
        // A TLS handshake in memory, as the API server makes it: the CA as the only root, the
        // Service's name as the server name. Another name fails.
        assert_eq!(handshake(&server, &c.ca_pem, SERVICE_NAME), Ok(()));
        assert!(handshake(&server, &c.ca_pem, "other.tollgate-system.svc").is_err());
        assert!(serving_cert(&[], 0, 1).is_err());
    }

    fn handshake(server: &std::sync::Arc<rustls::ServerConfig>, ca_pem: &str, name: &str) -> Result<(), String> {
        use rustls::pki_types::pem::PemObject as _;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(rustls::pki_types::CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap()).unwrap();
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let client_cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from(name.to_owned()).unwrap();
        let mut client = rustls::ClientConnection::new(std::sync::Arc::new(client_cfg), name).unwrap();
        let mut srv = rustls::ServerConnection::new(server.clone()).unwrap();
        for _ in 0..10 {
            let mut buf = Vec::new();
            client.write_tls(&mut buf).map_err(|e| e.to_string())?;
            srv.read_tls(&mut &buf[..]).map_err(|e| e.to_string())?;
            srv.process_new_packets().map_err(|e| e.to_string())?;
            let mut buf = Vec::new();
            srv.write_tls(&mut buf).map_err(|e| e.to_string())?;
            client.read_tls(&mut &buf[..]).map_err(|e| e.to_string())?;
            client.process_new_packets().map_err(|e| e.to_string())?;
            if !client.is_handshaking() && !srv.is_handshaking() {
                return Ok(());
            }
        }
        Err("the handshake did not finish".into())
    }
}
