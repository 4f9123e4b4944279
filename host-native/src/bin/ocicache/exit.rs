//! Exit codes and the one-line error report (documented in `--help`).

use ocicache::{Error, ErrorKind, StorageError};

/// Not found, absent, or unhealthy.
pub const NOT_OK: i32 = 1;
/// Usage error (clap exits with 2 itself for bad arguments).
pub const USAGE: i32 = 2;
/// Invalid input.
pub const INVALID: i32 = 3;
/// Corrupted content.
pub const CORRUPTED: i32 = 4;
/// Full, too large, or no space.
pub const FULL: i32 = 5;
/// Storage error.
pub const STORAGE: i32 = 6;
/// Expired or invalidated.
pub const STALE: i32 = 7;
/// Invalid configuration.
pub const CONFIG: i32 = 8;
/// Local I/O outside the cache.
pub const LOCAL_IO: i32 = 9;

/// How a command ended when it did not fail.
pub enum Outcome {
    /// Exit 0.
    Ok,
    /// Exit 1: the answer is "no" (absent, unhealthy).
    NotOk,
}

/// A failed command: the code shown, the message, the exit code.
pub struct Failure {
    pub code: &'static str,
    pub message: String,
    pub exit: i32,
}

impl Failure {
    pub fn usage(message: impl Into<String>) -> Failure {
        Failure {
            code: "usage",
            message: message.into(),
            exit: USAGE,
        }
    }

    pub fn io(message: impl Into<String>) -> Failure {
        Failure {
            code: "io",
            message: message.into(),
            exit: LOCAL_IO,
        }
    }

    /// An error from a blob reader/writer or from writing the output.
    pub fn from_io(e: std::io::Error) -> Failure {
        match ocicache::error_of(&e) {
            Some(inner) => Failure::from(inner.clone()),
            None => Failure::io(e.to_string()),
        }
    }
}

/// The exit code of a cache error.
pub fn exit_code(e: &Error) -> i32 {
    match e.kind() {
        ErrorKind::NotFound => NOT_OK,
        ErrorKind::InvalidDigest
        | ErrorKind::InvalidReference
        | ErrorKind::InvalidManifest
        | ErrorKind::DigestMismatch
        | ErrorKind::SizeMismatch
        | ErrorKind::InvalidArgument => INVALID,
        ErrorKind::Corrupted => CORRUPTED,
        ErrorKind::Full | ErrorKind::TooLarge => FULL,
        ErrorKind::Storage if matches!(e, Error::Storage(StorageError::NoSpace)) => FULL,
        ErrorKind::Storage => STORAGE,
        ErrorKind::Expired | ErrorKind::Invalidated => STALE,
        ErrorKind::InvalidConfig => CONFIG,
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        Failure {
            code: e.kind().code(),
            exit: exit_code(&e),
            message: e.to_string(),
        }
    }
}
