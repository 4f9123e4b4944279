#!/usr/bin/env bash
# Soak test of the `ocicache` CLI under SIGKILL (issue 9). Not run by CI: it takes minutes.
#
#   bash scripts/soak.sh [--kills N] [--seconds S] [--procs P] [--max-bytes B]
#                        [--engine component|native] [--bin PATH] [--seed SEED] [--keep]
#
# Phase 1 (--kills, default 500): one process at a time runs `blob put`, `tag set`, `blob get` or
#   `blob rm` and is SIGKILLed, at a random delay or, one time in four, at an exact point inside
#   the operation (the test-only pause points of host-native/src/test_pause.rs). After each kill
#   `ocicache verify` must say healthy with nothing unindexed, and the state must agree with a
#   model: a put or tag set that returned success stays; a killed one either happened or did not.
# Phase 2 (--seconds, default 180; --procs, default 5): P processes loop over put/get/has/tag
#   set/tag get on one directory capped by config.json (--max-bytes, default 48 MiB), while a
#   killer SIGKILLs one of their `ocicache` processes every 50–400 ms and runs `verify` after each
#   kill. Evictions are expected; a failed verify, a wrong byte or an undocumented exit is not.
#
# Every byte served (`blob get`, to a file or stdout) is checked with sha256sum against its digest.
# Everything is bounded (each command is killed or runs under `timeout`; each phase has a deadline),
# uses no network, and lives in a temp dir removed at exit (--keep keeps it). Exits 1 on any failure,
# with the failures listed; the last line is a summary of kills, operations and bytes checked.
set -uo pipefail

KILLS=500 SECONDS_P2=180 PROCS=5 MAX_BYTES=$((48 << 20)) ENGINE=component BIN="" SEED=$$ KEEP=0
while [ $# -gt 0 ]; do
    case $1 in
    --kills) KILLS=$2; shift 2 ;;
    --seconds) SECONDS_P2=$2; shift 2 ;;
    --procs) PROCS=$2; shift 2 ;;
    --max-bytes) MAX_BYTES=$2; shift 2 ;;
    --engine) ENGINE=$2; shift 2 ;;
    --bin) BIN=$2; shift 2 ;;
    --seed) SEED=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h | --help) sed -n '2,/^set /p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "soak.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "$BIN" ]; then
    (cd "$ROOT" && cargo build --release -p ocicache --bin ocicache >&2) || exit 2
    BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/ocicache"
fi
[ -x "$BIN" ] || { echo "soak.sh: no binary at $BIN" >&2; exit 2; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ocicache-soak.XXXXXX")
PIDS_TO_STOP=()
cleanup() {
    for p in "${PIDS_TO_STOP[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    if [ "$KEEP" = 1 ]; then echo "soak.sh: kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
RANDOM=$SEED
FAILS="$WORK/failures"
: >"$FAILS"
STEP=30 # seconds any single command may take before it counts as hung

fail() { echo "FAIL: $*" | tee -a "$FAILS" >&2; }
oc() { timeout -s KILL "$STEP" "$BIN" --engine "$ENGINE" --dir "$1" "${@:2}"; }
hex_of() { sha256sum "$1" | cut -c1-64; }
# A random integer in [lo, hi].
rnd() { echo $(($1 + (RANDOM * 32768 + RANDOM) % ($2 - $1 + 1))); }
# A file of N random bytes.
make_data() { head -c "$2" /dev/urandom >"$1"; }

# `verify` of DIR must be healthy with nothing unindexed. Counts as one operation.
check_verify() {
    local dir=$1 context=$2 out rc
    out=$(oc "$dir" verify 2>&1)
    rc=$?
    OPS=$((OPS + 1))
    if [ $rc -ne 0 ] || ! grep -q 'unindexed 0$\|unindexed 0,' <<<"$out" || ! grep -q '^healthy$' <<<"$out"; then
        fail "$context: verify exited $rc: $(tr '\n' ' ' <<<"$out")"
        # Repair, so that one failure does not make every later check fail too.
        oc "$dir" repair >/dev/null 2>&1 || fail "$context: repair exited $?"
        OPS=$((OPS + 1))
    fi
}

# Reads blob HEX from DIR into a file and checks every byte. Sets STATE (present, absent or
# error) and adds the bytes checked to BYTES.
check_get() {
    local dir=$1 hex=$2 context=$3 out="$WORK/get.out" rc
    rm -f "$out"
    oc "$dir" blob get "sha256:$hex" -o "$out" 2>"$WORK/get.err"
    rc=$?
    OPS=$((OPS + 1))
    case $rc in
    0)
        if [ "$(hex_of "$out")" != "$hex" ]; then
            fail "$context: wrong bytes served for $hex"
        fi
        BYTES=$((BYTES + $(stat -c %s "$out")))
        STATE=present
        ;;
    1) [ -e "$out" ] && fail "$context: not found, yet $out written"; STATE=absent ;;
    *) fail "$context: blob get exited $rc: $(cat "$WORK/get.err")"; STATE=error ;;
    esac
}

