//! Kubernetes node artifacts (kubelet, kubeadm, kubectl, crictl, CNI plugins, and containerd and
//! runc when asked for): which ones a node needs, and installing them verified and atomically from
//! the first source that has them — the image itself (baked) or a release mirror (https, http or
//! `file://`).
//!
//! Nothing becomes executable before its SHA-256 matched: downloads are hashed while they stream
//! into a temporary file beside their final path, and files are renamed into place only once every
//! artifact of the set is verified, so a failure leaves nothing new installed.

mod bake;
mod baked;
mod fetch;
mod progress;
mod source;
mod tarball;

use std::path::{Path, PathBuf};
use std::time::Duration;

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use kubeboot_nodeconfig::{KubernetesVersion, NodeConfig, ToolRelease};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::retry::Backoff;
use crate::root::Root;

pub use bake::{bake, install_units, prepare_first_boot};
pub use baked::{BakedFile, BakedManifest, BAKED_MANIFEST_PATH};

/// Where kubelet, kubeadm, kubectl, crictl, containerd and runc are installed on the node.
pub const BIN_DIR: &str = "/usr/local/bin";
/// Where the CNI plugins are installed on the node (the directory container runtimes look in).
pub const CNI_BIN_DIR: &str = "/opt/cni/bin";

/// The Kubernetes release binaries, fetched one file each from the release layout.
pub const KUBERNETES_BINARIES: [&str; 3] = ["kubelet", "kubeadm", "kubectl"];

/// CNI plugins without which kubeadm clusters do not work (the rest of the tarball is optional).
const REQUIRED_CNI_PLUGINS: [&str; 4] = ["bridge", "host-local", "loopback", "portmap"];
/// Tarball members that are documentation, not plugins.
const CNI_DOCUMENTS: [&str; 2] = ["LICENSE", "README.md"];

/// What a node needs of containerd's release tarball: the daemon, the runc shim the CRI plugin
/// starts pods with, and `ctr` for debugging (containerd-stress is left out).
const CONTAINERD_BINARIES: [&str; 3] = ["containerd", "containerd-shim-runc-v2", "ctr"];
/// The one directory containerd's tarball holds its binaries in (its Makefile's `pack_release`
/// runs `tar -czf <release>.tar.gz -C releases/<release> bin`).
const CONTAINERD_TARBALL_DIR: &str = "bin";
/// containerd's unit for the installed release: it must win over the image's
/// `/lib/systemd/system/containerd.service`, whose ExecStart is the image's containerd.
pub const CONTAINERD_UNIT: &str = "/etc/systemd/system/containerd.service";

/// Everything a node needs installed for one Kubernetes version and CPU architecture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactSet {
    pub version: KubernetesVersion,
    /// Kubernetes' name for the architecture: `amd64`, `arm64`.
    pub arch: String,
    pub artifacts: Vec<Artifact>,
}

/// One downloadable file and what it installs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    /// `kubelet`, `crictl`, `cni-plugins`, ...: the name in logs, errors and baked.json.
    pub name: String,
    pub version: String,
    pub url: String,
    /// The expected SHA-256: a checksum file whose first word is the hex digest (upstream format).
    pub checksum_url: String,
    /// For a `sha256sum` listing of several files (runc's `runc.sha256sum`): the file name whose
    /// line holds this artifact's digest.
    pub checksum_entry: Option<String>,
    pub payload: Payload,
}

/// What the downloaded file is and where its contents go (absolute node paths).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// The file itself is the executable.
    Binary { path: PathBuf },
    /// A gzipped tarball of executables, extracted into `dir`.
    Tarball {
        dir: PathBuf,
        members: Members,
        /// The one directory upstream puts the executables in (`bin` for containerd); `None`:
        /// they sit at the archive's top level.
        inner_dir: Option<&'static str>,
    },
}

