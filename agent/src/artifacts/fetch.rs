//! Downloads from a release mirror (https, http, file://): hashed while streaming into a staging
//! file, retried by the agent's retry engine (`crate::retry`, `InstallOptions::retry`), resumed with
//! `Range` where the server allows it. Proxies come from the standard environment variables (reqwest's default).
//!
//! Redirects are followed only to the same origin, or to an https host named in
//! `InstallOptions::redirect_hosts` (where dl.k8s.io and GitHub releases send their downloads): the
//! checksum file comes from the same mirror as the file, so a redirect elsewhere could swap both.

use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};

use anyhow::{anyhow, Context, Result};
use kubeboot_nodeconfig::redact_userinfo;
use reqwest::header::{CONTENT_RANGE, RANGE};
use reqwest::{redirect, StatusCode, Url};
use sha2::{Digest, Sha256};
use tempfile::NamedTempFile;

use super::progress::{ArtifactProgress, Progress};
use super::{Artifact, HashingWriter, InstallOptions};
use crate::retry::{Failure, Stopped, Waiting};

/// Redirect hops followed before giving up.
const MAX_REDIRECTS: usize = 10;
/// A checksum file is one line; anything much larger is not one.
const MAX_CHECKSUM_FILE: u64 = 4096;
/// Bytes buffered before a write to the staging file: few enough writes to cost little, and
/// small enough that several downloads at once keep the agent's peak RSS under 16 MB (with 1 MiB
/// it reached 17–19 MB in the VM test).
const WRITE_BUFFER: usize = 256 << 10;

/// Why one attempt failed; decides whether another attempt can help.
#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error("HTTP {0}")]
    Status(StatusCode),
    #[error("stalled (read timeout): {0}")]
    Stalled(String),
    #[error("truncated body: received {received} of {expected} bytes ({cause})")]
    Truncated {
        received: u64,
        expected: u64,
        cause: String,
    },
    #[error("SHA-256 mismatch: the file has {actual}, the checksum file says {expected}")]
    Mismatch {
        actual: String,
        expected: String,
        /// A resumed download may have joined two versions of a file: worth one fresh try.
        resumed: bool,
    },
    #[error("redirect refused: {0}")]
    Redirect(String),
    #[error("{0}")]
    Transport(String),
    #[error("{0}")]
    Invalid(String),
    #[error("local I/O: {0}")]
    Io(#[from] io::Error),
}

impl FetchError {
    fn retryable(&self) -> bool {
        match self {
            FetchError::Status(status) => {
                status.is_server_error()
                    || *status == StatusCode::TOO_MANY_REQUESTS
                    || *status == StatusCode::REQUEST_TIMEOUT
            }
            FetchError::Stalled(_) | FetchError::Truncated { .. } | FetchError::Transport(_) => {
                true
            }
            FetchError::Mismatch { resumed, .. } => *resumed,
            FetchError::Redirect(_) | FetchError::Invalid(_) | FetchError::Io(_) => false,
        }
    }

    fn from_reqwest(e: reqwest::Error) -> FetchError {
        let (redirect, timeout) = (e.is_redirect(), e.is_timeout());
        let text = error_chain(&e.without_url());
        if redirect {
            FetchError::Redirect(text)
        } else if timeout {
            FetchError::Stalled(text)
        } else {
            FetchError::Transport(text)
        }
    }
}

/// `error: cause: cause`, since reqwest puts the useful part (reset, refused, ...) in the sources.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    text
}

/// The retry engine's predicate: what another attempt can help with.
impl From<FetchError> for Failure {
    fn from(error: FetchError) -> Failure {
        match error.retryable() {
            true => Failure::transient(error.into()),
            false => Failure::permanent(error.into()),
        }
    }
}

pub(super) struct Fetcher {
    client: reqwest::Client,
    options: InstallOptions,
}

