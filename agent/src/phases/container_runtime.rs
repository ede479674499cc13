//! `container-runtime`: containerd (the image's, or the release the NodeConfig names) configured for
//! the kubelet, enabled, started, and answering.
//!
//! Inputs: the Kubernetes version (for the sandbox image); `artifacts.containerd` / `artifacts.runc`
//! of the NodeConfig. Outputs: when named, containerd (containerd, containerd-shim-runc-v2, ctr)
//! and runc in `/usr/local/bin`, verified like every artifact (`crate::artifacts`), and containerd's
//! unit `/etc/systemd/system/containerd.service` (which overrides the image's); then
//! `/etc/containerd/config.toml` (`SystemdCgroup = true`, the pause image of that Kubernetes
//! minor), containerd enabled and restarted, its socket present. Done-marker:
//! `phases/container-runtime.done`; re-verified: the config file is still ours, and a named
//! containerd is still installed with its unit.
//!
//! containerd is restarted on every run of this phase rather than only when the file changed: a
//! kill between writing the file and restarting would otherwise leave the old config running. For
//! the same reason systemd is reloaded on every run that installs a containerd release, not only
//! when the unit changed.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, ensure, Context as _, Result};
use kubeboot_nodeconfig::KubernetesVersion;
use tracing::info;

use crate::artifacts::{self, ArtifactSet, BIN_DIR, CONTAINERD_UNIT};
use crate::context::Context;
use crate::exec::Cmd;
use crate::paths::{self, CONTAINERD_CONFIG, CONTAINERD_SOCKET};
use crate::phases::Phase;
use crate::retry::Backoff;

pub struct ContainerRuntime;
/// How long containerd may take to open its socket after a restart.
const SOCKET_DEADLINE: Duration = Duration::from_secs(60);
/// Polling a local file: short gaps, no first delay.
const FILE_POLL: Backoff = Backoff {
    first_delay: Duration::ZERO,
    initial: Duration::from_millis(50),
    max_delay: Duration::from_millis(50),
    factor: 1.0,
    max_attempts: u32::MAX,
    deadline: None,
};

pub fn render_config(version: &KubernetesVersion) -> Result<String> {
    let release = version.release().map_err(anyhow::Error::msg)?;
    let mut vars = tera::Context::new();
    vars.insert("sandbox_image", release.pause_image);
    vars.insert("kubernetes_minor", &format!("1.{}", version.minor()));
    Ok(tera::Tera::one_off(
        include_str!("../../files/containerd-config.toml"),
        &vars,
        false,
    )?)
}

/// Polls until `path` exists (containerd creates its socket once it serves).
pub fn wait_for_file(path: &Path, deadline: Duration) -> Result<()> {
    let poll = Backoff {
        deadline: Some(deadline),
        ..FILE_POLL
    };
    poll.retry(|_| -> Result<()> {
        ensure!(path.exists(), "not there yet");
        Ok(())
    })
    .with_context(|| format!("{} did not appear within {deadline:?}", path.display()))
}

impl Phase for ContainerRuntime {
    fn name(&self) -> &'static str {
        "container-runtime"
    }
    fn description(&self) -> &'static str {
        "install the named containerd/runc releases, configure containerd (systemd cgroups, pause \
         image), restart it and wait for its socket"
    }
    fn run(&self, ctx: &Context) -> Result<()> {
        let runtime = ArtifactSet::container_runtime_for_node(&ctx.config);
        if !runtime.artifacts.is_empty() {
            artifacts::install_for_phase(ctx, &runtime)?;
        }
        if runtime.includes("containerd") {
            artifacts::write_containerd_unit(&ctx.root)?;
            ctx.exec(&Cmd::systemctl(["daemon-reload"]))?;
        }
        let config = render_config(&ctx.config.cluster.kubernetes_version)?;
        ctx.root
            .write_if_changed(paths::CONTAINERD_CONFIG, config.as_bytes(), 0o644)?;
        // Enabling only matters at the next boot (it is restarted just below): no daemon reload.
        ctx.exec(&Cmd::systemctl(["enable", "--no-reload", "containerd"]))?;
        ctx.exec(&Cmd::systemctl(["restart", "containerd"]))?;
        if !ctx.runs_commands() {
            return Ok(());
        }
        wait_for_file(&ctx.root.path(paths::CONTAINERD_SOCKET), SOCKET_DEADLINE)?;
        info!(
            phase = self.name(),
            "containerd is up ({CONTAINERD_SOCKET})"
        );
        Ok(())
    }
    fn verify(&self, ctx: &Context) -> Result<()> {
        let want = render_config(&ctx.config.cluster.kubernetes_version)?;
        match std::fs::read_to_string(ctx.root.path(paths::CONTAINERD_CONFIG)) {
            Ok(text) if text == want => {}
            _ => bail!("{CONTAINERD_CONFIG} was changed"),
        }
        if ctx.config.artifacts.containerd.is_some() {
            let binary = format!("{BIN_DIR}/containerd");
            for path in [binary.as_str(), CONTAINERD_UNIT] {
                if !ctx.root.path(path).exists() {
                    bail!("{path} is missing");
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsx;
    use crate::testing::{assert_idempotent, fixture, Sandbox};

    #[test]
    fn config_uses_systemd_cgroups_and_is_idempotent() {
        let sandbox = Sandbox::new("node-1");
        let ctx = sandbox.context(fixture::worker());
        assert_idempotent(&ContainerRuntime, &ctx);
        let text = std::fs::read_to_string(sandbox.root().path(paths::CONTAINERD_CONFIG)).unwrap();
        assert!(text.contains("SystemdCgroup = true"));
        assert!(text.contains("sandbox_image = \"registry.k8s.io/pause:3.10.1\""));
        assert!(ContainerRuntime.verify(&ctx).is_ok());
        fsx::write_atomic(
            &sandbox.root().path(paths::CONTAINERD_CONFIG),
            b"version = 2\n",
            0o644,
        )
        .unwrap();
        assert!(ContainerRuntime.verify(&ctx).is_err());
    }

    #[test]
    fn a_named_containerd_gets_its_unit_and_a_daemon_reload() {
        let sandbox = Sandbox::new("node-1");
        let mut config = fixture::worker();
        config.artifacts.containerd = Some(artifacts::upstream_containerd("2.1.4"));
        let ctx = sandbox.context(config);
        let out = ContainerRuntime.run(&ctx);
        assert!(out.is_ok(), "{out:?}");
        let unit = std::fs::read_to_string(sandbox.root().path(CONTAINERD_UNIT)).unwrap();
        assert!(
            unit.contains("ExecStart=/usr/local/bin/containerd\n"),
            "{unit}"
        );
        // Where commands do not run nothing is installed, so the binary is missing: verify says so.
        let error = ContainerRuntime.verify(&ctx).unwrap_err().to_string();
        assert!(error.contains("/usr/local/bin/containerd"), "{error}");
    }

    #[test]
    fn waits_for_the_socket_until_it_appears_or_the_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("run/containerd.sock");
        assert!(wait_for_file(&socket, Duration::from_millis(50)).is_err());
        let later = socket.clone();
        let maker = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            fsx::write_atomic(&later, b"", 0o600).unwrap();
        });
        wait_for_file(&socket, Duration::from_secs(10)).unwrap();
        maker.join().unwrap();
    }
}
