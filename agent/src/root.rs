//! `--root`: every path the agent reads or writes on the node goes through a `Root`, so tests (and
//! `--dry-run`) can run the real code unprivileged inside a temporary directory.

use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root(PathBuf);

impl Root {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self(dir.into())
    }

    /// The real filesystem root of the node.
    pub fn system() -> Self {
        Self(PathBuf::from("/"))
    }

    pub fn is_system(&self) -> bool {
        self.0 == Path::new("/")
    }

    pub fn dir(&self) -> &Path {
        &self.0
    }

    /// Maps an absolute node path (`/etc/kubeboot/node.yaml`) to where it lives under this root.
    pub fn path(&self, node_path: impl AsRef<Path>) -> PathBuf {
        let p = node_path.as_ref();
        self.0.join(p.strip_prefix("/").unwrap_or(p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_absolute_paths() {
        assert_eq!(
            Root::new("/tmp/t").path("/etc/kubeboot/node.yaml"),
            PathBuf::from("/tmp/t/etc/kubeboot/node.yaml")
        );
        assert_eq!(Root::system().path("/etc/x"), PathBuf::from("/etc/x"));
        assert!(Root::system().is_system());
    }
}