impl Fetcher {
    pub(super) fn new(options: &InstallOptions) -> Result<Fetcher> {
        let client = reqwest::Client::builder()
            .connect_timeout(options.connect_timeout)
            .read_timeout(options.read_timeout)
            .redirect(redirect_policy(options.redirect_hosts.clone()))
            .user_agent(concat!("kubeboot-agent/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("building the HTTP client")?;
        Ok(Fetcher {
            client,
            options: options.clone(),
        })
    }

    /// The expected SHA-256 of `artifact` (lowercase hex), from its checksum file.
    pub(super) async fn checksum(&self, artifact: &Artifact) -> Result<String> {
        let what = format!(
            "{}: checksum {}",
            artifact.name,
            redact_userinfo(&artifact.checksum_url)
        );
        let url = parse_url(&artifact.checksum_url).with_context(|| what.clone())?;
        let text = match local_path(&url) {
            Some(path) => {
                let mut text = String::new();
                std::fs::File::open(&path)
                    .and_then(|f| f.take(MAX_CHECKSUM_FILE).read_to_string(&mut text))
                    .with_context(|| what.clone())?;
                text
            }
            None => self
                .options
                .retry
                .retry_async(|_| self.get_small(&url), self.log_waits(&what))
                .await
                .map_err(|stop| self.final_error(stop, &what))?,
        };
        parse_checksum(&text, artifact.checksum_entry.as_deref())
            .map_err(|e| anyhow!("{what}: {e}"))
    }

    /// Downloads `artifact` into `file`, verified against `expected`; returns its size.
    pub(super) async fn download(
        &self,
        artifact: &Artifact,
        expected: &str,
        file: &mut NamedTempFile,
        progress: &Progress,
    ) -> Result<u64> {
        let what = format!("{}: {}", artifact.name, redact_userinfo(&artifact.url));
        let url = parse_url(&artifact.url).with_context(|| what.clone())?;
        let bar = progress.start(&artifact.name, &redact_userinfo(&artifact.url));
        let result = match local_path(&url) {
            Some(path) => copy_local(&path, expected, file)
                .await
                .map_err(|e| anyhow!("{what}: {e}")),
            None => self
                .options
                .retry
                .retry_async(
                    |_| self.try_download(&url, expected, file, &bar),
                    self.log_waits(&what),
                )
                .await
                .map_err(|stop| self.final_error(stop, &what)),
        };
        match &result {
            Ok(size) => bar.verified(*size),
            Err(_) => bar.failed(),
        }
        result
    }

    /// Logs each retry of `what`, counting the attempts.
    fn log_waits<'a>(&self, what: &'a str) -> impl FnMut(&Waiting) + 'a {
        let attempts = self.options.retry.max_attempts;
        move |waiting: &Waiting| {
            log::warn!(
                "{what}: {}; retrying in {:.1} s (attempt {} of {attempts})",
                waiting.reason,
                waiting.next_in.as_secs_f64(),
                waiting.attempt
            )
        }
    }

    /// The error of the last attempt at `what`, counted like the retries.
    fn final_error(&self, stop: Stopped, what: &str) -> anyhow::Error {
        anyhow!(
            "{what}: {} (attempt {} of {})",
            stop.error,
            stop.attempt,
            self.options.retry.max_attempts
        )
    }

