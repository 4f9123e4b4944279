//! Progress bars, drawn only when stderr is a terminal.

use indicatif::{ProgressBar, ProgressStyle};

/// Blobs smaller than this get no bar.
const MIN_BYTES: u64 = 16 << 20;

/// A byte progress bar for a transfer of `size` bytes (a spinner if unknown).
pub fn bytes(size: Option<u64>, what: &str) -> Option<ProgressBar> {
    if !super::interactive() || size.is_some_and(|s| s < MIN_BYTES) {
        return None;
    }
    let bar = match size {
        Some(n) => ProgressBar::new(n).with_style(
            ProgressStyle::with_template(
                "{msg} {bar:30} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} {msg} {bytes} {bytes_per_sec}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    };
    bar.set_message(what.to_owned());
    Some(bar)
}

/// A spinner for a long operation without progress reports.
pub fn spinner(what: &str) -> Option<ProgressBar> {
    if !super::interactive() {
        return None;
    }
    let bar = ProgressBar::new_spinner();
    bar.set_message(what.to_owned());
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    Some(bar)
}

/// Advances a bar.
pub fn inc(bar: &Option<ProgressBar>, n: usize) {
    if let Some(b) = bar {
        b.inc(n as u64);
    }
}

/// Removes a bar.
pub fn finish(bar: Option<ProgressBar>) {
    if let Some(b) = bar {
        b.finish_and_clear();
    }
}
