//! The harness against the real peers: each registry variant starts, takes a push from an
//! OCI layout, gives back the exact bytes, and logs exactly the requests made.

mod http;

use std::fs;
use std::process::Command;
use std::time::{Duration, Instant};

use ocicache_registry_harness::layouts::{
    Built, DOCKER_LIST, DOCKER_MANIFEST, ImageSpec, Layout, OCI_EMPTY, OCI_INDEX, OCI_MANIFEST,
};
use ocicache_registry_harness::{
    Fault, Registry, Request, TestCa, TokenServer, inspect_layout_raw, inspect_raw, pull_to_layout,
    push, umoci_unpack,
};
use sha2::{Digest, Sha256};

fn sha256(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    format!(
        "sha256:{}",
        hash.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

fn small_image(layout: &mut Layout, name: &str, seed: u64) -> Built {
    layout
        .image(name, &ImageSpec::new(seed, &[1000, 5000]))
        .unwrap()
}

/// (method, path, status) of each request, for exact comparisons.
fn summary(requests: &[Request]) -> Vec<(String, String, u16)> {
    requests
        .iter()
        .map(|r| (r.method.clone(), r.path.clone(), r.status))
        .collect()
}

#[test]
fn anonymous_registry_serves_pushed_bytes_and_logs_each_request() {
    let mut layout = Layout::new().unwrap();
    let image = small_image(&mut layout, "v1", 1);
    let registry = Registry::start_anonymous().unwrap();
    assert!(registry.url().starts_with("http://127.0.0.1:"));
    push(layout.dir(), "v1", &registry, "team/tool:1.0", None).unwrap();
    // The push uploaded each blob once and put the manifest once.
    assert_eq!(registry.count("PUT", "/v2/team/tool/blobs/uploads/"), 3);
    assert_eq!(registry.count("PUT", "/v2/team/tool/manifests/1.0"), 1);

    registry.clear_requests();
    assert_eq!(
        inspect_raw(&registry, "team/tool:1.0", None).unwrap(),
        image.top.bytes
    );
    assert_eq!(
        summary(&registry.requests()),
        vec![
            ("GET".into(), "/v2/".into(), 200),
            ("GET".into(), "/v2/team/tool/manifests/1.0".into(), 200),
        ]
    );

    // The registry's digest is the layout's, and each blob comes back byte for byte.
    registry.clear_requests();
    let host = registry.host();
    let manifest = http::request(
        &host,
        "GET",
        "/v2/team/tool/manifests/1.0",
        &[("Accept", OCI_MANIFEST)],
    );
    assert_eq!(manifest.status, 200);
    assert_eq!(
        manifest.header("docker-content-digest"),
        Some(image.digest())
    );
    assert_eq!(manifest.header("content-type"), Some(OCI_MANIFEST));
    assert_eq!(manifest.body, image.top.bytes);
    for blob in &image.blobs()[1..] {
        let got = http::get(&host, &format!("/v2/team/tool/blobs/{}", blob.digest));
        assert_eq!(got.status, 200);
        assert_eq!(got.body, fs::read(layout.blob_path(&blob.digest)).unwrap());
        assert_eq!(sha256(&got.body), blob.digest);
    }
    assert_eq!(registry.count("GET", "/v2/team/tool/blobs/"), 3);
    assert_eq!(registry.count("GET", "/v2/team/tool/manifests/"), 1);
    assert_eq!(registry.count("HEAD", "/v2/"), 0);
    assert_eq!(registry.requests().len(), 4);

    let missing = http::request(&host, "HEAD", "/v2/team/tool/manifests/nope", &[]);
    assert_eq!(missing.status, 404);
    assert_eq!(registry.requests().last().unwrap().status, 404);
}

#[test]
fn range_requests_are_logged_with_their_range() {
    let mut layout = Layout::new().unwrap();
    let image = small_image(&mut layout, "v1", 2);
    let registry = Registry::start_anonymous().unwrap();
    push(layout.dir(), "v1", &registry, "r:1", None).unwrap();
    registry.clear_requests();

    let layer = &image.images[0].layers[1];
    let bytes = fs::read(layout.blob_path(&layer.digest)).unwrap();
    let path = format!("/v2/r/blobs/{}", layer.digest);
    let partial = http::request(&registry.host(), "GET", &path, &[("Range", "bytes=1000-")]);
    assert_eq!(partial.status, 206);
    assert_eq!(partial.body, bytes[1000..]);
    let log = registry.requests();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].range.as_deref(), Some("bytes=1000-"));
    assert_eq!(log[0].status, 206);
    assert_eq!(log[0].path, path);
    assert_eq!(log[0].auth_scheme, None);

    // A download cut mid-blob, then resumed from where it broke: both visible in the log.
    registry.clear_requests();
    registry.inject("GET", &path, Fault::CutBody { after: 2500 }, 1);
    let first = http::get(&registry.host(), &path);
    assert_eq!(first.body.len(), 2500);
    let rest = http::request(&registry.host(), "GET", &path, &[("Range", "bytes=2500-")]);
    assert_eq!([first.body, rest.body].concat(), bytes);
    let log = registry.requests();
    let seen: Vec<(u16, Option<&str>)> =
        log.iter().map(|r| (r.status, r.range.as_deref())).collect();
    assert_eq!(seen, [(200, None), (206, Some("bytes=2500-"))]);
}

