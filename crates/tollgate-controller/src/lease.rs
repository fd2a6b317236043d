//! Leader election with a `coordination.k8s.io/v1` Lease, as client-go's leaderelection does it: the
//! holder renews `renewTime` well within `leaseDurationSeconds`; another replica takes the Lease
//! only once it has expired, with an update conditional on the `resourceVersion` it read, so two
//! replicas never both win. The decision is pure ([`decide`]); [`Elector`] is the edge.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};

/// What a replica may do with the Lease as it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Nobody holds it, or the holder let it expire: take it.
    Take,
    /// This replica holds it: renew it.
    Renew,
    /// `holder` holds it for this long yet.
    Wait {
        /// Who holds it.
        holder: String,
        /// Until it expires, unless renewed.
        remaining: Duration,
    },
}

/// What `me` may do with a Lease whose spec is `spec`, at `now`.
pub fn decide(spec: Option<&LeaseSpec>, me: &str, now: Timestamp) -> Claim {
    let Some(spec) = spec else { return Claim::Take };
    let holder = spec.holder_identity.as_deref().unwrap_or_default();
    if holder.is_empty() {
        return Claim::Take;
    }
    if holder == me {
        return Claim::Renew;
    }
    let seconds = i64::from(spec.lease_duration_seconds.unwrap_or(0).max(0));
    let Some(renewed) = spec.renew_time.as_ref().or(spec.acquire_time.as_ref()) else { return Claim::Take };
    let expires = renewed.0.as_second().saturating_add(seconds);
    let left = expires.saturating_sub(now.as_second());
    if left <= 0 {
        return Claim::Take;
    }
    Claim::Wait { holder: holder.to_owned(), remaining: Duration::from_secs(left.unsigned_abs()) }
}

/// Why the Lease could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("Lease {what}: {message}")]
pub struct LeaseError {
    /// `NAMESPACE/NAME`.
    pub what: String,
    /// The API server's answer.
    pub message: String,
}

/// One replica's side of the election.
pub struct Elector {
    api: Api<Lease>,
    name: String,
    what: String,
    me: String,
    duration: Duration,
}

impl Elector {
    /// Elects among the replicas sharing Lease `namespace/name`; `me` names this one (its pod
    /// name), `duration` is how long a holder that stopped renewing keeps it.
    pub fn new(client: kube::Client, namespace: &str, name: &str, me: &str, duration: Duration) -> Elector {
        Elector {
            api: Api::namespaced(client, namespace),
            name: name.to_owned(),
            what: format!("{namespace}/{name}"),
            me: me.to_owned(),
            duration,
        }
    }

    /// How long the Lease lasts without renewal.
    pub fn duration(&self) -> Duration {
        self.duration
    }

    fn err(&self, e: impl std::fmt::Display) -> LeaseError {
        LeaseError { what: self.what.clone(), message: e.to_string() }
    }

    fn spec(&self, now: Timestamp, previous: Option<&LeaseSpec>, taking: bool) -> LeaseSpec {
        let transitions = previous.and_then(|s| s.lease_transitions).unwrap_or(0);
        LeaseSpec {
            holder_identity: Some(self.me.clone()),
            lease_duration_seconds: Some(i32::try_from(self.duration.as_secs()).unwrap_or(i32::MAX)),
            acquire_time: if taking { Some(MicroTime(now)) } else { previous.and_then(|s| s.acquire_time.clone()) },
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(if taking && previous.is_some() {
                transitions.saturating_add(1)
            } else {
                transitions
            }),
            ..LeaseSpec::default()
        }
    }

    /// Takes or renews the Lease if this replica may: `Ok(None)` when it holds it now, or who holds
    /// it. A write that loses a race (HTTP 409) is not an error: someone else won.
    pub async fn try_hold(&self) -> Result<Option<String>, LeaseError> {
        let now = Timestamp::now();
        let current = self.api.get_opt(&self.name).await.map_err(|e| self.err(e))?;
        let Some(mut lease) = current else {
            let lease = Lease {
                metadata: ObjectMeta { name: Some(self.name.clone()), ..ObjectMeta::default() },
                spec: Some(self.spec(now, None, true)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(None),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(Some("another replica".into())),
                Err(e) => Err(self.err(e)),
            };
        };
        let claim = decide(lease.spec.as_ref(), &self.me, now);
        let taking = match claim {
            Claim::Wait { holder, .. } => return Ok(Some(holder)),
            Claim::Take => true,
            Claim::Renew => false,
        };
        lease.spec = Some(self.spec(now, lease.spec.as_ref(), taking));
        // Conditional on the resourceVersion read above: a concurrent writer makes this a 409.
        match self.api.replace(&self.name, &PostParams::default(), &lease).await {
            Ok(_) => Ok(None),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(Some("another replica".into())),
            Err(e) => Err(self.err(e)),
        }
    }

    /// Gives the Lease up, if this replica holds it, so another replica takes over at once.
    pub async fn release(&self) -> Result<(), LeaseError> {
        let Some(mut lease) = self.api.get_opt(&self.name).await.map_err(|e| self.err(e))? else { return Ok(()) };
        if lease.spec.as_ref().and_then(|s| s.holder_identity.as_deref()) != Some(self.me.as_str()) {
            return Ok(());
        }
        if let Some(spec) = lease.spec.as_mut() {
            spec.holder_identity = None;
        }
        match self.api.replace(&self.name, &PostParams::default(), &lease).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
            Err(e) => Err(self.err(e)),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn lease(holder: Option<&str>, renewed: i64, seconds: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: holder.map(str::to_owned),
            lease_duration_seconds: Some(seconds),
            renew_time: Some(MicroTime(Timestamp::from_second(renewed).unwrap())),
            ..LeaseSpec::default()
        }
    }

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    #[test]
    fn a_lease_is_taken_when_free_or_expired_and_renewed_by_its_holder() {
        assert_eq!(decide(None, "a", at(100)), Claim::Take);
        assert_eq!(decide(Some(&lease(None, 90, 15)), "a", at(100)), Claim::Take);
        assert_eq!(decide(Some(&lease(Some(""), 90, 15)), "a", at(100)), Claim::Take);
        assert_eq!(decide(Some(&lease(Some("a"), 0, 15)), "a", at(100)), Claim::Renew, "its own, even expired");
        assert_eq!(
            decide(Some(&lease(Some("b"), 90, 15)), "a", at(100)),
            Claim::Wait { holder: "b".into(), remaining: Duration::from_secs(5) }
        );
        assert_eq!(decide(Some(&lease(Some("b"), 85, 15)), "a", at(100)), Claim::Take, "expired exactly now");
        assert_eq!(decide(Some(&lease(Some("b"), 90, -5)), "a", at(100)), Claim::Take, "a negative duration expires");
        let mut never_renewed = lease(Some("b"), 0, 15);
        never_renewed.renew_time = None;
        assert_eq!(decide(Some(&never_renewed), "a", at(100)), Claim::Take);
    }
}
