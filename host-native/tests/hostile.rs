//! Hostile input through the CLI and the library: each gets its typed error (exit code) and
//! changes nothing in the cache directory.

mod common;

use common::{State, outcome, pattern, run, sha256, tree};
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
    // These are refused by the core, in a process that opens and closes the cache.
    let before = State::of(&dir);
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
    before.assert_unchanged(&dir, "refused manifests");
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

#[test]
fn refused_tag_arguments_create_nothing() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("cache");
    let digest = sha256(b"x").to_string();
    let other = sha256(b"y").to_string();
    let by_digest = format!("app@{digest}");
    let pins_other = format!("app:1@{other}");
    for args in [
        vec!["tag", "set", &by_digest, &digest],
        vec!["tag", "set", &pins_other, &digest],
        vec!["tag", "get", &by_digest],
        vec!["tag", "history", &by_digest],
        vec!["tag", "rm", &by_digest],
    ] {
        expect_error(&dir, &args, 3, "invalid_reference");
        assert!(!dir.exists(), "{args:?} created {}", dir.display());
    }
    // The same arguments are refused the same way on an existing cache, which they leave as
    // it was.
    let (dir, good) = populated(root.path());
    let good = good.to_string();
    let before = tree(&dir);
    let pins_other = format!("nginx:1@{other}");
    for args in [
        vec!["tag", "set", &by_digest, &good],
        vec!["tag", "set", &pins_other, &good],
        vec!["tag", "get", &by_digest],
        vec!["tag", "history", &by_digest],
        vec!["tag", "rm", &by_digest],
    ] {
        expect_error(&dir, &args, 3, "invalid_reference");
    }
    assert_eq!(tree(&dir), before, "nothing changed");
}

