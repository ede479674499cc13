//! The artifact release mirror: a directory laid out like upstream's release bucket
//! (`release/<version>/bin/linux/amd64/<tool>` with `<tool>.sha256` beside it), served on
//! loopback, optionally slowed down (to interrupt a download on purpose) or with one file
//! corrupted in transit while its checksum file stays right.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use hyper::Method;
use sha2::{Digest, Sha256};

use crate::http::{Answer, LoopbackServer};

/// Builds `<dir>/release/<version>/bin/linux/amd64/` from `(tool name, source file)` pairs.
pub fn build_release_tree(dir: &Path, version: &str, tools: &[(&str, PathBuf)]) -> Result<()> {
    let bin = dir.join(format!("release/{version}/bin/linux/amd64"));
    fs::create_dir_all(&bin)?;
    for (name, source) in tools {
        let bytes = fs::read(source).with_context(|| format!("read {}", source.display()))?;
        fs::write(bin.join(name), &bytes)?;
        fs::write(
            bin.join(format!("{name}.sha256")),
            hex::encode(Sha256::digest(&bytes)),
        )?;
    }
    Ok(())
}

#[derive(Debug, Clone, Default)]
pub struct Behaviour {
    /// Throughput cap for every response, bytes per second.
    pub bytes_per_second: Option<u64>,
    /// File name (e.g. `kubelet`) served with one byte flipped; its `.sha256` stays correct.
    pub corrupt: Option<String>,
}

pub fn start(root: PathBuf, behaviour: Behaviour) -> LoopbackServer {
    LoopbackServer::start(move |request| {
        let not_found = || Answer::new(404, "text/plain", b"not found".to_vec());
        let relative = request.uri().path().trim_start_matches('/');
        if request.method() != Method::GET
            || relative
                .split('/')
                .any(|part| part == ".." || part.is_empty())
        {
            return not_found();
        }
        let Ok(mut bytes) = fs::read(root.join(relative)) else {
            return not_found();
        };
        if behaviour.corrupt.as_deref() == relative.rsplit('/').next() {
            let middle = bytes.len() / 2;
            bytes[middle] ^= 0xff;
        }
        Answer {
            bytes_per_second: behaviour.bytes_per_second,
            ..Answer::new(200, "application/octet-stream", bytes)
        }
    })
}
