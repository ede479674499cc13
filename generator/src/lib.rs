//! kubeboot-gen: renders a cluster from one spec.

pub mod arm;
pub mod azure_json;
pub mod check;
pub mod names;
mod par;
pub mod render;
pub mod secrets;
pub mod spec;
pub mod tree;
pub mod validate;
pub mod vault;

use std::fs;
use std::io::ErrorKind;
use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::secrets::ClusterSecrets;
use crate::validate::ValidSpec;

/// Where the secrets of a render came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretsOrigin {
    Reused,
    Generated,
    Rotated,
}

#[derive(Debug, Clone)]
pub struct RenderSummary {
    pub secrets: SecretsOrigin,
    /// Each pool's custom data size in bytes (decoded, i.e. what Azure's limit counts).
    pub custom_data_sizes: Vec<(String, usize)>,
}

/// Renders `spec` into `out`: secrets are loaded from the spec's store (or generated, or replaced
/// on `rotate`), everything is rendered and checked in memory, and only then written.
pub fn render_dir(spec: &ValidSpec, out: &Path, rotate: bool) -> Result<RenderSummary> {
    let store = secrets::store_for(spec, out)?;
    let (secrets, origin) = match (rotate, store.load()?) {
        (true, _) => (ClusterSecrets::generate()?, SecretsOrigin::Rotated),
        (false, Some(existing)) => (existing, SecretsOrigin::Reused),
        (false, None) => (ClusterSecrets::generate()?, SecretsOrigin::Generated),
    };
    let rendered = render::render(spec, &secrets)?;
    let problems = check::check_tree(&rendered.tree);
    if !problems.is_empty() {
        bail!(
            "the rendered output fails its own check (a kubeboot-gen bug): {}",
            problems.join("; ")
        );
    }
    if origin != SecretsOrigin::Reused {
        store.save(&secrets)?;
    }
    rendered.tree.write(out)?;
    remove_stale_pools(out, spec)?;
    Ok(RenderSummary {
        secrets: origin,
        custom_data_sizes: rendered.custom_data_sizes,
    })
}

/// A pool removed from the spec must not leave its old user data behind in `out/pools/`.
fn remove_stale_pools(out: &Path, spec: &ValidSpec) -> Result<()> {
    let dir = out.join("pools");
    let entries = match fs::read_dir(&dir) {
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        other => other.with_context(|| format!("reading {}", dir.display()))?,
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let known = spec
            .cluster
            .spec
            .pools
            .iter()
            .any(|p| name.to_str() == Some(p.name.as_str()));
        if !known {
            fs::remove_dir_all(entry.path())
                .with_context(|| format!("removing stale {}", entry.path().display()))?;
        }
    }
    Ok(())
}
