//! `kubeadm-config`: kubeadm's configuration for this node.
//!
//! Inputs: the NodeConfig and the node facts. Outputs: `/etc/kubeboot/kubeadm.yaml`, mode 0600 in
//! a 0700 directory (it holds the bootstrap token). Documents and apiVersion: see `crate::kubeadm`.
//! On masters also the files the API server's flags name (admission, audit policy, encryption at
//! rest, OIDC CA; see `crate::apiserver`), which must exist before kubeadm starts the static pod.
//! Done-marker: `phases/kubeadm-config.done`; re-verified: the file is still what it should be.

use anyhow::{bail, Result};

use crate::apiserver;
use crate::context::Context;
use crate::fsx;
use crate::kubeadm::{render, CONFIG_FILE};
use crate::phases::Phase;

pub struct KubeadmConfig;

pub const CONFIG_DIR: &str = "/etc/kubeboot";

impl Phase for KubeadmConfig {
    fn name(&self) -> &'static str {
        "kubeadm-config"
    }
    fn description(&self) -> &'static str {
        "write kubeadm's Init/Cluster/Kubelet or Join configuration (0600)"
    }
    fn run(&self, ctx: &Context) -> Result<()> {
        let text = render(&ctx.config, &ctx.facts()?)?;
        fsx::create_dir_with_mode(&ctx.root.path(CONFIG_DIR), 0o700)?;
        fsx::write_if_changed(&ctx.root.path(CONFIG_FILE), text.as_bytes(), 0o600)?;
        if ctx.config.is_master() {
            apiserver::write_server_files(&ctx.root, &ctx.config)?;
        }
        Ok(())
    }
    fn verify(&self, ctx: &Context) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let path = ctx.root.path(CONFIG_FILE);
        let want = render(&ctx.config, &ctx.facts()?)?;
        match (std::fs::read_to_string(&path), std::fs::metadata(&path)) {
            (Ok(text), Ok(meta)) if text == want && meta.permissions().mode() & 0o777 == 0o600 => {
                Ok(())
            }
            _ => bail!("{CONFIG_FILE} is missing or differs from the NodeConfig"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::NodeKind;
    use crate::testing::{assert_idempotent, fixture, Sandbox};
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn writes_a_private_file_idempotently() {
        let sandbox = Sandbox::new("node-1");
        let config = fixture::worker();
        sandbox.with_facts(&config, NodeKind::Worker);
        let ctx = sandbox.context(config);
        assert_idempotent(&KubeadmConfig, &ctx);
        let path = sandbox.root().path(CONFIG_FILE);
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            std::fs::metadata(path.parent().unwrap())
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o700
        );
        assert!(KubeadmConfig.verify(&ctx).is_ok());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(KubeadmConfig.verify(&ctx).is_err());
    }

    #[test]
    fn masters_also_get_the_api_server_files() {
        let sandbox = Sandbox::new("node-1");
        let config = fixture::first_master();
        sandbox.with_facts(&config, NodeKind::FirstMaster);
        let ctx = sandbox.context(config);
        assert_idempotent(&KubeadmConfig, &ctx);
        let audit_policy = sandbox.root().path(kubeboot_nodeconfig::AUDIT_POLICY_FILE);
        assert_eq!(
            std::fs::metadata(audit_policy)
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
    }
}
