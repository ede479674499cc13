//! kubeboot-gen: renders a cluster from one spec.

pub mod arm;
pub mod azure_json;
pub mod check;
pub mod names;
pub mod render;
pub mod secrets;
pub mod spec;
pub mod tree;
pub mod validate;
pub mod vault;

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use crate::secrets::{ClusterSecrets, LocalStore};
use crate::spec::SecretStoreKind;
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
/// on `rotate`), everything is rendered and checked in memory, and only then written, all at once
/// (`Tree::replace`). One render at a time per output directory: a second one fails at once
/// instead of replacing the first one's secrets.
pub fn render_dir(spec: &ValidSpec, out: &Path, rotate: bool) -> Result<RenderSummary> {
    let _lock = lock_output(out)?;
    let store = secrets::store_for(spec, out)?;
    // A rotation does not read the store: a damaged one is what --rotate is recommended for.
    let (secrets, origin) = if rotate {
        (ClusterSecrets::generate()?, SecretsOrigin::Rotated)
    } else {
        match store.load()? {
            Some(existing) => (existing, SecretsOrigin::Reused),
            None => (ClusterSecrets::generate()?, SecretsOrigin::Generated),
        }
    };
    let mut rendered = render::render(spec, &secrets)?;
    let local = spec.cluster.spec.secrets.store == SecretStoreKind::Local;
    if local {
        LocalStore::add_to(&mut rendered.tree, &secrets)?;
    }
    let problems = check::check_tree(&rendered.tree);
    if !problems.is_empty() {
        bail!(
            "the rendered output fails its own check (a kubeboot-gen bug): {}",
            problems.join("; ")
        );
    }
    // Before anything is saved: a wrong --out must not cost a rotation in the vault.
    rendered.tree.refuse_foreign(out)?;
    if !local && origin != SecretsOrigin::Reused {
        store.save(&secrets)?;
    }
    rendered.tree.replace(out)?;
    Ok(RenderSummary {
        secrets: origin,
        custom_data_sizes: rendered.custom_data_sizes,
    })
}

/// Takes the lock of the output directory `out`: an exclusive `flock` on `.NAME.lock` beside it
/// (not inside: the directory itself is replaced by each render), held until the guard drops.
fn lock_output(out: &Path) -> Result<Flock<File>> {
    let (parent, name) = tree::beside(out)?;
    fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let path = parent.join(format!(".{name}.lock"));
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(secrets::FILE_MODE)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| match errno {
        Errno::EWOULDBLOCK => anyhow::anyhow!(
            "another kubeboot-gen render into {} is running (it holds {}); wait for it to finish",
            out.display(),
            path.display()
        ),
        errno => anyhow::anyhow!("locking {}: {errno}", path.display()),
    })
}
