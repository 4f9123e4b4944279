#!/usr/bin/env bash
# Runs every test of the project: the README's test command, and what .ci/run calls.
#   bash tests/run-all.sh
# Format, lints (including the core's purity rules in core/clippy.toml), docs, then every test:
# unit tests, doctests, seed-lesson tests, property tests, crash enumeration, the conformance
# scenarios under tests/scenarios (native core, component in wasmtime, Node, Chromium), the
# CLI's real-process tests, pulls, exports and imports against a real docker-registry (started
# by the tests on 127.0.0.1; .ci/run installs docker-registry, skopeo and umoci), and the npm
# package's tests.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "format"
cargo fmt --all -- --check

step "conformance scenarios match their generator (tests/scenarios/generate.py)"
python3 tests/scenarios/generate.py --check

step "lints, core purity included (cargo clippy --all-targets -D warnings)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "docs (cargo doc, warnings denied)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet

step "tests"
cargo test --workspace --locked

# The npm package: wasm-bindgen build, node --test (conformance in Node over memory and node:fs,
# hostile input, storage failures, interop with the CLI just built), the same scenarios in headless
# Chromium on OPFS, and an npm pack + install smoke test. Installs what it needs.
step "npm package (bindings-js/scripts/test.sh)"
# The CLI is where cargo put it: $CARGO_TARGET_DIR when set (relative to the repo root), else target/.
# The harness's registry-peers program gives the Node tests real registries (test/support/).
cargo build --locked -p ocicache-registry-harness --bin registry-peers
TARGET_DIR="$(cd "${CARGO_TARGET_DIR:-target}" && pwd)"
OCICACHE_BIN="$TARGET_DIR/debug/ocicache" OCICACHE_REGISTRY_PEERS="$TARGET_DIR/debug/registry-peers" \
  bash bindings-js/scripts/test.sh
