//! `kubeboot-agent audit [--root DIR] [--role master|worker] [--output json]`: the CIS checks of
//! `crate::audit` on this node. Exit 0 when every applicable check passes, 1 when one fails
//! (2 when the node's role cannot be told).

use std::process::ExitCode;

use anyhow::{Context as _, Result};
use kubeboot_nodeconfig::{exit, Role};

use crate::audit::{self, Node, Status};
use crate::error::Stop;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RoleArg {
    Master,
    Worker,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub report: super::ReportArgs,
    /// Audit as this role instead of reading it from the NodeConfig.
    #[arg(long, value_enum)]
    pub role: Option<RoleArg>,
}

fn role(args: &Args) -> Result<Role> {
    if let Some(role) = args.role {
        return Ok(match role {
            RoleArg::Master => Role::Master,
            RoleArg::Worker => Role::Worker,
        });
    }
    let root = args.report.node.root();
    let path = args
        .report
        .node
        .config
        .clone()
        .unwrap_or_else(|| root.path(kubeboot_nodeconfig::DEFAULT_PATH));
    let text = std::fs::read_to_string(&path).map_err(|e| {
        Stop::BadConfig(format!(
            "{}: {e} (pass --role to audit without it)",
            path.display()
        ))
    })?;
    let config =
        kubeboot_nodeconfig::parse(&text).with_context(|| format!("reading {}", path.display()))?;
    Ok(config.node.role)
}

pub fn run(args: Args) -> Result<ExitCode> {
    let role = role(&args)?;
    let report = audit::run(&Node::new(args.report.node.root())?, role);
    match args.report.output {
        super::OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        super::OutputFormat::Text => {
            for check in &report.checks {
                let status = match check.status {
                    Status::Pass => "PASS",
                    Status::Fail => "FAIL",
                    Status::NotApplicable => "N/A ",
                };
                println!(
                    "{status} {:<7} {}: {}",
                    check.id, check.title, check.evidence
                );
            }
            println!(
                "{}: {} passed, {} failed (audited as a {})",
                report.benchmark,
                report.passed,
                report.failed,
                if role == Role::Master {
                    "master"
                } else {
                    "worker"
                }
            );
        }
    }
    Ok(ExitCode::from(if report.all_passed() {
        exit::OK
    } else {
        exit::FAILED
    }))
}