/// Which regular files of a tarball are installed. Anything that is not a plain regular file or
/// directory at the top level, or inside the payload's `inner_dir` (links, devices, other nested
/// or escaping paths), makes the whole tarball refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Members {
    /// Exactly these files, all required.
    Only(Vec<String>),
    /// Every top-level regular file except `skip`; `required` must be among them.
    All {
        required: Vec<String>,
        skip: Vec<String>,
    },
}

impl ArtifactSet {
    /// The artifacts of `config`'s Kubernetes version for this machine's architecture.
    pub fn for_node(config: &NodeConfig) -> ArtifactSet {
        let artifacts = &config.artifacts;
        Self::new(
            config.cluster.kubernetes_version.clone(),
            host_arch(),
            &artifacts.release_base_url,
            artifacts.crictl.as_ref(),
            artifacts.cni_plugins.as_ref(),
        )
    }

    /// kubelet, kubeadm and kubectl from `<release_base_url>/release/<version>/bin/linux/<arch>/`,
    /// plus crictl and the CNI plugins from their upstream tarballs when given.
    pub fn new(
        version: KubernetesVersion,
        arch: impl Into<String>,
        release_base_url: &str,
        crictl: Option<&ToolRelease>,
        cni_plugins: Option<&ToolRelease>,
    ) -> ArtifactSet {
        let arch = arch.into();
        let release_dir = format!(
            "{}/release/{version}/bin/linux/{arch}",
            release_base_url.trim_end_matches('/')
        );
        let mut artifacts: Vec<Artifact> = KUBERNETES_BINARIES
            .iter()
            .map(|name| {
                Artifact::new(
                    name,
                    &version.to_string(),
                    format!("{release_dir}/{name}"),
                    Payload::Binary {
                        path: Path::new(BIN_DIR).join(name),
                    },
                )
            })
            .collect();
        if let Some(tool) = crictl {
            artifacts.push(Artifact::new(
                "crictl",
                &tool.version,
                tool_url(
                    tool,
                    &format!("crictl-{}-linux-{arch}.tar.gz", tool.version),
                ),
                Payload::Tarball {
                    dir: PathBuf::from(BIN_DIR),
                    members: Members::Only(vec!["crictl".into()]),
                    inner_dir: None,
                },
            ));
        }
        if let Some(tool) = cni_plugins {
            artifacts.push(Artifact::new(
                "cni-plugins",
                &tool.version,
                tool_url(
                    tool,
                    &format!("cni-plugins-linux-{arch}-{}.tgz", tool.version),
                ),
                Payload::Tarball {
                    dir: PathBuf::from(CNI_BIN_DIR),
                    members: Members::All {
                        required: REQUIRED_CNI_PLUGINS.map(String::from).to_vec(),
                        skip: CNI_DOCUMENTS.map(String::from).to_vec(),
                    },
                    inner_dir: None,
                },
            ));
        }
        ArtifactSet {
            version,
            arch,
            artifacts,
        }
    }

    /// The container runtime `config` names (containerd, runc), which the `container-runtime`
    /// phase installs before it configures and restarts containerd; empty when it names none.
    pub fn container_runtime_for_node(config: &NodeConfig) -> ArtifactSet {
        ArtifactSet {
            version: config.cluster.kubernetes_version.clone(),
            arch: host_arch(),
            artifacts: Vec::new(),
        }
        .with_container_runtime(
            config.artifacts.containerd.as_ref(),
            config.artifacts.runc.as_ref(),
        )
    }

