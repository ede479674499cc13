//! A secret-leak scanner for tests: given every secret value of a cluster, finds any of them in
//! logs, recorded command lines and environments, and files others may read.

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use base64::Engine;

/// One secret and the strings whose presence would reveal it.
#[derive(Debug, Clone)]
pub struct Needle {
    pub name: String,
    patterns: Vec<String>,
}

/// A place where a secret was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub secret: String,
    pub source: String,
}

impl Needle {
    /// For a PEM block every body line is a needle (a log may re-wrap or escape the newlines but
    /// keeps the base64 runs); for a bootstrap token, the secret half is enough (the token id is
    /// public by design); otherwise the value itself.
    pub fn new(name: &str, value: &str) -> Self {
        let value = value.trim();
        let patterns = if value.starts_with("-----BEGIN") {
            value
                .lines()
                .map(str::trim)
                .filter(|l| !l.starts_with("-----") && l.len() >= 16)
                .map(str::to_string)
                .collect()
        } else if let Some((_, secret)) = value
            .split_once('.')
            .filter(|(id, s)| id.len() == 6 && s.len() == 16)
        {
            vec![secret.to_string()]
        } else {
            vec![value.to_string()]
        };
        assert!(
            !patterns.is_empty(),
            "secret {name} yields nothing to search for"
        );
        Self {
            name: name.to_string(),
            patterns,
        }
    }
}

/// Every secret found in `bytes`, also inside base64(gzip(...)) or base64 wrapping (Azure custom
/// data and cloud-init `encoding: b64` are such wrappings).
pub fn scan(needles: &[Needle], source: &str, bytes: &[u8]) -> Vec<Hit> {
    let mut texts = vec![String::from_utf8_lossy(bytes).into_owned()];
    let compact: Vec<u8> = bytes
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    if let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(&compact) {
        let mut gunzipped = Vec::new();
        if flate2::read::GzDecoder::new(&decoded[..])
            .read_to_end(&mut gunzipped)
            .is_ok()
        {
            texts.push(String::from_utf8_lossy(&gunzipped).into_owned());
        }
        texts.push(String::from_utf8_lossy(&decoded).into_owned());
    }
    needles
        .iter()
        .filter(|n| {
            n.patterns
                .iter()
                .any(|p| texts.iter().any(|t| t.contains(p.as_str())))
        })
        .map(|n| Hit {
            secret: n.name.clone(),
            source: source.to_string(),
        })
        .collect()
}

/// Files under `dir` that group or others may read (anything but 0600/0700 or stricter).
pub fn readable_by_others(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            out.extend(readable_by_others(&path));
        } else if meta.is_file() && meta.permissions().mode() & 0o077 != 0 {
            out.push(path);
        }
    }
    out
}

/// Secrets in files under `dir` that are not private to their owner.
pub fn scan_tree(needles: &[Needle], dir: &Path) -> Vec<Hit> {
    readable_by_others(dir)
        .iter()
        .flat_map(|path| {
            let bytes = fs::read(path).unwrap_or_default();
            scan(needles, &path.display().to_string(), &bytes)
        })
        .collect()
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use std::io::Write;

    const KEY: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIJ7p0aQm2mH3n7Zp1X5oL2qV8b4c0d9e\n-----END PRIVATE KEY-----\n";

    fn needles() -> Vec<Needle> {
        vec![
            Needle::new("token", "abcdef.0123456789abcdef"),
            Needle::new("key", KEY),
            Needle::new("encryption", "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="),
        ]
    }

    fn names(hits: &[Hit]) -> Vec<&str> {
        hits.iter().map(|h| h.secret.as_str()).collect()
    }

    #[test]
    fn finds_planted_leaks_in_every_disguise() {
        let n = needles();
        assert!(scan(&n, "log", b"joined with token abcdef.<redacted>").is_empty());
        assert_eq!(
            names(&scan(
                &n,
                "argv",
                b"kubeadm join --token abcdef.0123456789abcdef"
            )),
            ["token"]
        );
        // A JSON call log escapes the newlines of a PEM key.
        let json = serde_json::to_string(&serde_json::json!({"env": {"K": KEY}})).unwrap();
        assert_eq!(names(&scan(&n, "calls.jsonl", json.as_bytes())), ["key"]);
        // Azure custom data: gzip, then base64.
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(b"secret: MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")
            .unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(gz.finish().unwrap());
        assert_eq!(
            names(&scan(&n, "custom-data.b64", b64.as_bytes())),
            ["encryption"]
        );
    }

    #[test]
    fn only_files_others_can_read_count() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, mode: u32| {
            let path = dir.path().join(name);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, KEY).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        };
        write("private/ca.key", 0o600);
        write("private/run.sh", 0o700);
        assert!(scan_tree(&needles(), dir.path()).is_empty());
        write("leaky/ca.key", 0o644);
        let hits = scan_tree(&needles(), dir.path());
        assert_eq!(names(&hits), ["key"]);
        assert!(hits[0].source.ends_with("leaky/ca.key"));
    }
}
