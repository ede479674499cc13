//! `join-token` (masters with a Key Vault): one join-token rotation (`crate::join_token`), then
//! the timer that repeats it every 10 minutes for as long as the master lives.
//!
//! Inputs: the NodeConfig's `secrets.keyVault`, `/etc/kubernetes/admin.conf` (the cluster, through
//! kubectl), the vault's join token (read, and written through this VM's identity). Outputs: the
//! current window's bootstrap-token Secret in kube-system, the vault's join token set to it,
//! kubeboot's expired token Secrets deleted, `kubeboot-join-token.timer` enabled and started.
//! Done-marker: `phases/join-token.done`. While the vault cannot be read or written (e.g. the
//! role assignment is not there yet) it waits and says why in `status`.

use std::time::SystemTime;

use anyhow::Result;

use crate::context::Context;
use crate::exec::Cmd;
use crate::join_token;
use crate::phases::Phase;

pub struct JoinToken;

pub const TIMER: &str = "kubeboot-join-token.timer";

impl Phase for JoinToken {
    fn name(&self) -> &'static str {
        "join-token"
    }
    fn description(&self) -> &'static str {
        "keep the vault's join token current (one rotation now, then a timer every 10 min)"
    }
    fn applies_to(&self, ctx: &Context) -> Result<bool> {
        Ok(ctx.config.secrets.is_some())
    }
    fn run(&self, ctx: &Context) -> Result<()> {
        join_token::rotate(ctx, SystemTime::now())?;
        ctx.exec(&Cmd::systemctl(["enable", "--now", TIMER]))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{fixture, Sandbox};

    #[test]
    fn applies_only_where_a_vault_holds_the_token() {
        let sandbox = Sandbox::new("node-1");
        assert!(!JoinToken
            .applies_to(&sandbox.context(fixture::first_master()))
            .unwrap());
        let mut config = fixture::first_master();
        config.secrets = Some(kubeboot_nodeconfig::Secrets {
            key_vault: kubeboot_nodeconfig::KeyVaultSecrets {
                name: "demo-kv-1a2b3c4d".into(),
                join_token_secret: "bootstrap-token".into(),
                pki_secret: Some("cluster-pki".into()),
            },
        });
        assert!(JoinToken.applies_to(&sandbox.context(config)).unwrap());
    }

    /// The timer the phase enables runs the rotation every 10 minutes, spread at random, and the
    /// service runs it only on a node with a cluster admin kubeconfig.
    #[test]
    fn the_timer_repeats_the_rotation() {
        let timer = include_str!("../../../units/kubeboot-join-token.timer");
        for line in [
            "OnBootSec=3min",
            "OnUnitActiveSec=10min",
            "RandomizedDelaySec=2min",
        ] {
            assert!(timer.lines().any(|l| l == line), "{line}");
        }
        let service = include_str!("../../../units/kubeboot-join-token.service");
        for line in [
            "Type=oneshot",
            "ExecStart=/usr/bin/kubeboot-agent rotate-join-token",
            "ConditionPathExists=/etc/kubernetes/admin.conf",
        ] {
            assert!(service.lines().any(|l| l == line), "{line}");
        }
    }
}
