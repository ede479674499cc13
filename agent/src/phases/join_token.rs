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
