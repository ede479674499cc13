//! `harden`: after kubeadm, tightens the files it leaves wider than the CIS benchmark wants.
//!
//! kubeadm writes the kubelet's `config.yaml` and `kubeadm-flags.env` 0644 (CIS 4.1.9 wants 0600)
//! and, on masters, creates the etcd data directory 0700 (CIS 1.1.11), which is re-asserted here.
//! Inputs: those files. Outputs: their modes. Done-marker: `phases/harden.done`; re-verified: the
//! modes are still tight (a `kubeadm upgrade` rewrites the kubelet files).

use std::fs;
use std::os::unix::fs::PermissionsExt;

use anyhow::{bail, Result};

use crate::context::Context;
use crate::paths;
use crate::phases::Phase;

pub struct Harden;

/// (node path, mode) for everything kubeadm may have created too openly.
const TIGHT: &[(&str, u32)] = &[
    (paths::KUBELET_CONFIG, 0o600),
    (paths::KUBELET_FLAGS_ENV, 0o600),
    (paths::ETCD_DATA_DIR, 0o700),
];

fn too_open(ctx: &Context) -> Vec<(&'static str, u32, u32)> {
    TIGHT
        .iter()
        .filter_map(|(path, want)| {
            let mode = fs::metadata(ctx.root.path(path)).ok()?.permissions().mode() & 0o7777;
            (mode & !want != 0).then_some((*path, mode, *want))
        })
        .collect()
}

impl Phase for Harden {
    fn name(&self) -> &'static str {
        "harden"
    }
    fn description(&self) -> &'static str {
        "tighten the modes of files kubeadm leaves readable (kubelet config 0600, etcd data 0700)"
    }
    fn run(&self, ctx: &Context) -> Result<()> {
        for (path, _, want) in too_open(ctx) {
            ctx.root.set_mode(path, want)?;
        }
        Ok(())
    }
    fn verify(&self, ctx: &Context) -> Result<()> {
        if let Some((path, mode, want)) = too_open(ctx).first() {
            bail!("{path} is {mode:04o}, wider than {want:04o}");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assert_idempotent, fixture, Sandbox};

    #[test]
    fn tightens_what_kubeadm_left_open_and_notices_regressions() {
        let sandbox = Sandbox::new("node-1");
        let ctx = sandbox.context(fixture::worker());
        let config = ctx.root.path(paths::KUBELET_CONFIG);
        fs::create_dir_all(config.parent().unwrap()).unwrap();
        fs::write(&config, "kind: KubeletConfiguration\n").unwrap();
        fs::set_permissions(&config, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(Harden.verify(&ctx).is_err());
        assert_idempotent(&Harden, &ctx);
        assert_eq!(
            fs::metadata(&config).unwrap().permissions().mode() & 0o777,
            0o600
        );
        Harden.verify(&ctx).unwrap();
    }
}
