//! A comparable picture of a directory tree: every entry's path, type, mode and contents.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Dir {
        mode: u32,
    },
    File {
        mode: u32,
        contents: Vec<u8>,
    },
    Link {
        target: String,
    },
    /// A socket or a FIFO: nothing to read.
    Special {
        mode: u32,
    },
}

pub type Snapshot = BTreeMap<String, Entry>;

pub fn take(root: &Path) -> Snapshot {
    let mut out = Snapshot::new();
    walk(root, root, &mut out);
    out
}

fn walk(root: &Path, dir: &Path, out: &mut Snapshot) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = path.strip_prefix(root).unwrap().display().to_string();
        let meta = fs::symlink_metadata(&path).unwrap();
        let mode = meta.permissions().mode() & 0o7777;
        if meta.file_type().is_symlink() {
            let target = fs::read_link(&path).unwrap().display().to_string();
            out.insert(name, Entry::Link { target });
        } else if meta.is_dir() {
            out.insert(name, Entry::Dir { mode });
            walk(root, &path, out);
        } else if !meta.is_file() {
            out.insert(name, Entry::Special { mode });
        } else {
            let contents = fs::read(&path).unwrap();
            out.insert(name, Entry::File { mode, contents });
        }
    }
}
