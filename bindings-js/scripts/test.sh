#!/usr/bin/env bash
# Every test of the npm package: build, node --test, headless Chromium (OPFS), npm pack smoke
# test. Installs what it needs (npm devDependencies, Debian chromium) and skips what is present.
#   bash bindings-js/scripts/test.sh
set -euo pipefail
PKG="$(cd "$(dirname "$0")/.." && pwd)"
cd "$PKG"
step() { printf '\n== %s\n' "$*"; }

step "build the wasm engine"
bash scripts/build.sh

step "npm devDependencies (playwright-core, cacache)"
if [ ! -d node_modules/playwright-core ] || [ ! -d node_modules/cacache ]; then
  npm ci --no-audit --no-fund
fi

if [ ! -x /usr/bin/chromium ]; then
  step "Debian chromium (for the browser tests)"
  if [ "$(id -u)" = 0 ]; then
    (apt-get install -y chromium >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y chromium >/dev/null; }) \
      || echo "could not install chromium: the browser tests will skip"
  else
    echo "not root: the browser tests will skip unless chromium is installed"
  fi
fi

step "node --test (conformance over memory and node:fs, hostile input, storage failures, CLI interop)"
node --test test/*.test.mjs

step "npm pack, install into an empty folder, run the README's Node example"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
tarball="$(npm pack --silent --pack-destination "$work" | tail -1)"
mkdir "$work/app"
( cd "$work/app" && npm init -y >/dev/null && npm install --no-audit --no-fund "$work/$tarball" >/dev/null )
# The first ```js block of README.md, unchanged.
awk '/^```js$/{f=1;next} /^```$/{if(f){exit}} f' README.md > "$work/app/example.mjs"
out="$(cd "$work/app" && node example.mjs)"
echo "$out"
echo "$out" | grep -q '^fresh$'
echo "$out" | grep -q 'miss: not_found'
echo "$out" | grep -q 'healthy'
# The pull example (README, "Pulling from a registry"), unchanged, against a local registry.
awk '/^### Pulling from a registry/{h=1} h&&/^```js$/{f=1;next} f&&/^```$/{exit} f' README.md > "$work/app/pull.mjs"
node test/support/pack-pull-smoke.mjs "$work/app"
[ -z "$(cd "$work/app" && npm ls --omit=dev --parseable 2>/dev/null | tail -n +2 | grep -v '/ocicache$' || true)" ] \
  || { echo "the package pulled runtime dependencies"; exit 1; }
echo "npm pack smoke test: ok ($tarball)"
