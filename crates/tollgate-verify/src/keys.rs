//! Public keys in PEM (`PUBLIC KEY`, SubjectPublicKeyInfo) and signature checks.

use der::Decode as _;
use der::asn1::ObjectIdentifier;
use sha2::Digest as _;
use spki::SubjectPublicKeyInfoRef;

const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

/// The key algorithms tollgate verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyAlgorithm {
    /// ECDSA on P-256.
    EcdsaP256,
    /// ECDSA on P-384.
    EcdsaP384,
    /// RSA, 2048 to 8192 bits, PKCS#1 v1.5.
    Rsa,
    /// Ed25519.
    Ed25519,
}

/// A message digest algorithm named by a signature (CMS, RFC 3161).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlgorithm {
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl HashAlgorithm {
    /// The digest of `data`.
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            HashAlgorithm::Sha256 => sha2::Sha256::digest(data).to_vec(),
            HashAlgorithm::Sha384 => sha2::Sha384::digest(data).to_vec(),
            HashAlgorithm::Sha512 => sha2::Sha512::digest(data).to_vec(),
        }
    }
}

/// A key could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Not PEM, or not a `PUBLIC KEY` block.
    #[error("not a PEM public key: {0}; expected a -----BEGIN PUBLIC KEY----- block")]
    Pem(String),
    /// The DER inside is not a SubjectPublicKeyInfo.
    #[error("malformed public key: {0}")]
    Der(String),
    /// An algorithm or curve tollgate does not verify.
    #[error("unsupported public key algorithm {0}; tollgate accepts ECDSA P-256/P-384, RSA and Ed25519")]
    Unsupported(String),
}

/// A signature over a given digest could not be checked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PrehashError {
    /// It does not verify.
    #[error("the cryptographic signature does not verify over the digest with this key")]
    BadSignature,
    /// The key signs the message itself, not a digest tollgate was given.
    #[error("{0}")]
    Unsupported(&'static str),
}

/// A signature did not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the cryptographic signature does not verify with this key")]
pub struct BadSignature;

/// A parsed public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    algorithm: KeyAlgorithm,
    spki_der: Vec<u8>,
    key_bytes: Vec<u8>,
}

impl PublicKey {
    /// Parses one PEM `PUBLIC KEY` block.
    pub fn from_pem(pem: &[u8]) -> Result<PublicKey, KeyError> {
        let (label, der) = crate::decode_pem(pem).ok_or_else(|| KeyError::Pem("no PEM block found".into()))?;
        if label != "PUBLIC KEY" {
            return Err(KeyError::Pem(format!("found a {label:?} block")));
        }
        PublicKey::from_spki_der(&der)
    }

    /// Parses a DER SubjectPublicKeyInfo.
    pub fn from_spki_der(der: &[u8]) -> Result<PublicKey, KeyError> {
        let spki = SubjectPublicKeyInfoRef::from_der(der).map_err(|e| KeyError::Der(e.to_string()))?;
        let key_bytes = spki
            .subject_public_key
            .as_bytes()
            .ok_or_else(|| KeyError::Der("public key bit string has unused bits".into()))?
            .to_vec();
        let algorithm = match spki.algorithm.oid {
            EC_PUBLIC_KEY => match spki.algorithm.parameters_oid().map_err(|e| KeyError::Der(e.to_string()))? {
                P256 => KeyAlgorithm::EcdsaP256,
                P384 => KeyAlgorithm::EcdsaP384,
                curve => return Err(KeyError::Unsupported(format!("ECDSA curve {curve}"))),
            },
            RSA => KeyAlgorithm::Rsa,
            ED25519 => KeyAlgorithm::Ed25519,
            other => return Err(KeyError::Unsupported(other.to_string())),
        };
        Ok(PublicKey { algorithm, spki_der: der.to_vec(), key_bytes })
    }