    /// Adds containerd from its upstream tarball and runc from its upstream binary, when given.
    /// Layouts as published on their GitHub releases: containerd's Makefile (`release` target)
    /// writes `containerd-<V>-linux-<arch>.tar.gz` and, beside it, `<that>.sha256sum`; runc's
    /// `script/release_build.sh` writes `runc.<arch>` and one `runc.sha256sum` listing every
    /// architecture (`sha256sum` output).
    pub fn with_container_runtime(
        mut self,
        containerd: Option<&ToolRelease>,
        runc: Option<&ToolRelease>,
    ) -> ArtifactSet {
        let arch = &self.arch;
        if let Some(tool) = containerd {
            let bare = bare_version(&tool.version);
            let url = tool_url(tool, &format!("containerd-{bare}-linux-{arch}.tar.gz"));
            self.artifacts.push(Artifact {
                name: "containerd".into(),
                version: format!("v{bare}"),
                checksum_url: format!("{url}.sha256sum"),
                checksum_entry: None,
                url,
                payload: Payload::Tarball {
                    dir: PathBuf::from(BIN_DIR),
                    members: Members::Only(CONTAINERD_BINARIES.map(String::from).to_vec()),
                    inner_dir: Some(CONTAINERD_TARBALL_DIR),
                },
            });
        }
        if let Some(tool) = runc {
            let file = format!("runc.{arch}");
            self.artifacts.push(Artifact {
                name: "runc".into(),
                version: format!("v{}", bare_version(&tool.version)),
                url: tool_url(tool, &file),
                checksum_url: tool_url(tool, "runc.sha256sum"),
                checksum_entry: Some(file),
                payload: Payload::Binary {
                    path: Path::new(BIN_DIR).join("runc"),
                },
            });
        }
        self
    }

    /// True when the set installs the artifact called `name`.
    pub fn includes(&self, name: &str) -> bool {
        self.artifacts.iter().any(|a| a.name == name)
    }
}

impl Artifact {
    fn new(name: &str, version: &str, url: String, payload: Payload) -> Artifact {
        Artifact {
            name: name.into(),
            version: version.into(),
            checksum_url: format!("{url}.sha256"),
            checksum_entry: None,
            url,
            payload,
        }
    }
}

/// A version as upstream spells it in file names: containerd and runc tags are `v<V>`, their
/// assets say `<V>`. Accepted with or without the `v`.
fn bare_version(version: &str) -> &str {
    version.strip_prefix('v').unwrap_or(version)
}

/// Writes containerd's unit for the release installed in /usr/local/bin; true when it changed
/// (systemd then needs a daemon-reload before containerd is restarted).
pub fn write_containerd_unit(root: &Root) -> Result<bool> {
    root.write_if_changed(
        CONTAINERD_UNIT,
        include_str!("../../files/containerd.service").as_bytes(),
        0o644,
    )
}

/// The CNI plugins release `bake` installs when none is named.
pub const DEFAULT_CNI_PLUGINS_VERSION: &str = "v1.8.0";

/// cri-tools follows Kubernetes' minors: crictl v1.N.0 goes with Kubernetes v1.N.x.
pub fn default_crictl_version(kubernetes: &KubernetesVersion) -> String {
    format!("v1.{}.0", kubernetes.minor())
}

/// crictl `version` from its upstream GitHub release.
pub fn upstream_crictl(version: &str) -> ToolRelease {
    ToolRelease {
        version: version.into(),
        base_url: format!(
            "https://github.com/kubernetes-sigs/cri-tools/releases/download/{version}"
        ),
    }
}

/// containerd `version` (with or without the `v`) from its upstream GitHub release.
pub fn upstream_containerd(version: &str) -> ToolRelease {
    ToolRelease {
        version: version.into(),
        base_url: format!(
            "https://github.com/containerd/containerd/releases/download/v{}",
            bare_version(version)
        ),
    }
}

/// runc `version` (with or without the `v`) from its upstream GitHub release.
pub fn upstream_runc(version: &str) -> ToolRelease {
    ToolRelease {
        version: version.into(),
        base_url: format!(
            "https://github.com/opencontainers/runc/releases/download/v{}",
            bare_version(version)
        ),
    }
}

/// The CNI plugins `version` from their upstream GitHub release.
pub fn upstream_cni_plugins(version: &str) -> ToolRelease {
    ToolRelease {
        version: version.into(),
        base_url: format!(
            "https://github.com/containernetworking/plugins/releases/download/{version}"
        ),
    }
}

fn tool_url(tool: &ToolRelease, file: &str) -> String {
    format!("{}/{file}", tool.base_url.trim_end_matches('/'))
}

