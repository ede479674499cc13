//! Durable progress: one `<phase>.done` marker per finished phase (written only after the phase's
//! effects are durable), one `<phase>.failed` record per failed attempt, one `<phase>.waiting`
//! record while a phase waits for something outside the node (IMDS, the vault, the endpoint)
//! and retries, the final `done` marker
//! and the node facts the metadata phase derived. Everything lives under `/var/lib/kubeboot/`.

use std::fs;
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};

use crate::paths::{self, PHASES_DIR};
use crate::root::Root;

/// Contents of `<phase>.done`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DoneRecord {
    pub started_at: String,
    pub finished_at: String,
    pub duration_ms: u64,
    pub agent_version: String,
}

/// Contents of `<phase>.failed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FailedRecord {
    pub message: String,
    pub time: String,
}

/// Contents of `<phase>.waiting`: what the phase is retrying and why it has not worked yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WaitingRecord {
    pub reason: String,
    pub attempt: u32,
    pub since: String,
    pub time: String,
}

pub fn timestamp(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

pub struct Markers<'a> {
    root: &'a Root,
    /// Where the records live: the boot phases', or the upgrade steps'.
    dir: &'static str,
}

impl<'a> Markers<'a> {
    /// The boot phases' records.
    pub fn new(root: &'a Root) -> Self {
        Self {
            root,
            dir: PHASES_DIR,
        }
    }

    /// The records of the upgrade steps (of the upgrade `upgrade.json` names).
    pub fn for_upgrade(root: &'a Root) -> Self {
        Self {
            root,
            dir: paths::UPGRADE_STEPS_DIR,
        }
    }

    /// Forgets every record (a new upgrade starts from its first step).
    pub fn clear_all(&self) -> Result<()> {
        for path in self.root.list_dir(self.dir)? {
            self.root.remove_file(&path)?;
        }
        Ok(())
    }

    /// The node path of a phase's record.
    fn node_path(&self, phase: &str, ext: &str) -> String {
        format!("{}/{phase}.{ext}", self.dir)
    }

    fn read<T: serde::de::DeserializeOwned>(&self, phase: &str, ext: &str) -> Result<Option<T>> {
        read_json(&self.root.path(self.node_path(phase, ext)))
    }

    fn write<T: Serialize>(&self, phase: &str, ext: &str, value: &T) -> Result<()> {
        write_json(self.root, &self.node_path(phase, ext), value)
    }

    fn remove(&self, phase: &str, ext: &str) -> Result<()> {
        self.root.remove_file(self.node_path(phase, ext))
    }

    pub fn done(&self, phase: &str) -> Result<Option<DoneRecord>> {
        self.read(phase, "done")
    }

    pub fn failed(&self, phase: &str) -> Result<Option<FailedRecord>> {
        self.read(phase, "failed")
    }

    pub fn waiting(&self, phase: &str) -> Result<Option<WaitingRecord>> {
        self.read(phase, "waiting")
    }

    /// Records why the phase waits; `since` is kept from the record of the same wait.
    pub fn record_waiting(&self, phase: &str, reason: &str, attempt: u32) -> Result<()> {
        let now = timestamp(SystemTime::now());
        let since = match self.waiting(phase).ok().flatten() {
            Some(earlier) if attempt > 1 => earlier.since,
            _ => now.clone(),
        };
        let record = WaitingRecord {
            reason: reason.to_string(),
            attempt,
            since,
            time: now,
        };
        self.write(phase, "waiting", &record)
    }

    /// The wait is over (it worked, or the phase ends either way).
    pub fn clear_waiting(&self, phase: &str) -> Result<()> {
        self.remove(phase, "waiting")
    }

    /// Records success and clears any earlier failure. Call only once the effects are durable.
    pub fn record_done(
        &self,
        phase: &str,
        started: SystemTime,
        finished: SystemTime,
    ) -> Result<()> {
        let record = DoneRecord {
            started_at: timestamp(started),
            finished_at: timestamp(finished),
            duration_ms: finished
                .duration_since(started)
                .unwrap_or(Duration::ZERO)
                .as_millis() as u64,
            agent_version: env!("CARGO_PKG_VERSION").to_string(),
        };
        self.write(phase, "done", &record)?;
        self.clear_waiting(phase)?;
        self.remove(phase, "failed")
    }

    pub fn record_failed(&self, phase: &str, message: &str) -> Result<()> {
        let record = FailedRecord {
            message: message.to_string(),
            time: timestamp(SystemTime::now()),
        };
        self.clear_waiting(phase)?;
        self.write(phase, "failed", &record)
    }

    /// Forgets that a phase is done (its invariant no longer holds), so it runs again.
    pub fn clear_done(&self, phase: &str) -> Result<()> {
        self.remove(phase, "done")
    }

    pub fn all_done(&self) -> bool {
        self.root.path(paths::DONE_MARKER).exists()
    }
}

pub fn read_json<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> Result<Option<T>> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .with_context(|| format!("{} is not valid JSON", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Writes `value` as JSON to the node path `node_path` (0644).
pub fn write_json<T: Serialize>(root: &Root, node_path: &str, value: &T) -> Result<()> {
    let mut text = serde_json::to_vec_pretty(value)?;
    text.push(b'\n');
    root.write_atomic(node_path, &text, 0o644)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn done_clears_failed_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        let m = Markers::new(&root);
        assert_eq!(m.done("os").unwrap(), None);
        m.record_failed("os", "modprobe exited 1").unwrap();
        assert_eq!(
            m.failed("os").unwrap().unwrap().message,
            "modprobe exited 1"
        );
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        m.record_done("os", start, start + Duration::from_millis(1500))
            .unwrap();
        let done = m.done("os").unwrap().unwrap();
        assert_eq!(done.duration_ms, 1500);
        assert_eq!(done.started_at, "2023-11-14T22:13:20.000Z");
        assert_eq!(m.failed("os").unwrap(), None);
        m.clear_done("os").unwrap();
        assert_eq!(m.done("os").unwrap(), None);
    }

    #[test]
    fn waiting_keeps_its_start_and_ends_with_the_phase() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        let m = Markers::new(&root);
        m.record_waiting("join", "endpoint refused", 1).unwrap();
        let first = m.waiting("join").unwrap().unwrap();
        std::thread::sleep(Duration::from_millis(5));
        m.record_waiting("join", "endpoint timed out", 2).unwrap();
        let second = m.waiting("join").unwrap().unwrap();
        assert_eq!((second.since, second.attempt), (first.since, 2));
        assert_eq!(second.reason, "endpoint timed out");
        m.record_failed("join", "kubeadm exited 1").unwrap();
        assert_eq!(m.waiting("join").unwrap(), None);
        m.record_waiting("join", "vault 403", 1).unwrap();
        let start = SystemTime::now();
        m.record_done("join", start, start).unwrap();
        assert_eq!(m.waiting("join").unwrap(), None);
    }
}
