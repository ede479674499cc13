//! Kubernetes versions kubeboot supports, and the config API versions each one wants.
//! This is the one place that maps a Kubernetes version to kubeadm's config apiVersion.

use std::fmt;
use std::str::FromStr;

/// Kubernetes minors upstream supports today and kubeboot renders configs for.
pub const SUPPORTED_MINORS: std::ops::RangeInclusive<u64> = 34..=36;

/// A Kubernetes release version, written `vMAJOR.MINOR.PATCH` as upstream tags it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct KubernetesVersion(semver::Version);

impl KubernetesVersion {
    pub fn minor(&self) -> u64 {
        self.0.minor
    }

    /// kubeadm's config apiVersion for this release: v1beta4 from 1.31 (the only one we support).
    /// When `kubeadm.k8s.io/v1` ships, the switch belongs here.
    pub fn kubeadm_api_version(&self) -> &'static str {
        "kubeadm.k8s.io/v1beta4"
    }

    /// Fails unless this is a release of a supported minor.
    pub fn check_supported(&self) -> Result<(), String> {
        if self.0.major != 1 || !SUPPORTED_MINORS.contains(&self.0.minor) {
            return Err(format!(
                "Kubernetes {self} is not supported (supported: v1.{}.x to v1.{}.x)",
                SUPPORTED_MINORS.start(),
                SUPPORTED_MINORS.end()
            ));
        }
        Ok(())
    }
}

impl FromStr for KubernetesVersion {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let bare = text
            .strip_prefix('v')
            .ok_or_else(|| format!("{text:?} is not a version of the form vMAJOR.MINOR.PATCH"))?;
        let parsed = semver::Version::parse(bare).map_err(|e| {
            format!("{text:?} is not a version of the form vMAJOR.MINOR.PATCH: {e}")
        })?;
        if !parsed.build.is_empty() {
            return Err(format!(
                "{text:?}: build metadata is not allowed in a Kubernetes version"
            ));
        }
        Ok(Self(parsed))
    }
}

impl fmt::Display for KubernetesVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.0)
    }
}

impl serde::Serialize for KubernetesVersion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for KubernetesVersion {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_checks_range() {
        let v: KubernetesVersion = "v1.36.0".parse().unwrap();
        assert_eq!(v.minor(), 36);
        assert!(v.check_supported().is_ok());
        assert_eq!(v.to_string(), "v1.36.0");
        let old: KubernetesVersion = "v1.30.2".parse().unwrap();
        assert!(old.check_supported().unwrap_err().contains("not supported"));
        assert!("1.36.0".parse::<KubernetesVersion>().is_err());
        assert!("v1.36".parse::<KubernetesVersion>().is_err());
        assert!("v1.36.0+abc".parse::<KubernetesVersion>().is_err());
        assert!("v1.36.0-rc.1".parse::<KubernetesVersion>().is_ok());
    }
}
