//! Embedded signed certificate timestamps (RFC 6962 §3.3): proof that a CT log
//! saw the precertificate. Pure DER and TLS parsing; signatures checked with the
//! log keys of the trusted root.

use sha2::{Digest as _, Sha256};

use crate::keys::PublicKey;

/// The embedded SCT list extension (1.3.6.1.4.1.11129.2.4.2), DER-encoded OID.
const SCT_LIST_OID: &[u8] = &[0x06, 0x0a, 0x2b, 0x06, 0x01, 0x04, 0x01, 0xd6, 0x79, 0x02, 0x04, 0x02];

/// One SCT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sct {
    /// The log's ID: SHA-256 of its key.
    pub log_id: [u8; 32],
    /// Milliseconds since the epoch.
    pub timestamp: u64,
    /// CT extensions.
    pub extensions: Vec<u8>,
    /// DER signature.
    pub signature: Vec<u8>,
}

/// A DER element: tag, the whole encoding, its content, and the bytes after it.
type Tlv<'a> = (u8, &'a [u8], &'a [u8], &'a [u8]);

/// Splits the first DER element off `b`.
fn tlv(b: &[u8]) -> Result<Tlv<'_>, String> {
    let tag = *b.first().ok_or("DER: truncated")?;
    let first = *b.get(1).ok_or("DER: truncated length")?;
    let (len, hdr) = if first < 0x80 {
        (first as usize, 2)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 {
            return Err("DER: unsupported length".into());
        }
        let bytes = b.get(2..2 + n).ok_or("DER: truncated length")?;
        (bytes.iter().fold(0usize, |a, x| (a << 8) | *x as usize), 2 + n)
    };
    let end = hdr.checked_add(len).ok_or("DER: length overflow")?;
    let content = b.get(hdr..end).ok_or("DER: truncated content")?;
    Ok((tag, &b[..end], content, &b[end..]))
}

fn encode(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes: Vec<u8> = n.to_be_bytes().iter().copied().skip_while(|x| *x == 0).collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

/// The leaf's TBSCertificate with the SCT extension removed (the precertificate
/// the log signed), and the SCT list's TLS bytes.
pub fn precert_tbs(cert_der: &[u8]) -> Result<(Vec<u8>, Vec<u8>), String> {
    let (_, _, cert, _) = tlv(cert_der)?;
    let (tbs_tag, _, tbs, _) = tlv(cert)?;
    let mut rest = tbs;
    let mut out = Vec::new();
    let mut scts = None;
    while !rest.is_empty() {
        let (tag, whole, content, next) = tlv(rest)?;
        if tag == 0xa3 {
            // [3] EXPLICIT Extensions ::= SEQUENCE OF Extension
            let (seq_tag, _, mut exts, _) = tlv(content)?;
            let mut kept = Vec::new();
            while !exts.is_empty() {
                let (_, ext, ext_content, after) = tlv(exts)?;
                if ext_content.starts_with(SCT_LIST_OID) {
                    // Extension ::= SEQUENCE { extnID, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING };
                    // extnValue holds an OCTET STRING with the TLS-encoded list.
                    let (mut t, _, mut c, next_field) = tlv(&ext_content[SCT_LIST_OID.len()..])?;
                    if t == 0x01 {
                        (t, _, c, _) = tlv(next_field)?;
                    }
                    if t != 0x04 {
                        return Err("SCT extension value is not an OCTET STRING".into());
                    }
                    let (inner_tag, _, list, _) = tlv(c)?;
                    if inner_tag != 0x04 {
                        return Err("SCT list is not an OCTET STRING".into());
                    }
                    scts = Some(list.to_vec());
                } else {
                    kept.extend_from_slice(ext);
                }
                exts = after;
            }
            out.extend(encode(0xa3, &encode(seq_tag, &kept)));
        } else {
            out.extend_from_slice(whole);
        }
        rest = next;
    }
    let scts = scts.ok_or("the certificate has no embedded SCTs")?;
    Ok((encode(tbs_tag, &out), scts))
}

/// Parses a TLS SignedCertificateTimestampList.
pub fn parse_list(b: &[u8]) -> Result<Vec<Sct>, String> {
    let u16_at = |b: &[u8], i: usize| -> Result<usize, String> {
        Ok(u16::from_be_bytes([*b.get(i).ok_or("SCT: truncated")?, *b.get(i + 1).ok_or("SCT: truncated")?]) as usize)
    };
    let total = u16_at(b, 0)?;
    let mut list = b.get(2..2 + total).ok_or("SCT list: truncated")?;
    let mut out = Vec::new();
    while !list.is_empty() {
        let len = u16_at(list, 0)?;
        let s = list.get(2..2 + len).ok_or("SCT: truncated")?;
        list = &list[2 + len..];
        if s.first() != Some(&0) {
            continue; // unknown SCT version: ignored, like other verifiers
        }
        let log_id: [u8; 32] = s.get(1..33).and_then(|x| x.try_into().ok()).ok_or("SCT: truncated log id")?;
        let ts: [u8; 8] = s.get(33..41).and_then(|x| x.try_into().ok()).ok_or("SCT: truncated timestamp")?;
        let ext_len = u16_at(s, 41)?;
        let extensions = s.get(43..43 + ext_len).ok_or("SCT: truncated extensions")?.to_vec();
        let p = 43 + ext_len;
        let sig_len = u16_at(s, p + 2)?;
        let signature = s.get(p + 4..p + 4 + sig_len).ok_or("SCT: truncated signature")?.to_vec();
        out.push(Sct { log_id, timestamp: u64::from_be_bytes(ts), extensions, signature });
    }
    Ok(out)
}

/// The bytes a CT log signs for a precertificate entry.
pub fn signed_data(sct: &Sct, issuer_spki_der: &[u8], tbs: &[u8]) -> Vec<u8> {
    let mut d = vec![0u8, 0u8];
    d.extend_from_slice(&sct.timestamp.to_be_bytes());
    d.extend_from_slice(&[0, 1]);
    d.extend_from_slice(&Sha256::digest(issuer_spki_der));
    let n = tbs.len();
    d.extend_from_slice(&[(n >> 16) as u8, (n >> 8) as u8, n as u8]);
    d.extend_from_slice(tbs);
    d.extend_from_slice(&(sct.extensions.len() as u16).to_be_bytes());
    d.extend_from_slice(&sct.extensions);
    d
}

/// Checks that at least one embedded SCT of `leaf`, issued by the holder of
/// `issuer_spki_der`, verifies with one of `logs` (`(log id, key)`).
pub fn verify_embedded(leaf: &[u8], issuer_spki_der: &[u8], logs: &[([u8; 32], &PublicKey)]) -> Result<(), String> {
    let (tbs, list) = precert_tbs(leaf)?;
    let scts = parse_list(&list)?;
    for sct in &scts {
        if let Some((_, key)) = logs.iter().find(|(id, _)| *id == sct.log_id) {
            if key.verify(&signed_data(sct, issuer_spki_der, &tbs), &sct.signature).is_ok() {
                return Ok(());
            }
        }
    }
    Err(format!("none of the {} embedded SCTs verifies with a trusted CT log", scts.len()))
}
