//! `bake`: what Packer runs while building an image. Installs the artifacts and the agent's units
//! (the same files the .deb ships, so with the package installed this changes nothing) and, with a
//! containerd release, containerd's unit in /etc/systemd/system; records the
//! artifacts with their digests in baked.json (so first boot verifies instead of downloading), and
//! leaves the image ready for its first boot: no machine-id, no cloud-init instance state, no
//! kubeboot state. Nothing is pre-pulled: container images cannot be verified against digests we
//! hold.

use std::fs;
use std::io::ErrorKind;
use std::path::Path;

use anyhow::{Context, Result};

use super::{install_with, ArtifactSet, BakedManifest, InstallOptions, InstallReport};
use crate::paths;
use crate::root::Root;

const MACHINE_ID: &str = "/etc/machine-id";
const DBUS_MACHINE_ID: &str = "/var/lib/dbus/machine-id";
/// cloud-init's state directory; `cloud-init clean --seed` empties it.
const CLOUD_INIT_STATE: &str = "/var/lib/cloud";
/// What `cloud-init clean --logs` removes.
const CLOUD_INIT_LOGS: [&str; 2] = ["/var/log/cloud-init.log", "/var/log/cloud-init-output.log"];
/// Where packaged units live (the .deb installs the same files there).
const UNIT_DIR: &str = "/lib/systemd/system";
/// The repository's units, by path under `UNIT_DIR`.
const UNITS: [(&str, &str); 5] = [
    (
        "kubeboot-agent.service",
        include_str!("../../../units/kubeboot-agent.service"),
    ),
    (
        "kubeboot-join-token.service",
        include_str!("../../../units/kubeboot-join-token.service"),
    ),
    (
        "kubeboot-join-token.timer",
        include_str!("../../../units/kubeboot-join-token.timer"),
    ),
    (
        "kubelet.service",
        include_str!("../../../units/kubelet.service"),
    ),
    (
        "kubelet.service.d/10-kubeadm.conf",
        include_str!("../../../units/kubelet.service.d/10-kubeadm.conf"),
    ),
];
/// Enabled in the image (as `systemctl enable` would): it starts the first boot's work.
const ENABLED_UNIT: &str = "kubeboot-agent.service";

/// Installs `set` into the image under `root`, records baked.json and cleans first-boot state.
pub fn bake(set: &ArtifactSet, root: &Root, options: &InstallOptions) -> Result<InstallReport> {
    let report = install_with(set, root, options)?;
    install_units(root)?;
    if set.includes("containerd") {
        // Without it, the image's unit would keep starting the image's containerd.
        super::write_containerd_unit(root)?;
    }
    BakedManifest {
        files: report.files().cloned().collect(),
    }
    .save(root)?;
    prepare_first_boot(root)?;
    Ok(report)
}

/// Writes the units (unchanged files are left alone) and enables the agent's unit by linking it
/// into the `.wants` directory of every target its `[Install]` section names.
pub fn install_units(root: &Root) -> Result<()> {
    for (name, text) in UNITS {
        root.write_if_changed(Path::new(UNIT_DIR).join(name), text.as_bytes(), 0o644)?;
    }
    let unit_text = UNITS
        .iter()
        .find(|(name, _)| *name == ENABLED_UNIT)
        .map(|(_, text)| *text)
        .unwrap_or_default();
    for target in wanted_by(unit_text) {
        let wants = root.path(format!("/etc/systemd/system/{target}.wants"));
        let link = wants.join(ENABLED_UNIT);
        if fs::symlink_metadata(&link).is_ok() {
            continue;
        }
        fs::create_dir_all(&wants).with_context(|| format!("creating {}", wants.display()))?;
        std::os::unix::fs::symlink(Path::new(UNIT_DIR).join(ENABLED_UNIT), &link)
            .with_context(|| format!("enabling {ENABLED_UNIT} in {}", wants.display()))?;
    }
    Ok(())
}

/// The targets in `WantedBy=` lines of a unit's `[Install]` section.
fn wanted_by(unit: &str) -> Vec<&str> {
    let mut in_install = false;
    let mut targets = Vec::new();
    for line in unit.lines().map(str::trim) {
        if line.starts_with('[') {
            in_install = line == "[Install]";
        } else if let Some(value) = line.strip_prefix("WantedBy=").filter(|_| in_install) {
            targets.extend(value.split_whitespace());
        }
    }
    targets
}

/// Removes what identifies the build VM, so every VM made from the image is a new machine.
pub fn prepare_first_boot(root: &Root) -> Result<()> {
    // Empty, not absent: systemd then generates a fresh id at first boot (and treats the boot as
    // the first one, running presets), which is what Debian's image builds do.
    root.write_atomic(MACHINE_ID, b"", 0o444)?;
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
    // The agent's phase state: a baked image must start with none.
    remove(&root.path(paths::STATE_DIR))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_wanted_by_from_the_install_section_only() {
        let unit =
            "[Unit]\nWantedBy=nope.target\n[Install]\nWantedBy=multi-user.target other.target\n";
        assert_eq!(wanted_by(unit), ["multi-user.target", "other.target"]);
        let agent = UNITS.iter().find(|(n, _)| *n == ENABLED_UNIT).unwrap().1;
        assert_eq!(wanted_by(agent), ["multi-user.target"]);
    }
}
