//! indicatif progress bars, hidden with `--quiet`, `--json` or when stderr is not a terminal.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use trajforge_io::Progress;

use crate::Global;

/// A bar on stderr, or a hidden one.
pub fn bar(global: Global, len: u64, template: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    if global.quiet || global.json {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Ingest progress: bytes read, with row counts in the message.
pub struct IngestBar(pub ProgressBar);

impl Progress for IngestBar {
    fn start(&self, total_bytes: u64) {
        self.0.set_length(total_bytes);
    }
    fn bytes_read(&self, n: u64) {
        self.0.inc(n);
    }
    fn rows(&self, written: u64, rejected: u64) {
        self.0
            .set_message(format!("{written} rows, {rejected} rejected"));
    }
}
