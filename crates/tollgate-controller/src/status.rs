//! What each object's status says after a compile: pure, from the objects' names, the compile's
//! result and the bundle in force. `Ready` is `True` when the object's rules are in the bundle the
//! nodes read; an object that does not compile is `Invalid` (and not `Ready`), with the compiler's
//! reason; the others wait for it (`Ready` `False`, reason `Blocked`), because the whole bundle is
//! published or none of it: leaving one bad object out could loosen what the nodes enforce.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use tollgate_kube::compile::CompileError;
use tollgate_kube::crd::PolicyStatus;

/// The condition reason of an object whose rules are in the bundle.
pub const COMPILED: &str = "Compiled";
/// The condition reason of an object that does not compile.
pub const INVALID: &str = "Invalid";
/// The condition reason of an object that compiles but waits for others that do not.
pub const BLOCKED: &str = "Blocked";

/// What one object's status should say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    /// Whether its rules are in the bundle in force.
    pub ready: bool,
    /// [`COMPILED`], [`INVALID`] or [`BLOCKED`].
    pub reason: &'static str,
    /// For people: which bundle, or what is wrong and what to do.
    pub message: String,
    /// The bundle in force (the new one, or the last good one when nothing new was published).
    pub bundle_hash: Option<String>,
}

/// The status of each object (`ClusterImagePolicy/NAME`, `ImagePolicy/NAMESPACE/NAME`,
/// `TrustRoot/NAME`, as [`CompileError::object`] names them). `compiled` is the new bundle's hash,
/// or every error; `in_force` the hash of the bundle the nodes keep when there is no new one.
pub fn desired(
    objects: &[String],
    compiled: &Result<String, Vec<CompileError>>,
    in_force: Option<&str>,
) -> BTreeMap<String, Desired> {
    let mut out = BTreeMap::new();
    match compiled {
        Ok(hash) => {
            for o in objects {
                out.insert(
                    o.clone(),
                    Desired {
                        ready: true,
                        reason: COMPILED,
                        message: format!("in policy bundle {hash}"),
                        bundle_hash: Some(hash.clone()),
                    },
                );
            }
        }
        Err(errors) => {
            let mut own: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
            for e in errors {
                own.entry(e.object.as_str()).or_default().push(e.message.as_str());
                // A TrustRoot that cannot be read is named in the errors of the policies that use it.
                for o in objects {
                    if o.strip_prefix("TrustRoot/").is_some_and(|n| e.message.contains(&format!("TrustRoot {n:?}"))) {
                        own.entry(o.as_str()).or_default().push(e.message.as_str());
                    }
                }
            }
            let keeps = match in_force {
                Some(h) => format!("the nodes keep policy bundle {h}"),
                None => "no policy bundle has been published yet, so the nodes refuse every image".to_owned(),
            };
            let culprits = errors.iter().map(|e| e.object.as_str()).collect::<std::collections::BTreeSet<_>>();
            let culprits = culprits.into_iter().collect::<Vec<_>>().join(", ");
            for o in objects {
                let d = match own.get(o.as_str()) {
                    Some(messages) => Desired {
                        ready: false,
                        reason: INVALID,
                        message: format!("{}; {keeps}", messages.join("; ")),
                        bundle_hash: in_force.map(str::to_owned),
                    },
                    None => Desired {
                        ready: false,
                        reason: BLOCKED,
                        message: format!("not published: {culprits} cannot be compiled (see its status); {keeps}"),
                        bundle_hash: in_force.map(str::to_owned),
                    },
                };
                out.insert(o.clone(), d);
            }
        }
    }
    out
}

