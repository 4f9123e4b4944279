//! `Cache::pull` and `ocicache pull` against real registries (Debian's `docker-registry`,
//! CNCF distribution 2.8, started on loopback by `ocicache-registry-harness`, filled with
//! skopeo): each case asserts that the cache serves exactly the bytes the registry holds, and
//! on the registry's request log (the harness's recording forwarder sees every request, with
//! its status and `Range`).
//!
//! Every test starts its own registries on free loopback ports, so tests run in parallel. The
//! machine needs Debian's `docker-registry`, `skopeo` and `openssl` (installed by `.ci/run`).
//! Tests that move time use a [`ManualClock`]; as retry delays are measured on the cache's
//! clock, those tests allow one attempt per request where a retry could happen.

mod common;

use common::{State, outcome};
use ocicache::pull::{
    Credentials, HttpClient, HttpClientOptions, NoProgress, Platform, PlatformChoice, PullOptions,
    PullReport, TagOutcome,
};
use ocicache::{Cache, Config, Digest, EngineKind, ErrorKind, ManualClock, Reference, Resolution};
use ocicache_registry_harness::layouts::{Built, Image, ImageSpec, Layout};
use ocicache_registry_harness::{Fault, Registry, TokenServer, push};
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Small layers: a test moves a few dozen KiB.
const SIZES: [u64; 2] = [3_000, 40_000];

/// A wall clock far from zero, so that TTLs count from a plausible time.
const T0: u64 = 1_800_000_000_000;

/// Default tag freshness window (5 min), past which a tag is stale.
const TAG_TTL_MS: u64 = 5 * 60_000;

// ----- helpers -----

/// A registry holding what one layout built, and the layout (for the blobs' bytes).
struct Published {
    registry: Registry,
    layout: Layout,
    built: Built,
    /// `repo:tag` in the registry.
    name: String,
}

impl Published {
    /// `127.0.0.1:PORT/repo:tag`.
    fn reference(&self) -> Reference {
        reference(&self.registry.reference(&self.name))
    }

    /// `/v2/REPO/` (for counting requests).
    fn repo_path(&self) -> String {
        format!("/v2/{}/", self.name.split(':').next().unwrap())
    }

    fn blob_gets(&self) -> usize {
        self.registry
            .count("GET", &format!("{}blobs/", self.repo_path()))
    }

    fn blob_bytes(&self, digest: &str) -> Vec<u8> {
        std::fs::read(self.layout.blob_path(digest)).unwrap()
    }
}

/// Builds with `build` into a new layout and pushes it to `registry` as `name`.
fn publish(registry: Registry, name: &str, build: impl FnOnce(&mut Layout) -> Built) -> Published {
    let mut layout = Layout::new().unwrap();
    let built = build(&mut layout);
    push(layout.dir(), &built.layout_ref, &registry, name, None).unwrap();
    registry.clear_requests();
    Published {
        registry,
        layout,
        built,
        name: name.to_string(),
    }
}

/// An anonymous registry holding a single-arch image (`seed`) as `name`.
fn single_arch(name: &str, seed: u64) -> Published {
    publish(Registry::start_anonymous().unwrap(), name, |l| {
        l.image("v1", &ImageSpec::new(seed, &SIZES)).unwrap()
    })
}

fn reference(s: &str) -> Reference {
    s.parse().unwrap()
}

fn digest(s: &str) -> Digest {
    Digest::parse(s).unwrap()
}

fn open(dir: &Path, engine: EngineKind) -> Cache {
    Cache::builder(dir).engine(engine).open().unwrap()
}

fn open_at(dir: &Path, engine: EngineKind, clock: &ManualClock) -> Cache {
    Cache::builder(dir)
        .engine(engine)
        .clock(clock.clone())
        .open()
        .unwrap()
}

/// linux/amd64, quick retries.
fn options() -> PullOptions {
    PullOptions {
        platform: PlatformChoice::One(Platform::parse("linux/amd64").unwrap()),
        retry_base_ms: 10,
        ..PullOptions::default()
    }
}

/// Asserts that the cache holds `built`'s top manifest and, of its images, exactly `taken`,
/// each manifest, config and layer byte for byte as the registry got them; the images not
/// taken are not stored.
fn assert_holds(cache: &Cache, p: &Published, taken: &[&Image]) {
    let built = &p.built;
    let top = cache.get_manifest(&digest(built.digest())).unwrap();
    assert_eq!(top.bytes, built.top.bytes, "top manifest bytes");
    assert_eq!(top.media_type.as_str(), built.media_type());
    for image in &built.images {
        let wanted = taken.iter().any(|t| t.manifest == image.manifest);
        let manifest = digest(&image.manifest.blob.digest);
        if wanted {
            let got = cache.get_manifest(&manifest).unwrap();
            assert_eq!(got.bytes, image.manifest.bytes, "manifest bytes");
            let config = cache.get_blob(&digest(&image.config.blob.digest)).unwrap();
            assert_eq!(config, image.config.bytes, "config bytes");
            for layer in &image.layers {
                let got = cache.get_blob(&digest(&layer.digest)).unwrap();
                assert_eq!(got.len() as u64, layer.size);
                assert_eq!(got, p.blob_bytes(&layer.digest), "layer bytes");
            }
        } else {
            assert!(!cache.has_manifest(&manifest).unwrap(), "not taken");
            for layer in &image.layers {
                assert!(
                    !cache.has_blob(&digest(&layer.digest)).unwrap(),
                    "not taken"
                );
            }
        }
    }
}

/// The blobs of `images` (configs and layers), each once.
fn blobs_of(images: &[&Image]) -> Vec<String> {
    let mut out = Vec::new();
    for image in images {
        for d in
            std::iter::once(&image.config.blob.digest).chain(image.layers.iter().map(|l| &l.digest))
        {
            if !out.contains(d) {
                out.push(d.clone());
            }
        }
    }
    out
}

/// Asserts the report lists exactly `blobs`, each fetched in full.
fn assert_fetched(report: &PullReport, blobs: &[String]) {
    let mut listed: Vec<String> = report.blobs.iter().map(|b| b.digest.to_string()).collect();
    let mut want = blobs.to_vec();
    listed.sort();
    want.sort();
    assert_eq!(listed, want, "blobs in the report");
    for b in &report.blobs {
        assert_eq!((b.fetched, b.from_cache), (b.size, 0), "{}", b.digest);
    }
}

/// `ocicache --dir DIR ARGS…`, isolated from this machine's login files.
fn cli(dir: &Path, args: &[&str]) -> Output {
    cli_command(dir, args).output().expect("spawn ocicache")
}

fn cli_command(dir: &Path, args: &[&str]) -> Command {
    let home = dir.with_extension("home");
    std::fs::create_dir_all(&home).unwrap();
    let mut command = Command::new(common::bin());
    command
        .arg("--dir")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .env("HOME", &home)
        // The compiled component, shared by every run of this build (compiling it is slow).
        .env("OCICACHE_COMPILED_DIR", compiled_dir())
        .env_remove("DOCKER_CONFIG")
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("XDG_CONFIG_HOME");
    command
}

/// Where the CLI keeps the compiled component: the caller's choice, else beside the build.
fn compiled_dir() -> std::path::PathBuf {
    std::env::var_os("OCICACHE_COMPILED_DIR")
        .map(Into::into)
        .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("ocicache-compiled"))
}

