//! The harness's one error type: a message that says which peer or tool failed and why.

use std::fmt;

/// What went wrong while starting a peer, running a tool or building a layout.
///
/// The message carries the context a failing test needs: the command line, its exit status
/// and its stderr, or the registry's log when it never came up.
#[derive(Debug)]
pub struct Error(pub String);

/// `Result` with the harness's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(error: std::io::Error) -> Self {
        Error(error.to_string())
    }
}

impl From<serde_json::Error> for Error {
    fn from(error: serde_json::Error) -> Self {
        Error(format!("JSON: {error}"))
    }
}

/// Builds an [`Error`] from `format!` arguments.
macro_rules! error {
    ($($arg:tt)*) => { $crate::error::Error(format!($($arg)*)) };
}
pub(crate) use error;

/// Adds what was being done to an I/O error.
pub(crate) trait Context<T> {
    /// Prefixes the error with `what`.
    fn context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: fmt::Display> Context<T> for std::result::Result<T, E> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error(format!("{}: {e}", what())))
    }
}
