//! Reading a COSE_Sign1 notation signature envelope (`application/cose`), as notation-core-go's
//! `signature/cose` does: the tagged COSE_Sign1 message, its protected header (algorithm, critical
//! labels, content type, signing scheme and times), the `x5chain` certificates, the timestamp
//! countersignature, and the signature over RFC 9052's `Sig_structure`. What follows (trust
//! stores, identities, times, expiry) is the same as for JWS: [`crate::jws::verify`] takes both.

use crate::cbor::{self, Value};
use crate::jws::{MAX_ENVELOPE_BYTES, PAYLOAD_TYPE, Parsed};

/// The COSE envelope media type.
pub const MEDIA_TYPE: &str = "application/cose";

/// The COSE tag of a COSE_Sign1 message.
const COSE_SIGN1: u64 = 18;
/// Header labels (RFC 9052 §3.1).
const ALG: i128 = 1;
const CRIT: i128 = 2;
const CONTENT_TYPE: i128 = 3;
const X5CHAIN: i128 = 33;

fn text(s: &str) -> Value {
    Value::Text(s.to_owned())
}

/// A time header: `tag 1` (epoch seconds) over an integer, as notation writes it.
fn time(header: &Value, key: &str) -> Result<Option<i64>, String> {
    match header.get(&text(key)) {
        None => Ok(None),
        Some(Value::Tag(1, t)) => match t.as_ref() {
            Value::Int(n) => i64::try_from(*n).map(Some).map_err(|_| format!("{key} is out of range")),
            _ => Err(format!("{key} is not an integer epoch time")),
        },
        Some(_) => Err(format!("{key} is not a tag-1 epoch time")),
    }
}

/// The integrity part of a COSE envelope: everything about the envelope itself, and its signature.
pub(crate) fn parse(envelope: &[u8]) -> Result<Parsed, String> {
    if envelope.len() > MAX_ENVELOPE_BYTES {
        return Err(format!("the envelope is larger than {MAX_ENVELOPE_BYTES} bytes"));
    }
    let message = cbor::decode(envelope).map_err(|e| format!("the envelope is not CBOR: {e}"))?;
    let Value::Tag(COSE_SIGN1, body) = message else {
        return Err("the envelope is not a tagged COSE_Sign1 message".into());
    };
    let Value::Array(parts) = *body else { return Err("the COSE_Sign1 message is not an array".into()) };
    let [Value::Bytes(protected_bytes), unprotected @ Value::Map(_), Value::Bytes(payload), Value::Bytes(signature)] =
        parts.as_slice()
    else {
        return Err("the COSE_Sign1 message is not [protected, unprotected, payload, signature]".into());
    };
    let protected = cbor::decode(protected_bytes).map_err(|e| format!("the protected header: {e}"))?;
    if !matches!(protected, Value::Map(_)) {
        return Err("the protected header is not a map".into());
    }
    let alg = match protected.get(&Value::Int(ALG)) {
        Some(Value::Int(-7)) => "ES256",
        Some(Value::Int(-35)) => "ES384",
        Some(Value::Int(-36)) => "ES512",
        Some(Value::Int(-37)) => "PS256",
        Some(Value::Int(-38)) => "PS384",
        Some(Value::Int(-39)) => "PS512",
        Some(other) => return Err(format!("the protected header's alg {other:?} is not one notation signs with")),
        None => return Err("the protected header has no alg".into()),
    };
    if protected.get(&Value::Int(CONTENT_TYPE)) != Some(&text(PAYLOAD_TYPE)) {
        return Err(format!("the protected header's content type is not {PAYLOAD_TYPE}"));
    }
    let scheme = match protected.get(&text("io.cncf.notary.signingScheme")) {
        Some(Value::Text(s)) => s.clone(),
        _ => return Err("the protected header has no io.cncf.notary.signingScheme".into()),
    };
    if let Some(plugin) = protected.get(&text("io.cncf.notary.verificationPlugin")) {
        return Err(format!(
            "the signature names the verification plugin {plugin:?}; tollgate runs no notation plugins, so it cannot verify it"
        ));
    }
    // Labels as text; an integer label is named by its number, which no notation header is.
    let crit: Vec<String> = match protected.get(&Value::Int(CRIT)) {
        Some(Value::Array(a)) => a
            .iter()
            .map(|c| match c {
                Value::Text(t) => t.clone(),
                other => format!("{other:?}"),
            })
            .collect(),
        _ => return Err("the protected header has no crit list".into()),
    };
    let (signing_time, expiry) =
        crate::jws::notary_headers(&scheme, &crit, &|k| protected.get(&text(k)).is_some(), &|k| time(&protected, k))?;
    let chain = match unprotected.get(&Value::Int(X5CHAIN)) {
        Some(Value::Bytes(one)) => vec![one.clone()],
        Some(Value::Array(many)) => many
            .iter()
            .map(|c| match c {
                Value::Bytes(b) => Ok(b.clone()),
                _ => Err("an x5chain entry is not a byte string".to_owned()),
            })
            .collect::<Result<Vec<_>, _>>()?,
        _ => return Err("the unprotected header has no x5chain".into()),
    };
    let timestamp = match unprotected.get(&text("io.cncf.notary.timestampSignature")) {
        None => None,
        Some(Value::Bytes(t)) => Some(t.clone()),
        Some(_) => return Err("io.cncf.notary.timestampSignature is not a byte string".into()),
    };
    let leaf = chain.first().ok_or("the x5chain is empty")?;
    crate::jws::verify_signature(alg, leaf, &cbor::sig_structure(protected_bytes, payload), signature)?;
    crate::jws::verify_chain(&chain)?;
    let signer = crate::jws::Signer { scheme, signing_time, expiry, chain, signature: signature.clone(), timestamp };
    crate::jws::parsed_payload(signer, payload)
}
