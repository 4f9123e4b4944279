#!/usr/bin/env bash
# Pull benchmark (issue 10): `ocicache pull` against `skopeo copy docker://… oci:DIR`, same run,
# same local registry.
#
#   host-native/benches/pull.sh [RUNS]       (default 3 runs per command; the best is reported)
#
# Builds `--release` first (into $CARGO_TARGET_DIR if set), unless $OCICACHE_BIN names the binary
# to measure. Starts Debian's `docker-registry`
# (distribution 2.8) on a free 127.0.0.1 port with filesystem storage in a temp dir under
# $BENCH_DIR (default /tmp), builds an OCI image layout of 4 uncompressed tar layers of 64 MiB of
# pseudo-random bytes (256 MiB, incompressible) and pushes it with skopeo as bench:1.
#
# 1. cold pull: into an empty cache / an empty layout each run;
# 2. warm pull: the same ref into a cache holding it under a fresh tag (0 requests) / skopeo's
#    second copy into the same, already complete layout (best of 10 × RUNS: milliseconds); and
#    the same warm pull in-process (examples/warm_pull.rs: the cache open already, as in a
#    program embedding the crate), where no process start is counted;
# 3. resume: a proxy (pull_proxy.py) cuts the first GET of one layer after half its bytes; the
#    pull retries with Range in the same process. Bytes come from the `--json` report. The full
#    re-download it is compared with is measured, not assumed: a second pull through the proxy
#    also strips `Range` from requests, so the registry answers 200 with the whole blob.
#
# skopeo, for a fair comparison: `--dest-oci-accept-uncompressed-layers` (skopeo 1.9.3 gzips
# uncompressed layers written to an `oci:` destination by default, which costs CPU and changes
# the digests; with the flag it stores the registry's bytes as they are, like ocicache), and
# nothing is decompressed (the layers are plain tars). skopeo downloads up to 6 layers at a
# time (containers/image's default), ocicache 4 (`--jobs`'s default). Both verify digests and
# fsync every blob they store (strace: skopeo 1.9.3 fsyncs each blob file of an oci: layout).
# The push uses `--preserve-digests` (a docker:// destination would gzip the layers too).
#
# Loopback HTTP to a registry on the same machine: CPU (hashing, copying, fsync) is what is
# measured, not a network. The component engine starts from a compiled component kept in
# $WORK/compiled (OCICACHE_COMPILED_DIR), filled by an untimed first run.
#
# Exits non-zero only when something fails to run; goals missed are reported, not failed.
set -euo pipefail

RUNS=${1:-3}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
if [[ -n "${OCICACHE_BIN:-}" ]]; then
    BIN=$OCICACHE_BIN
else
    cargo build --release -p ocicache --bin ocicache >&2
    BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/ocicache"
fi
# In-process warm pulls (a program embedding the crate): host-native/examples/warm_pull.rs.
cargo build --release -p ocicache --example warm_pull >&2
WARM_PULL="$(cd "${CARGO_TARGET_DIR:-$ROOT/target}" && pwd)/release/examples/warm_pull"
PROXY="$ROOT/host-native/benches/pull_proxy.py"
for tool in docker-registry skopeo python3 jq curl bc; do
    command -v "$tool" >/dev/null || { echo "pull.sh: $tool is not installed" >&2; exit 1; }
done

