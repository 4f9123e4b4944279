//! Test-only pause points, so that a test can SIGKILL a real process at an exact point of an
//! operation instead of guessing it with sleeps (`host-native/tests/processes.rs`).
//!
//! Inert unless the environment variable [`PAUSE_VAR`] names the point being passed: then the
//! process writes its id to the file named by [`MARKER_VAR`] (created once, fsynced), and
//! sleeps for at most [`MAX_PAUSE`] before going on, so a test that forgets to kill it still
//! ends. The points:
//!
//! - `after-commit-rename`: in `FsStorage::commit_temp`, once a manifest or blob file has been
//!   renamed onto its final path and its directory fsynced, before the core writes its journal
//!   record.
//! - `after-remove`: in `FsStorage::remove`, once a manifest or blob file has been removed,
//!   before the core writes its `Remove` record.
//! - `after-commit-record`: in the CLI's `blob put`, once the put returned success (its record
//!   is durable), before the process closes the cache.

use std::io::Write;
use std::time::Duration;

/// The environment variable naming the point to pause at.
pub const PAUSE_VAR: &str = "OCICACHE_TEST_PAUSE";
/// The environment variable naming the marker file written when the point is reached.
pub const MARKER_VAR: &str = "OCICACHE_TEST_PAUSE_MARKER";
/// The longest a pause lasts.
pub const MAX_PAUSE: Duration = Duration::from_secs(120);

/// Pauses here if [`PAUSE_VAR`] is `name` (see the module docs); returns at once otherwise.
pub fn point(name: &str) {
    if std::env::var_os(PAUSE_VAR).is_none_or(|v| v != name) {
        return;
    }
    if let Some(marker) = std::env::var_os(MARKER_VAR) {
        // The marker must exist before the test may kill: write it completely first.
        let _ = std::fs::File::create(marker).and_then(|mut f| {
            writeln!(f, "{}", std::process::id())?;
            f.sync_all()
        });
    }
    std::thread::sleep(MAX_PAUSE);
}

/// Whether `path` (from the core) is a manifest or blob file, where the storage's pause points
/// apply (not the index's own files).
pub(crate) fn is_entry_path(path: &str) -> bool {
    path.starts_with("blobs/") || path.starts_with("manifests/")
}
