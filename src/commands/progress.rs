//! Progress for long work: a spinner on stderr naming the current stage and the time spent, drawn
//! only when stderr is a terminal (so pipes and logs stay clean), cleared when the work ends.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// The spinner of one command; dropping it clears the line.
pub struct Progress(Option<ProgressBar>);

impl Progress {
    /// Starts a spinner showing `stage`, if stderr is a terminal.
    pub fn start(stage: &str) -> Progress {
        if !std::io::stderr().is_terminal() {
            return Progress(None);
        }
        let bar = ProgressBar::new_spinner();
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
            bar.set_style(style);
        }
        bar.set_message(stage.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        Progress(Some(bar))
    }

    /// Names the stage now running.
    pub fn stage(&self, stage: impl Into<String>) {
        if let Some(bar) = &self.0 {
            bar.set_message(stage.into());
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}
