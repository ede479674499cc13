//! `kubeboot-agent bake`: what Packer runs while building an image — installs the artifacts and the
//! agent's units, records baked.json and removes the build VM's identity and first-boot state.

use std::process::ExitCode;

use anyhow::Result;

use super::install::print_report;
use crate::artifacts;

/// The same arguments as `install`: what to install and from where.
pub use super::install::Args;

pub fn run(args: Args) -> Result<ExitCode> {
    args.artifacts.check(true)?;
    let root = args.common.root();
    let report = artifacts::bake(&args.artifacts.set(true), &root, &args.artifacts.options())?;
    print_report(&report);
    println!(
        "recorded {} and cleaned first-boot state under {}",
        artifacts::BAKED_MANIFEST_PATH,
        root.dir().display()
    );
    Ok(ExitCode::SUCCESS)
}