/// The `--json` report of a successful CLI pull.
fn json_report(o: &Output) -> serde_json::Value {
    let (code, out, err) = outcome(o);
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    serde_json::from_str(&out).unwrap()
}

// ----- 1. a cold pull stores everything, verified -----

#[test]
fn cold_pull_of_a_single_arch_image_stores_every_byte_on_each_engine() {
    let p = single_arch("team/app:1.0", 1);
    let image = &p.built.images[0];
    for engine in [EngineKind::Native, EngineKind::Component] {
        p.registry.clear_requests();
        let dir = tempfile::tempdir().unwrap();
        let cache = open(dir.path(), engine);
        let report = cache.pull(&p.reference(), options()).unwrap();
        assert_eq!(report.digest.to_string(), p.built.digest());
        assert_eq!(report.tag, TagOutcome::Fetched);
        assert_fetched(&report, &blobs_of(&[image]));
        assert_holds(&cache, &p, &[image]);
        assert_eq!(
            cache.resolve_tag(&p.reference()).unwrap(),
            Resolution::Fresh(digest(p.built.digest()))
        );
        // One GET of the manifest by tag, one GET per blob, nothing else.
        let repo = p.repo_path();
        assert_eq!(p.registry.count("GET", &format!("{repo}manifests/1.0")), 1);
        for blob in blobs_of(&[image]) {
            assert_eq!(p.registry.count("GET", &format!("{repo}blobs/{blob}")), 1);
        }
        assert_eq!(p.blob_gets(), 3, "{engine:?}");
        assert_eq!(p.registry.count("HEAD", "/"), 0);
        // The pull counts one request more than the registry saw: its first try of a
        // loopback registry is HTTPS, which fails before any request, then plain HTTP.
        assert_eq!(report.requests as usize, p.registry.requests().len() + 1);
        assert_eq!(cache.stats().unwrap().pinned_entries, 0, "the pull's pins");
        cache.close().unwrap();
    }
}

#[test]
fn cold_pull_of_a_multi_arch_index_takes_one_platform_or_all() {
    let p = publish(Registry::start_anonymous().unwrap(), "multi/app:2", |l| {
        l.multi_arch("v1", &ImageSpec::new(3, &SIZES)).unwrap()
    });
    let reference = p.registry.reference(&p.name);
    let arm64 = p.built.image_for("linux/arm64").unwrap();

    // One platform: the index, that image's manifest and blobs, nothing of the others.
    let dir = tempfile::tempdir().unwrap();
    let report = json_report(&cli(
        dir.path(),
        &["--json", "pull", &reference, "--platform", "linux/arm64"],
    ));
    assert_eq!(report["digest"], p.built.digest());
    assert_eq!(report["tag"]["state"], "fetched");
    let platforms: Vec<&str> = report["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"].as_str().unwrap_or("-"))
        .collect();
    assert_eq!(platforms, ["-", "linux/arm64"]);
    let repo = p.repo_path();
    assert_eq!(p.registry.count("GET", &format!("{repo}manifests/")), 2);
    for blob in blobs_of(&[arm64]) {
        assert_eq!(p.registry.count("GET", &format!("{repo}blobs/{blob}")), 1);
    }
    assert_eq!(p.blob_gets(), 3);
    let cache = open(dir.path(), EngineKind::Component);
    assert_holds(&cache, &p, &[arm64]);
    cache.close().unwrap();

    // Then every platform into the same cache: only what it lacks (the tag is fresh).
    p.registry.clear_requests();
    let report = json_report(&cli(
        dir.path(),
        &["--json", "pull", &reference, "--all-platforms"],
    ));
    assert_eq!(report["tag"]["state"], "fresh");
    assert_eq!(p.registry.count("GET", &format!("{repo}manifests/")), 2);
    assert_eq!(p.registry.count("HEAD", "/"), 0);
    assert_eq!(p.blob_gets(), 6);
    for blob in blobs_of(&[arm64]) {
        assert_eq!(p.registry.count("GET", &format!("{repo}blobs/{blob}")), 0);
    }
    let cache = open(dir.path(), EngineKind::Native);
    assert_holds(&cache, &p, &p.built.images.iter().collect::<Vec<_>>());
    cache.close().unwrap();

    // Every platform.
    p.registry.clear_requests();
    let dir = tempfile::tempdir().unwrap();
    let report = json_report(&cli(
        dir.path(),
        &["--json", "pull", &reference, "--all-platforms"],
    ));
    let all: Vec<&Image> = p.built.images.iter().collect();
    assert_eq!(report["manifests"].as_array().unwrap().len(), 4);
    assert_eq!(report["blobs"].as_array().unwrap().len(), 9);
    assert_eq!(p.registry.count("GET", &format!("{repo}manifests/")), 4);
    assert_eq!(p.blob_gets(), 9);
    let cache = open(dir.path(), EngineKind::Native);
    assert_holds(&cache, &p, &all);
    cache.close().unwrap();

    // config.json's platform, when no flag names one.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.json"),
        r#"{"platform": "linux/arm/v7"}"#,
    )
    .unwrap();
    json_report(&cli(dir.path(), &["--json", "pull", &reference]));
    let cache = open(dir.path(), EngineKind::Native);
    assert_holds(&cache, &p, &[p.built.image_for("linux/arm/v7").unwrap()]);
}

#[test]
fn cold_pull_of_an_artifact_keeps_its_artifact_type_and_layer_media_type() {
    let artifact_type = "application/vnd.example.sbom.v1";
    let layer_type = "application/vnd.example.sbom.layer.v1+json";
    let p = publish(Registry::start_anonymous().unwrap(), "art/sbom:1", |l| {
        l.artifact("v1", artifact_type, layer_type, 20_000, 5)
            .unwrap()
    });
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), EngineKind::Component);
    let report = cache.pull(&p.reference(), options()).unwrap();
    let image = &p.built.images[0];
    assert_fetched(&report, &blobs_of(&[image]));
    let layer = report
        .blobs
        .iter()
        .find(|b| b.digest.to_string() == image.layers[0].digest)
        .unwrap();
    assert_eq!(layer.media_type, layer_type);
    assert_holds(&cache, &p, &[image]);
    let stored: serde_json::Value =
        serde_json::from_slice(&cache.get_manifest(&report.digest).unwrap().bytes).unwrap();
    assert_eq!(stored["artifactType"], artifact_type);
    assert_eq!(p.blob_gets(), 2);
}

#[test]
fn cold_pull_of_a_docker_manifest_list_takes_the_docker_image_for_the_platform() {
    let p = publish(Registry::start_anonymous().unwrap(), "dock/list:1", |l| {
        l.docker_list("v1", &ImageSpec::new(7, &SIZES)).unwrap()
    });
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), EngineKind::Native);
    let report = cache.pull(&p.reference(), options()).unwrap();
    let amd64 = p.built.image_for("linux/amd64").unwrap();
    assert_eq!(report.media_type, p.built.media_type());
    assert_eq!(
        report.manifests[1].media_type,
        amd64.manifest.blob.media_type
    );
    assert_fetched(&report, &blobs_of(&[amd64]));
    assert_holds(&cache, &p, &[amd64]);
    assert_eq!(p.blob_gets(), 3);
}

