//! Kubernetes release versions (`v1.32.9`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A Kubernetes release version `vMAJOR.MINOR.PATCH`. Pre-releases are not
/// supported: tollgate pins released control planes only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KubernetesVersion {
    /// Major version (1).
    pub major: u32,
    /// Minor version (32).
    pub minor: u32,
    /// Patch version (9).
    pub patch: u32,
}

/// A version string that is not `vMAJOR.MINOR.PATCH`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid Kubernetes version {input:?}: expected vMAJOR.MINOR.PATCH such as v1.32.9 \
     (labels like 'stable' need network access and are not accepted)"
)]
pub struct VersionError {
    /// The refused input.
    pub input: String,
}

impl KubernetesVersion {
    /// Parses `v1.32.9` or `1.32.9`.
    pub fn parse(input: &str) -> Result<KubernetesVersion, VersionError> {
        let err = || VersionError { input: input.to_owned() };
        let s = input.strip_prefix('v').unwrap_or(input);
        let mut parts = s.split('.');
        let mut next = || -> Result<u32, VersionError> {
            let p = parts.next().ok_or_else(err)?;
            if p.is_empty()
                || p.len() > 6
                || !p.bytes().all(|b| b.is_ascii_digit())
                || (p.len() > 1 && p.starts_with('0'))
            {
                return Err(err());
            }
            p.parse().map_err(|_| err())
        };
        let v = KubernetesVersion { major: next()?, minor: next()?, patch: next()? };
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(v)
    }

    /// `MAJOR.MINOR`, the key of kubeadm's per-minor defaults.
    pub fn minor_key(&self) -> String {
        format!("{}.{}", self.major, self.minor)
    }

    /// Whether this release is at least `major.minor`.
    pub fn at_least(&self, major: u32, minor: u32) -> bool {
        (self.major, self.minor) >= (major, minor)
    }
}

impl fmt::Display for KubernetesVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl FromStr for KubernetesVersion {
    type Err = VersionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        KubernetesVersion::parse(s)
    }
}

impl Serialize for KubernetesVersion {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for KubernetesVersion {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        KubernetesVersion::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_with_and_without_v() {
        let want = KubernetesVersion { major: 1, minor: 32, patch: 9 };
        assert_eq!(KubernetesVersion::parse("v1.32.9"), Ok(want));
        assert_eq!(KubernetesVersion::parse("1.32.9"), Ok(want));
        assert_eq!(want.to_string(), "v1.32.9");
        assert_eq!(want.minor_key(), "1.32");
    }

    #[test]
    fn refuses_labels_and_garbage() {
        for bad in ["stable", "v1.32", "v1.32.9.1", "v1.32.x", "v01.32.9", "", "v1..9", "v1.32.9-rc.0", "v1.32.9999999"]
        {
            assert!(KubernetesVersion::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            KubernetesVersion::parse("stable").err().map(|e| e.to_string()).as_deref(),
            Some(
                "invalid Kubernetes version \"stable\": expected vMAJOR.MINOR.PATCH such as v1.32.9 \
                 (labels like 'stable' need network access and are not accepted)"
            )
        );
    }

    #[test]
    fn orders_numerically() {
        let a = KubernetesVersion::parse("v1.9.10").ok();
        let b = KubernetesVersion::parse("v1.10.0").ok();
        assert!(a < b);
    }
}
