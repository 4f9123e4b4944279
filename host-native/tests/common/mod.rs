//! Helpers shared by the integration tests.
#![allow(dead_code)]

use ocicache::Digest;
use ocicache::ocicache_core::hashing::digest_of;
use ocicache::ocicache_core::{Algorithm, BuiltinHasher};
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// The built `ocicache` binary.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_ocicache")
}

/// Runs `ocicache --dir DIR ARGS…` to completion.
pub fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(bin())
        .arg("--dir")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("spawn ocicache")
}

/// Exit code, stdout and stderr of a finished run.
pub fn outcome(o: &Output) -> (i32, String, String) {
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// The SHA-256 digest of `bytes`.
pub fn sha256(bytes: &[u8]) -> Digest {
    digest_of(&BuiltinHasher, Algorithm::Sha256, bytes).expect("the built-in hasher")
}

/// Deterministic pseudo-random bytes, different for every `seed`.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Every path under `root` with what identifies its state: directories as `dir`, symbolic
/// links by their target, every other file by the SHA-256 of its bytes, the index included (a
/// stray journal record changes the tree).
pub fn tree(root: &Path) -> Vec<(String, String)> {
    fn walk(root: &Path, at: &Path, out: &mut Vec<(String, String)>) {
        let Ok(rd) = std::fs::read_dir(at) else {
            return;
        };
        let mut entries: Vec<_> = rd.map(|e| e.unwrap()).collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let t = e.file_type().unwrap();
            if t.is_dir() {
                out.push((rel, "dir".into()));
                walk(root, &p, out);
            } else if t.is_symlink() {
                let target = std::fs::read_link(&p).unwrap();
                out.push((rel, format!("symlink to {}", target.display())));
            } else if t.is_file() {
                let bytes = std::fs::read(&p).unwrap();
                out.push((rel, sha256(&bytes).to_string()));
            } else {
                out.push((rel, "special file".into()));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out
}

/// Names in `root/tmp`.
pub fn temps(root: &Path) -> Vec<String> {
    std::fs::read_dir(root.join("tmp"))
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// A cache directory's state, to show that a refused command changed nothing when the command
/// ran in a process of its own: such a process opens and closes the cache, and its clean close
/// appends a `Closed` record (`docs/FORMAT.md`), which changes no entry and no tag.
pub struct State {
    tree: Vec<(String, String)>,
    journals: Vec<(String, Vec<u8>)>,
}

/// Record type of `Closed` (`docs/FORMAT.md`, Records).
const CLOSED: u8 = 12;

impl State {
    /// The state of the directory `root` now.
    pub fn of(root: &Path) -> State {
        let journals = std::fs::read_dir(root.join("index"))
            .map(|rd| {
                let mut j: Vec<_> = rd
                    .map(|e| e.unwrap())
                    .filter(|e| e.file_name().to_string_lossy().starts_with("journal-"))
                    .map(|e| {
                        let name = format!("index/{}", e.file_name().to_string_lossy());
                        (name, std::fs::read(e.path()).unwrap())
                    })
                    .collect();
                j.sort();
                j
            })
            .unwrap_or_default();
        State {
            tree: tree(root),
            journals,
        }
    }

    /// Panics unless `root` holds the same files with the same bytes as when this state was
    /// taken, except that a journal may have grown by whole `Closed` records.
    pub fn assert_unchanged(&self, root: &Path, what: &str) {
        let now = State::of(root);
        let is_journal = |p: &String| self.journals.iter().any(|(j, _)| j == p);
        let strip = |t: &[(String, String)]| -> Vec<(String, String)> {
            t.iter().filter(|(p, _)| !is_journal(p)).cloned().collect()
        };
        assert_eq!(strip(&now.tree), strip(&self.tree), "{what}: files changed");
        let names = |s: &State| {
            s.journals
                .iter()
                .map(|(n, _)| n.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(&now), names(self), "{what}: journals changed");
        for ((name, before), (_, after)) in self.journals.iter().zip(&now.journals) {
            assert!(after.starts_with(before), "{what}: {name} was rewritten");
            let mut tail = &after[before.len()..];
            while !tail.is_empty() {
                assert!(tail.len() >= 9, "{what}: {name} ends in a partial frame");
                let len = u32::from_le_bytes(tail[..4].try_into().unwrap()) as usize;
                assert!(
                    tail[8] == CLOSED && tail.len() >= 8 + len,
                    "{what}: {name} got a record of type {} (only Closed is bookkeeping)",
                    tail[8]
                );
                tail = &tail[8 + len..];
            }
        }
    }
}
