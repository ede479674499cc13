//! `--root`: every path the agent reads or writes on the node goes through a `Root`, so tests can
//! run the real code unprivileged inside a temporary directory. Every write goes through its
//! methods too: under `--dry-run` the root carries an `Overlay`, writes land there instead of on
//! the node, and reads (`Root::path`) see the overlay first.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, Result};
use kubeboot_nodeconfig::fsx;
use tempfile::NamedTempFile;

use crate::overlay::Overlay;

#[derive(Debug, Clone)]
pub struct Root {
    dir: PathBuf,
    overlay: Option<Arc<Overlay>>,
}

impl Root {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            overlay: None,
        }
    }

    /// The real filesystem root of the node.
    pub fn system() -> Self {
        Self::new("/")
    }

    /// This root for a dry run: every write lands in `overlay`, nothing on the node.
    pub fn with_overlay(self, overlay: Overlay) -> Self {
        Self {
            overlay: Some(Arc::new(overlay)),
            ..self
        }
    }

    /// Where a dry run's writes went (None for a real run).
    pub fn overlay(&self) -> Option<&Overlay> {
        self.overlay.as_deref()
    }

    pub fn is_system(&self) -> bool {
        self.dir == Path::new("/")
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where `node_path` is on the node, whatever a dry run wrote: for command arguments and the
    /// run lock.
    pub fn live_path(&self, node_path: impl AsRef<Path>) -> PathBuf {
        self.dir.join(relative(node_path.as_ref()))
    }

    /// Where to read `node_path` (an absolute node path such as `/etc/kubeboot/node.yaml`): under
    /// a dry run, the overlay's copy once it wrote or removed the file, else the node's.
    pub fn path(&self, node_path: impl AsRef<Path>) -> PathBuf {
        let live = self.live_path(&node_path);
        match &self.overlay {
            Some(overlay) => overlay.read_path(relative(node_path.as_ref()), live),
            None => live,
        }
    }

    /// Where a write of `node_path` lands.
    fn target(&self, node_path: &Path) -> PathBuf {
        match &self.overlay {
            Some(overlay) => overlay.write_path(relative(node_path)),
            None => self.live_path(node_path),
        }
    }

    /// `fsx::write_atomic` of a node path.
    pub fn write_atomic(
        &self,
        node_path: impl AsRef<Path>,
        contents: &[u8],
        mode: u32,
    ) -> Result<()> {
        fsx::write_atomic(&self.target(node_path.as_ref()), contents, mode)
    }

    /// `fsx::write_if_changed` of a node path, compared with what a dry run wrote before.
    pub fn write_if_changed(
        &self,
        node_path: impl AsRef<Path>,
        contents: &[u8],
        mode: u32,
    ) -> Result<bool> {
        if fsx::has_contents(&self.path(&node_path), contents, mode) {
            return Ok(false);
        }
        self.write_atomic(node_path, contents, mode)?;
        Ok(true)
    }

    /// `fsx::create_dir_with_mode` of a node path; a dry run records the mode.
    pub fn create_dir_with_mode(&self, node_path: impl AsRef<Path>, mode: u32) -> Result<()> {
        let node_path = node_path.as_ref();
        if let Some(overlay) = &self.overlay {
            overlay.record_dir_mode(relative(node_path), mode);
        }
        fsx::create_dir_with_mode(&self.target(node_path), mode)
    }

    /// Sets the mode of an existing file or directory. A dry run copies a file into the overlay
    /// first, and records a directory's mode.
    pub fn set_mode(&self, node_path: impl AsRef<Path>, mode: u32) -> Result<()> {
        let node_path = node_path.as_ref();
        let (source, target) = (self.path(node_path), self.target(node_path));
        let context = || format!("setting the mode of {}", node_path.display());
        if let Some(overlay) = &self.overlay {
            if source.is_dir() {
                overlay.record_dir_mode(relative(node_path), mode);
                return Ok(());
            }
            if source != target {
                fs::create_dir_all(target.parent().expect("node paths have a parent"))
                    .with_context(context)?;
                fs::copy(&source, &target).with_context(context)?;
            }
        }
        fs::set_permissions(&target, fs::Permissions::from_mode(mode)).with_context(context)
    }

    /// Removes a file if present, durably.
    pub fn remove_file(&self, node_path: impl AsRef<Path>) -> Result<()> {
        let node_path = node_path.as_ref();
        if let Some(overlay) = &self.overlay {
            return overlay.remove(relative(node_path), &self.live_path(node_path));
        }
        let path = self.live_path(node_path);
        match fs::remove_file(&path) {
            Ok(()) => fsx::sync_dir(path.parent().expect("node paths have a parent")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).with_context(|| format!("removing {}", path.display())),
        }
    }

    /// The files in directory `node_path`, as node paths (a dry run's removals and writes
    /// included); none when it does not exist.
    pub fn list_dir(&self, node_path: &str) -> Result<Vec<String>> {
        let mut names = std::collections::BTreeSet::new();
        let dirs = [
            Some(self.live_path(node_path)),
            self.overlay
                .as_ref()
                .map(|o| o.own_path(relative(Path::new(node_path)))),
        ];
        for dir in dirs.into_iter().flatten() {
            let entries = match fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
            };
            for entry in entries {
                let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
                names.insert(format!(
                    "{node_path}/{}",
                    entry.file_name().to_string_lossy()
                ));
            }
        }
        Ok(names
            .into_iter()
            .filter(|p| self.path(p).exists())
            .collect())
    }

    /// `fsx::staging_file` for a node path; `commit_staged` moves it into place.
    pub fn staging_file(&self, node_path: impl AsRef<Path>) -> Result<NamedTempFile> {
        fsx::staging_file(&self.target(node_path.as_ref()))
    }

    /// `fsx::commit_staged` to a node path.
    pub fn commit_staged(
        &self,
        tmp: NamedTempFile,
        node_path: impl AsRef<Path>,
        mode: u32,
    ) -> Result<()> {
        fsx::commit_staged(tmp, &self.target(node_path.as_ref()), mode)
    }

    /// Removes the staging files a killed run left in `node_dir` (its subdirectories too when
    /// `recursive`) and returns them; a dry run only records that it would.
    pub fn remove_staging_leftovers(
        &self,
        node_dir: &str,
        recursive: bool,
    ) -> Result<Vec<PathBuf>> {
        let live = self.live_path(node_dir);
        let Some(overlay) = &self.overlay else {
            return if recursive {
                fsx::remove_staging_leftovers(&live)
            } else {
                fsx::remove_staging_leftovers_in(&live)
            };
        };
        let leftovers = fsx::staging_leftovers(&live, recursive)?;
        for leftover in &leftovers {
            let node_path = leftover
                .strip_prefix(&self.dir)
                .expect("found under the root");
            overlay.remove(node_path, leftover)?;
        }
        Ok(leftovers)
    }
}

fn relative(node_path: &Path) -> &Path {
    node_path.strip_prefix("/").unwrap_or(node_path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_absolute_paths() {
        assert_eq!(
            Root::new("/tmp/t").path("/etc/kubeboot/node.yaml"),
            PathBuf::from("/tmp/t/etc/kubeboot/node.yaml")
        );
        assert_eq!(Root::system().path("/etc/x"), PathBuf::from("/etc/x"));
        assert!(Root::system().is_system());
    }
}
