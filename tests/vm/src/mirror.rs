//! The artifact release mirror: a directory laid out like upstream's release bucket
//! (`release/<version>/bin/linux/amd64/<tool>` with `<tool>.sha256` beside it), served on
//! loopback, optionally slowed down (to interrupt a download on purpose) or with one file
//! corrupted in transit while its checksum file stays right.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

use crate::http::{respond, LoopbackServer};

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

pub fn start(root: PathBuf, behaviour: Behaviour) -> Result<LoopbackServer> {
    LoopbackServer::start(move |request| {
        let url = request.url().to_string();
        let path = url.split('?').next().unwrap_or("");
        let relative = path.trim_start_matches('/');
        if request.method() != &tiny_http::Method::Get
            || relative
                .split('/')
                .any(|part| part == ".." || part.is_empty())
        {
            return respond(request, 404, "text/plain", b"not found".to_vec());
        }
        let Ok(mut bytes) = fs::read(root.join(relative)) else {
            return respond(request, 404, "text/plain", b"not found".to_vec());
        };
        if behaviour.corrupt.as_deref() == relative.rsplit('/').next() {
            let middle = bytes.len() / 2;
            bytes[middle] ^= 0xff;
        }
        let len = bytes.len();
        let body = Throttled {
            data: bytes,
            sent: 0,
            started: Instant::now(),
            bytes_per_second: behaviour.bytes_per_second,
        };
        let _ = request.respond(tiny_http::Response::new(
            200.into(),
            vec![
                tiny_http::Header::from_bytes("Content-Type", "application/octet-stream").unwrap(),
            ],
            body,
            Some(len),
            None,
        ));
        200
    })
}

/// A body that never runs ahead of its byte-rate budget.
struct Throttled {
    data: Vec<u8>,
    sent: usize,
    started: Instant,
    bytes_per_second: Option<u64>,
}

impl Read for Throttled {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let rest = &self.data[self.sent..];
        let mut n = rest.len().min(buf.len()).min(64 * 1024);
        if let Some(rate) = self.bytes_per_second {
            n = n.min((rate / 10).max(1) as usize);
            let due = Duration::from_secs_f64(self.sent as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(self.started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        buf[..n].copy_from_slice(&rest[..n]);
        self.sent += n;
        Ok(n)
    }
}
