//! Extraction of a verified release tarball: only plain regular files at the top level, each staged
//! beside its final path. A link, device, nested or escaping path anywhere in the archive refuses
//! the whole tarball: a release tarball never has one, so it means the archive is not what it
//! claims to be.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, Seek, SeekFrom};
use std::path::{Component, Path};

use anyhow::{bail, ensure, Context, Result};
use flate2::read::GzDecoder;
use tar::EntryType;

use super::baked::BakedFile;
use super::source::Staged;
use super::{Artifact, HashingWriter, Members, Payload};
use crate::fsx;
use crate::root::Root;

pub(super) fn extract(tarball: &File, artifact: &Artifact, root: &Root) -> Result<Vec<Staged>> {
    let Payload::Tarball { dir, members } = &artifact.payload else {
        bail!("{} is not a tarball", artifact.name);
    };
    let mut reader = tarball.try_clone()?;
    reader.seek(SeekFrom::Start(0))?;
    let mut archive = tar::Archive::new(GzDecoder::new(reader));
    let mut staged: Vec<Staged> = Vec::new();
    let mut seen = BTreeSet::new();
    for entry in archive.entries().context("reading the tarball")? {
        let mut entry = entry.context("reading the tarball")?;
        // pax global headers carry archive metadata (git archive writes one), not files.
        if entry.header().entry_type() == EntryType::XGlobalHeader {
            continue;
        }
        let raw = entry.path().context("reading a member name")?.into_owned();
        let Some(name) = top_level_name(&raw)? else {
            ensure!(
                entry.header().entry_type() == EntryType::Directory,
                "refusing member {:?}: the archive root must be a directory",
                raw
            );
            continue;
        };
        ensure!(
            entry.header().entry_type() == EntryType::Regular,
            "refusing member {:?}: only regular files are accepted, not {:?}",
            raw,
            entry.header().entry_type()
        );
        ensure!(seen.insert(name.clone()), "member {name:?} appears twice");
        if !wanted(members, &name) {
            continue;
        }
        let node_path = dir.join(&name);
        let mut file = fsx::staging_file(&root.path(&node_path))?;
        let mut hashing = HashingWriter::new(file.as_file_mut());
        io::copy(&mut entry, &mut hashing).with_context(|| format!("extracting {name}"))?;
        let sha256 = hashing.digest();
        staged.push(Staged {
            file,
            record: BakedFile {
                name: artifact.name.clone(),
                version: artifact.version.clone(),
                path: node_path,
                sha256,
            },
        });
    }
    let required = match members {
        Members::Only(names)
        | Members::All {
            required: names, ..
        } => names,
    };
    if let Some(absent) = required.iter().find(|n| !seen.contains(*n)) {
        bail!("the tarball has no {absent:?}");
    }
    Ok(staged)
}

/// The member's file name when it sits at the top level (`crictl`, `./bridge`), `None` for the
/// archive root (`./`); an error for anything nested, absolute or escaping.
fn top_level_name(path: &Path) -> Result<Option<String>> {
    let mut names = Vec::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::Normal(name) => names.push(name),
            _ => bail!("refusing member {path:?}: absolute or escaping path"),
        }
    }
    match names.as_slice() {
        [] => Ok(None),
        [name] => name
            .to_str()
            .filter(|n| !n.starts_with('.'))
            .map(|n| Some(n.to_string()))
            .with_context(|| format!("refusing member {path:?}: not a plain file name")),
        _ => bail!("refusing member {path:?}: nested paths are not expected"),
    }
}

fn wanted(members: &Members, name: &str) -> bool {
    match members {
        Members::Only(names) => names.iter().any(|n| n == name),
        Members::All { skip, .. } => !skip.iter().any(|n| n == name),
    }
}
