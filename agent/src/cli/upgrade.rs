//! `kubeboot-agent upgrade --to VERSION`: moves this node, once done, to a newer patch or the next
//! minor in the steps of `crate::upgrade`; `--plan` shows them and changes nothing.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use kubeboot_nodeconfig::KubernetesVersion;

use super::plan::{self, Recorded};
use super::OutputFormat;
use crate::context::Context;
use crate::error::Stop;
use crate::markers::Markers;
use crate::upgrade::{self, Decision};
use crate::workflow;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub node: super::NodeArgs,
    /// The Kubernetes version to move to (vMAJOR.MINOR.PATCH): a newer patch of the node's minor,
    /// or the next minor. Upgrade the first master first, then the other masters one at a time,
    /// then the workers.
    #[arg(long, value_name = "VERSION")]
    pub to: KubernetesVersion,
    /// Credentials that may drain this node (cordon it, evict its pods): a file of root's that
    /// only root may read.
    /// Default on a master: /etc/kubernetes/admin.conf. A worker without it must have been
    /// drained beforehand (`kubectl drain NODE --ignore-daemonsets --delete-emptydir-data`); it
    /// uncordons itself.
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Show the steps the upgrade would run, and why, and change nothing.
    #[arg(long)]
    pub plan: bool,
    /// With --plan: text for people, or one JSON document.
    #[arg(long, short, value_enum, default_value = "text", requires = "plan")]
    pub output: OutputFormat,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let root = args.node.root();
    let ctx = Context::load(root.clone(), args.node.config())?;
    let kubeconfig = args
        .kubeconfig
        .as_deref()
        .map(check_kubeconfig)
        .transpose()?;
    // What is decided must still hold when the steps run: no other run in between (`--plan`
    // changes nothing and takes no lock).
    let _lock = match args.plan {
        false => workflow::begin_run(&ctx)?,
        true => None,
    };
    let decision = upgrade::decide(&ctx, &args.to, kubeconfig)?;
    let mut config = ctx.config.clone();
    config.cluster.kubernetes_version = args.to.clone();
    let at_target = Context::new(root, config);
    let (Decision::New(record) | Decision::Resume(record)) = &decision else {
        println!("this node is at {} already: nothing to do", args.to);
        return Ok(ExitCode::SUCCESS);
    };
    if args.plan {
        let recorded = match decision {
            Decision::Resume(_) => Recorded::Count,
            _ => Recorded::Ignore,
        };
        let markers = Markers::for_upgrade(&at_target.root);
        let planned = plan::plan_stages(&at_target, &markers, &upgrade::stages(), recorded)?;
        plan::print(&planned, args.output)?;
        return Ok(ExitCode::SUCCESS);
    }
    upgrade::run(&at_target, &decision)?;
    println!("upgraded this node from {} to {}", record.from, record.to);
    Ok(ExitCode::SUCCESS)
}

/// The `--kubeconfig` path as kubectl gets it (absolute): an existing file of this user's (root's)
/// that nobody else may read or write. It holds credentials, and kubectl runs the commands an
/// `exec` entry in it names.
fn check_kubeconfig(path: &std::path::Path) -> Result<String> {
    let bad = |why: &str| Stop::BadConfig(format!("--kubeconfig {}: {why}", path.display()));
    let path = std::fs::canonicalize(path).map_err(|e| bad(&e.to_string()))?;
    let meta = std::fs::metadata(&path).map_err(|e| bad(&e.to_string()))?;
    if !meta.is_file() {
        return Err(bad("not a file").into());
    }
    if meta.uid() != nix::unistd::geteuid().as_raw() {
        return Err(bad("owned by another user than the one running the agent").into());
    }
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(
            bad("readable by others than its owner; it holds credentials (chmod 600 it)").into(),
        );
    }
    Ok(path.display().to_string())
}
