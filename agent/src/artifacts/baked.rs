//! The baked source: artifacts that `kubeboot-agent bake` put into the image, recorded with their
//! digests in `/etc/kubeboot/baked.json`. Each file is re-hashed on disk before it is trusted.
//!
//! A baked file that no longer matches its record (corrupted disk, tampered image) is reported
//! loudly and passed over, so the next source (the mirror) re-fetches and replaces it; without a
//! reachable mirror the install fails. Re-fetching rather than refusing outright: the mirror's
//! copy is verified independently of the image, and a node that repairs itself beats one that
//! cannot boot over a flipped bit.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

use super::source::{Provided, Source};
use super::{progress::Progress, sha256_file, Artifact, Members, Payload, SourceKind};
use crate::root::Root;

/// What `bake` installed into the image, with digests.
pub const BAKED_MANIFEST_PATH: &str = "/etc/kubeboot/baked.json";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BakedManifest {
    pub files: Vec<BakedFile>,
}

/// One installed file: which artifact it belongs to, its version, node path and SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BakedFile {
    pub name: String,
    pub version: String,
    pub path: PathBuf,
    pub sha256: String,
}

impl BakedManifest {
    /// The manifest under `root`, or `None` when the image was not baked.
    pub fn load(root: &Root) -> Result<Option<BakedManifest>> {
        let path = root.path(BAKED_MANIFEST_PATH);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        serde_json::from_str(&text)
            .map(Some)
            .with_context(|| format!("{}: not a baked-artifacts manifest", path.display()))
    }

    pub fn save(&self, root: &Root) -> Result<()> {
        let mut json = serde_json::to_vec_pretty(self)?;
        json.push(b'\n');
        root.write_atomic(BAKED_MANIFEST_PATH, &json, 0o644)
    }
}

pub(super) struct Baked {
    manifest: BakedManifest,
}

impl Baked {
    /// An unreadable manifest is treated as an unbaked image (with a warning): the mirror then
    /// provides everything, verified.
    pub(super) fn load(root: &Root) -> Baked {
        let manifest = BakedManifest::load(root).unwrap_or_else(|e| {
            log::warn!("ignoring the baked artifacts: {e:#}");
            None
        });
        Baked {
            manifest: manifest.unwrap_or_default(),
        }
    }

    /// Why the manifest does not describe `artifact` completely, if it does not.
    fn missing(&self, artifact: &Artifact, entries: &[&BakedFile]) -> Option<String> {
        if entries.is_empty() {
            return Some(format!("{} is not baked into this image", artifact.name));
        }
        if let Some(other) = entries.iter().find(|f| f.version != artifact.version) {
            return Some(format!(
                "baked {} is {}, not {}",
                artifact.name, other.version, artifact.version
            ));
        }
        let has = |path: &Path| entries.iter().any(|f| f.path == path);
        let needed: Vec<PathBuf> = match &artifact.payload {
            Payload::Binary { path } => vec![path.clone()],
            Payload::Tarball { dir, members, .. } => match members {
                Members::Only(names)
                | Members::All {
                    required: names, ..
                } => names.iter().map(|n| dir.join(n)).collect(),
            },
        };
        needed.iter().find(|p| !has(p)).map(|p| {
            format!(
                "{BAKED_MANIFEST_PATH} does not list {} for {}",
                p.display(),
                artifact.name
            )
        })
    }
}

impl Source for Baked {
    fn kind(&self) -> SourceKind {
        SourceKind::Baked
    }

    fn provide<'a>(
        &'a self,
        artifact: &'a Artifact,
        root: &'a Root,
        _progress: &'a Progress,
    ) -> BoxFuture<'a, Result<Provided>> {
        Box::pin(async move {
            let entries: Vec<&BakedFile> = self
                .manifest
                .files
                .iter()
                .filter(|f| f.name == artifact.name)
                .collect();
            if let Some(reason) = self.missing(artifact, &entries) {
                return Ok(Provided::Unavailable(reason));
            }
            let entries: Vec<BakedFile> = entries.into_iter().cloned().collect();
            let root = root.clone();
            let checked = tokio::task::spawn_blocking(move || verify(&entries, &root)).await?;
            Ok(match checked {
                Ok(files) => Provided::InPlace(files),
                Err(reason) => {
                    log::warn!("TAMPERED OR CORRUPTED baked artifact: {reason}; re-fetching it");
                    Provided::Unavailable(reason)
                }
            })
        })
    }
}

/// The entries back when every file on disk still has its recorded digest, else what differs.
fn verify(entries: &[BakedFile], root: &Root) -> Result<Vec<BakedFile>, String> {
    for entry in entries {
        let path = root.path(&entry.path);
        match sha256_file(&path) {
            Ok(actual) if actual == entry.sha256 => {}
            Ok(actual) => {
                return Err(format!(
                    "baked {} has sha256 {actual}, but {BAKED_MANIFEST_PATH} records {}",
                    path.display(),
                    entry.sha256
                ))
            }
            Err(e) => {
                return Err(format!(
                    "baked {} listed in {BAKED_MANIFEST_PATH} cannot be read: {e}",
                    path.display()
                ))
            }
        }
    }
    Ok(entries.to_vec())
}
