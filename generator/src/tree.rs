//! The render output as an in-memory tree of files: rendered completely (and checked) before
//! anything is written, and read back the same way by `check`.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use kubeboot_nodeconfig::fsx;
use nix::fcntl::{renameat2, RenameFlags};

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
    /// details) and its parent directories (0700), the output directory itself (the empty path)
    /// included.
    pub fn add(&mut self, path: impl Into<PathBuf>, bytes: Vec<u8>) {
        let path = path.into();
        for dir in path.ancestors().skip(1) {
            self.dirs.insert(dir.to_path_buf(), DIR_MODE);
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

    /// Reads everything under `root` (contents and permission bits), `root` itself included.
    pub fn read(root: &Path) -> Result<Self> {
        let mut tree = Self::default();
        let meta = fs::metadata(root).with_context(|| format!("reading {}", root.display()))?;
        tree.dirs
            .insert(PathBuf::new(), meta.permissions().mode() & 0o7777);
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
    /// already have these contents and mode are left alone.
    pub fn write(&self, root: &Path) -> Result<()> {
        for (dir, mode) in &self.dirs {
            fsx::create_dir_with_mode(&root.join(dir), *mode)?;
        }
        for (path, file) in &self.files {
            fsx::write_if_changed(&root.join(path), &file.bytes, file.mode)?;
        }
        Ok(())
    }

    /// Makes `out` hold exactly this tree, all at once: the tree is written into a staging
    /// directory beside `out`, which then takes `out`'s place in one rename (the old tree is
    /// removed after), so a failure or a full disk leaves the old tree intact and nothing
    /// half-written. An `out` that already holds this tree is left alone (nothing touched).
    /// Refuses an `out` holding anything at its top level the tree does not, so a mistyped
    /// `--out` cannot wipe an unrelated directory. The caller holds the output's lock, so staging
    /// directories of `out` left by a killed render are removed first.
    pub fn replace(&self, out: &Path) -> Result<()> {
        self.refuse_foreign(out)?;
        let existing = match Tree::read(out) {
            Ok(existing) => Some(existing),
            Err(_) if !out.exists() => None,
            Err(e) => return Err(e),
        };
        if existing.as_ref() == Some(self) {
            return Ok(());
        }
        let (parent, name) = beside(out)?;
        let prefix = format!(".{name}.staging-");
        remove_stale_staging(parent, &prefix)?;
        let staging = tempfile::Builder::new()
            .prefix(&prefix)
            .rand_bytes(STAGING_RANDOM_CHARS)
            .tempdir_in(parent)
            .with_context(|| format!("creating a staging directory in {}", parent.display()))?;
        self.write(staging.path())?;
        fsx::sync_dir(staging.path())?;
        if existing.is_some() {
            // The old tree moves to the staging path and is removed with it.
            renameat2(
                None,
                staging.path(),
                None,
                out,
                RenameFlags::RENAME_EXCHANGE,
            )
            .with_context(|| format!("moving the new output into {}", out.display()))?;
        } else {
            fs::rename(staging.keep(), out)
                .with_context(|| format!("moving the new output into {}", out.display()))?;
        }
        fsx::sync_dir(parent)
    }

    /// Refuses an existing `out` that holds top-level entries this tree does not have and
    /// kubeboot-gen never writes, by their names alone: a mistyped `--out ~` must not be read.
    pub fn refuse_foreign(&self, out: &Path) -> Result<()> {
        if !out.exists() {
            return Ok(());
        }
        let mut foreign = Vec::new();
        for entry in fs::read_dir(out).with_context(|| format!("reading {}", out.display()))? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            if !self.top_level().any(|own| own == name) && !OWN_ENTRIES.contains(&name.as_str()) {
                foreign.push(name);
            }
        }
        if foreign.is_empty() {
            return Ok(());
        }
        foreign.sort();
        bail!(
            "{} holds {}, which kubeboot-gen does not write; render into a new directory or one of an earlier render",
            out.display(),
            foreign.join(", ")
        )
    }

    /// The names of the entries directly under the root.
    fn top_level(&self) -> impl Iterator<Item = &str> {
        self.files
            .keys()
            .chain(self.dirs.keys())
            .filter_map(|p| p.components().next())
            .filter_map(|c| c.as_os_str().to_str())
    }
}

/// The directory `out` is in and `out`'s own name, for the files kept beside it.
pub(crate) fn beside(out: &Path) -> Result<(&Path, String)> {
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = out
        .file_name()
        .with_context(|| format!("{}: not a directory name", out.display()))?;
    Ok((parent, name.to_string_lossy().into_owned()))
}

/// Length of the random part of a staging directory's name (tempfile's default, made explicit
/// because the sweep matches it: `.out.staging-x.staging-abcdef` is another output's).
const STAGING_RANDOM_CHARS: usize = 6;

/// Removes `PREFIX` + random part directories in `parent`: staging directories a killed render
/// left behind.
fn remove_stale_staging(parent: &Path, prefix: &str) -> Result<()> {
    let entries = fs::read_dir(parent).with_context(|| format!("reading {}", parent.display()))?;
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let stale = name
            .to_str()
            .and_then(|n| n.strip_prefix(prefix))
            .is_some_and(|random| {
                random.len() == STAGING_RANDOM_CHARS
                    && random.chars().all(|c| c.is_ascii_alphanumeric())
            });
        if stale {
            fs::remove_dir_all(entry.path())
                .with_context(|| format!("removing {}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// Everything a render may write at the top of its output directory (a spec change may drop the
/// Azure files or the local secrets, and their old copies go with the old tree).
const OWN_ENTRIES: &[&str] = &[
    crate::render::AZURE_JSON,
    crate::render::EFFECTIVE_SPEC,
    "arm",
    "pools",
    crate::secrets::LOCAL_DIR,
];
