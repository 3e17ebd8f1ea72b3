#!/usr/bin/env bash
# judge.sh - the judge's throughput and timing stability, in one run:
#   * submissions/s and test-runs/s of a C++ and a Python A+B with 10 tests
#     at concurrency 2 through the daemon's API (POST
#     /v1/judge/submissions?wait=true), every source unique (each
#     submission compiled), beside the same work done by 2 loops of
#     bubblewrap (compile in one bwrap, each test in a fresh bwrap);
#     and the same C++ source over and over (the judge's compile cache)
#     beside bwrap loops that compiled it once; goal >= 300 test-runs/s;
#   * how much the judge's CPU time of one accepted, CPU-bound C++
#     solution varies over 20 runs (goal < 5 %).
#
# Usage (as root):
#   bench/judge.sh [--seconds N] [--runs N] [--runtimed PATH] [--markdown FILE]
#     --seconds N      seconds per throughput row (default 15)
#     --runs N         runs of the variance figure (default 20)
#     --runtimed PATH  this binary instead of `cargo build --release -p runtimed`
#     --markdown FILE  also write the report to FILE
# Env: KEEP=1 keeps the temp dir.
set -euo pipefail

SECONDS_PER_ROW=15
RUNS=20
RUNTIMED=
MARKDOWN=
CONC=2

usage() { sed -n '/^# Usage/,/^# Env/p' "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "judge.sh: $*" >&2; exit 2; }
log() { echo "judge.sh: $*" >&2; }

while (($#)); do
    case $1 in
        --seconds) SECONDS_PER_ROW=${2:?}; shift 2 ;;
        --runs) RUNS=${2:?}; shift 2 ;;
        --runtimed) RUNTIMED=${2:?}; shift 2 ;;
        --markdown) MARKDOWN=${2:?}; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done
[[ $SECONDS_PER_ROW =~ ^[1-9][0-9]*$ ]] || die "--seconds must be a positive integer"
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "--runs must be a positive integer"
[[ $(id -u) -eq 0 ]] || die "run as root"

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)

need=()
for pc in bubblewrap:bwrap jq:jq g++:g++ python3:python3 curl:curl; do
    command -v "${pc#*:}" >/dev/null || need+=("${pc%%:*}")
