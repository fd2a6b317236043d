//! What the admission webhook reads from the API server: an AdmissionReview body, the pod spec's
//! images and the pod's annotations at the paths of its kind, and the response built from them.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tollgate_kube::admission;

fuzz_target!(|data: &[u8]| {
    let Ok(r) = admission::parse(data) else { return };
    let Some((spec, metadata)) = admission::pod_paths(&r.group, &r.kind) else { return };
    let images = admission::images(&r.object, spec);
    let overrides = admission::enforcement_overrides(&admission::annotations(&r.object, metadata));
    let _ = admission::is_mirror_pod_by_kubelet(&r);
    let message = format!("{images:?} {overrides:?}");
    let _ = admission::respond(&r.uid, &admission::Answer { allowed: images.is_ok(), message, ..Default::default() });
});