###############################################################################
# Phase 1: SIGKILL loop, one process at a time, checked against a model.
###############################################################################
D1="$WORK/kill-cache"
IN="$WORK/in"
mkdir -p "$IN" "$WORK/out"
declare -A COMMITTED=() # hex -> size: puts that returned success (and were not removed)
declare -A MAYBE=()     # hex -> size: killed puts/removes: either stored or not
declare -A TAGS=()      # ref -> space-separated digests it may point to ("none" allowed)
KILLED=0 OPS=0 BYTES=0 EXACT=0 FINISHED=0 ADOPTED=0 DROPPED=0
REFS=(soak.example/app:a soak.example/app:b soak.example/lib:1 localhost:5000/x/y:z)
for r in "${REFS[@]}"; do TAGS[$r]=none; done

# Runs "$@" (an ocicache command line after the binary) in the background and SIGKILLs it:
# at POINT (a test pause point) if set, else after DELAY_MS. Sets RC (137 when killed),
# HIT (1 when killed at the point) and WHAT (the command, for messages).
run_and_kill() {
    local marker="$WORK/pause.marker" pid waited=0
    rm -f "$marker"
    WHAT="$*"
    if [ -n "$POINT" ]; then
        OCICACHE_TEST_PAUSE=$POINT OCICACHE_TEST_PAUSE_MARKER=$marker \
            "$BIN" --engine "$ENGINE" --dir "$D1" "$@" >"$WORK/op.out" 2>"$WORK/op.err" &
        pid=$!
        # Bounded: the pause itself lasts at most 120 s (test_pause::MAX_PAUSE).
        while ! grep -q . "$marker" 2>/dev/null && kill -0 "$pid" 2>/dev/null && [ $waited -lt $((STEP * 100)) ]; do
            sleep 0.01
            waited=$((waited + 1))
        done
    else
        "$BIN" --engine "$ENGINE" --dir "$D1" "$@" >"$WORK/op.out" 2>"$WORK/op.err" &
        pid=$!
        sleep "$(printf '%d.%03d' $((DELAY_MS / 1000)) $((DELAY_MS % 1000)))"
    fi
    HIT=0
    [ -n "$POINT" ] && grep -q . "$marker" 2>/dev/null && HIT=1
    kill -KILL "$pid" 2>/dev/null
    { wait "$pid"; } 2>/dev/null # (no "Killed" job notice)
    RC=$?
    OPS=$((OPS + 1))
}

# Milliseconds since the epoch.
now_ms() { echo $(($(date +%s%N) / 1000000)); }

