//! Directories the cache does not own: a directory of someone else's files, or an OCI image
//! layout, is refused by every command and left byte-for-byte unchanged; `ocicache init` takes
//! over only what matches its digest. Opening never evicts, and every eviction is logged.

mod common;

use common::{outcome, run, sha256};
use std::fs;
use std::path::Path;

/// Every path under `root` with its full bytes (directories as `None`).
fn bytes_of(root: &Path) -> Vec<(String, Option<Vec<u8>>)> {
    fn walk(root: &Path, at: &Path, out: &mut Vec<(String, Option<Vec<u8>>)>) {
        let mut entries: Vec<_> = fs::read_dir(at).unwrap().map(|e| e.unwrap()).collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            if e.file_type().unwrap().is_dir() {
                out.push((rel, None));
                walk(root, &p, out);
            } else {
                out.push((rel, Some(fs::read(&p).unwrap())));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out
}

/// A minimal OCI image layout: a layer, a config and a manifest under `blobs/sha256/`.
fn oci_layout(root: &Path) -> Vec<String> {
    let blobs = root.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    let layer = b"layer bytes of someone else's image".to_vec();
    let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{}","size":{}}}]}}"#,
        sha256(&config),
        config.len(),
        sha256(&layer),
        layer.len()
    )
    .into_bytes();
    let mut digests = Vec::new();
    for bytes in [&layer, &config, &manifest] {
        let d = sha256(bytes);
        fs::write(blobs.join(d.hex()), bytes).unwrap();
        digests.push(d.to_string());
    }
    fs::write(root.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    fs::write(
        root.join("index.json"),
        format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{}","size":{}}}]}}"#,
            digests[2],
            manifest.len()
        ),
    )
    .unwrap();
    digests
}

/// Every command that opens the cache, read-only ones first.
fn commands(digest: &str) -> Vec<Vec<String>> {
    let words = |s: &str| s.split(' ').map(str::to_owned).collect::<Vec<_>>();
    vec![
        words("ls"),
        words("stats"),
        words("verify"),
        words("config"),
        words("--max-bytes 10 config"),
        vec![
            "blob".into(),
            "get".into(),
            digest.into(),
            "-o".into(),
            "/dev/null".into(),
        ],
        vec!["blob".into(), "has".into(), digest.into()],
        words("gc"),
        words("repair"),
        words("tag set example.com/app:1 ")
            .into_iter()
            .filter(|w| !w.is_empty())
            .chain([digest.to_owned()])
            .collect(),
    ]
}

fn refused_unchanged(dir: &Path, digest: &str) {
    let before = bytes_of(dir);
    for engine in ["component", "native"] {
        for args in commands(digest) {
            let mut full: Vec<&str> = vec!["--engine", engine];
            full.extend(args.iter().map(String::as_str));
            let (code, _, err) = outcome(&run(dir, &full));
            assert_eq!(code, 8, "{engine} {args:?}: {err}");
            assert!(err.contains("not an ocicache directory"), "{args:?}: {err}");
            assert_eq!(
                bytes_of(dir),
                before,
                "{engine} {args:?} changed the directory"
            );
        }
    }
}

#[test]
fn a_directory_of_other_files_is_refused_and_left_unchanged() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    fs::write(dir.join("notes.txt"), "mine").unwrap();
    fs::create_dir(dir.join("src")).unwrap();
    fs::write(dir.join("src/main.rs"), "fn main() {}").unwrap();
    refused_unchanged(dir, &sha256(b"x").to_string());
}

#[test]
fn an_oci_image_layout_is_refused_unchanged_and_init_adopts_only_matching_blobs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let digests = oci_layout(dir);
    refused_unchanged(dir, &digests[0]);

    // Asked for explicitly: the blobs are adopted, the layout's own files left alone.
    let index_json = fs::read(dir.join("index.json")).unwrap();
    let (code, out, err) = outcome(&run(dir, &["init"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("adopted 3"), "{out}");
    assert_eq!(fs::read(dir.join("index.json")).unwrap(), index_json);
    assert!(dir.join("oci-layout").exists());
    let (code, out, err) = outcome(&run(dir, &["blob", "has", &digests[0]]));
    assert_eq!((code, out.trim()), (0, "true"), "{err}");
    // Now a cache: commands open it.
    let (code, _, err) = outcome(&run(dir, &["ls"]));
    assert_eq!(code, 0, "{err}");
}

#[test]
fn read_only_commands_never_evict_and_gc_logs_every_eviction() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cache");
    let file = tmp.path().join("blob");
    let data = common::pattern(7, 3000);
    fs::write(&file, &data).unwrap();
    let (code, out, err) = outcome(&run(&dir, &["blob", "put", file.to_str().unwrap()]));
    assert_eq!(code, 0, "{err}");
    let digest = out.trim().to_owned();
    // A command that only reads writes nothing (not even a clean-shutdown record).
    let before = bytes_of(&dir);
    for args in [["ls"], ["stats"], ["verify"], ["config"]] {
        for engine in ["component", "native"] {
            let (code, _, err) = outcome(&run(&dir, &[&["--engine", engine][..], &args].concat()));
            assert_eq!(code, 0, "{args:?}: {err}");
            assert_eq!(bytes_of(&dir), before, "{engine} {args:?} wrote");
        }
    }
    for args in [
        vec!["--max-bytes", "10", "config"],
        vec!["--max-bytes", "10", "ls"],
        vec!["--max-bytes", "10", "stats"],
        vec!["--max-bytes", "10", "verify"],
        vec![
            "--max-bytes",
            "10",
            "blob",
            "get",
            &digest,
            "-o",
            "/dev/null",
        ],
    ] {
        let (code, _, err) = outcome(&run(&dir, &args));
        assert_eq!(code, 0, "{args:?}: {err}");
        let (code, out, _) = outcome(&run(&dir, &["blob", "has", &digest]));
        assert_eq!((code, out.trim()), (0, "true"), "{args:?} evicted the blob");
    }
    // A gc with the lower cap evicts it, says so with -v, and its report adds up.
    let (code, out, err) = outcome(&run(&dir, &["-v", "--max-bytes", "10", "gc"]));
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(&format!(
            "evicted entry=blob {digest} bytes=3000 reason=capacity"
        )),
        "{err}"
    );
    assert!(out.contains("evicted 1, bytes freed 3000"), "{out}");
}

#[test]
fn gc_counts_the_bytes_of_expired_entries() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cache");
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("config.json"), r#"{"default_ttl_ms": 1}"#).unwrap();
    let file = tmp.path().join("blob");
    fs::write(&file, common::pattern(8, 2500)).unwrap();
    let (code, _, err) = outcome(&run(&dir, &["blob", "put", file.to_str().unwrap()]));
    assert_eq!(code, 0, "{err}");
    std::thread::sleep(std::time::Duration::from_millis(20)); // past the 1 ms TTL
    let (code, out, err) = outcome(&run(&dir, &["--json", "gc"]));
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["expired_removed"], 1, "{out}");
    assert_eq!(report["bytes_freed"], 2500, "{out}");
}
