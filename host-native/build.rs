//! Builds `ocicache.wasm`, the component the host runs, so that `cargo build -p ocicache` needs
//! no manual step: a nested `cargo rustc` compiles the guest glue (`core/component`) for
//! `wasm32-unknown-unknown` into its own target directory (`target/guest`, which keeps it clear
//! of this build's lock), and `wit-component` turns the module into a component — what
//! `wasm-tools component new` does. The result is embedded with `include_bytes!` and also copied
//! beside the build's other outputs (`target/ocicache.wasm`) for other runtimes.
//!
//! `OCICACHE_COMPONENT=/path/to/ocicache.wasm` skips the nested build and embeds that file.

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const GUEST: &str = "ocicache-component";
const TARGET: &str = "wasm32-unknown-unknown";

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest_dir
        .parent()
        .expect("host-native is in the workspace");
    let out = PathBuf::from(env::var("OUT_DIR").expect("set by cargo")).join("ocicache.wasm");
    println!("cargo:rerun-if-env-changed=OCICACHE_COMPONENT");

    if let Ok(prebuilt) = env::var("OCICACHE_COMPONENT") {
        println!("cargo:rerun-if-changed={prebuilt}");
        std::fs::copy(&prebuilt, &out)
            .unwrap_or_else(|e| panic!("OCICACHE_COMPONENT={prebuilt}: {e}"));
        write_digest(&out);
        return;
    }
    for input in [
        "core/src",
        "core/Cargo.toml",
        "core/component/src",
        "core/component/Cargo.toml",
        "wit",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(input).display());
    }

    let target_root = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let guest_target = target_root.join("guest");
    build_guest(root, &guest_target);

    let module_path = guest_target
        .join(TARGET)
        .join("release")
        .join(format!("{}.wasm", GUEST.replace('-', "_")));
    let module = std::fs::read(&module_path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", module_path.display()));
    let component = wit_component::ComponentEncoder::default()
        .module(&module)
        .and_then(|encoder| encoder.validate(true).encode())
        .unwrap_or_else(|e| panic!("componentizing {}: {e:?}", module_path.display()));
    std::fs::write(&out, &component).expect("writing the component");
    write_digest(&out);
    // Beside the build's outputs too, for jco, wasmtime's CLI or inspection with wasm-tools.
    let _ = std::fs::write(target_root.join("ocicache.wasm"), &component);
}

/// `ocicache.wasm.sha256` beside the component: its SHA-256 in hex, which names its compiled
/// form in the on-disk cache (`src/component/compiled.rs`) without hashing 1 MB at each start.
fn write_digest(component: &Path) {
    use sha2::Digest as _;
    let bytes = std::fs::read(component).expect("reading the component");
    let hex: String = sha2::Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    std::fs::write(component.with_extension("wasm.sha256"), hex).expect("writing its digest");
}

/// `cargo rustc -p ocicache-component --release --target wasm32-unknown-unknown --crate-type cdylib`
/// with an environment cleared of what the outer cargo set for this build script.
fn build_guest(root: &Path, target_dir: &Path) {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args(["rustc", "--quiet", "--locked", "--release", "-p", GUEST])
        .args(["--target", TARGET, "--crate-type", "cdylib", "--target-dir"])
        .arg(target_dir);
    for (key, _) in env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        // Flags, wrappers (clippy's), the target and the jobserver of the outer build belong
        // to it, not to the guest's.
        let outer = matches!(
            key,
            "RUSTFLAGS"
                | "RUSTC_WORKSPACE_WRAPPER"
                | "CARGO_ENCODED_RUSTFLAGS"
                | "CARGO_TARGET_DIR"
                | "CARGO_BUILD_TARGET"
                | "CARGO_MAKEFLAGS"
                | "MAKEFLAGS"
                | "MFLAGS"
                | "CARGO_PRIMARY_PACKAGE"
        ) || key.starts_with("CARGO_CFG_")
            || key.starts_with("CARGO_FEATURE_")
            || key.starts_with("CARGO_PKG_")
            || key.starts_with("CARGO_MANIFEST_");
        if outer {
            cmd.env_remove(key);
        }
    }
    // Not the outer build's stdin: cargo probes rustc with `rustc -`, which would read it.
    let status = cmd
        .stdin(Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("running cargo for the guest: {e}"));
    if !status.success() {
        panic!(
            "building the {GUEST} guest for {TARGET} failed ({status}). Is the target installed? \
             `rustup target add {TARGET}`"
        );
    }
}