    async fn get_small(&self, url: &Url) -> Result<String, FetchError> {
        let response = self
            .client
            .get(url.clone())
            .send()
            .await
            .map_err(FetchError::from_reqwest)?;
        if !response.status().is_success() {
            return Err(FetchError::Status(response.status()));
        }
        if response.content_length().unwrap_or(0) > MAX_CHECKSUM_FILE {
            return Err(FetchError::Invalid("too large for a checksum file".into()));
        }
        let body = response.bytes().await.map_err(FetchError::from_reqwest)?;
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    /// One attempt: resumes from what `file` already holds when the server honours `Range`
    /// (re-hashing that prefix first, so the digest covers the whole file), else starts over.
    async fn try_download(
        &self,
        url: &Url,
        expected: &str,
        file: &NamedTempFile,
        bar: &ArtifactProgress,
    ) -> Result<u64, FetchError> {
        let held = file.as_file().metadata()?.len();
        let mut request = self.client.get(url.clone());
        if held > 0 {
            request = request.header(RANGE, format!("bytes={held}-"));
        }
        let mut response = request.send().await.map_err(FetchError::from_reqwest)?;
        let status = response.status();
        let (offset, mut hasher, total) = match status {
            StatusCode::PARTIAL_CONTENT if held > 0 => {
                let (start, total) = content_range(&response)?;
                if start != held {
                    file.as_file().set_len(0)?;
                    return Err(FetchError::Transport(format!(
                        "asked to resume at byte {held}, the server sent from byte {start}"
                    )));
                }
                (held, hash_prefix(file, held).await?, total)
            }
            StatusCode::OK => {
                file.as_file().set_len(0)?;
                (0, Sha256::new(), response.content_length())
            }
            _ => return Err(FetchError::Status(status)),
        };
        bar.restart(offset, total);

        let mut out = file.as_file().try_clone()?;
        out.seek(SeekFrom::Start(offset))?;
        // Written from this task, not through tokio's blocking pool: a buffered write into the
        // page cache is short, and handing each to another thread took ten times the futex calls
        // and its own buffer (see docs/benchmarks.md).
        let mut out = BufWriter::with_capacity(WRITE_BUFFER, out);
        let mut received = 0u64;
        let streamed: Result<(), FetchError> = async {
            while let Some(chunk) = response.chunk().await.map_err(|e| {
                let e = FetchError::from_reqwest(e);
                match (e, total) {
                    (FetchError::Transport(cause), Some(expected)) => FetchError::Truncated {
                        received: offset + received,
                        expected,
                        cause,
                    },
                    (e, _) => e,
                }
            })? {
                hasher.update(&chunk);
                out.write_all(&chunk)?;
                received += chunk.len() as u64;
                bar.advance(chunk.len() as u64);
            }
            Ok(())
        }
        .await;
        // Always flush, also after an error: the next attempt resumes from the file's length,
        // which must not change under it.
        let flushed = out.flush();
        streamed?;
        flushed?;

        let size = offset + received;
        if let Some(expected_size) = total.filter(|t| *t != size) {
            return Err(FetchError::Truncated {
                received: size,
                expected: expected_size,
                cause: "the connection ended early".into(),
            });
        }
        let actual = hex::encode(hasher.finalize());
        if actual != expected {
            file.as_file().set_len(0)?;
            return Err(FetchError::Mismatch {
                actual,
                expected: expected.to_string(),
                resumed: offset > 0,
            });
        }
        Ok(size)
    }
}

fn parse_url(text: &str) -> Result<Url> {
    let url = Url::parse(text).map_err(|e| anyhow!("not a URL: {e}"))?;
    match url.scheme() {
        "https" | "http" | "file" => Ok(url),
        other => Err(anyhow!("unsupported URL scheme {other:?}")),
    }
}

fn local_path(url: &Url) -> Option<std::path::PathBuf> {
    (url.scheme() == "file")
        .then(|| url.to_file_path().ok())
        .flatten()
}

/// The first word of an upstream checksum file (`<hex>` or `<hex>  <name>`), or with `entry`, of
/// the line of a `sha256sum` listing that names `entry` (`*` marks binary mode in that format).
fn parse_checksum(text: &str, entry: Option<&str>) -> Result<String, String> {
    let line = match entry {
        None => text,
        Some(entry) => text
            .lines()
            .find(|line| {
                line.split_whitespace()
                    .nth(1)
                    .is_some_and(|name| name.trim_start_matches('*') == entry)
            })
            .ok_or_else(|| format!("no line for {entry:?} in the checksum file"))?,
    };
    let word = line.split_whitespace().next().unwrap_or("");
    if word.len() == 64 && word.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(word.to_ascii_lowercase())
    } else {
        Err(format!(
            "not a SHA-256 checksum file (starts with {word:.70?})"
        ))
    }
}