/// Kubernetes' name for the architecture this agent was built for.
pub fn host_arch() -> String {
    match std::env::consts::ARCH {
        "x86_64" => "amd64".into(),
        "aarch64" => "arm64".into(),
        other => other.into(),
    }
}

/// A failed download is tried again soon (mirrors hiccup), but not for ever: a missing or wrong
/// file fails the phase, which the unit restarts. Gaps are drawn below 2 s doubling to 30 s.
const DOWNLOAD_RETRY: Backoff = Backoff {
    first_delay: Duration::ZERO,
    initial: Duration::from_secs(2),
    max_delay: Duration::from_secs(30),
    factor: 2.0,
    max_attempts: 5,
    deadline: None,
};

/// Timeouts, retries and parallelism of an install. Production uses `Default`; tests shrink them.
#[derive(Debug, Clone)]
pub struct InstallOptions {
    pub connect_timeout: Duration,
    /// A download that receives nothing for this long is abandoned (and retried).
    pub read_timeout: Duration,
    /// Retries of each download (`max_attempts`: tries per file, the first included); its full
    /// jitter keeps a scale set's nodes from retrying in lockstep.
    pub retry: Backoff,
    /// Artifacts downloaded at the same time.
    pub parallel: usize,
    /// Hosts a download may be redirected to besides its own (always https). The defaults are
    /// where the upstream release servers redirect to.
    pub redirect_hosts: Vec<String>,
}

impl Default for InstallOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(15),
            read_timeout: Duration::from_secs(30),
            retry: DOWNLOAD_RETRY,
            parallel: 8,
            redirect_hosts: [
                "cdn.dl.k8s.io",
                "objects.githubusercontent.com",
                "release-assets.githubusercontent.com",
            ]
            .map(String::from)
            .to_vec(),
        }
    }
}

/// Where an artifact came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    Baked,
    Mirror,
}

/// What an install did, artifact by artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallReport {
    pub artifacts: Vec<InstalledArtifact>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledArtifact {
    pub name: String,
    pub version: String,
    pub source: SourceKind,
    /// Size of the downloaded file or tarball (0 when baked).
    pub bytes: u64,
    /// Why earlier sources were passed over (e.g. a baked copy that no longer matched its digest).
    pub skipped: Vec<String>,
    pub files: Vec<BakedFile>,
}

impl InstallReport {
    /// Every installed file with its digest: what `bake` records in baked.json.
    pub fn files(&self) -> impl Iterator<Item = &BakedFile> {
        self.artifacts.iter().flat_map(|a| a.files.iter())
    }
}

/// Installs `set` for the current phase. Where commands do not run (a dry run, unit tests) it
/// only says what it would install: no download.
pub fn install_for_phase(ctx: &crate::context::Context, set: &ArtifactSet) -> Result<()> {
    if !ctx.runs_commands() {
        for a in &set.artifacts {
            println!(
                "[dry-run] {}: would install {} {} (baked, else {})",
                ctx.phase(),
                a.name,
                a.version,
                kubeboot_nodeconfig::redact_userinfo(&a.url)
            );
        }
        return Ok(());
    }
    let report = install(set, &ctx.root)?;
    for a in &report.artifacts {
        tracing::info!(
            phase = ctx.phase(),
            "{} {}: {:?}, {} bytes fetched",
            a.name,
            a.version,
            a.source,
            a.bytes
        );
    }
    Ok(())
}

/// Installs `set` under `root` with the production defaults (see `install_with`).
pub fn install(set: &ArtifactSet, root: &Root) -> Result<InstallReport> {
    install_with(set, root, &InstallOptions::default())
}

/// Installs every artifact of `set` under `root` from the first source that has it: the baked
/// image (baked.json), then the artifact's URL. Synchronous: runs its own tokio runtime.
/// Either every artifact ends up installed and verified, or none of the files is replaced.
pub fn install_with(
    set: &ArtifactSet,
    root: &Root,
    options: &InstallOptions,
) -> Result<InstallReport> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // Named apart from the phase threads, for per-thread CPU in /proc.
        .thread_name("artifact-fetch")
        .build()
        .context("starting the download runtime")?;
    runtime.block_on(install_async(set, root, options))
}

