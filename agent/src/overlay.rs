//! A dry run's private layer over the node: `Root` sends every write, mode change and removal
//! here instead of onto the node, and reads see it first, so the phases run their real code and
//! the node is left exactly as it was. At the end `changes` says what a real run would change.
//!
//! It lives in the temporary directory (`$TMPDIR`), never under the root, and is removed when the
//! run ends; a dry run that was killed leaves it there, and the next dry run removes it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context as _, Result};
use similar::TextDiff;

use crate::error::Stop;

/// Names the temporary overlays; the owner's process id follows, so an abandoned one is known.
const TEMPORARY_PREFIX: &str = "kubeboot-dry-run-";

#[derive(Debug)]
pub struct Overlay {
    dir: PathBuf,
    /// Removed when the run ends (unless the operator asked to keep it, `--dry-run-dir`).
    temporary: bool,
    /// Node paths (relative to the root) the run removed.
    removed: Mutex<BTreeSet<PathBuf>>,
    /// Directories the run created or changed the mode of, with that mode.
    dir_modes: Mutex<BTreeMap<PathBuf, u32>>,
}

impl Overlay {
    /// A new overlay in the temporary directory, removed at the end of the run. Removes the
    /// overlays of dry runs that were killed first.
    pub fn temporary() -> Result<Self> {
        let tmp = std::env::temp_dir();
        remove_abandoned(&tmp);
        let dir = tempfile::Builder::new()
            .prefix(&format!("{TEMPORARY_PREFIX}{}-", std::process::id()))
            .tempdir_in(&tmp)
            .with_context(|| format!("creating the dry run's overlay in {}", tmp.display()))?
            .keep();
        Ok(Self::at(dir, true))
    }

    /// An overlay in `dir` (absent or empty, outside `root` unless that is `/`, where every
    /// directory is), kept after the run so the operator can read the files the run would write.
    pub fn kept_in(dir: &Path, root: &Path) -> Result<Self> {
        // Checked before anything is created: the parent must exist.
        let dir =
            std::path::absolute(dir).with_context(|| format!("resolving {}", dir.display()))?;
        let (parent, name) = (dir.parent(), dir.file_name());
        let dir = match (parent, name) {
            (Some(parent), Some(name)) => canonical(parent)?.join(name),
            _ => dir.clone(),
        };
        let root = canonical(root)?;
        if root != Path::new("/") && dir.starts_with(&root) {
            return Err(Stop::BadConfig(format!(
                "--dry-run-dir {} is under --root {}: a dry run writes nothing under the root",
                dir.display(),
                root.display()
            ))
            .into());
        }
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        if fs::read_dir(&dir)?.next().is_some() {
            return Err(
                Stop::BadConfig(format!("--dry-run-dir {} is not empty", dir.display())).into(),
            );
        }
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
            .with_context(|| format!("setting the mode of {}", dir.display()))?;
        Ok(Self::at(dir, false))
    }

    fn at(dir: PathBuf, temporary: bool) -> Self {
        Self {
            dir,
            temporary,
            removed: Mutex::default(),
            dir_modes: Mutex::default(),
        }
    }

    /// Where the node path `relative` is read: the overlay's copy once the run wrote or removed
    /// it (a directory only when the node has none), else `live`.
    pub(crate) fn read_path(&self, relative: &Path, live: PathBuf) -> PathBuf {
        let own = self.dir.join(relative);
        if self.removed.lock().unwrap().contains(relative) {
            return own;
        }
        match fs::symlink_metadata(&own) {
            Ok(meta) if !meta.is_dir() || !live.exists() => own,
            _ => live,
        }
    }

    /// Where the overlay keeps the node path `relative`.
    pub(crate) fn own_path(&self, relative: &Path) -> PathBuf {
        self.dir.join(relative)
    }

    /// Where a write of the node path `relative` lands (it is no longer removed).
    pub(crate) fn write_path(&self, relative: &Path) -> PathBuf {
        self.removed.lock().unwrap().remove(relative);
        self.own_path(relative)
    }

    pub(crate) fn record_dir_mode(&self, relative: &Path, mode: u32) {
        self.dir_modes
            .lock()
            .unwrap()
            .insert(relative.to_path_buf(), mode);
    }

