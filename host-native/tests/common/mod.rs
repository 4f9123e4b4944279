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

/// Every path under `root` with what identifies its state: directories as `dir`, content and
/// other files by their SHA-256, journals and the snapshot by name only (opening and closing
/// appends bookkeeping records there; their effect is what the other files show).
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
            } else if rel.starts_with("index/") {
                out.push((rel, "index".into()));
            } else {
                let bytes = std::fs::read(&p).unwrap_or_default();
                out.push((rel, sha256(&bytes).to_string()));
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