#[test]
fn concurrent_clients_are_each_counted() {
    let mut layout = Layout::new().unwrap();
    let image = small_image(&mut layout, "v1", 19);
    let registry = Registry::start_anonymous().unwrap();
    push(layout.dir(), "v1", &registry, "c:1", None).unwrap();
    registry.clear_requests();
    let layer = &image.images[0].layers[1];
    let path = format!("/v2/c/blobs/{}", layer.digest);
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                for _ in 0..5 {
                    let got = http::get(&registry.host(), &path);
                    assert_eq!(sha256(&got.body), layer.digest);
                }
            });
        }
    });
    assert_eq!(registry.count("GET", &path), 20);
    assert_eq!(registry.requests().len(), 20);
}

#[test]
fn faults_cut_flip_and_rewrite_only_the_matching_responses() {
    let mut layout = Layout::new().unwrap();
    let image = small_image(&mut layout, "v1", 3);
    let registry = Registry::start_anonymous().unwrap();
    push(layout.dir(), "v1", &registry, "f:1", None).unwrap();
    let layer = &image.images[0].layers[1];
    let bytes = fs::read(layout.blob_path(&layer.digest)).unwrap();
    let path = format!("/v2/f/blobs/{}", layer.digest);
    let host = registry.host();

    registry.inject("GET", &path, Fault::CutBody { after: 1234 }, 1);
    let cut = http::get(&host, &path);
    assert_eq!(cut.status, 200);
    assert_eq!(
        cut.header("content-length"),
        Some(&*bytes.len().to_string())
    );
    assert_eq!(cut.body, bytes[..1234]);
    // Used up: the next one is whole.
    assert_eq!(http::get(&host, &path).body, bytes);

    registry.inject("GET", "/v2/f/blobs/", Fault::FlipByte { offset: 77 }, 2);
    for _ in 0..2 {
        let flipped = http::get(&host, &path);
        assert_eq!(flipped.body.len(), bytes.len());
        let differing: Vec<usize> = (0..bytes.len())
            .filter(|&i| flipped.body[i] != bytes[i])
            .collect();
        assert_eq!(differing, vec![77]);
        assert_eq!(flipped.body[77], bytes[77] ^ 1);
    }
    assert_eq!(http::get(&host, &path).body, bytes);

    let wrong = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
    registry.inject(
        "GET",
        "/v2/f/manifests/",
        Fault::SetHeader {
            name: "Docker-Content-Digest".into(),
            value: wrong.into(),
        },
        1,
    );
    // A HEAD does not match a GET rule.
    let head = http::request(
        &host,
        "HEAD",
        "/v2/f/manifests/1",
        &[("Accept", OCI_MANIFEST)],
    );
    assert_eq!(head.header("docker-content-digest"), Some(image.digest()));
    let lying = http::request(
        &host,
        "GET",
        "/v2/f/manifests/1",
        &[("Accept", OCI_MANIFEST)],
    );
    assert_eq!(lying.header("docker-content-digest"), Some(wrong));
    assert_eq!(lying.body, image.top.bytes);

    // An answer in the registry's stead, logged with its status, then the real one again.
    registry.clear_requests();
    registry.inject(
        "GET",
        "/v2/f/manifests/1",
        Fault::Respond {
            status: 429,
            headers: vec![("Retry-After".into(), "1".into())],
            body: r#"{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}"#.into(),
        },
        1,
    );
    let busy = http::request(
        &host,
        "GET",
        "/v2/f/manifests/1",
        &[("Accept", OCI_MANIFEST)],
    );
    assert_eq!(busy.status, 429);
    assert_eq!(busy.header("retry-after"), Some("1"));
    assert!(
        String::from_utf8(busy.body)
            .unwrap()
            .contains("TOOMANYREQUESTS")
    );
    let fine = http::request(
        &host,
        "GET",
        "/v2/f/manifests/1",
        &[("Accept", OCI_MANIFEST)],
    );
    assert_eq!(fine.status, 200);
    let statuses: Vec<u16> = registry.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [429, 200]);

    registry.inject("GET", &path, Fault::CutBody { after: 10 }, 5);
    registry.clear_faults();
    assert_eq!(http::get(&host, &path).body, bytes);
}

