//! The compiled component, kept on disk between runs.
//!
//! Compiling `ocicache.wasm` to native code takes about a second in a release build (far more in
//! a debug build); a CLI invocation must not pay that every time. The compiled artifact is kept
//! in the user's cache directory (`$OCICACHE_COMPILED_DIR`, else `$XDG_CACHE_HOME/ocicache-compiled`,
//! else `~/.cache/ocicache-compiled`; never inside a cache root), named by the component's
//! SHA-256 and wasmtime's compatibility hash, written atomically (temp file, rename). When that
//! directory is unusable the component is simply compiled in memory.

use sha2::{Digest as _, Sha256};
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use wasmtime::Engine;
use wasmtime::component::Component;

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

fn file_name(engine: &Engine, wasm: &[u8]) -> String {
    let digest = Sha256::digest(wasm);
    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
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
    }
    Ok(component)
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
