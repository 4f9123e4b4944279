//! The [`Pull`] state machine: one reference, from the cache when it can and from the registry
//! when it must. It emits HTTP requests as data and consumes responses; every byte it stores
//! goes through the cache's verified writers.
//!
//! Order of storing, so that nothing half-pulled is ever visible: blobs first (each verified
//! and pinned as it commits), then the manifests bottom-up, then the tag. A pull that dies
//! half-way leaves only verified blobs that nothing references yet; no manifest names a
//! missing blob because of it, and the tag moves only once the whole graph is stored.

use super::auth::{
    Challenge, Credentials, TokenCache, TokenResponse, parse_challenges, query_escape,
};
use super::endpoint::{Endpoint, RegistryRoute, endpoints};
use super::http::{
    HttpRequest, Method, Purpose, RequestId, ResponseHead, authority, origin, resolve_location,
};
use super::platform::{Platform, PlatformChoice};
use super::store::PullStore;
use crate::clock::Millis;
use crate::digest::{Algorithm, Digest};
use crate::error::{Error, ErrorKind, Result};
use crate::hashing::{BuiltinHasher, digest_of};
use crate::key::Key;
use crate::manifest::{MediaType, ParsedManifest, validate};
use crate::reference::Reference;
use crate::tags::Resolution;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// The `Accept` list of a manifest request: every manifest kind the cache stores.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.docker.distribution.manifest.v2+json";

/// Bounds on what a registry can make a pull hold or repeat.
const MAX_ERROR_BODY: usize = 64 * 1024;
const MAX_TOKEN_BODY: usize = 64 * 1024;
const MAX_REDIRECTS: u32 = 5;
/// Manifests a pull may visit (an index of indexes cannot make it wander).
const MAX_MANIFESTS: usize = 1024;
const MAX_INDEX_DEPTH: u32 = 4;

/// How a pull goes about it.
#[derive(Debug, Clone)]
pub struct PullOptions {
    /// Which manifests of an index to take (hosts default to their own platform).
    pub platform: PlatformChoice,
    /// Serve a cached tag stale when the registry cannot be reached or answers 5xx (default
    /// true); the report says so.
    pub allow_stale: bool,
    /// Never touch the network: only what the cache holds (a stale tag is served stale).
    pub offline: bool,
    /// Mirrors and plain-HTTP permission for the reference's registry.
    pub route: RegistryRoute,
    /// Credentials per registry host (`host[:port]`, as in references; mirrors by their
    /// host), from the host's login files or the caller.
    pub credentials: BTreeMap<String, Credentials>,
    /// Blob downloads in flight at once (default 4).
    pub max_concurrent: usize,
    /// Attempts per request and endpoint on connection errors, 5xx and 429 (default 4).
    pub max_attempts: u32,
    /// First retry delay in milliseconds, doubled each attempt up to 10 s (default 250);
    /// `Retry-After` overrides it.
    pub retry_base_ms: u64,
    /// The largest manifest accepted (default 4 MiB, the cache's own default limit).
    pub max_manifest_bytes: u64,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            platform: PlatformChoice::One(Platform::from_rust("linux", "x86_64")),
            allow_stale: true,
            offline: false,
            route: RegistryRoute::default(),
            credentials: BTreeMap::new(),
            max_concurrent: 4,
            max_attempts: 4,
            retry_base_ms: 250,
            max_manifest_bytes: 4 * 1024 * 1024,
        }
    }
}

/// What became of the tag.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum TagOutcome {
    /// The reference named a digest: no tag involved.
    Digest,
    /// Fresh in the cache: no request was made for it.
    Fresh,
    /// Past its freshness window; a `HEAD` found the same digest, and freshness was renewed.
    Revalidated,
    /// Past its freshness window, and the registry points it elsewhere now: fetched and
    /// recorded (the tag's history keeps the previous digest).
    Moved {
        /// Where the tag pointed before.
        previous: Digest,
    },
    /// Not cached before: fetched and recorded.
    Fetched,
    /// Past its freshness window and the registry could not be asked (offline, unreachable,
    /// 5xx): the cached digest was served as it is.
    Stale {
        /// Why the registry was not asked, or what it answered.
        reason: String,
    },
}

/// One manifest of the pulled graph.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ManifestReport {
    /// Its digest.
    pub digest: Digest,
    /// Its media type.
    pub media_type: String,
    /// The platform it was chosen for, for a manifest under an index.
    pub platform: Option<String>,
    /// Bytes fetched (0 when it came from the cache).
    pub fetched: u64,
}

/// One blob of the pulled graph.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BlobReport {
    /// Its digest.
    pub digest: Digest,
    /// The media type its descriptor gives.
    pub media_type: String,
    /// Its size.
    pub size: u64,
    /// The platform of the image it belongs to, under an index.
    pub platform: Option<String>,
    /// Body bytes received for it (more than `size` when a download restarted).
    pub fetched: u64,
    /// Bytes served from the cache (its size when it was cached, else 0).
    pub from_cache: u64,
    /// Where a download resumed with `Range` after a break, if it did.
    pub resumed_from: Option<u64>,
}

/// What a pull did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PullReport {
    /// The reference, canonical.
    pub reference: String,
    /// The digest of the top manifest.
    pub digest: Digest,
    /// Its media type.
    pub media_type: String,
    /// What became of the tag.
    pub tag: TagOutcome,
    /// Every manifest of the graph, top first.
    pub manifests: Vec<ManifestReport>,
    /// Every blob of the graph.
    pub blobs: Vec<BlobReport>,
    /// HTTP requests made (token requests included).
    pub requests: u64,
    /// Body bytes fetched in all.
    pub bytes_fetched: u64,
    /// Bytes served from the cache in all.
    pub bytes_from_cache: u64,
}

/// What the host should do next.
#[derive(Debug)]
pub enum Action {
    /// Perform this request and report its response under its id.
    Send(HttpRequest),
    /// Nothing to send before this wall time (a retry's delay); poll again then, or earlier
    /// when a response arrives.
    Sleep {
        /// The cache clock's time (ms since the epoch) when the first delayed request is due.
        until: Millis,
        /// The same, as a delay from now: what a host whose own clock is not the cache's
        /// (simulated time, or the browser's) sleeps, before it calls [`Pull::slept`].
        delay_ms: u64,
    },
    /// Nothing to send until a response in flight is reported.
    Wait,
    /// The pull is complete.
    Done(PullReport),
}

/// What a request is for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    /// The top manifest by tag: `HEAD` (revalidation) or `GET`.
    TagManifest { head: bool },
    /// A manifest by digest (the top one of a digest reference, a moved tag, or a child).
    Manifest(Digest),
    /// A blob.
    Blob(Digest),
    /// A bearer token, for the fetches waiting on `key`.
    Token(TokenKey),
}

type TokenKey = (String, String, String); // realm, service, scope

/// A logical fetch, across its attempts, redirects, endpoints and auth round-trips.
struct Fetch<W> {
    target: Target,
    endpoint: usize,
    attempts: u32,
    redirects: u32,
    redirect_url: Option<String>,
    /// A 401 came after credentials were sent: the next one fails the pull.
    auth_sent: bool,
    not_before: Millis,
    /// The request in flight, if any.
    in_flight: Option<RequestId>,
    /// Waiting for a token fetch to finish.
    waiting_token: Option<TokenKey>,
    /// A blob's kept partial was looked for (once per fetch).
    resume_checked: bool,
    // Response state.
    status: u16,
    head: ResponseHead,
    body: Vec<u8>,
    writer: Option<W>,
    /// Bytes the writer holds (resume offset).
    written: u64,
    resumed_from: Option<u64>,
    fetched: u64,
}

