//! `x509.subject:` trusted identities, as notation-go's `internal/pkix` and verifier check them: a
//! distinguished name (RFC 4514) with unique, single-valued attributes, at least `C`, `ST` (or `S`)
//! and `O`, no `=#` (hex-encoded values), and matched as a subset of the signing certificate's subject.
//! The certificate's subject is read the way notation reads it: rendered as Go's `pkix.Name.String()`,
//! then parsed with the same rules.

use std::collections::BTreeMap;

use der::{Decode as _, Encode as _};
use x509_cert::name::Name;

/// The `trustedIdentities` prefix of certificate subjects.
pub const X509_SUBJECT: &str = "x509.subject";

/// A distinguished name or identity notation refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct IdentityError(pub String);

/// A distinguished name as notation keeps it: attribute type to value (`S` read as `ST`).
pub type Dn = BTreeMap<String, String>;

/// Parses `name` under notation's rules.
pub fn parse_dn(name: &str) -> Result<Dn, IdentityError> {
    if name.contains("=#") {
        return Err(IdentityError(format!(
            "unsupported distinguished name (DN) {name:?}: notation does not support x509.subject identities containing \"=#\""
        )));
    }
    let rdns = parse_rfc4514(name).map_err(|e| {
        IdentityError(format!(
            "parsing distinguished name (DN) {name:?} failed: {e}; a valid DN must contain 'C', 'ST' or 'S', and 'O' RDN attributes at a minimum, and follow RFC 4514"
        ))
    })?;
    let mut dn = Dn::new();
    for rdn in rdns {
        if rdn.len() > 1 {
            return Err(IdentityError(format!(
                "distinguished name (DN) {name:?} has multi-valued RDN attributes, which notation does not support"
            )));
        }
        for (t, v) in rdn {
            let t = if t == "S" { "ST".to_owned() } else { t };
            if dn.get(&t).is_some_and(|old| !old.is_empty()) {
                return Err(IdentityError(format!(
                    "distinguished name (DN) {name:?} has duplicate RDN attribute for {t:?}, DN can only have unique RDN attributes"
                )));
            }
            dn.insert(t, v);
        }
    }
    for field in ["C", "ST", "O"] {
        if dn.get(field).is_none_or(String::is_empty) {
            return Err(IdentityError(format!(
                "distinguished name (DN) {name:?} has no mandatory RDN attribute for {field:?}, it must contain 'C', 'ST' or 'S', and 'O' RDN attributes at a minimum"
            )));
        }
    }
    Ok(dn)
}

/// Every attribute of `identity` has the same value in `subject`.
pub fn is_subset(identity: &Dn, subject: &Dn) -> bool {
    identity.iter().all(|(k, v)| subject.get(k) == Some(v))
}

/// Whether the signing certificate (`leaf`, DER) is one of `trusted` (a trust policy's
/// `trustedIdentities`): `*` trusts any; otherwise at least one `x509.subject:DN` entry must be a
/// subset of its subject. Other prefixes are for plugins and are ignored. An error when no
/// `x509.subject` entry is configured, or a DN (the policy's or the certificate's) is not one notation takes.
pub fn trusted(trusted: &[String], leaf: &[u8]) -> Result<bool, IdentityError> {
    if trusted.iter().any(|t| t == "*") {
        return Ok(true);
    }
    let mut dns = Vec::new();
    for entry in trusted {
        if let Some((X509_SUBJECT, value)) = entry.split_once(':') {
            dns.push(parse_dn(value)?);
        }
    }
    if dns.is_empty() {
        return Err(IdentityError("no x509 trusted identities are configured in the trust policy".into()));
    }
    let cert =
        x509_cert::Certificate::from_der(leaf).map_err(|e| IdentityError(format!("the signing certificate: {e}")))?;
    let subject = parse_dn(&go_name_string(cert.tbs_certificate().subject())).map_err(|e| {
        IdentityError(format!("error while parsing the certificate subject from the digital signature: {e}"))
    })?;
    Ok(dns.iter().any(|dn| is_subset(dn, &subject)))
}

/// `name` as Go's `pkix.Name.String()` writes it: the named attributes in reverse order of
/// `C, ST, L, STREET, POSTALCODE, O, OU, CN, SERIALNUMBER`, then the others as `OID=#HEX`, each value
/// escaped as Go does (`,+"\<>;` always, `#` first, spaces first or last).
pub fn go_name_string(name: &Name) -> String {
    const NAMED: [(&str, &str); 9] = [
        ("2.5.4.6", "C"),
        ("2.5.4.8", "ST"),
        ("2.5.4.7", "L"),
        ("2.5.4.9", "STREET"),
        ("2.5.4.17", "POSTALCODE"),
        ("2.5.4.10", "O"),
        ("2.5.4.11", "OU"),
        ("2.5.4.3", "CN"),
        ("2.5.4.5", "SERIALNUMBER"),
    ];
    let mut named: Vec<(usize, String)> = Vec::new();
    let mut others: Vec<String> = Vec::new();
    for rdn in name.iter_rdn() {
        for atv in rdn.iter() {
            let oid = atv.oid.to_string();
            match NAMED.iter().position(|(o, _)| *o == oid) {
                Some(i) => {
                    if let Some(v) = string_value(&atv.value) {
                        named.push((i, format!("{}={}", NAMED[i].1, escape(&v))));
                    }
                }
                None => {
                    let hex: String =
                        atv.value.to_der().unwrap_or_default().iter().map(|b| format!("{b:02x}")).collect();
                    others.push(format!("{oid}=#{hex}"));
                }
            }
        }
    }
    // Go builds the sequence as [others…, C…, ST…, …, SERIALNUMBER…] and prints it reversed.
    named.sort_by_key(|(i, _)| *i);
    let mut sequence: Vec<String> = others;
    sequence.extend(named.into_iter().map(|(_, s)| s));
    sequence.reverse();
    sequence.join(",")
}