#[test]
fn cold_pull_of_a_docker_v2_image_keeps_its_docker_media_types() {
    let p = publish(Registry::start_anonymous().unwrap(), "dock/img:1", |l| {
        l.docker_image("v1", &ImageSpec::new(8, &SIZES)).unwrap()
    });
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), EngineKind::Component);
    let report = cache.pull(&p.reference(), options()).unwrap();
    let image = &p.built.images[0];
    assert_eq!(report.media_type, p.built.media_type());
    let types: Vec<&str> = report.blobs.iter().map(|b| b.media_type.as_str()).collect();
    assert_eq!(
        types,
        [
            image.config.blob.media_type.as_str(),
            &image.layers[0].media_type,
            &image.layers[1].media_type
        ]
    );
    assert_holds(&cache, &p, &[image]);
}

#[test]
fn pull_by_digest_fetches_without_a_tag_and_then_needs_no_request() {
    let p = single_arch("dig/app:1", 9);
    let by_digest = reference(
        &p.registry
            .reference(&format!("dig/app@{}", p.built.digest())),
    );
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), EngineKind::Native);
    let report = cache.pull(&by_digest, options()).unwrap();
    assert_eq!(report.tag, TagOutcome::Digest);
    assert_eq!(
        p.registry.count(
            "GET",
            &format!("/v2/dig/app/manifests/{}", p.built.digest())
        ),
        1
    );
    assert_eq!(p.blob_gets(), 3);
    assert_holds(&cache, &p, &[&p.built.images[0]]);
    assert_eq!(cache.tags().unwrap(), []);
    p.registry.clear_requests();
    let again = cache.pull(&by_digest, options()).unwrap();
    assert_eq!((again.requests, again.bytes_fetched), (0, 0));
    assert_eq!(p.registry.requests(), []);
}

#[test]
fn a_tag_the_registry_lacks_is_not_found_and_the_cli_exits_1() {
    let p = single_arch("nf/app:1", 10);
    let missing = p.registry.reference("nf/app:nope");
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), EngineKind::Native);
    let e = cache.pull(&reference(&missing), options()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(
        e.to_string().contains("MANIFEST_UNKNOWN"),
        "the registry's message: {e}"
    );
    assert_eq!(p.registry.count("GET", "/v2/nf/app/manifests/nope"), 1);
    assert_eq!(cache.contents().unwrap(), []);
    let (code, _, err) = outcome(&cli(dir.path(), &["pull", &missing]));
    assert_eq!(code, 1, "{err}");
    assert!(err.starts_with("ocicache: not_found:"), "{err}");
}

// ----- 2. a fresh tag: no request -----

#[test]
fn a_second_pull_with_a_fresh_tag_makes_no_request() {
    let p = single_arch("fresh/app:1", 11);
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), EngineKind::Native);
    cache.pull(&p.reference(), options()).unwrap();
    p.registry.clear_requests();

    let report = cache.pull(&p.reference(), options()).unwrap();
    assert_eq!(report.tag, TagOutcome::Fresh);
    assert_eq!((report.requests, report.bytes_fetched), (0, 0));
    assert_eq!(report.bytes_from_cache, p.built.total_size());
    assert_eq!(p.registry.requests(), []);
    cache.close().unwrap();

    // Another process too.
    let report = json_report(&cli(
        dir.path(),
        &["--json", "pull", &p.registry.reference(&p.name)],
    ));
    assert_eq!(report["tag"]["state"], "fresh");
    assert_eq!(report["requests"], 0);
    assert_eq!(p.registry.requests(), []);
}

// ----- 3. past the tag's TTL: one HEAD -----

#[test]
fn past_the_tag_ttl_one_head_revalidates_and_no_blob_is_fetched() {
    let p = single_arch("ttl/app:1", 12);
    let clock = ManualClock::new(T0);
    let dir = tempfile::tempdir().unwrap();
    let cache = open_at(dir.path(), EngineKind::Component, &clock);
    cache.pull(&p.reference(), options()).unwrap();
    clock.advance(TAG_TTL_MS + 1);
    assert!(matches!(
        cache.resolve_tag(&p.reference()).unwrap(),
        Resolution::Stale(_)
    ));
    p.registry.clear_requests();

    let report = cache.pull(&p.reference(), options()).unwrap();
    assert_eq!(report.tag, TagOutcome::Revalidated);
    assert_eq!(report.bytes_fetched, 0);
    let log = p.registry.requests();
    assert_eq!(log.len(), 1, "{log:?}");
    assert!(log[0].is("HEAD", "/v2/ttl/app/manifests/1"), "{log:?}");
    assert_eq!(p.blob_gets(), 0);
    assert_holds(&cache, &p, &[&p.built.images[0]]);
    // Fresh again.
    p.registry.clear_requests();
    let report = cache.pull(&p.reference(), options()).unwrap();
    assert_eq!(report.tag, TagOutcome::Fresh);
    assert_eq!(p.registry.requests(), []);
}

// ----- 4. a tag moved on the registry -----

#[test]
fn a_moved_tag_is_fetched_after_the_ttl_and_recorded_in_history() {
    let mut p = single_arch("moved/app:1", 13);
    let clock = ManualClock::new(T0);
    let dir = tempfile::tempdir().unwrap();
    let cache = open_at(dir.path(), EngineKind::Native, &clock);
    let old = cache.pull(&p.reference(), options()).unwrap().digest;

    // Another image under the same tag.
    let new = p.layout.image("v2", &ImageSpec::new(14, &SIZES)).unwrap();
    push(p.layout.dir(), "v2", &p.registry, &p.name, None).unwrap();
    p.registry.clear_requests();
    // Still fresh: the cache answers with the old one, without asking.
    assert_eq!(cache.pull(&p.reference(), options()).unwrap().digest, old);
    assert_eq!(p.registry.requests(), []);

    clock.advance(TAG_TTL_MS + 1);
    let report = cache.pull(&p.reference(), options()).unwrap();
    assert_eq!(report.digest.to_string(), new.digest());
    assert_eq!(
        report.tag,
        TagOutcome::Moved {
            previous: old.clone()
        }
    );
    assert_eq!(p.registry.count("HEAD", "/v2/moved/app/manifests/1"), 1);
    assert_eq!(
        p.registry
            .count("GET", &format!("/v2/moved/app/manifests/{}", new.digest())),
        1
    );
    assert_eq!(p.blob_gets(), 3);
    assert_eq!(p.registry.requests().len(), 5);
    p.built = new;
    assert_holds(&cache, &p, &[&p.built.images[0]]);
    assert_eq!(
        cache.resolve_tag(&p.reference()).unwrap(),
        Resolution::Fresh(report.digest.clone())
    );
    let history: Vec<Digest> = cache
        .tag_history(&p.reference())
        .unwrap()
        .into_iter()
        .map(|e| e.digest)
        .collect();
    assert!(history.contains(&old), "{history:?}");
    assert!(history.contains(&report.digest), "{history:?}");
}

// ----- 5. registry stopped -----