impl<W> Fetch<W> {
    fn new(target: Target, endpoint: usize) -> Fetch<W> {
        Fetch {
            target,
            endpoint,
            attempts: 0,
            redirects: 0,
            redirect_url: None,
            auth_sent: false,
            not_before: 0,
            in_flight: None,
            waiting_token: None,
            resume_checked: false,
            status: 0,
            head: ResponseHead::default(),
            body: Vec::new(),
            writer: None,
            written: 0,
            resumed_from: None,
            fetched: 0,
        }
    }
}

/// A blob the graph needs.
#[derive(Debug, Clone)]
struct NeededBlob {
    digest: Digest,
    size: u64,
    media_type: String,
    platform: Option<String>,
}

/// A manifest of the graph, in memory until the blobs are stored.
#[derive(Debug, Clone)]
struct GraphManifest {
    digest: Digest,
    bytes: Vec<u8>,
    media_type: MediaType,
    declared: Option<String>,
    platform: Option<String>,
    depth: u32,
    /// Bytes fetched for it (0: it came from the cache).
    fetched: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Start,
    /// Fetching the top manifest (or revalidating the tag).
    Top,
    /// Collecting the graph's manifests.
    Manifests,
    /// Downloading blobs.
    Blobs,
    Finished,
}

/// How the registry authenticates, learnt from its first challenge, per origin.
#[derive(Debug, Clone)]
enum AuthScheme {
    Basic,
    Bearer { realm: String, service: String },
}

/// One pull of one reference. See the [module docs](super) for how a host drives it.
pub struct Pull<W> {
    reference: Reference,
    options: PullOptions,
    endpoints: Vec<Endpoint>,
    /// Per endpoint: plain HTTP is in use (its TLS connection failed and fallback is allowed).
    plain: Vec<bool>,
    /// Per endpoint: it failed for good in this pull (mirrors are skipped from then on).
    dead: Vec<bool>,
    phase: Phase,
    next_id: u64,
    fetches: BTreeMap<u64, Fetch<W>>,
    next_fetch: u64,
    by_request: BTreeMap<RequestId, u64>,
    queue: VecDeque<u64>,
    tokens: TokenCache,
    auth: BTreeMap<String, AuthScheme>,
    /// What the tag resolved to before the pull, and what happened to it.
    cached_digest: Option<Digest>,
    tag: Option<TagOutcome>,
    target: Option<Digest>,
    /// The graph's manifests, top first.
    graph: Vec<GraphManifest>,
    /// Manifests still to look at: digest, platform, depth.
    pending_manifests: VecDeque<(Digest, Option<String>, u32)>,
    seen_manifests: BTreeSet<Digest>,
    /// Platform label and depth of manifests being fetched by digest.
    platform_of: BTreeMap<Digest, (Option<String>, u32)>,
    blobs: Vec<NeededBlob>,
    blob_reports: BTreeMap<Digest, BlobReport>,
    blob_queue: VecDeque<NeededBlob>,
    blobs_in_flight: usize,
    pinned: Vec<Key>,
    requests: u64,
    bytes_fetched: u64,
    /// Per endpoint: why its TLS connection failed, when plain HTTP took over.
    tls_failure: Vec<Option<String>>,
    failed: Option<Error>,
    finished: bool,
}

impl<W> Pull<W> {
    /// A pull of `reference` (not started: the first [`Pull::poll`] starts it).
    pub fn new(reference: Reference, options: PullOptions) -> Pull<W> {
        let endpoints = endpoints(reference.registry(), &options.route);
        let n = endpoints.len();
        Pull {
            reference,
            options,
            endpoints,
            plain: vec![false; n],
            dead: vec![false; n],
            phase: Phase::Start,
            next_id: 1,
            fetches: BTreeMap::new(),
            next_fetch: 1,
            by_request: BTreeMap::new(),
            queue: VecDeque::new(),
            tokens: TokenCache::default(),
            auth: BTreeMap::new(),
            cached_digest: None,
            tag: None,
            target: None,
            graph: Vec::new(),
            pending_manifests: VecDeque::new(),
            seen_manifests: BTreeSet::new(),
            platform_of: BTreeMap::new(),
            blobs: Vec::new(),
            blob_reports: BTreeMap::new(),
            blob_queue: VecDeque::new(),
            blobs_in_flight: 0,
            pinned: Vec::new(),
            requests: 0,
            bytes_fetched: 0,
            tls_failure: vec![None; n],
            failed: None,
            finished: false,
        }
    }

    /// The host waited as long as the last [`Action::Sleep`] asked, by its own clock: the
    /// delayed requests are due now, whatever the cache's clock says (a host whose cache runs
    /// on simulated time sleeps real time).
    pub fn slept(&mut self) {
        for f in self.fetches.values_mut() {
            f.not_before = 0;
        }
    }

    /// The reference being pulled.
    pub fn reference(&self) -> &Reference {
        &self.reference
    }

    /// Requests sent so far.
    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// The next thing to do. Returns the pull's error once it failed (and has released what it
    /// held: open writers aborted, pins dropped); responses still in flight are then ignored.
    pub fn poll<S: PullStore<Writer = W>>(&mut self, store: &mut S) -> Result<Action> {
        if self.finished {
            return Err(Error::InvalidArgument("the pull is over".into()));
        }
        let step = self.step(store);
        match step {
            Ok(action) => {
                if matches!(action, Action::Done(_)) {
                    self.finished = true;
                }
                Ok(action)
            }
            Err(e) => {
                self.fail(e);
                let e = self
                    .failed
                    .take()
                    .unwrap_or_else(|| Error::InvalidArgument("the pull failed".into()));
                self.release(store);
                self.finished = true;
                Err(e)
            }
        }
    }

    /// Gives up: aborts open writers and drops pins. Nothing stored so far is removed (every
    /// blob stored is verified, and the next pull finds it).
    pub fn cancel<S: PullStore<Writer = W>>(mut self, store: &mut S) {
        self.release(store);
    }

    /// The status and headers of request `id`'s response. Returns whether the host should
    /// read its body: then it reports chunks with [`Pull::on_body`] and finishes with
    /// [`Pull::on_end`] (or [`Pull::on_error`] if the transfer breaks), stopping early when
    /// `on_body` says so. When not, the host drops the response and reports nothing more for
    /// `id`.
    pub fn on_head<S: PullStore<Writer = W>>(
        &mut self,
        store: &mut S,
        id: RequestId,
        head: ResponseHead,
    ) -> bool {
        let Some(f) = self.fetch_of(id) else {
            return false;
        };
        let wants_body = match self.handle_head(store, f, head) {
            Ok(wants_body) => wants_body,
            Err(e) => {
                self.fail(e);
                false
            }
        };
        if !wants_body {
            // Done with this request: nothing more is reported for it.
            self.by_request.remove(&id);
            if let Some(fetch) = self.fetches.get_mut(&f)
                && fetch.in_flight == Some(id)
            {
                fetch.in_flight = None;
            }
        }
        wants_body
    }

    /// A chunk of request `id`'s body. Returns whether to go on reading (either way, the host
    /// then calls [`Pull::on_end`]).
    pub fn on_body<S: PullStore<Writer = W>>(
        &mut self,
        store: &mut S,
        id: RequestId,
        chunk: &[u8],
    ) -> bool {
        let Some(f) = self.fetch_of(id) else {
            return false;
        };
        match self.handle_body(store, f, chunk) {
            Ok(more) => more,
            Err(e) => {
                self.fail(e);
                false
            }
        }
    }

