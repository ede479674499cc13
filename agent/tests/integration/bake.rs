//! `bake` leaves an image with verified artifacts, baked.json and no first-boot state; the first
//! boot's install then downloads nothing.

// Shared with the other artifact tests and the benchmark, which use other parts of it.
#[allow(dead_code)]
use crate::release;

use std::path::Path;

use kubeboot_agent::artifacts::{
    bake, install_with, ArtifactSet, BakedManifest, InstallOptions, SourceKind, CONTAINERD_UNIT,
};
use kubeboot_agent::root::Root;
use kubeboot_nodeconfig::ToolRelease;
use kubeboot_test_kit::output::text;
use release::server::ReleaseServer;
use release::ReleaseTree;

fn write(root: &Path, path: &str, contents: &str) {
    let target = root.join(path);
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    std::fs::write(target, contents).unwrap();
}

#[test]
fn bake_installs_records_and_cleans_first_boot_state() {
    let server = ReleaseServer::start();
    ReleaseTree::generate(50_000).serve(&server);
    let base = server.url();
    let set = ArtifactSet::new(
        release::VERSION.parse().unwrap(),
        release::ARCH,
        &base,
        Some(&release::crictl_release(&base)),
        Some(&release::cni_release(&base)),
    );
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path();
    // The build VM's identity and state, as Packer leaves it.
    write(
        image,
        "etc/machine-id",
        "0123456789abcdef0123456789abcdef\n",
    );
    write(
        image,
        "var/lib/dbus/machine-id",
        "0123456789abcdef0123456789abcdef\n",
    );
    write(
        image,
        "var/lib/cloud/instances/build-vm/user-data.txt",
        "#cloud-config\n",
    );
    std::os::unix::fs::symlink(
        image.join("var/lib/cloud/instances/build-vm"),
        image.join("var/lib/cloud/instance"),
    )
    .unwrap();
    write(
        image,
        "var/lib/cloud/seed/nocloud/user-data",
        "#cloud-config\n",
    );
    write(image, "var/lib/cloud/data/instance-id", "build-vm\n");
    write(image, "var/log/cloud-init.log", "log\n");
    write(image, "var/log/cloud-init-output.log", "log\n");
    write(image, "var/log/syslog", "kept\n");
    write(image, "var/lib/kubeboot/phases/preflight.done", "");

    let root = Root::new(image);
    let report = bake(&set, &root, &InstallOptions::default()).unwrap();
    assert!(report
        .artifacts
        .iter()
        .all(|a| a.source == SourceKind::Mirror));

    assert_eq!(std::fs::read(image.join("etc/machine-id")).unwrap(), b"");
    assert_eq!(
        std::fs::read_link(image.join("var/lib/dbus/machine-id")).unwrap(),
        Path::new("/etc/machine-id")
    );
    assert_eq!(
        std::fs::read_dir(image.join("var/lib/cloud"))
            .unwrap()
            .count(),
        0
    );
    assert!(!image.join("var/log/cloud-init.log").exists());
    assert!(!image.join("var/log/cloud-init-output.log").exists());
    assert!(image.join("var/log/syslog").exists());
    assert!(!image.join("var/lib/kubeboot").exists());

    // The repository's units, the agent's enabled.
    let repo_units = Path::new(env!("CARGO_MANIFEST_DIR")).join("../units");
    for unit in [
        "kubeboot-agent.service",
        "kubeboot-join-token.service",
        "kubeboot-join-token.timer",
        "kubelet.service",
        "kubelet.service.d/10-kubeadm.conf",
    ] {
        assert_eq!(
            std::fs::read(image.join("lib/systemd/system").join(unit)).unwrap(),
            std::fs::read(repo_units.join(unit)).unwrap(),
            "{unit}"
        );
    }
    assert_eq!(
        std::fs::read_link(
            image.join("etc/systemd/system/multi-user.target.wants/kubeboot-agent.service")
        )
        .unwrap(),
        Path::new("/lib/systemd/system/kubeboot-agent.service")
    );

    let manifest = BakedManifest::load(&root).unwrap().unwrap();
    let mut names: Vec<&str> = manifest.files.iter().map(|f| f.name.as_str()).collect();
    names.dedup();
    assert_eq!(
        names,
        ["kubelet", "kubeadm", "kubectl", "crictl", "cni-plugins"]
    );
    assert_eq!(manifest.files.len(), 4 + release::CNI_PLUGINS.len());
    for file in &manifest.files {
        let on_disk = std::fs::read(root.path(&file.path)).unwrap();
        assert_eq!(
            release::sha256_hex(&on_disk),
            file.sha256,
            "{:?}",
            file.path
        );
    }

    // First boot of a VM from this image: everything comes from the image.
    server.forget_requests();
    let first_boot = install_with(&set, &root, &InstallOptions::default()).unwrap();
    assert!(first_boot
        .artifacts
        .iter()
        .all(|a| a.source == SourceKind::Baked));
    assert!(server.seen().is_empty(), "{:?}", server.seen());
}

