//! Installing Kubernetes artifacts from a loopback release mirror, a `file://` mirror and a baked
//! image, and the fault table: every failure names the artifact and URL and installs nothing.

// Shared with the bake test and the benchmark, which use other parts of it.
#[allow(dead_code)]
use crate::release;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use kubeboot_agent::artifacts::{
    install_with, ArtifactSet, BakedManifest, InstallOptions, InstallReport, SourceKind, BIN_DIR,
    CNI_BIN_DIR, CONTAINERD_UNIT,
};
use kubeboot_agent::retry::Backoff;
use kubeboot_agent::root::Root;
use kubeboot_test_kit::output::text;
use release::server::{Fault, ReleaseServer};
use release::{binary_path, ReleaseTree, CNI_PLUGINS};

const BINARY_SIZE: usize = 300_000;

fn options() -> InstallOptions {
    InstallOptions {
        connect_timeout: Duration::from_secs(2),
        read_timeout: Duration::from_millis(400),
        retry: Backoff {
            initial: Duration::from_millis(10),
            max_delay: Duration::from_millis(40),
            max_attempts: 3,
            ..InstallOptions::default().retry
        },
        ..InstallOptions::default()
    }
}

fn set_for(base: &str) -> ArtifactSet {
    ArtifactSet::new(
        release::VERSION.parse().unwrap(),
        release::ARCH,
        base,
        Some(&release::crictl_release(base)),
        Some(&release::cni_release(base)),
    )
}

struct Case {
    server: ReleaseServer,
    tree: ReleaseTree,
    root: tempfile::TempDir,
}

impl Case {
    fn new() -> Case {
        let case = Case {
            server: ReleaseServer::start(),
            tree: ReleaseTree::generate(BINARY_SIZE),
            root: tempfile::tempdir().unwrap(),
        };
        case.tree.serve(&case.server);
        case
    }

    fn root(&self) -> Root {
        Root::new(self.root.path())
    }

    fn install(&self) -> anyhow::Result<InstallReport> {
        install_with(&set_for(&self.server.url()), &self.root(), &options())
    }

    fn install_err(&self) -> String {
        format!("{:#}", self.install().expect_err("the install must fail"))
    }

    /// Every file now under the root (relative paths), temporary ones included.
    fn files(&self) -> Vec<String> {
        let mut found = Vec::new();
        walk(self.root.path(), self.root.path(), &mut found);
        found.sort();
        found
    }
}

fn walk(base: &Path, dir: &Path, found: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            walk(base, &path, found);
        } else {
            found.push(path.strip_prefix(base).unwrap().display().to_string());
        }
    }
}

fn assert_installed(case: &Case) {
    let root = case.root();
    for name in ["kubelet", "kubeadm", "kubectl"] {
        let path = root.path(Path::new(BIN_DIR).join(name));
        assert_eq!(
            std::fs::read(&path).unwrap(),
            case.tree.body(&binary_path(name)),
            "{name}"
        );
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755, "{name}");
    }
    assert_eq!(
        std::fs::read(root.path("/usr/local/bin/crictl")).unwrap(),
        release::content("crictl", 4096)
    );
    for plugin in CNI_PLUGINS {
        let path = root.path(Path::new(CNI_BIN_DIR).join(plugin));
        assert_eq!(
            std::fs::read(&path).unwrap(),
            release::content(plugin, 2048)
        );
    }
    let mut expected: Vec<String> = ["kubelet", "kubeadm", "kubectl", "crictl"]
        .iter()
        .map(|n| format!("usr/local/bin/{n}"))
        .chain(CNI_PLUGINS.iter().map(|p| format!("opt/cni/bin/{p}")))
        .collect();
    expected.sort();
    let files: Vec<String> = case
        .files()
        .into_iter()
        .filter(|f| !f.starts_with("etc/"))
        .collect();
    // Exactly these: no LICENSE from the tarball, no temporary or partial files.
    assert_eq!(files, expected);
}

/// Runs a failing install and checks the error names the artifact and URL and nothing is left.
fn assert_fails_cleanly(case: &Case, path: &str, expected: &str) -> String {
    let error = case.install_err();
    let url = format!("{}{path}", case.server.url());
    assert!(error.contains(&url), "error should name {url}: {error}");
    assert!(
        error.contains(expected),
        "error should say {expected:?}: {error}"
    );
    assert!(error.contains("nothing was installed"), "{error}");
    assert_eq!(
        case.files(),
        Vec::<String>::new(),
        "nothing may be installed"
    );
    error
}