#[test]
fn registry_stopped_serves_a_cached_tag_stale_and_fails_an_uncached_one_with_network() {
    let mut p = single_arch("stop/app:1", 15);
    let clock = ManualClock::new(T0);
    let dir = tempfile::tempdir().unwrap();
    let cache = open_at(dir.path(), EngineKind::Native, &clock);
    let digest_before = cache.pull(&p.reference(), options()).unwrap().digest;
    clock.advance(TAG_TTL_MS + 1);
    p.registry.stop();
    p.registry.clear_requests();

    // The clock is manual: a retry delay would never pass, so one attempt.
    let once = PullOptions {
        max_attempts: 1,
        ..options()
    };
    let report = cache.pull(&p.reference(), once.clone()).unwrap();
    assert_eq!(report.digest, digest_before);
    assert!(
        matches!(&report.tag, TagOutcome::Stale { reason } if reason.contains("network")),
        "{:?}",
        report.tag
    );
    assert_holds(&cache, &p, &[&p.built.images[0]]);
    // Not allowed stale: the network error itself.
    let strict = PullOptions {
        allow_stale: false,
        ..once.clone()
    };
    let e = cache.pull(&p.reference(), strict).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Network, "{e}");

    let uncached = reference(&p.registry.reference("stop/other:1"));
    let e = cache.pull(&uncached, once).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Network, "{e}");
    assert!(e.to_string().contains(&p.registry.host()), "{e}");
    assert_eq!(p.registry.requests(), []);
}

#[test]
fn a_registry_failing_with_503_on_revalidation_serves_the_tag_stale_after_its_retries() {
    let p = single_arch("fail/app:1", 31);
    let dir = tempfile::tempdir().unwrap();
    // Tags go stale at once; the real clock lets retry delays pass.
    let config = Config {
        tag_ttl_ms: 1,
        ..Config::default()
    };
    let cache = Cache::builder(dir.path()).config(config).open().unwrap();
    let digest_before = cache.pull(&p.reference(), options()).unwrap().digest;
    std::thread::sleep(std::time::Duration::from_millis(5));
    p.registry.clear_requests();
    p.registry.inject(
        "HEAD",
        "/v2/fail/app/manifests/1",
        Fault::Respond {
            status: 503,
            headers: vec![],
            body: String::new(),
        },
        4,
    );
    let report = cache.pull(&p.reference(), options()).unwrap();
    assert_eq!(report.digest, digest_before);
    assert!(
        matches!(&report.tag, TagOutcome::Stale { reason } if reason.contains("503")),
        "{:?}",
        report.tag
    );
    // Four attempts (the default), then stale; nothing else asked.
    let log = p.registry.requests();
    assert_eq!(log.len(), 4, "{log:?}");
    assert!(
        log.iter()
            .all(|r| r.is("HEAD", "/v2/fail/app/manifests/1") && r.status == 503)
    );
    assert_holds(&cache, &p, &[&p.built.images[0]]);
}

#[test]
fn cli_registry_stopped_pulls_stale_and_exits_10_for_an_uncached_tag() {
    let mut p = single_arch("stopcli/app:1", 16);
    let dir = tempfile::tempdir().unwrap();
    // Tags go stale at once (the CLI runs on the real clock).
    std::fs::create_dir_all(dir.path()).unwrap();
    std::fs::write(dir.path().join("config.json"), r#"{"tag_ttl_ms": 1}"#).unwrap();
    let reference = p.registry.reference(&p.name);
    json_report(&cli(dir.path(), &["--json", "pull", &reference]));
    std::thread::sleep(std::time::Duration::from_millis(5));
    p.registry.stop();

    let report = json_report(&cli(dir.path(), &["--json", "pull", &reference]));
    assert_eq!(report["tag"]["state"], "stale", "{report}");
    assert_eq!(report["digest"], p.built.digest());

    let (code, out, err) = outcome(&cli(
        dir.path(),
        &["pull", &p.registry.reference("stopcli/other:1")],
    ));
    assert_eq!(code, 10, "stdout: {out}\nstderr: {err}");
    assert!(err.starts_with("ocicache: network:"), "{err}");
    assert!(err.contains(&p.registry.host()), "{err}");
    // --no-stale: the cached tag fails too.
    let (code, _, err) = outcome(&cli(dir.path(), &["pull", &reference, "--no-stale"]));
    assert_eq!(code, 10, "{err}");
}

// ----- 6. a download cut mid-blob resumes with Range -----

#[test]
fn a_blob_download_cut_midway_resumes_with_range_and_verifies() {
    let p = single_arch("cut/app:1", 17);
    let layer = p.built.images[0].layers[1].clone();
    let path = format!("/v2/cut/app/blobs/{}", layer.digest);
    p.registry
        .inject("GET", &path, Fault::CutBody { after: 20_000 }, 1);
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), EngineKind::Component);
    let report = cache.pull(&p.reference(), options()).unwrap();

    let log: Vec<(u16, Option<String>)> = p
        .registry
        .requests()
        .into_iter()
        .filter(|r| r.is("GET", &path))
        .map(|r| (r.status, r.range))
        .collect();
    assert_eq!(log, [(200, None), (206, Some("bytes=20000-".to_string()))]);
    let blob = report
        .blobs
        .iter()
        .find(|b| b.digest.to_string() == layer.digest)
        .unwrap();
    assert_eq!(blob.resumed_from, Some(20_000));
    assert_eq!(blob.fetched, layer.size);
    assert_holds(&cache, &p, &[&p.built.images[0]]);
}

// ----- 7. a flipped byte -----

#[test]
fn a_flipped_byte_is_a_digest_mismatch_and_stores_neither_blob_manifest_nor_tag() {
    let p = single_arch("flip/app:1", 18);
    let image = &p.built.images[0];
    let layer = &image.layers[1];
    let path = format!("/v2/flip/app/blobs/{}", layer.digest);
    p.registry
        .inject("GET", &path, Fault::FlipByte { offset: 1000 }, 1);
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), EngineKind::Native);
    let e = cache.pull(&p.reference(), options()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::DigestMismatch, "{e}");
    assert!(!cache.has_blob(&digest(&layer.digest)).unwrap());
    assert!(!cache.has_manifest(&digest(p.built.digest())).unwrap());
    assert_eq!(
        cache.resolve_tag(&p.reference()).unwrap(),
        Resolution::Unknown
    );
    assert_eq!(p.registry.count("GET", &path), 1);
    assert_eq!(
        cache.stats().unwrap().pinned_entries,
        0,
        "the failed pull's pins"
    );

    // The next pull takes only what is missing.
    let missing: Vec<String> = blobs_of(&[image])
        .into_iter()
        .filter(|d| !cache.has_blob(&digest(d)).unwrap())
        .collect();
    assert!(missing.contains(&layer.digest));
    p.registry.clear_requests();
    cache.pull(&p.reference(), options()).unwrap();
    assert_eq!(p.blob_gets(), missing.len());
    assert_holds(&cache, &p, &[image]);
}

// ----- 8. a wrong Docker-Content-Digest -----

#[test]
fn a_wrong_docker_content_digest_is_rejected_and_nothing_is_stored() {
    let p = single_arch("hdr/app:1", 19);
    let wrong = format!("sha256:{}", "0".repeat(64));
    p.registry.inject(
        "GET",
        "/v2/hdr/app/manifests/",
        Fault::SetHeader {
            name: "Docker-Content-Digest".into(),
            value: wrong,
        },
        1,
    );
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), EngineKind::Component);
    let e = cache.pull(&p.reference(), options()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::DigestMismatch, "{e}");
    assert_eq!(cache.contents().unwrap(), []);
    assert_eq!(cache.tags().unwrap(), []);
    assert_eq!(p.blob_gets(), 0);
    assert_eq!(p.registry.count("GET", "/v2/hdr/app/manifests/1"), 1);
}

