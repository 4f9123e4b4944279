//! The pull engine against a scripted registry: every exchange is data (requests logged,
//! responses made from a registry model plus injected faults), time is a manual clock.

use super::*;
use crate::cache::Cache;
use crate::clock::ManualClock;
use crate::config::Config;
use crate::digest::Digest;
use crate::error::ErrorKind;
use crate::hashing::{BuiltinHasher, digest_of};
use crate::key::Key;
use crate::reference::Reference;
use crate::storage::MemoryStorage;
use crate::tags::TagHistoryEntry;
use std::collections::BTreeMap;

const T0: u64 = 1_700_000_000_000;
const REGISTRY: &str = "127.0.0.1:5000";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

fn sha(bytes: &[u8]) -> Digest {
    digest_of(&BuiltinHasher, crate::Algorithm::Sha256, bytes).unwrap()
}

/// Deterministic content of `n` bytes.
fn content(seed: u8, n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[2] ^ seed)
        .collect()
}

/// An image: config and layers, with its manifest bytes.
struct Image {
    manifest: Vec<u8>,
    digest: Digest,
    blobs: Vec<Vec<u8>>,
}

fn image(seed: u8, layer_sizes: &[usize]) -> Image {
    let config = format!(r#"{{"architecture":"amd64","os":"linux","seed":{seed}}}"#).into_bytes();
    let layers: Vec<Vec<u8>> = layer_sizes
        .iter()
        .enumerate()
        .map(|(i, n)| content(seed.wrapping_add(i as u8 * 16), *n))
        .collect();
    let desc = |media: &str, b: &[u8]| {
        format!(
            r#"{{"mediaType":"{media}","digest":"{}","size":{}}}"#,
            sha(b),
            b.len()
        )
    };
    let layers_json: Vec<String> = layers
        .iter()
        .map(|l| desc("application/vnd.oci.image.layer.v1.tar", l))
        .collect();
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{},"layers":[{}]}}"#,
        desc("application/vnd.oci.image.config.v1+json", &config),
        layers_json.join(",")
    )
    .into_bytes();
    let mut blobs = vec![config];
    blobs.extend(layers);
    Image {
        digest: sha(&manifest),
        manifest,
        blobs,
    }
}

fn index(children: &[(&Image, &str, &str, Option<&str>)]) -> Vec<u8> {
    let entries: Vec<String> = children
        .iter()
        .map(|(img, os, arch, variant)| {
            let variant = variant
                .map(|v| format!(r#","variant":"{v}""#))
                .unwrap_or_default();
            format!(
                r#"{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":{},"platform":{{"os":"{os}","architecture":"{arch}"{variant}}}}}"#,
                img.digest,
                img.manifest.len()
            )
        })
        .collect();
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{}]}}"#,
        entries.join(",")
    )
    .into_bytes()
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Logged {
    method: &'static str,
    url: String,
    authorization: Option<String>,
    range: Option<String>,
}

/// What a fault hook makes of a request.
enum Reply {
    /// Answer normally.
    Normal,
    /// A response of the hook's own.
    Respond(ResponseHead, Vec<u8>),
    /// A transport failure before any response.
    Refuse(&'static str),
    /// The normal response, cut after `n` body bytes by a transport failure.
    CutAfter(usize),
    /// The normal response with one body byte flipped.
    Flip(usize),
    /// The normal response, ignoring a `Range` header.
    IgnoreRange,
    /// The normal response, its body ending (without an error) after `n` bytes.
    Short(usize),
}

type Hook = Box<dyn FnMut(&HttpRequest, usize) -> Reply>;

#[derive(Clone, PartialEq, Eq)]
enum Auth {
    None,
    Basic(String, String),
    /// Bearer tokens from `http://127.0.0.1:5001/token`; credentials if required.
    Bearer(Option<(String, String)>),
}

/// A registry model answering the distribution API, with a log and fault hooks.
struct FakeRegistry {
    manifests: BTreeMap<String, (Vec<u8>, String)>,
    blobs: BTreeMap<Digest, Vec<u8>>,
    auth: Auth,
    log: Vec<Logged>,
    hook: Option<Hook>,
    issued_tokens: u64,
    /// Base URLs this registry answers on (mirrors are other FakeRegistry instances).
    base: String,
}

impl FakeRegistry {
    fn new() -> FakeRegistry {
        FakeRegistry {
            manifests: BTreeMap::new(),
            blobs: BTreeMap::new(),
            auth: Auth::None,
            log: Vec::new(),
            hook: None,
            issued_tokens: 0,
            base: format!("https://{REGISTRY}"),
        }
    }

    fn push_image(&mut self, tag: &str, img: &Image) {
        self.manifests
            .insert(tag.into(), (img.manifest.clone(), OCI_MANIFEST.into()));
        self.push_manifest(&img.manifest, OCI_MANIFEST);
        for b in &img.blobs {
            self.blobs.insert(sha(b), b.clone());
        }
    }

    fn push_manifest(&mut self, bytes: &[u8], media: &str) {
        self.manifests
            .insert(sha(bytes).to_string(), (bytes.to_vec(), media.into()));
    }

    fn requests(&self, method: &str, part: &str) -> usize {
        self.log
            .iter()
            .filter(|l| l.method == method && l.url.contains(part))
            .count()
    }

