//! The render output as an in-memory tree of files: rendered completely (and checked) before
//! anything is written, and read back the same way by `check`.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use kubeboot_nodeconfig::fsx;

use crate::secrets::{DIR_MODE, FILE_MODE};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputFile {
    pub bytes: Vec<u8>,
    pub mode: u32,
}

/// Files and directories by path relative to the output directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tree {
    pub files: BTreeMap<PathBuf, OutputFile>,
    pub dirs: BTreeMap<PathBuf, u32>,
}

impl Tree {
    /// Adds a file readable by its owner only (every output may hold secrets or cluster
    /// details) and its parent directories (0700).
    pub fn add(&mut self, path: impl Into<PathBuf>, bytes: Vec<u8>) {
        let path = path.into();
        for dir in path.ancestors().skip(1) {
            if !dir.as_os_str().is_empty() {
                self.dirs.insert(dir.to_path_buf(), DIR_MODE);
            }
        }
        self.files.insert(
            path,
            OutputFile {
                bytes,
                mode: FILE_MODE,
            },
        );
    }

    pub fn get(&self, path: impl AsRef<Path>) -> Option<&[u8]> {
        self.files.get(path.as_ref()).map(|f| f.bytes.as_slice())
    }

    /// Reads everything under `root` (contents and permission bits).
    pub fn read(root: &Path) -> Result<Self> {
        let mut tree = Self::default();
        let mut pending = vec![PathBuf::new()];
        while let Some(rel) = pending.pop() {
            let dir = root.join(&rel);
            for entry in fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
                let entry = entry?;
                let rel_path = rel.join(entry.file_name());
                let meta = entry.metadata()?;
                let mode = meta.permissions().mode() & 0o7777;
                if meta.is_dir() {
                    tree.dirs.insert(rel_path.clone(), mode);
                    pending.push(rel_path);
                } else {
                    let bytes = fs::read(entry.path())
                        .with_context(|| format!("reading {}", entry.path().display()))?;
                    tree.files.insert(rel_path, OutputFile { bytes, mode });
                }
            }
        }
        Ok(tree)
    }

    /// Writes every file atomically under `root`, directories first with their modes. Files that
    /// already have these contents and mode are left alone, so a re-render that changes nothing
    /// touches nothing.
    pub fn write(&self, root: &Path) -> Result<()> {
        for (dir, mode) in &self.dirs {
            fsx::create_dir_with_mode(&root.join(dir), *mode)?;
        }
        for (path, file) in &self.files {
            fsx::write_if_changed(&root.join(path), &file.bytes, file.mode)?;
        }
        Ok(())
    }
}
