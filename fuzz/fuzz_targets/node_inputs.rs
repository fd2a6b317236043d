//! What the node side reads: containerd's verifier argv and stdin descriptor,
//! a daemon request body, the node config, and containerd configs (doctor and
//! install merge). The first byte picks the parser.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tollgate_node::{api, config, doctor, install, verifier};

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else { return };
    match which % 5 {
        0 => {
            let args: Vec<String> = String::from_utf8_lossy(rest).split('\0').map(str::to_owned).collect();
            if verifier::is_invocation(&args)
                && let Ok(inv) = verifier::parse(&args)
            {
                let _ = verifier::descriptor(rest, &inv);
            }
        }
        1 => {
            let _ = serde_json::from_slice::<api::VerifyRequest>(rest);
        }
        2 => {
            let _ = config::NodeConfig::parse(rest, "fuzz");
        }
        3 => {
            if let Ok(text) = std::str::from_utf8(rest) {
                let _ = doctor::diagnose(text, Some(&[]));
                let _ = doctor::diagnose(text, None);
            }
        }
        _ => {
            if let Ok(text) = std::str::from_utf8(rest)
                && let Ok(m) = install::merge(Some(text), "/opt/containerd/image-verifier/bin")
            {
                // A merged config parses and names the directory.
                assert_eq!(doctor::bin_dir(&m.text).ok().as_deref(), Some("/opt/containerd/image-verifier/bin"));
            }
        }
    }
});
