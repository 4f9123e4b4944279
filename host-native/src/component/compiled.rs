//! The compiled component, kept on disk between runs.
//!
//! Compiling `ocicache.wasm` to native code takes about a second in a release build (far more in
//! a debug build); a CLI invocation must not pay that every time. The compiled artifact is kept
//! in the user's cache directory (`$OCICACHE_COMPILED_DIR`, else `$XDG_CACHE_HOME/ocicache-compiled`,
//! else `~/.cache/ocicache-compiled`; never inside a cache root), named by the component's
//! SHA-256 and wasmtime's compatibility hash, written atomically (temp file, rename). Only the
//! [`KEEP`] most recently written artifacts are kept, so rebuilds and upgrades do not pile up.
//! When that directory is unusable the component is simply compiled in memory.

use sha2::{Digest as _, Sha256};
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use wasmtime::Engine;
use wasmtime::component::Component;

/// Compiled artifacts kept (several installed versions may be in use at once).
const KEEP: usize = 4;

fn dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("OCICACHE_COMPILED_DIR") {
        return Some(PathBuf::from(d));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("ocicache-compiled"))
}

/// The embedded component's SHA-256 in hex, computed by the build script.
const EMBEDDED_SHA256: &str = include_str!(concat!(env!("OUT_DIR"), "/ocicache.wasm.sha256"));

fn file_name(engine: &Engine, wasm: &[u8]) -> String {
    // The embedded component's digest is known from the build: hashing its 1 MB at every
    // process start was a measurable part of a warm `ocicache pull`.
    let hex: String = if std::ptr::eq(wasm, super::COMPONENT_WASM) {
        EMBEDDED_SHA256[..24].to_owned()
    } else {
        let digest = Sha256::digest(wasm);
        digest[..12].iter().map(|b| format!("{b:02x}")).collect()
    };
    // `DefaultHasher::new()` has fixed keys: the same engine gives the same name in every run.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    format!("ocicache-{hex}-{:016x}.cwasm", h.finish())
}

/// The component compiled for `engine`: from the on-disk cache if present, else compiled now
/// (and stored for the next run).
pub(super) fn load(engine: &Engine, wasm: &[u8]) -> wasmtime::Result<Component> {
    let Some(dir) = dir() else {
        return Component::new(engine, wasm);
    };
    let path = dir.join(file_name(engine, wasm));
    if path.is_file()
        && let Ok(component) = deserialize(engine, &path)
    {
        return Ok(component);
    }
    let component = Component::new(engine, wasm)?;
    if let Ok(bytes) = component.serialize()
        && std::fs::create_dir_all(&dir).is_ok()
    {
        let temp = dir.join(format!(
            ".{}.{}",
            std::process::id(),
            file_name(engine, wasm)
        ));
        if std::fs::write(&temp, &bytes).is_ok() && std::fs::rename(&temp, &path).is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        prune(&dir, KEEP);
    }
    Ok(component)
}

/// Removes all but the `keep` newest artifacts (`ocicache-*.cwasm`) in `dir`; best effort.
fn prune(dir: &std::path::Path, keep: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut artifacts: Vec<(std::time::SystemTime, PathBuf)> = entries
        .flatten()
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with("ocicache-") && name.ends_with(".cwasm")
        })
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    artifacts.sort_by_key(|a| std::cmp::Reverse(a.0));
    for (_, path) in artifacts.into_iter().skip(keep) {
        let _ = std::fs::remove_file(path);
    }
}

#[allow(unsafe_code)]
fn deserialize(engine: &Engine, path: &std::path::Path) -> wasmtime::Result<Component> {
    // SAFETY: `deserialize_file` requires bytes produced by `Component::serialize` of a
    // compatible engine. The file is one this module wrote (atomically, by rename) under a name
    // that carries both the component's hash and the engine's compatibility hash, and wasmtime
    // itself checks the artifact's version and configuration header before using it. Replacing
    // it maliciously needs write access to the user's own cache directory — the trust model of
    // wasmtime's own compilation cache.
    unsafe { Component::deserialize_file(engine, path) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    #[test]
    fn only_the_newest_artifacts_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let base = SystemTime::now() - Duration::from_secs(3600);
        for i in 0..6u64 {
            let path = dir.path().join(format!("ocicache-{i}-x.cwasm"));
            let f = std::fs::File::create(&path).unwrap();
            f.set_modified(base + Duration::from_secs(i * 60)).unwrap();
        }
        std::fs::write(dir.path().join("unrelated.txt"), b"kept").unwrap();
        prune(dir.path(), 4);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "ocicache-2-x.cwasm",
                "ocicache-3-x.cwasm",
                "ocicache-4-x.cwasm",
                "ocicache-5-x.cwasm",
                "unrelated.txt"
            ]
        );
    }
}