async fn install_async(
    set: &ArtifactSet,
    root: &Root,
    options: &InstallOptions,
) -> Result<InstallReport> {
    let sources = Arc::new(source::chain(root, options)?);
    let progress = progress::Progress::new();
    let slots = Arc::new(Semaphore::new(options.parallel.max(1)));
    // One task per artifact so that hashing runs on every core, not only concurrently.
    let tasks: Vec<_> = set
        .artifacts
        .iter()
        .map(|artifact| {
            let (sources, artifact, root) = (sources.clone(), artifact.clone(), root.clone());
            let (progress, slots) = (progress.clone(), slots.clone());
            tokio::spawn(async move {
                let _slot = slots.acquire_owned().await?;
                source::obtain(&sources, artifact, &root, &progress).await
            })
        })
        .collect();

    let mut obtained = Vec::with_capacity(tasks.len());
    let mut failures = Vec::new();
    for task in tasks {
        match task.await.context("download task")? {
            Ok(o) => obtained.push(o),
            Err(e) => failures.push(format!("{e:#}")),
        }
    }
    // Dropping `obtained` removes every staged temporary file: nothing is installed.
    match failures.len() {
        0 => {}
        1 => bail!("{}; nothing was installed", failures[0]),
        n => bail!(
            "{n} artifacts failed: {}; nothing was installed",
            failures.join("; ")
        ),
    }

    let mut report = InstallReport {
        artifacts: Vec::new(),
    };
    for o in obtained {
        let mut files = o.in_place;
        for staged in o.staged {
            root.commit_staged(staged.file, &staged.record.path, 0o755)?;
            files.push(staged.record);
        }
        report.artifacts.push(InstalledArtifact {
            name: o.artifact.name,
            version: o.artifact.version,
            source: o.source,
            bytes: o.bytes,
            skipped: o.skipped,
            files,
        });
    }
    Ok(report)
}

/// SHA-256 of a whole file, hex-encoded.
fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    std::io::copy(&mut std::fs::File::open(path)?, &mut hasher)?;
    Ok(hex::encode(hasher.finalize()))
}

/// Hashes what it writes, so a file's digest costs no second read.
struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
}

impl<W: std::io::Write> HashingWriter<W> {
    fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
        }
    }

    /// SHA-256 of everything written, hex-encoded.
    fn digest(self) -> String {
        hex::encode(self.hasher.finalize())
    }
}

impl<W: std::io::Write> std::io::Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_follow_the_upstream_release_layout() {
        let set = ArtifactSet::new(
            "v1.35.2".parse().unwrap(),
            "arm64",
            "https://dl.k8s.io/",
            Some(&upstream_crictl("v1.35.0")),
            Some(&upstream_cni_plugins("v1.8.0")),
        );
        let urls: Vec<(&str, &str)> = set
            .artifacts
            .iter()
            .map(|a| (a.url.as_str(), a.checksum_url.as_str()))
            .collect();
        assert_eq!(
            urls[0],
            (
                "https://dl.k8s.io/release/v1.35.2/bin/linux/arm64/kubelet",
                "https://dl.k8s.io/release/v1.35.2/bin/linux/arm64/kubelet.sha256"
            )
        );
        assert_eq!(
            urls[3].0,
            "https://github.com/kubernetes-sigs/cri-tools/releases/download/v1.35.0/crictl-v1.35.0-linux-arm64.tar.gz"
        );
        assert_eq!(
            urls[4].0,
            "https://github.com/containernetworking/plugins/releases/download/v1.8.0/cni-plugins-linux-arm64-v1.8.0.tgz"
        );
        assert_eq!(
            set.artifacts[0].payload,
            Payload::Binary {
                path: PathBuf::from("/usr/local/bin/kubelet")
            }
        );
        assert!(
            matches!(&set.artifacts[4].payload, Payload::Tarball { dir, .. } if dir == Path::new(CNI_BIN_DIR))
        );
    }
}
