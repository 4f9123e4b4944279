//! Hostile input through the CLI and the library: each gets its typed error (exit code) and
//! changes nothing in the cache directory.

mod common;

use common::{outcome, pattern, run, sha256, tree};
use ocicache::{Cache, Digest, ErrorKind, Key, ManualClock, Reference};
use std::path::Path;

const ZEROS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

fn hostile_digests() -> Vec<String> {
    vec![
        "sha256:..".into(),
        "sha256:../../../etc/passwd".into(),
        format!("sha256:../{}", &ZEROS[3..]),
        format!("sha256:{}/{}", &ZEROS[..32], &ZEROS[..31]),
        format!("sha256:{}", ZEROS.to_uppercase().replace('0', "A")),
        format!("sha256:{}", "AB".repeat(32)),
        format!("sha256:{}", &ZEROS[..63]),
        format!("sha256:{ZEROS}0"),
        format!("sha512:{ZEROS}"),
        format!("md5:{}", &ZEROS[..32]),
        format!("SHA256:{ZEROS}"),
        format!("sha257:{ZEROS}"),
        ZEROS.to_owned(),
        format!("sha256:{}", "g".repeat(64)),
        "sha256:".into(),
        ":".into(),
        String::new(),
        format!(" sha256:{ZEROS}"),
        format!("sha256:{ZEROS}\n"),
        format!("sha256:{}", "é".repeat(32)),
        "x".repeat(100_000),
    ]
}

fn hostile_references() -> Vec<String> {
    vec![
        "../x".into(),
        "a/../b:tag".into(),
        "/abs:1".into(),
        "library/UPPER:1".into(),
        "nginx:tag with space".into(),
        "nginx:..".into(),
        "a//b:1".into(),
        String::new(),
        ":tag".into(),
        "nginx:".into(),
        "nginx@sha256:..".into(),
        format!("nginx@sha256:{}", &ZEROS[..10]),
        format!("nginx:{}", "t".repeat(200)),
        "registry.io:99999999999/x:1".into(),
        "x".repeat(10_000),
    ]
}

/// A populated cache directory, closed.
fn populated(root: &Path) -> (std::path::PathBuf, Digest) {
    let dir = root.join("cache");
    let data = pattern(1, 5000);
    let file = root.join("data");
    std::fs::write(&file, &data).unwrap();
    assert_eq!(
        run(&dir, &["blob", "put", file.to_str().unwrap()])
            .status
            .code(),
        Some(0)
    );
    let d = sha256(&data);
    assert_eq!(
        run(&dir, &["tag", "set", "nginx:1", &d.to_string()])
            .status
            .code(),
        Some(0)
    );
    (dir, d)
}

fn expect_error(dir: &Path, args: &[&str], exit: i32, code: &str) {
    let (got, out, err) = outcome(&run(dir, args));
    assert_eq!(got, exit, "{args:?}: stdout {out:?} stderr {err:?}");
    let line = format!("ocicache: {code}: ");
    assert!(err.starts_with(&line), "{args:?}: {err:?}");
    assert_eq!(err.lines().count(), 1, "one line: {err:?}");
}

#[test]
fn cli_rejects_hostile_digests_and_changes_nothing() {
    let root = tempfile::tempdir().unwrap();
    let (dir, good) = populated(root.path());
    let good = good.to_string();
    let file = root.path().join("data");
    let file = file.to_str().unwrap();
    let before = tree(&dir);
    for d in hostile_digests() {
        let d = d.as_str();
        for args in [
            vec!["blob", "get", d],
            vec!["blob", "get", d, "-o", "/tmp/never-written"],
            vec!["blob", "has", d],
            vec!["blob", "rm", d],
            vec!["blob", "put", file, "--digest", d],
            vec!["manifest", "get", d],
            vec!["manifest", "put", file, "--digest", d],
            vec!["tag", "set", "nginx:2", d],
            vec!["pin", "blob", d],
            vec!["unpin", "manifest", d],
        ] {
            expect_error(&dir, &args, 3, "invalid_digest");
        }
    }
    assert!(!Path::new("/tmp/never-written").exists());
    assert_eq!(tree(&dir), before, "nothing changed");
    // The good digest still works.
    assert_eq!(run(&dir, &["blob", "has", &good]).status.code(), Some(0));
}

#[test]
fn cli_rejects_hostile_references_and_changes_nothing() {
    let root = tempfile::tempdir().unwrap();
    let (dir, good) = populated(root.path());
    let good = good.to_string();
    let before = tree(&dir);
    for r in hostile_references() {
        let r = r.as_str();
        for args in [
            vec!["tag", "set", r, &good],
            vec!["tag", "get", r],
            vec!["tag", "history", r],
            vec!["tag", "rm", r],
        ] {
            expect_error(&dir, &args, 3, "invalid_reference");
        }
    }
    assert_eq!(tree(&dir), before, "nothing changed");
}