    /// The algorithm.
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    /// The DER SubjectPublicKeyInfo.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// Hex SHA-256 of the SubjectPublicKeyInfo: a Rekor log ID, a key fingerprint.
    pub fn fingerprint(&self) -> String {
        hex::encode(sha2::Sha256::digest(&self.spki_der))
    }

    /// Checks `signature` over `message`. ECDSA signatures are ASN.1 DER over
    /// SHA-256 (P-384 also accepts SHA-384, which cosign uses for P-384 keys);
    /// RSA is PKCS#1 v1.5 with SHA-256; Ed25519 signs the message itself. This
    /// is containers/image's fixed choice of SHA-256 for sigstore signatures.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), BadSignature> {
        self.verify_with_hash(message, signature, HashAlgorithm::Sha256).or_else(|e| match self.algorithm {
            KeyAlgorithm::EcdsaP384 => self.verify_with_hash(message, signature, HashAlgorithm::Sha384),
            _ => Err(e),
        })
    }

    /// Checks an ECDSA `signature` (ASN.1 DER) over a message of which only the
    /// SHA-256 `digest` is known, as sigstore-go does when it is given a digest
    /// instead of the artifact. Ed25519 signs the message itself (there is no
    /// digest to check against) and ring verifies RSA only over messages, so
    /// both are refused as unsupported: give the artifact.
    pub fn verify_sha256_prehash(&self, digest: &[u8; 32], signature: &[u8]) -> Result<(), PrehashError> {
        use p256::ecdsa::signature::hazmat::PrehashVerifier as _;
        match self.algorithm {
            KeyAlgorithm::EcdsaP256 => {
                let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(&self.key_bytes)
                    .map_err(|_| PrehashError::BadSignature)?;
                let sig = p256::ecdsa::Signature::from_der(signature).map_err(|_| PrehashError::BadSignature)?;
                key.verify_prehash(digest, &sig).map_err(|_| PrehashError::BadSignature)
            }
            KeyAlgorithm::EcdsaP384 => {
                let key = p384::ecdsa::VerifyingKey::from_sec1_bytes(&self.key_bytes)
                    .map_err(|_| PrehashError::BadSignature)?;
                let sig = p384::ecdsa::Signature::from_der(signature).map_err(|_| PrehashError::BadSignature)?;
                // A P-384 key usually signs SHA-384 hashes, which a SHA-256 digest cannot stand in for.
                key.verify_prehash(digest, &sig).map_err(|_| PrehashError::BadSignature)
            }
            KeyAlgorithm::Ed25519 => {
                Err(PrehashError::Unsupported("Ed25519 signs the artifact itself, not a digest: give the artifact"))
            }
            KeyAlgorithm::Rsa => Err(PrehashError::Unsupported(
                "RSA message signatures are verified over the artifact only: give the artifact",
            )),
        }
    }

    /// Checks `signature` over `message` hashed with exactly `hash` (ECDSA in
    /// ASN.1 DER, RSA PKCS#1 v1.5; Ed25519 ignores `hash`), as a CMS signer
    /// info names it. A pairing ring does not verify (P-256 with SHA-512) fails.
    pub fn verify_with_hash(&self, message: &[u8], signature: &[u8], hash: HashAlgorithm) -> Result<(), BadSignature> {
        use HashAlgorithm as H;
        use ring::signature as s;
        let alg: &'static dyn s::VerificationAlgorithm = match (self.algorithm, hash) {
            (KeyAlgorithm::EcdsaP256, H::Sha256) => &s::ECDSA_P256_SHA256_ASN1,
            (KeyAlgorithm::EcdsaP256, H::Sha384) => &s::ECDSA_P256_SHA384_ASN1,
            (KeyAlgorithm::EcdsaP384, H::Sha256) => &s::ECDSA_P384_SHA256_ASN1,
            (KeyAlgorithm::EcdsaP384, H::Sha384) => &s::ECDSA_P384_SHA384_ASN1,
            (KeyAlgorithm::EcdsaP256 | KeyAlgorithm::EcdsaP384, H::Sha512) => return Err(BadSignature),
            (KeyAlgorithm::Rsa, H::Sha256) => &s::RSA_PKCS1_2048_8192_SHA256,
            (KeyAlgorithm::Rsa, H::Sha384) => &s::RSA_PKCS1_2048_8192_SHA384,
            (KeyAlgorithm::Rsa, H::Sha512) => &s::RSA_PKCS1_2048_8192_SHA512,
            (KeyAlgorithm::Ed25519, _) => &s::ED25519,
        };
        s::UnparsedPublicKey::new(alg, &self.key_bytes).verify(message, signature).map_err(|_| BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use ring::rand::SystemRandom;
    use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _};

    use super::*;

    /// Wraps a raw public key in a PEM SubjectPublicKeyInfo, as keys come on disk.
    pub(crate) fn pem_for(algorithm_der: &[u8], key: &[u8]) -> String {
        use der::Encode as _;
        let bits = der::asn1::BitStringRef::from_bytes(key).unwrap_or_else(|e| panic!("{e}"));
        let alg = der::asn1::AnyRef::try_from(algorithm_der).unwrap_or_else(|e| panic!("{e}"));
        let mut body = Vec::new();
        alg.encode_to_vec(&mut body).unwrap_or_else(|e| panic!("{e}"));
        bits.encode_to_vec(&mut body).unwrap_or_else(|e| panic!("{e}"));
        let spki = der::asn1::AnyRef::new(der::Tag::Sequence, &body).unwrap_or_else(|e| panic!("{e}"));
        let der = spki.to_der().unwrap_or_else(|e| panic!("{e}"));
        der::pem::encode_string("PUBLIC KEY", der::pem::LineEnding::LF, &der).unwrap_or_else(|e| panic!("{e}"))
    }

    // AlgorithmIdentifier DER for P-256 and Ed25519.
    const P256_ALG: &[u8] = &[
        0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d,
        0x03, 0x01, 0x07,
    ];
    const ED25519_ALG: &[u8] = &[0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70];

    #[test]
    fn ecdsa_p256_round_trip_and_tamper() {
        let rng = SystemRandom::new();
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap_or_else(|e| panic!("{e}"));
        let kp = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap_or_else(|e| panic!("{e}"));
        let key = PublicKey::from_pem(pem_for(P256_ALG, kp.public_key().as_ref()).as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(key.algorithm(), KeyAlgorithm::EcdsaP256);
        let sig = kp.sign(&rng, b"payload").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(key.verify(b"payload", sig.as_ref()), Ok(()));
        assert_eq!(key.verify(b"payload!", sig.as_ref()), Err(BadSignature));
        assert_eq!(key.fingerprint().len(), 64);
    }

    #[test]
    fn ed25519_round_trip() {
        let rng = SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap_or_else(|e| panic!("{e}"));
        let kp = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap_or_else(|e| panic!("{e}"));
        let key = PublicKey::from_pem(pem_for(ED25519_ALG, kp.public_key().as_ref()).as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(key.algorithm(), KeyAlgorithm::Ed25519);
        assert_eq!(key.verify(b"m", kp.sign(b"m").as_ref()), Ok(()));
        assert_eq!(key.verify(b"m", kp.sign(b"n").as_ref()), Err(BadSignature));
    }

    #[test]
    fn refuses_non_keys_with_clear_errors() {
        assert!(matches!(PublicKey::from_pem(b"hello"), Err(KeyError::Pem(_))));
        let cert = "-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n";
        assert_eq!(
            PublicKey::from_pem(cert.as_bytes()).err().map(|e| e.to_string()).as_deref(),
            Some("not a PEM public key: found a \"CERTIFICATE\" block; expected a -----BEGIN PUBLIC KEY----- block")
        );
    }
}
