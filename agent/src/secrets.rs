//! The cluster secrets a phase needs, fetched at the point of use from wherever the NodeConfig
//! keeps them: inline (plain VMs) or in a Key Vault (Azure), through the provider either way.
//! Phases ask here instead of reading `bootstrap.token` or `pki` from the NodeConfig.

use anyhow::Result;
use kubeboot_nodeconfig::{NodeConfig, Secret, SharedPki};

use crate::context::Context;

/// The bootstrap token, as current as the source has it.
pub fn join_token(ctx: &Context) -> Result<Secret> {
    ctx.waiting_on(|report| ctx.provider().join_token(&ctx.config, report))
}

/// The cluster PKI and the Secrets encryption key (masters).
pub fn shared_pki(ctx: &Context) -> Result<SharedPki> {
    ctx.waiting_on(|report| ctx.provider().shared_pki(&ctx.config, report))
}

/// The NodeConfig with this node's secrets filled in (the token; on masters the PKI), for the
/// renderers of kubeadm's and the API server's files. In memory only: it is never written, and
/// it is not a valid document when the secrets came from a vault.
pub fn resolved(ctx: &Context) -> Result<NodeConfig> {
    let mut config = ctx.config.clone();
    config.bootstrap.token = Some(join_token(ctx)?);
    if config.is_master() {
        config.pki = Some(shared_pki(ctx)?);
    }
    Ok(config)
}