#[test]
fn cli_rejects_hostile_manifests_and_changes_nothing() {
    let root = tempfile::tempdir().unwrap();
    let (dir, blob) = populated(root.path());
    let write = |name: &str, bytes: &[u8]| {
        let p = root.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p.to_str().unwrap().to_owned()
    };
    let valid = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{blob}","size":5000}},"layers":[]}}"#
    );
    let not_json = write("not-json", b"{this is not json");
    let binary = write("binary", &pattern(5, 3000));
    let not_manifest = write("not-manifest", br#"{"hello": "world"}"#);
    let too_large = write("too-large", &vec![b' '; (4 << 20) + 1]);
    let valid_file = write("valid", valid.as_bytes());
    let other = sha256(b"something else").to_string();
    let before = tree(&dir);
    expect_error(&dir, &["manifest", "put", &not_json], 3, "invalid_manifest");
    expect_error(&dir, &["manifest", "put", &binary], 3, "invalid_manifest");
    expect_error(
        &dir,
        &["manifest", "put", &not_manifest],
        3,
        "invalid_manifest",
    );
    expect_error(&dir, &["manifest", "put", &too_large], 5, "too_large");
    expect_error(
        &dir,
        &["manifest", "put", &valid_file, "--digest", &other],
        3,
        "digest_mismatch",
    );
    expect_error(
        &dir,
        &["manifest", "put", &valid_file, "--media-type", "text/html"],
        3,
        "invalid_manifest",
    );
    expect_error(
        &dir,
        &["blob", "put", &not_json, "--digest", &other],
        3,
        "digest_mismatch",
    );
    expect_error(&dir, &["manifest", "get", &other], 1, "not_found");
    expect_error(&dir, &["blob", "put", "/nonexistent/file"], 9, "io");
    assert_eq!(tree(&dir), before, "nothing changed");
    // And the valid one is accepted, so the refusals above were about the input.
    let (code, out, err) = outcome(&run(&dir, &["manifest", "put", &valid_file]));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("application/vnd.oci.image.manifest.v1+json"),
        "{out}"
    );
}

#[test]
fn cli_refuses_a_regular_file_as_the_cache_directory() {
    let root = tempfile::tempdir().unwrap();
    let file = root.path().join("unrelated");
    std::fs::write(&file, b"precious").unwrap();
    for args in [
        vec!["ls"],
        vec!["verify"],
        vec!["blob", "put", "-"],
        vec!["repair"],
    ] {
        expect_error(&file, &args, 6, "storage");
    }
    assert_eq!(std::fs::read(&file).unwrap(), b"precious");
    assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 1);
}

#[test]
fn cli_usage_errors_exit_2() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("cache");
    for args in [
        vec!["frobnicate"],
        vec!["blob"],
        vec!["pin", "layer", ZEROS],
        vec!["--engine", "x", "ls"],
    ] {
        assert_eq!(run(&dir, &args).status.code(), Some(2), "{args:?}");
    }
    assert!(!dir.exists(), "usage errors touch nothing");
    let help = run(&dir, &["--help"]);
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(
        text.contains("Exit codes:") && text.contains("4  corrupted"),
        "{text}"
    );
}

#[test]
fn library_rejects_hostile_input_and_changes_nothing() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("cache");
    let cache = Cache::builder(&dir)
        .clock(ManualClock::new(1_700_000_000_000))
        .open()
        .unwrap();
    let good = cache.put_blob(None, b"good").unwrap();
    let r: Reference = "nginx:1".parse().unwrap();
    cache.put_tag(&r, &good).unwrap();
    cache.flush().unwrap();
    let before = tree(&dir);

    let mut digests = hostile_digests();
    digests.push(format!("sha256:{}\0", &ZEROS[..63]));
    digests.push("sha256:\0".into());
    for d in digests {
        assert_eq!(
            Digest::parse(&d).unwrap_err().kind(),
            ErrorKind::InvalidDigest,
            "{d:?}"
        );
        assert_eq!(
            d.parse::<Digest>().unwrap_err().kind(),
            ErrorKind::InvalidDigest
        );
    }
    let mut refs = hostile_references();
    refs.push("nginx:1\0".into());
    refs.push("ngi\0nx:1".into());
    for s in refs {
        assert_eq!(
            Reference::parse(&s).unwrap_err().kind(),
            ErrorKind::InvalidReference,
            "{s:?}"
        );
    }

    let other = sha256(b"other");
    let manifest_cases: Vec<(&[u8], Option<&str>, &Digest, ErrorKind)> = vec![
        (b"not json", None, &other, ErrorKind::DigestMismatch),
        (b"{}", None, &other, ErrorKind::DigestMismatch),
    ];
    for (bytes, mt, d, kind) in manifest_cases {
        assert_eq!(cache.put_manifest(d, bytes, mt).unwrap_err().kind(), kind);
    }
    for bytes in [
        &b"not json"[..],
        b"{}",
        b"[]",
        b"\xff\xfe",
        br#"{"layers": 5}"#,
    ] {
        let d = sha256(bytes);
        let err = cache.put_manifest(&d, bytes, None).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidManifest, "{bytes:?}");
    }
    let huge = vec![b' '; (4 << 20) + 1];
    let err = cache.put_manifest(&sha256(&huge), &huge, None).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooLarge);
    assert_eq!(
        cache
            .put_blob(Some(&other), b"not other")
            .unwrap_err()
            .kind(),
        ErrorKind::DigestMismatch
    );
    assert_eq!(
        cache.pin(&Key::blob(other.clone())).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        cache.get_blob(&other).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    cache.flush().unwrap();
    assert_eq!(tree(&dir), before, "nothing changed");
    assert_eq!(cache.get_blob(&good).unwrap(), b"good");

    // A file at the cache path.
    let file = root.path().join("file");
    std::fs::write(&file, b"precious").unwrap();
    assert_eq!(Cache::open(&file).err().unwrap().kind(), ErrorKind::Storage);
    assert_eq!(std::fs::read(&file).unwrap(), b"precious");
}