/// The status to write for `desired` on an object of `generation` whose status is now `previous`,
/// or `None` when it already says that. Conditions keep their `lastTransitionTime` while their
/// status stays.
pub fn next(
    desired: &Desired,
    generation: Option<i64>,
    previous: Option<&PolicyStatus>,
    now: Time,
) -> Option<PolicyStatus> {
    let since = |type_: &str, status: &str| {
        previous
            .and_then(|p| p.conditions.iter().find(|c| c.type_ == type_ && c.status == status))
            .map_or_else(|| now.clone(), |c| c.last_transition_time.clone())
    };
    let status = if desired.ready { "True" } else { "False" };
    let mut conditions = vec![Condition {
        type_: "Ready".into(),
        status: status.into(),
        reason: desired.reason.into(),
        message: desired.message.clone(),
        observed_generation: generation,
        last_transition_time: since("Ready", status),
    }];
    if desired.reason == INVALID {
        conditions.push(Condition {
            type_: "Invalid".into(),
            status: "True".into(),
            reason: "CompileError".into(),
            message: desired.message.clone(),
            observed_generation: generation,
            last_transition_time: since("Invalid", "True"),
        });
    }
    let next = PolicyStatus { observed_generation: generation, conditions, bundle_hash: desired.bundle_hash.clone() };
    (previous != Some(&next)).then_some(next)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn objects() -> Vec<String> {
        ["ClusterImagePolicy/a", "ClusterImagePolicy/b", "ImagePolicy/shop/c", "TrustRoot/public-good"]
            .map(String::from)
            .to_vec()
    }

    fn at(seconds: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(seconds).unwrap())
    }

    #[test]
    fn a_compiled_bundle_makes_every_object_ready_with_its_hash() {
        let d = desired(&objects(), &Ok("sha256:1".into()), Some("sha256:0"));
        assert!(d.values().all(|d| d.ready && d.reason == COMPILED && d.bundle_hash.as_deref() == Some("sha256:1")));
    }

    /// One bad object: it is Invalid with the reason, the TrustRoot its error names too, the others
    /// wait, and every status names the bundle the nodes keep.
    #[test]
    fn a_broken_object_is_invalid_and_the_rest_wait_on_the_last_good_bundle() {
        let errors = vec![CompileError {
            object: "ClusterImagePolicy/b".into(),
            message: "TrustRoot \"public-good\": ConfigMap tollgate-system/root key trusted_root.json does not exist"
                .into(),
        }];
        let d = desired(&objects(), &Err(errors), Some("sha256:0"));
        let b = &d["ClusterImagePolicy/b"];
        assert_eq!((b.ready, b.reason), (false, INVALID));
        assert!(b.message.contains("does not exist; the nodes keep policy bundle sha256:0"), "{}", b.message);
        assert_eq!(d["TrustRoot/public-good"].reason, INVALID);
        let a = &d["ClusterImagePolicy/a"];
        assert_eq!((a.ready, a.reason, a.bundle_hash.as_deref()), (false, BLOCKED, Some("sha256:0")));
        assert!(a.message.starts_with("not published: ClusterImagePolicy/b cannot be compiled"), "{}", a.message);
        let none = desired(
            &objects(),
            &Err(vec![CompileError { object: "the cluster policy".into(), message: "x".into() }]),
            None,
        );
        assert!(none["ClusterImagePolicy/a"].message.contains("the nodes refuse every image"));
    }

    #[test]
    fn a_status_is_written_only_when_it_changes_and_keeps_its_transition_time() {
        let ready = desired(&objects(), &Ok("sha256:1".into()), None).remove("ClusterImagePolicy/a").unwrap();
        let first = next(&ready, Some(3), None, at(100)).unwrap();
        assert_eq!(first.conditions[0].type_, "Ready");
        assert_eq!(first.observed_generation, Some(3));
        assert_eq!(next(&ready, Some(3), Some(&first), at(200)), None, "nothing changed: nothing is written");
        let again = next(&ready, Some(4), Some(&first), at(200)).unwrap();
        assert_eq!(again.conditions[0].last_transition_time, at(100), "still Ready: the transition stays");
        let invalid =
            Desired { ready: false, reason: INVALID, message: "bad".into(), bundle_hash: Some("sha256:1".into()) };
        let broken = next(&invalid, Some(5), Some(&again), at(300)).unwrap();
        let types: Vec<(&str, &str)> =
            broken.conditions.iter().map(|c| (c.type_.as_str(), c.status.as_str())).collect();
        assert_eq!(types, [("Ready", "False"), ("Invalid", "True")]);
        assert_eq!(broken.conditions[0].last_transition_time, at(300));
    }
}
