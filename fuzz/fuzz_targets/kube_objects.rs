//! What tollgate reads as Kubernetes objects: a YAML stream of ClusterImagePolicies (checked with the
//! CRDs' CEL rules client-side), and the admission policy generated from them.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tollgate_kube::manifests;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(policies) = manifests::cluster_policies(text, "fuzz") {
        let _ = manifests::admission_policy(&policies, false);
    }
});