echo "phase 1: $KILLS kills, engine $ENGINE, seed $SEED" >&2
D1_INIT=$(mktemp "$IN/init.XXXX")
make_data "$D1_INIT" 1000
oc "$D1" blob put "$D1_INIT" >/dev/null || fail "initial put"
COMMITTED[$(hex_of "$D1_INIT")]=1000
# Calibration, so that random kills spread over whole operations: a command's fixed cost
# (start, open, close) and the cost of a MiB put.
t0=$(now_ms)
for _ in 1 2 3; do oc "$D1" blob has "sha256:$(hex_of "$D1_INIT")" >/dev/null; done
T_OPEN=$((($(now_ms) - t0) / 3))
make_data "$IN/cal" $((16 << 20))
t0=$(now_ms)
oc "$D1" blob put "$IN/cal" >/dev/null || fail "calibration put"
T_MIB=$(((($(now_ms) - t0) - T_OPEN) / 16))
[ $T_MIB -ge 1 ] || T_MIB=1
oc "$D1" blob rm "sha256:$(hex_of "$IN/cal")" >/dev/null || fail "calibration rm"
echo "  a command costs ${T_OPEN} ms, plus ${T_MIB} ms per MiB put" >&2
# A kill delay for an operation over SIZE bytes: anywhere from early in its start to its end.
kill_delay() { rnd $((T_OPEN / 4)) $((T_OPEN * 3 / 4 + (${1:-0} >> 20) * T_MIB)); }
iter=0
P1_START=$(date +%s)
while [ $KILLED -lt "$KILLS" ] && [ $iter -lt $((KILLS * 10)) ]; do
    iter=$((iter + 1))
    POINT="" DELAY_MS=$(kill_delay 0)
    roll=$(rnd 0 99)
    exact=$(($(rnd 0 3) == 0))
    if [ $roll -lt 55 ]; then
        # blob put: sizes from 1 byte to 16 MiB, mostly small.
        case $(rnd 0 3) in 0 | 1) size=$(rnd 1 65536) ;; 2) size=$(rnd 65537 4194304) ;; *) size=$(rnd 4194305 16777216) ;; esac
        f="$IN/put"
        make_data "$f" "$size"
        hex=$(hex_of "$f")
        DELAY_MS=$(kill_delay "$size")
        if [ $exact = 1 ]; then
            if [ $(rnd 0 1) = 0 ]; then POINT=after-commit-rename; else POINT=after-commit-record; fi
        fi
        run_and_kill blob put "$f"
        case $RC in
        0)
            [ "$(cat "$WORK/op.out")" = "sha256:$hex" ] || fail "put printed $(cat "$WORK/op.out"), expected sha256:$hex"
            COMMITTED[$hex]=$size; unset "MAYBE[$hex]"
            ;;
        137)
            KILLED=$((KILLED + 1))
            if [ "$POINT" = after-commit-record ] && [ $HIT = 1 ]; then
                COMMITTED[$hex]=$size; unset "MAYBE[$hex]"
            elif [ -z "${COMMITTED[$hex]:-}" ]; then
                MAYBE[$hex]=$size
            fi
            ;;
        *) fail "blob put exited $RC: $(cat "$WORK/op.err")" ;;
        esac
        subject=$hex
    elif [ $roll -lt 75 ]; then
        # tag set: a random reference to a random known digest.
        ref=${REFS[$(rnd 0 $((${#REFS[@]} - 1)))]}
        keys=("${!COMMITTED[@]}")
        hex=${keys[$(rnd 0 $((${#keys[@]} - 1)))]}
        run_and_kill tag set "$ref" "sha256:$hex"
        case $RC in
        0) TAGS[$ref]="sha256:$hex" ;;
        137) KILLED=$((KILLED + 1)); TAGS[$ref]="${TAGS[$ref]} sha256:$hex" ;;
        *) fail "tag set exited $RC: $(cat "$WORK/op.err")" ;;
        esac
        subject=""
    elif [ $roll -lt 92 ]; then
        # blob get -o: whatever appears at the output path must be the whole, verified blob.
        keys=("${!COMMITTED[@]}")
        hex=${keys[$(rnd 0 $((${#keys[@]} - 1)))]}
        out="$WORK/out/blob"
        rm -rf "$WORK/out" && mkdir "$WORK/out"
        DELAY_MS=$(kill_delay "${COMMITTED[$hex]}")
        run_and_kill blob get "sha256:$hex" -o "$out"
        case $RC in
        0 | 137)
            [ $RC = 137 ] && KILLED=$((KILLED + 1))
            if [ -e "$out" ]; then
                [ "$(hex_of "$out")" = "$hex" ] || fail "blob get wrote wrong bytes for $hex"
                BYTES=$((BYTES + $(stat -c %s "$out")))
            elif [ $RC = 0 ]; then
                fail "blob get exited 0 without writing $out"
            fi
            ;;
        *) fail "blob get exited $RC: $(cat "$WORK/op.err")" ;;
        esac
        subject=$hex
    else
        # blob rm of a known blob (never the last one, so gets and tags have something).
        keys=("${!COMMITTED[@]}")
        [ ${#keys[@]} -lt 3 ] && continue
        hex=${keys[$(rnd 0 $((${#keys[@]} - 1)))]}
        [ $exact = 1 ] && POINT=after-remove
        run_and_kill blob rm "sha256:$hex"
        size=${COMMITTED[$hex]}
        unset "COMMITTED[$hex]"
        case $RC in
        0) ;;
        137) KILLED=$((KILLED + 1)); MAYBE[$hex]=$size ;;
        *) fail "blob rm exited $RC: $(cat "$WORK/op.err")" ;;
        esac
        subject=$hex
    fi
    [ $RC = 0 ] && FINISHED=$((FINISHED + 1))
    [ -n "$POINT" ] && [ $HIT = 1 ] && EXACT=$((EXACT + 1))
    [ -n "$POINT" ] && [ $RC = 137 ] && [ $HIT = 0 ] && fail "killed before reaching $POINT"
    [ $RC = 137 ] || continue

    context="kill $KILLED (${POINT:-${DELAY_MS} ms}: $WHAT)"
    check_verify "$D1" "$context"
    # No process is running: opening cleared the dead writer's temp.
    [ -z "$(ls -A "$D1/tmp")" ] || fail "$context: temps left: $(ls -A "$D1/tmp" | tr '\n' ' ')"
    # The killed operation's subject: as the model allows, and every byte served checked.
    if [ -n "$subject" ]; then
        check_get "$D1" "$subject" "$context"
        if [ -n "${COMMITTED[$subject]:-}" ] && [ "$STATE" != present ]; then
            fail "$context: committed blob $subject is $STATE"
        elif [ -n "${MAYBE[$subject]:-}" ]; then
            case $STATE in
            present) ADOPTED=$((ADOPTED + 1)); COMMITTED[$subject]=${MAYBE[$subject]} ;;
            absent) DROPPED=$((DROPPED + 1)) ;;
            esac
            unset "MAYBE[$subject]"
        fi
    fi
    # Every 50 kills: every committed blob, every tag.
    if [ $((KILLED % 50)) = 0 ]; then
        for hex in "${!COMMITTED[@]}"; do
            check_get "$D1" "$hex" "$context, sweep"
            [ "$STATE" = present ] || fail "$context: committed blob $hex is $STATE"
        done
        for ref in "${REFS[@]}"; do
            got=$(oc "$D1" tag get "$ref" 2>/dev/null)
            rc=$?
            OPS=$((OPS + 1))
            [ $rc = 1 ] && got=none
            case " ${TAGS[$ref]} " in
            *" $got "*) TAGS[$ref]=$got ;;
            *) fail "$context: tag $ref is '$got' (exit $rc), expected one of: ${TAGS[$ref]}" ;;
            esac
        done
        echo "  $KILLED kills, $OPS operations, $((BYTES >> 20)) MiB checked" >&2
    fi
    # Keep the directory small: the model stays cheap to sweep.
    if [ ${#COMMITTED[@]} -gt 24 ]; then
        for hex in $(printf '%s\n' "${!COMMITTED[@]}" | head -12); do
            oc "$D1" blob rm "sha256:$hex" >/dev/null || fail "cleanup rm $hex"
            OPS=$((OPS + 1))
            unset "COMMITTED[$hex]"
        done
    fi
done
P1_SECONDS=$(($(date +%s) - P1_START))
P1="phase 1: $KILLED kills in ${P1_SECONDS}s ($EXACT at exact points; $FINISHED runs finished before their kill), $OPS operations, $((BYTES >> 20)) MiB checked; killed puts/removes found done $ADOPTED, undone $DROPPED"
echo "$P1" >&2

###############################################################################
# Phase 2: P processes on one capped directory, a killer, verify after each kill.
###############################################################################
D2="$WORK/shared-cache"
mkdir -p "$D2" "$WORK/pool"
printf '{"max_bytes": %d}\n' "$MAX_BYTES" >"$D2/config.json"
POOL=()
for i in $(seq 1 40); do
    case $((i % 4)) in 0) size=$(rnd 1 32768) ;; 1 | 2) size=$(rnd 32769 2097152) ;; *) size=$(rnd 2097153 8388608) ;; esac
    make_data "$WORK/pool/$i" "$size"
    POOL+=("$(hex_of "$WORK/pool/$i")")
done
printf '%s\n' "${POOL[@]}" >"$WORK/pool.digests"

# One worker: loops until the deadline; writes its counts to $WORK/w$1.stats and the pid of
# its running ocicache to $WORK/w$1.pid (for the killer).
worker() {
    local w=$1 deadline=$2 ops=0 bytes=0 killed=0 rc i hex ref out="$WORK/w$1.out" pid
    RANDOM=$((SEED + w))
    while [ "$(date +%s)" -lt "$deadline" ]; do
        i=$(rnd 1 40)
        hex=${POOL[$((i - 1))]}
        ref=soak.example/shared:t$(rnd 0 4)
        rm -f "$out"
        case $(rnd 0 9) in
        0 | 1 | 2) set -- blob put "$WORK/pool/$i" ;;
        3 | 4 | 5) set -- blob get "sha256:$hex" -o "$out" ;;
        6) set -- blob has "sha256:$hex" ;;
        7) set -- tag set "$ref" "sha256:$hex" ;;
        8) set -- tag get "$ref" ;;
        *) set -- blob get "sha256:$hex" ;;
        esac
        "$BIN" --engine "$ENGINE" --dir "$D2" "$@" >"$out.stdout" 2>"$out.err" &
        pid=$!
        echo $pid >"$WORK/w$w.pid"
        { wait $pid; } 2>/dev/null
        rc=$?
        : >"$WORK/w$w.pid"
        ops=$((ops + 1))
        if [ $rc = 137 ]; then
            killed=$((killed + 1))
            # A killed get may have finished its output: then it must be complete.
            if [ "$1 $2" = "blob get" ] && [ -e "$out" ]; then
                [ "$(hex_of "$out")" = "$hex" ] || fail "worker $w: killed get left wrong bytes for $hex"
            fi
            continue
        fi
        case "$1 $2:$rc" in
        "blob put:0") [ "$(cat "$out.stdout")" = "sha256:$hex" ] || fail "worker $w: put printed $(cat "$out.stdout")" ;;
        "blob put:5") ;; # full: every entry in use or pinned at that moment
        "blob get:0")
            [ -e "$out" ] || cp "$out.stdout" "$out"
            [ "$(hex_of "$out")" = "$hex" ] || fail "worker $w: wrong bytes served for $hex ($*)"
            bytes=$((bytes + $(stat -c %s "$out")))
            ;;
        "blob get:1") [ -e "$out" ] && fail "worker $w: get of an absent blob wrote its output" ;; # evicted
        "blob has:0" | "blob has:1" | "tag set:0" | "tag get:1") ;;
        "tag get:0") grep -qxF "$(cut -c8- "$out.stdout")" "$WORK/pool.digests" || fail "worker $w: tag get printed $(cat "$out.stdout")" ;;
        *) fail "worker $w: $* exited $rc: $(cat "$out.err")" ;;
        esac
    done
    echo "$ops $bytes $killed" >"$WORK/w$w.stats"
}