#[test]
fn installs_every_artifact_verified_from_a_mirror() {
    let case = Case::new();
    let report = case.install().unwrap();
    assert_installed(&case);
    let names: Vec<&str> = report.artifacts.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(
        names,
        ["kubelet", "kubeadm", "kubectl", "crictl", "cni-plugins"]
    );
    assert!(report
        .artifacts
        .iter()
        .all(|a| a.source == SourceKind::Mirror));
    assert_eq!(report.artifacts[0].bytes, BINARY_SIZE as u64);
    // Every installed file is reported with its digest.
    for file in report.files() {
        let on_disk = std::fs::read(case.root().path(&file.path)).unwrap();
        assert_eq!(release::sha256_hex(&on_disk), file.sha256);
    }
}

#[test]
fn wrong_digest_installs_nothing() {
    let mut case = Case::new();
    case.tree
        .set_checksum(&binary_path("kubectl"), "ab".repeat(32).as_bytes());
    case.tree.serve(&case.server);
    assert_fails_cleanly(&case, &binary_path("kubectl"), "SHA-256 mismatch");
    // A mismatch on a fresh download is final: retrying fetches the same wrong file.
    assert_eq!(case.server.requests_for(&binary_path("kubectl")).len(), 1);
}

#[test]
fn truncated_body_installs_nothing() {
    let case = Case::new();
    case.server
        .fault(&binary_path("kubelet"), Fault::Truncate(1000), usize::MAX);
    let error = assert_fails_cleanly(&case, &binary_path("kubelet"), "truncated body");
    assert!(
        error.contains(&format!("of {BINARY_SIZE} bytes")),
        "{error}"
    );
}

#[test]
fn not_found_is_final_and_installs_nothing() {
    let case = Case::new();
    case.server
        .fault(&binary_path("kubeadm"), Fault::Status(404), usize::MAX);
    assert_fails_cleanly(&case, &binary_path("kubeadm"), "HTTP 404");
    assert_eq!(case.server.requests_for(&binary_path("kubeadm")).len(), 1);
}

#[test]
fn server_errors_are_retried_then_reported() {
    let case = Case::new();
    case.server
        .fault(&binary_path("kubelet"), Fault::Status(503), usize::MAX);
    let error = assert_fails_cleanly(&case, &binary_path("kubelet"), "HTTP 503");
    assert!(error.contains("attempt 3 of 3"), "{error}");
    assert_eq!(case.server.requests_for(&binary_path("kubelet")).len(), 3);
}

#[test]
fn a_500_then_success_is_retried() {
    let case = Case::new();
    case.server
        .fault(&binary_path("kubelet"), Fault::Status(500), 1);
    case.install().unwrap();
    assert_installed(&case);
    assert_eq!(case.server.requests_for(&binary_path("kubelet")).len(), 2);
}

#[test]
fn stalled_connection_times_out_and_installs_nothing() {
    let case = Case::new();
    let trickle = Fault::Trickle {
        chunk: 10,
        interval: Duration::from_secs(2),
    };
    case.server
        .fault(&binary_path("kubectl"), trickle, usize::MAX);
    assert_fails_cleanly(&case, &binary_path("kubectl"), "stalled (read timeout)");
}

#[test]
fn connection_reset_installs_nothing() {
    let case = Case::new();
    case.server
        .fault(&release::crictl_path(), Fault::Reset(0), usize::MAX);
    let error = assert_fails_cleanly(&case, &release::crictl_path(), "crictl");
    assert!(
        error.contains("reset") || error.contains("truncated"),
        "{error}"
    );
}

#[test]
fn redirect_to_another_host_is_refused() {
    let case = Case::new();
    let elsewhere = format!(
        "http://localhost:{}{}",
        case.server.port(),
        binary_path("kubelet")
    );
    case.server.fault(
        &binary_path("kubelet"),
        Fault::Redirect(elsewhere),
        usize::MAX,
    );
    assert_fails_cleanly(&case, &binary_path("kubelet"), "redirect refused");
    assert!(case
        .server
        .seen()
        .iter()
        .all(|s| s.path != binary_path("kubelet") || s.range_from.is_none()));
}

