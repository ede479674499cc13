//! Download progress: a bar per artifact on a terminal, plain log lines otherwise (under systemd
//! the journal gets one line when a download starts and one when it is verified).

use std::io::IsTerminal;
use std::time::Instant;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

#[derive(Clone)]
pub(super) struct Progress {
    bars: Option<MultiProgress>,
}

impl Progress {
    pub(super) fn new() -> Progress {
        Progress {
            bars: std::io::stderr().is_terminal().then(MultiProgress::new),
        }
    }

    pub(super) fn start(&self, name: &str, url: &str) -> ArtifactProgress {
        let bar = self.bars.as_ref().map(|bars| {
            let bar = bars.add(ProgressBar::no_length());
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix:>12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {msg}",
                )
                .expect("static template")
                .progress_chars("=> "),
            );
            bar.set_prefix(name.to_string());
            bar
        });
        if bar.is_none() {
            log::info!("{name}: downloading {url}");
        }
        ArtifactProgress {
            name: name.to_string(),
            bar,
            started: Instant::now(),
        }
    }
}

pub(super) struct ArtifactProgress {
    name: String,
    bar: Option<ProgressBar>,
    started: Instant,
}

impl ArtifactProgress {
    /// A (re)started transfer: `position` bytes already held, `total` expected when known.
    pub(super) fn restart(&self, position: u64, total: Option<u64>) {
        if let Some(bar) = &self.bar {
            if let Some(total) = total {
                bar.set_length(total);
            }
            bar.set_position(position);
        }
    }

    pub(super) fn advance(&self, bytes: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(bytes);
        }
    }

    pub(super) fn verified(&self, bytes: u64) {
        let seconds = self.started.elapsed().as_secs_f64();
        let line = format!(
            "{:.1} MB in {seconds:.2} s ({:.0} MB/s), sha256 verified",
            bytes as f64 / 1e6,
            bytes as f64 / 1e6 / seconds.max(1e-6)
        );
        match &self.bar {
            Some(bar) => bar.finish_with_message(line),
            None => log::info!("{}: {line}", self.name),
        }
    }

    pub(super) fn failed(&self) {
        if let Some(bar) = &self.bar {
            bar.abandon_with_message("failed");
        }
    }
}