    /// Request `id`'s body is complete.
    pub fn on_end<S: PullStore<Writer = W>>(&mut self, store: &mut S, id: RequestId) {
        let Some(f) = self.fetch_of(id) else { return };
        self.by_request.remove(&id);
        if let Some(fetch) = self.fetches.get_mut(&f) {
            fetch.in_flight = None;
        }
        if let Err(e) = self.handle_end(store, f) {
            self.fail(e);
        }
    }

    /// Request `id` failed in transport: no connection, TLS refused, a reset or timeout before
    /// or during the body. Retried (resuming a blob from where it broke) within the limits.
    pub fn on_error<S: PullStore<Writer = W>>(
        &mut self,
        store: &mut S,
        id: RequestId,
        message: &str,
    ) {
        let Some(f) = self.fetch_of(id) else { return };
        self.by_request.remove(&id);
        let now = store.now_millis();
        let Some(fetch) = self.fetches.get_mut(&f) else {
            return;
        };
        fetch.in_flight = None;
        let endpoint = fetch.endpoint;
        let before_head = fetch.status == 0;
        // A TLS connection that fails where plain HTTP is allowed: switch to it at once.
        if before_head
            && fetch.redirect_url.is_none()
            && !self.plain[endpoint]
            && self.endpoints[endpoint].plain_fallback.is_some()
            && !matches!(fetch.target, Target::Token(_))
        {
            self.plain[endpoint] = true;
            self.tls_failure[endpoint] = Some(message.to_owned());
            self.queue.push_back(f);
            return;
        }
        let result = self.retry_or_move_on(
            f,
            Failure::transport(format!("connection: {message}")),
            None,
            now,
        );
        if let Err(e) = result {
            self.fail(e);
        }
    }

    /// The host found request `id`'s blob already stored before it sent the request: another
    /// process downloaded it meanwhile (hosts that share a directory take a per-digest lock
    /// around each blob download, then look). The pull takes the blob from the cache, and the
    /// host sends nothing for `id`. If the blob is not stored after all, the request is queued
    /// again.
    pub fn on_stored<S: PullStore<Writer = W>>(&mut self, store: &mut S, id: RequestId) {
        let Some(f) = self.fetch_of(id) else { return };
        self.by_request.remove(&id);
        self.requests = self.requests.saturating_sub(1);
        if let Err(e) = self.take_stored(store, f) {
            self.fail(e);
        }
    }

    fn take_stored<S: PullStore<Writer = W>>(&mut self, store: &mut S, f: u64) -> Result<()> {
        let fetch = self.fetches.get_mut(&f).expect("fetch exists");
        fetch.in_flight = None;
        let Target::Blob(digest) = fetch.target.clone() else {
            return Err(Error::InvalidArgument(
                "on_stored is for blob requests".into(),
            ));
        };
        if !store.has_blob(&digest)? {
            self.queue.push_back(f);
            return Ok(());
        }
        let mut fetch = self.fetches.remove(&f).expect("fetch exists");
        if let Some(w) = fetch.writer.take() {
            store.abort_blob(w);
        }
        self.blobs_in_flight -= 1;
        let key = Key::blob(digest.clone());
        store.pin(&key)?;
        self.pinned.push(key);
        if let Some(r) = self.blob_reports.get_mut(&digest) {
            r.fetched = fetch.fetched;
            r.from_cache = r.size;
        }
        Ok(())
    }

    // ----- internals -----

    fn fetch_of(&self, id: RequestId) -> Option<u64> {
        if self.failed.is_some() || self.finished {
            return None;
        }
        self.by_request.get(&id).copied()
    }

    fn fail(&mut self, e: Error) {
        if self.failed.is_none() {
            self.failed = Some(e);
        }
    }

    fn release<S: PullStore<Writer = W>>(&mut self, store: &mut S) {
        for (_, fetch) in std::mem::take(&mut self.fetches) {
            if let Some(w) = fetch.writer {
                // What arrived stays for the next pull, where the storage can keep it.
                if fetch.written > 0 {
                    store.keep_blob(w);
                } else {
                    store.abort_blob(w);
                }
            }
        }
        self.by_request.clear();
        self.queue.clear();
        for key in std::mem::take(&mut self.pinned) {
            // Best effort: a pin that cannot be released stays, and only protects an entry.
            let _ = store.unpin(&key);
        }
    }

    fn add_fetch(&mut self, target: Target) -> u64 {
        let id = self.next_fetch;
        self.next_fetch += 1;
        let endpoint = self.first_live_endpoint();
        self.fetches.insert(id, Fetch::new(target, endpoint));
        self.queue.push_back(id);
        id
    }

    fn first_live_endpoint(&self) -> usize {
        (0..self.endpoints.len())
            .find(|&i| !self.dead[i])
            .unwrap_or(self.endpoints.len() - 1)
    }

    fn registry_name(&self) -> String {
        self.reference.registry().to_owned()
    }