#[test]
fn redirect_within_the_mirror_is_followed() {
    let mut case = Case::new();
    let moved = "/moved/kubelet";
    case.tree
        .add(moved, case.tree.body(&binary_path("kubelet")).to_vec());
    case.tree.serve(&case.server);
    case.server.fault(
        &binary_path("kubelet"),
        Fault::Redirect(format!("{}{moved}", case.server.url())),
        usize::MAX,
    );
    case.install().unwrap();
    assert_installed(&case);
    assert_eq!(case.server.requests_for(moved).len(), 1);
}

#[test]
fn interrupted_download_resumes_with_range() {
    let case = Case::new();
    case.server
        .fault(&binary_path("kubelet"), Fault::Reset(100_000), 1);
    let report = case.install().unwrap();
    assert_installed(&case);
    let requests = case.server.requests_for(&binary_path("kubelet"));
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(requests[0].range_from, None);
    let resumed_at = requests[1].range_from.expect("the retry asks for the rest");
    assert!(
        resumed_at > 0 && resumed_at <= 100_000,
        "resumed at {resumed_at}"
    );
    assert_eq!(report.artifacts[0].bytes, BINARY_SIZE as u64);
}

#[test]
fn tarball_with_a_link_or_escaping_path_is_refused() {
    for bad in ["../escape", "/abs", "nested/crictl"] {
        let mut case = Case::new();
        let evil = release::tarball(&[("crictl", vec![1; 10]), (bad, vec![2; 10])]);
        case.tree.add(&release::crictl_path(), evil);
        case.tree.serve(&case.server);
        let error = assert_fails_cleanly(&case, &release::crictl_path(), "refusing member");
        assert!(error.contains("extracting"), "{error}");
    }
    let mut case = Case::new();
    let mut builder = tar::Builder::new(Vec::new());
    let mut link = tar::Header::new_gnu();
    link.set_entry_type(tar::EntryType::Symlink);
    link.set_size(0);
    builder
        .append_link(&mut link, "crictl", "/usr/bin/sudo")
        .unwrap();
    let raw = builder.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &raw).unwrap();
    case.tree.add(&release::crictl_path(), gz.finish().unwrap());
    case.tree.serve(&case.server);
    assert_fails_cleanly(&case, &release::crictl_path(), "only regular files");
}

#[test]
fn file_mirror_installs_and_verifies() {
    let mirror = tempfile::tempdir().unwrap();
    let mut tree = ReleaseTree::generate(BINARY_SIZE);
    tree.write_to(mirror.path());
    let base = format!("file://{}", mirror.path().display());
    let root = tempfile::tempdir().unwrap();
    let report = install_with(&set_for(&base), &Root::new(root.path()), &options()).unwrap();
    assert_eq!(report.artifacts.len(), 5);
    assert_eq!(
        std::fs::read(root.path().join("usr/local/bin/kubeadm")).unwrap(),
        tree.body(&binary_path("kubeadm"))
    );

    tree.set_checksum(&binary_path("kubeadm"), "cd".repeat(32).as_bytes());
    tree.write_to(mirror.path());
    let fresh = tempfile::tempdir().unwrap();
    let error = format!(
        "{:#}",
        install_with(&set_for(&base), &Root::new(fresh.path()), &options()).unwrap_err()
    );
    assert!(error.contains("kubeadm: file://"), "{error}");
    assert!(error.contains("SHA-256 mismatch"), "{error}");
    assert!(!fresh.path().join("usr/local/bin/kubeadm").exists());
    assert!(!fresh.path().join("usr/local/bin/kubelet").exists());
}

/// Installs once and records baked.json the way `bake` does.
fn baked_case() -> Case {
    let case = Case::new();
    let report = case.install().unwrap();
    BakedManifest {
        files: report.files().cloned().collect(),
    }
    .save(&case.root())
    .unwrap();
    case.server.forget_requests();
    case
}

#[test]
fn baked_and_matching_downloads_nothing() {
    let case = baked_case();
    let report = case.install().unwrap();
    assert!(
        case.server.seen().is_empty(),
        "no request may reach the mirror: {:?}",
        case.server.seen()
    );
    assert!(report
        .artifacts
        .iter()
        .all(|a| a.source == SourceKind::Baked));
    assert_installed(&case);
}

