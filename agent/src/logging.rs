//! Under systemd (JOURNAL_STREAM set) log records go to the journal through
//! systemd-journal-logger (tracing's `log` feature bridges the macros); otherwise to stderr.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

pub fn init() {
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        if let Ok(logger) = systemd_journal_logger::JournalLog::new() {
            if logger
                .with_syslog_identifier("kubeboot-agent".into())
                .install()
                .is_ok()
            {
                log::set_max_level(log::LevelFilter::Info);
                return;
            }
        }
    }
    let filter = EnvFilter::try_from_env("KUBEBOOT_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}
