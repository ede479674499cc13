//! Extraction of a verified release tarball: only plain regular files at the top level (or, for a
//! release that packs them in one directory such as containerd's `bin/`, in exactly that directory),
//! each staged beside its final path. A link, device, other nested or escaping path anywhere in the
//! archive refuses the whole tarball: a release tarball never has one, so it means the archive is
//! not what it claims to be.

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
use crate::root::Root;

pub(super) fn extract(tarball: &File, artifact: &Artifact, root: &Root) -> Result<Vec<Staged>> {
    let Payload::Tarball {
        dir,
        members,
        inner_dir,
    } = &artifact.payload
    else {
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
        let Some(name) = member_name(&raw, *inner_dir)? else {
            ensure!(
                entry.header().entry_type() == EntryType::Directory,
                "refusing member {:?}: the archive root and {} must be directories",
                raw,
                inner_dir.unwrap_or("its root")
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
        let mut file = root.staging_file(&node_path)?;
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

/// The member's file name when it sits at the top level (`crictl`, `./bridge`) or, with
/// `inner_dir`, directly in that directory (`bin/containerd`); `None` for the archive root (`./`)
/// and `inner_dir` itself; an error for anything else nested, absolute or escaping. With
/// `inner_dir`, files must be in it: a top-level file is refused too.
fn member_name(path: &Path, inner_dir: Option<&str>) -> Result<Option<String>> {
    let mut names = Vec::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::Normal(name) => names.push(name),
            _ => bail!("refusing member {path:?}: absolute or escaping path"),
        }
    }
    let file = match (names.as_slice(), inner_dir) {
        ([], _) => return Ok(None),
        ([dir], Some(inner)) if dir.to_str() == Some(inner) => return Ok(None),
        ([dir, name], Some(inner)) if dir.to_str() == Some(inner) => name,
        ([name], None) => name,
        (_, Some(inner)) => bail!("refusing member {path:?}: files are expected in {inner}/ only"),
        (_, None) => bail!("refusing member {path:?}: nested paths are not expected"),
    };
    file.to_str()
        .filter(|n| !n.starts_with('.'))
        .map(|n| Some(n.to_string()))
        .with_context(|| format!("refusing member {path:?}: not a plain file name"))
}

fn wanted(members: &Members, name: &str) -> bool {
    match members {
        Members::Only(names) => names.iter().any(|n| n == name),
        Members::All { skip, .. } => !skip.iter().any(|n| n == name),
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use flate2::write::GzEncoder;

    use super::*;

    fn name(path: &str, inner_dir: Option<&str>) -> Result<Option<String>, String> {
        member_name(Path::new(path), inner_dir).map_err(|e| e.to_string())
    }

    #[test]
    fn files_at_the_top_level_only_without_an_inner_dir() {
        assert_eq!(name("crictl", None), Ok(Some("crictl".into())));
        assert_eq!(name("./bridge", None), Ok(Some("bridge".into())));
        assert_eq!(name("./", None), Ok(None));
        assert!(name("bin/containerd", None).unwrap_err().contains("nested"));
        assert!(
            name("bin", None).is_ok(),
            "a top-level name; its type decides"
        );
    }

    #[test]
    fn with_an_inner_dir_files_only_directly_in_it() {
        let bin = Some("bin");
        assert_eq!(name("bin/containerd", bin), Ok(Some("containerd".into())));
        assert_eq!(name("./bin/ctr", bin), Ok(Some("ctr".into())));
        assert_eq!(name("bin/", bin), Ok(None));
        assert_eq!(name("./", bin), Ok(None));
        for hostile in [
            "containerd",
            "sbin/containerd",
            "bin/sub/containerd",
            "bin/../containerd",
            "../bin/containerd",
            "/bin/containerd",
            "bin/.hidden",
        ] {
            assert!(name(hostile, bin).is_err(), "{hostile} must be refused");
        }
    }

    fn tarball_file(build: impl FnOnce(&mut tar::Builder<GzEncoder<Vec<u8>>>)) -> File {
        let mut builder =
            tar::Builder::new(GzEncoder::new(Vec::new(), flate2::Compression::fast()));
        build(&mut builder);
        let bytes = builder.into_inner().unwrap().finish().unwrap();
        let mut file = tempfile::tempfile().unwrap();
        io::Write::write_all(&mut file, &bytes).unwrap();
        file
    }

    fn containerd() -> Artifact {
        Artifact {
            name: "containerd".into(),
            version: "v2.1.4".into(),
            url: "https://example.test/containerd.tar.gz".into(),
            checksum_url: "https://example.test/containerd.tar.gz.sha256sum".into(),
            checksum_entry: None,
            payload: Payload::Tarball {
                dir: PathBuf::from("/usr/local/bin"),
                members: Members::Only(vec!["containerd".into(), "ctr".into()]),
                inner_dir: Some("bin"),
            },
        }
    }

    fn append_file(builder: &mut tar::Builder<GzEncoder<Vec<u8>>>, path: &str, body: &[u8]) {
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o755);
        header.set_size(body.len() as u64);
        builder.append_data(&mut header, path, body).unwrap();
    }

    fn refusal(result: Result<Vec<Staged>>) -> String {
        match result {
            Ok(_) => panic!("the tarball must be refused"),
            Err(e) => format!("{e:#}"),
        }
    }

    #[test]
    fn extracts_the_inner_dir_and_refuses_a_link_in_it() {
        let root_dir = tempfile::tempdir().unwrap();
        let root = Root::new(root_dir.path());
        let good = tarball_file(|b| {
            append_file(b, "bin/containerd", b"daemon");
            append_file(b, "bin/ctr", b"client");
            append_file(b, "bin/containerd-stress", b"not wanted");
        });
        let staged = extract(&good, &containerd(), &root).unwrap();
        let paths: Vec<PathBuf> = staged.iter().map(|s| s.record.path.clone()).collect();
        assert_eq!(
            paths,
            [
                PathBuf::from("/usr/local/bin/containerd"),
                PathBuf::from("/usr/local/bin/ctr")
            ]
        );

        let linked = tarball_file(|b| {
            append_file(b, "bin/containerd", b"daemon");
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(EntryType::Symlink);
            header.set_size(0);
            b.append_link(&mut header, "bin/ctr", "/etc/shadow")
                .unwrap();
        });
        let error = refusal(extract(&linked, &containerd(), &root));
        assert!(error.contains("only regular files"), "{error}");

        let incomplete = tarball_file(|b| append_file(b, "bin/containerd", b"daemon"));
        let error = refusal(extract(&incomplete, &containerd(), &root));
        assert!(error.contains("no \"ctr\""), "{error}");
    }
}