#[test]
fn htpasswd_registry_wants_the_users_password() {
    let mut layout = Layout::new().unwrap();
    let image = small_image(&mut layout, "v1", 4);
    let registry = Registry::builder()
        .htpasswd(&[("alice", "wonderland"), ("bob", "builder")])
        .start()
        .unwrap();
    push(
        layout.dir(),
        "v1",
        &registry,
        "h:1",
        Some(("alice", "wonderland")),
    )
    .unwrap();
    assert_eq!(
        inspect_raw(&registry, "h:1", Some(("bob", "builder"))).unwrap(),
        image.top.bytes
    );
    let log = registry.requests();
    assert!(
        log.iter()
            .any(|r| r.auth_scheme.as_deref() == Some("Basic") && r.status == 200)
    );

    registry.clear_requests();
    let refused = inspect_raw(&registry, "h:1", Some(("alice", "wrong"))).unwrap_err();
    assert!(refused.to_string().contains("unauthorized"), "{refused}");
    assert!(inspect_raw(&registry, "h:1", None).is_err());
    assert!(registry.count_where(|r| r.status == 401) >= 2);
    assert_eq!(registry.count_where(|r| r.status == 200), 0);

    let challenge = http::get(&registry.host(), "/v2/");
    assert_eq!(challenge.status, 401);
    assert!(
        challenge
            .header("www-authenticate")
            .unwrap()
            .starts_with("Basic realm=")
    );
}

#[test]
fn token_server_tokens_are_accepted_and_bad_credentials_refused() {
    let mut layout = Layout::new().unwrap();
    let image = small_image(&mut layout, "v1", 5);
    let tokens = TokenServer::builder()
        .user("alice", "secret")
        .reader("rita", "reads")
        .start()
        .unwrap();
    let registry = Registry::builder()
        .token_auth(&tokens)
        .unwrap()
        .start()
        .unwrap();

    // The challenge names the token server.
    let challenge = http::get(&registry.host(), "/v2/");
    assert_eq!(challenge.status, 401);
    let header = challenge.header("www-authenticate").unwrap();
    assert!(
        header.starts_with(&format!("Bearer realm=\"{}\"", tokens.realm())),
        "{header}"
    );
    assert!(header.contains(&format!("service=\"{}\"", tokens.service())));

    push(
        layout.dir(),
        "v1",
        &registry,
        "t/img:1",
        Some(("alice", "secret")),
    )
    .unwrap();
    let issued = tokens.requests();
    assert!(!issued.is_empty());
    assert!(
        issued
            .iter()
            .all(|r| r.status == 200 && r.user.as_deref() == Some("alice"))
    );
    assert!(
        issued
            .iter()
            .any(|r| r.scopes.contains(&"repository:t/img:pull,push".to_string()))
    );

    // Anonymous pull: a pull token, accepted.
    tokens.clear_requests();
    registry.clear_requests();
    assert_eq!(
        inspect_raw(&registry, "t/img:1", None).unwrap(),
        image.top.bytes
    );
    assert_eq!(tokens.tokens_issued(), 1);
    assert_eq!(tokens.requests()[0].user, None);
    assert_eq!(
        registry.count_where(|r| r.auth_scheme.as_deref() == Some("Bearer") && r.status == 200),
        1
    );

    // Bad credentials: the token server refuses (401), so does the pull.
    tokens.clear_requests();
    let refused = inspect_raw(&registry, "t/img:1", Some(("alice", "nope"))).unwrap_err();
    assert!(!refused.to_string().is_empty());
    assert!(tokens.requests().iter().all(|r| r.status == 401));
    assert!(!tokens.requests().is_empty());

    // A reader may pull but not push.
    assert_eq!(
        inspect_raw(&registry, "t/img:1", Some(("rita", "reads"))).unwrap(),
        image.top.bytes
    );
    assert!(
        push(
            layout.dir(),
            "v1",
            &registry,
            "t/other:1",
            Some(("rita", "reads"))
        )
        .is_err()
    );

    // A token used directly: the registry accepts its own scope only.
    let token = tokens.issue(None, &["repository:t/img:pull"]).unwrap();
    let bearer = format!("Bearer {token}");
    let auth = [("Authorization", bearer.as_str()), ("Accept", OCI_MANIFEST)];
    let ok = http::request(&registry.host(), "GET", "/v2/t/img/manifests/1", &auth);
    assert_eq!(ok.status, 200);
    assert_eq!(ok.body, image.top.bytes);
    let other = http::request(&registry.host(), "GET", "/v2/t/other/manifests/1", &auth);
    assert_eq!(other.status, 401);
    // A token signed by someone else is refused.
    let stranger = TokenServer::builder().start().unwrap();
    let forged = format!(
        "Bearer {}",
        stranger.issue(None, &["repository:t/img:pull"]).unwrap()
    );
    let refused = http::request(
        &registry.host(),
        "GET",
        "/v2/t/img/manifests/1",
        &[("Authorization", forged.as_str())],
    );
    assert_eq!(refused.status, 401);
}

