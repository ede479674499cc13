//! The one way kubeboot writes files (the agent on the node, the generator into its output
//! directory): durable and atomic, so a kill or power loss at any point leaves either the old file
//! or the new one, never a torn one (temp file in the same directory, fsync, chmod, rename, fsync
//! the directory).

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use tempfile::NamedTempFile;

/// Writes `contents` to `path` with `mode`, atomically; creates missing parent directories (0755).
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    let mut tmp = staging_file(path)?;
    tmp.write_all(contents)
        .with_context(|| format!("writing {}", path.display()))?;
    commit_staged(tmp, path, mode)
}

/// How staging files are named. A SIGKILL (or power loss) between staging and commit leaves one
/// behind, with partial contents; `remove_staging_leftovers` clears them.
pub const STAGING_PREFIX: &str = ".kubeboot-";

/// Removes every staging file under `dir` (recursively, not following symlinks; a missing `dir`
/// is fine) and returns what it removed. Only safe while nothing else writes under `dir`.
pub fn remove_staging_leftovers(dir: &Path) -> Result<Vec<PathBuf>> {
    sweep(dir, true)
}

/// `remove_staging_leftovers` in `dir` itself, not in its subdirectories (for a directory such
/// as /etc, where the agent writes a few files among a tree it does not own).
pub fn remove_staging_leftovers_in(dir: &Path) -> Result<Vec<PathBuf>> {
    sweep(dir, false)
}

fn sweep(dir: &Path, recursive: bool) -> Result<Vec<PathBuf>> {
    let removed = staging_leftovers(dir, recursive)?;
    let mut parents = std::collections::BTreeSet::new();
    for path in &removed {
        fs::remove_file(path).with_context(|| format!("removing {}", path.display()))?;
        parents.insert(parent(path)?);
    }
    // The removals are durable once each directory that held one is synced (once).
    for dir in parents {
        sync_dir(dir)?;
    }
    Ok(removed)
}

/// The staging files under `dir` (in its subdirectories too when `recursive`, not following
/// symlinks; a missing `dir` has none), without removing them: what a dry run would remove.
pub fn staging_leftovers(dir: &Path, recursive: bool) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
    };
    for entry in entries {
        let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
        let (path, kind) = (entry.path(), entry.file_type()?);
        if kind.is_dir() {
            if recursive {
                found.extend(staging_leftovers(&path, true)?);
            }
        } else if kind.is_file()
            && entry
                .file_name()
                .to_string_lossy()
                .starts_with(STAGING_PREFIX)
        {
            found.push(path);
        }
    }
    Ok(found)
}

/// A temporary file in `path`'s directory (created if missing, 0755), to be filled and then moved
/// into place with `commit_staged`. It is removed when dropped uncommitted, so an error or a kill
/// never leaves a partial file at `path`.
pub fn staging_file(path: &Path) -> Result<NamedTempFile> {
    let dir = parent(path)?;
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    tempfile::Builder::new()
        .prefix(STAGING_PREFIX)
        .permissions(fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))
}

/// Makes a filled staging file durable and moves it to `path` with exactly `mode`: fsync, chmod,
/// rename, fsync the directory. The mode is set last before the rename, so nothing is executable
/// before its contents are complete.
pub fn commit_staged(tmp: NamedTempFile, path: &Path, mode: u32) -> Result<()> {
    tmp.as_file()
        .sync_all()
        .with_context(|| format!("writing {}", path.display()))?;
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting mode of {}", path.display()))?;
    tmp.persist(path)
        .with_context(|| format!("renaming into {}", path.display()))?;
    sync_dir(parent(path)?)
}

fn parent(path: &Path) -> Result<&Path> {
    path.parent()
        .with_context(|| format!("{} has no parent directory", path.display()))
}

/// Like `write_atomic`, but leaves the file alone (and returns false) when it already has exactly
/// these contents and mode: re-running a phase then changes nothing on disk.
pub fn write_if_changed(path: &Path, contents: &[u8], mode: u32) -> Result<bool> {
    if has_contents(path, contents, mode) {
        return Ok(false);
    }
    write_atomic(path, contents, mode)?;
    Ok(true)
}

/// Whether `path` is a file with exactly these contents and mode.
pub fn has_contents(path: &Path, contents: &[u8], mode: u32) -> bool {
    fs::metadata(path).is_ok_and(|meta| {
        meta.permissions().mode() & 0o7777 == mode
            && fs::read(path).ok().as_deref() == Some(contents)
    })
}

/// Makes a rename or create in `dir` durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing directory {}", dir.display()))
}

/// Creates `dir` (and parents) and sets its mode exactly.
pub fn create_dir_with_mode(dir: &Path, mode: u32) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting mode of {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_leftovers_are_removed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let kept = dir.path().join("a/kept.conf");
        write_atomic(&kept, b"kept", 0o644).unwrap();
        let left = staging_file(&dir.path().join("a/b/partial.conf")).unwrap();
        let (_, left) = left.keep().unwrap();
        assert_eq!(
            remove_staging_leftovers(dir.path()).unwrap(),
            vec![left.clone()]
        );
        assert!(!left.exists());
        assert_eq!(fs::read(&kept).unwrap(), b"kept");
        assert!(remove_staging_leftovers(&dir.path().join("missing"))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn staging_leftovers_in_one_directory_leave_its_subdirectories_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (_, here) = staging_file(&dir.path().join("hosts"))
            .unwrap()
            .keep()
            .unwrap();
        let (_, below) = staging_file(&dir.path().join("a/partial.conf"))
            .unwrap()
            .keep()
            .unwrap();
        assert_eq!(
            remove_staging_leftovers_in(dir.path()).unwrap(),
            vec![here.clone()]
        );
        assert!(!here.exists() && below.exists());
    }

    #[test]
    fn writes_with_mode_and_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/secret.key");
        write_atomic(&path, b"one", 0o600).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"one");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(!write_if_changed(&path, b"one", 0o600).unwrap());
        assert!(write_if_changed(&path, b"one", 0o644).unwrap());
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o644
        );
        assert!(write_if_changed(&path, b"two", 0o644).unwrap());
        assert_eq!(fs::read(&path).unwrap(), b"two");
        // No temporary files are left behind.
        assert_eq!(fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);
    }
}