#[test]
fn baked_but_tampered_is_refetched_from_the_mirror() {
    let case = baked_case();
    let kubelet = case.root().path("/usr/local/bin/kubelet");
    std::fs::write(&kubelet, b"#!/bin/sh\necho owned\n").unwrap();
    let report = case.install().unwrap();
    assert_installed(&case);
    let kubelet_report = &report.artifacts[0];
    assert_eq!(kubelet_report.source, SourceKind::Mirror);
    assert!(
        kubelet_report.skipped[0].contains("baked.json records"),
        "{:?}",
        kubelet_report.skipped
    );
    // Only the tampered artifact was fetched.
    let mut paths: Vec<String> = case.server.seen().into_iter().map(|s| s.path).collect();
    paths.sort();
    assert_eq!(
        paths,
        [
            binary_path("kubelet"),
            format!("{}.sha256", binary_path("kubelet"))
        ]
    );
}

#[test]
fn baked_for_another_version_is_replaced() {
    let case = baked_case();
    let mut manifest = BakedManifest::load(&case.root()).unwrap().unwrap();
    for file in &mut manifest.files {
        if file.name == "kubectl" {
            file.version = "v1.34.0".into();
        }
    }
    manifest.save(&case.root()).unwrap();
    let report = case.install().unwrap();
    assert_eq!(report.artifacts[2].source, SourceKind::Mirror);
    assert!(report.artifacts[2].skipped[0].contains("is v1.34.0"));
    assert_eq!(report.artifacts[0].source, SourceKind::Baked);
}

#[test]
fn cli_install_reports_success_and_failure() {
    let case = Case::new();
    let run = |root: &Path, extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_kubeboot-agent"))
            .args(["install", "--version", release::VERSION, "--from"])
            .arg(case.server.url())
            .arg("--root")
            .arg(root)
            .args(extra)
            .output()
            .unwrap()
    };
    let crictl_base = release::crictl_release(&case.server.url()).base_url;
    let crictl = [
        "--crictl",
        release::CRICTL_VERSION,
        "--crictl-from",
        &crictl_base,
    ];
    let ok = run(case.root.path(), &crictl);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(stdout.contains("kubelet v1.35.2: Mirror"), "{stdout}");
    assert!(stdout.contains("crictl v1.35.0: Mirror"), "{stdout}");
    assert!(case.root().path("/usr/local/bin/crictl").exists());

    case.server
        .fault(&binary_path("kubeadm"), Fault::Status(404), usize::MAX);
    let fresh = tempfile::tempdir().unwrap();
    let failed = run(fresh.path(), &[]);
    assert!(!failed.status.success());
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(stderr.contains("kubeadm: http://"), "{stderr}");
    assert!(stderr.contains("HTTP 404"), "{stderr}");
    assert!(!fresh.path().join("usr/local/bin/kubelet").exists());
}

#[test]
fn downloads_go_through_the_proxy_from_the_environment() {
    let proxy = ReleaseServer::start();
    ReleaseTree::generate(BINARY_SIZE).serve(&proxy);
    let root = tempfile::tempdir().unwrap();
    // A child process, so the proxy variables reach only this install.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_kubeboot-agent"))
        .args(["install", "--version", release::VERSION])
        .args(["--from", "http://mirror.invalid"])
        .arg("--root")
        .arg(root.path())
        .env("http_proxy", proxy.url())
        .env_remove("no_proxy")
        .env_remove("NO_PROXY")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    let seen = proxy.seen();
    assert_eq!(seen.len(), 6, "3 binaries and their checksums: {seen:?}");
    assert!(seen
        .iter()
        .all(|s| s.proxied_for.as_deref() == Some("mirror.invalid")));
    assert!(root.path().join("usr/local/bin/kubectl").exists());
}

#[test]
fn reinstalling_downloads_only_checksums_of_installed_binaries() {
    let case = Case::new();
    case.install().unwrap();
    let kubelet = case.root().path("/usr/local/bin/kubelet");
    let inode = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&kubelet).unwrap());
    case.server.forget_requests();
    let report = case.install().unwrap();
    assert_installed(&case);
    assert_eq!(report.artifacts[0].bytes, 0);
    for name in ["kubelet", "kubeadm", "kubectl"] {
        assert!(case.server.requests_for(&binary_path(name)).is_empty());
        let checksum = format!("{}.sha256", binary_path(name));
        assert_eq!(case.server.requests_for(&checksum).len(), 1);
    }
    let after = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&kubelet).unwrap());
    assert_eq!(inode, after, "an up-to-date binary is left alone");
}