#[test]
fn cli_bake_installs_crictl_and_cni_plugins_by_default() {
    let server = ReleaseServer::start();
    ReleaseTree::generate(10_000).serve(&server);
    let base = server.url();
    let image = tempfile::tempdir().unwrap();
    cli_bake(&base, image.path(), &[]);
    assert!(image.path().join("usr/local/bin/crictl").exists());
    assert!(image.path().join("opt/cni/bin/bridge").exists());
    let manifest = BakedManifest::load(&Root::new(image.path()))
        .unwrap()
        .unwrap();
    assert!(manifest
        .files
        .iter()
        .any(|f| f.name == "crictl" && f.version == release::CRICTL_VERSION));
    assert!(manifest
        .files
        .iter()
        .any(|f| f.name == "cni-plugins" && f.version == release::CNI_VERSION));
}

#[test]
fn cli_bake_with_containerd_and_runc_records_them_and_installs_containerds_unit() {
    let server = ReleaseServer::start();
    ReleaseTree::generate(10_000).serve(&server);
    let base = server.url();
    let image = tempfile::tempdir().unwrap();
    cli_bake(
        &base,
        image.path(),
        &[
            "--containerd",
            release::CONTAINERD_VERSION,
            "--containerd-from",
            &release::containerd_release(&base).base_url,
            "--runc",
            release::RUNC_VERSION,
            "--runc-from",
            &release::runc_release(&base).base_url,
        ],
    );
    let root = Root::new(image.path());
    let unit = std::fs::read_to_string(root.path(CONTAINERD_UNIT)).unwrap();
    assert!(
        unit.contains("ExecStart=/usr/local/bin/containerd\n"),
        "{unit}"
    );
    let manifest = BakedManifest::load(&root).unwrap().unwrap();
    let baked = |name: &str| -> Vec<String> {
        manifest
            .files
            .iter()
            .filter(|f| f.name == name)
            .map(|f| format!("{} {}", f.version, f.path.display()))
            .collect()
    };
    assert_eq!(
        baked("containerd"),
        [
            "v2.1.4 /usr/local/bin/containerd",
            "v2.1.4 /usr/local/bin/containerd-shim-runc-v2",
            "v2.1.4 /usr/local/bin/ctr"
        ]
    );
    assert_eq!(baked("runc"), ["v1.3.0 /usr/local/bin/runc"]);

    // First boot: the container-runtime phase's set (the NodeConfig names the same releases, with
    // the `v`) comes from the image, nothing is downloaded.
    server.forget_requests();
    let runtime = ArtifactSet {
        artifacts: Vec::new(),
        ..ArtifactSet::new(
            release::VERSION.parse().unwrap(),
            release::ARCH,
            &base,
            None,
            None,
        )
    }
    .with_container_runtime(
        Some(&ToolRelease {
            version: format!("v{}", release::CONTAINERD_VERSION),
            base_url: release::containerd_release(&base).base_url,
        }),
        Some(&release::runc_release(&base)),
    );
    let first_boot = install_with(&runtime, &root, &InstallOptions::default()).unwrap();
    assert!(first_boot
        .artifacts
        .iter()
        .all(|a| a.source == SourceKind::Baked));
    assert!(server.seen().is_empty(), "{:?}", server.seen());
}

/// `kubeboot-agent bake` of the release tree at `base` into `image` (crictl and the CNI plugins
/// from the same server), plus `extra` arguments; asserts that it succeeds.
fn cli_bake(base: &str, image: &std::path::Path, extra: &[&str]) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_kubeboot-agent"))
        .args(["bake", "--version", release::VERSION, "--from", base])
        .args(["--crictl-from", &release::crictl_release(base).base_url])
        .args(["--cni-plugins-from", &release::cni_release(base).base_url])
        .args(extra)
        .arg("--root")
        .arg(image)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
}
