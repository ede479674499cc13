//! `kubeadm-config`: kubeadm's configuration for this node.
//!
//! Inputs: the NodeConfig and the node facts. Outputs: `/etc/kubeboot/kubeadm.yaml`, mode 0600 in
//! a 0700 directory (it holds the bootstrap token). Documents and apiVersion: see `crate::kubeadm`.
//! On masters also the files the API server's flags name (admission, audit policy, encryption at
//! rest, OIDC CA; see `crate::apiserver`), which must exist before kubeadm starts the static pod.
//! The token (and on masters the PKI, for the encryption key) comes from `secrets`: inline, or
//! fetched from the vault. Done-marker: `phases/kubeadm-config.done`; re-verified: the file is
//! still what it should be, or, when the secrets live in a vault, still there and private (a
//! check that fetched secrets would make `plan` and `status` wait on the vault; `join` fetches
//! the current token and rewrites the file anyway).

use crate::apiserver;
use crate::context::Context;
use crate::kubeadm::{self, render};
use crate::paths::{self, KUBEADM_CONFIG};
use crate::phases::Phase;
use crate::secrets;
use anyhow::{bail, Result};

pub struct KubeadmConfig;

impl Phase for KubeadmConfig {
    fn name(&self) -> &'static str {
        "kubeadm-config"
    }
    fn description(&self) -> &'static str {
        "write kubeadm's Init/Cluster/Kubelet or Join configuration (0600)"
    }
    fn run(&self, ctx: &Context) -> Result<()> {
        let config = secrets::resolved(ctx)?;
        kubeadm::write_config(ctx, &config)?;
        if config.is_master() {
            apiserver::write_server_files(&ctx.root, &config)?;
        }
        Ok(())
    }
    fn verify(&self, ctx: &Context) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let path = ctx.root.path(paths::KUBEADM_CONFIG);
        let want = match ctx.config.secrets {
            None => Some(render(&secrets::resolved(ctx)?, &ctx.facts()?)?),
            Some(_) => None,
        };
        match (std::fs::read_to_string(&path), std::fs::metadata(&path)) {
            (Ok(text), Ok(meta))
                if want.is_none_or(|want| text == want)
                    && meta.permissions().mode() & 0o777 == 0o600 =>
            {
                Ok(())
            }
            _ => bail!("{KUBEADM_CONFIG} is missing or differs from the NodeConfig"),
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
        let path = sandbox.root().path(paths::KUBEADM_CONFIG);
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
        let audit_policy = sandbox.root().path(paths::AUDIT_POLICY_FILE);
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
