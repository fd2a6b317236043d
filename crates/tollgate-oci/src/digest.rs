//! Content digests (`algorithm:hex`), as the OCI image spec and go-digest define them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::Digest as _;

/// A digest algorithm registered by the OCI image spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// SHA-256, 64 lowercase hex characters.
    Sha256,
    /// SHA-512, 128 lowercase hex characters.
    Sha512,
}

impl Algorithm {
    /// The name used in digest strings (`sha256`).
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// Length of the hex-encoded value.
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }

    fn hash(self, bytes: &[u8]) -> String {
        match self {
            Algorithm::Sha256 => hex::encode(sha2::Sha256::digest(bytes)),
            Algorithm::Sha512 => hex::encode(sha2::Sha512::digest(bytes)),
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a digest string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DigestError {
    /// No `:` between algorithm and value.
    #[error("invalid digest {input:?}: expected ALGORITHM:HEX, e.g. sha256:<64 hex characters>")]
    MissingSeparator {
        /// The refused input.
        input: String,
    },
    /// The algorithm part does not follow the grammar or is not registered.
    #[error("unsupported digest algorithm {algorithm:?} in {input:?}: tollgate accepts sha256 and sha512")]
    UnsupportedAlgorithm {
        /// The algorithm as written.
        algorithm: String,
        /// The refused input.
        input: String,
    },
    /// The hex part has the wrong length for the algorithm.
    #[error("invalid digest {input:?}: {algorithm} needs {expected} hex characters, found {found}")]
    BadLength {
        /// The algorithm.
        algorithm: Algorithm,
        /// Required length.
        expected: usize,
        /// Actual length.
        found: usize,
        /// The refused input.
        input: String,
    },
    /// The hex part has characters outside `[0-9a-f]` (uppercase is refused, as by go-digest).
    #[error("invalid digest {input:?}: the value must be lowercase hex [0-9a-f]")]
    BadHex {
        /// The refused input.
        input: String,
    },
}

/// Content hashed to something other than the expected digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("digest mismatch: expected {expected}, content hashes to {actual}")]
pub struct DigestMismatch {
    /// The digest the content was supposed to have.
    pub expected: Digest,
    /// The digest the content actually has.
    pub actual: Digest,
}

/// A validated content digest such as `sha256:9f86…`.
///
/// Construction validates the algorithm and the exact hex length, so a
/// `Digest` value is always well-formed and its `Display` is canonical.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

impl Digest {
    /// Parses and validates `algorithm:hex`.
    pub fn parse(input: &str) -> Result<Digest, DigestError> {
        let Some((alg, hex)) = input.split_once(':') else {
            return Err(DigestError::MissingSeparator { input: input.to_owned() });
        };
        let algorithm = match alg {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            _ => {
                return Err(DigestError::UnsupportedAlgorithm { algorithm: alg.to_owned(), input: input.to_owned() });
            }
        };
        if hex.len() != algorithm.hex_len() {
            return Err(DigestError::BadLength {
                algorithm,
                expected: algorithm.hex_len(),
                found: hex.len(),
                input: input.to_owned(),
            });
        }
        if !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(DigestError::BadHex { input: input.to_owned() });
        }
        Ok(Digest { algorithm, hex: hex.to_owned() })
    }

    /// The SHA-256 digest of `bytes`.
    pub fn sha256_of(bytes: &[u8]) -> Digest {
        Digest::of(Algorithm::Sha256, bytes)
    }

    /// The digest of `bytes` under `algorithm`.
    pub fn of(algorithm: Algorithm, bytes: &[u8]) -> Digest {
        Digest { algorithm, hex: algorithm.hash(bytes) }
    }

    /// Checks that `bytes` hash to this digest, with this digest's algorithm.
    pub fn verify(&self, bytes: &[u8]) -> Result<(), DigestMismatch> {
        let actual = Digest::of(self.algorithm, bytes);
        if actual == *self { Ok(()) } else { Err(DigestMismatch { expected: self.clone(), actual }) }
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The lowercase hex value, without the algorithm prefix.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// A streaming hasher with this digest's algorithm, for content too large to hold in memory.
    pub fn hasher(&self) -> Hasher {
        match self.algorithm {
            Algorithm::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        }
    }
}

/// Hashes content piece by piece; [`Hasher::finish`] gives its [`Digest`].
#[derive(Debug, Clone)]
pub enum Hasher {
    /// SHA-256.
    Sha256(sha2::Sha256),
    /// SHA-512.
    Sha512(sha2::Sha512),
}

impl Hasher {
    /// Adds `bytes`.
    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Sha512(h) => h.update(bytes),
        }
    }

    /// The digest of everything added.
    pub fn finish(self) -> Digest {
        match self {
            Hasher::Sha256(h) => Digest { algorithm: Algorithm::Sha256, hex: hex::encode(h.finalize()) },
            Hasher::Sha512(h) => Digest { algorithm: Algorithm::Sha512, hex: hex::encode(h.finalize()) },
        }
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm, self.hex)
    }
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Digest::parse(s)
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY_SHA256: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn computes_known_sha256() {
        assert_eq!(Digest::sha256_of(b"").to_string(), EMPTY_SHA256);
    }

    #[test]
    fn computes_known_sha512_prefix() {
        let d = Digest::of(Algorithm::Sha512, b"");
        assert!(d.to_string().starts_with("sha512:cf83e1357eefb8bd"));
        assert_eq!(d.hex().len(), 128);
    }

    #[test]
    fn parse_round_trips() {
        assert_eq!(Digest::parse(EMPTY_SHA256).map(|d| d.to_string()), Ok(EMPTY_SHA256.to_owned()));
    }

    #[test]
    fn verify_detects_tampering() {
        let d = Digest::sha256_of(b"content");
        let err = d.verify(b"other").err();
        assert_eq!(err.map(|e| e.actual), Some(Digest::sha256_of(b"other")));
    }

    #[test]
    fn error_texts_name_the_input_and_the_fix() {
        let cases = [
            ("sha256", "invalid digest \"sha256\": expected ALGORITHM:HEX, e.g. sha256:<64 hex characters>"),
            ("md5:abc", "unsupported digest algorithm \"md5\" in \"md5:abc\": tollgate accepts sha256 and sha512"),
            ("sha256:abc", "invalid digest \"sha256:abc\": sha256 needs 64 hex characters, found 3"),
        ];
        for (input, want) in cases {
            assert_eq!(Digest::parse(input).err().map(|e| e.to_string()).as_deref(), Some(want));
        }
        let upper = format!("sha256:{}", "A".repeat(64));
        assert_eq!(
            Digest::parse(&upper).err().map(|e| e.to_string()),
            Some(format!("invalid digest {upper:?}: the value must be lowercase hex [0-9a-f]"))
        );
        let mismatch = DigestMismatch { expected: Digest::sha256_of(b"a"), actual: Digest::sha256_of(b"b") };
        assert!(mismatch.to_string().starts_with("digest mismatch: expected sha256:ca978112"));
    }

    #[test]
    fn serde_validates() {
        let ok: Result<Digest, _> = serde_json::from_str(&format!("\"{EMPTY_SHA256}\""));
        assert!(ok.is_ok());
        let bad: Result<Digest, _> = serde_json::from_str("\"sha256:00\"");
        assert!(bad.is_err());
    }
}