#[test]
fn token_server_without_anonymous_access_wants_credentials() {
    let mut layout = Layout::new().unwrap();
    let image = small_image(&mut layout, "v1", 6);
    let tokens = TokenServer::builder()
        .user("alice", "secret")
        .allow_anonymous(false)
        .start()
        .unwrap();
    let registry = Registry::builder()
        .token_auth(&tokens)
        .unwrap()
        .start()
        .unwrap();
    push(
        layout.dir(),
        "v1",
        &registry,
        "p:1",
        Some(("alice", "secret")),
    )
    .unwrap();
    tokens.clear_requests();
    assert!(inspect_raw(&registry, "p:1", None).is_err());
    assert!(
        tokens
            .requests()
            .iter()
            .all(|r| r.status == 401 && r.user.is_none())
    );
    assert_eq!(
        inspect_raw(&registry, "p:1", Some(("alice", "secret"))).unwrap(),
        image.top.bytes
    );
}

#[test]
fn tls_registry_is_trusted_through_its_ca_only() {
    let mut layout = Layout::new().unwrap();
    let image = small_image(&mut layout, "v1", 7);
    let registry = Registry::builder().tls().start().unwrap();
    assert!(registry.url().starts_with("https://127.0.0.1:"));
    let ca = registry.ca_file().unwrap();
    push(layout.dir(), "v1", &registry, "s:1", None).unwrap();
    registry.clear_requests();
    assert_eq!(
        inspect_raw(&registry, "s:1", None).unwrap(),
        image.top.bytes
    );
    assert_eq!(
        summary(&registry.requests()),
        vec![
            ("GET".into(), "/v2/".into(), 200),
            ("GET".into(), "/v2/s/manifests/1".into(), 200),
        ]
    );

    // The server's certificate verifies against the CA for 127.0.0.1, and only with it.
    let verify = |ca_args: &[&str]| {
        Command::new("openssl")
            .args([
                "s_client",
                "-connect",
                &registry.host(),
                "-verify_return_error",
            ])
            .args(["-verify_ip", "127.0.0.1"])
            .args(ca_args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
            .status
            .success()
    };
    assert!(verify(&["-CAfile", ca.to_str().unwrap()]));
    assert!(!verify(&[
        "-CAfile",
        "/dev/null",
        "-no-CApath",
        "-no-CAstore"
    ]));
}

#[test]
fn proxy_registry_serves_its_upstream_and_logs_both_sides() {
    let mut layout = Layout::new().unwrap();
    let image = small_image(&mut layout, "v1", 8);
    let upstream = Registry::start_anonymous().unwrap();
    push(layout.dir(), "v1", &upstream, "m/img:1", None).unwrap();
    let mirror = Registry::builder()
        .proxy(&upstream, None)
        .unwrap()
        .start()
        .unwrap();
    upstream.clear_requests();

    assert_eq!(
        inspect_raw(&mirror, "m/img:1", None).unwrap(),
        image.top.bytes
    );
    assert!(upstream.count_where(|r| r.path == "/v2/m/img/manifests/1") >= 1);
    let layer = &image.images[0].layers[0];
    let path = format!("/v2/m/img/blobs/{}", layer.digest);
    let got = http::get(&mirror.host(), &path);
    assert_eq!(got.status, 200);
    assert_eq!(got.body, fs::read(layout.blob_path(&layer.digest)).unwrap());
    assert_eq!(mirror.count("GET", &path), 1);
    // distribution 2.8's proxy streams a missed blob from upstream and, in the background,
    // fetches it again to store it: one or two upstream GETs by now, two in the end.
    let fetched = upstream.count("GET", &path);
    assert!((1..=2).contains(&fetched), "{fetched}");
    let hex = layer.digest.strip_prefix("sha256:").unwrap();
    // The link into the repository is the last file the mirror writes when it stores one.
    let stored = mirror
        .storage_dir()
        .join("docker/registry/v2/repositories/m/img/_layers/sha256")
        .join(hex)
        .join("link");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !stored.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(stored.exists(), "the mirror never stored the blob");
    // Once stored, the mirror serves it itself.
    let upstream_gets = upstream.count("GET", &path);
    assert_eq!(http::get(&mirror.host(), &path).body, got.body);
    assert_eq!(upstream.count("GET", &path), upstream_gets);
    assert_eq!(mirror.count("GET", &path), 2);
}

#[test]
fn proxy_registry_logs_in_to_a_token_upstream() {
    let mut layout = Layout::new().unwrap();
    let image = small_image(&mut layout, "v1", 17);
    let tokens = TokenServer::builder()
        .user("mirror", "pass")
        .allow_anonymous(false)
        .start()
        .unwrap();
    let upstream = Registry::builder()
        .token_auth(&tokens)
        .unwrap()
        .start()
        .unwrap();
    push(
        layout.dir(),
        "v1",
        &upstream,
        "m/img:1",
        Some(("mirror", "pass")),
    )
    .unwrap();
    let mirror = Registry::builder()
        .proxy(&upstream, Some(("mirror", "pass")))
        .unwrap()
        .start()
        .unwrap();
    tokens.clear_requests();
    assert_eq!(
        inspect_raw(&mirror, "m/img:1", None).unwrap(),
        image.top.bytes
    );
    let issued = tokens.requests();
    assert!(!issued.is_empty());
    assert!(
        issued
            .iter()
            .all(|r| r.status == 200 && r.user.as_deref() == Some("mirror"))
    );
}

#[test]
fn proxy_registry_trusts_a_tls_upstream() {
    let mut layout = Layout::new().unwrap();
    let image = small_image(&mut layout, "v1", 18);
    let upstream = Registry::builder().tls().start().unwrap();
    push(layout.dir(), "v1", &upstream, "m/img:1", None).unwrap();
    let mirror = Registry::builder()
        .proxy(&upstream, None)
        .unwrap()
        .start()
        .unwrap();
    assert_eq!(
        inspect_raw(&mirror, "m/img:1", None).unwrap(),
        image.top.bytes
    );
    assert!(upstream.count("GET", "/v2/m/img/manifests/1") >= 1);
}

#[test]
fn registries_built_from_one_ca_are_trusted_through_its_file() {
    let mut layout = Layout::new().unwrap();
    let image = small_image(&mut layout, "v1", 20);
    let ca = TestCa::new().unwrap();
    let upstream = Registry::builder().tls_from(&ca).start().unwrap();
    push(layout.dir(), "v1", &upstream, "m/img:1", None).unwrap();
    let mirror = Registry::builder()
        .tls_from(&ca)
        .proxy(&upstream, None)
        .unwrap()
        .start()
        .unwrap();
    let ca_pem = fs::read(ca.ca_file()).unwrap();
    for registry in [&upstream, &mirror] {
        assert!(registry.url().starts_with("https://"));
        assert_eq!(fs::read(registry.ca_file().unwrap()).unwrap(), ca_pem);
    }
    assert_eq!(
        inspect_raw(&mirror, "m/img:1", None).unwrap(),
        image.top.bytes
    );
    assert!(upstream.count("GET", "/v2/m/img/manifests/1") >= 1);
}

#[test]
fn stop_and_restart_keep_port_and_content() {
    let mut layout = Layout::new().unwrap();
    let image = small_image(&mut layout, "v1", 9);
    let mut registry = Registry::start_anonymous().unwrap();
    let url = registry.url();
    push(layout.dir(), "v1", &registry, "keep:1", None).unwrap();

    // An idle client connection does not hold the stop up; it is closed.
    let mut idle = std::net::TcpStream::connect(registry.host()).unwrap();
    registry.stop();
    assert!(!registry.is_running());
    let mut buf = [0u8; 1];
    assert!(matches!(
        std::io::Read::read(&mut idle, &mut buf),
        Ok(0) | Err(_)
    ));
    assert!(std::net::TcpStream::connect(registry.host()).is_err());
    assert!(inspect_raw(&registry, "keep:1", None).is_err());

    registry.start().unwrap();
    assert_eq!(registry.url(), url);
    assert_eq!(
        inspect_raw(&registry, "keep:1", None).unwrap(),
        image.top.bytes
    );

    registry.restart().unwrap();
    assert_eq!(
        inspect_raw(&registry, "keep:1", None).unwrap(),
        image.top.bytes
    );

    // A new registry on the same storage and port serves the same content.
    let storage = tempfile::tempdir().unwrap();
    let first = Registry::builder().storage(storage.path()).start().unwrap();
    push(layout.dir(), "v1", &first, "again:1", None).unwrap();
    let port = first.port();
    drop(first);
    let second = Registry::builder()
        .storage(storage.path())
        .port(port)
        .start()
        .unwrap();
    assert_eq!(
        inspect_raw(&second, "again:1", None).unwrap(),
        image.top.bytes
    );
}

#[test]
fn multi_arch_index_pushes_every_platform() {
    let mut layout = Layout::new().unwrap();
    let index = layout
        .multi_arch("multi", &ImageSpec::new(10, &[700, 900]))
        .unwrap();
    assert_eq!(index.media_type(), OCI_INDEX);
    let platforms: Vec<String> = index
        .images
        .iter()
        .map(|i| i.platform.as_ref().unwrap().to_path())
        .collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64", "linux/arm/v7"]);
    assert_eq!(index.blobs().len(), 1 + 3 * 4);
    let registry = Registry::start_anonymous().unwrap();
    push(layout.dir(), "multi", &registry, "multi:1", None).unwrap();
    assert_eq!(
        inspect_raw(&registry, "multi:1", None).unwrap(),
        index.top.bytes
    );
    for image in &index.images {
        let by_digest = format!("multi@{}", image.manifest.blob.digest);
        assert_eq!(
            inspect_raw(&registry, &by_digest, None).unwrap(),
            image.manifest.bytes
        );
    }
    let arm = index.image_for("linux/arm/v7").unwrap();
    let config = http::get(
        &registry.host(),
        &format!("/v2/multi/blobs/{}", arm.config.blob.digest),
    );
    assert_eq!(config.body, arm.config.bytes);
}

#[test]
fn artifact_pushes_with_its_artifact_type() {
    let mut layout = Layout::new().unwrap();
    let artifact = layout
        .artifact(
            "sbom",
            "application/vnd.example.sbom.v1",
            "application/vnd.example.sbom.layer.v1+json",
            3000,
            11,
        )
        .unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&artifact.top.bytes).unwrap();
    assert_eq!(manifest["artifactType"], "application/vnd.example.sbom.v1");
    assert_eq!(manifest["config"]["mediaType"], OCI_EMPTY);
    assert_eq!(artifact.images[0].config.bytes, b"{}");
    assert_eq!(
        artifact.images[0].config.blob.digest,
        "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    );
    let registry = Registry::start_anonymous().unwrap();
    push(layout.dir(), "sbom", &registry, "art:sbom", None).unwrap();
    assert_eq!(
        inspect_raw(&registry, "art:sbom", None).unwrap(),
        artifact.top.bytes
    );
    let layer = &artifact.images[0].layers[0];
    let got = http::get(&registry.host(), &format!("/v2/art/blobs/{}", layer.digest));
    assert_eq!(got.body.len(), 3000);
    assert_eq!(sha256(&got.body), layer.digest);
}

#[test]
fn docker_manifest_and_list_push_with_docker_media_types() {
    let mut layout = Layout::new().unwrap();
    let single = layout
        .docker_image("d1", &ImageSpec::new(12, &[800]))
        .unwrap();
    let list = layout
        .docker_list("dlist", &ImageSpec::new(13, &[600]))
        .unwrap();
    assert_eq!(single.media_type(), DOCKER_MANIFEST);
    assert_eq!(list.media_type(), DOCKER_LIST);
    assert_eq!(list.images.len(), 2);
    let registry = Registry::start_anonymous().unwrap();
    push(layout.dir(), "d1", &registry, "docker:single", None).unwrap();
    push(layout.dir(), "dlist", &registry, "docker:list", None).unwrap();
    assert_eq!(
        inspect_raw(&registry, "docker:single", None).unwrap(),
        single.top.bytes
    );
    assert_eq!(
        inspect_raw(&registry, "docker:list", None).unwrap(),
        list.top.bytes
    );
    let head = http::request(
        &registry.host(),
        "HEAD",
        "/v2/docker/manifests/list",
        &[("Accept", DOCKER_LIST)],
    );
    assert_eq!(head.header("content-type"), Some(DOCKER_LIST));
    assert_eq!(head.header("docker-content-digest"), Some(list.digest()));
}

#[test]
fn same_spec_same_digests_other_seed_other_digests() {
    let mut a = Layout::new().unwrap();
    let mut b = Layout::new().unwrap();
    let spec = ImageSpec::new(14, &[100, 200]);
    let first = a.image("x", &spec).unwrap();
    assert_eq!(b.image("x", &spec).unwrap(), first);
    let other = a.image("y", &ImageSpec::new(15, &[100, 200])).unwrap();
    assert_ne!(other.digest(), first.digest());
    for (x, y) in first.images[0].layers.iter().zip(&other.images[0].layers) {
        assert_ne!(x.digest, y.digest);
        assert_eq!(x.size, y.size);
    }
    // Both references are in the one layout, and stay when it is opened again.
    let refs = |dir: &std::path::Path| -> Vec<String> {
        let index: serde_json::Value =
            serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
        index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                m["annotations"]["org.opencontainers.image.ref.name"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    };
    assert_eq!(refs(a.dir()), ["x", "y"]);
    let mut again = Layout::at(a.dir()).unwrap();
    again.image("x", &ImageSpec::new(16, &[10])).unwrap();
    assert_eq!(refs(a.dir()), ["y", "x"]);
}

#[test]
fn umoci_unpacks_a_built_image_and_a_skopeo_copy_round_trips() {
    let mut layout = Layout::new().unwrap();
    let image = layout
        .image("v1", &ImageSpec::new(16, &[3000, 70_000]))
        .unwrap();
    assert_eq!(
        inspect_layout_raw(layout.dir(), "v1").unwrap(),
        image.top.bytes
    );
    let bundle = tempfile::tempdir().unwrap();
    let target = bundle.path().join("bundle");
    umoci_unpack(layout.dir(), "v1", &target).unwrap();
    let rootfs = target.join("rootfs");
    assert_eq!(
        fs::metadata(rootfs.join("layer-0.bin")).unwrap().len(),
        3000
    );
    assert_eq!(
        fs::metadata(rootfs.join("layer-1.bin")).unwrap().len(),
        70_000
    );
    // The file is the layer's payload: the tar minus its 512-byte header.
    let layer = fs::read(layout.blob_path(&image.images[0].layers[0].digest)).unwrap();
    assert_eq!(
        fs::read(rootfs.join("layer-0.bin")).unwrap(),
        layer[512..512 + 3000]
    );

    assert!(umoci_unpack(layout.dir(), "nope", &bundle.path().join("other")).is_err());

    // Out through a registry and back into a skopeo-written layout: the same manifest.
    let registry = Registry::start_anonymous().unwrap();
    push(layout.dir(), "v1", &registry, "round:trip", None).unwrap();
    let copy = tempfile::tempdir().unwrap();
    pull_to_layout(&registry, "round:trip", copy.path(), "back", None).unwrap();
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(copy.path().join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["digest"], image.digest());
    for blob in image.blobs() {
        let hex = blob.digest.strip_prefix("sha256:").unwrap();
        let stored = fs::read(copy.path().join("blobs/sha256").join(hex)).unwrap();
        assert_eq!(sha256(&stored), blob.digest);
    }
}

#[test]
fn cors_registry_answers_the_preflight_and_exposes_the_digest() {
    let mut layout = Layout::new().unwrap();
    let image = small_image(&mut layout, "v1", 7);
    let registry = Registry::builder()
        .cors("http://example.test")
        .start()
        .unwrap();
    push(layout.dir(), "v1", &registry, "team/tool:1.0", None).unwrap();
    // What a browser sends before a GET with `Accept`, `Authorization` or `Range`.
    let preflight = http::request(
        &registry.host(),
        "OPTIONS",
        "/v2/team/tool/manifests/1.0",
        &[
            ("Origin", "http://example.test"),
            ("Access-Control-Request-Method", "GET"),
            ("Access-Control-Request-Headers", "accept,range"),
        ],
    );
    assert_eq!(preflight.status, 200);
    let values = |r: &http::Response, name: &str| -> Vec<String> {
        r.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .collect()
    };
    assert_eq!(
        values(&preflight, "access-control-allow-origin"),
        ["http://example.test"]
    );
    for header in ["Accept", "Range", "Authorization"] {
        assert!(values(&preflight, "access-control-allow-headers").contains(&header.to_string()));
    }
    let get = http::request(
        &registry.host(),
        "GET",
        "/v2/team/tool/manifests/1.0",
        &[("Origin", "http://example.test"), ("Accept", OCI_MANIFEST)],
    );
    assert_eq!(get.status, 200);
    assert_eq!(get.body, image.top.bytes);
    assert!(
        values(&get, "access-control-expose-headers").contains(&"Docker-Content-Digest".into())
    );
    // Without `cors`, no such header.
    let plain = Registry::start_anonymous().unwrap();
    let preflight = http::request(
        &plain.host(),
        "OPTIONS",
        "/v2/",
        &[
            ("Origin", "http://example.test"),
            ("Access-Control-Request-Method", "GET"),
        ],
    );
    assert!(values(&preflight, "access-control-allow-origin").is_empty());
}

#[test]
fn registry_peers_program_starts_pushes_logs_and_stops_on_eof() {
    use std::io::{BufRead, BufReader, Write};
    let mut child = Command::new(env!("CARGO_BIN_EXE_registry-peers"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut ask = |line: &str| -> serde_json::Value {
        writeln!(stdin, "{line}").unwrap();
        let mut answer = String::new();
        stdout.read_line(&mut answer).unwrap();
        serde_json::from_str(&answer).unwrap()
    };
    let started = ask(r#"{"cmd":"registry"}"#);
    let host = started["ok"]["host"].as_str().unwrap().to_string();
    let pushed = ask(r#"{"cmd":"push","registry":"r0","reference":"a/b:1","layers":[10,20]}"#);
    let digest = pushed["ok"]["digest"].as_str().unwrap().to_string();
    let response = http::request(
        &host,
        "GET",
        "/v2/a/b/manifests/1",
        &[("Accept", OCI_MANIFEST)],
    );
    assert_eq!(sha256(&response.body), digest);
    let log = ask(r#"{"cmd":"requests","registry":"r0"}"#);
    assert!(
        log["ok"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["method"] == "GET"
                && r["path"] == "/v2/a/b/manifests/1"
                && r["status"] == 200)
    );
    assert!(
        ask(r#"{"cmd":"nope"}"#)["error"]
            .as_str()
            .unwrap()
            .contains("unknown cmd")
    );
    assert!(ask(r#"{"cmd":"stop","registry":"r9"}"#)["error"].is_string());
    drop(stdin);
    assert!(child.wait().unwrap().success());
    // Its registry went with it.
    assert!(std::net::TcpStream::connect(&host).is_err());
}

#[test]
fn redirect_blobs_sends_blob_gets_to_the_base_url_with_the_storage_path() {
    let mut layout = Layout::new().unwrap();
    let image = small_image(&mut layout, "v1", 8);
    let registry = Registry::builder()
        .redirect_blobs("http://127.0.0.1:9")
        .start()
        .unwrap();
    push(layout.dir(), "v1", &registry, "team/tool:1.0", None).unwrap();
    let layer = &image.images[0].layers[0].digest;
    let response = http::get(&registry.host(), &format!("/v2/team/tool/blobs/{layer}"));
    assert_eq!(response.status, 307);
    let location = response.header("location").unwrap();
    let path = location.strip_prefix("http://127.0.0.1:9/").unwrap();
    let hex = layer.strip_prefix("sha256:").unwrap();
    assert_eq!(
        path,
        format!("docker/registry/v2/blobs/sha256/{}/{hex}/data", &hex[..2])
    );
    // The file is there, under the storage directory.
    assert_eq!(
        sha256(&fs::read(registry.storage_dir().join(path)).unwrap()),
        *layer
    );
    // Manifests are served as before.
    let manifest = http::request(
        &registry.host(),
        "GET",
        "/v2/team/tool/manifests/1.0",
        &[("Accept", OCI_MANIFEST)],
    );
    assert_eq!(manifest.body, image.top.bytes);
}
