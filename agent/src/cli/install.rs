//! `kubeboot-agent install`: the `install` phase alone — kubelet, kubeadm, kubectl (and crictl, the
//! CNI plugins, containerd and runc when asked for) of one Kubernetes version, verified, into
//! `--root`.

use std::process::ExitCode;

use anyhow::Result;
use kubeboot_nodeconfig::{check_no_userinfo, Artifacts, KubernetesVersion, ToolRelease};

use crate::artifacts::{self, ArtifactSet, InstallOptions, InstallReport};
use crate::error::Stop;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: super::Common,
    #[command(flatten)]
    pub artifacts: ArtifactArgs,
}

/// What to install and from where; shared with `bake`.
#[derive(Debug, clap::Args)]
pub struct ArtifactArgs {
    /// Kubernetes version (vMAJOR.MINOR.PATCH) of kubelet, kubeadm and kubectl.
    #[arg(long, value_name = "VERSION", value_parser = supported_version)]
    pub version: KubernetesVersion,
    /// Release mirror with the upstream layout (`<URL>/release/<version>/bin/linux/<arch>/`):
    /// https, http or file:// (air-gapped).
    #[arg(long = "from", value_name = "URL", default_value_t = Artifacts::default().release_base_url)]
    pub from: String,
    /// Also install this crictl release (vX.Y.Z); `bake` installs v1.<minor>.0 by default.
    #[arg(long, value_name = "VERSION")]
    pub crictl: Option<String>,
    /// Directory URL holding crictl-<version>-linux-<arch>.tar.gz (default: its GitHub release).
    #[arg(long, value_name = "URL")]
    pub crictl_from: Option<String>,
    /// Also install this CNI plugins release (vX.Y.Z) into /opt/cni/bin; `bake` installs
    /// a default release by default.
    #[arg(long, value_name = "VERSION")]
    pub cni_plugins: Option<String>,
    /// Directory URL holding cni-plugins-linux-<arch>-<version>.tgz (default: its GitHub release).
    #[arg(long, value_name = "URL")]
    pub cni_plugins_from: Option<String>,
    /// Also install this containerd release (vX.Y.Z) into /usr/local/bin, with its systemd unit
    /// in /etc/systemd/system (for images whose containerd is too old).
    #[arg(long, value_name = "VERSION")]
    pub containerd: Option<String>,
    /// Directory URL holding containerd-<X.Y.Z>-linux-<arch>.tar.gz (default: its GitHub release).
    #[arg(long, value_name = "URL")]
    pub containerd_from: Option<String>,
    /// Also install this runc release (vX.Y.Z) into /usr/local/bin.
    #[arg(long, value_name = "VERSION")]
    pub runc: Option<String>,
    /// Directory URL holding runc.<arch> and runc.sha256sum (default: its GitHub release).
    #[arg(long, value_name = "URL")]
    pub runc_from: Option<String>,
    /// Downloads running at the same time.
    #[arg(long, value_name = "N", default_value_t = InstallOptions::default().parallel)]
    pub parallel: usize,
}

fn supported_version(text: &str) -> Result<KubernetesVersion, String> {
    let version: KubernetesVersion = text.parse()?;
    version.release()?;
    Ok(version)
}

impl ArtifactArgs {
    /// The artifacts asked for; with `default_tools`, crictl and the CNI plugins are included
    /// even when not named, in their default versions (an image needs both: kubeadm's preflight
    /// requires crictl, and pods need the CNI plugins).
    pub fn set(&self, default_tools: bool) -> ArtifactSet {
        let tool =
            |version: Option<String>, from: &Option<String>, upstream: fn(&str) -> ToolRelease| {
                version.map(|v| match from {
                    Some(base_url) => ToolRelease {
                        version: v,
                        base_url: base_url.clone(),
                    },
                    None => upstream(&v),
                })
            };
        let crictl = self
            .crictl
            .clone()
            .or_else(|| default_tools.then(|| artifacts::default_crictl_version(&self.version)));
        let cni_plugins = self
            .cni_plugins
            .clone()
            .or_else(|| default_tools.then(|| artifacts::DEFAULT_CNI_PLUGINS_VERSION.to_string()));
        ArtifactSet::new(
            self.version.clone(),
            artifacts::host_arch(),
            &self.from,
            tool(crictl, &self.crictl_from, artifacts::upstream_crictl).as_ref(),
            tool(
                cni_plugins,
                &self.cni_plugins_from,
                artifacts::upstream_cni_plugins,
            )
            .as_ref(),
        )
        .with_container_runtime(
            tool(
                self.containerd.clone(),
                &self.containerd_from,
                artifacts::upstream_containerd,
            )
            .as_ref(),
            tool(self.runc.clone(), &self.runc_from, artifacts::upstream_runc).as_ref(),
        )
    }

    /// A `--X-from` without its `--X` is a mistake, not a request — unless `default_tools` gives
    /// that tool a default version (crictl and the CNI plugins in `bake`).
    pub fn check(&self, default_tools: bool) -> Result<(), Stop> {
        for (from, version, has_default, flags) in [
            (
                &self.crictl_from,
                &self.crictl,
                default_tools,
                "--crictl-from needs --crictl",
            ),
            (
                &self.cni_plugins_from,
                &self.cni_plugins,
                default_tools,
                "--cni-plugins-from needs --cni-plugins",
            ),
            (
                &self.containerd_from,
                &self.containerd,
                false,
                "--containerd-from needs --containerd",
            ),
            (
                &self.runc_from,
                &self.runc,
                false,
                "--runc-from needs --runc",
            ),
        ] {
            if from.is_some() && version.is_none() && !has_default {
                return Err(Stop::BadConfig(flags.into()));
            }
        }
        // A password on the command line would be in the process list and the shell's history.
        for (flag, url) in [
            ("--from", Some(&self.from)),
            ("--crictl-from", self.crictl_from.as_ref()),
            ("--cni-plugins-from", self.cni_plugins_from.as_ref()),
            ("--containerd-from", self.containerd_from.as_ref()),
            ("--runc-from", self.runc_from.as_ref()),
        ] {
            if let Some(Err(why)) = url.map(|u| check_no_userinfo(u)) {
                return Err(Stop::BadConfig(format!("{flag}: {why}")));
            }
        }
        Ok(())
    }

    pub fn options(&self) -> InstallOptions {
        InstallOptions {
            parallel: self.parallel,
            ..InstallOptions::default()
        }
    }
}

/// One line per artifact on stdout: name, version, where it came from, size.
pub fn print_report(report: &InstallReport) {
    for a in &report.artifacts {
        println!(
            "{} {}: {:?}, {} bytes, {} file(s)",
            a.name,
            a.version,
            a.source,
            a.bytes,
            a.files.len()
        );
    }
}

pub fn run(args: Args) -> Result<ExitCode> {
    args.artifacts.check(false)?;
    let set = args.artifacts.set(false);
    let root = args.common.root();
    let report = artifacts::install_with(&set, &root, &args.artifacts.options())?;
    if set.includes("containerd") {
        artifacts::write_containerd_unit(&root)?;
    }
    print_report(&report);
    Ok(ExitCode::SUCCESS)
}