    /// Removes the node path `relative` (at `live` on the node) from the run's view.
    pub(crate) fn remove(&self, relative: &Path, live: &Path) -> Result<()> {
        let own = self.own_path(relative);
        match fs::remove_file(&own) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing {}", own.display())),
        }
        if fs::symlink_metadata(live).is_ok() {
            self.removed.lock().unwrap().insert(relative.to_path_buf());
        }
        Ok(())
    }

    /// What a real run would change on the node under `root`, per path: a unified diff for text,
    /// a line for binaries, mode changes, new directories and removals. The contents of private
    /// files (no access for group or others: keys, tokens, kubeconfigs) are never shown.
    pub fn changes(&self, root: &Path) -> Result<Vec<String>> {
        let mut changes = BTreeMap::new();
        for (relative, &mode) in self.dir_modes.lock().unwrap().iter() {
            let node_path = Path::new("/").join(relative);
            match fs::metadata(root.join(relative)) {
                Err(_) => {
                    changes.insert(
                        node_path.clone(),
                        format!(
                            "would create directory {} ({mode:04o})",
                            node_path.display()
                        ),
                    );
                }
                Ok(meta) if meta.permissions().mode() & 0o7777 != mode => {
                    changes.insert(
                        node_path.clone(),
                        mode_change(&node_path, meta.permissions().mode() & 0o7777, mode),
                    );
                }
                Ok(_) => {}
            }
        }
        for own in files_under(&self.dir)? {
            let relative = own
                .strip_prefix(&self.dir)
                .expect("found under the overlay");
            let node_path = Path::new("/").join(relative);
            if let Some(change) = file_change(&node_path, &own, &root.join(relative))? {
                changes.insert(node_path, change);
            }
        }
        for relative in self.removed.lock().unwrap().iter() {
            let node_path = Path::new("/").join(relative);
            changes.insert(
                node_path.clone(),
                format!("would remove {}", node_path.display()),
            );
        }
        Ok(changes.into_values().collect())
    }
}