echo "phase 2: $PROCS processes for ${SECONDS_P2}s, cap $MAX_BYTES bytes" >&2
DEADLINE=$(($(date +%s) + SECONDS_P2))
WORKERS=()
for w in $(seq 1 "$PROCS"); do
    : >"$WORK/w$w.pid"
    worker "$w" "$DEADLINE" &
    WORKERS+=($!)
    PIDS_TO_STOP+=($!)
done
P2_KILLS=0
while [ "$(date +%s)" -lt "$DEADLINE" ]; do
    sleep "0.$(printf '%03d' "$(rnd 50 400)")"
    w=$(rnd 1 "$PROCS")
    pid=$(cat "$WORK/w$w.pid" 2>/dev/null)
    [ -n "$pid" ] || continue
    if kill -KILL "$pid" 2>/dev/null; then
        P2_KILLS=$((P2_KILLS + 1))
        check_verify "$D2" "phase 2 kill $P2_KILLS"
    fi
done
# Bounded end: a worker's command still running STEP seconds after the deadline has hung.
for _ in $(seq 1 $((STEP * 10))); do
    alive=0
    for p in "${WORKERS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.1
done
for w in $(seq 1 "$PROCS"); do
    pid=$(cat "$WORK/w$w.pid" 2>/dev/null)
    if [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null; then fail "worker $w: a command hung past the deadline"; fi
done
wait "${WORKERS[@]}"
PIDS_TO_STOP=()
P2_OPS=0 P2_BYTES=0 P2_SEEN_KILLED=0
for w in $(seq 1 "$PROCS"); do
    read -r o b k <"$WORK/w$w.stats" || { fail "worker $w left no stats"; continue; }
    P2_OPS=$((P2_OPS + o)) P2_BYTES=$((P2_BYTES + b)) P2_SEEN_KILLED=$((P2_SEEN_KILLED + k))
done
# Final state: healthy, within the cap, every stored blob served intact.
BYTES_BEFORE=$BYTES
check_verify "$D2" "phase 2 end"
stored=0
for hex in "${POOL[@]}"; do
    check_get "$D2" "$hex" "phase 2 end"
    [ "$STATE" = present ] && stored=$((stored + 1))
done
P2_BYTES=$((P2_BYTES + BYTES - BYTES_BEFORE))
BYTES=$BYTES_BEFORE
used=$(oc "$D2" stats | awk '$1 == "bytes" { print $2 }')
[ -n "$used" ] && [ "$used" -le "$MAX_BYTES" ] || fail "phase 2 end: $used bytes stored over the cap $MAX_BYTES"
P2="phase 2: $PROCS processes ${SECONDS_P2}s: $P2_SEEN_KILLED kills of running commands ($P2_KILLS verify runs after them), $P2_OPS operations, $((P2_BYTES >> 20)) MiB checked, $stored of ${#POOL[@]} blobs stored at the end, $used bytes used of $MAX_BYTES"
echo "$P1" >&2
echo "$P2" >&2
NFAIL=$(wc -l <"$FAILS")
echo "soak: kills $((KILLED + P2_SEEN_KILLED)), operations $((OPS + P2_OPS)), bytes checked $((BYTES + P2_BYTES)), failures $NFAIL"
[ "$NFAIL" = 0 ] || { echo "failures:" >&2; head -40 "$FAILS" >&2; exit 1; }
