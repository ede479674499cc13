//! Command line: one file per subcommand. To add one, add a variant to `Command` with its `Args`
//! and a line in `run`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use kubeboot_nodeconfig::exit;

use crate::error::exit_code_for;
use crate::root::Root;

pub mod audit;
pub mod bake;
pub mod install;
pub mod plan;
pub mod rotate_join_token;
pub mod run;
pub mod status;
pub mod upgrade;

#[derive(Debug, Parser)]
#[command(
    name = "kubeboot-agent",
    version,
    about = "Turns this machine into a Kubernetes \
master or worker from /etc/kubeboot/node.yaml, in named, idempotent, resumable phases."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run every phase that is not done yet (exit 0 when the node is done).
    Run(run::Args),
    /// Show the phases that would run, which are done, and why.
    Plan(plan::Args),
    /// Show per-phase state, timestamps and last errors (without a readable NodeConfig, phases that
    /// do not apply to this node show as pending instead of skipped).
    Status(status::Args),
    /// Install kubelet, kubeadm, kubectl (and crictl, CNI plugins) of one version, verified.
    Install(install::Args),
    /// Prepare a VM image: install and record the artifacts, clean the build VM's first-boot state.
    Bake(bake::Args),
    /// Check this node against the CIS Kubernetes Benchmark items the agent controls (exit 1 on a failure).
    Audit(audit::Args),
    /// Masters with a Key Vault: make sure this hour's join token exists in the cluster and in the
    /// vault, and delete expired ones (the kubeboot-join-token timer runs it every 10 min).
    RotateJoinToken(rotate_join_token::Args),
    /// Move this node, once done, to a newer Kubernetes patch or the next minor: kubeadm, the
    /// control plane, then the kubelet with the node drained; resumable like `run`.
    Upgrade(upgrade::Args),
}

/// Options every subcommand shares.
#[derive(Debug, Clone, clap::Args)]
pub struct Common {
    /// Prefix for every path the agent reads or writes on the node (tests, dry runs).
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
}

impl Common {
    pub fn root(&self) -> Root {
        Root::new(&self.root)
    }
}

/// `--output`: text for people, or one JSON document (docs/cli.md#json-output).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

/// Options of the subcommands that report on this node (plan, status, audit).
#[derive(Debug, Clone, clap::Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub node: NodeArgs,
    #[arg(long, short, value_enum, default_value = "text")]
    pub output: OutputFormat,
}

/// Options of the subcommands that read this node's NodeConfig.
#[derive(Debug, Clone, clap::Args)]
pub struct NodeArgs {
    #[command(flatten)]
    pub common: Common,
    /// The NodeConfig (default: /etc/kubeboot/node.yaml under --root).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

impl NodeArgs {
    pub fn root(&self) -> Root {
        self.common.root()
    }

    pub fn config(&self) -> Option<&Path> {
        self.config.as_deref()
    }
}

/// Parses the command line, runs the subcommand and maps its outcome to an exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                exit::BAD_INPUT
            } else {
                exit::OK
            });
        }
    };
    crate::logging::init();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::from(exit_code_for(&e))
        }
    }
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run(args) => run::run(args),
        Command::Plan(args) => plan::run(args),
        Command::Status(args) => status::run(args),
        Command::Install(args) => install::run(args),
        Command::Bake(args) => bake::run(args),
        Command::Audit(args) => audit::run(args),
        Command::RotateJoinToken(args) => rotate_join_token::run(args),
        Command::Upgrade(args) => upgrade::run(args),
    }
}
