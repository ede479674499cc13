//! Parses what a guest's evidence collector wrote to its second serial port: one record per
//! boot, with events (`KBE2E <name> <words...>`) and sections (gzip+base64 between
//! `KBE2E-BEGIN <name>` and `KBE2E-END <name>`).

use std::collections::BTreeMap;
use std::io::Read;

use anyhow::{anyhow, Context, Result};
use base64::Engine;

#[derive(Debug, Default, Clone)]
pub struct Boot {
    /// 1 for the first boot of the instance.
    pub number: u32,
    pub events: Vec<(String, Vec<String>)>,
    pub sections: BTreeMap<String, Vec<u8>>,
}

/// A file from the `changed-files` or `extra-files` tar.
#[derive(Debug, Clone)]
pub struct GuestFile {
    pub path: String,
    pub mode: u32,
    pub contents: Vec<u8>,
}

impl Boot {
    pub fn event(&self, name: &str) -> Option<&[String]> {
        self.events
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, words)| words.as_slice())
    }

    /// Seconds since boot carried by an event (its last word).
    pub fn event_uptime(&self, name: &str) -> Option<f64> {
        self.event(name)?.last()?.parse().ok()
    }

    pub fn is_dumped(&self) -> bool {
        self.event("dumped").is_some()
    }

    pub fn text(&self, section: &str) -> Result<String> {
        let bytes = self
            .sections
            .get(section)
            .ok_or_else(|| anyhow!("boot {}: no section {section}", self.number))?;
        Ok(String::from_utf8_lossy(bytes).into_owned())
    }

    pub fn files(&self, section: &str) -> Result<Vec<GuestFile>> {
        let bytes = self
            .sections
            .get(section)
            .ok_or_else(|| anyhow!("boot {}: no section {section}", self.number))?;
        let mut archive = tar::Archive::new(bytes.as_slice());
        let mut files = Vec::new();
        for entry in archive.entries()? {
            let mut entry = entry?;
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let path = format!("/{}", entry.path()?.display());
            let mode = entry.header().mode()?;
            let mut contents = Vec::new();
            entry.read_to_end(&mut contents)?;
            files.push(GuestFile {
                path,
                mode,
                contents,
            });
        }
        Ok(files)
    }

    /// `systemctl show` of the agent's unit as a map.
    pub fn unit(&self) -> Result<BTreeMap<String, String>> {
        Ok(self
            .text("unit")?
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect())
    }
}

/// Every boot in the stream, in order. A section cut short (the VM was reset while dumping) is
/// dropped.
pub fn parse(stream: &str) -> Result<Vec<Boot>> {
    let mut boots: Vec<Boot> = Vec::new();
    let mut open: Option<(String, String)> = None;
    for line in stream.lines().map(|l| l.trim_end_matches('\r')) {
        if let Some((name, body)) = open.take() {
            if line == format!("KBE2E-END {name}") {
                let compressed = base64::engine::general_purpose::STANDARD
                    .decode(body.as_bytes())
                    .with_context(|| format!("section {name}: base64"))?;
                let mut data = Vec::new();
                flate2::read::GzDecoder::new(compressed.as_slice())
                    .read_to_end(&mut data)
                    .with_context(|| format!("section {name}: gzip"))?;
                if let Some(boot) = boots.last_mut() {
                    boot.sections.insert(name, data);
                }
                continue;
            }
            if !line.starts_with("KBE2E") {
                open = Some((name, body + line.trim()));
                continue;
            }
            // A new record before the end marker: the section was cut short; drop it.
        }
        if let Some(name) = line.strip_prefix("KBE2E-BEGIN ") {
            open = Some((name.to_string(), String::new()));
        } else if let Some(rest) = line.strip_prefix("KBE2E ") {
            let mut words = rest.split_whitespace().map(str::to_string);
            let name = words.next().unwrap_or_default();
            let words: Vec<String> = words.collect();
            if name == "boot" {
                boots.push(Boot {
                    number: words.first().and_then(|n| n.parse().ok()).unwrap_or(0),
                    ..Boot::default()
                });
            } else if let Some(boot) = boots.last_mut() {
                boot.events.push((name, words));
            }
        }
    }
    Ok(boots)
}
