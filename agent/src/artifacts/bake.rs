//! `bake`: what Packer runs while building an image. Installs the artifacts, records them with
//! their digests in baked.json (so first boot verifies instead of downloading), and leaves the
//! image ready for its first boot: no machine-id, no cloud-init instance state, no kubeboot state.
//! Nothing is pre-pulled: container images cannot be verified against digests we hold.

use std::fs;
use std::io::ErrorKind;
use std::path::Path;

use anyhow::{Context, Result};

use super::{install_with, ArtifactSet, BakedManifest, InstallOptions, InstallReport};
use crate::fsx;
use crate::root::Root;

const MACHINE_ID: &str = "/etc/machine-id";
const DBUS_MACHINE_ID: &str = "/var/lib/dbus/machine-id";
/// cloud-init's state directory; `cloud-init clean --seed` empties it.
const CLOUD_INIT_STATE: &str = "/var/lib/cloud";
/// What `cloud-init clean --logs` removes.
const CLOUD_INIT_LOGS: [&str; 2] = ["/var/log/cloud-init.log", "/var/log/cloud-init-output.log"];
/// The agent's phase state; a baked image must start with none.
const AGENT_STATE: &str = "/var/lib/kubeboot";

/// Installs `set` into the image under `root`, records baked.json and cleans first-boot state.
pub fn bake(set: &ArtifactSet, root: &Root, options: &InstallOptions) -> Result<InstallReport> {
    let report = install_with(set, root, options)?;
    BakedManifest {
        files: report.files().cloned().collect(),
    }
    .save(root)?;
    prepare_first_boot(root)?;
    Ok(report)
}

/// Removes what identifies the build VM, so every VM made from the image is a new machine.
pub fn prepare_first_boot(root: &Root) -> Result<()> {
    // Empty, not absent: systemd then generates a fresh id at first boot (and treats the boot as
    // the first one, running presets), which is what Debian's image builds do.
    fsx::write_atomic(&root.path(MACHINE_ID), b"", 0o444)?;
    // Debian links D-Bus' id to /etc/machine-id; a private copy would keep the build VM's id.
    let dbus = root.path(DBUS_MACHINE_ID);
    if fs::symlink_metadata(&dbus).is_ok_and(|m| !m.file_type().is_symlink()) {
        fs::remove_file(&dbus).with_context(|| format!("removing {}", dbus.display()))?;
        std::os::unix::fs::symlink(MACHINE_ID, &dbus)
            .with_context(|| format!("linking {} to {MACHINE_ID}", dbus.display()))?;
    }
    let cloud = root.path(CLOUD_INIT_STATE);
    if let Ok(entries) = fs::read_dir(&cloud) {
        for entry in entries {
            remove(&entry?.path())?;
        }
    }
    for log in CLOUD_INIT_LOGS {
        remove(&root.path(log))?;
    }
    remove(&root.path(AGENT_STATE))
}

/// Removes a file, symlink (not its target) or directory tree; absent is fine.
fn remove(path: &Path) -> Result<()> {
    let result = match fs::symlink_metadata(path) {
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => Err(e),
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
    };
    result.with_context(|| format!("removing {}", path.display()))
}