WORK=$(mktemp -d "${BENCH_DIR:-/tmp}/ocicache-pull-bench.XXXXXX")
REGISTRY_PID=""
PROXY_PID=""
cleanup() {
    if [[ -n "$PROXY_PID" ]]; then kill "$PROXY_PID" 2>/dev/null || true; fi
    if [[ -n "$REGISTRY_PID" ]]; then kill "$REGISTRY_PID" 2>/dev/null || true; wait "$REGISTRY_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT
export OCICACHE_COMPILED_DIR="$WORK/compiled"

# --- the registry --------------------------------------------------------------------------------
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
start_registry() {
    local attempt
    for attempt in 1 2 3 4 5; do
        PORT=$(free_port)
        # JSON is YAML: distribution reads it as its config file.
        cat >"$WORK/registry.json" <<EOF
{"version": "0.1",
 "log": {"level": "warn", "formatter": "text", "accesslog": {"disabled": true}},
 "storage": {"filesystem": {"rootdirectory": "$WORK/registry"},
             "maintenance": {"uploadpurging": {"enabled": false}}},
 "http": {"addr": "127.0.0.1:$PORT", "secret": "ocicache-pull-bench"}}
EOF
        docker-registry serve "$WORK/registry.json" >"$WORK/registry.log" 2>&1 &
        REGISTRY_PID=$!
        local i
        for ((i = 0; i < 100; i++)); do
            if curl -fs "http://127.0.0.1:$PORT/v2/" >/dev/null; then return 0; fi
            if ! kill -0 "$REGISTRY_PID" 2>/dev/null; then break; fi
            sleep 0.1
        done
        kill "$REGISTRY_PID" 2>/dev/null || true
        wait "$REGISTRY_PID" 2>/dev/null || true
        REGISTRY_PID=""
        echo "pull.sh: registry start $attempt failed:" >&2
        cat "$WORK/registry.log" >&2
    done
    exit 1
}
start_registry
REG="127.0.0.1:$PORT"
echo "registry on $REG, storage in $WORK/registry" >&2

# --- the image: 4 × 64 MiB uncompressed tar layers, by hand -------------------------------------
LAYER_MIB=64
python3 - "$WORK/layout" "$LAYER_MIB" <<'EOF'
import hashlib, io, json, os, sys, tarfile
layout, mib = sys.argv[1], int(sys.argv[2])
blobs = os.path.join(layout, "blobs", "sha256")
os.makedirs(blobs)
def put(data):
    d = hashlib.sha256(data).hexdigest()
    with open(os.path.join(blobs, d), "wb") as f:
        f.write(data)
    return "sha256:" + d
layers = []
for i in range(4):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(f"layer{i}.bin")
        info.size, info.mtime, info.mode = mib << 20, 0, 0o644
        tar.addfile(info, io.BytesIO(os.urandom(mib << 20)))
    data = buf.getvalue()
    layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar",
                   "digest": put(data), "size": len(data)})
config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                     "rootfs": {"type": "layers", "diff_ids": [l["digest"] for l in layers]}}).encode()
manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                  "digest": put(config), "size": len(config)},
                       "layers": layers}).encode()
index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
         "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "digest": put(manifest), "size": len(manifest),
                        "annotations": {"org.opencontainers.image.ref.name": "1"}}]}
with open(os.path.join(layout, "index.json"), "w") as f:
    json.dump(index, f)
with open(os.path.join(layout, "oci-layout"), "w") as f:
    json.dump({"imageLayoutVersion": "1.0.0"}, f)
EOF
skopeo copy --quiet --preserve-digests --dest-tls-verify=false "oci:$WORK/layout:1" "docker://$REG/bench:1" >&2
MANIFEST_DIGEST=$(jq -r '.manifests[0].digest' "$WORK/layout/index.json")
PUSHED=$(skopeo inspect --raw --tls-verify=false "docker://$REG/bench:1" | sha256sum | cut -d' ' -f1)
if [[ "sha256:$PUSHED" != "$MANIFEST_DIGEST" ]]; then
    echo "pull.sh: the pushed manifest differs from the layout's ($PUSHED, $MANIFEST_DIGEST)" >&2
    exit 1
fi
MANIFEST=$(cat "$WORK/layout/blobs/sha256/${MANIFEST_DIGEST#sha256:}")
TOTAL=$(jq '[.layers[].size] | add' <<<"$MANIFEST")
CUT_DIGEST=$(jq -r '.layers[0].digest' <<<"$MANIFEST")
CUT_SIZE=$(jq '.layers[0].size' <<<"$MANIFEST")
rm -rf "$WORK/layout"
MIB=$(echo "scale=1; $TOTAL / 1048576" | bc)
echo "pushed $REG/bench:1 ($MANIFEST_DIGEST): 4 layers, $TOTAL bytes ($MIB MiB)" >&2