/// `Content-Range: bytes START-END/TOTAL` → (START, TOTAL when known).
fn content_range(response: &reqwest::Response) -> Result<(u64, Option<u64>), FetchError> {
    let invalid = || FetchError::Transport("206 without a valid Content-Range".into());
    let value = response
        .headers()
        .get(CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(invalid)?;
    let (range, total) = value
        .strip_prefix("bytes ")
        .and_then(|r| r.split_once('/'))
        .ok_or_else(invalid)?;
    let start = range
        .split_once('-')
        .and_then(|(s, _)| s.parse().ok())
        .ok_or_else(invalid)?;
    Ok((start, total.parse().ok()))
}

/// A hasher that has already seen the first `len` bytes of `file`.
async fn hash_prefix(file: &NamedTempFile, len: u64) -> Result<Sha256, FetchError> {
    let reader = file.reopen()?;
    tokio::task::spawn_blocking(move || {
        let mut hasher = Sha256::new();
        let read = io::copy(&mut reader.take(len), &mut hasher)?;
        if read != len {
            return Err(FetchError::Invalid(format!(
                "the partial download shrank from {len} to {read} bytes"
            )));
        }
        Ok(hasher)
    })
    .await
    .map_err(|e| FetchError::Io(io::Error::other(e)))?
}

/// A `file://` mirror: copied and hashed in one pass, no retries (a local error does not heal).
async fn copy_local(
    path: &std::path::Path,
    expected: &str,
    file: &mut NamedTempFile,
) -> Result<u64, FetchError> {
    let mut source = std::fs::File::open(path)?;
    let mut target = HashingWriter::new(file.as_file().try_clone()?);
    let (size, target) = tokio::task::spawn_blocking(move || {
        io::copy(&mut source, &mut target).map(|size| (size, target))
    })
    .await
    .map_err(|e| FetchError::Io(io::Error::other(e)))??;
    let actual = target.digest();
    if actual != expected {
        return Err(FetchError::Mismatch {
            actual,
            expected: expected.to_string(),
            resumed: false,
        });
    }
    Ok(size)
}

fn redirect_policy(allowed_hosts: Vec<String>) -> redirect::Policy {
    redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() > MAX_REDIRECTS {
            return attempt.error("too many redirects");
        }
        let from = &attempt.previous()[0];
        if redirect_allowed(from, attempt.url(), &allowed_hosts) {
            attempt.follow()
        } else {
            let refusal = format!(
                "{} redirects to {}, which is neither the same origin nor an allowed https host",
                redact_userinfo(from.as_str()),
                redact_userinfo(attempt.url().as_str())
            );
            attempt.error(refusal)
        }
    })
}

/// Same origin (scheme, host, port), or https to one of `allowed_hosts`.
fn redirect_allowed(from: &Url, to: &Url, allowed_hosts: &[String]) -> bool {
    to.origin() == from.origin()
        || (to.scheme() == "https"
            && to
                .host_str()
                .is_some_and(|host| allowed_hosts.iter().any(|a| a == host)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_stay_on_the_origin_or_go_to_allowed_https_hosts() {
        let url = |s: &str| Url::parse(s).unwrap();
        let allowed = ["cdn.dl.k8s.io".to_string()];
        let from = url("https://dl.k8s.io/release/v1.35.2/bin/linux/amd64/kubelet");
        let to = |s: &str| redirect_allowed(&from, &url(s), &allowed);
        assert!(to("https://dl.k8s.io/other/kubelet"));
        assert!(to("https://cdn.dl.k8s.io/release/kubelet"));
        assert!(!to("http://cdn.dl.k8s.io/release/kubelet"), "downgrade");
        assert!(!to("http://dl.k8s.io/release/kubelet"), "downgrade");
        assert!(!to("https://dl.k8s.io:8443/kubelet"), "other port");
        assert!(!to("https://evil.example/kubelet"));
    }

    #[test]
    fn checksum_files_in_upstream_formats() {
        let hex = "AB".repeat(32);
        assert_eq!(parse_checksum(&hex, None), Ok("ab".repeat(32)));
        assert_eq!(
            parse_checksum(&format!("{hex}  crictl-v1.35.0-linux-amd64.tar.gz\n"), None),
            Ok("ab".repeat(32))
        );
        assert!(parse_checksum("", None).is_err());
        assert!(parse_checksum("<html>Not Found</html>", None).is_err());
        assert!(parse_checksum(&"ab".repeat(31), None).is_err());
    }

    #[test]
    fn a_listing_of_several_files_gives_the_named_files_digest() {
        let (amd64, arm64) = ("11".repeat(32), "22".repeat(32));
        let listing = format!(
            "{amd64}  runc.amd64\n{arm64} *runc.arm64\n{}  runc.tar.xz\n",
            "33".repeat(32)
        );
        assert_eq!(parse_checksum(&listing, Some("runc.amd64")), Ok(amd64));
        assert_eq!(parse_checksum(&listing, Some("runc.arm64")), Ok(arm64));
        let error = parse_checksum(&listing, Some("runc.riscv64")).unwrap_err();
        assert!(error.contains("runc.riscv64"), "{error}");
        // A listing never answers for a file it does not name, even a prefix of one.
        assert!(parse_checksum(&listing, Some("runc")).is_err());
    }
}