/// `ocicache --engine ENGINE --dir DIR ARGS…`: exit code and trimmed stdout.
fn run_engine(dir: &Path, engine: &str, args: &[&str]) -> (i32, String) {
    let mut all = vec!["--engine", engine];
    all.extend_from_slice(args);
    let (code, out, err) = outcome(&run(dir, &all));
    assert!(code == 0 || !err.is_empty(), "{args:?}: an error says why");
    (code, out.trim().to_owned())
}

#[test]
fn cli_reads_an_upper_case_first_component_as_a_registry_on_every_engine() {
    // Docker reads `X/y:1` as registry `X`, repository `y`: another image than
    // `docker.io/x/y:1`. The component engine (the default) overwrote that mapping, the native
    // one printed `x/y:1`, which reads back as `docker.io/x/y:1`.
    let root = tempfile::tempdir().unwrap();
    for engine in ["component", "native"] {
        let dir = root.path().join(engine);
        let (upper, hub) = (sha256(b"registry X"), sha256(b"docker hub x/y"));
        let (upper, hub) = (upper.to_string(), hub.to_string());
        assert_eq!(
            run_engine(&dir, engine, &["tag", "set", "docker.io/x/y:1", &hub]),
            (0, "new".to_owned())
        );
        assert_eq!(
            run_engine(&dir, engine, &["tag", "set", "X/y:1", &upper]),
            (0, "new".to_owned()),
            "{engine}: X/y:1 is not docker.io/x/y:1"
        );
        assert_eq!(
            run_engine(&dir, engine, &["tag", "get", "X/y:1"]),
            (0, upper.clone())
        );
        assert_eq!(
            run_engine(&dir, engine, &["tag", "get", "x/y:1"]),
            (0, hub.clone()),
            "{engine}"
        );
        // Every printed reference leads back to its own mapping.
        let (code, listing) = run_engine(&dir, engine, &["--json", "ls"]);
        assert_eq!(code, 0);
        let listing: serde_json::Value = serde_json::from_str(&listing).unwrap();
        let printed: Vec<(String, String)> = listing["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                let field = |k: &str| t[k].as_str().unwrap().to_owned();
                (field("reference"), field("digest"))
            })
            .collect();
        assert_eq!(
            printed,
            [
                ("X/y:1".to_owned(), upper.clone()),
                ("docker.io/x/y:1".to_owned(), hub.clone())
            ],
            "{engine}"
        );
        for (reference, digest) in printed {
            assert_eq!(
                run_engine(&dir, engine, &["tag", "get", &reference]),
                (0, digest),
                "{engine}: {reference}"
            );
        }
    }
}

#[test]
fn cli_refuses_a_tag_set_whose_reference_pins_a_digest() {
    // `tag set nginx:latest@sha256:… DIGEST` stored `nginx:latest`, silently dropping the
    // pinned digest. It is refused now, whether the digests agree or not, and changes nothing.
    let root = tempfile::tempdir().unwrap();
    let (dir, good) = populated(root.path());
    let other = sha256(b"other").to_string();
    let good = good.to_string();
    let before = tree(&dir);
    for engine in ["component", "native"] {
        for (pinned, digest) in [(&good, &good), (&good, &other), (&other, &good)] {
            let reference = format!("nginx:latest@{pinned}");
            expect_error(
                &dir,
                &["--engine", engine, "tag", "set", &reference, digest],
                3,
                "invalid_reference",
            );
        }
        expect_error(
            &dir,
            &[
                "--engine",
                engine,
                "tag",
                "get",
                &format!("nginx:1@{other}"),
            ],
            3,
            "invalid_reference",
        );
        expect_error(
            &dir,
            &["--engine", engine, "tag", "get", "nginx:latest"],
            1,
            "not_found",
        );
    }
    assert_eq!(tree(&dir), before, "nothing changed");
}
