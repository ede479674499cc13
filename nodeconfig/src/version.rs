//! A Kubernetes release version. What kubeboot knows about each minor is in `releases`.

use std::fmt;
use std::str::FromStr;

/// A Kubernetes release version, written `vMAJOR.MINOR.PATCH` as upstream tags it. Read with or
/// without the `v` (as kubeadm reads it), so `1.37.1` in a spec, a Packer variable or on a command
/// line means the same as `v1.37.1`; always written with it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct KubernetesVersion(semver::Version);

impl KubernetesVersion {
    pub fn major(&self) -> u64 {
        self.0.major
    }

    pub fn minor(&self) -> u64 {
        self.0.minor
    }
}

impl FromStr for KubernetesVersion {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let bare = text.strip_prefix('v').unwrap_or(text);
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
    fn parses_with_or_without_the_v() {
        let v: KubernetesVersion = "v1.36.0".parse().unwrap();
        assert_eq!((v.major(), v.minor()), (1, 36));
        assert_eq!(v.to_string(), "v1.36.0");
        assert_eq!("1.36.0".parse::<KubernetesVersion>().unwrap(), v);
        assert!("v1.36".parse::<KubernetesVersion>().is_err());
        assert!("vv1.36.0".parse::<KubernetesVersion>().is_err());
        assert!("v1.36.0+abc".parse::<KubernetesVersion>().is_err());
        assert!("v1.36.0-rc.1".parse::<KubernetesVersion>().is_ok());
    }
}
