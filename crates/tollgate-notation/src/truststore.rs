//! notation's trust stores: `truststore/x509/{ca,signingAuthority,tsa}/NAME/`, a directory of
//! certificate files. As notation-go's `verifier/truststore` loads them:
//! - the store is a real directory, and each entry a regular file (no directories, no symlinks);
//! - each file holds certificates (PEM or DER, one or several);
//! - each certificate is a CA, or a self-signed signing certificate;
//! - in a `tsa` store, each one is a root CA: allowed to sign certificates, self-signed, self-issued;
//! - the store holds at least one certificate.

use std::path::Path;

use crate::certs::{self, CertFacts};

/// The kinds of trust store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreType {
    /// Certificate authorities for `notary.x509` signatures.
    Ca,
    /// Signing authorities for `notary.x509.signingAuthority` signatures.
    SigningAuthority,
    /// Timestamp authorities (RFC 3161 countersignatures).
    Tsa,
}

impl StoreType {
    /// `ca`, `signingAuthority` or `tsa`, as trust policies name them.
    pub fn parse(s: &str) -> Option<StoreType> {
        match s {
            "ca" => Some(StoreType::Ca),
            "signingAuthority" => Some(StoreType::SigningAuthority),
            "tsa" => Some(StoreType::Tsa),
            _ => None,
        }
    }

    /// The directory name.
    pub fn as_str(self) -> &'static str {
        match self {
            StoreType::Ca => "ca",
            StoreType::SigningAuthority => "signingAuthority",
            StoreType::Tsa => "tsa",
        }
    }
}

/// A trust store that does not load, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("trust store {kind}:{name}: {message}")]
pub struct StoreError {
    /// Its type.
    pub kind: &'static str,
    /// Its name.
    pub name: String,
    /// Why.
    pub message: String,
}

/// One entry of a store directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A regular file and its bytes.
    File(String, Vec<u8>),
    /// A directory, symlink or other non-regular file (refused).
    Other(String),
}

/// The certificates (DER) of a store whose entries are `entries`. Pure.
pub fn load(kind: StoreType, name: &str, entries: &[Entry]) -> Result<Vec<Vec<u8>>, StoreError> {
    let err = |message: String| StoreError { kind: kind.as_str(), name: name.to_owned(), message };
    let mut out = Vec::new();
    for entry in entries {
        let (file, bytes) = match entry {
            Entry::File(f, b) => (f, b),
            Entry::Other(f) => {
                return Err(err(format!("{f} is not a regular file (directories or symlinks are not supported)")));
            }
        };
        let ders = certs::read_certificates(bytes)
            .map_err(|e| err(format!("cannot read the certificate file {file}: {e}")))?;
        for der in ders {
            let f: CertFacts = certs::facts(&der).map_err(|e| err(format!("{file}: {e}")))?;
            if !f.is_ca && !f.self_signed {
                return Err(err(format!(
                    "{file}: the certificate with subject {:?} is not a CA certificate or self-signed signing certificate",
                    f.subject
                )));
            }
            if kind == StoreType::Tsa {
                if !(f.can_sign_certs && f.self_signed) {
                    return Err(err(format!(
                        "{file}: the certificate with subject {:?} is not a root CA certificate",
                        f.subject
                    )));
                }
                if !f.self_issued {
                    return Err(err(format!(
                        "{file}: the certificate with subject {:?} is not a root CA certificate: its issuer and subject are not the same",
                        f.subject
                    )));
                }
            }
            out.push(der);
        }
    }
    if out.is_empty() {
        return Err(err("no x509 certificates were found".into()));
    }
    Ok(out)
}

/// Loads `TRUSTSTORE/x509/KIND/NAME/` (TRUSTSTORE is the `truststore` directory of notation's
/// configuration directory). The edge.
pub fn load_dir(root: &Path, kind: StoreType, name: &str) -> Result<Vec<Vec<u8>>, StoreError> {
    let err = |message: String| StoreError { kind: kind.as_str(), name: name.to_owned(), message };
    if name.is_empty() || name.contains(['/', '\\']) || name == "." || name == ".." {
        return Err(err("a store name is one path component".into()));
    }
    let dir = root.join("x509").join(kind.as_str()).join(name);
    let meta = std::fs::symlink_metadata(&dir).map_err(|e| err(format!("{}: {e}", dir.display())))?;
    if !meta.is_dir() {
        return Err(err(format!("{} is not a regular directory (symlinks are not supported)", dir.display())));
    }
    let mut names: Vec<_> =
        std::fs::read_dir(&dir).map_err(|e| err(format!("{}: {e}", dir.display())))?.filter_map(Result::ok).collect();
    names.sort_by_key(std::fs::DirEntry::file_name);
    let mut entries = Vec::new();
    for e in names {
        let file = e.file_name().to_string_lossy().into_owned();
        let meta = std::fs::symlink_metadata(e.path()).map_err(|x| err(format!("{file}: {x}")))?;
        if !meta.is_file() {
            entries.push(Entry::Other(file));
            continue;
        }
        if meta.len() > certs::MAX_FILE_BYTES as u64 {
            return Err(err(format!("{file} is larger than {} bytes", certs::MAX_FILE_BYTES)));
        }
        let bytes = std::fs::read(e.path()).map_err(|x| err(format!("{file}: {x}")))?;
        entries.push(Entry::File(file, bytes));
    }
    load(kind, name, &entries)
}

/// The certificates of a trust policy statement's `trustStores` (`TYPE:NAME`), by type: `ca`,
/// `signingAuthority`, `tsa`. The edge.
pub fn load_for_policy(root: &Path, stores: &[String]) -> Result<[Vec<Vec<u8>>; 3], StoreError> {
    let mut out: [Vec<Vec<u8>>; 3] = Default::default();
    for s in stores {
        let bad = || StoreError { kind: "?", name: s.clone(), message: "not TYPE:NAME".into() };
        let (kind, name) = s.split_once(':').ok_or_else(bad)?;
        let kind = StoreType::parse(kind).ok_or_else(bad)?;
        let slot = match kind {
            StoreType::Ca => 0,
            StoreType::SigningAuthority => 1,
            StoreType::Tsa => 2,
        };
        out[slot].extend(load_dir(root, kind, name)?);
    }
    Ok(out)
}
