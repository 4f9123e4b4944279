//! Real OCI peers for tests, on `127.0.0.1` only: CNCF distribution registries
//! ([`Registry`]), a token server ([`TokenServer`]), skopeo to fill them ([`push`]), and
//! deterministic OCI image layouts to push ([`layouts`]).
//!
//! Every peer is started by the test and stopped on drop; nothing talks to anything but
//! loopback. The machine needs Debian's `docker-registry`, `skopeo` and `openssl`
//! (and `umoci` for tests that unpack).
//!
//! A registry's port belongs to a small recording forwarder in front of the
//! `docker-registry` process: it logs every request with its status and `Range`
//! ([`Registry::requests`], [`Registry::count`]) before the client sees the response, so
//! counts are exact, and it can inject [`Fault`]s (a cut body, a flipped byte, a wrong
//! header).
//!
//! ```
//! use ocicache_registry_harness::layouts::{ImageSpec, Layout};
//! use ocicache_registry_harness::{Fault, Registry, TokenServer, inspect_raw, push};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // An image with two small layers, in an OCI layout in a temp dir.
//! let mut layout = Layout::new()?;
//! let image = layout.image("v1", &ImageSpec::new(42, &[1024, 4096]))?;
//!
//! // A registry that wants Bearer tokens; alice may push, anyone may pull.
//! let tokens = TokenServer::builder().user("alice", "secret").start()?;
//! let registry = Registry::builder().token_auth(&tokens)?.start()?;
//! push(layout.dir(), "v1", &registry, "team/tool:1.0", Some(("alice", "secret")))?;
//!
//! // What a client under test did, exactly (here skopeo, anonymously).
//! registry.clear_requests();
//! assert_eq!(inspect_raw(&registry, "team/tool:1.0", None)?, image.top.bytes);
//! let requests = registry.requests();
//! assert_eq!((requests[0].path.as_str(), requests[0].status), ("/v2/", 401)); // the challenge
//! assert_eq!(registry.count("GET", "/v2/team/tool/manifests/1.0"), 1);
//! assert_eq!(requests.last().unwrap().auth_scheme.as_deref(), Some("Bearer"));
//!
//! // The next blob download breaks after 100 bytes.
//! let layer = &image.images[0].layers[0];
//! let blob = format!("/v2/team/tool/blobs/{}", layer.digest);
//! registry.inject("GET", &blob, Fault::CutBody { after: 100 }, 1);
//! # Ok(()) }
//! ```

mod access_log;
mod docker_config;
mod error;
mod fault;
mod forwarder;
mod htpasswd;
pub mod layouts;
mod registry;
mod skopeo;
mod tls;
mod token_server;
mod tool;
mod umoci;

pub use access_log::Request;
pub use docker_config::docker_config_json;
pub use error::{Error, Result};
pub use fault::Fault;
pub use registry::{Registry, RegistryBuilder};
pub use skopeo::{inspect_layout_raw, inspect_raw, pull_to_layout, push};
pub use tls::TestCa;
pub use token_server::{TokenRequest, TokenServer, TokenServerBuilder};
pub use umoci::umoci_unpack;
