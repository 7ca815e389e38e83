#!/bin/sh
# Capture throughput, run by hand:
#
#   bench/capture.sh [SIZE] [ROUNDS]        # defaults: 1G 3
#
# Time for supervisord to capture SIZE bytes of a job's stdout into its log file
# (`head -c SIZE /dev/zero`, log_max_bytes = 0), against the same bytes through a plain
# pipe into a file (`head -c SIZE /dev/zero | cat > file`), in the same run, alternating,
# ROUNDS times each. Every captured log is checked: exact length, nothing but zeros. Prints
# each round and the ratio of the medians (target: at most 1.2). Each run starts after a
# `sync` (not timed), and the order alternates, so neither side pays for the other's
# writeback.
#
# The supervisord time runs from `supctl start` to `supctl wait` returning, which includes
# spawning the job and the `exited` event — the event is published only once every byte
# is in the file. Uses the release build (built here if missing).
set -eu

SIZE=${1:-1G}
ROUNDS=${2:-3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$ROOT/target/release
if [ ! -x "$BIN/supervisord" ] || [ ! -x "$BIN/supctl" ]; then
    (cd "$ROOT" && cargo build --release -p supervisord -p supctl)
fi
BYTES=$(head -c "$SIZE" /dev/zero | wc -c)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/capture-bench.XXXXXX")
DAEMON=
cleanup() {
    if [ -n "$DAEMON" ]; then kill "$DAEMON" 2>/dev/null || true; wait "$DAEMON" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

cat > "$WORK/jobs.toml" <<EOF
[job.cap]
command = ["head", "-c", "$SIZE", "/dev/zero"]
autostart = false
start_secs = 0
log_max_bytes = 0
EOF

"$BIN/supervisord" --config "$WORK/jobs.toml" --socket "$WORK/sock" --log-level warn \
    2> "$WORK/daemon.err" &
DAEMON=$!
i=0
until "$BIN/supctl" --socket "$WORK/sock" ping > /dev/null 2>&1; do
    i=$((i + 1))
    [ $i -lt 200 ] || { echo "supervisord did not start:"; cat "$WORK/daemon.err"; exit 1; }
    sleep 0.05
done

now() { date +%s.%N; }
LOG=$WORK/logs/cap.stdout.log

capture() {
    rm -f "$LOG"
    t0=$(now)
    "$BIN/supctl" --socket "$WORK/sock" start cap > /dev/null
    "$BIN/supctl" --socket "$WORK/sock" wait cap > /dev/null
    t1=$(now)
    got=$(stat -c %s "$LOG")
    [ "$got" = "$BYTES" ] || { echo "LOST BYTES: $got of $BYTES in the log"; exit 1; }
    cmp -s -n "$BYTES" "$LOG" /dev/zero || { echo "CORRUPT: the log is not all zeros"; exit 1; }
    echo "$t1 - $t0" | bc -l
}

pipe() {
    rm -f "$WORK/plain"
    t0=$(now)
    head -c "$SIZE" /dev/zero | cat > "$WORK/plain"
    t1=$(now)
    echo "$t1 - $t0" | bc -l
}

median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

: > "$WORK/t.cap"
: > "$WORK/t.pipe"
r=1
while [ $r -le "$ROUNDS" ]; do
    # Each run starts with no dirty pages from the last one (writeback of one run's
    # gigabyte would otherwise throttle the next), and the order alternates.
    rm -f "$LOG" "$WORK/plain"; sync
    if [ $((r % 2)) = 1 ]; then
        p=$(pipe); rm -f "$WORK/plain"; sync; c=$(capture)
    else
        c=$(capture); rm -f "$LOG"; sync; p=$(pipe)
    fi
    echo "$p" >> "$WORK/t.pipe"
    echo "$c" >> "$WORK/t.cap"
    printf 'round %d: pipe|cat %6.3fs   supervisord %6.3fs   (%s bytes, none lost)\n' "$r" "$p" "$c" "$BYTES"
    r=$((r + 1))
done
P=$(median < "$WORK/t.pipe")
C=$(median < "$WORK/t.cap")
printf 'median: pipe|cat %.3fs (%.0f MiB/s)  supervisord %.3fs (%.0f MiB/s)  ratio %.2fx (target <= 1.2x)\n' \
    "$P" "$(echo "$BYTES / 1048576 / $P" | bc -l)" "$C" "$(echo "$BYTES / 1048576 / $C" | bc -l)" \
    "$(echo "$C / $P" | bc -l)"