fn string_value(any: &der::Any) -> Option<String> {
    let bytes = any.to_der().ok()?;
    if let Ok(s) = der::asn1::Utf8StringRef::from_der(&bytes) {
        return Some(s.as_str().to_owned());
    }
    if let Ok(s) = der::asn1::PrintableStringRef::from_der(&bytes) {
        return Some(s.as_str().to_owned());
    }
    if let Ok(s) = der::asn1::Ia5StringRef::from_der(&bytes) {
        return Some(s.as_str().to_owned());
    }
    if let Ok(s) = der::asn1::TeletexStringRef::from_der(&bytes) {
        return Some(s.as_str().to_owned());
    }
    None
}

fn escape(s: &str) -> String {
    let n = s.chars().count();
    let mut out = String::with_capacity(s.len());
    for (k, c) in s.chars().enumerate() {
        let needs = match c {
            ',' | '+' | '"' | '\\' | '<' | '>' | ';' => true,
            ' ' => k == 0 || k + 1 == n,
            '#' => k == 0,
            _ => false,
        };
        if needs {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// RFC 4514 as go-ldap's `ParseDN` reads it: RDNs split at `,` or `;`, attributes at `+`, each
/// `type=value` with spaces around trimmed, `\X` and `\HH` escapes in values.
fn parse_rfc4514(s: &str) -> Result<Vec<Vec<(String, String)>>, String> {
    if s.trim().is_empty() {
        return Ok(Vec::new());
    }
    let mut rdns = Vec::new();
    let mut rdn = Vec::new();
    let (mut ty, mut val) = (String::new(), String::new());
    let mut in_value = false;
    let mut escaped_tail = 0usize; // length of `val` up to the last escaped character
    let mut chars = s.chars().peekable();
    let finish = |ty: &mut String,
                  val: &mut String,
                  escaped_tail: usize,
                  rdn: &mut Vec<(String, String)>|
     -> Result<(), String> {
        let t = ty.trim().to_owned();
        if t.is_empty() {
            return Err("an attribute has no type".into());
        }
        let keep = val.trim_end().len().max(escaped_tail);
        let v = val[..keep].trim_start().to_owned();
        rdn.push((t, v));
        ty.clear();
        val.clear();
        Ok(())
    };
    while let Some(c) = chars.next() {
        match c {
            '\\' if in_value => {
                let Some(&n1) = chars.peek() else { return Err("the DN ends with an escape".into()) };
                chars.next();
                if n1.is_ascii_hexdigit() {
                    let Some(n2) = chars.next().filter(char::is_ascii_hexdigit) else {
                        return Err("an escape is one special character or two hex digits".into());
                    };
                    let byte = u8::from_str_radix(&format!("{n1}{n2}"), 16).map_err(|e| e.to_string())?;
                    val.push(char::from(byte));
                } else {
                    val.push(n1);
                }
                escaped_tail = val.len();
            }
            '=' if !in_value => in_value = true,
            ',' | ';' | '+' if in_value => {
                finish(&mut ty, &mut val, escaped_tail, &mut rdn)?;
                escaped_tail = 0;
                in_value = false;
                if c != '+' {
                    rdns.push(std::mem::take(&mut rdn));
                }
            }
            ',' | ';' | '+' => return Err(format!("{ty:?} has no value")),
            _ if in_value => val.push(c),
            _ => ty.push(c),
        }
    }
    if !in_value {
        return Err(format!("{:?} has no value", ty.trim()));
    }
    finish(&mut ty, &mut val, escaped_tail, &mut rdn)?;
    rdns.push(rdn);
    Ok(rdns)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn a_dn_needs_c_st_and_o_each_once_and_no_hex_values() {
        let dn = parse_dn("C=US, S=WA, O=Notary, CN=a\\,b").unwrap();
        assert_eq!(dn.get("ST").map(String::as_str), Some("WA"));
        assert_eq!(dn.get("CN").map(String::as_str), Some("a,b"));
        assert!(parse_dn("C=US,O=x").unwrap_err().0.contains("no mandatory RDN attribute for \"ST\""));
        assert!(parse_dn("C=US,ST=WA,O=x,O=y").unwrap_err().0.contains("duplicate RDN attribute for \"O\""));
        assert!(parse_dn("C=US+ST=WA,O=x").unwrap_err().0.contains("multi-valued"));
        assert!(parse_dn("C=US,ST=WA,O=#0101").unwrap_err().0.contains("containing \"=#\""));
        assert!(parse_dn("C=US,ST,O=x").is_err());
    }

    #[test]
    fn an_identity_is_a_subset_of_the_subject() {
        let subject = parse_dn("CN=SomeCN,OU=SomeOU,O=SomeOrg,L=Seattle,ST=WA,C=US").unwrap();
        assert!(is_subset(&parse_dn("C=US,O=SomeOrg,ST=WA").unwrap(), &subject));
        assert!(!is_subset(&parse_dn("C=IND,O=SomeOrg,ST=TS").unwrap(), &subject));
    }

    proptest! {
        #[test]
        fn any_text_parses_or_errs_without_panicking(s in "[ -~]{0,64}") {
            let _ = parse_dn(&s);
        }
    }
}
