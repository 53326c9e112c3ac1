//! The spinner shown on a terminal while probes wait for their messages.
//!
//! Drawn on stderr and only when stderr is a terminal, so piped or cron output
//! stays clean.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

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
        Spinner(Some(bar))
    }

    /// Removes the spinner before the results are printed.
    pub fn finish(self) {
        if let Some(bar) = self.0 {
            bar.finish_and_clear();
        }
    }
}
