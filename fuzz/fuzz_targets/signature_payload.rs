//! Simple-signing payloads (parsed only after their signature verified, but parsed strictly anyway).
#![no_main]
use libfuzzer_sys::fuzz_target;
use tollgate_verify::payload::Payload;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = Payload::parse(data) {
        let again = Payload::parse(&Payload::render(&p.docker_reference, &p.manifest_digest));
        assert_eq!(
            again.map(|a| (a.docker_reference, a.manifest_digest)).ok(),
            Some((p.docker_reference, p.manifest_digest))
        );
    }
});