done
if ((${#need[@]})); then
    log "installing ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if [[ -z $RUNTIMED ]]; then
    log "building runtimed (release)"
    RUNTIMED=$(cd "$REPO" && cargo build --release -q -p runtimed --message-format=json \
        | grep -o '"executable":"[^"]*/runtimed"' | tail -n 1 | cut -d'"' -f4)
fi
[[ -x $RUNTIMED ]] || die "runtimed binary not executable: $RUNTIMED"
RUNTIMED=$(realpath "$RUNTIMED")

WORK=$(mktemp -d /tmp/judge-bench.XXXXXX)
DAEMON_PID=
cleanup() {
    [[ -n $DAEMON_PID ]] && kill "$DAEMON_PID" 2>/dev/null && wait "$DAEMON_PID" 2>/dev/null || true
    if [[ -n ${KEEP:-} ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

SOCK=$WORK/rt.sock
"$RUNTIMED" serve --data-dir "$WORK/data" --socket "$SOCK" --no-tcp >"$WORK/daemon.log" 2>&1 &
DAEMON_PID=$!
for _ in $(seq 1 300); do [[ -S $SOCK ]] && break; sleep 0.1; done
[[ -S $SOCK ]] || { cat "$WORK/daemon.log" >&2; die "daemon did not start"; }
# The toolchain probe runs at start; wait for it (it competes for CPU).
for _ in $(seq 1 300); do
    st=$(curl -s --unix-socket "$SOCK" http://x/v1/judge/languages | jq -r '[.[] | select(.name == "cpp" or .name == "python") | .status] | join(",")')
    [[ $st == available,available ]] && break
    sleep 0.1
done
[[ $st == available,available ]] || die "cpp/python not available in the judge: $st"

DRIVER=$HERE/judge_driver.py
# CPU seconds the whole machine spent (all CPUs, user+system+irq), from /proc/stat.
machine_cpu() { awk '/^cpu /{ t=$2+$3+$4+$7+$8; printf "%.3f\n", t/100 }' /proc/stat; }
row() { # name mode args... -> writes $WORK/row-NAME.json with cpu_s added
    local name=$1; shift
    local c0 c1
    c0=$(machine_cpu)
    python3 "$DRIVER" "$@" >"$WORK/row-$name.json"
    c1=$(machine_cpu)
    jq --argjson cpu "$(echo "$c1 - $c0" | bc)" '. + {cpu_s: $cpu}' "$WORK/row-$name.json" >"$WORK/r.json"
    mv "$WORK/r.json" "$WORK/row-$name.json"
    local fails; fails=$(jq -r '.failures | length' "$WORK/row-$name.json")
    ((fails == 0)) || die "row $name failed: $(jq -c .failures "$WORK/row-$name.json")"
}

# Alternating order: API and bwrap rows interleaved per language.
log "C++: runtimed, then bwrap (${SECONDS_PER_ROW}s each, concurrency $CONC)"
row cpp-api api "$SOCK" cpp "$SECONDS_PER_ROW" "$CONC" --unique
row cpp-bwrap bwrap cpp "$SECONDS_PER_ROW" "$CONC"
log "C++, one source over and over: bwrap compiling once, then runtimed (compile cache)"
row cppc-bwrap bwrap cpp "$SECONDS_PER_ROW" "$CONC" --compile-once
row cppc-api api "$SOCK" cpp "$SECONDS_PER_ROW" "$CONC"
log "Python: bwrap, then runtimed"
row py-bwrap bwrap python "$SECONDS_PER_ROW" "$CONC"
row py-api api "$SOCK" python "$SECONDS_PER_ROW" "$CONC" --unique
log "CPU-time stability: $RUNS runs of a CPU-bound C++ solution"
python3 "$DRIVER" variance "$SOCK" "$RUNS" >"$WORK/variance.json"

report() {
    echo "## runtimed judge"
    echo
    echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC'); kernel $(uname -r), $(nproc) CPUs; ${SECONDS_PER_ROW} s per row, concurrency $CONC, A+B with 10 tests, sources unique except in the "same source" rows"
    echo
    echo "| row | submissions/s | test-runs/s | machine CPU ms per test-run | test-runs/s vs bwrap |"
    echo "|---|---:|---:|---:|---:|"
    for lang in cpp cppc py; do
        local b; b=$(jq -r '.submissions / .seconds * 10' "$WORK/row-$lang-bwrap.json")
        for kind in api bwrap; do
            local f=$WORK/row-$lang-$kind.json label
            case $lang-$kind in
                cpp-api) label='runtimed judge, C++ (compile + 10 tests)' ;;
                cpp-bwrap) label='bwrap loop, C++ (compile + 10 tests)' ;;
                cppc-api) label='runtimed judge, C++, same source (compile cached; 10 tests)' ;;
                cppc-bwrap) label='bwrap loop, C++ compiled once (10 tests)' ;;
                py-api) label='runtimed judge, Python (10 tests)' ;;
                py-bwrap) label='bwrap loop, Python (10 tests)' ;;
            esac
            jq -r --arg l "$label" --argjson b "$b" \
                '"| \($l) | \(.submissions / .seconds | . * 100 | round / 100) | \(.submissions / .seconds * 10 | . * 10 | round / 10) | \(.cpu_s * 1000 / (.submissions * 10) | . * 100 | round / 100) | \((.submissions / .seconds * 10) / $b | . * 100 | round / 100)x |"' "$f"
        done
    done
    echo
    jq -r '"CPU time of one accepted C++ solution over \(.runs) runs (judge-reported, whole process tree): mean \(.mean_ms | . * 10 | round / 10) ms, stdev \(.stdev_ms | . * 10 | round / 10) ms, **CV \(.cv_percent | . * 100 | round / 100) %** (goal < 5 %), max-min \(.spread_percent | . * 10 | round / 10) % of the mean; wall \(.wall_mean_ms | round) ms."' "$WORK/variance.json"
    echo
    echo "- bwrap loop: no cgroups, no CPU/memory/output limits, no seccomp, output compared by Python; runtimed: a fresh sandbox per test with cgroup limits and accounting, seccomp (judge profile), Landlock, verdicts."
}
report
[[ -z $MARKDOWN ]] || { report >"$MARKDOWN"; log "wrote $MARKDOWN"; }
