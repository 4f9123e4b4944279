//! What the recording forwarder saw: one entry per HTTP request that reached the registry.

use std::sync::{Mutex, MutexGuard};

/// One request that reached the registry, with the status it answered.
///
/// An entry is recorded when the registry's response head arrives, before the forwarder
/// passes it on; so once a client has seen a response, its request is in the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `HEAD`, `PUT`…
    pub method: String,
    /// The request target's path, without the query (`/v2/repo/blobs/sha256:…`).
    pub path: String,
    /// The query string without `?`, when there was one.
    pub query: Option<String>,
    /// The registry's status code.
    pub status: u16,
    /// The request's `Range` header, verbatim (`bytes=1024-`).
    pub range: Option<String>,
    /// The scheme of the request's `Authorization` header (`Basic`, `Bearer`), never the
    /// credentials.
    pub auth_scheme: Option<String>,
}

impl Request {
    /// Whether this is a `method` request whose path starts with `path_prefix`.
    pub fn is(&self, method: &str, path_prefix: &str) -> bool {
        self.method.eq_ignore_ascii_case(method) && self.path.starts_with(path_prefix)
    }
}

/// The shared, growing list of [`Request`]s.
#[derive(Debug, Default)]
pub(crate) struct AccessLog(Mutex<Vec<Request>>);

impl AccessLog {
    fn lock(&self) -> MutexGuard<'_, Vec<Request>> {
        // A panicking connection thread must not hide the log from the test.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn push(&self, request: Request) {
        self.lock().push(request);
    }

    pub(crate) fn snapshot(&self) -> Vec<Request> {
        self.lock().clone()
    }

    pub(crate) fn clear(&self) {
        self.lock().clear();
    }
}
