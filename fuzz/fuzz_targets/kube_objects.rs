//! What tollgate reads as Kubernetes objects: a YAML stream of ClusterImagePolicies and ImagePolicies
//! (checked with the CRDs' CEL rules client-side), the admission policy generated from them, and
//! their compiled node policies.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tollgate_kube::{compile, manifests};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(policies) = manifests::cluster_policies(text, "fuzz") {
        let _ = manifests::admission_policy(&policies, false);
    }
    if let Ok(o) = compile::objects(text, "fuzz") {
        let _ = compile::compile(&o.cluster, &o.namespaced, &o.trust_roots);
    }
});
