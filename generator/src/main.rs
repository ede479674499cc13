use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use kubeboot_gen::render::CUSTOM_DATA_LIMIT;
use kubeboot_gen::validate::{validate_text_with, Lifecycle, ValidSpec, EXAMPLE_SPEC};
use kubeboot_gen::{check, render_dir, SecretsOrigin};
use kubeboot_nodeconfig::releases::RELEASES;

/// Renders a kubeboot cluster (ARM template, per-pool cloud-init user data, azure.json, secrets) from one spec.
#[derive(Parser)]
#[command(name = "kubeboot-gen", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the built-in example spec.
    Example,
    /// Validate a spec; every problem is printed on one line naming its field.
    Validate {
        #[arg(long, value_name = "FILE")]
        spec: PathBuf,
        /// Print the spec with every default applied.
        #[arg(long)]
        show_effective: bool,
        #[command(flatten)]
        lifecycle: LifecycleArgs,
    },
    /// Render a cluster into DIR (nothing is written unless the spec is valid).
    Render {
        /// The cluster spec; the built-in example when omitted.
        #[arg(long, value_name = "FILE")]
        spec: Option<PathBuf>,
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Replace the stored secrets with new ones instead of reusing them.
        #[arg(long)]
        rotate: bool,
        #[command(flatten)]
        lifecycle: LifecycleArgs,
    },
    /// Print what kubeboot knows per Kubernetes minor (a Markdown table): end of life, the images
    /// kubeadm pulls (for mirroring into an air-gapped registry), cloud-provider-azure's tag and the
    /// containerd a node needs.
    Releases,
    /// Re-validate everything a render wrote into DIR.
    Check {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
}

#[derive(clap::Args)]
struct LifecycleArgs {
    /// Accept a Kubernetes minor whose upstream support has ended (with a warning). Without it such
    /// a spec is refused, naming the end-of-life date.
    #[arg(long)]
    allow_end_of_life: bool,
}

impl LifecycleArgs {
    fn lifecycle(&self) -> Lifecycle {
        Lifecycle::today(self.allow_end_of_life)
    }
}

/// Exit status for a spec that is not valid, as the agent's for a bad NodeConfig (other failures
/// exit 1).
const INVALID_SPEC: u8 = 2;

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<ExitCode> {
    match Cli::parse().command {
        Command::Example => {
            print!("{EXAMPLE_SPEC}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Validate {
            spec,
            show_effective,
            lifecycle,
        } => {
            let Some(valid) = load_spec(Some(&spec), lifecycle.lifecycle())? else {
                return Ok(ExitCode::from(INVALID_SPEC));
            };
            if show_effective {
                print!("{}", valid.effective_yaml());
            } else {
                println!("{}: valid", spec.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Render {
            spec,
            out,
            rotate,
            lifecycle,
        } => {
            let Some(valid) = load_spec(spec.as_deref(), lifecycle.lifecycle())? else {
                return Ok(ExitCode::from(INVALID_SPEC));
            };
            let summary = render_dir(&valid, &out, rotate)?;
            let origin = match summary.secrets {
                SecretsOrigin::Reused => "reused",
                SecretsOrigin::Generated => "generated",
                SecretsOrigin::Rotated => "rotated",
            };
            println!("secrets: {origin}");
            for (pool, size) in &summary.custom_data_sizes {
                println!("pool {pool}: custom data {size} bytes (limit {CUSTOM_DATA_LIMIT})");
            }
            println!("rendered {} into {}", valid.name(), out.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Releases => {
            print!("{}", releases_table());
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { dir } => {
            let problems = check::check_dir(&dir)?;
            for problem in &problems {
                eprintln!("error: {problem}");
            }
            if problems.is_empty() {
                println!("{}: ok", dir.display());
                Ok(ExitCode::SUCCESS)
            } else {
                Ok(ExitCode::FAILURE)
            }
        }
    }
}

/// Reads and validates a spec, printing warnings; prints every error and returns `None` when
/// the spec is invalid.
fn load_spec(path: Option<&Path>, lifecycle: Lifecycle) -> Result<Option<ValidSpec>> {
    let text = match path {
        Some(p) => fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
        None => EXAMPLE_SPEC.to_string(),
    };
    match validate_text_with(&text, lifecycle) {
        Ok(valid) => {
            for warning in &valid.warnings {
                eprintln!("warning: {warning}");
            }
            Ok(Some(valid))
        }
        Err(errors) => {
            for error in &errors {
                eprintln!("error: {error}");
            }
            Ok(None)
        }
    }
}

/// `kubeboot-gen releases`: one row per minor of `nodeconfig::releases::RELEASES`.
fn releases_table() -> String {
    let mut out = String::from(
        "| minor | end of life | kubeadm config | pause | etcd | CoreDNS | cloud-provider-azure | containerd (min / recommended) | unconfirmed |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    for r in RELEASES {
        out += &format!(
            "| 1.{} | {} | {} | {} | {} | {} | {} | {} / {} | {} |\n",
            r.minor,
            r.end_of_life,
            r.kubeadm_api_version,
            r.pause_image,
            r.etcd_tag,
            r.coredns_tag,
            r.cloud_provider_azure.tag,
            r.min_containerd,
            r.recommended_containerd,
            if r.unconfirmed.is_empty() {
                "-".to_string()
            } else {
                r.unconfirmed.join(", ")
            }
        );
    }
    out
}