#[test]
fn blob_put_of_a_procfs_file_stores_what_it_reads() {
    // procfs reports a size of 0 for files that are not empty: not an announced size.
    let expected = std::fs::read("/proc/version").unwrap();
    assert!(!expected.is_empty());
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("cache");
    let (code, out, err) = outcome(&run(&dir, &["blob", "put", "/proc/version"]));
    assert_eq!(code, 0, "stdout {out:?} stderr {err:?}");
    let digest = sha256(&expected).to_string();
    assert_eq!(out.trim(), digest);
    let (code, out, err) = outcome(&run(&dir, &["blob", "get", &digest]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.as_bytes(), expected);
}

/// Runs `ocicache --dir DIR ARGS…`, killed if it has not finished after a generous bound
/// (a hang then fails the test instead of blocking it forever).
fn run_bounded(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let mut child = std::process::Command::new(common::bin())
        .arg("--dir")
        .arg(dir)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut hung = true;
    for _ in 0..600 {
        if child.try_wait().unwrap().is_some() {
            hung = false;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    if hung {
        let _ = child.kill();
    }
    let out = child.wait_with_output().unwrap();
    assert!(!hung, "ocicache {args:?} hung and was killed");
    outcome(&out)
}

#[test]
fn a_fifo_as_config_json_is_a_clear_error() {
    let root = tempfile::tempdir().unwrap();
    let (dir, _) = populated(root.path());
    let fifo = dir.join("config.json");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let before = tree(&dir);
    for args in [vec!["ls"], vec!["config"], vec!["verify"]] {
        let (code, out, err) = run_bounded(&dir, &args);
        assert_eq!(code, 8, "{args:?}: stdout {out:?} stderr {err:?}");
        assert!(
            err.starts_with("ocicache: invalid_config: ") && err.contains("not a regular file"),
            "{err:?}"
        );
    }
    assert_eq!(tree(&dir), before, "nothing changed");
}

#[test]
fn a_symlink_in_a_content_directory_is_reported_and_repaired_never_followed() {
    let root = tempfile::tempdir().unwrap();
    let (dir, good) = populated(root.path());
    // Outside the cache: bytes that match a digest name, and an unrelated file.
    let outside = root.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let bytes = pattern(9, 3000);
    let named = sha256(&bytes);
    std::fs::write(outside.join("matching"), &bytes).unwrap();
    std::fs::write(outside.join("precious"), b"precious").unwrap();
    let blobs = dir.join("blobs/sha256");
    let by_digest = blobs.join(named.hex());
    let stray = blobs.join("stray-link");
    std::os::unix::fs::symlink(outside.join("matching"), &by_digest).unwrap();
    std::os::unix::fs::symlink(outside.join("precious"), &stray).unwrap();

    let (code, out, err) = outcome(&run(&dir, &["verify"]));
    assert_eq!(code, 1, "stdout {out:?} stderr {err:?}");
    assert!(out.contains("UNHEALTHY"), "{out}");
    for link in [
        format!("blobs/sha256/{}", named.hex()),
        "blobs/sha256/stray-link".into(),
    ] {
        assert!(
            out.contains(&format!("unindexed: {link}: ")),
            "{link} in {out}"
        );
    }
    // Not served: the link is not a stored blob.
    expect_error(&dir, &["blob", "get", &named.to_string()], 1, "not_found");

    let (code, out, err) = outcome(&run(&dir, &["repair"]));
    assert_eq!(code, 0, "stdout {out:?} stderr {err:?}");
    assert!(out.contains("adopted 0, removed unindexed 2"), "{out}");
    assert!(std::fs::symlink_metadata(&by_digest).is_err());
    assert!(std::fs::symlink_metadata(&stray).is_err());
    assert_eq!(std::fs::read(outside.join("matching")).unwrap(), bytes);
    assert_eq!(
        std::fs::read(outside.join("precious")).unwrap(),
        b"precious"
    );
    let (code, out, _) = outcome(&run(&dir, &["verify"]));
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        run(&dir, &["blob", "has", &good.to_string()]).status.code(),
        Some(0)
    );
}

/// The check the CLI tests above rely on: a clean close is bookkeeping, anything else that a
/// command appends is a change.
#[test]
fn the_unchanged_check_catches_a_stray_journal_record() {
    let root = tempfile::tempdir().unwrap();
    let (dir, _) = populated(root.path());
    let before = State::of(&dir);
    assert_eq!(run(&dir, &["ls"]).status.code(), Some(0));
    before.assert_unchanged(&dir, "ls");
    // A TagRemove frame (type 9) appended behind the check's back.
    let body = [9u8, 0, 0, 0, 0];
    let mut frame = (body.len() as u32).to_le_bytes().to_vec();
    frame.extend_from_slice(&[0; 4]);
    frame.extend_from_slice(&body);
    let mut journal = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join("index/journal-0"))
        .unwrap();
    std::io::Write::write_all(&mut journal, &frame).unwrap();
    let caught = std::panic::catch_unwind(|| before.assert_unchanged(&dir, "planted"));
    assert!(caught.is_err(), "a stray record is a change");
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

/// A FIFO where the host keeps its own files (`node.lock`, `config.json`) is refused at once
/// with a clear error: nothing waits on it (each run is bounded; a hang fails the test).
#[test]
fn cli_refuses_a_fifo_as_node_lock_or_config_at_once() {
    use std::process::{Command, Stdio};
    for (name, exit, message) in [
        ("node.lock", 6, "node.lock is a FIFO, not a regular file"),
        (
            "config.json",
            8,
            "config.json: is a FIFO, not a regular file",
        ),
    ] {
        let root = tempfile::tempdir().unwrap();
        let (dir, _) = populated(root.path());
        let fifo = dir.join(name);
        // (tree() reads every file: taken without the FIFO, compared once it is gone again)
        let before = tree(&dir);
        assert!(
            Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        let mut child = Command::new(common::bin())
            .arg("--dir")
            .arg(&dir)
            .arg("ls")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut finished = false;
        for _ in 0..2000 {
            if child.try_wait().unwrap().is_some() {
                finished = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        if !finished {
            let _ = child.kill();
        }
        let out = child.wait_with_output().unwrap();
        assert!(finished, "{name}: `ocicache ls` hung on the FIFO");
        let (code, _, stderr) = outcome(&out);
        assert_eq!(code, exit, "{name}: {stderr}");
        assert!(stderr.contains(message), "{name}: {stderr}");
        let kind = std::fs::symlink_metadata(&fifo).unwrap().file_type();
        assert!(
            std::os::unix::fs::FileTypeExt::is_fifo(&kind),
            "left in place"
        );
        std::fs::remove_file(&fifo).unwrap();
        assert_eq!(tree(&dir), before, "{name}: nothing changed");
    }
}
