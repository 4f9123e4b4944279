#!/usr/bin/env bash
# A first run of ocicache on this machine: builds the CLI (the component is built and embedded by
# the same `cargo build`), then stores and reads back a real OCI image — a config blob, a layer,
# its manifest and a tag — in the default cache directory (~/.cache/ocicache, or --dir DIR),
# verifies every byte and prints the statistics.
#   bash scripts/demo.sh [--dir DIR]
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add wasm32-unknown-unknown >/dev/null 2>&1 || true
cargo build --release -p ocicache --quiet
# Where cargo put it: $CARGO_TARGET_DIR when set (relative to the repo root), else target/.
BIN="$(cd "${CARGO_TARGET_DIR:-target}" && pwd)/release/ocicache"
ocicache() { "$BIN" "$@"; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

say() { printf '\n$ ocicache %s\n' "$*"; }
run() { say "$*"; ocicache "$@"; }

# A small layer (a tar of this README) and an image config naming it.
tar -cf "$work/layer.tar" README.md
layer=$(ocicache "$@" blob put "$work/layer.tar")
say "$* blob put layer.tar"; echo "$layer"
size=$(stat -c %s "$work/layer.tar")
cat >"$work/config.json" <<JSON
{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["$layer"]}}
JSON
config=$(ocicache "$@" blob put "$work/config.json")
say "$* blob put config.json"; echo "$config"
config_size=$(stat -c %s "$work/config.json")
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"%s","size":%s}]}' \
  "$config" "$config_size" "$layer" "$size" >"$work/manifest.json"
manifest=$(ocicache "$@" manifest put "$work/manifest.json" | cut -d" " -f1)
say "$* manifest put manifest.json"; echo "$manifest"

run "$@" tag set demo.example/ocicache/readme:latest "$manifest"
run "$@" tag get demo.example/ocicache/readme:latest
run "$@" blob get "$layer" -o "$work/layer.out"
cmp "$work/layer.tar" "$work/layer.out" && echo "(layer read back byte for byte)"
run "$@" ls
run "$@" verify
run "$@" stats
