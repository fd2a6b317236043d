//! Transparency-log proofs: RFC 3339 times, RFC 6962 Merkle inclusion proofs
//! and signed-note checkpoints. Pure functions over bytes.

use sha2::{Digest as _, Sha256};

use crate::keys::PublicKey;

/// Parses an RFC 3339 UTC time (`2022-12-31T23:59:59.999Z`) to Unix milliseconds.
pub fn rfc3339_millis(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d, h, mi, se) = (num(0..4)?, num(5..7)?, num(8..10)?, num(11..13)?, num(14..16)?, num(17..19)?);
    let rest = &s[19..];
    let (frac, tz) = match rest.strip_prefix('.') {
        Some(r) => {
            let end = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
            let digits = &r[..end];
            let ms = format!("{digits:0<3}");
            (ms.get(..3)?.parse::<i64>().ok()?, &r[end..])
        }
        None => (0, rest),
    };
    if tz != "Z" {
        return None;
    }
    unix_millis([y, mo, d, h, mi, se], frac)
}

/// A Unix time (seconds) as RFC 3339 UTC, e.g. `2025-06-12T12:02:20Z`; the number itself when it is
/// out of the calendar's range. What people read in reasons and reports.
pub fn format_rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| unix.to_string())
}

/// `[year, month, day, hour, minute, second]` UTC plus milliseconds as Unix
/// milliseconds; `None` when a field is out of range.
pub(crate) fn unix_millis([y, mo, d, h, mi, se]: [i64; 6], ms: i64) -> Option<i64> {
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 || !(0..1000).contains(&ms) {
        return None;
    }
    // Days from civil (Howard Hinnant).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * (mo + if mo > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400 + h * 3_600 + mi * 60 + se) * 1_000) + ms)
}

/// SHA-256 of a Merkle leaf: `0x00 ‖ data`.
pub fn leaf_hash(data: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

fn node_hash(left: &[u8], right: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root implied by an RFC 6962/9162 inclusion proof, or why it is malformed.
pub fn root_from_inclusion_proof(index: u64, size: u64, leaf: [u8; 32], proof: &[Vec<u8>]) -> Result<[u8; 32], String> {
    if index >= size {
        return Err(format!("leaf index {index} is not below tree size {size}"));
    }
    let inner = (64 - (index ^ (size - 1)).leading_zeros()) as usize;
    let border = (index >> inner).count_ones() as usize;
    if proof.len() != inner + border {
        return Err(format!("inclusion proof has {} hashes, expected {}", proof.len(), inner + border));
    }
    if proof.iter().any(|h| h.len() != 32) {
        return Err("inclusion proof hash is not 32 bytes".into());
    }
    let mut res = leaf;
    for (i, h) in proof[..inner].iter().enumerate() {
        res = if (index >> i) & 1 == 0 { node_hash(&res, h) } else { node_hash(h, &res) };
    }
    for h in &proof[inner..] {
        res = node_hash(h, &res);
    }
    Ok(res)
}

/// A parsed checkpoint (signed note): origin, tree size, root hash, signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The signed text: every line up to the blank line, each ending in `\n`.
    pub body: String,
    /// The log origin (first line).
    pub origin: String,
    /// Tree size.
    pub size: u64,
    /// Root hash.
    pub root: Vec<u8>,
    /// `(name, key hint, signature)` per signature line.
    pub signatures: Vec<(String, [u8; 4], Vec<u8>)>,
}

/// Parses a signed note `origin\nsize\nroot\n[extra]\n\n— name b64(hint‖sig)\n…`.
pub fn parse_checkpoint(text: &str) -> Result<Checkpoint, String> {
    let (body, sigs) = text.split_once("\n\n").ok_or("checkpoint has no blank line before its signatures")?;
    let mut lines = body.split('\n');
    let origin = lines.next().filter(|o| !o.is_empty()).ok_or("checkpoint has no origin")?.to_owned();
    let size = lines.next().and_then(|s| s.parse().ok()).ok_or("checkpoint has no tree size")?;
    let root = lines
        .next()
        .and_then(|r| crate::decode_base64(r).ok())
        .filter(|r| r.len() == 32)
        .ok_or("checkpoint has no root hash")?;
    let mut signatures = Vec::new();
    for line in sigs.lines().filter(|l| !l.is_empty()) {
        let rest = line.strip_prefix("\u{2014} ").ok_or("checkpoint signature line does not start with an em dash")?;
        let (name, b64) = rest.rsplit_once(' ').ok_or("checkpoint signature line has no signature")?;
        let raw = crate::decode_base64(b64).map_err(|_| "checkpoint signature is not base64")?;
        if raw.len() < 5 {
            return Err("checkpoint signature is too short".into());
        }
        let mut hint = [0u8; 4];
        hint.copy_from_slice(&raw[..4]);
        signatures.push((name.to_owned(), hint, raw[4..].to_vec()));
    }
    Ok(Checkpoint { body: format!("{body}\n"), origin, size, root, signatures })
}

/// Checks that a signature of the checkpoint, with key hint `hint`, verifies with `key`.
pub fn verify_checkpoint(cp: &Checkpoint, hint: [u8; 4], key: &PublicKey) -> Result<(), String> {
    let mut matching = cp.signatures.iter().filter(|(_, h, _)| *h == hint).peekable();
    if matching.peek().is_none() {
        return Err("no checkpoint signature carries the log's key hint".into());
    }
    if matching.any(|(_, _, sig)| key.verify(cp.body.as_bytes(), sig).is_ok()) {
        Ok(())
    } else {
        Err("the checkpoint signature does not verify with the log key".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339() {
        assert_eq!(format_rfc3339(1_767_225_600), "2026-01-01T00:00:00Z");
        assert_eq!(rfc3339_millis(&format_rfc3339(1_610_452_407)), Some(1_610_452_407_000));
        assert_eq!(format_rfc3339(i64::MAX), i64::MAX.to_string());
        assert_eq!(rfc3339_millis("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(rfc3339_millis("2022-12-31T23:59:59.999Z"), Some(1_672_531_199_999));
        assert_eq!(rfc3339_millis("2021-01-12T11:53:27Z"), Some(1_610_452_407_000));
        assert_eq!(rfc3339_millis("2021-01-12T11:53:27+01:00"), None);
        assert_eq!(rfc3339_millis("garbage"), None);
    }

    #[test]
    fn inclusion_proof_of_a_four_leaf_tree() {
        let leaves: Vec<[u8; 32]> = (0u8..4).map(|i| leaf_hash(&[i])).collect();
        let n01 = node_hash(&leaves[0], &leaves[1]);
        let n23 = node_hash(&leaves[2], &leaves[3]);
        let root = node_hash(&n01, &n23);
        let proof = vec![leaves[3].to_vec(), n01.to_vec()];
        assert_eq!(root_from_inclusion_proof(2, 4, leaves[2], &proof), Ok(root));
        assert_ne!(root_from_inclusion_proof(2, 4, leaves[3], &proof), Ok(root));
        assert!(root_from_inclusion_proof(4, 4, leaves[0], &proof).is_err());
        assert!(root_from_inclusion_proof(2, 4, leaves[2], &proof[..1]).is_err());
    }
}
