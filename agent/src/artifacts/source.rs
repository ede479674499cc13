//! Where artifacts come from: sources behind one trait, asked in order until one has the artifact.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use futures_util::future::BoxFuture;
use tempfile::NamedTempFile;

use super::baked::{Baked, BakedFile};
use super::fetch::Fetcher;
use super::progress::Progress;
use super::{sha256_file, tarball, Artifact, InstallOptions, Payload, SourceKind};
use crate::root::Root;

pub(super) trait Source: Send + Sync {
    fn kind(&self) -> SourceKind;

    /// Provides `artifact` verified, or says why this source does not have it (then the next
    /// source is asked). An error ends the install.
    fn provide<'a>(
        &'a self,
        artifact: &'a Artifact,
        root: &'a Root,
        progress: &'a Progress,
    ) -> BoxFuture<'a, Result<Provided>>;
}

pub(super) enum Provided {
    /// Already installed and verified at its final paths.
    InPlace(Vec<BakedFile>),
    /// Verified contents in temporary files beside their final paths, not yet renamed.
    Staged {
        files: Vec<Staged>,
        bytes: u64,
    },
    Unavailable(String),
}

/// A verified file waiting to be renamed to `record.path`.
pub(super) struct Staged {
    pub file: NamedTempFile,
    pub record: BakedFile,
}

/// One artifact as provided by the first source that had it.
pub(super) struct Obtained {
    pub artifact: Artifact,
    pub source: SourceKind,
    pub bytes: u64,
    pub skipped: Vec<String>,
    pub in_place: Vec<BakedFile>,
    pub staged: Vec<Staged>,
}

/// The sources in order of preference: the baked image, then the release mirror.
pub(super) fn chain(root: &Root, options: &InstallOptions) -> Result<Vec<Box<dyn Source>>> {
    Ok(vec![
        Box::new(Baked::load(root)),
        Box::new(Mirror {
            fetcher: Fetcher::new(options)?,
        }),
    ])
}

pub(super) async fn obtain(
    sources: &[Box<dyn Source>],
    artifact: Artifact,
    root: &Root,
    progress: &Progress,
) -> Result<Obtained> {
    let mut skipped = Vec::new();
    for source in sources {
        let (in_place, staged, bytes) = match source.provide(&artifact, root, progress).await? {
            Provided::Unavailable(reason) => {
                skipped.push(reason);
                continue;
            }
            Provided::InPlace(files) => (files, Vec::new(), 0),
            Provided::Staged { files, bytes } => (Vec::new(), files, bytes),
        };
        return Ok(Obtained {
            artifact,
            source: source.kind(),
            bytes,
            skipped,
            in_place,
            staged,
        });
    }
    bail!(
        "{}: no source has it ({})",
        artifact.name,
        skipped.join("; ")
    )
}

/// A server or directory with the upstream release layout, reached over https, http or file://.
struct Mirror {
    fetcher: Fetcher,
}

impl Source for Mirror {
    fn kind(&self) -> SourceKind {
        SourceKind::Mirror
    }

    fn provide<'a>(
        &'a self,
        artifact: &'a Artifact,
        root: &'a Root,
        progress: &'a Progress,
    ) -> BoxFuture<'a, Result<Provided>> {
        Box::pin(async move {
            let expected = self.fetcher.checksum(artifact).await?;
            let record = |path: &PathBuf, sha256: String| BakedFile {
                name: artifact.name.clone(),
                version: artifact.version.clone(),
                path: path.clone(),
                sha256,
            };
            // Already installed by an earlier run (e.g. one killed before its done-marker):
            // nothing to download, and re-running changes nothing on disk.
            if let Payload::Binary { path } = &artifact.payload {
                let (installed, wanted) = (root.path(path), expected.clone());
                let current = tokio::task::spawn_blocking(move || sha256_file(&installed)).await?;
                if current.is_ok_and(|digest| digest == wanted) {
                    return Ok(Provided::InPlace(vec![record(path, expected)]));
                }
            }
            // The download is staged in the directory its contents go to, so that a binary is
            // renamed into place without a copy.
            let staged_next_to = match &artifact.payload {
                Payload::Binary { path } => path.clone(),
                Payload::Tarball { dir, .. } => dir.join(&artifact.name),
            };
            let mut download = root.staging_file(&staged_next_to)?;
            let bytes = self
                .fetcher
                .download(artifact, &expected, &mut download, progress)
                .await?;
            let files = match &artifact.payload {
                Payload::Binary { path } => vec![Staged {
                    file: download,
                    record: record(path, expected),
                }],
                Payload::Tarball { .. } => {
                    let (owned, root) = (artifact.clone(), root.clone());
                    tokio::task::spawn_blocking(move || {
                        tarball::extract(download.as_file(), &owned, &root)
                    })
                    .await?
                    .with_context(|| {
                        format!(
                            "{}: extracting {}",
                            artifact.name,
                            kubeboot_nodeconfig::redact_userinfo(&artifact.url)
                        )
                    })?
                }
            };
            Ok(Provided::Staged { files, bytes })
        })
    }
}
