//! The job processes' log: `log` records on stderr, which is `/var/run/attendant/ubus-job.log`.
//!
//! Calls themselves log nothing (rpcd discards a plugin's stderr); the detached job processes
//! log what the engine reports, so `status`'s `job_died` can point at something. The log is
//! truncated when a job starts and capped at [`MAX_LOG_LEN`] bytes, so a runaway job cannot
//! fill `/var/run` (a RAM disk on OpenWrt).

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Most bytes one process writes to the log.
pub const MAX_LOG_LEN: usize = 256 * 1024;

struct Logger {
    written: AtomicUsize,
}

static LOGGER: Logger = Logger {
    written: AtomicUsize::new(0),
};

/// Sends `log` records at `info` and above to stderr; a second call does nothing.
pub fn init() {
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(log::LevelFilter::Info);
    }
}

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Info
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = format!(
            "attendant-ubus[{}]: {}: {}\n",
            std::process::id(),
            record.level().as_str().to_ascii_lowercase(),
            record.args()
        );
        let before = self.written.fetch_add(line.len(), Ordering::Relaxed);
        if before.saturating_add(line.len()) <= MAX_LOG_LEN {
            let _ = std::io::stderr().write_all(line.as_bytes());
        }
    }

    fn flush(&self) {
        let _ = std::io::stderr().flush();
    }
}