    fn step<S: PullStore<Writer = W>>(&mut self, store: &mut S) -> Result<Action> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        if self.phase == Phase::Start {
            self.start(store)?;
        }
        loop {
            // Advance phases whose work is done.
            if self.phase == Phase::Manifests && self.manifest_fetches_idle() {
                self.walk_manifests(store)?;
                if self.phase == Phase::Manifests && self.manifest_fetches_idle() {
                    self.begin_blobs(store)?;
                }
            }
            if self.phase == Phase::Blobs {
                self.start_blobs();
                if self.blob_queue.is_empty() && self.fetches.is_empty() {
                    let report = self.finish(store)?;
                    return Ok(Action::Done(report));
                }
            }
            if self.phase == Phase::Finished {
                return Err(Error::InvalidArgument("the pull is over".into()));
            }
            // Send the first queued fetch whose delay has passed.
            let now = store.now_millis();
            let mut earliest: Option<Millis> = None;
            let mut chosen = None;
            for (pos, f) in self.queue.iter().enumerate() {
                let fetch = &self.fetches[f];
                if fetch.not_before <= now {
                    chosen = Some(pos);
                    break;
                }
                earliest =
                    Some(earliest.map_or(fetch.not_before, |e: Millis| e.min(fetch.not_before)));
            }
            if let Some(pos) = chosen {
                let f = self.queue.remove(pos).expect("position in range");
                if let Some(request) = self.request_for(store, f)? {
                    return Ok(Action::Send(request));
                }
                continue;
            }
            if let Some(until) = earliest {
                return Ok(Action::Sleep {
                    until,
                    delay_ms: until.saturating_sub(now),
                });
            }
            if self.by_request.is_empty()
                && self.fetches.values().all(|f| f.waiting_token.is_none())
            {
                // Nothing queued, in flight or waiting, and no phase could move on: a bug, not
                // a reason to spin.
                return Err(Error::InvalidArgument(format!(
                    "internal: the pull stalled ({:?}, {} fetches)",
                    self.phase,
                    self.fetches.len()
                )));
            }
            return Ok(Action::Wait);
        }
    }

    fn manifest_fetches_idle(&self) -> bool {
        !self.fetches.values().any(|f| {
            matches!(
                f.target,
                Target::Manifest(_) | Target::TagManifest { .. } | Target::Token(_)
            )
        })
    }

    fn start<S: PullStore<Writer = W>>(&mut self, store: &mut S) -> Result<()> {
        if let Some(d) = self.reference.digest() {
            self.tag = Some(TagOutcome::Digest);
            self.target = Some(d.clone());
            self.phase = Phase::Manifests;
            self.pending_manifests.push_back((d.clone(), None, 0));
            return Ok(());
        }
        match store.resolve_tag(&self.reference)? {
            Resolution::Fresh(d) => {
                self.tag = Some(TagOutcome::Fresh);
                self.cached_digest = Some(d.clone());
                self.use_target(d);
            }
            Resolution::Stale(d) => {
                self.cached_digest = Some(d.clone());
                if self.options.offline {
                    self.tag = Some(TagOutcome::Stale {
                        reason: "offline".into(),
                    });
                    self.use_target(d);
                } else {
                    self.phase = Phase::Top;
                    self.add_fetch(Target::TagManifest { head: true });
                }
            }
            Resolution::Unknown => {
                if self.options.offline {
                    return Err(Error::Network {
                        registry: self.registry_name(),
                        status: None,
                        message: format!("offline, and {} is not cached", self.reference),
                        registry_code: None,
                    });
                }
                self.phase = Phase::Top;
                self.add_fetch(Target::TagManifest { head: false });
            }
        }
        Ok(())
    }

    fn use_target(&mut self, d: Digest) {
        self.target = Some(d.clone());
        self.phase = Phase::Manifests;
        self.pending_manifests.push_back((d, None, 0));
    }

    /// The request for fetch `f` in its current state, or `None` if it is parked (waiting
    /// for a token).
    fn request_for<S: PullStore<Writer = W>>(
        &mut self,
        store: &mut S,
        f: u64,
    ) -> Result<Option<HttpRequest>> {
        let now = store.now_millis();
        let repository = self.reference.repository().to_owned();
        if let Target::Blob(d) = &self.fetches[&f].target
            && self.fetches[&f].writer.is_none()
            && !self.fetches[&f].resume_checked
        {
            // A download an earlier pull (or process) kept: continue it with Range.
            let d = d.clone();
            let size = self.blobs.iter().find(|b| b.digest == d).map(|b| b.size);
            let resumed = store.resume_blob(&d, size)?;
            let fetch = self.fetches.get_mut(&f).expect("queued fetches exist");
            fetch.resume_checked = true;
            if let Some((w, n)) = resumed {
                fetch.writer = Some(w);
                fetch.written = n;
            }
        }
        let base = self.current_base(f);
        let fetch = self.fetches.get_mut(&f).expect("queued fetches exist");
        let credentials_key = self.endpoints[fetch.endpoint].credentials_key.clone();
        let mut headers: Vec<(String, String)> = Vec::new();
        let (method, url) = match &fetch.target {
            Target::TagManifest { head } => {
                let tag = self
                    .reference
                    .tag()
                    .unwrap_or(crate::reference::DEFAULT_TAG);
                headers.push(("Accept".into(), MANIFEST_ACCEPT.into()));
                (
                    if *head { Method::Head } else { Method::Get },
                    format!("{base}/v2/{repository}/manifests/{tag}"),
                )
            }
            Target::Manifest(d) => {
                headers.push(("Accept".into(), MANIFEST_ACCEPT.into()));
                (Method::Get, format!("{base}/v2/{repository}/manifests/{d}"))
            }
            Target::Blob(d) => {
                if fetch.written > 0 {
                    headers.push(("Range".into(), format!("bytes={}-", fetch.written)));
                }
                (Method::Get, format!("{base}/v2/{repository}/blobs/{d}"))
            }
            Target::Token((realm, service, scope)) => {
                let mut url = realm.clone();
                url.push(if realm.contains('?') { '&' } else { '?' });
                if !service.is_empty() {
                    url.push_str(&format!("service={}&", query_escape(service)));
                }
                url.push_str(&format!("scope={}", query_escape(scope)));
                if let Some(c) = self.options.credentials.get(&credentials_key) {
                    headers.push(("Authorization".into(), c.basic_header()));
                }
                (Method::Get, url)
            }
        };
        let url = fetch.redirect_url.clone().unwrap_or(url);
        // Credentials go only to the origin that asked for them.
        if !matches!(fetch.target, Target::Token(_)) && origin(&url) == origin(&base) {
            match self.auth.get(&origin(&base)) {
                Some(AuthScheme::Basic) => {
                    if let Some(c) = self.options.credentials.get(&credentials_key) {
                        headers.push(("Authorization".into(), c.basic_header()));
                    }
                }
                Some(AuthScheme::Bearer { realm, service }) => {
                    let scope = format!("repository:{repository}:pull");
                    match self.tokens.get(realm, service, &scope, now) {
                        Some(token) => {
                            headers.push(("Authorization".into(), format!("Bearer {token}")));
                        }
                        None => {
                            // Expired since: get a new one first.
                            let key = (realm.clone(), service.clone(), scope);
                            self.wait_for_token(f, key);
                            return Ok(None);
                        }
                    }
                }
                None => {}
            }
        }
        let id = RequestId(self.next_id);
        self.next_id += 1;
        self.requests += 1;
        let fetch = self.fetches.get_mut(&f).expect("queued fetches exist");
        let purpose = match &fetch.target {
            Target::TagManifest { .. } | Target::Manifest(_) => Purpose::Manifest,
            Target::Token(_) => Purpose::Token,
            Target::Blob(d) => Purpose::Blob {
                digest: d.clone(),
                size: self
                    .blobs
                    .iter()
                    .find(|b| &b.digest == d)
                    .map_or(0, |b| b.size),
                offset: fetch.written,
            },
        };
        fetch.in_flight = Some(id);
        fetch.status = 0;
        fetch.head = ResponseHead::default();
        fetch.body.clear();
        self.by_request.insert(id, f);
        Ok(Some(HttpRequest {
            id,
            method,
            url,
            headers,
            purpose,
        }))
    }

    /// Parks fetch `f` until a token for `key` is there, starting a token fetch if none runs.
    fn wait_for_token(&mut self, f: u64, key: TokenKey) {
        let running = self
            .fetches
            .values()
            .any(|x| x.target == Target::Token(key.clone()));
        if let Some(fetch) = self.fetches.get_mut(&f) {
            fetch.waiting_token = Some(key.clone());
        }
        if !running {
            let t = self.add_fetch(Target::Token(key));
            // The token endpoint belongs to the registry the waiting fetch was talking to.
            let endpoint = self.fetches[&f].endpoint;
            if let Some(tf) = self.fetches.get_mut(&t) {
                tf.endpoint = endpoint;
            }
        }
    }

    fn handle_head<S: PullStore<Writer = W>>(
        &mut self,
        store: &mut S,
        f: u64,
        head: ResponseHead,
    ) -> Result<bool> {
        let now = store.now_millis();
        let status = head.status;
        let registry = self.registry_name();
        let endpoint_base = self.current_base(f);
        let fetch = self.fetches.get_mut(&f).expect("fetch exists");
        fetch.status = status;
        fetch.head = head;
        let target = fetch.target.clone();
        // Redirects: followed here, so that credentials stay with their origin.
        if matches!(status, 301 | 302 | 303 | 307 | 308) {
            let location = fetch.head.header("location").map(str::to_owned);
            let current = fetch
                .redirect_url
                .clone()
                .unwrap_or_else(|| endpoint_base.clone());
            let Some(next) = location.and_then(|l| resolve_location(&current, &l)) else {
                return Err(Error::Network {
                    registry,
                    status: Some(status),
                    message: "redirect without a usable Location".into(),
                    registry_code: None,
                });
            };
            fetch.redirects += 1;
            if fetch.redirects > MAX_REDIRECTS {
                return Err(Error::Network {
                    registry,
                    status: Some(status),
                    message: format!("more than {MAX_REDIRECTS} redirects"),
                    registry_code: None,
                });
            }
            fetch.redirect_url = Some(next);
            self.queue.push_front(f);
            return Ok(false);
        }
        if status == 401 && !matches!(target, Target::Token(_)) {
            return self.handle_challenge(f, &endpoint_base).map(|()| false);
        }
        if (200..300).contains(&status) {
            if let Target::Blob(_) = target {
                return self.open_blob_body(store, f);
            }
            if let Target::TagManifest { head: true } = target {
                // A HEAD has no body: the revalidation is decided here.
                self.end_revalidation(f);
                return Ok(false);
            }
            if matches!(target, Target::Manifest(_) | Target::TagManifest { .. }) {
                let limit = self.options.max_manifest_bytes;
                let fetch = self.fetches.get(&f).expect("fetch exists");
                if let Some(len) = fetch.head.content_length()
                    && len > limit
                {
                    return Err(Error::TooLarge { size: len, limit });
                }
            }
            return Ok(true);
        }
        // Errors: read a bounded body for the registry's message (a HEAD has none).
        if let Target::TagManifest { head: true } = target {
            self.on_status_error(f, Failure::answer(status, &[]), now)?;
            return Ok(false);
        }
        Ok(true)
    }

    fn current_base(&self, f: u64) -> String {
        let fetch = &self.fetches[&f];
        let e = &self.endpoints[fetch.endpoint];
        if self.plain[fetch.endpoint] {
            e.plain_fallback.clone().unwrap_or_else(|| e.base.clone())
        } else {
            e.base.clone()
        }
    }

    fn handle_challenge(&mut self, f: u64, base: &str) -> Result<()> {
        let registry = self.registry_name();
        let host = authority(base);
        let fetch = self.fetches.get_mut(&f).expect("fetch exists");
        let key = self.endpoints[fetch.endpoint].credentials_key.clone();
        let challenges: Vec<Challenge> = fetch
            .head
            .headers_named("www-authenticate")
            .flat_map(parse_challenges)
            .collect();
        let unauthorized = |message: String| Error::Unauthorized {
            registry: registry.clone(),
            message,
        };
        if fetch.auth_sent {
            return Err(unauthorized(format!(
                "{host} refused the credentials{}",
                if self.options.credentials.contains_key(&key) {
                    " given for it"
                } else {
                    " (anonymous access)"
                }
            )));
        }
        fetch.auth_sent = true;
        let repository = self.reference.repository().to_owned();
        let origin_key = origin(base);
        if let Some(Challenge::Bearer {
            realm,
            service,
            scope,
        }) = challenges
            .iter()
            .find(|c| matches!(c, Challenge::Bearer { .. }))
            .cloned()
        {
            let service = service.unwrap_or_default();
            let scope = scope.unwrap_or_else(|| format!("repository:{repository}:pull"));
            self.auth.insert(
                origin_key,
                AuthScheme::Bearer {
                    realm: realm.clone(),
                    service: service.clone(),
                },
            );
            // A token the registry refused: forget it, and get a new one.
            self.tokens.forget(&realm, &service, &scope);
            self.wait_for_token(f, (realm, service, scope));
            return Ok(());
        }
        if challenges.contains(&Challenge::Basic) {
            if !self.options.credentials.contains_key(&key) {
                return Err(unauthorized(format!(
                    "{host} asks for a login (Basic) and no credentials are known for it"
                )));
            }
            self.auth.insert(origin_key, AuthScheme::Basic);
            self.queue.push_front(f);
            return Ok(());
        }
        Err(unauthorized(format!(
            "{host} answered 401 without a challenge this client speaks"
        )))
    }

    fn open_blob_body<S: PullStore<Writer = W>>(&mut self, store: &mut S, f: u64) -> Result<bool> {
        let fetch = self.fetches.get_mut(&f).expect("fetch exists");
        let Target::Blob(digest) = fetch.target.clone() else {
            unreachable!("blob fetches only")
        };
        let size = self
            .blobs
            .iter()
            .find(|b| b.digest == digest)
            .map(|b| b.size);
        if fetch.status == 206 && fetch.written > 0 {
            // Resuming: the range must start where the writer stands.
            let start = fetch
                .head
                .header("content-range")
                .and_then(|v| v.trim().strip_prefix("bytes "))
                .and_then(|v| v.split('-').next())
                .and_then(|v| v.trim().parse::<u64>().ok());
            if start == Some(fetch.written) {
                fetch.resumed_from = Some(fetch.written);
                return Ok(true);
            }
        }
        // A full body for a writer that holds nothing yet (a fresh partial): write into it.
        if fetch.status == 200 && fetch.written == 0 && fetch.writer.is_some() {
            return Ok(true);
        }
        // A full body (or a range the registry did not honour as asked): start over.
        let restart = fetch.writer.is_some();
        if let Some(w) = fetch.writer.take() {
            store.abort_blob(w);
        }
        fetch.written = 0;
        if fetch.status == 206 {
            // A partial answer to a request that did not ask for one, or at the wrong offset.
            fetch.resumed_from = None;
            let registry = self.registry_name();
            return Err(Error::Network {
                registry,
                status: Some(206),
                message: format!("unexpected partial content for {digest}"),
                registry_code: None,
            });
        }
        let writer = match restart
            .then(|| store.resume_blob(&digest, size))
            .transpose()?
        {
            // The aborted partial is gone: this is a fresh one, for the next break.
            Some(Some((w, _))) => w,
            _ => store.begin_blob(&digest, size)?,
        };
        let fetch = self.fetches.get_mut(&f).expect("fetch exists");
        fetch.writer = Some(writer);
        Ok(true)
    }

    fn handle_body<S: PullStore<Writer = W>>(
        &mut self,
        store: &mut S,
        f: u64,
        chunk: &[u8],
    ) -> Result<bool> {
        self.bytes_fetched += chunk.len() as u64;
        let fetch = self.fetches.get_mut(&f).expect("fetch exists");
        fetch.fetched += chunk.len() as u64;
        let ok = (200..300).contains(&fetch.status);
        match &fetch.target {
            Target::Blob(_) if ok => {
                let Some(w) = fetch.writer.as_mut() else {
                    return Ok(false);
                };
                store.write_blob(w, chunk)?;
                fetch.written += chunk.len() as u64;
                Ok(true)
            }
            Target::Manifest(_) | Target::TagManifest { .. } if ok => {
                let limit = self.options.max_manifest_bytes;
                if (fetch.body.len() + chunk.len()) as u64 > limit {
                    return Err(Error::TooLarge {
                        size: (fetch.body.len() + chunk.len()) as u64,
                        limit,
                    });
                }
                fetch.body.extend_from_slice(chunk);
                Ok(true)
            }
            Target::Token(_) if ok => {
                if fetch.body.len() + chunk.len() > MAX_TOKEN_BODY {
                    return Err(Error::Unauthorized {
                        registry: self.reference.registry().to_owned(),
                        message: "token response too large".into(),
                    });
                }
                fetch.body.extend_from_slice(chunk);
                Ok(true)
            }
            _ => {
                // An error body: keep the start, for the registry's message.
                let room = MAX_ERROR_BODY.saturating_sub(fetch.body.len());
                fetch
                    .body
                    .extend_from_slice(&chunk[..chunk.len().min(room)]);
                Ok(fetch.body.len() < MAX_ERROR_BODY)
            }
        }
    }

    fn handle_end<S: PullStore<Writer = W>>(&mut self, store: &mut S, f: u64) -> Result<()> {
        let now = store.now_millis();
        let fetch = self.fetches.get_mut(&f).expect("fetch exists");
        let status = fetch.status;
        let target = fetch.target.clone();
        if status == 0
            || (300..400).contains(&status)
            || (status == 401 && !matches!(target, Target::Token(_)))
        {
            // Redirects and challenges were handled at the head.
            return Ok(());
        }
        if !(200..300).contains(&status) {
            let failure = Failure::answer(status, &fetch.body);
            return self.on_status_error(f, failure, now);
        }
        match target {
            Target::TagManifest { head: true } => {
                self.end_revalidation(f);
                Ok(())
            }
            Target::TagManifest { head: false } => self.end_manifest(f, None),
            Target::Manifest(d) => self.end_manifest(f, Some(d)),
            Target::Blob(d) => {
                // A body that ends short of the descriptor's size is a break, not the end:
                // resumed with Range like any other.
                let size = self.blobs.iter().find(|b| b.digest == d).map(|b| b.size);
                let written = self.fetches.get(&f).map_or(0, |x| x.written);
                match size {
                    Some(size) if written < size => self.retry_or_move_on(
                        f,
                        Failure::transport(format!(
                            "the body of blob {d} ended after {written} of {size} bytes"
                        )),
                        None,
                        now,
                    ),
                    _ => self.end_blob(store, f, d),
                }
            }
            Target::Token(key) => self.end_token(f, key, now),
        }
        .or_else(|e| {
            // Content that failed verification from a mirror: try the next endpoint.
            let from_mirror = self
                .fetches
                .get(&f)
                .is_some_and(|x| self.endpoints[x.endpoint].mirror);
            if from_mirror
                && matches!(
                    e.kind(),
                    ErrorKind::DigestMismatch
                        | ErrorKind::SizeMismatch
                        | ErrorKind::InvalidManifest
                )
            {
                if let Some(fetch) = self.fetches.get_mut(&f) {
                    fetch.written = 0;
                    fetch.resumed_from = None;
                }
                self.next_endpoint(f, e, now)
            } else {
                Err(e)
            }
        })
    }

    /// A non-2xx answer (other than redirects and challenges).
    fn on_status_error(&mut self, f: u64, failure: Failure, now: Millis) -> Result<()> {
        let registry = self.registry_name();
        let fetch = self.fetches.get(&f).expect("fetch exists");
        let mirror = self.endpoints[fetch.endpoint].mirror;
        let retry_after = fetch
            .head
            .header("retry-after")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|s| s.saturating_mul(1000));
        let target = fetch.target.clone();
        let status = failure.status.unwrap_or(0);
        if status == 429 || status >= 500 {
            return self.retry_or_move_on(f, failure, retry_after, now);
        }
        if mirror {
            // A mirror that lacks it or refuses: the next endpoint.
            return self.next_endpoint(f, failure.into_error(registry), now);
        }
        if let Target::Token(_) = target {
            return Err(Error::Unauthorized {
                registry,
                message: format!("token endpoint answered {status}: {}", failure.message),
            });
        }
        if status == 416 {
            // The range we asked for is past the blob's end: our partial is wrong. Start over.
            if let Some(fetch) = self.fetches.get_mut(&f) {
                fetch.written = 0;
            }
            return self.retry_or_move_on(f, failure, None, now);
        }
        Err(match status {
            404 => Error::NotFound(format!(
                "{}: {registry} answered 404: {}",
                self.describe(&target),
                failure.message
            )),
            403 => Error::Unauthorized {
                registry,
                message: failure.message,
            },
            _ => failure.into_error(registry),
        })
    }

    fn describe(&self, target: &Target) -> String {
        match target {
            Target::TagManifest { .. } => self.reference.to_string(),
            Target::Manifest(d) => format!("manifest {d}"),
            Target::Blob(d) => format!("blob {d}"),
            Target::Token(_) => "token".into(),
        }
    }

    /// A transient failure: retry after a delay, or move to the next endpoint when attempts
    /// run out, or fail (serving a stale tag where that is allowed).
    fn retry_or_move_on(
        &mut self,
        f: u64,
        mut failure: Failure,
        retry_after: Option<u64>,
        now: Millis,
    ) -> Result<()> {
        let registry = self.registry_name();
        let base_ms = self.options.retry_base_ms;
        let max_attempts = self.options.max_attempts.max(1);
        let fetch = self.fetches.get_mut(&f).expect("fetch exists");
        // An endpoint reached over plain HTTP after its TLS connection failed: say both, so
        // that a certificate problem is not hidden behind what plain HTTP made of a TLS port.
        if let Some(tls) = &self.tls_failure[fetch.endpoint]
            && failure.status.is_none()
        {
            failure.message = format!("{} (over TLS first: {tls})", failure.message);
        }
        fetch.attempts += 1;
        fetch.redirect_url = None;
        fetch.redirects = 0;
        fetch.in_flight = None;
        // A mirror is asked once: when it fails, the next endpoint is the faster way on.
        let mirror = self.endpoints[fetch.endpoint].mirror;
        if fetch.attempts < max_attempts && !mirror {
            let backoff = base_ms
                .saturating_mul(1 << (fetch.attempts - 1).min(10))
                .min(10_000);
            fetch.not_before = now.saturating_add(retry_after.unwrap_or(backoff).min(60_000));
            self.queue.push_back(f);
            return Ok(());
        }
        self.next_endpoint(f, failure.into_error(registry), now)
    }

    /// Moves fetch `f` to the next endpoint (the registry after its mirrors), or fails with
    /// `error` when there is none; a tag revalidation that fails serves the tag stale instead
    /// where allowed.
    fn next_endpoint(&mut self, f: u64, error: Error, _now: Millis) -> Result<()> {
        let fetch = self.fetches.get_mut(&f).expect("fetch exists");
        let current = fetch.endpoint;
        if current + 1 < self.endpoints.len() {
            if self.endpoints[current].mirror {
                // A mirror that failed for good is not asked again in this pull.
                self.dead[current] = true;
            }
            fetch.endpoint = current + 1;
            fetch.attempts = 0;
            fetch.not_before = 0;
            fetch.redirect_url = None;
            fetch.auth_sent = false;
            // Partial bytes are from the same digest: they stay, and the next endpoint is asked
            // for the rest.
            self.queue.push_back(f);
            return Ok(());
        }
        // Out of endpoints. A tag that is cached serves stale if the registry is unreachable or
        // failing (not when it says the tag is gone or refuses us).
        let transient = matches!(&error, Error::Network { status, .. }
            if status.is_none_or(|s| s == 429 || s >= 500));
        if transient
            && self.options.allow_stale
            && matches!(fetch.target, Target::TagManifest { .. })
            && let Some(d) = self.cached_digest.clone()
        {
            self.fetches.remove(&f);
            self.tag = Some(TagOutcome::Stale {
                reason: error.to_string(),
            });
            self.use_target(d);
            return Ok(());
        }
        Err(error)
    }

    fn end_revalidation(&mut self, f: u64) {
        let fetch = self.fetches.remove(&f).expect("fetch exists");
        let cached = self
            .cached_digest
            .clone()
            .expect("revalidation of a cached tag");
        let remote = fetch
            .head
            .header("docker-content-digest")
            .and_then(|v| Digest::parse(v.trim()).ok());
        match remote {
            Some(d) if d == cached => {
                self.tag = Some(TagOutcome::Revalidated);
                self.use_target(d);
            }
            Some(d) => {
                self.tag = Some(TagOutcome::Moved { previous: cached });
                self.target = Some(d.clone());
                self.phase = Phase::Manifests;
                self.pending_manifests.push_back((d, None, 0));
            }
            None => {
                // No digest in the answer: fetch the manifest by tag and compare.
                self.add_fetch(Target::TagManifest { head: false });
            }
        }
    }

    fn end_manifest(&mut self, f: u64, expected: Option<Digest>) -> Result<()> {
        let registry = self.registry_name();
        let fetch = self.fetches.get_mut(&f).expect("fetch exists");
        let bytes = std::mem::take(&mut fetch.body);
        let declared = fetch
            .head
            .header("content-type")
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_owned())
            .filter(|d| MediaType::from_str_opt(d).is_some());
        let header_digest = match fetch.head.header("docker-content-digest") {
            Some(v) => Some(Digest::parse(v.trim()).map_err(|e| Error::Network {
                registry,
                status: Some(fetch.status),
                message: format!("invalid Docker-Content-Digest header: {e}"),
                registry_code: None,
            })?),
            None => None,
        };
        let algorithm = expected
            .as_ref()
            .or(header_digest.as_ref())
            .map_or(Algorithm::Sha256, Digest::algorithm);
        let actual = digest_of(&BuiltinHasher, algorithm, &bytes)?;
        if let Some(h) = &header_digest {
            let of_header = digest_of(&BuiltinHasher, h.algorithm(), &bytes)?;
            if &of_header != h {
                return Err(Error::DigestMismatch {
                    expected: h.to_string(),
                    actual: of_header.to_string(),
                });
            }
        }
        if let Some(e) = &expected
            && &actual != e
        {
            return Err(Error::DigestMismatch {
                expected: e.to_string(),
                actual: actual.to_string(),
            });
        }
        let valid = validate(&bytes, declared.as_deref())?;
        self.fetches.remove(&f);
        let fetched = bytes.len() as u64;
        let (platform, depth) = self.platform_of.remove(&actual).unwrap_or((None, 0));
        if self.target.is_none() {
            // The top manifest, by tag.
            self.target = Some(actual.clone());
            self.tag = Some(match &self.cached_digest {
                Some(previous) if *previous != actual => TagOutcome::Moved {
                    previous: previous.clone(),
                },
                Some(_) => TagOutcome::Revalidated,
                None => TagOutcome::Fetched,
            });
            self.phase = Phase::Manifests;
        }
        self.seen_manifests.insert(actual.clone());
        self.add_graph_manifest(GraphManifest {
            digest: actual,
            bytes,
            media_type: valid.media_type,
            declared,
            platform,
            depth,
            fetched,
        })
    }

    fn end_blob<S: PullStore<Writer = W>>(
        &mut self,
        store: &mut S,
        f: u64,
        digest: Digest,
    ) -> Result<()> {
        let fetch = self.fetches.get_mut(&f).expect("fetch exists");
        let writer = fetch
            .writer
            .take()
            .ok_or_else(|| Error::InvalidArgument("a blob body without a writer".into()))?;
        let (fetched, resumed_from) = (fetch.fetched, fetch.resumed_from);
        // A failed commit leaves the fetch in place (a mirror's bad bytes go to the next
        // endpoint); the writer is gone either way.
        store.commit_blob(writer)?;
        self.fetches.remove(&f);
        self.blobs_in_flight -= 1;
        let key = Key::blob(digest.clone());
        store.pin(&key)?;
        self.pinned.push(key);
        if let Some(r) = self.blob_reports.get_mut(&digest) {
            r.fetched = fetched;
            r.resumed_from = resumed_from;
        }
        Ok(())
    }

    fn end_token(&mut self, f: u64, key: TokenKey, now: Millis) -> Result<()> {
        let fetch = self.fetches.remove(&f).expect("fetch exists");
        let registry = self.registry_name();
        let parsed: TokenResponse =
            serde_json::from_slice(&fetch.body).map_err(|e| Error::Unauthorized {
                registry: registry.clone(),
                message: format!("token endpoint answered something that is not a token: {e}"),
            })?;
        let (token, lifetime) = parsed.into_token().ok_or_else(|| Error::Unauthorized {
            registry,
            message: "token endpoint answered without a token".into(),
        })?;
        self.tokens
            .put(&key.0, &key.1, &key.2, token, lifetime, now);
        // Wake the fetches waiting for it.
        let waiting: Vec<u64> = self
            .fetches
            .iter()
            .filter(|(_, x)| x.waiting_token.as_ref() == Some(&key))
            .map(|(id, _)| *id)
            .collect();
        for w in waiting {
            if let Some(x) = self.fetches.get_mut(&w) {
                x.waiting_token = None;
            }
            self.queue.push_front(w);
        }
        Ok(())
    }

    fn add_graph_manifest(&mut self, m: GraphManifest) -> Result<()> {
        if self.graph.len() >= MAX_MANIFESTS {
            return Err(Error::InvalidManifest(format!(
                "the graph has more than {MAX_MANIFESTS} manifests"
            )));
        }
        let valid = validate(&m.bytes, Some(m.media_type.as_str()))?;
        match &valid.parsed {
            ParsedManifest::Index(index) => {
                if m.depth >= MAX_INDEX_DEPTH {
                    return Err(Error::InvalidManifest("indexes nested too deep".into()));
                }
                let mut chosen = Vec::new();
                for d in index.manifests() {
                    let digest = Digest::parse(d.digest().as_ref()).map_err(|e| {
                        Error::InvalidManifest(format!("bad descriptor digest: {e}"))
                    })?;
                    let platform = d.platform().as_ref();
                    let label = platform.map(|p| {
                        let mut s = format!("{}/{}", p.os(), p.architecture());
                        if let Some(v) = p.variant() {
                            s.push('/');
                            s.push_str(v);
                        }
                        s
                    });
                    let take = match &self.options.platform {
                        PlatformChoice::All => true,
                        PlatformChoice::One(want) => platform.is_some_and(|p| {
                            want.matches(
                                &p.os().to_string(),
                                &p.architecture().to_string(),
                                p.variant().as_deref(),
                            )
                        }),
                    };
                    if take {
                        chosen.push((digest, label));
                        if matches!(self.options.platform, PlatformChoice::One(_)) {
                            break;
                        }
                    }
                }
                if chosen.is_empty() {
                    let available: Vec<String> = index
                        .manifests()
                        .iter()
                        .filter_map(|d| {
                            d.platform()
                                .as_ref()
                                .map(|p| format!("{}/{}", p.os(), p.architecture()))
                        })
                        .collect();
                    let want = match &self.options.platform {
                        PlatformChoice::One(p) => p.to_string(),
                        PlatformChoice::All => "any".into(),
                    };
                    return Err(Error::NotFound(format!(
                        "{}: no manifest for platform {want} (the index has: {})",
                        self.reference,
                        available.join(", ")
                    )));
                }
                for (digest, label) in chosen {
                    if self.seen_manifests.insert(digest.clone()) {
                        self.pending_manifests
                            .push_back((digest, label, m.depth + 1));
                    }
                }
            }
            ParsedManifest::Image(image) => {
                let mut descriptors = vec![image.config().clone()];
                descriptors.extend(image.layers().iter().cloned());
                for d in descriptors {
                    let digest = Digest::parse(d.digest().as_ref()).map_err(|e| {
                        Error::InvalidManifest(format!("bad descriptor digest: {e}"))
                    })?;
                    if self.blobs.iter().any(|b| b.digest == digest) {
                        continue;
                    }
                    self.blobs.push(NeededBlob {
                        digest,
                        size: d.size(),
                        media_type: d.media_type().to_string(),
                        platform: m.platform.clone(),
                    });
                }
            }
        }
        self.graph.push(m);
        Ok(())
    }

    /// Looks at the manifests still pending: from the cache when stored, else fetched.
    fn walk_manifests<S: PullStore<Writer = W>>(&mut self, store: &mut S) -> Result<()> {
        while let Some((digest, platform, depth)) = self.pending_manifests.pop_front() {
            self.seen_manifests.insert(digest.clone());
            if self.graph.iter().any(|g| g.digest == digest) {
                continue;
            }
            match store.get_manifest(&digest) {
                Ok(m) => {
                    self.add_graph_manifest(GraphManifest {
                        digest,
                        bytes: m.bytes,
                        media_type: m.media_type,
                        declared: Some(m.media_type.as_str().to_owned()),
                        platform,
                        depth,
                        fetched: 0,
                    })?;
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::NotFound | ErrorKind::Expired | ErrorKind::Corrupted
                    ) =>
                {
                    if self.options.offline {
                        return Err(Error::Network {
                            registry: self.registry_name(),
                            status: None,
                            message: format!("offline, and manifest {digest} is not cached"),
                            registry_code: None,
                        });
                    }
                    self.platform_of.insert(digest.clone(), (platform, depth));
                    self.add_fetch(Target::Manifest(digest));
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

impl<W> Pull<W> {
    /// The manifests are all known: finds the blobs the cache lacks, checks they fit, protects
    /// what the graph already has from eviction, and queues the downloads.
    fn begin_blobs<S: PullStore<Writer = W>>(&mut self, store: &mut S) -> Result<()> {
        let mut missing = Vec::new();
        let mut cached = Vec::new();
        for b in &self.blobs {
            let have = store.has_blob(&b.digest)?;
            self.blob_reports.insert(
                b.digest.clone(),
                BlobReport {
                    digest: b.digest.clone(),
                    media_type: b.media_type.clone(),
                    size: b.size,
                    platform: b.platform.clone(),
                    fetched: 0,
                    from_cache: if have { b.size } else { 0 },
                    resumed_from: None,
                },
            );
            if have {
                cached.push(b.digest.clone());
            } else {
                missing.push(b.clone());
            }
        }
        let new_manifest_bytes: u64 = self
            .graph
            .iter()
            .filter(|m| m.fetched > 0)
            .map(|m| m.bytes.len() as u64)
            .sum();
        if let Some(b) = missing.first()
            && self.options.offline
        {
            return Err(Error::Network {
                registry: self.registry_name(),
                status: None,
                message: format!("offline, and blob {} is not cached", b.digest),
                registry_code: None,
            });
        }
        let needed = missing
            .iter()
            .map(|b| b.size)
            .sum::<u64>()
            .saturating_add(new_manifest_bytes);
        // What the graph already holds stays (it is pinned below while blobs download).
        let kept: Vec<Key> = cached
            .iter()
            .map(|d| Key::blob(d.clone()))
            .chain(
                self.graph
                    .iter()
                    .filter(|m| m.fetched == 0)
                    .map(|m| Key::manifest(m.digest.clone())),
            )
            .collect();
        if needed > 0 {
            // All or nothing: a graph that cannot fit fails before anything is stored or
            // pinned, so the cache is left exactly as it was.
            store.check_room(needed, &kept)?;
        }
        if !missing.is_empty() {
            // While blobs download, nothing of the graph already stored may be evicted to make
            // room for them (by this process or another).
            for key in kept {
                store.pin(&key)?;
                self.pinned.push(key);
            }
        }
        self.blob_queue = missing.into();
        self.phase = Phase::Blobs;
        Ok(())
    }

    /// Starts queued downloads up to the concurrency limit.
    fn start_blobs(&mut self) {
        while self.blobs_in_flight < self.options.max_concurrent.max(1) {
            let Some(b) = self.blob_queue.pop_front() else {
                break;
            };
            self.blobs_in_flight += 1;
            self.add_fetch(Target::Blob(b.digest));
        }
    }

    /// Everything is downloaded: stores the manifests bottom-up, then the tag; releases pins.
    fn finish<S: PullStore<Writer = W>>(&mut self, store: &mut S) -> Result<PullReport> {
        let mut order: Vec<usize> = (0..self.graph.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(self.graph[i].depth));
        for i in order {
            let m = &self.graph[i];
            if m.fetched > 0 {
                let declared = m
                    .declared
                    .clone()
                    .unwrap_or_else(|| m.media_type.as_str().to_owned());
                store.put_manifest(&m.digest, &m.bytes, Some(&declared))?;
            }
        }
        let target = self.target.clone().expect("a finished pull has its digest");
        let tag = self.tag.clone().unwrap_or(TagOutcome::Digest);
        if matches!(
            tag,
            TagOutcome::Revalidated | TagOutcome::Moved { .. } | TagOutcome::Fetched
        ) {
            store.put_tag(&self.reference, &target)?;
        }
        for key in std::mem::take(&mut self.pinned) {
            store.unpin(&key)?;
        }
        self.phase = Phase::Finished;
        let top = self.graph.first();
        let manifests: Vec<ManifestReport> = self
            .graph
            .iter()
            .map(|m| ManifestReport {
                digest: m.digest.clone(),
                media_type: m.media_type.as_str().to_owned(),
                platform: m.platform.clone(),
                fetched: m.fetched,
            })
            .collect();
        let blobs: Vec<BlobReport> = self
            .blobs
            .iter()
            .filter_map(|b| self.blob_reports.get(&b.digest).cloned())
            .collect();
        let bytes_from_cache = blobs.iter().map(|b| b.from_cache).sum::<u64>()
            + self
                .graph
                .iter()
                .filter(|m| m.fetched == 0)
                .map(|m| m.bytes.len() as u64)
                .sum::<u64>();
        Ok(PullReport {
            reference: self.reference.to_string(),
            digest: target,
            media_type: top.map_or_else(String::new, |m| m.media_type.as_str().to_owned()),
            tag,
            manifests,
            blobs,
            requests: self.requests,
            bytes_fetched: self.bytes_fetched,
            bytes_from_cache,
        })
    }
}

/// Why a request failed: a transport failure, or a registry's error answer.
struct Failure {
    /// The HTTP status, if a response came.
    status: Option<u16>,
    /// What went wrong, with the registry's messages when it sent some.
    message: String,
    /// The registry's code for it (the first of its error body), if it sent one.
    code: Option<String>,
}

impl Failure {
    /// No response: a connection failure, a body cut short.
    fn transport(message: String) -> Failure {
        Failure {
            status: None,
            message,
            code: None,
        }
    }

    /// A non-2xx answer with `body` (the start of it; empty for a HEAD): the registry's
    /// messages and code come from its error body (`{"errors":[{"code","message"}]}`).
    fn answer(status: u16, body: &[u8]) -> Failure {
        #[derive(serde::Deserialize)]
        struct Body {
            errors: Vec<Entry>,
        }
        #[derive(serde::Deserialize)]
        struct Entry {
            code: Option<String>,
            message: Option<String>,
        }
        let (message, code) = match serde_json::from_slice::<Body>(body) {
            Ok(b) if !b.errors.is_empty() => (
                b.errors
                    .iter()
                    .take(4)
                    .map(|e| match (&e.code, &e.message) {
                        (Some(c), Some(m)) => format!("{c}: {m}"),
                        (Some(c), None) => c.clone(),
                        (None, Some(m)) => m.clone(),
                        (None, None) => "error".into(),
                    })
                    .collect::<Vec<_>>()
                    .join("; "),
                b.errors.iter().find_map(|e| e.code.clone()),
            ),
            _ => ("no message from the registry".into(), None),
        };
        Failure {
            status: Some(status),
            message,
            code,
        }
    }

    fn into_error(self, registry: String) -> Error {
        Error::Network {
            registry,
            status: self.status,
            message: self.message,
            registry_code: self.code,
        }
    }
}