// ----- 9. authentication -----

fn basic(user: &str, password: &str) -> Credentials {
    Credentials::Basic {
        username: user.into(),
        password: password.into(),
    }
}

fn with_credentials(registry: &Registry, c: Credentials) -> PullOptions {
    let mut o = options();
    o.credentials.insert(registry.host(), c);
    o
}

#[test]
fn htpasswd_basic_auth_pulls_with_the_right_credentials_and_names_the_registry_otherwise() {
    let registry = Registry::builder()
        .htpasswd(&[("alice", "secret")])
        .start()
        .unwrap();
    let mut layout = Layout::new().unwrap();
    let built = layout.image("v1", &ImageSpec::new(21, &SIZES)).unwrap();
    push(
        layout.dir(),
        "v1",
        &registry,
        "auth/app:1",
        Some(("alice", "secret")),
    )
    .unwrap();
    registry.clear_requests();
    let p = Published {
        registry,
        layout,
        built,
        name: "auth/app:1".into(),
    };

    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), EngineKind::Native);
    let wrong = cache
        .pull(
            &p.reference(),
            with_credentials(&p.registry, basic("alice", "nope")),
        )
        .unwrap_err();
    assert_eq!(wrong.kind(), ErrorKind::Unauthorized, "{wrong}");
    assert!(wrong.to_string().contains(&p.registry.host()), "{wrong}");
    let none = cache.pull(&p.reference(), options()).unwrap_err();
    assert_eq!(none.kind(), ErrorKind::Unauthorized, "{none}");
    assert!(none.to_string().contains(&p.registry.host()), "{none}");
    assert_eq!(cache.contents().unwrap(), []);
    assert_eq!(p.blob_gets(), 0);

    p.registry.clear_requests();
    cache
        .pull(
            &p.reference(),
            with_credentials(&p.registry, basic("alice", "secret")),
        )
        .unwrap();
    assert_holds(&cache, &p, &[&p.built.images[0]]);
    // One challenge, then Basic on every request.
    let log = p.registry.requests();
    assert_eq!(log.iter().filter(|r| r.status == 401).count(), 1, "{log:?}");
    assert_eq!(p.blob_gets(), 3);
    assert!(
        log.iter()
            .filter(|r| r.status == 200)
            .all(|r| r.auth_scheme.as_deref() == Some("Basic")),
        "{log:?}"
    );

    // The CLI: no credentials known for it, exit 11.
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = outcome(&cli(dir.path(), &["pull", &p.registry.reference(&p.name)]));
    assert_eq!(code, 11, "{err}");
    assert!(err.starts_with("ocicache: unauthorized:"), "{err}");
}

#[test]
fn bearer_token_auth_pulls_anonymously_with_one_token_per_pull_and_refuses_bad_credentials() {
    let tokens = TokenServer::builder()
        .user("alice", "secret")
        .start()
        .unwrap();
    let registry = Registry::builder()
        .token_auth(&tokens)
        .unwrap()
        .start()
        .unwrap();
    let mut layout = Layout::new().unwrap();
    let built = layout.image("v1", &ImageSpec::new(22, &SIZES)).unwrap();
    push(
        layout.dir(),
        "v1",
        &registry,
        "tok/app:1",
        Some(("alice", "secret")),
    )
    .unwrap();
    registry.clear_requests();
    tokens.clear_requests();
    let p = Published {
        registry,
        layout,
        built,
        name: "tok/app:1".into(),
    };

    for pull in 1..=2 {
        let dir = tempfile::tempdir().unwrap();
        let cache = open(dir.path(), EngineKind::Component);
        cache.pull(&p.reference(), options()).unwrap();
        assert_holds(&cache, &p, &[&p.built.images[0]]);
        assert_eq!(tokens.tokens_issued(), pull, "one token per pull");
    }
    // Past the tag's TTL, the HEAD is challenged: one more token, and no blob.
    let clock = ManualClock::new(T0);
    let dir = tempfile::tempdir().unwrap();
    let cache = open_at(dir.path(), EngineKind::Native, &clock);
    cache.pull(&p.reference(), options()).unwrap();
    assert_eq!(tokens.tokens_issued(), 3);
    clock.advance(TAG_TTL_MS + 1);
    p.registry.clear_requests();
    let report = cache.pull(&p.reference(), options()).unwrap();
    assert_eq!(report.tag, TagOutcome::Revalidated);
    assert_eq!(tokens.tokens_issued(), 4);
    let seen: Vec<(String, u16, Option<String>)> = p
        .registry
        .requests()
        .into_iter()
        .map(|r| (r.method, r.status, r.auth_scheme))
        .collect();
    assert_eq!(
        seen,
        [
            ("HEAD".into(), 401, None),
            ("HEAD".into(), 200, Some("Bearer".into()))
        ]
    );
    p.registry.clear_requests();
    for pull in 1..=2 {
        let dir = tempfile::tempdir().unwrap();
        let cache = open(dir.path(), EngineKind::Native);
        cache.pull(&p.reference(), options()).unwrap();
        assert_eq!(tokens.tokens_issued(), 4 + pull);
    }
    let log = p.registry.requests();
    assert_eq!(p.blob_gets(), 6);
    assert!(
        log.iter()
            .filter(|r| r.path.contains("/blobs/"))
            .all(|r| r.auth_scheme.as_deref() == Some("Bearer") && r.status == 200),
        "{log:?}"
    );

    // A user's credentials go to the token server, once.
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), EngineKind::Native);
    cache
        .pull(
            &p.reference(),
            with_credentials(&p.registry, basic("alice", "secret")),
        )
        .unwrap();
    assert_holds(&cache, &p, &[&p.built.images[0]]);
    let last = tokens.requests().last().unwrap().clone();
    assert_eq!((last.user.as_deref(), last.status), (Some("alice"), 200));
    assert_eq!(last.scopes, ["repository:tok/app:pull"]);
    assert_eq!(tokens.tokens_issued(), 7);

    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), EngineKind::Native);
    let e = cache
        .pull(
            &p.reference(),
            with_credentials(&p.registry, basic("alice", "wrong")),
        )
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized, "{e}");
    assert!(e.to_string().contains(&p.registry.host()), "{e}");
    assert_eq!(tokens.requests().last().unwrap().status, 401);
    assert_eq!(tokens.tokens_issued(), 7);
    assert_eq!(cache.contents().unwrap(), []);
}

// ----- 10. TLS -----

#[test]
fn tls_registry_pulls_with_its_ca_file_and_fails_with_network_without_it() {
    let p = publish(
        Registry::builder().tls().start().unwrap(),
        "tls/app:1",
        |l| l.image("v1", &ImageSpec::new(23, &SIZES)).unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), EngineKind::Native);

    // Without the CA: no trust, and plain HTTP to a TLS port gets nowhere.
    let quick = PullOptions {
        max_attempts: 2,
        ..options()
    };
    let e = cache
        .pull_with(
            &p.reference(),
            quick,
            &HttpClient::new().unwrap(),
            &mut NoProgress,
        )
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Network, "{e}");
    assert_eq!(cache.contents().unwrap(), []);

    let client = HttpClient::with_options(&HttpClientOptions {
        ca_file: p.registry.ca_file(),
        ..HttpClientOptions::default()
    })
    .unwrap();
    p.registry.clear_requests();
    let report = cache
        .pull_with(&p.reference(), options(), &client, &mut NoProgress)
        .unwrap();
    assert_holds(&cache, &p, &[&p.built.images[0]]);
    // HTTPS from the first request: nothing failed, nothing fell back.
    assert_eq!(report.requests as usize, p.registry.requests().len());
    assert_eq!(p.blob_gets(), 3);

    // The CLI's --ca-file.
    let dir = tempfile::tempdir().unwrap();
    let ca = p.registry.ca_file().unwrap();
    let report = json_report(&cli(
        dir.path(),
        &[
            "--json",
            "pull",
            &p.registry.reference(&p.name),
            "--ca-file",
            ca.to_str().unwrap(),
        ],
    ));
    assert_eq!(report["digest"], p.built.digest());
}

