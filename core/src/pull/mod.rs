//! Pulling from registries, sans-I/O: the OCI distribution protocol (v1.1, pull side) as a
//! state machine that emits HTTP requests as data and consumes responses, in the manner of
//! quinn-proto or rustls. Hosts perform the requests with their own HTTP client; every byte
//! goes through the cache's verified blob writer.
//!
//! A host drives a [`Pull`] like this (blocking, one request at a time; a host may also keep
//! several [`Action::Send`]s in flight, up to [`PullOptions::max_concurrent`] blobs):
//!
//! ```
//! use ocicache_core::pull::{Action, Pull, PullOptions};
//! use ocicache_core::{Cache, ManualClock, Reference, storage::MemoryStorage};
//! let mut cache = Cache::builder(MemoryStorage::new(), ManualClock::new(0)).open()?;
//! let reference: Reference = "127.0.0.1:5000/app:1.0".parse()?;
//! let options = PullOptions { offline: true, ..PullOptions::default() };
//! let mut pull = Pull::new(reference, options);
//! let outcome = loop {
//!     match pull.poll(&mut cache) {
//!         Ok(Action::Send(request)) => {
//!             // Perform `request`; report with pull.on_head, on_body, on_end or on_error.
//!             # unreachable!("offline: {request:?}");
//!         }
//!         Ok(Action::Sleep { delay_ms, .. }) => {
//!             // Sleep that long (by the host's own clock), then call pull.slept().
//!             # let _ = delay_ms;
//!         }
//!         Ok(Action::Wait) => { /* wait for a response in flight */ }
//!         Ok(Action::Done(report)) => break Ok(report),
//!         Err(e) => break Err(e),
//!     }
//! };
//! // Offline, and nothing cached: a typed `network` error.
//! assert_eq!(outcome.unwrap_err().kind(), ocicache_core::ErrorKind::Network);
//! # Ok::<(), ocicache_core::Error>(())
//! ```
//!
//! What it decides: tag freshness through the cache's resolver (`Fresh`: no request at all;
//! `Stale`: one `HEAD`, then a fetch only if the tag moved; `Unknown`: a `GET`), serving a
//! cached tag stale when the registry is unreachable or failing (if allowed), authentication
//! (`WWW-Authenticate` challenges, Basic, bearer tokens per scope until they expire),
//! redirects (followed here, credentials kept to their origin), mirrors and plain-HTTP
//! fallback ([`endpoints`]), platform selection in an index, retries with backoff on
//! connection errors, 5xx and 429 (`Retry-After` honoured), resuming a broken blob download
//! with `Range`, and verification of every manifest (`Docker-Content-Digest`, the digest
//! asked for) and blob (by the cache's writer).

mod auth;
mod config;
mod credentials;
mod endpoint;
mod http;
mod machine;
mod platform;
mod store;

pub use auth::{Challenge, Credentials, parse_challenges};
pub use config::{PULL_KEYS, PullConfig, RegistrySettings};
pub use credentials::{
    CredentialLookup, HelperCall, HelperOutcome, LoginFile, LoginFileKind, LookupStep,
    MAX_LOGIN_BYTES, registry_key,
};
pub use endpoint::{DOCKER_HUB_API, Endpoint, RegistryRoute, endpoints, is_loopback};
pub use http::{HttpRequest, Method, Purpose, RequestId, ResponseHead, authority};
pub use machine::{
    Action, BlobReport, MANIFEST_ACCEPT, ManifestReport, Pull, PullOptions, PullReport, TagOutcome,
};
pub use platform::{Platform, PlatformChoice};
pub use store::PullStore;

#[cfg(test)]
mod tests;