impl Drop for Overlay {
    fn drop(&mut self) {
        if self.temporary {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

fn canonical(dir: &Path) -> Result<PathBuf> {
    fs::canonicalize(dir).with_context(|| format!("resolving {}", dir.display()))
}

/// Removes the overlays in `tmp` whose dry run is no longer running (it was killed). Best
/// effort: one that cannot be removed only wastes space.
fn remove_abandoned(tmp: &Path) {
    let Ok(entries) = fs::read_dir(tmp) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(owner) = name
            .strip_prefix(TEMPORARY_PREFIX)
            .and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        if !Path::new("/proc").join(owner).exists() {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// Every file (not directory) under `dir`, sorted.
fn files_under(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
        if entry.file_type()?.is_dir() {
            files.extend(files_under(&entry.path())?);
        } else {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(files)
}

/// A file's contents and mode, None when it does not exist.
fn contents_and_mode(path: &Path) -> Result<Option<(Vec<u8>, u32)>> {
    match fs::read(path) {
        Ok(bytes) => {
            let mode = fs::metadata(path)?.permissions().mode() & 0o7777;
            Ok(Some((bytes, mode)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn is_private(mode: u32) -> bool {
    mode & 0o077 == 0
}

fn mode_change(node_path: &Path, from: u32, to: u32) -> String {
    format!(
        "would change the mode of {} from {from:04o} to {to:04o}",
        node_path.display()
    )
}

/// How the file the run wrote at `own` differs from the node's at `live`, if it does.
fn file_change(node_path: &Path, own: &Path, live: &Path) -> Result<Option<String>> {
    let (new, mode) = contents_and_mode(own)?.expect("listed in the overlay");
    let old = contents_and_mode(live)?;
    let shown = node_path.display();
    let mut change = String::new();
    if let Some((old, old_mode)) = &old {
        if *old == new && *old_mode == mode {
            return Ok(None);
        }
        if *old_mode != mode {
            change = mode_change(node_path, *old_mode, mode);
        }
        if *old == new {
            return Ok(Some(change));
        }
        if !change.is_empty() {
            change.push('\n');
        }
    }
    let old_text = old.as_ref().map(|(bytes, _)| std::str::from_utf8(bytes));
    let private = is_private(mode) || old.as_ref().is_some_and(|(_, m)| is_private(*m));
    match (std::str::from_utf8(&new), old_text) {
        _ if private => write!(
            change,
            "would write {shown} ({mode:04o}, {} bytes, contents withheld)",
            new.len()
        )?,
        (Ok(new), None | Some(Ok(_))) => {
            let old = old_text.and_then(Result::ok).unwrap_or("");
            let from = if old_text.is_some() {
                shown.to_string()
            } else {
                "/dev/null".to_string()
            };
            let verb = if old_text.is_some() {
                "change"
            } else {
                "write"
            };
            writeln!(change, "would {verb} {shown} ({mode:04o}):")?;
            write!(
                change,
                "{}",
                TextDiff::from_lines(old, new)
                    .unified_diff()
                    .header(&from, &format!("{shown} (dry run)"))
            )?;
        }
        _ => write!(
            change,
            "would write {shown} ({mode:04o}, {} bytes, binary)",
            new.len()
        )?,
    }
    Ok(Some(change.trim_end().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::root::Root;

    #[test]
    fn writes_land_in_the_overlay_and_the_changes_say_what_they_would_be() {
        let node = tempfile::tempdir().unwrap();
        let live = Root::new(node.path());
        live.write_atomic("/etc/hosts", b"127.0.0.1 localhost\n", 0o644)
            .unwrap();
        live.write_atomic("/etc/old.conf", b"old\n", 0o644).unwrap();
        live.write_atomic("/etc/mode.conf", b"same\n", 0o644)
            .unwrap();
        let before = kubeboot_test_kit::snapshot::take(node.path());

        let overlay_dir = tempfile::tempdir().unwrap();
        let overlay = Overlay::kept_in(overlay_dir.path(), node.path()).unwrap();
        let dry = Root::new(node.path()).with_overlay(overlay);
        dry.write_if_changed("/etc/hosts", b"127.0.0.1 localhost\n10.0.0.4 api\n", 0o644)
            .unwrap();
        assert_eq!(
            fs::read_to_string(dry.path("/etc/hosts")).unwrap(),
            "127.0.0.1 localhost\n10.0.0.4 api\n"
        );
        dry.write_atomic("/etc/kubeboot/token", b"s3cr3t-token\n", 0o600)
            .unwrap();
        dry.create_dir_with_mode("/etc/kubernetes/pki", 0o700)
            .unwrap();
        dry.remove_file("/etc/old.conf").unwrap();
        assert!(!dry.path("/etc/old.conf").exists());
        assert_eq!(
            dry.list_dir("/etc").unwrap(),
            [
                "/etc/hosts",
                "/etc/kubeboot",
                "/etc/kubernetes",
                "/etc/mode.conf"
            ]
        );
        dry.set_mode("/etc/mode.conf", 0o600).unwrap();
        assert!(!dry
            .write_if_changed("/etc/mode.conf", b"same\n", 0o600)
            .unwrap());

        assert_eq!(kubeboot_test_kit::snapshot::take(node.path()), before);
        let changes = dry.overlay().unwrap().changes(node.path()).unwrap();
        let all = changes.join("\n");
        assert!(all.contains("+10.0.0.4 api"), "{all}");
        assert!(
            all.contains("--- /etc/hosts\n+++ /etc/hosts (dry run)"),
            "{all}"
        );
        assert!(
            all.contains("would write /etc/kubeboot/token (0600, 13 bytes, contents withheld)"),
            "{all}"
        );
        assert!(!all.contains("s3cr3t"), "{all}");
        assert!(
            all.contains("would create directory /etc/kubernetes/pki (0700)"),
            "{all}"
        );
        assert!(all.contains("would remove /etc/old.conf"), "{all}");
        assert!(
            all.contains("would change the mode of /etc/mode.conf from 0644 to 0600"),
            "{all}"
        );
        assert_eq!(changes.len(), 5, "{all}");
    }

    #[test]
    fn a_temporary_overlay_goes_with_its_run_and_an_abandoned_one_with_the_next() {
        let tmp = tempfile::tempdir().unwrap();
        // No process has this id (pid_max is at most 2^22).
        let abandoned = tmp.path().join(format!("{TEMPORARY_PREFIX}99999999-x"));
        fs::create_dir_all(abandoned.join("etc")).unwrap();
        let alive = tmp
            .path()
            .join(format!("{TEMPORARY_PREFIX}{}-y", std::process::id()));
        fs::create_dir(&alive).unwrap();
        remove_abandoned(tmp.path());
        assert!(!abandoned.exists() && alive.exists());

        let overlay = Overlay::temporary().unwrap();
        let dir = overlay.dir.clone();
        assert!(dir.starts_with(std::env::temp_dir()) && dir.is_dir());
        drop(overlay);
        assert!(!dir.exists());
    }

    #[test]
    fn a_kept_overlay_is_refused_under_the_root_or_when_not_empty() {
        let node = tempfile::tempdir().unwrap();
        let err = Overlay::kept_in(&node.path().join("overlay"), node.path()).unwrap_err();
        assert!(format!("{err:#}").contains("under --root"), "{err:#}");
        assert!(!node.path().join("overlay").exists());
        let full = tempfile::tempdir().unwrap();
        fs::write(full.path().join("x"), "x").unwrap();
        let err = Overlay::kept_in(full.path(), node.path()).unwrap_err();
        assert!(format!("{err:#}").contains("not empty"), "{err:#}");
        // On a node (root /) every directory is under the root: the operator's choice stands.
        let on_node = node.path().join("kept");
        Overlay::kept_in(&on_node, Path::new("/")).unwrap();
        assert!(on_node.is_dir());
    }
}