    fn answer(&mut self, req: &HttpRequest) -> (ResponseHead, Vec<u8>) {
        let url = req.url.as_str();
        if let Some(q) = url.strip_prefix("http://127.0.0.1:5001/token?") {
            if let Auth::Bearer(Some((u, p))) = &self.auth {
                let want = super::auth::Credentials::Basic {
                    username: u.clone(),
                    password: p.clone(),
                }
                .basic_header();
                if req.header("authorization") != Some(want.as_str()) {
                    return (
                        ResponseHead::new(401, &[]),
                        br#"{"details":"bad"}"#.to_vec(),
                    );
                }
            }
            assert!(q.contains("scope=repository%3Aapp%3Apull"), "{q}");
            self.issued_tokens += 1;
            let body = format!(
                r#"{{"token":"tok{}","expires_in":300}}"#,
                self.issued_tokens
            );
            return (ResponseHead::new(200, &[]), body.into_bytes());
        }
        let Some(path) = url.strip_prefix(&self.base) else {
            return (ResponseHead::new(404, &[]), Vec::new());
        };
        match &self.auth {
            Auth::None => {}
            Auth::Basic(u, p) => {
                let want = super::auth::Credentials::Basic {
                    username: u.clone(),
                    password: p.clone(),
                }
                .basic_header();
                if req.header("authorization") != Some(want.as_str()) {
                    return (
                        ResponseHead::new(401, &[("WWW-Authenticate", r#"Basic realm="fake""#)]),
                        Vec::new(),
                    );
                }
            }
            Auth::Bearer(_) => {
                let ok = req
                    .header("authorization")
                    .is_some_and(|a| a.starts_with("Bearer tok"));
                if !ok {
                    return (
                        ResponseHead::new(
                            401,
                            &[(
                                "WWW-Authenticate",
                                r#"Bearer realm="http://127.0.0.1:5001/token",service="fake",scope="repository:app:pull""#,
                            )],
                        ),
                        br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#.to_vec(),
                    );
                }
            }
        }
        let not_found = |code: &str| {
            (
                ResponseHead::new(404, &[("Content-Type", "application/json")]),
                format!(r#"{{"errors":[{{"code":"{code}","message":"unknown"}}]}}"#).into_bytes(),
            )
        };
        if let Some(reference) = path.strip_prefix("/v2/app/manifests/") {
            let Some((bytes, media)) = self.manifests.get(reference) else {
                return not_found("MANIFEST_UNKNOWN");
            };
            let head = ResponseHead::new(
                200,
                &[
                    ("Content-Type", media.as_str()),
                    ("Docker-Content-Digest", &sha(bytes).to_string()),
                    ("Content-Length", &bytes.len().to_string()),
                ],
            );
            let body = if req.method == Method::Head {
                Vec::new()
            } else {
                bytes.clone()
            };
            return (head, body);
        }
        if let Some(d) = path.strip_prefix("/v2/app/blobs/") {
            let Some(bytes) = Digest::parse(d).ok().and_then(|d| self.blobs.get(&d)) else {
                return not_found("BLOB_UNKNOWN");
            };
            if let Some(range) = req.header("range") {
                let start: usize = range
                    .trim_start_matches("bytes=")
                    .trim_end_matches('-')
                    .parse()
                    .unwrap();
                let part = bytes[start..].to_vec();
                let cr = format!("bytes {start}-{}/{}", bytes.len() - 1, bytes.len());
                return (
                    ResponseHead::new(
                        206,
                        &[
                            ("Content-Range", &cr),
                            ("Content-Length", &part.len().to_string()),
                        ],
                    ),
                    part,
                );
            }
            return (
                ResponseHead::new(200, &[("Content-Length", &bytes.len().to_string())]),
                bytes.clone(),
            );
        }
        not_found("NAME_UNKNOWN")
    }
}

/// Runs a pull to its end against `registries` (tried by the URL's base), one request at a
/// time, sleeping on the manual clock; bounded.
fn drive(
    pull: &mut Pull<crate::cache::BlobWriter>,
    cache: &mut Cache,
    clock: &ManualClock,
    registries: &mut [&mut FakeRegistry],
) -> crate::Result<PullReport> {
    for _ in 0..10_000 {
        match pull.poll(cache)? {
            Action::Send(req) => {
                let reg = registries
                    .iter_mut()
                    .find(|r| {
                        req.url.starts_with(&r.base)
                            || req.url.starts_with("http://127.0.0.1:5001/")
                    })
                    .map(|r| &mut **r);
                let Some(reg) = reg else {
                    pull.on_error(cache, req.id, "connection refused");
                    continue;
                };
                reg.log.push(Logged {
                    method: req.method.as_str(),
                    url: req.url.clone(),
                    authorization: req.header("authorization").map(str::to_owned),
                    range: req.header("range").map(str::to_owned),
                });
                let n = reg.log.len();
                let mut hook = reg.hook.take();
                let reply = hook.as_mut().map_or(Reply::Normal, |h| h(&req, n));
                reg.hook = hook;
                let (head, body) = match reply {
                    Reply::Normal => reg.answer(&req),
                    Reply::Respond(h, b) => (h, b),
                    Reply::Refuse(msg) => {
                        pull.on_error(cache, req.id, msg);
                        continue;
                    }
                    Reply::CutAfter(k) => {
                        let (head, body) = reg.answer(&req);
                        if pull.on_head(cache, req.id, head) {
                            pull.on_body(cache, req.id, &body[..k.min(body.len())]);
                            pull.on_error(cache, req.id, "connection reset");
                        }
                        continue;
                    }
                    Reply::Flip(at) => {
                        let (head, mut body) = reg.answer(&req);
                        body[at] ^= 1;
                        (head, body)
                    }
                    Reply::Short(k) => {
                        let (head, mut body) = reg.answer(&req);
                        body.truncate(k);
                        (head, body)
                    }
                    Reply::IgnoreRange => {
                        let mut plain = req.clone();
                        plain
                            .headers
                            .retain(|(n, _)| !n.eq_ignore_ascii_case("range"));
                        reg.answer(&plain)
                    }
                };
                if pull.on_head(cache, req.id, head) {
                    for chunk in body.chunks(1000) {
                        if !pull.on_body(cache, req.id, chunk) {
                            break;
                        }
                    }
                    pull.on_end(cache, req.id);
                }
            }
            Action::Sleep { until, .. } => clock.set(until),
            Action::Wait => panic!("nothing in flight, yet the pull waits"),
            Action::Done(report) => return Ok(report),
        }
    }
    panic!("the pull did not end in 10000 steps");
}

fn options() -> PullOptions {
    PullOptions {
        retry_base_ms: 100,
        ..PullOptions::default()
    }
}

fn setup(config: Config) -> (Cache, ManualClock, FakeRegistry, Image) {
    let clock = ManualClock::new(T0);
    let cache = Cache::builder(MemoryStorage::new(), clock.clone())
        .config(config)
        .open()
        .unwrap();
    let mut reg = FakeRegistry::new();
    let img = image(1, &[3000, 5000]);
    reg.push_image("1.0", &img);
    (cache, clock, reg, img)
}

fn app(tag: &str) -> Reference {
    format!("{REGISTRY}/app:{tag}").parse().unwrap()
}

fn pull(
    cache: &mut Cache,
    clock: &ManualClock,
    reg: &mut FakeRegistry,
    reference: Reference,
    opts: PullOptions,
) -> crate::Result<PullReport> {
    let mut p = Pull::new(reference, opts);
    drive(&mut p, cache, clock, &mut [reg])
}

fn assert_stored(cache: &mut Cache, img: &Image) {
    assert_eq!(cache.get_manifest(&img.digest).unwrap().bytes, img.manifest);
    for b in &img.blobs {
        assert_eq!(&cache.get_blob(&sha(b)).unwrap(), b);
    }
}

#[test]
fn a_cold_pull_stores_the_graph_verified_then_the_tag() {
    let (mut cache, clock, mut reg, img) = setup(Config::default());
    let report = pull(&mut cache, &clock, &mut reg, app("1.0"), options()).unwrap();
    assert_eq!(report.tag, TagOutcome::Fetched);
    assert_eq!(report.digest, img.digest);
    assert_eq!(report.media_type, OCI_MANIFEST);
    assert_eq!(report.blobs.len(), 3);
    assert!(
        report
            .blobs
            .iter()
            .all(|b| b.fetched == b.size && b.from_cache == 0)
    );
    assert_eq!(reg.requests("GET", "/manifests/1.0"), 1);
    assert_eq!(reg.requests("GET", "/blobs/"), 3);
    assert_eq!(report.requests, 4);
    assert_stored(&mut cache, &img);
    assert_eq!(cache.get_tag(&app("1.0")).unwrap().digest, img.digest);
    // Nothing stays pinned once the pull is over.
    assert!(cache.contents().iter().all(|e| e.pins == 0));
}

#[test]
fn a_fresh_tag_makes_no_request_and_a_stale_one_exactly_one_head() {
    let (mut cache, clock, mut reg, img) = setup(Config::default());
    pull(&mut cache, &clock, &mut reg, app("1.0"), options()).unwrap();
    reg.log.clear();
    let warm = pull(&mut cache, &clock, &mut reg, app("1.0"), options()).unwrap();
    assert_eq!(warm.tag, TagOutcome::Fresh);
    assert_eq!(warm.requests, 0);
    assert!(reg.log.is_empty());
    assert_eq!(
        warm.bytes_from_cache,
        8000 + img.blobs[0].len() as u64 + img.manifest.len() as u64
    );
    clock.advance(Config::default().tag_ttl_ms + 1);
    let stale = pull(&mut cache, &clock, &mut reg, app("1.0"), options()).unwrap();
    assert_eq!(stale.tag, TagOutcome::Revalidated);
    assert_eq!(reg.log.len(), 1);
    assert_eq!(reg.requests("HEAD", "/manifests/1.0"), 1);
    // Renewed: fresh again.
    reg.log.clear();
    let again = pull(&mut cache, &clock, &mut reg, app("1.0"), options()).unwrap();
    assert_eq!((again.tag, reg.log.len()), (TagOutcome::Fresh, 0));
}

#[test]
fn a_moved_tag_is_fetched_and_recorded_in_history() {
    let (mut cache, clock, mut reg, img) = setup(Config::default());
    pull(&mut cache, &clock, &mut reg, app("1.0"), options()).unwrap();
    let next = image(2, &[4000]);
    reg.push_image("1.0", &next);
    clock.advance(Config::default().tag_ttl_ms + 1);
    reg.log.clear();
    let report = pull(&mut cache, &clock, &mut reg, app("1.0"), options()).unwrap();
    assert_eq!(
        report.tag,
        TagOutcome::Moved {
            previous: img.digest.clone()
        }
    );
    assert_eq!(reg.requests("HEAD", "/manifests/1.0"), 1);
    assert_eq!(
        reg.requests("GET", &format!("/manifests/{}", next.digest)),
        1
    );
    assert_stored(&mut cache, &next);
    let history: Vec<Digest> = cache
        .tag_history(&app("1.0"))
        .unwrap()
        .into_iter()
        .map(|h: TagHistoryEntry| h.digest)
        .collect();
    assert!(
        history.contains(&img.digest) && history.contains(&next.digest),
        "{history:?}"
    );
}

#[test]
fn an_unreachable_registry_serves_a_cached_tag_stale_and_fails_an_uncached_one() {
    let (mut cache, clock, mut reg, img) = setup(Config::default());
    pull(&mut cache, &clock, &mut reg, app("1.0"), options()).unwrap();
    clock.advance(Config::default().tag_ttl_ms + 1);
    reg.hook = Some(Box::new(|_, _| Reply::Refuse("connection refused")));
    let report = pull(&mut cache, &clock, &mut reg, app("1.0"), options()).unwrap();
    assert!(
        matches!(report.tag, TagOutcome::Stale { .. }),
        "{:?}",
        report.tag
    );
    assert_eq!(report.digest, img.digest);
    let e = pull(&mut cache, &clock, &mut reg, app("2.0"), options()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Network, "{e}");
    assert!(e.to_string().contains(REGISTRY), "{e}");
    // No answer: neither a status nor a registry code.
    assert!(
        matches!(&e, crate::Error::Network { registry, status: None, registry_code: None, .. } if registry == REGISTRY),
        "{e:?}"
    );
    let strict = PullOptions {
        allow_stale: false,
        ..options()
    };
    let e = pull(&mut cache, &clock, &mut reg, app("1.0"), strict).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Network);
    // 5xx after retries: the registry's own message, and the status.
    reg.hook = Some(Box::new(|_, _| {
        Reply::Respond(
            ResponseHead::new(503, &[]),
            br#"{"errors":[{"code":"UNAVAILABLE","message":"maintenance"}]}"#.to_vec(),
        )
    }));
    reg.log.clear();
    let report = pull(&mut cache, &clock, &mut reg, app("1.0"), options()).unwrap();
    // A HEAD carries no body: the status says it.
    assert!(
        matches!(&report.tag, TagOutcome::Stale { reason } if reason.contains("503")),
        "{:?}",
        report.tag
    );
    assert_eq!(
        reg.log.len(),
        options().max_attempts as usize,
        "bounded retries"
    );
    let e = pull(&mut cache, &clock, &mut reg, app("2.0"), options()).unwrap_err();
    assert!(
        matches!(&e, crate::Error::Network { status: Some(503), message, registry_code: Some(code), .. }
            if message.contains("maintenance") && code == "UNAVAILABLE"),
        "{e}"
    );
    // Another 4xx is not retried: its status and the registry's first code.
    reg.hook = Some(Box::new(|_, _| {
        Reply::Respond(
            ResponseHead::new(400, &[]),
            br#"{"errors":[{"message":"no code"},{"code":"NAME_INVALID","message":"bad name"}]}"#
                .to_vec(),
        )
    }));
    let e = pull(&mut cache, &clock, &mut reg, app("3.0"), options()).unwrap_err();
    assert!(
        matches!(&e, crate::Error::Network { status: Some(400), message, registry_code: Some(code), .. }
            if message.contains("bad name") && code == "NAME_INVALID"),
        "{e:?}"
    );
}

#[test]
fn offline_pulls_use_only_the_cache() {
    let (mut cache, clock, mut reg, _img) = setup(Config::default());
    let offline = PullOptions {
        offline: true,
        ..options()
    };
    let e = pull(&mut cache, &clock, &mut reg, app("1.0"), offline.clone()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Network);
    pull(&mut cache, &clock, &mut reg, app("1.0"), options()).unwrap();
    clock.advance(Config::default().tag_ttl_ms + 1);
    reg.log.clear();
    let report = pull(&mut cache, &clock, &mut reg, app("1.0"), offline).unwrap();
    assert!(matches!(report.tag, TagOutcome::Stale { .. }));
    assert!(reg.log.is_empty());
}

#[test]
fn bearer_tokens_are_fetched_once_per_scope_and_reused() {
    let (mut cache, clock, mut reg, img) = setup(Config::default());
    reg.auth = Auth::Bearer(None);
    let report = pull(&mut cache, &clock, &mut reg, app("1.0"), options()).unwrap();
    assert_stored(&mut cache, &img);
    assert_eq!(
        reg.issued_tokens, 1,
        "one anonymous token for the whole pull"
    );
    // One 401, one token request, then every request carries the token.
    assert_eq!(report.requests, 1 + 1 + 1 + 3);
    let authorized = reg
        .log
        .iter()
        .filter(|l| l.url.contains("/v2/"))
        .filter(|l| l.authorization.as_deref() == Some("Bearer tok1"))
        .count();
    assert_eq!(authorized, 4);
}

#[test]
fn bad_credentials_give_a_typed_error_naming_the_registry() {
    let (mut cache, clock, mut reg, _img) = setup(Config::default());
    reg.auth = Auth::Bearer(Some(("alice".into(), "right".into())));
    let mut opts = options();
    opts.credentials.insert(
        REGISTRY.into(),
        Credentials::Basic {
            username: "alice".into(),
            password: "wrong".into(),
        },
    );
    let e = pull(&mut cache, &clock, &mut reg, app("1.0"), opts.clone()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized, "{e}");
    assert!(e.to_string().contains(REGISTRY), "{e}");
    assert!(cache.contents().is_empty(), "nothing stored");
    opts.credentials.insert(
        REGISTRY.into(),
        Credentials::Basic {
            username: "alice".into(),
            password: "right".into(),
        },
    );
    pull(&mut cache, &clock, &mut reg, app("1.0"), opts).unwrap();
}

#[test]
fn basic_auth_sends_credentials_after_the_challenge_only_to_the_registry() {
    let (mut cache, clock, mut reg, img) = setup(Config::default());
    reg.auth = Auth::Basic("bob".into(), "pw".into());
    let e = pull(&mut cache, &clock, &mut reg, app("1.0"), options()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized);
    let mut opts = options();
    opts.credentials.insert(
        REGISTRY.into(),
        Credentials::Basic {
            username: "bob".into(),
            password: "pw".into(),
        },
    );
    let report = pull(&mut cache, &clock, &mut reg, app("1.0"), opts).unwrap();
    assert_stored(&mut cache, &img);
    assert_eq!(
        report.requests,
        1 + 1 + 3,
        "one challenge, then credentials every time"
    );
}

#[test]
fn redirects_are_followed_and_credentials_stay_with_their_origin() {
    let (mut cache, clock, mut reg, img) = setup(Config::default());
    reg.auth = Auth::Bearer(None);
    let mut cdn = FakeRegistry::new();
    cdn.base = "http://cdn.example".into();
    // The CDN serves blobs under the same paths, without auth.
    for b in &img.blobs {
        cdn.blobs.insert(sha(b), b.clone());
    }
    reg.hook = Some(Box::new(|req, _| {
        if req.url.contains("/blobs/") && req.header("authorization").is_some() {
            let path = &req.url[req.url.find("/v2/").unwrap()..];
            Reply::Respond(
                ResponseHead::new(307, &[("Location", &format!("http://cdn.example{path}"))]),
                Vec::new(),
            )
        } else {
            Reply::Normal
        }
    }));
    let mut p = Pull::new(app("1.0"), options());
    drive(&mut p, &mut cache, &clock, &mut [&mut reg, &mut cdn]).unwrap();
    assert_stored(&mut cache, &img);
    assert_eq!(cdn.log.len(), 3);
    assert!(
        cdn.log.iter().all(|l| l.authorization.is_none()),
        "no token to another origin"
    );
}

#[test]
fn too_many_requests_waits_as_long_as_retry_after_says() {
    let (mut cache, clock, mut reg, img) = setup(Config::default());
    reg.hook = Some(Box::new(|req, n| {
        if n == 1 {
            assert!(req.url.contains("/manifests/"));
            Reply::Respond(ResponseHead::new(429, &[("Retry-After", "7")]), Vec::new())
        } else {
            Reply::Normal
        }
    }));
    let start = T0;
    pull(&mut cache, &clock, &mut reg, app("1.0"), options()).unwrap();
    assert!(
        crate::Clock::now_millis(&clock) >= start + 7_000,
        "slept for Retry-After"
    );
    assert_stored(&mut cache, &img);
}

#[test]
fn a_broken_blob_download_resumes_with_range() {
    let (mut cache, clock, mut reg, img) = setup(Config::default());
    let big = sha(&img.blobs[2]);
    let big_url = format!("/blobs/{big}");
    let mut cut = false;
    reg.hook = Some(Box::new(move |req, _| {
        if req.url.ends_with(&big_url) && !cut {
            cut = true;
            Reply::CutAfter(2000)
        } else {
            Reply::Normal
        }
    }));
    let report = pull(&mut cache, &clock, &mut reg, app("1.0"), options()).unwrap();
    let ranged: Vec<_> = reg.log.iter().filter(|l| l.range.is_some()).collect();
    assert_eq!(ranged.len(), 1);
    assert_eq!(ranged[0].range.as_deref(), Some("bytes=2000-"));
    let b = report.blobs.iter().find(|b| b.digest == big).unwrap();
    assert_eq!((b.resumed_from, b.fetched), (Some(2000), 5000));
    assert_stored(&mut cache, &img);
}

#[test]
fn a_registry_that_ignores_range_makes_the_download_start_over() {
    let (mut cache, clock, mut reg, img) = setup(Config::default());
    let big = sha(&img.blobs[2]);
    let big_url = format!("/blobs/{big}");
    let mut calls = 0;
    reg.hook = Some(Box::new(move |req, _| {
        if req.url.ends_with(&big_url) {
            calls += 1;
            if calls == 1 {
                return Reply::CutAfter(2000);
            }
            return Reply::IgnoreRange;
        }
        Reply::Normal
    }));
    let report = pull(&mut cache, &clock, &mut reg, app("1.0"), options()).unwrap();
    let b = report.blobs.iter().find(|b| b.digest == big).unwrap();
    assert_eq!((b.resumed_from, b.fetched), (None, 7000));
    assert_stored(&mut cache, &img);
}

#[test]
fn a_flipped_byte_is_a_digest_mismatch_and_nothing_half_pulled_is_visible() {
    let (mut cache, clock, mut reg, img) = setup(Config::default());
    let last = sha(&img.blobs[2]);
    let url = format!("/blobs/{last}");
    reg.hook = Some(Box::new(move |req, _| {
        if req.url.ends_with(&url) {
            Reply::Flip(100)
        } else {
            Reply::Normal
        }
    }));
    let e = pull(&mut cache, &clock, &mut reg, app("1.0"), options()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::DigestMismatch, "{e}");
    assert!(!cache.has_blob(&last), "the bad blob is not stored");
    assert!(
        !cache.has_manifest(&img.digest),
        "no manifest over a missing blob"
    );
    assert!(!cache.has_tag(&app("1.0")), "the tag is not recorded");
    assert!(
        cache.contents().iter().all(|e| e.pins == 0),
        "pins released"
    );
}

#[test]
fn manifests_are_checked_against_the_header_and_the_digest_asked_for() {
    let (mut cache, clock, mut reg, img) = setup(Config::default());
    // A wrong Docker-Content-Digest.
    let lie = sha(b"something else");
    reg.hook = Some(Box::new(move |req, _| {
        if req.url.contains("/manifests/") {
            let m = image(1, &[3000, 5000]).manifest;
            Reply::Respond(
                ResponseHead::new(
                    200,
                    &[
                        ("Content-Type", OCI_MANIFEST),
                        ("Docker-Content-Digest", &lie.to_string()),
                    ],
                ),
                m,
            )
        } else {
            Reply::Normal
        }
    }));
    let e = pull(&mut cache, &clock, &mut reg, app("1.0"), options()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::DigestMismatch);
    // A manifest whose digest differs from the reference's.
    let other = image(9, &[10]);
    reg.hook = Some(Box::new(move |req, _| {
        if req.url.contains("/manifests/") {
            Reply::Respond(
                ResponseHead::new(200, &[("Content-Type", OCI_MANIFEST)]),
                other.manifest.clone(),
            )
        } else {
            Reply::Normal
        }
    }));
    let by_digest: Reference = format!("{REGISTRY}/app@{}", img.digest).parse().unwrap();
    let e = pull(&mut cache, &clock, &mut reg, by_digest, options()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::DigestMismatch);
    assert!(cache.contents().is_empty());
}

#[test]
fn an_oversize_manifest_is_refused_before_and_while_reading() {
    let (mut cache, clock, mut reg, _img) = setup(Config::default());
    let opts = PullOptions {
        max_manifest_bytes: 100,
        ..options()
    };
    let e = pull(&mut cache, &clock, &mut reg, app("1.0"), opts.clone()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TooLarge);
    // Without Content-Length: counted while reading.
    reg.hook = Some(Box::new(|req, _| {
        if req.url.contains("/manifests/") {
            Reply::Respond(ResponseHead::new(200, &[]), vec![b' '; 5000])
        } else {
            Reply::Normal
        }
    }));
    let e = pull(&mut cache, &clock, &mut reg, app("1.0"), opts).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TooLarge);
}

#[test]
fn an_index_gives_the_requested_platform_or_every_one() {
    let (mut cache, clock, mut reg, amd) = setup(Config::default());
    let arm = image(5, &[1500]);
    reg.push_image("arm-only", &arm);
    let idx = index(&[
        (&amd, "linux", "amd64", None),
        (&arm, "linux", "arm", Some("v7")),
    ]);
    reg.push_manifest(&idx, OCI_INDEX);
    reg.manifests
        .insert("multi".into(), (idx.clone(), OCI_INDEX.into()));
    let report = pull(&mut cache, &clock, &mut reg, app("multi"), options()).unwrap();
    assert_eq!(report.digest, sha(&idx));
    assert_eq!(report.media_type, OCI_INDEX);
    assert_eq!(report.manifests.len(), 2);
    assert_eq!(report.manifests[1].platform.as_deref(), Some("linux/amd64"));
    assert_stored(&mut cache, &amd);
    assert!(
        !cache.has_manifest(&arm.digest),
        "only the requested platform"
    );
    let all = PullOptions {
        platform: PlatformChoice::All,
        ..options()
    };
    let by_digest: Reference = format!("{REGISTRY}/app@{}", sha(&idx)).parse().unwrap();
    reg.log.clear();
    let report = pull(&mut cache, &clock, &mut reg, by_digest, all).unwrap();
    assert_eq!(report.tag, TagOutcome::Digest);
    assert_stored(&mut cache, &arm);
    assert_eq!(reg.requests("GET", "/blobs/"), 2, "only what was missing");
    let s390 = PullOptions {
        platform: PlatformChoice::One(Platform::parse("linux/s390x").unwrap()),
        ..options()
    };
    let e = pull(&mut cache, &clock, &mut reg, app("multi"), s390).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(e.to_string().contains("linux/arm"), "{e}");
}

#[test]
fn a_pull_that_cannot_fit_fails_full_and_changes_nothing() {
    let config = Config {
        max_bytes: 6_000,
        ..Config::default()
    };
    let (mut cache, clock, mut reg, _img) = setup(config);
    let keep = cache.put_blob(None, &content(77, 1000)).unwrap();
    cache.pin(&Key::blob(keep.clone())).unwrap();
    let before = cache.contents();
    let e = pull(&mut cache, &clock, &mut reg, app("1.0"), options()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Full, "{e}");
    assert_eq!(cache.contents(), before, "the cache is as it was");
    assert_eq!(
        reg.requests("GET", "/blobs/"),
        0,
        "no blob was even asked for"
    );
}

#[test]
fn mirrors_are_tried_first_and_fall_back_to_the_registry() {
    let (mut cache, clock, mut reg, img) = setup(Config::default());
    let mut mirror = FakeRegistry::new();
    mirror.base = "http://127.0.0.1:6000".into();
    mirror.push_image("1.0", &img);
    let mut opts = options();
    opts.route.mirrors = vec!["http://127.0.0.1:6000".into()];
    let mut p = Pull::new(app("1.0"), opts.clone());
    drive(&mut p, &mut cache, &clock, &mut [&mut mirror, &mut reg]).unwrap();
    assert_eq!(mirror.log.len(), 4);
    assert!(reg.log.is_empty(), "everything came from the mirror");
    // A mirror that serves bad bytes, then one that is down: the registry serves.
    let mut cache2 = Cache::builder(MemoryStorage::new(), clock.clone())
        .open()
        .unwrap();
    let bad = sha(&img.blobs[1]);
    mirror.hook = Some(Box::new(move |req, _| {
        if req.url.ends_with(&bad.to_string()) {
            Reply::Flip(0)
        } else {
            Reply::Normal
        }
    }));
    let mut p = Pull::new(app("1.0"), opts.clone());
    drive(&mut p, &mut cache2, &clock, &mut [&mut mirror, &mut reg]).unwrap();
    assert_stored(&mut cache2, &img);
    assert_eq!(
        reg.requests("GET", "/blobs/"),
        1,
        "only the bad blob from the registry"
    );
    let mut cache3 = Cache::builder(MemoryStorage::new(), clock.clone())
        .open()
        .unwrap();
    mirror.hook = Some(Box::new(|_, _| Reply::Refuse("connection refused")));
    mirror.log.clear();
    let mut p = Pull::new(app("1.0"), opts);
    drive(&mut p, &mut cache3, &clock, &mut [&mut mirror, &mut reg]).unwrap();
    assert_stored(&mut cache3, &img);
    assert_eq!(
        mirror.log.len(),
        1,
        "a failing mirror is asked once, then never again in the pull"
    );
}

#[test]
fn a_loopback_registry_falls_back_to_plain_http_and_others_never_do() {
    let (mut cache, clock, mut reg, img) = setup(Config::default());
    reg.base = format!("http://{REGISTRY}");
    // The fake answers only http://; the first https attempt is refused.
    let report = pull(&mut cache, &clock, &mut reg, app("1.0"), options()).unwrap();
    assert_stored(&mut cache, &img);
    assert_eq!(
        report.requests, 5,
        "one refused TLS attempt, then plain HTTP throughout"
    );
    let e = pull(
        &mut cache,
        &clock,
        &mut reg,
        "registry.example/app:1.0".parse().unwrap(),
        options(),
    )
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Network);
}

#[test]
fn layers_download_concurrently_up_to_the_limit() {
    let (mut cache, _clock, mut reg, img) = setup(Config::default());
    let mut p: Pull<crate::cache::BlobWriter> = Pull::new(
        app("1.0"),
        PullOptions {
            max_concurrent: 2,
            ..options()
        },
    );
    let Action::Send(m) = p.poll(&mut cache).unwrap() else {
        panic!()
    };
    let (head, body) = reg.answer(&m);
    assert!(p.on_head(&mut cache, m.id, head));
    p.on_body(&mut cache, m.id, &body);
    p.on_end(&mut cache, m.id);
    let mut in_flight = Vec::new();
    loop {
        match p.poll(&mut cache).unwrap() {
            Action::Send(r) => in_flight.push(r),
            Action::Wait => break,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(in_flight.len(), 2, "two blobs at once, the third waits");
    // Answer them in reverse order, with interleaved chunks.
    let answers: Vec<_> = in_flight.iter().map(|r| (r.id, reg.answer(r))).collect();
    for (id, (head, _)) in answers.iter().rev() {
        assert!(p.on_head(&mut cache, *id, head.clone()));
    }
    for (id, (_, body)) in answers.iter().rev() {
        p.on_body(&mut cache, *id, body);
        p.on_end(&mut cache, *id);
    }
    let Action::Send(third) = p.poll(&mut cache).unwrap() else {
        panic!()
    };
    let (head, body) = reg.answer(&third);
    assert!(p.on_head(&mut cache, third.id, head));
    p.on_body(&mut cache, third.id, &body);
    p.on_end(&mut cache, third.id);
    let Action::Done(report) = p.poll(&mut cache).unwrap() else {
        panic!()
    };
    assert_eq!(report.blobs.len(), 3);
    assert_stored(&mut cache, &img);
}

#[test]
fn a_blob_another_process_stored_meanwhile_is_taken_from_the_cache() {
    let (mut cache, _clock, mut reg, img) = setup(Config::default());
    let mut p: Pull<crate::cache::BlobWriter> = Pull::new(
        app("1.0"),
        PullOptions {
            max_concurrent: 1,
            ..options()
        },
    );
    let mut skipped = 0;
    loop {
        match p.poll(&mut cache).unwrap() {
            Action::Send(req) => {
                if let Purpose::Blob { digest, .. } = &req.purpose {
                    // The host's per-digest lock was held by another process, which stored it.
                    let bytes = reg.blobs[digest].clone();
                    cache.put_blob(Some(digest), &bytes).unwrap();
                    p.on_stored(&mut cache, req.id);
                    skipped += 1;
                    continue;
                }
                let (head, body) = reg.answer(&req);
                if p.on_head(&mut cache, req.id, head) {
                    p.on_body(&mut cache, req.id, &body);
                    p.on_end(&mut cache, req.id);
                }
            }
            Action::Done(report) => {
                assert_eq!(skipped, 3);
                assert!(
                    report
                        .blobs
                        .iter()
                        .all(|b| b.from_cache == b.size && b.fetched == 0)
                );
                assert_eq!(report.requests, 1, "only the manifest went out");
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_stored(&mut cache, &img);
    assert!(cache.contents().iter().all(|e| e.pins == 0));
}

mod hostile {
    //! A registry that answers anything: the pull ends (done or a typed error) within a bounded
    //! number of requests, never panics, and never stores what does not verify.
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    struct Answer {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        /// A transport failure instead.
        refuse: bool,
        /// Answer honestly instead (so that pulls get deep into the graph).
        honest: bool,
    }

    fn header() -> impl Strategy<Value = (String, String)> {
        let names = prop::sample::select(vec![
            "WWW-Authenticate",
            "Location",
            "Content-Range",
            "Content-Length",
            "Docker-Content-Digest",
            "Content-Type",
            "Retry-After",
        ]);
        let values = prop_oneof![
            Just(r#"Bearer realm="https://t.example/token",service="s""#.to_owned()),
            Just(r#"Basic realm="x""#.to_owned()),
            Just("https://127.0.0.1:5000/v2/app/blobs/x".to_owned()),
            Just("//evil.example/x".to_owned()),
            Just("bytes 5-9/10".to_owned()),
            Just("99999999999999999999".to_owned()),
            Just(OCI_MANIFEST.to_owned()),
            Just("sha256:00".to_owned()),
            ".{0,40}",
        ];
        (names, values).prop_map(|(n, v)| (n.to_owned(), v))
    }

    fn answer() -> impl Strategy<Value = Answer> {
        (
            prop::sample::select(vec![
                200u16, 206, 301, 307, 400, 401, 403, 404, 416, 429, 500, 503,
            ]),
            prop::collection::vec(header(), 0..4),
            prop::collection::vec(any::<u8>(), 0..64),
            prop::bool::weighted(0.1),
            prop::bool::weighted(0.5),
        )
            .prop_map(|(status, headers, body, refuse, honest)| Answer {
                status,
                headers,
                body,
                refuse,
                honest,
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]
        #[test]
        fn any_answers_end_the_pull_without_panic_or_unverified_content(
            answers in prop::collection::vec(answer(), 1..40),
            by_digest in any::<bool>(),
        ) {
            let (mut cache, clock, mut reg, img) = setup(Config::default());
            reg.auth = Auth::None;
            let mut script = answers.into_iter();
            let reference = if by_digest {
                format!("{REGISTRY}/app@{}", img.digest).parse().unwrap()
            } else {
                app("1.0")
            };
            let mut p: Pull<crate::cache::BlobWriter> = Pull::new(reference, PullOptions { max_concurrent: 1, ..options() });
            let mut outcome = None;
            for _ in 0..500 {
                match p.poll(&mut cache) {
                    Err(e) => { outcome = Some(Err(e)); break; }
                    Ok(Action::Done(r)) => { outcome = Some(Ok(r)); break; }
                    Ok(Action::Sleep { until, .. }) => clock.set(until),
                    Ok(Action::Wait) => panic!("waits with nothing in flight"),
                    Ok(Action::Send(req)) => {
                        let a = script.next();
                        let (head, body) = match a {
                            Some(a) if a.refuse => { p.on_error(&mut cache, req.id, "refused"); continue; }
                            Some(a) if !a.honest => (ResponseHead { status: a.status, headers: a.headers }, a.body),
                            _ => reg.answer(&req),
                        };
                        if p.on_head(&mut cache, req.id, head) {
                            // Stopped early or not, the host reports the end.
                            p.on_body(&mut cache, req.id, &body);
                            p.on_end(&mut cache, req.id);
                        }
                    }
                }
            }
            prop_assert!(outcome.is_some(), "the pull ended within 500 steps");
            // Whatever happened, everything stored verifies, and nothing stays pinned.
            let report = cache.check_integrity().unwrap();
            prop_assert!(report.healthy, "{report:?}");
            prop_assert!(cache.contents().iter().all(|e| e.pins == 0));
            if let Some(Ok(r)) = outcome {
                prop_assert_eq!(&r.digest, &img.digest);
                assert_stored(&mut cache, &img);
            }
        }
    }
}

#[test]
fn a_blob_body_that_ends_short_is_a_break_resumed_with_range() {
    let (mut cache, clock, mut reg, img) = setup(Config::default());
    let big = sha(&img.blobs[2]);
    let big_url = format!("/blobs/{big}");
    let mut first = true;
    reg.hook = Some(Box::new(move |req, _| {
        if req.url.ends_with(&big_url) && first {
            first = false;
            Reply::Short(1234)
        } else {
            Reply::Normal
        }
    }));
    let report = pull(&mut cache, &clock, &mut reg, app("1.0"), options()).unwrap();
    let b = report.blobs.iter().find(|b| b.digest == big).unwrap();
    assert_eq!(b.resumed_from, Some(1234));
    assert!(
        reg.log
            .iter()
            .any(|l| l.range.as_deref() == Some("bytes=1234-"))
    );
    assert_stored(&mut cache, &img);
}

#[test]
fn a_host_that_slept_by_its_own_clock_finds_the_retry_due() {
    let (mut cache, _clock, mut reg, img) = setup(Config::default());
    let mut p: Pull<crate::cache::BlobWriter> = Pull::new(app("1.0"), options());
    let Action::Send(first) = p.poll(&mut cache).unwrap() else {
        panic!()
    };
    let busy = ResponseHead::new(429, &[("Retry-After", "30")]);
    assert!(p.on_head(&mut cache, first.id, busy));
    p.on_end(&mut cache, first.id);
    // The cache's clock does not move (simulated time); the host sleeps 30 s by its own.
    assert!(matches!(p.poll(&mut cache).unwrap(), Action::Sleep { .. }));
    assert!(matches!(p.poll(&mut cache).unwrap(), Action::Sleep { .. }));
    p.slept();
    let Action::Send(again) = p.poll(&mut cache).unwrap() else {
        panic!("due after slept()")
    };
    assert_eq!(again.url, first.url);
    let (head, body) = reg.answer(&again);
    assert!(p.on_head(&mut cache, again.id, head));
    p.on_body(&mut cache, again.id, &body);
    p.on_end(&mut cache, again.id);
    let mut p2 = p;
    let report = loop {
        match p2.poll(&mut cache).unwrap() {
            Action::Send(r) => {
                let (head, body) = reg.answer(&r);
                if p2.on_head(&mut cache, r.id, head) {
                    p2.on_body(&mut cache, r.id, &body);
                    p2.on_end(&mut cache, r.id);
                }
            }
            Action::Done(r) => break r,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(report.digest, img.digest);
}

#[test]
fn a_graph_that_fits_only_by_evicting_its_own_cached_part_is_full_and_writes_nothing() {
    let config = Config {
        max_bytes: 6_000,
        high_watermark_percent: 100,
        low_watermark_percent: 100,
        ..Config::default()
    };
    let clock = ManualClock::new(T0);
    let storage = MemoryStorage::new();
    let mut cache = Cache::builder(storage.clone(), clock.clone())
        .config(config)
        .open()
        .unwrap();
    let mut reg = FakeRegistry::new();
    let img = image(1, &[3000, 5000]);
    reg.push_image("1.0", &img);
    // The cache already holds the 3000-byte layer: the rest fits only if it were evicted,
    // which the pull must not count on (it keeps its own graph).
    cache.put_blob(None, &img.blobs[1]).unwrap();
    cache.flush().unwrap();
    let before: Vec<(String, Vec<u8>)> = storage
        .paths()
        .into_iter()
        .map(|p| {
            let bytes = storage.get(&p).unwrap_or_default();
            (p, bytes)
        })
        .collect();
    let e = pull(&mut cache, &clock, &mut reg, app("1.0"), options()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Full, "{e}");
    assert_eq!(reg.requests("GET", "/blobs/"), 0);
    cache.flush().unwrap();
    let after: Vec<(String, Vec<u8>)> = storage
        .paths()
        .into_iter()
        .map(|p| {
            let bytes = storage.get(&p).unwrap_or_default();
            (p, bytes)
        })
        .collect();
    assert_eq!(before, after, "not even a pin record");
}

#[test]
fn a_download_broken_in_one_pull_resumes_with_range_in_a_later_process() {
    let clock = ManualClock::new(T0);
    let storage = MemoryStorage::new();
    let mut reg = FakeRegistry::new();
    let img = image(1, &[3000, 5000]);
    reg.push_image("1.0", &img);
    let big = sha(&img.blobs[2]);
    let big_url = format!("/blobs/{big}");
    let mut cut = false;
    reg.hook = Some(Box::new(move |req, _| {
        if req.url.ends_with(&big_url) && !cut {
            cut = true;
            Reply::CutAfter(2000)
        } else {
            Reply::Normal
        }
    }));
    // This pull gives up at the break (one attempt); what arrived is kept.
    let mut cache = Cache::builder(storage.clone(), clock.clone())
        .open()
        .unwrap();
    let once = PullOptions {
        max_attempts: 1,
        ..options()
    };
    let e = pull(&mut cache, &clock, &mut reg, app("1.0"), once).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Network, "{e}");
    assert!(!cache.has_blob(&big));
    assert_eq!(
        storage
            .get(&crate::layout::partial_path(&big))
            .map(|b| b.len()),
        Some(2000),
        "the partial is kept"
    );
    drop(cache);
    // A later process continues it where the bytes stopped.
    reg.log.clear();
    let mut cache = Cache::builder(storage.clone(), clock.clone())
        .open()
        .unwrap();
    let report = pull(&mut cache, &clock, &mut reg, app("1.0"), options()).unwrap();
    let ranged: Vec<_> = reg
        .log
        .iter()
        .filter(|l| l.url.ends_with(&format!("/blobs/{big}")))
        .map(|l| l.range.clone())
        .collect();
    assert_eq!(ranged, [Some("bytes=2000-".to_owned())]);
    let b = report.blobs.iter().find(|b| b.digest == big).unwrap();
    assert_eq!((b.resumed_from, b.fetched), (Some(2000), 3000));
    assert_stored(&mut cache, &img);
    assert_eq!(
        storage.get(&crate::layout::partial_path(&big)),
        None,
        "committed: no partial left"
    );
}

#[test]
fn a_kept_partial_with_wrong_bytes_never_reaches_the_cache() {
    let clock = ManualClock::new(T0);
    let storage = MemoryStorage::new();
    let mut reg = FakeRegistry::new();
    let img = image(1, &[3000, 5000]);
    reg.push_image("1.0", &img);
    let big = sha(&img.blobs[2]);
    // A partial whose bytes are not the blob's (damaged, or planted).
    storage.put(&crate::layout::partial_path(&big), &vec![0xee; 2000]);
    let mut cache = Cache::builder(storage.clone(), clock.clone())
        .open()
        .unwrap();
    let e = pull(&mut cache, &clock, &mut reg, app("1.0"), options()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::DigestMismatch, "{e}");
    assert!(!cache.has_blob(&big));
    assert_eq!(
        storage.get(&crate::layout::partial_path(&big)),
        None,
        "bytes that failed verification are not kept"
    );
    // The next pull starts the blob over and succeeds.
    pull(&mut cache, &clock, &mut reg, app("1.0"), options()).unwrap();
    assert_stored(&mut cache, &img);
}

#[test]
fn cleanup_removes_the_partials_nobody_continues_and_keeps_the_one_in_use() {
    let storage = MemoryStorage::new();
    let clock = ManualClock::new(T0);
    let mut cache = Cache::builder(storage.clone(), clock.clone())
        .open()
        .unwrap();
    let (idle, busy) = (content(1, 4000), content(2, 4000));
    let (di, db) = (sha(&idle), sha(&busy));
    // One kept by a pull that broke, one being written now.
    let mut w = cache.resume_blob(&di, Some(4000)).unwrap().unwrap();
    cache.write_blob(&mut w, &idle[..1000]).unwrap();
    cache.keep_blob(w);
    let mut open = cache.resume_blob(&db, Some(4000)).unwrap().unwrap();
    cache.write_blob(&mut open, &busy[..1000]).unwrap();
    // A name the core never writes is left alone.
    storage.put("partials/sha256/not-a-digest", b"x");
    cache.cleanup().unwrap();
    assert_eq!(storage.get(&crate::layout::partial_path(&di)), None);
    assert!(storage.get("partials/sha256/not-a-digest").is_some());
    cache.write_blob(&mut open, &busy[1000..]).unwrap();
    assert_eq!(
        cache.commit_blob(open).unwrap(),
        db,
        "the one in use was left alone"
    );
}