// ----- 11. two processes, one image -----

/// Two `ocicache pull` processes of one image into one cache directory at once: both must
/// succeed, and the cache must serve the image's bytes. Returns the registry's GET count per
/// blob (config, then layers).
fn two_concurrent_cli_pulls() -> Vec<usize> {
    let p = publish(Registry::start_anonymous().unwrap(), "two/app:1", |l| {
        l.image("v1", &ImageSpec::new(24, &[1 << 20, 2 << 20]))
            .unwrap()
    });
    // Both processes' first manifest request waits a second: they reach the blobs together.
    p.registry.inject(
        "GET",
        "/v2/two/app/manifests/1",
        Fault::Respond {
            status: 503,
            headers: vec![("Retry-After".into(), "1".into())],
            body: String::new(),
        },
        2,
    );
    let dir = tempfile::tempdir().unwrap();
    let reference = p.registry.reference(&p.name);
    let children: Vec<_> = (0..2)
        .map(|_| {
            cli_command(dir.path(), &["--json", "pull", &reference])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let report = json_report(&child.wait_with_output().unwrap());
        assert_eq!(report["digest"], p.built.digest());
    }
    let cache = open(dir.path(), EngineKind::Native);
    assert_holds(&cache, &p, &[&p.built.images[0]]);
    assert_eq!(
        cache.resolve_tag(&p.reference()).unwrap(),
        Resolution::Fresh(digest(p.built.digest()))
    );
    let integrity = cache.check_integrity().unwrap();
    assert!(integrity.healthy, "{integrity:?}");
    blobs_of(&[&p.built.images[0]])
        .iter()
        .map(|b| p.registry.count("GET", &format!("/v2/two/app/blobs/{b}")))
        .collect()
}

#[test]
fn two_concurrent_cli_pulls_of_one_image_both_succeed_and_the_cache_serves_its_bytes() {
    let counts = two_concurrent_cli_pulls();
    assert!(counts.iter().all(|&n| (1..=2).contains(&n)), "{counts:?}");
}

#[test]
fn two_concurrent_cli_pulls_of_one_image_get_each_blob_once() {
    let counts = two_concurrent_cli_pulls();
    assert_eq!(counts, [1, 1, 1], "GETs per blob across both processes");
}

// ----- 12. a mirror -----

#[test]
fn a_proxy_mirror_serves_the_pull_and_the_upstream_takes_over_when_it_stops() {
    let p = single_arch("mir/app:1", 25);
    let mut mirror = Registry::builder()
        .proxy(&p.registry, None)
        .unwrap()
        .start()
        .unwrap();
    p.registry.clear_requests();
    let reference = p.registry.reference(&p.name);
    let image = &p.built.images[0];

    // --mirror: everything through the mirror, which fetched from the upstream.
    let dir = tempfile::tempdir().unwrap();
    let report = json_report(&cli(
        dir.path(),
        &["--json", "pull", &reference, "--mirror", &mirror.url()],
    ));
    // Every request went to the mirror (a plain-HTTP URL: no HTTPS try first).
    assert_eq!(report["requests"], mirror.requests().len());
    let cache = open(dir.path(), EngineKind::Native);
    assert_holds(&cache, &p, &[image]);
    cache.close().unwrap();
    for blob in blobs_of(&[image]) {
        let path = format!("/v2/mir/app/blobs/{blob}");
        assert_eq!(mirror.count("GET", &path), 1, "{:?}", mirror.requests());
        assert!(
            p.registry.count("GET", &path) >= 1,
            "the mirror fetched {blob}"
        );
    }
    assert_eq!(mirror.count("GET", "/v2/mir/app/manifests/1"), 1);
    assert!(p.registry.count("GET", "/v2/mir/app/manifests/") >= 1);

    // config.json's mirrors, with the mirror stopped: the upstream serves the pull.
    mirror.stop();
    p.registry.clear_requests();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path()).unwrap();
    let config = serde_json::json!({
        "registries": { p.registry.host(): { "mirrors": [mirror.url()] } }
    });
    std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
    let report = json_report(&cli(dir.path(), &["--json", "pull", &reference]));
    let cache = open(dir.path(), EngineKind::Component);
    assert_holds(&cache, &p, &[image]);
    assert_eq!(p.blob_gets(), 3);
    assert_eq!(p.registry.count("GET", "/v2/mir/app/manifests/1"), 1);
    // Two requests more than the upstream saw: the stopped mirror's refused connection, and
    // the upstream's HTTPS try before plain HTTP.
    assert_eq!(report["requests"], p.registry.requests().len() + 2);
}

// ----- 13. a pull that cannot fit -----

#[test]
fn a_pull_over_max_bytes_fails_with_full_and_changes_nothing() {
    let p = single_arch("full/app:1", 26);
    let other = publish(Registry::start_anonymous().unwrap(), "full/big:1", |l| {
        l.image("v1", &ImageSpec::new(27, &[60_000, 60_000]))
            .unwrap()
    });
    let dir = tempfile::tempdir().unwrap();
    json_report(&cli(
        dir.path(),
        &["--json", "pull", &p.registry.reference(&p.name)],
    ));
    let usage = p.built.total_size();
    let before = State::of(dir.path());
    other.registry.clear_requests();

    let cap = (usage + other.built.total_size() / 2).to_string();
    let (code, _, err) = outcome(&cli(
        dir.path(),
        &[
            "--max-bytes",
            &cap,
            "pull",
            &other.registry.reference(&other.name),
        ],
    ));
    assert_eq!(code, 5, "{err}");
    assert!(err.starts_with("ocicache: full:"), "{err}");
    before.assert_unchanged(dir.path(), "a pull that cannot fit");
    // Refused before any blob was downloaded.
    assert_eq!(other.blob_gets(), 0);
}

// ----- 14. offline -----

#[test]
fn offline_pulls_fail_uncached_and_serve_cached_tags_without_a_request() {
    let p = single_arch("off/app:1", 28);
    let reference = p.registry.reference(&p.name);
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path()).unwrap();

    let (code, _, err) = outcome(&cli(dir.path(), &["pull", &reference, "--offline"]));
    assert_eq!(code, 10, "{err}");
    assert!(err.starts_with("ocicache: network:"), "{err}");
    assert_eq!(p.registry.requests(), []);

    json_report(&cli(dir.path(), &["--json", "pull", &reference]));
    p.registry.clear_requests();
    let fresh = json_report(&cli(
        dir.path(),
        &["--json", "pull", &reference, "--offline"],
    ));
    assert_eq!(fresh["tag"]["state"], "fresh");
    assert_eq!(fresh["requests"], 0);
    assert_eq!(p.registry.requests(), []);

    // Stale: in a cache whose tags go stale at once.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.json"), r#"{"tag_ttl_ms": 1}"#).unwrap();
    json_report(&cli(dir.path(), &["--json", "pull", &reference]));
    p.registry.clear_requests();
    std::thread::sleep(std::time::Duration::from_millis(5));
    let stale = json_report(&cli(
        dir.path(),
        &["--json", "pull", &reference, "--offline"],
    ));
    assert_eq!(stale["tag"]["state"], "stale", "{stale}");
    assert_eq!(stale["tag"]["reason"], "offline");
    assert_eq!(stale["digest"], p.built.digest());
    assert_eq!(p.registry.requests(), []);
}

