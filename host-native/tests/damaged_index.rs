//! Damaged or hostile index files (issue 9, items 6 and 8), through the CLI and the library:
//! opening never aborts, whatever sizes the files claim, and damage in the middle of the journal
//! is reported by `verify` (exit 1) with the records after it kept.
//!
//! The address-space test runs the CLI under `prlimit --as=2 GiB` (util-linux) with the native
//! engine: the component engine cannot even reserve its linear memory under that limit (it
//! fails cleanly with a `storage` error); it is tested in-process under its own memory cap.

mod common;

use common::{bin, outcome, run, sha256};
use ocicache::component::ComponentOptions;
use ocicache::{Cache, EngineKind};
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const CLAIM: u64 = 200 << 30;

/// A cache directory with one blob and one tag, compacted (a snapshot and `journal-1` exist),
/// then a second tag appended to the journal.
fn populated(root: &Path) -> (PathBuf, String) {
    let dir = root.join("cache");
    let file = root.join("blob");
    std::fs::write(&file, b"stored bytes").unwrap();
    let (code, out, err) = outcome(&run(&dir, &["blob", "put", file.to_str().unwrap()]));
    assert_eq!(code, 0, "{err}");
    let digest = out.trim().to_owned();
    assert_eq!(digest, sha256(b"stored bytes").to_string());
    for args in [
        &["tag", "set", "app:1", &digest][..],
        &["gc"],
        &["tag", "set", "app:2", &digest],
    ] {
        let (code, _, err) = outcome(&run(&dir, args));
        assert_eq!(code, 0, "{args:?}: {err}");
    }
    assert!(dir.join("index/snapshot").is_file() && dir.join("index/journal-1").is_file());
    (dir, digest)
}

/// Makes `path` report `len` bytes (sparse: the new bytes read as zeros).
fn grow_sparse(path: &Path, len: u64) {
    OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

/// Runs the CLI (native engine) with its address space capped at 2 GiB.
fn run_limited(dir: &Path, args: &[&str]) -> Output {
    Command::new("prlimit")
        .arg("--as=2147483648")
        .arg(bin())
        .args(["--engine", "native", "--dir"])
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("prlimit (util-linux) must be installed")
}

/// The exit code; fails on a signal (an abort).
fn exited(o: &Output, what: &str) -> i32 {
    match o.status.code() {
        Some(code) => code,
        None => panic!(
            "{what}: killed by a signal ({:?}): {}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        ),
    }
}

#[test]
fn cli_opens_a_snapshot_claiming_200_gib_under_a_2_gib_address_space_limit() {
    let root = tempfile::tempdir().unwrap();
    let (dir, digest) = populated(root.path());
    grow_sparse(&dir.join("index/snapshot"), CLAIM);
    let o = run_limited(&dir, &["ls"]);
    assert_eq!(
        exited(&o, "ls"),
        0,
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains(&digest));
    // The damaged snapshot was replaced by a fresh one.
    assert!(std::fs::metadata(dir.join("index/snapshot")).unwrap().len() < 1 << 20);
    let o = run_limited(&dir, &["blob", "get", &digest]);
    assert_eq!(exited(&o, "blob get"), 0);
    assert_eq!(o.stdout, b"stored bytes");
}

#[test]
fn cli_opens_a_journal_claiming_200_gib_under_a_2_gib_address_space_limit() {
    let root = tempfile::tempdir().unwrap();
    let (dir, digest) = populated(root.path());
    grow_sparse(&dir.join("index/journal-1"), CLAIM);
    // Too much damage to look past: reported as corruption by the run that found it.
    let o = run_limited(&dir, &["verify"]);
    assert_eq!(
        exited(&o, "verify"),
        1,
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("corrupted: index/journal-1"));
    let o = run_limited(&dir, &["tag", "get", "app:2"]);
    assert_eq!(exited(&o, "tag get"), 0);
    assert!(String::from_utf8_lossy(&o.stdout).contains(&digest));
}

#[test]
fn cli_verify_reports_damage_in_the_middle_of_the_journal_until_repair() {
    let root = tempfile::tempdir().unwrap();
    let (dir, digest) = populated(root.path());
    // Damage a byte of `app:2`'s `TagSet` record, with another record appended after it.
    let journal = dir.join("index/journal-1");
    let (code, _, err) = outcome(&run(&dir, &["tag", "set", "app:3", &digest]));
    assert_eq!(code, 0, "{err}");
    let mut bytes = std::fs::read(&journal).unwrap();
    let mut at = 0;
    let tag_set = loop {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let body = &bytes[at + 8..at + 8 + len];
        if body[0] == 7 && body.windows(5).any(|w| w == b"app:2") {
            break at;
        }
        at += 8 + len;
    };
    bytes[tag_set + 12] ^= 0xFF;
    std::fs::write(&journal, &bytes).unwrap();

    for engine in ["native", "component"] {
        let o = run(&dir, &["--engine", engine, "verify"]);
        let (code, out, _) = outcome(&o);
        assert_eq!(code, 1, "{engine}: {out}");
        assert!(
            out.contains("corrupted: index/journal-1"),
            "{engine}: {out}"
        );
        // The record after the damage was kept; the damaged one is lost.
        let (code, out, _) = outcome(&run(&dir, &["--engine", engine, "tag", "get", "app:3"]));
        assert_eq!((code, out.trim()), (0, digest.as_str()), "{engine}");
        let (code, _, _) = outcome(&run(&dir, &["--engine", engine, "tag", "get", "app:2"]));
        assert_ne!(code, 0, "{engine}: the damaged record is lost");
    }
    let (code, _, err) = outcome(&run(&dir, &["repair"]));
    assert_eq!(code, 0, "{err}");
    let (code, out, _) = outcome(&run(&dir, &["verify"]));
    assert_eq!(code, 0, "{out}");
}

#[test]
fn component_engine_opens_huge_claims_under_its_memory_cap() {
    for file in ["index/snapshot", "index/journal-1"] {
        let root = tempfile::tempdir().unwrap();
        let (dir, digest) = populated(root.path());
        grow_sparse(&dir.join(file), CLAIM);
        let options = ComponentOptions {
            memory_limit: 256 << 20,
            ..ComponentOptions::default()
        };
        let cache = Cache::builder(&dir)
            .engine(EngineKind::Component)
            .component_options(options)
            .open();
        // A clean open (the damage repaired), never a trap.
        let cache = cache.unwrap_or_else(|e| panic!("{file}: {e}"));
        let blob = cache.get_blob(&digest.parse().unwrap()).unwrap();
        assert_eq!(blob, b"stored bytes", "{file}");
        cache.close().unwrap();
    }
}
