use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand, ValueEnum};
use kubeboot_gen::render::CUSTOM_DATA_LIMIT;
use kubeboot_gen::validate::{validate_text_with, Lifecycle, ValidSpec, EXAMPLE_SPEC};
use kubeboot_gen::{check, render_dir, SecretsOrigin};
use kubeboot_nodeconfig::releases::RELEASES;
use kubeboot_nodeconfig::{exit, FieldError};
use serde_json::json;

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
    /// Validate a spec; every problem is printed on one line naming its field (exit 2 if any).
    Validate {
        #[arg(long, value_name = "FILE")]
        spec: PathBuf,
        /// Print the spec with every default applied.
        #[arg(long, conflicts_with = "output")]
        show_effective: bool,
        #[arg(long, short, value_enum, default_value = "text")]
        output: OutputFormat,
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
    /// Re-validate everything a render wrote into DIR (exit 1 if a problem is found).
    Check {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        #[arg(long, short, value_enum, default_value = "text")]
        output: OutputFormat,
    },
}

/// `--output`: text for people, or one JSON document (docs/cli.md#json-output).
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OutputFormat {
    Text,
    Json,
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

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(exit::FAILED)
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
            output,
            lifecycle,
        } => {
            let outcome = validate_file(Some(&spec), lifecycle.lifecycle());
            if output == OutputFormat::Json {
                let (errors, warnings) = match &outcome {
                    Ok(valid) => (&[][..], &valid.warnings[..]),
                    Err(errors) => (&errors[..], &[][..]),
                };
                let report = json!({"spec": spec, "valid": outcome.is_ok(), "errors": errors, "warnings": warnings});
                println!("{}", serde_json::to_string_pretty(&report)?);
                return Ok(ExitCode::from(match outcome {
                    Ok(_) => exit::OK,
                    Err(_) => exit::BAD_INPUT,
                }));
            }
            let Some(valid) = report_problems(outcome) else {
                return Ok(ExitCode::from(exit::BAD_INPUT));
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
            let outcome = validate_file(spec.as_deref(), lifecycle.lifecycle());
            let Some(valid) = report_problems(outcome) else {
                return Ok(ExitCode::from(exit::BAD_INPUT));
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
        Command::Check { dir, output } => {
            let problems = check::check_dir(&dir)?;
            if output == OutputFormat::Json {
                let report = json!({"dir": dir, "ok": problems.is_empty(), "problems": problems});
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                for problem in &problems {
                    eprintln!("error: {problem}");
                }
                if problems.is_empty() {
                    println!("{}: ok", dir.display());
                }
            }
            Ok(ExitCode::from(if problems.is_empty() {
                exit::OK
            } else {
                exit::FAILED
            }))
        }
    }
}

/// Reads and validates a spec (the built-in example without a path). A file that cannot be read
/// or is not UTF-8 is bad input like an invalid spec: one error naming the file.
fn validate_file(path: Option<&Path>, lifecycle: Lifecycle) -> Result<ValidSpec, Vec<FieldError>> {
    let text = match path {
        Some(p) => fs::read(p)
            .map_err(|e| e.to_string())
            .and_then(|bytes| {
                String::from_utf8(bytes).map_err(|e| {
                    format!(
                        "not UTF-8 text (invalid byte at offset {})",
                        e.utf8_error().valid_up_to()
                    )
                })
            })
            .map_err(|message| vec![FieldError::new(p.display().to_string(), message)])?,
        None => EXAMPLE_SPEC.to_string(),
    };
    validate_text_with(&text, lifecycle)
}

/// Prints a validation's warnings or errors on stderr; the spec when it is valid.
fn report_problems(outcome: Result<ValidSpec, Vec<FieldError>>) -> Option<ValidSpec> {
    match outcome {
        Ok(valid) => {
            for warning in &valid.warnings {
                eprintln!("warning: {warning}");
            }
            Some(valid)
        }
        Err(errors) => {
            for error in &errors {
                eprintln!("error: {error}");
            }
            None
        }
    }
}

/// `kubeboot-gen releases`: one row per minor of `nodeconfig::releases::RELEASES`.
fn releases_table() -> String {
    let mut out = String::from(
        "| minor | end of life | kubeadm config | pause | etcd | CoreDNS | cloud-provider-azure | cluster-autoscaler | containerd (min / recommended) | unconfirmed |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in RELEASES {
        out += &format!(
            "| 1.{} | {} | {} | {} | {} | {} | {} | {} | {} / {} | {} |\n",
            r.minor,
            r.end_of_life,
            r.kubeadm_api_version,
            r.pause_image,
            r.etcd_tag,
            r.coredns_tag,
            r.cloud_provider_azure.tag,
            r.cluster_autoscaler,
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