/// Only containerd and runc, as the container-runtime phase installs them.
fn container_runtime_set(base: &str) -> ArtifactSet {
    ArtifactSet {
        artifacts: Vec::new(),
        ..set_for(base)
    }
    .with_container_runtime(
        Some(&release::containerd_release(base)),
        Some(&release::runc_release(base)),
    )
}

#[test]
fn containerd_and_runc_install_from_their_upstream_layouts() {
    let case = Case::new();
    let set = container_runtime_set(&case.server.url());
    let report = install_with(&set, &case.root(), &options()).unwrap();
    let names: Vec<(&str, &str)> = report
        .artifacts
        .iter()
        .map(|a| (a.name.as_str(), a.version.as_str()))
        .collect();
    assert_eq!(names, [("containerd", "v2.1.4"), ("runc", "v1.3.0")]);
    let root = case.root();
    for name in ["containerd", "containerd-shim-runc-v2", "ctr"] {
        let path = root.path(Path::new(BIN_DIR).join(name));
        assert_eq!(std::fs::read(&path).unwrap(), release::content(name, 3000));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755, "{name}");
    }
    assert_eq!(
        std::fs::read(root.path("/usr/local/bin/runc")).unwrap(),
        case.tree.body(&release::runc_path())
    );
    // Exactly what the node needs: no containerd-stress, no nested bin/, no temporary files.
    assert_eq!(
        case.files(),
        [
            "usr/local/bin/containerd",
            "usr/local/bin/containerd-shim-runc-v2",
            "usr/local/bin/ctr",
            "usr/local/bin/runc"
        ]
    );
    // The checksums came from where upstream publishes them.
    let checksums = format!("{}.sha256sum", release::containerd_path());
    assert_eq!(case.server.requests_for(&checksums).len(), 1);
    assert_eq!(
        case.server
            .requests_for(&release::runc_checksums_path())
            .len(),
        1
    );
}

#[test]
fn a_containerd_digest_mismatch_installs_neither_containerd_nor_runc() {
    let mut case = Case::new();
    let checksums = format!("{}.sha256sum", release::containerd_path());
    case.tree.put(
        &checksums,
        format!("{}  containerd.tar.gz\n", "ab".repeat(32)).into_bytes(),
    );
    case.tree.serve(&case.server);
    let set = container_runtime_set(&case.server.url());
    let error = format!(
        "{:#}",
        install_with(&set, &case.root(), &options()).unwrap_err()
    );
    let url = format!("{}{}", case.server.url(), release::containerd_path());
    assert!(error.contains(&url), "{error}");
    assert!(error.contains("SHA-256 mismatch"), "{error}");
    assert!(error.contains("nothing was installed"), "{error}");
    assert_eq!(
        case.files(),
        Vec::<String>::new(),
        "nothing may be installed"
    );
}

#[test]
fn a_runc_listing_without_this_architecture_installs_nothing() {
    let mut case = Case::new();
    let digest = release::sha256_hex(case.tree.body(&release::runc_path()));
    case.tree.put(
        &release::runc_checksums_path(),
        format!("{digest}  runc.arm64\n").into_bytes(),
    );
    case.tree.serve(&case.server);
    let set = container_runtime_set(&case.server.url());
    let error = format!(
        "{:#}",
        install_with(&set, &case.root(), &options()).unwrap_err()
    );
    assert!(
        error.contains(&format!("no line for \"runc.{}\"", release::ARCH)),
        "{error}"
    );
    assert_eq!(
        case.files(),
        Vec::<String>::new(),
        "nothing may be installed"
    );
}

