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

    /// The version this stand-in reports: the one stamped on its executable (`stamped`: a release tree's
    /// copy is that release, as a real binary is), else `STANDIN_KUBERNETES_VERSION`, else a
    /// `kubernetes-version` file beside the executable, else none (callers fall back to the config).
    pub fn own() -> Result<Option<KubeVersion>> {
        let text = match (
            stamp_of_own_executable()?,
            std::env::var("STANDIN_KUBERNETES_VERSION"),
        ) {
            (Some(v), _) | (None, Ok(v)) => Some(v),
            (None, Err(_)) => {
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

/// What ends an executable stamped with its version (ELF ignores bytes after its sections).
const STAMP_PREFIX: &[u8] = b"\nkubeboot-stand-in-version=";
/// How far from its end a stamp is looked for.
const STAMP_WINDOW: u64 = 64;

/// `binary` with `version` stamped on its end: what a test release tree serves as that release's kubeadm or
/// kubelet (each copy has its own digest, and reports its own version).
pub fn stamped(binary: &[u8], version: &str) -> Vec<u8> {
    let mut out = binary.to_vec();
    out.extend_from_slice(STAMP_PREFIX);
    out.extend_from_slice(version.as_bytes());
    out.push(b'\n');
    out
}

fn stamp_of_own_executable() -> Result<Option<String>> {
    use std::io::{Read, Seek, SeekFrom};
    let exe = std::env::current_exe().context("locating the executable")?;
    let mut file =
        std::fs::File::open(&exe).with_context(|| format!("opening {}", exe.display()))?;
    let len = file.metadata()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(STAMP_WINDOW)))?;
    let mut tail = Vec::new();
    file.read_to_end(&mut tail)?;
    let Some(at) = tail
        .windows(STAMP_PREFIX.len())
        .rposition(|w| w == STAMP_PREFIX)
    else {
        return Ok(None);
    };
    let text = String::from_utf8_lossy(&tail[at + STAMP_PREFIX.len()..]);
    Ok(Some(text.trim().to_string()))
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
