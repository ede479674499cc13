//! What every stand-in and shim does first: refuse secrets on the command line or in the environment,
//! append one JSON line describing the call to the call log, and honour the test-only knobs.
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use regex::Regex;

/// The prefix for every node path a stand-in touches (`STANDIN_ROOT`, default `/`).
#[derive(Clone, Debug)]
pub struct Root(PathBuf);

impl Root {
    pub fn new(base: impl Into<PathBuf>) -> Self {
        Root(base.into())
    }

    pub fn from_env() -> Self {
        Root(
            std::env::var_os("STANDIN_ROOT")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/")),
        )
    }

    /// Maps an absolute node path (e.g. `/etc/kubernetes/pki`) under the root.
    pub fn path(&self, node_path: impl AsRef<Path>) -> PathBuf {
        let p = node_path.as_ref();
        self.0.join(p.strip_prefix("/").unwrap_or(p))
    }

    pub fn is_host(&self) -> bool {
        self.0 == Path::new("/")
    }
}

fn token_pattern() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"(^|[^a-z0-9])[a-z0-9]{6}\.[a-z0-9]{16}([^a-z0-9]|$)").expect("valid regex")
    })
}

/// Names the kind of secret `text` looks like, if any.
pub fn secret_kind(text: &str) -> Option<&'static str> {
    if text.contains("PRIVATE KEY-----") {
        Some("a PEM private key")
    } else if token_pattern().is_match(text) {
        Some("a bootstrap token")
    } else {
        None
    }
}

pub struct Invocation {
    pub tool: &'static str,
    pub args: Vec<String>,
    pub root: Root,
}

impl Invocation {
    /// Logs the call and refuses (exit 1) when argv or the environment carries a secret.
    pub fn begin(tool: &'static str) -> Invocation {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let root = Root::from_env();
        let env: Vec<(String, String)> = std::env::vars().collect();
        let leak = args
            .iter()
            .find_map(|a| secret_kind(a).map(|k| format!("argument {}", describe(a, k))))
            .or_else(|| {
                env.iter().find_map(|(n, v)| {
                    secret_kind(v).map(|k| format!("environment variable {n} ({k})"))
                })
            });
        let record = serde_json::json!({
            "tool": tool,
            "argv": if leak.is_some() { serde_json::json!("<refused: secret>") } else { serde_json::json!(args) },
            "env": if leak.is_some() { serde_json::json!("<refused: secret>") } else { serde_json::json!(env.iter().cloned().collect::<std::collections::BTreeMap<_, _>>()) },
            "cwd": std::env::current_dir().ok(),
            "uid": nix::unistd::getuid().as_raw(),
            "pid": std::process::id(),
            "time": SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or_default(),
        });
        if let Err(e) = append_call_log(&root, &record) {
            eprintln!("{tool}: cannot write the stand-in call log: {e:#}");
            std::process::exit(1);
        }
        if let Some(leak) = leak {
            eprintln!("{tool}: refusing to run: {leak} looks like a secret; secrets must never be on a command line or in a child's environment");
            std::process::exit(1);
        }
        delay();
        Invocation { tool, args, root }
    }

    /// Runs `body`, printing its error chain on one line and exiting non-zero on failure.
    pub fn run(self, body: impl FnOnce(&Invocation) -> anyhow::Result<()>) -> ! {
        match body(&self) {
            Ok(()) => std::process::exit(0),
            Err(e) => {
                eprintln!("{}: error: {e:#}", self.tool);
                std::process::exit(1);
            }
        }
    }
}

fn describe(arg: &str, kind: &str) -> String {
    let name = arg
        .split('=')
        .next()
        .filter(|n| n.starts_with('-') && arg.contains('='))
        .unwrap_or("");
    if name.is_empty() {
        format!("({kind})")
    } else {
        format!("{name}= ({kind})")
    }
}

/// `STANDIN_LOG`, default `<root>/var/log/stand-ins/calls.jsonl`.
pub fn call_log_path(root: &Root) -> PathBuf {
    std::env::var_os("STANDIN_LOG")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.path("/var/log/stand-ins/calls.jsonl"))
}

fn append_call_log(root: &Root, record: &serde_json::Value) -> anyhow::Result<()> {
    let path = call_log_path(root);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut line = serde_json::to_vec(record)?;
    line.push(b'\n');
    // One write on an O_APPEND file keeps concurrent callers' lines whole.
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)?
        .write_all(&line)?;
    Ok(())
}

/// `STANDIN_DELAY_MS`: sleeps that long, so kill tests can hit a stand-in mid-way.
pub fn delay() {
    if let Some(ms) = std::env::var("STANDIN_DELAY_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        std::thread::sleep(Duration::from_millis(ms));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_recognised() {
        assert_eq!(
            secret_kind("--token=abcdef.0123456789abcdef"),
            Some("a bootstrap token")
        );
        assert_eq!(
            secret_kind("-----BEGIN EC PRIVATE KEY-----\nxx"),
            Some("a PEM private key")
        );
        assert_eq!(secret_kind("--config=/etc/kubeboot/kubeadm.yaml"), None);
        assert_eq!(secret_kind("node-1.example.com"), None);
    }

    #[test]
    fn root_prefixes_absolute_paths() {
        assert_eq!(
            Root::new("/tmp/t").path("/etc/kubernetes"),
            PathBuf::from("/tmp/t/etc/kubernetes")
        );
        assert!(Root::new("/").is_host());
    }
}