#[test]
fn a_containerd_tarball_with_files_outside_bin_or_a_link_is_refused() {
    let mut builder = tar::Builder::new(Vec::new());
    let mut link = tar::Header::new_gnu();
    link.set_entry_type(tar::EntryType::Symlink);
    link.set_size(0);
    builder
        .append_link(&mut link, "bin/ctr", "/usr/bin/sudo")
        .unwrap();
    let raw = builder.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &raw).unwrap();
    let linked = gz.finish().unwrap();
    let beside_bin = release::tarball_under(
        "bin/",
        &[
            ("bin/containerd", vec![1; 10]),
            ("bin/containerd-shim-runc-v2", vec![1; 10]),
            ("bin/ctr", vec![1; 10]),
            ("etc/containerd/config.toml", vec![2; 10]),
        ],
    );
    let nested = release::tarball_under("bin/", &[("bin/sub/containerd", vec![1; 10])]);
    let escaping = release::tarball_under("bin/", &[("bin/../containerd", vec![1; 10])]);
    for (what, tarball, expected) in [
        ("link", linked, "only regular files"),
        ("file beside bin/", beside_bin, "in bin/ only"),
        ("nested in bin/", nested, "in bin/ only"),
        ("escaping", escaping, "escaping"),
    ] {
        let mut case = Case::new();
        case.tree.add_containerd(tarball);
        case.tree.serve(&case.server);
        let set = container_runtime_set(&case.server.url());
        let error = format!(
            "{:#}",
            install_with(&set, &case.root(), &options()).unwrap_err()
        );
        assert!(error.contains(expected), "{what}: {error}");
        assert!(error.contains("nothing was installed"), "{what}: {error}");
        assert_eq!(case.files(), Vec::<String>::new(), "{what}");
    }
}

#[test]
fn cli_install_with_containerd_writes_its_unit() {
    let case = Case::new();
    let base = case.server.url();
    let run = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_kubeboot-agent"))
            .args(["install", "--version", release::VERSION, "--from", &base])
            .arg("--root")
            .arg(case.root.path())
            .args(extra)
            .output()
            .unwrap()
    };
    let containerd_base = release::containerd_release(&base).base_url;
    let runc_base = release::runc_release(&base).base_url;
    let ok = run(&[
        "--containerd",
        release::CONTAINERD_VERSION,
        "--containerd-from",
        &containerd_base,
        "--runc",
        release::RUNC_VERSION,
        "--runc-from",
        &runc_base,
    ]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(stdout.contains("containerd v2.1.4: Mirror"), "{stdout}");
    assert!(stdout.contains("runc v1.3.0: Mirror"), "{stdout}");
    let unit = std::fs::read_to_string(case.root().path(CONTAINERD_UNIT)).unwrap();
    assert!(
        unit.contains("ExecStart=/usr/local/bin/containerd\n"),
        "{unit}"
    );
    // A mirror without its version is a usage mistake (exit 2), not a silent no-op.
    let orphan = run(&["--runc-from", &runc_base]);
    assert_eq!(orphan.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&orphan.stderr).contains("--runc-from needs --runc"));
    // A password on the command line is refused, without repeating it.
    let with_password = runc_base.replacen("://", "://user:s3cret-pw@", 1);
    let refused = run(&[
        "--runc",
        release::RUNC_VERSION,
        "--runc-from",
        &with_password,
    ]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--runc-from: must not hold credentials"),
        "{stderr}"
    );
    assert!(!stderr.contains("s3cret-pw"), "{stderr}");
}

/// Every log record of this test binary, as text: the agent logs downloads through `log`.
struct CapturedLog(std::sync::Mutex<Vec<String>>);

impl log::Log for CapturedLog {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, record: &log::Record) {
        self.0.lock().unwrap().push(record.args().to_string());
    }
    fn flush(&self) {}
}

static CAPTURED_LOG: CapturedLog = CapturedLog(std::sync::Mutex::new(Vec::new()));

#[test]
fn credentials_in_a_mirror_url_reach_no_log_line_nor_error() {
    let _ = log::set_logger(&CAPTURED_LOG);
    log::set_max_level(log::LevelFilter::Trace);
    let case = Case::new();
    case.server
        .fault(&binary_path("kubelet"), Fault::Status(503), usize::MAX);
    let base = case
        .server
        .url()
        .replacen("://", "://mirror-user:s3cret-pw@", 1);
    let error = format!(
        "{:#}",
        install_with(&set_for(&base), &case.root(), &options()).unwrap_err()
    );
    let lines = CAPTURED_LOG.0.lock().unwrap().clone();
    // The failing download was retried and reported, naming its URL without the userinfo.
    assert!(
        error.contains("://***@127.0.0.1") && error.contains("HTTP 503"),
        "{error}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("retrying") && l.contains("://***@127.0.0.1")),
        "{lines:#?}"
    );
    for text in lines.iter().chain([&error]) {
        assert!(
            !text.contains("s3cret-pw") && !text.contains("mirror-user"),
            "{text}"
        );
    }
}
