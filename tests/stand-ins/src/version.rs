//! Which Kubernetes release the stand-ins pretend to be.
use std::fmt;

use anyhow::{bail, Context, Result};

/// Minors this stand-in can pretend to be: v1beta4 exists from 1.31; the key trees know releases up to 1.37.
pub const KNOWN_MINORS: std::ops::RangeInclusive<u64> = 31..=37;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KubeVersion {
    pub minor: u64,
    pub patch: u64,
    text: String,
}

impl fmt::Display for KubeVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl KubeVersion {
    /// Parses `v1.MINOR.PATCH` (kubeadm also takes it without the `v`), pre-release suffixes allowed.
    pub fn parse(text: &str) -> Result<KubeVersion> {
        let bare = text.strip_prefix('v').unwrap_or(text);
        let core = bare.split(['-', '+']).next().unwrap_or_default();
        let parts: Vec<&str> = core.split('.').collect();
        let num = |s: &str| {
            s.parse::<u64>()
                .ok()
                .filter(|_| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        };
        let (Some(major), Some(minor), Some(patch)) = (
            parts.first().and_then(|s| num(s)),
            parts.get(1).and_then(|s| num(s)),
            parts.get(2).and_then(|s| num(s)),
        ) else {
            bail!("{text:?} is not a Kubernetes version (vMAJOR.MINOR.PATCH); version labels need the internet");
        };
        if parts.len() != 3 || major != 1 {
            bail!("{text:?} is not a Kubernetes 1.x version");
        }
        Ok(KubeVersion {
            minor,
            patch,
            text: format!("v{bare}"),
        })
    }

    /// The version this stand-in reports: `STANDIN_KUBERNETES_VERSION`, else a `kubernetes-version` file
    /// beside the executable (the release tree can ship one), else none (callers fall back to the config).
    pub fn own() -> Result<Option<KubeVersion>> {
        let text = match std::env::var("STANDIN_KUBERNETES_VERSION") {
            Ok(v) => Some(v),
            Err(_) => {
                let exe = std::env::current_exe().context("locating the executable")?;
                let file = exe.with_file_name("kubernetes-version");
                match std::fs::read_to_string(&file) {
                    Ok(v) => Some(v.trim().to_string()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                    Err(e) => return Err(e).with_context(|| format!("reading {}", file.display())),
                }
            }
        };
        let Some(text) = text else { return Ok(None) };
        let v = KubeVersion::parse(&text).context("stand-in version")?;
        if !KNOWN_MINORS.contains(&v.minor) {
            bail!(
                "stand-in version {v} is outside the releases it knows (1.{}–1.{})",
                KNOWN_MINORS.start(),
                KNOWN_MINORS.end()
            );
        }
        Ok(Some(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_release_versions() {
        assert_eq!(KubeVersion::parse("v1.35.2").unwrap().minor, 35);
        assert_eq!(KubeVersion::parse("1.34.0").unwrap().to_string(), "v1.34.0");
        assert_eq!(KubeVersion::parse("v1.36.0-rc.1").unwrap().patch, 0);
        for bad in ["stable-1", "v1.35", "v2.0.0", "v1.35.x", ""] {
            assert!(KubeVersion::parse(bad).is_err(), "{bad}");
        }
    }
}
