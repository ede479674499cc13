//! Secrets the rendered cluster contains, turned into byte strings to look for in everything a
//! guest sent back, and the NodeConfig read back out of a pool's rendered user data.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine;
use kubeboot_nodeconfig::NodeConfig;
use sha2::{Digest, Sha256};

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The NodeConfig that the user data's `write_files` puts at /etc/kubeboot/node.yaml.
pub fn node_config_from_user_data(user_data: &Path) -> Result<NodeConfig> {
    let text = std::fs::read_to_string(user_data)?;
    let doc: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&text).with_context(|| format!("{}", user_data.display()))?;
    let files = doc
        .get("write_files")
        .and_then(|v| v.as_sequence())
        .ok_or_else(|| anyhow!("{}: no write_files", user_data.display()))?;
    let entry = files
        .iter()
        .find(|f| f.get("path").and_then(|p| p.as_str()) == Some(kubeboot_nodeconfig::DEFAULT_PATH))
        .ok_or_else(|| {
            anyhow!(
                "{}: nothing writes {}",
                user_data.display(),
                kubeboot_nodeconfig::DEFAULT_PATH
            )
        })?;
    let content = entry.get("content").and_then(|c| c.as_str()).unwrap_or("");
    let encoding = entry
        .get("encoding")
        .and_then(|e| e.as_str())
        .unwrap_or("text/plain");
    let bytes = match encoding {
        "text/plain" => content.as_bytes().to_vec(),
        "b64" | "base64" => b64(content)?,
        "gz+b64" | "gzip+base64" | "gz+base64" | "gzip+b64" => gunzip(&b64(content)?)?,
        other => bail!("write_files encoding {other:?} not understood"),
    };
    kubeboot_nodeconfig::parse(std::str::from_utf8(&bytes)?)
        .map_err(|e| anyhow!("node.yaml in {}: {e}", user_data.display()))
}

fn b64(text: &str) -> Result<Vec<u8>> {
    let compact: String = text.split_whitespace().collect();
    Ok(base64::engine::general_purpose::STANDARD.decode(compact)?)
}

fn gunzip(bytes: &[u8]) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes).read_to_end(&mut out)?;
    Ok(out)
}

/// A named secret and the distinctive substrings that would reveal it.
#[derive(Debug, Clone)]
pub struct Needle {
    pub name: String,
    pub patterns: Vec<String>,
}

/// Secrets of a NodeConfig: the bootstrap token's secret half and every private key (matched by
/// its PEM body lines, so a re-wrapped or partial copy is found too).
pub fn needles(config: &NodeConfig) -> Vec<Needle> {
    let mut out: Vec<Needle> = config
        .bootstrap
        .token
        .iter()
        .map(|token| Needle {
            name: "bootstrap token".into(),
            patterns: vec![token
                .expose()
                .split_once('.')
                .map(|(_, secret)| secret.to_string())
                .unwrap_or_default()],
        })
        .collect();
    if let Some(pki) = &config.pki {
        for (field, _, _, pair) in pki.pairs() {
            out.push(pem_needle(
                &format!("pki.{field}.private"),
                pair.private.expose(),
            ));
        }
    }
    out
}

/// A PEM private key (from the generator's secrets) as a needle of its full-width body lines.
pub fn pem_needle(name: &str, pem: &str) -> Needle {
    Needle {
        name: name.into(),
        patterns: pem
            .lines()
            .filter(|l| !l.starts_with("-----") && l.len() >= 40)
            .map(str::to_string)
            .collect(),
    }
}

/// The first needle found in `haystack`, if any.
pub fn find<'a>(needles: &'a [Needle], haystack: &[u8]) -> Option<&'a Needle> {
    needles.iter().find(|n| {
        n.patterns
            .iter()
            .any(|p| !p.is_empty() && contains(haystack, p.as_bytes()))
    })
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
