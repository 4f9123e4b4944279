#!/usr/bin/env bash
# CLI benchmark (issue 3): a 1 GiB blob through the `ocicache` binary, both engines, against
# sha256sum / cat / dd+fsync on the same file in the same run.
#
#   host-native/benches/cli.sh [RUNS]        (default 3 runs per command; the best is reported)
#
# Builds `--release` first. Times with `date +%s%N`. The file lives
# under $BENCH_DIR (default: a temp dir on the same filesystem as /tmp) and is in the page cache
# for every read. `blob put` is durable: it fsyncs the 1 GiB file and the directory, so the disk's
# synced write speed bounds it (TOOLCHAIN.md: dd with conv=fsync ≈ 450 MiB/s; measured here too).
# `blob get -o OUT` also fsyncs OUT (written atomically); `blob get` re-hashes while it reads.
set -euo pipefail

RUNS=${1:-3}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
cargo build --release -p ocicache --bin ocicache >&2
BIN="$ROOT/target/release/ocicache"

WORK=$(mktemp -d "${BENCH_DIR:-/tmp}/ocicache-cli-bench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
FILE="$WORK/blob.bin"
MIB=1024
echo "creating a $MIB MiB pseudo-random file in $WORK" >&2
head -c $((MIB << 20)) /dev/urandom >"$FILE"
cat "$FILE" >/dev/null # page cache

# Best (minimum) wall time in seconds of RUNS runs of "$@"; PREP (if set) runs untimed before each.
best() {
    local best_ns="" t0 t1 ns i
    for ((i = 0; i < RUNS; i++)); do
        if [[ -n "${PREP:-}" ]]; then eval "$PREP"; fi
        t0=$(date +%s%N)
        "$@" >/dev/null
        t1=$(date +%s%N)
        ns=$((t1 - t0))
        if [[ -z "$best_ns" || $ns -lt $best_ns ]]; then best_ns=$ns; fi
    done
    printf '%.3f\n' "$(echo "scale=6; $best_ns / 1000000000" | bc)"
}

# hyperfine is not installed on this machine (the brief: use it only if already installed), so
# the timer is plain `date +%s%N` around each run.
timer="date +%s%N (best of $RUNS runs)"

mibs() { echo "scale=0; $MIB / $1" | bc; }
ratio() { printf '%.3f' "$(echo "scale=6; $2 / $1" | bc)"; } # ratio A B = B/A (time of reference / time) as speed ratio

declare -A T
T[sha256sum]=$(best sha256sum "$FILE")
T[cat]=$(best cat "$FILE")
# coreutils' sha256sum (Debian 12) does not use the CPU's SHA extensions; OpenSSL does, and is
# the hardware-hashing reference (TOOLCHAIN.md: ~950 MiB/s).
HAVE_OPENSSL=0
if command -v openssl >/dev/null 2>&1; then
    HAVE_OPENSSL=1
    T[openssl]=$(best openssl dgst -sha256 "$FILE")
fi
PREP="rm -f $WORK/dd.out"
T[dd_fsync]=$(best dd if="$FILE" of="$WORK/dd.out" bs=1M conv=fsync status=none)
rm -f "$WORK/dd.out"

for engine in component native; do
    D="$WORK/cache-$engine"
    # Each put starts from an empty cache directory (the blob is new every time).
    C=("$BIN" --dir "$D" --engine "$engine" --max-bytes $((4 << 30)))
    PREP="rm -rf $D"
    T[put_$engine]=$(best "${C[@]}" blob put "$FILE")
    DIGEST=$("${C[@]}" blob put "$FILE")
    PREP="rm -f $WORK/out.bin"
    T[get_$engine]=$(best "${C[@]}" blob get "$DIGEST" -o "$WORK/out.bin")
    cmp "$FILE" "$WORK/out.bin"
    rm -f "$WORK/out.bin"
    PREP=""
    T[getnull_$engine]=$(best "${C[@]}" blob get "$DIGEST" -o /dev/null)
done

echo "ocicache CLI, 1 GiB blob, timer: $timer; file and cache in $(df --output=source "$WORK" | tail -1) (page cache warm)"
printf '  %-48s %8s s %6s MiB/s\n' \
    "sha256sum FILE" "${T[sha256sum]}" "$(mibs "${T[sha256sum]}")" \
    "cat FILE > /dev/null" "${T[cat]}" "$(mibs "${T[cat]}")" \
    "dd bs=1M conv=fsync (synced-write floor)" "${T[dd_fsync]}" "$(mibs "${T[dd_fsync]}")"
if ((HAVE_OPENSSL)); then
    printf '  %-48s %8s s %6s MiB/s\n' "openssl dgst -sha256 FILE (SHA-NI)" "${T[openssl]}" "$(mibs "${T[openssl]}")"
fi
for engine in component native; do
    extra=""
    if ((HAVE_OPENSSL)); then extra=", vs openssl $(ratio "${T[put_$engine]}" "${T[openssl]}")"; fi
    printf '  %-48s %8s s %6s MiB/s   vs sha256sum %s, vs dd+fsync %s%s\n' \
        "ocicache --engine $engine blob put FILE" "${T[put_$engine]}" "$(mibs "${T[put_$engine]}")" \
        "$(ratio "${T[put_$engine]}" "${T[sha256sum]}")" "$(ratio "${T[put_$engine]}" "${T[dd_fsync]}")" "$extra"
    printf '  %-48s %8s s %6s MiB/s   vs cat %s, vs sha256sum %s\n' \
        "ocicache --engine $engine blob get -o OUT" "${T[get_$engine]}" "$(mibs "${T[get_$engine]}")" \
        "$(ratio "${T[get_$engine]}" "${T[cat]}")" "$(ratio "${T[get_$engine]}" "${T[sha256sum]}")"
    printf '  %-48s %8s s %6s MiB/s   vs cat %s, vs sha256sum %s\n' \
        "ocicache --engine $engine blob get -o /dev/null" "${T[getnull_$engine]}" "$(mibs "${T[getnull_$engine]}")" \
        "$(ratio "${T[getnull_$engine]}" "${T[cat]}")" "$(ratio "${T[getnull_$engine]}" "${T[sha256sum]}")"
done
echo "  ratios are speed ratios (reference time / ocicache time); put includes fsync of 1 GiB + directory, get -o OUT fsyncs OUT, and every get re-hashes (verify_reads)"