// ----- 15. 429 with Retry-After -----

#[test]
fn a_429_with_retry_after_is_waited_out_and_the_pull_succeeds() {
    let p = single_arch("busy/app:1", 29);
    let config = &p.built.images[0].config.blob.digest;
    let path = format!("/v2/busy/app/blobs/{config}");
    p.registry.inject(
        "GET",
        &path,
        Fault::Respond {
            status: 429,
            headers: vec![("Retry-After".into(), "1".into())],
            body: r#"{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}"#.into(),
        },
        1,
    );
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), EngineKind::Component);
    cache.pull(&p.reference(), options()).unwrap();
    assert_holds(&cache, &p, &[&p.built.images[0]]);
    let statuses: Vec<u16> = p
        .registry
        .requests()
        .iter()
        .filter(|r| r.is("GET", &path))
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [429, 200]);
    assert_eq!(p.blob_gets(), 4);
}

// ----- 6b. a download broken in one pull resumes in the next -----

#[test]
fn a_blob_download_broken_in_one_pull_resumes_with_range_in_the_next() {
    for (engine, seed) in [(EngineKind::Native, 30), (EngineKind::Component, 31)] {
        resume_in_a_later_process(engine, seed);
    }
}

fn resume_in_a_later_process(engine: EngineKind, seed: u64) {
    let mut p = single_arch("later/app:1", seed);
    let layer = p.built.images[0].layers[1].clone();
    let path = format!("/v2/later/app/blobs/{}", layer.digest);
    // The registry dies mid-blob; this pull gives up.
    p.registry
        .inject("GET", &path, Fault::CutBody { after: 20_000 }, 1);
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), engine);
    let once = PullOptions {
        max_attempts: 1,
        ..options()
    };
    let e = cache.pull(&p.reference(), once).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Network, "{e}");
    assert!(!cache.has_blob(&digest(&layer.digest)).unwrap());
    cache.close().unwrap();

    // Restarted; a later process continues where the bytes stopped.
    p.registry.restart().unwrap();
    p.registry.clear_requests();
    let cache = open(dir.path(), engine);
    let report = cache.pull(&p.reference(), options()).unwrap();
    let ranges: Vec<(u16, Option<String>)> = p
        .registry
        .requests()
        .into_iter()
        .filter(|r| r.is("GET", &path))
        .map(|r| (r.status, r.range))
        .collect();
    assert_eq!(ranges, [(206, Some("bytes=20000-".to_string()))]);
    let blob = report
        .blobs
        .iter()
        .find(|b| b.digest.to_string() == layer.digest)
        .unwrap();
    assert_eq!(blob.resumed_from, Some(20_000));
    assert_holds(&cache, &p, &[&p.built.images[0]]);
}

// ----- 13b. a pull that fits by evicting -----

#[test]
fn a_pull_that_fits_only_by_evicting_older_content_evicts_it_and_is_whole() {
    let old = single_arch("evict/old:1", 32);
    let new = publish(Registry::start_anonymous().unwrap(), "evict/new:1", |l| {
        l.image("v1", &ImageSpec::new(33, &SIZES)).unwrap()
    });
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        max_bytes: new.built.total_size() * 3 / 2,
        ..Config::default()
    };
    let cache = Cache::builder(dir.path()).config(config).open().unwrap();
    cache.pull(&old.reference(), options()).unwrap();
    let report = cache.pull(&new.reference(), options()).unwrap();
    assert_eq!(report.tag, TagOutcome::Fetched);
    assert_holds(&cache, &new, &[&new.built.images[0]]);
    let stats = cache.stats().unwrap();
    assert!(stats.evictions > 0, "{stats:?}");
    assert!(stats.total_size <= stats.max_size, "{stats:?}");
    assert_eq!(stats.pinned_entries, 0);
}

// ----- 6c. a manifest response cut short -----

#[test]
fn a_manifest_response_cut_short_is_retried_whole() {
    let p = single_arch("mcut/app:1", 34);
    let path = "/v2/mcut/app/manifests/1";
    p.registry
        .inject("GET", path, Fault::CutBody { after: 100 }, 1);
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), EngineKind::Native);
    let report = cache.pull(&p.reference(), options()).unwrap();
    assert_eq!(report.digest.to_string(), p.built.digest());
    let seen: Vec<(u16, Option<String>)> = p
        .registry
        .requests()
        .into_iter()
        .filter(|r| r.is("GET", path))
        .map(|r| (r.status, r.range))
        .collect();
    assert_eq!(seen, [(200, None), (200, None)]);
    assert_holds(&cache, &p, &[&p.built.images[0]]);
}

// ----- 10b. what a TLS failure says -----

#[test]
fn an_untrusted_tls_registry_fails_naming_the_certificate_problem() {
    let p = publish(
        Registry::builder().tls().start().unwrap(),
        "tlsmsg/app:1",
        |l| l.image("v1", &ImageSpec::new(35, &SIZES)).unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), EngineKind::Native);
    let once = PullOptions {
        max_attempts: 1,
        ..options()
    };
    let e = cache.pull(&p.reference(), once).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Network, "{e}");
    let message = e.to_string().to_ascii_lowercase();
    assert!(
        message.contains("certificate") || message.contains("issuer"),
        "{e}"
    );
}

// ----- 2b. a fresh tag whose content went -----

#[test]
fn a_fresh_tag_whose_blob_went_refetches_only_that_blob_and_offline_says_so() {
    let p = single_arch("gone/app:1", 36);
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), EngineKind::Native);
    cache.pull(&p.reference(), options()).unwrap();
    let layer = p.built.images[0].layers[0].digest.clone();
    assert!(cache.delete_blob(&digest(&layer)).unwrap());
    p.registry.clear_requests();

    let offline = PullOptions {
        offline: true,
        ..options()
    };
    let e = cache.pull(&p.reference(), offline).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Network, "{e}");
    assert!(e.to_string().contains(&layer), "{e}");
    assert_eq!(p.registry.requests(), []);

    let report = cache.pull(&p.reference(), options()).unwrap();
    assert_eq!(report.tag, TagOutcome::Fresh);
    let log = p.registry.requests();
    assert_eq!(log.len(), 1, "{log:?}");
    assert!(log[0].is("GET", &format!("/v2/gone/app/blobs/{layer}")));
    assert_holds(&cache, &p, &[&p.built.images[0]]);
}

// ----- 3b. a revalidation answered without a digest -----

