//! The spinner shown on a terminal while probes wait for their messages.
//!
//! Drawn on stderr and only when stderr is a terminal, so piped or cron output
//! stays clean. Log lines go to stderr too: [`LogWriter`] prints them above
//! the spinner (it is cleared, the line written, the spinner redrawn), so a
//! warning never lands in the middle of it.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// The spinner on screen now, if any: log lines are written around it.
static ACTIVE: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// A spinner with elapsed time; does nothing when not on a terminal.
pub struct Spinner(Option<ProgressBar>);

impl Spinner {
    pub fn start(message: String) -> Spinner {
        if !std::io::stderr().is_terminal() {
            return Spinner(None);
        }
        let bar = ProgressBar::new_spinner();
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} {elapsed}") {
            bar.set_style(style);
        }
        bar.set_message(message);
        bar.enable_steady_tick(Duration::from_millis(80));
        *ACTIVE.lock().unwrap_or_else(|e| e.into_inner()) = Some(bar.clone());
        Spinner(Some(bar))
    }

    /// Removes the spinner before the results are printed.
    pub fn finish(self) {
        if let Some(bar) = self.0 {
            ACTIVE.lock().unwrap_or_else(|e| e.into_inner()).take();
            bar.finish_and_clear();
        }
    }
}

/// Where log lines go: stderr, above the spinner when one is drawn. A
/// `tracing_subscriber` writer (`with_writer(LogWriter::default)`).
#[derive(Debug, Default)]
pub struct LogWriter {
    line: Vec<u8>,
}

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.line.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.line.is_empty() {
            return Ok(());
        }
        let line = std::mem::take(&mut self.line);
        let bar = ACTIVE.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match bar {
            Some(bar) => bar.suspend(|| std::io::stderr().write_all(&line)),
            None => std::io::stderr().write_all(&line),
        }
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        // tracing writes one event per writer: it goes out whole, here.
        let _ = self.flush();
    }
}
