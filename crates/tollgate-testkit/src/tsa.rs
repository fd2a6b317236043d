//! An RFC 3161 timestamp authority made in tests: a CA and a timestamping leaf
//! (P-256, critical id-kp-timeStamping EKU) from rcgen, and DER timestamp
//! responses written by hand here, independently of the `cms` crate that
//! tollgate's verifier reads them with. The token differs from the sigstore
//! TSA's on purpose: a P-256 key, fractional seconds in genTime, the leaf
//! embedded, and no signing-certificate attribute.

use der::{Decode as _, Encode as _};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair};
use sha2::{Digest as _, Sha256};

/// A timestamp authority with a two-certificate chain.
pub struct TestTsa {
    root: Vec<u8>,
    leaf: Vec<u8>,
    key: EcdsaKeyPair,
    rng: SystemRandom,
}

impl Default for TestTsa {
    fn default() -> Self {
        Self::generate()
    }
}

// DER writing: tag, definite length, content.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

fn seq(parts: &[Vec<u8>]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

/// A DER SET OF: elements sorted by their encodings.
fn set(parts: &[Vec<u8>]) -> Vec<u8> {
    let mut sorted = parts.to_vec();
    sorted.sort();
    tlv(0x31, &sorted.concat())
}

fn oid(dotted: &str) -> Vec<u8> {
    der::asn1::ObjectIdentifier::new(dotted).expect("oid").to_der().expect("oid der")
}

fn int(v: u8) -> Vec<u8> {
    tlv(0x02, &[v])
}

fn octets(b: &[u8]) -> Vec<u8> {
    tlv(0x04, b)
}

fn sha256_alg() -> Vec<u8> {
    seq(&[oid("2.16.840.1.101.3.4.2.1")])
}

const SIGNED_DATA: &str = "1.2.840.113549.1.7.2";
const TST_INFO: &str = "1.2.840.113549.1.9.16.1.4";

impl TestTsa {
    /// A fresh authority.
    pub fn generate() -> TestTsa {
        let (ca_params, ca_key, root) = crate::test_ca("tollgate test TSA root");
        let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name.push(rcgen::DnType::CommonName, "tollgate test TSA");
        // RFC 3161 §2.3: exactly one EKU, id-kp-timeStamping, critical.
        let eku = seq(&[oid("1.3.6.1.5.5.7.3.8")]);
        let mut ext = rcgen::CustomExtension::from_oid_content(&[2, 5, 29, 37], eku);
        ext.set_criticality(true);
        params.custom_extensions.push(ext);
        let leaf = params.signed_by(&key, &issuer).expect("leaf");
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &key.serialize_der(), &rng).expect("pkcs8");
        TestTsa { root: root.der().to_vec(), leaf: leaf.der().to_vec(), key, rng }
    }

    /// The chain as `trusted_root.json` lists it: leaf, then root (DER).
    pub fn chain(&self) -> Vec<Vec<u8>> {
        vec![self.leaf.clone(), self.root.clone()]
    }

    /// A granted `TimeStampResp` for `message` (its SHA-256 is the imprint) at
    /// `gen_time`, a GeneralizedTime such as `20261122093000.25Z`.
    pub fn timestamp(&self, message: &[u8], gen_time: &str) -> Vec<u8> {
        let tst_info = seq(&[
            int(1),
            oid("1.3.6.1.4.1.57264.2"),
            seq(&[sha256_alg(), octets(&Sha256::digest(message))]),
            int(42),
            tlv(0x18, gen_time.as_bytes()),
        ]);
        let attr = |id: &str, value: Vec<u8>| seq(&[oid(id), set(&[value])]);
        let attrs = [
            attr("1.2.840.113549.1.9.3", oid(TST_INFO)),
            attr("1.2.840.113549.1.9.4", octets(&Sha256::digest(&tst_info))),
        ];
        // Signed as a SET OF, carried as [0] IMPLICIT.
        let signed_attrs = set(&attrs);
        let signature = self.key.sign(&self.rng, &signed_attrs).expect("sign").as_ref().to_vec();
        let mut implicit_attrs = signed_attrs;
        implicit_attrs[0] = 0xa0;
        let cert = x509_cert::Certificate::from_der(&self.leaf).expect("leaf");
        let issuer_and_serial = seq(&[
            cert.tbs_certificate().issuer().to_der().expect("issuer"),
            cert.tbs_certificate().serial_number().to_der().expect("serial"),
        ]);
        let signer_info = seq(&[
            int(1),
            issuer_and_serial,
            sha256_alg(),
            implicit_attrs,
            seq(&[oid("1.2.840.10045.4.3.2")]),
            octets(&signature),
        ]);
        let signed_data = seq(&[
            int(3),
            set(&[sha256_alg()]),
            seq(&[oid(TST_INFO), tlv(0xa0, &octets(&tst_info))]),
            tlv(0xa0, &self.leaf),
            set(&[signer_info]),
        ]);
        let content_info = seq(&[oid(SIGNED_DATA), tlv(0xa0, &signed_data)]);
        seq(&[seq(&[int(0)]), content_info])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tollgate_verifies_what_the_test_tsa_issues() {
        let tsa = TestTsa::generate();
        let t = tollgate_verify::tsa::verify(&tsa.timestamp(b"sig", "20261122093000.25Z"), b"sig", &tsa.chain());
        assert_eq!(t, Ok(1_795_339_800_250));
        let t = tollgate_verify::tsa::verify(&tsa.timestamp(b"sig", "20261122093000Z"), b"other", &tsa.chain());
        assert_eq!(t, Err(tollgate_verify::tsa::TimestampError::Imprint));
        let other = TestTsa::generate();
        let t = tollgate_verify::tsa::verify(&tsa.timestamp(b"sig", "20261122093000Z"), b"sig", &other.chain());
        assert_eq!(t, Err(tollgate_verify::tsa::TimestampError::OtherAuthority));
    }
}