#[test]
fn a_head_without_a_usable_digest_is_followed_by_one_get_of_the_tag() {
    let p = single_arch("nodig/app:1", 37);
    let clock = ManualClock::new(T0);
    let dir = tempfile::tempdir().unwrap();
    let cache = open_at(dir.path(), EngineKind::Native, &clock);
    cache.pull(&p.reference(), options()).unwrap();
    clock.advance(TAG_TTL_MS + 1);
    p.registry.clear_requests();
    p.registry.inject(
        "HEAD",
        "/v2/nodig/app/manifests/1",
        Fault::SetHeader {
            name: "Docker-Content-Digest".into(),
            value: String::new(),
        },
        1,
    );
    let report = cache.pull(&p.reference(), options()).unwrap();
    assert_eq!(report.tag, TagOutcome::Revalidated);
    let seen: Vec<(String, String)> = p
        .registry
        .requests()
        .into_iter()
        .map(|r| (r.method, r.path))
        .collect();
    let tag = "/v2/nodig/app/manifests/1".to_string();
    assert_eq!(seen, [("HEAD".into(), tag.clone()), ("GET".into(), tag)]);
    assert_eq!(p.blob_gets(), 0);
}

// ----- a manifest over the limit -----

#[test]
fn a_manifest_over_max_manifest_bytes_is_too_large_and_nothing_is_stored() {
    let p = single_arch("big/app:1", 38);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.json"),
        r#"{"max_manifest_bytes": 200}"#,
    )
    .unwrap();
    let (code, _, err) = outcome(&cli(dir.path(), &["pull", &p.registry.reference(&p.name)]));
    assert_eq!(code, 5, "{err}");
    assert!(err.starts_with("ocicache: too_large:"), "{err}");
    assert_eq!(p.blob_gets(), 0);
    let cache = open(dir.path(), EngineKind::Native);
    assert_eq!(cache.contents().unwrap(), []);
    assert_eq!(cache.tags().unwrap(), []);
}

// ----- 12b. mirrors that lack the image or serve bad bytes -----

#[test]
fn a_mirror_that_lacks_the_image_is_skipped_for_the_rest_of_the_pull() {
    let p = single_arch("miss/app:1", 39);
    let empty = Registry::start_anonymous().unwrap();
    let mut o = options();
    o.route.mirrors = vec![empty.url()];
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), EngineKind::Native);
    cache.pull(&p.reference(), o).unwrap();
    assert_holds(&cache, &p, &[&p.built.images[0]]);
    let asked: Vec<(String, u16)> = empty
        .requests()
        .into_iter()
        .map(|r| (r.path, r.status))
        .collect();
    assert_eq!(asked, [("/v2/miss/app/manifests/1".to_string(), 404)]);
    assert_eq!(p.registry.count("GET", "/v2/miss/app/manifests/1"), 1);
    assert_eq!(p.blob_gets(), 3);
}

#[test]
fn bytes_a_mirror_corrupted_are_refused_and_fetched_from_the_registry() {
    let p = single_arch("badmir/app:1", 40);
    let mirror = Registry::builder()
        .proxy(&p.registry, None)
        .unwrap()
        .start()
        .unwrap();
    let layer = p.built.images[0].layers[1].digest.clone();
    let path = format!("/v2/badmir/app/blobs/{layer}");
    mirror.inject("GET", &path, Fault::FlipByte { offset: 5 }, 1);
    let mut o = options();
    o.route.mirrors = vec![mirror.url()];
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), EngineKind::Component);
    let report = cache.pull(&p.reference(), o).unwrap();
    assert_holds(&cache, &p, &[&p.built.images[0]]);
    assert_eq!(mirror.count("GET", &path), 1);
    let blob = report
        .blobs
        .iter()
        .find(|b| b.digest.to_string() == layer)
        .unwrap();
    // The mirror's bytes, then the registry's.
    assert_eq!(blob.fetched, 2 * blob.size);
}

// ----- 11b. two threads, one cache -----

#[test]
fn two_threads_pulling_one_image_into_one_cache_both_succeed() {
    let p = publish(Registry::start_anonymous().unwrap(), "threads/app:1", |l| {
        l.image("v1", &ImageSpec::new(41, &[300_000, 600_000]))
            .unwrap()
    });
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), EngineKind::Component);
    let reports: Vec<PullReport> = std::thread::scope(|scope| {
        let pulls: Vec<_> = (0..2)
            .map(|_| scope.spawn(|| cache.pull(&p.reference(), options())))
            .collect();
        pulls
            .into_iter()
            .map(|t| t.join().unwrap().unwrap())
            .collect()
    });
    for report in &reports {
        assert_eq!(report.digest.to_string(), p.built.digest());
    }
    assert_holds(&cache, &p, &[&p.built.images[0]]);
    let integrity = cache.check_integrity().unwrap();
    assert!(integrity.healthy, "{integrity:?}");
    assert_eq!(cache.stats().unwrap().pinned_entries, 0);
    // Without single-flight each thread may fetch each blob (seen: 1 or 2 GETs per blob).
    for b in blobs_of(&[&p.built.images[0]]) {
        let n = p
            .registry
            .count("GET", &format!("/v2/threads/app/blobs/{b}"));
        assert!((1..=2).contains(&n), "{b}: {n} GETs");
    }
}

// ----- a failure while other downloads are in flight -----

/// A pull that fails (a flipped byte in the small config blob) while a large layer is still
/// downloading returns at once: the driver stops the other workers, which must not wait for an
/// acknowledgement that no longer comes (this hung before).
#[test]
fn a_pull_that_fails_while_other_blobs_download_returns_promptly() {
    let p = publish(Registry::start_anonymous().unwrap(), "busy/app:1", |l| {
        l.image("v1", &ImageSpec::new(77, &[24 << 20, 24 << 20]))
            .unwrap()
    });
    let config = &p.built.images[0].config;
    let path = format!("/v2/busy/app/blobs/{}", config.blob.digest);
    p.registry
        .inject("GET", &path, Fault::FlipByte { offset: 1 }, 1);
    let dir = tempfile::tempdir().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reference = p.reference();
    let root = dir.path().to_path_buf();
    std::thread::spawn(move || {
        let cache = open(&root, EngineKind::Native);
        let _ = tx.send(cache.pull(&reference, options()).map(|_| ()));
    });
    let result = rx
        .recv_timeout(std::time::Duration::from_secs(120))
        .expect("the failed pull returned (within 120 s)");
    assert_eq!(result.unwrap_err().kind(), ErrorKind::DigestMismatch);
}

// ----- what a network error says: its status and the registry's code, on both engines -----

#[test]
fn a_registry_error_answer_reaches_the_caller_with_its_status_and_code_on_both_engines() {
    let p = single_arch("coded/app:1", 41);
    let path = "/v2/coded/app/manifests/1";
    p.registry.inject(
        "GET",
        path,
        Fault::Respond {
            status: 400,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: r#"{"errors":[{"code":"NAME_INVALID","message":"invalid repository name"}]}"#
                .into(),
        },
        2,
    );
    for engine in [EngineKind::Native, EngineKind::Component] {
        let dir = tempfile::tempdir().unwrap();
        let e = open(dir.path(), engine)
            .pull(&p.reference(), options())
            .unwrap_err();
        let host = p.registry.host();
        assert!(
            matches!(&e, ocicache::Error::Network { registry, status: Some(400), registry_code: Some(code), message }
                if *registry == host && code == "NAME_INVALID" && message.contains("invalid repository name")),
            "{engine:?}: {e:?}"
        );
    }
}