# --- timing --------------------------------------------------------------------------------------
# Microseconds since the epoch, from bash itself: `date +%s%N` would add its own process start
# (about 1 ms here) to every measurement, as much as a warm pull takes.
now_us() { local t=${EPOCHREALTIME/[.,]/}; echo $((10#$t)); }
# Best (minimum) wall time in seconds of RUNS runs of "$@"; PREP (if set) runs untimed before each.
best() {
    local best_us="" t0 t1 us i
    for ((i = 0; i < RUNS; i++)); do
        if [[ -n "${PREP:-}" ]]; then eval "$PREP"; fi
        t0=${EPOCHREALTIME/[.,]/}
        "$@" >/dev/null
        t1=${EPOCHREALTIME/[.,]/}
        us=$((10#$t1 - 10#$t0))
        if [[ -z "$best_us" || $us -lt $best_us ]]; then best_us=$us; fi
    done
    printf '%.4f\n' "$(echo "scale=6; $best_us / 1000000" | bc)"
}
ratio() { printf '%.2f' "$(echo "scale=6; $2 / $1" | bc)"; } # ratio A B = B/A: speed of A relative to B
mibs() { echo "scale=0; $TOTAL / 1048576 / $1" | bc; }
sync_now() { sync; }

SKOPEO=(skopeo copy --quiet --src-tls-verify=false --dest-oci-accept-uncompressed-layers)
declare -A T

# First run of the component engine compiles it into $OCICACHE_COMPILED_DIR (untimed).
"$BIN" --dir "$WORK/warmup" stats >/dev/null
rm -rf "$WORK/warmup"

# 1. cold pull. Everything is synced before each run so that neither side pays for the
# other's dirty pages.
PREP="rm -rf $WORK/skopeo-cold; sync_now"
T[cold_skopeo]=$(best "${SKOPEO[@]}" "docker://$REG/bench:1" "oci:$WORK/skopeo-cold:1")
for engine in component native; do
    PREP="rm -rf $WORK/cache-cold; sync_now"
    T[cold_$engine]=$(best "$BIN" --dir "$WORK/cache-cold" --engine "$engine" pull "$REG/bench:1")
    "$BIN" --dir "$WORK/cache-cold" --engine "$engine" verify >/dev/null
    rm -rf "$WORK/cache-cold"
done

# 2. warm pull: the layout and the cache hold everything; the cache's tag is fresh. These take
# milliseconds (process start alone is about 1 ms here), so the best of 10 × RUNS runs is kept.
PREP=""
COLD_RUNS=$RUNS
RUNS=$((COLD_RUNS * 10))
# Process start alone, for scale: what no pull can go below.
T[start_ocicache]=$(best "$BIN" --version)
T[start_skopeo]=$(best skopeo --version)
T[warm_skopeo]=$(best "${SKOPEO[@]}" "docker://$REG/bench:1" "oci:$WORK/skopeo-cold:1")
rm -rf "$WORK/skopeo-cold"
"$BIN" --dir "$WORK/cache" pull "$REG/bench:1" >/dev/null
for engine in component native; do
    T[warm_$engine]=$(best "$BIN" --dir "$WORK/cache" --engine "$engine" pull "$REG/bench:1")
    WARM_REPORT=$("$BIN" --dir "$WORK/cache" --engine "$engine" --json pull "$REG/bench:1")
    if [[ $(jq -r '.tag.state' <<<"$WARM_REPORT") != fresh || $(jq '.requests' <<<"$WARM_REPORT") != 0 ]]; then
        echo "pull.sh: the warm pull was not served from the cache alone: $WARM_REPORT" >&2
        exit 1
    fi
    # The same warm pull in a process that has the cache open already: best and median of
    # 100 × RUNS pulls.
    read -r T[inproc_$engine] T[inproc_median_$engine] < <("$WARM_PULL" "$WORK/cache" "$REG/bench:1" $((COLD_RUNS * 100)) "$engine")
done
rm -rf "$WORK/cache"
RUNS=$COLD_RUNS

# 3. resume: one layer's first GET is cut at half its bytes. A pull that fails here is reported
# in the table (and the script exits non-zero after it).
HALF=$((CUT_SIZE / 2))
FAILED=0
declare -A RESUME
resume_pull() { # resume_pull NAME [--strip-range]: sets RESUME[NAME] and T[resume_NAME]
    local name=$1
    shift
    rm -f "$WORK/proxy.port"
    python3 "$PROXY" "$PORT" "/blobs/$CUT_DIGEST" "$HALF" "$WORK/proxy.port" "$@" 2>"$WORK/proxy-$name.log" &
    PROXY_PID=$!
    local i proxy_port t0 t1 status=0
    for ((i = 0; i < 200; i++)); do
        if [[ -s "$WORK/proxy.port" ]]; then break; fi
        sleep 0.05
    done
    proxy_port=$(cat "$WORK/proxy.port")
    t0=$(now_us)
    "$BIN" --dir "$WORK/cache-$name" --json pull "127.0.0.1:$proxy_port/bench:1" \
        >"$WORK/report-$name.json" 2>"$WORK/pull-$name.err" || status=$?
    t1=$(now_us)
    kill "$PROXY_PID"
    wait "$PROXY_PID" 2>/dev/null || true
    PROXY_PID=""
    T[resume_$name]=$(printf '%.3f' "$(echo "scale=6; ($t1 - $t0) / 1000000" | bc)")
    if ! grep -q "cut the blob's body after $HALF bytes" "$WORK/proxy-$name.log"; then
        echo "pull.sh: the proxy did not cut the download:" >&2
        cat "$WORK/proxy-$name.log" >&2
        exit 1
    fi
    if ((status != 0)); then
        RESUME[$name]="FAILED (exit $status): $(tr '\n' ' ' <"$WORK/pull-$name.err")"
        FAILED=1
    else
        "$BIN" --dir "$WORK/cache-$name" verify >/dev/null
        local size fetched from
        size=$(jq --arg d "$CUT_DIGEST" '.blobs[] | select(.digest == $d) | .size' "$WORK/report-$name.json")
        fetched=$(jq --arg d "$CUT_DIGEST" '.blobs[] | select(.digest == $d) | .fetched' "$WORK/report-$name.json")
        from=$(jq -r --arg d "$CUT_DIGEST" '.blobs[] | select(.digest == $d) | .resumed_from // "none"' "$WORK/report-$name.json")
        RESUME[$name]=$(printf '%s bytes fetched for the blob = %s x its size (%s after the break = %s x); resumed_from %s; %s s' \
            "$fetched" "$(printf '%.2f' "$(echo "scale=6; $fetched / $size" | bc)")" \
            "$((fetched - HALF))" "$(printf '%.2f' "$(echo "scale=6; ($fetched - $HALF) / $size" | bc)")" \
            "$from" "${T[resume_$name]}")
    fi
    RESUME[${name}_ranges]=$(grep -c "GET blob, range: [Rr]ange" "$WORK/proxy-$name.log" || true)
    rm -rf "$WORK/cache-$name"
}
resume_pull range
resume_pull norange --strip-range

# --- the table -----------------------------------------------------------------------------------
echo
echo "ocicache pull vs skopeo copy docker://… oci:DIR, $REG (docker-registry $(docker-registry --version 2>/dev/null | awk '{print $3}'), loopback HTTP)"
echo "image: 4 uncompressed tar layers, $TOTAL bytes ($MIB MiB), pseudo-random; timer: bash \$EPOCHREALTIME, best of $RUNS runs (warm: $((RUNS * 10)))"
echo "machine: $(nproc) cores, load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '  %-62s %8s s %5s MiB/s\n' \
    "cold: skopeo copy (accept uncompressed layers)" "${T[cold_skopeo]}" "$(mibs "${T[cold_skopeo]}")"
for engine in component native; do
    printf '  %-62s %8s s %5s MiB/s   %sx skopeo (goal >= 1)\n' \
        "cold: ocicache --engine $engine pull" "${T[cold_$engine]}" "$(mibs "${T[cold_$engine]}")" \
        "$(ratio "${T[cold_$engine]}" "${T[cold_skopeo]}")"
done
printf '  %-62s %8s s\n' "start: ocicache --version (process start, for scale)" "${T[start_ocicache]}" \
    "start: skopeo --version (process start, for scale)" "${T[start_skopeo]}" \
    "warm: skopeo copy into the complete layout" "${T[warm_skopeo]}"
for engine in component native; do
    printf '  %-62s %8s s            %sx skopeo (goal >= 20)\n' \
        "warm: ocicache --engine $engine pull (fresh tag, 0 requests)" "${T[warm_$engine]}" \
        "$(ratio "${T[warm_$engine]}" "${T[warm_skopeo]}")"
done
for engine in component native; do
    printf '  %-62s %8s s            %sx skopeo (goal >= 20)\n' \
        "warm: Cache::pull in-process, $engine (best; median ${T[inproc_median_$engine]} s)" "${T[inproc_$engine]}" \
        "$(ratio "${T[inproc_$engine]}" "${T[warm_skopeo]}")"
done
echo "    (in-process: a program that embeds the ocicache crate and keeps the cache open; examples/warm_pull.rs)"
echo "  resume: layer $CUT_DIGEST ($CUT_SIZE bytes), its first GET cut after $HALF bytes (50 %)"
echo "    registry honours Range:            ${RESUME[range]}"
echo "      (GETs of the blob with a Range header: ${RESUME[range_ranges]})"
echo "    Range stripped (full re-download): ${RESUME[norange]}"
echo "  ratios: skopeo time / ocicache time (higher is better for ocicache); both fsync every blob they store"
if ((FAILED)); then
    echo "pull.sh: a pull failed (see the table)" >&2
    exit 1
fi
