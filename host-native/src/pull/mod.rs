//! Pulling from registries: the core's sans-I/O [`Pull`](ocicache_core::pull::Pull) driven
//! with real HTTP ([`HttpClient`], over `ureq`), into this host's [`Cache`].
//!
//! ```no_run
//! use ocicache::{Cache, pull::PullOptions};
//! let cache = Cache::open("/var/cache/ocicache")?;
//! let report = cache.pull(&"ghcr.io/org/tool:1.4".parse()?, PullOptions::default())?;
//! println!("{} {:?}", report.digest, report.tag);
//! # Ok::<(), ocicache::Error>(())
//! ```

mod blob_lock;
mod driver;
mod http_client;
mod store;

pub use blob_lock::LOCKS_DIR;
pub use driver::{NoProgress, PullProgress};
pub use http_client::{HttpClient, HttpClientOptions};
pub use ocicache_core::pull::{
    BlobReport, Credentials, ManifestReport, Platform, PlatformChoice, PullOptions, PullReport,
    RegistryRoute, TagOutcome,
};

use crate::Cache;
use ocicache_core::{Reference, Result};

impl Cache {
    /// Pulls `reference` into the cache: from the cache when its tag is fresh and its graph is
    /// whole, from the registry (or its mirrors) when it must; verified, resumable within the
    /// pull, bounded by the cap (a pull that cannot fit fails with `Full` before storing
    /// anything). See [`ocicache_core::pull`] for every rule.
    pub fn pull(&self, reference: &Reference, options: PullOptions) -> Result<PullReport> {
        self.pull_with(reference, options, &HttpClient::new()?, &mut NoProgress)
    }

    /// [`Cache::pull`] with a client of your own (a CA file, timeouts) and a progress observer.
    pub fn pull_with(
        &self,
        reference: &Reference,
        options: PullOptions,
        client: &HttpClient,
        progress: &mut dyn PullProgress,
    ) -> Result<PullReport> {
        let mut pull = ocicache_core::pull::Pull::new(reference.clone(), options);
        driver::run(self, client, &mut pull, progress)
    }
}
