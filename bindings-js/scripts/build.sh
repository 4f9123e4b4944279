#!/usr/bin/env bash
# Builds the wasm engine of the npm package into bindings-js/dist/ (gitignored):
# cargo (release, wasm32-unknown-unknown) then wasm-bindgen --target web (used by Node too).
# Installs what is missing: the wasm target, wasm-bindgen-cli at the crate's exact version.
set -euo pipefail
cd "$(dirname "$0")/../.."
WB_VERSION=0.2.130

rustup target add wasm32-unknown-unknown >/dev/null 2>&1 || true
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$WB_VERSION" ]; then
  echo "installing wasm-bindgen-cli $WB_VERSION (about 2.5 min)"
  cargo install wasm-bindgen-cli --version "$WB_VERSION"
fi
cargo build --release --locked --target wasm32-unknown-unknown -p ocicache-js
# Where cargo put it: $CARGO_TARGET_DIR when set (a relative one is taken from the repo root, as
# cargo does when run here), else target/.
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
wasm-bindgen "$TARGET_DIR/wasm32-unknown-unknown/release/ocicache_js.wasm" \
  --target web --out-dir bindings-js/dist --out-name ocicache_js
