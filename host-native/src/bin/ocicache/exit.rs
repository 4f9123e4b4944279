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
/// A registry could not be reached or kept failing.
pub const NETWORK: i32 = 10;
/// A registry refused access.
pub const UNAUTHORIZED: i32 = 11;

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
        ErrorKind::Network => NETWORK,
        ErrorKind::Unauthorized => UNAUTHORIZED,
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        let code = e.kind().code();
        Failure {
            code,
            exit: exit_code(&e),
            message: without_kind(code, e.to_string()),
        }
    }
}

/// The message without its leading kind ("storage: I/O error: …" → "I/O error: …"): the line
/// already starts with the code, `ocicache: storage: …`.
fn without_kind(code: &str, message: String) -> String {
    let words = code.replace('_', " ");
    if let Some(rest) = message
        .strip_prefix(&words)
        .and_then(|rest| rest.strip_prefix(": ").or_else(|| rest.strip_prefix(' ')))
    {
        return rest.to_owned();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_does_not_repeat_the_code() {
        let f = Failure::from(Error::Storage(StorageError::Io("disk gone".into())));
        assert_eq!(
            (f.code, f.message.as_str()),
            ("storage", "I/O error: disk gone")
        );
        let f = Failure::from(Error::NotFound("blob sha256:ab".into()));
        assert_eq!(f.message, "blob sha256:ab");
        let f = Failure::from(Error::DigestMismatch {
            expected: "a".into(),
            actual: "b".into(),
        });
        assert_eq!(f.message, "expected a, got b");
        let f = Failure::from(Error::Full {
            needed: 2,
            available: 1,
            capacity: 1,
        });
        assert_eq!(
            f.message,
            "cache full: 2 bytes needed, 1 can be made available (cap 1)"
        );
    }
}
