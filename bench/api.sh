#!/usr/bin/env bash
# api.sh - throughput, latency and memory of the runtimed daemon's API, next
# to bwrap and crun doing the same work, in one run.
#
# One load generator (tests/src/bin/apibench.rs, N client threads, each
# operation timed on the client side) measures every row the same way:
#   runtimed /v1/run    POST /v1/run {"argv":["/bin/true"]}: a fresh sandbox per call
#   bwrap               spawn+wait `bwrap --unshare-all ... /bin/true` (as in startup.sh)
#   crun                spawn+wait `crun run` of a busybox bundle (as in startup.sh)
#   runtimed run        spawn+wait the CLI `runtimed run -- /bin/true`
#   exec                POST /v1/sessions/{id}/exec /bin/true in an existing session
# each at concurrency 1 and 2, in rounds of alternating order; then the PTY
# keystroke -> echo round trip over the WebSocket, and the daemon's memory
# with 0 and with N idle sessions. Prints a Markdown report; see
# bench/README.md for what each row counts and the caveats.
#
# Usage (as root):
#   bench/api.sh [--quick] [--secs S] [--rounds R] [--keystrokes K] [--sessions N] [--markdown FILE]
#     --quick           ~1 min in all: 2 s per row, 1 round, 500 keystrokes
#     --secs S          measured seconds per row in all rounds together (default 10)
#     --rounds R        split each row over R rounds of alternating row order (default 2)
#     --keystrokes K    PTY round trips back to back (default 2000; with a pause: K/4)
#     --sessions N      idle sessions for the memory figures (default 200)
#     --markdown FILE   also write the report to FILE
# Env: KEEP=1 keeps the temp dir (daemon log, raw rows); CARGO_TARGET_DIR is respected.
set -euo pipefail

SECS=10
ROUNDS=2
WARMUP=1
KEYS=2000
SESSIONS=200
MARKDOWN=
QUICK=

usage() { sed -n '/^# Usage/,/^# Env/p' "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "api.sh: $*" >&2; exit 2; }
log() { echo "api.sh: $*" >&2; }

while (($#)); do
    case $1 in
        --quick) QUICK=1; shift ;;
        --secs) [[ $# -ge 2 ]] || die "--secs needs a value"; SECS=$2; shift 2 ;;
        --secs=*) SECS=${1#*=}; shift ;;
        --rounds) [[ $# -ge 2 ]] || die "--rounds needs a value"; ROUNDS=$2; shift 2 ;;
        --rounds=*) ROUNDS=${1#*=}; shift ;;
        --keystrokes) [[ $# -ge 2 ]] || die "--keystrokes needs a value"; KEYS=$2; shift 2 ;;
        --keystrokes=*) KEYS=${1#*=}; shift ;;
        --sessions) [[ $# -ge 2 ]] || die "--sessions needs a value"; SESSIONS=$2; shift 2 ;;
        --sessions=*) SESSIONS=${1#*=}; shift ;;
        --markdown) [[ $# -ge 2 ]] || die "--markdown needs a file"; MARKDOWN=$2; shift 2 ;;
        --markdown=*) MARKDOWN=${1#*=}; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done
if [[ -n $QUICK ]]; then
    SECS=2 ROUNDS=1 WARMUP=0.3 KEYS=500
fi
for v in SECS ROUNDS KEYS SESSIONS; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "--${v,,} must be a positive integer, got '${!v}'"
done
((SECS <= 600 && ROUNDS <= 20 && KEYS <= 100000 && SESSIONS <= 1000)) \
    || die "too large: --secs <= 600, --rounds <= 20, --keystrokes <= 100000, --sessions <= 1000"
[[ $(id -u) -eq 0 ]] || die "run as root (the daemon needs root; crun runs rootful)"

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)

# --- 1. tools ------------------------------------------------------------------
need=()
for pc in bubblewrap:bwrap crun:crun jq:jq util-linux:unshare curl:curl; do
    command -v "${pc#*:}" >/dev/null || need+=("${pc%%:*}")
done
# the crun rootfs needs the static busybox (the dynamic package also ships /bin/busybox)
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q '^install ok installed' \
    || need+=(busybox-static)
if ((${#need[@]})); then
    log "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# --- 2. build ------------------------------------------------------------------
CARGO=$(command -v cargo || true)
[[ -n $CARGO ]] || { [[ -x $HOME/.cargo/bin/cargo ]] && CARGO=$HOME/.cargo/bin/cargo; }
[[ -n $CARGO ]] || die "cargo not found"
log "building (release): runtimed, apibench"
# The paths come from cargo itself (.cargo/config.toml sets a build target).
BUILT=$(cd "$REPO" && "$CARGO" build --release -q --workspace --bins --message-format=json \
    | grep -o '"executable":"[^"]*"' | cut -d'"' -f4)
RUNTIMED=$(grep '/runtimed$' <<<"$BUILT" | tail -n 1)
APIBENCH=$(grep '/apibench$' <<<"$BUILT" | tail -n 1)
[[ -x $RUNTIMED && -x $APIBENCH ]] || die "build did not produce runtimed and apibench"

# --- 3. temp dir: crun bundle, daemon config ----------------------------------------
WORK=$(mktemp -d /tmp/api-bench.XXXXXX)
chmod 755 "$WORK"
mkdir -p "$WORK/rows"
SOCK=$WORK/runtimed.sock
DAEMON_PID=
CRUN_ID=api-bench-$$
stop_daemon() {
    [[ -n $DAEMON_PID ]] || return 0
    if kill -0 "$DAEMON_PID" 2>/dev/null; then
        kill -TERM "$DAEMON_PID" 2>/dev/null || true
        for ((i = 0; i < 300; i++)); do
            kill -0 "$DAEMON_PID" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$DAEMON_PID" 2>/dev/null; then
            log "daemon $DAEMON_PID did not stop within 30 s: SIGKILL"
            kill -KILL "$DAEMON_PID" 2>/dev/null || true
        fi
    fi
    wait "$DAEMON_PID" 2>/dev/null || true
    DAEMON_PID=
}
cleanup() {
    stop_daemon
    for w in 0 1; do crun delete -f "$CRUN_ID-$w" >/dev/null 2>&1 || true; done
    if [[ -n ${KEEP:-} ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

BUNDLE=$WORK/bundle
ROOTFS=$BUNDLE/rootfs
mkdir -p "$ROOTFS"/{bin,proc,sys,dev,tmp,etc}
cp /bin/busybox "$ROOTFS/bin/busybox"
for a in sh true false; do ln -s busybox "$ROOTFS/bin/$a"; done
(cd "$BUNDLE" && crun spec)
jq '.process.terminal = false | .process.args = ["/bin/true"]' \
    "$BUNDLE/config.json" >"$WORK/config.json"
mv "$WORK/config.json" "$BUNDLE/config.json"

# crun 1.8 refuses a hybrid cgroup layout whose cgroup2 root lists any
# controller, even with --cgroup-manager=disabled: the crun rows run in a
# private mount namespace where that file reads empty (as in startup.sh).
UNIFIED_CTRL=/sys/fs/cgroup/unified/cgroup.controllers
HYBRID_FIX=
if [[ -r $UNIFIED_CTRL && -n $(<"$UNIFIED_CTRL") ]]; then
    HYBRID_FIX=1
    : >"$WORK/empty"
fi
in_ns() {
    if [[ -n $HYBRID_FIX ]]; then
        # shellcheck disable=SC2016  # expanded by the inner bash
        unshare --mount --propagation private -- bash -c \
            'mount --bind "$1" "$2" && shift 2 && exec "$@"' _ "$WORK/empty" "$UNIFIED_CTRL" "$@"
    else
        "$@"
    fi
}

# 200 idle sessions need more than the default 200 per tenant.
cat >"$WORK/config.toml" <<EOF
max_sessions = $((SESSIONS + 100 > 1000 ? SESSIONS + 100 : 1000))
max_sessions_per_tenant = $((SESSIONS + 100 > 1000 ? SESSIONS + 100 : 1000))
EOF

# a loopback port nobody listens on (the daemon would default to 7070)
PORT=
for ((i = 0; i < 50; i++)); do
    p=$((20000 + RANDOM % 30000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then PORT=$p; break; fi
done
[[ -n $PORT ]] || die "no free loopback port found"

# --- 4. the daemon --------------------------------------------------------------------
log "starting runtimed serve (socket $SOCK, port $PORT)"
"$RUNTIMED" serve --socket "$SOCK" --data-dir "$WORK/data" --listen "127.0.0.1:$PORT" \
    --config "$WORK/config.toml" </dev/null >/dev/null 2>"$WORK/daemon.log" &
DAEMON_PID=$!
up=
for ((i = 0; i < 300; i++)); do
    kill -0 "$DAEMON_PID" 2>/dev/null || break
    if curl -sf --max-time 2 --unix-socket "$SOCK" http://localhost/healthz >/dev/null 2>&1; then
        up=1; break
    fi
    sleep 0.1
done
[[ -n $up ]] || die "runtimed serve did not come up; its log:"$'\n'"$(cat "$WORK/daemon.log")"

# --- 5. the rows ----------------------------------------------------------------------
HOSTRO="--ro-bind /usr /usr --symlink usr/bin /bin --symlink usr/lib /lib --symlink usr/lib64 /lib64 --symlink usr/sbin /sbin"
BWRAP_CMD="bwrap --unshare-all $HOSTRO --proc /proc --dev /dev /bin/true"
# {w} is the worker number: concurrent crun runs need different ids
CRUN_CMD="crun --cgroup-manager=disabled run --bundle $BUNDLE $CRUN_ID-{w}"
CLI_CMD="$RUNTIMED run -- /bin/true"

ROWS=(run-1 run-2 bwrap-1 bwrap-2 crun-1 crun-2 cli-1 cli-2 exec-1 exec-2)
declare -A LABEL=(
    [run-1]="runtimed \`/v1/run\`" [run-2]="runtimed \`/v1/run\`"
    [bwrap-1]="bwrap" [bwrap-2]="bwrap"
    [crun-1]="crun" [crun-2]="crun"
    [cli-1]="runtimed run (CLI)" [cli-2]="runtimed run (CLI)"
    [exec-1]="runtimed exec in a session" [exec-2]="runtimed exec in a session"
)
# run_row NAME SECONDS WARMUP [extra apibench flags]
run_row() {
    local name=$1 secs=$2 warm=$3 c=${1##*-}
    local common=(--concurrency "$c" --duration-secs "$secs" --warmup-secs "$warm" --out "$WORK/rows/$name")
    case ${name%-*} in
        # shellcheck disable=SC2086  # the commands split on whitespace
        run)   "$APIBENCH" run --socket "$SOCK" --daemon-pid "$DAEMON_PID" "${common[@]}" ;;
        exec)  "$APIBENCH" exec --socket "$SOCK" --daemon-pid "$DAEMON_PID" "${common[@]}" ;;
        bwrap) "$APIBENCH" cmd "${common[@]}" -- $BWRAP_CMD ;;
        crun)  in_ns "$APIBENCH" cmd "${common[@]}" -- $CRUN_CMD ;;
        cli)   "$APIBENCH" cmd "${common[@]}" -- $CLI_CMD ;;
    esac
}

# Pre-flight: every command row must work twice in a row (crun deletes its
# container on exit, so a fixed id works back to back), and the daemon must
# really run the program (a stub answering exit 0 to everything would look
# impossibly fast).
for w in 0 1; do crun delete -f "$CRUN_ID-$w" >/dev/null 2>&1 || true; done
for cmd in "$BWRAP_CMD" "in_ns ${CRUN_CMD//\{w\}/0}" "$CLI_CMD"; do
    for try in 1 2; do
        # shellcheck disable=SC2086  # split on whitespace, as the rows do
        out=$($cmd 2>&1 </dev/null) || die "pre-flight fails (try $try): $cmd"$'\n'"$out"
    done
done
false_code=$(curl -sf --max-time 30 --unix-socket "$SOCK" -H 'Content-Type: application/json' \
    -d '{"argv":["/bin/false"]}' http://localhost/v1/run | jq -r .exit_code) || false_code=
[[ $false_code == 1 ]] || die "POST /v1/run of /bin/false gave exit_code '$false_code', not 1"
pid1=$(curl -sf --max-time 30 --unix-socket "$SOCK" -H 'Content-Type: application/json' \
    -d '{"argv":["/bin/sh","-c","echo $$"]}' http://localhost/v1/run | jq -r .stdout | tr -d '\n') || pid1=
[[ $pid1 =~ ^[0-9]+$ && $pid1 -lt 10 ]] \
    || log "warning: \$\$ inside /v1/run is '$pid1': no new pid namespace?"

cpu_idle_total() { awk '/^cpu /{t=0; for(i=2;i<=NF;i++) t+=$i; print $5+$6, t}' /proc/stat; }
LOAD_START=$(cut -d' ' -f1 /proc/loadavg)
read -r IDLE0 TOTAL0 < <(cpu_idle_total)

# Memory first, on a daemon that has run only the pre-flight: with the
# heap of thousands of earlier runs the 0-session figure would be higher.
log "memory: 0 and $SESSIONS idle sessions"
MEM=$("$APIBENCH" mem --socket "$SOCK" --daemon-pid "$DAEMON_PID" --sessions "$SESSIONS" --settle-secs 2) \
    || die "memory measurement failed"

# Rounds of alternating order: a burst of load from elsewhere then hits
# several rows a little instead of one row fully.
PER_ROUND=$(awk -v s="$SECS" -v r="$ROUNDS" 'BEGIN { printf "%.3f", s / r }')
log "${#ROWS[@]} rows, $ROUNDS round(s) of ${PER_ROUND} s each after ${WARMUP} s warm-up"
order=("${ROWS[@]}")
for ((r = 0; r < ROUNDS; r++)); do
    for name in "${order[@]}"; do
        run_row "$name" "$PER_ROUND" "$WARMUP" >/dev/null \
            || die "row $name failed (round $((r + 1)))"
    done
    rev=(); for ((k = ${#order[@]} - 1; k >= 0; k--)); do rev+=("${order[$k]}"); done
    order=("${rev[@]}")
done

PTY_GAP_MS=10
PTY_GAP_KEYS=$(( KEYS / 4 > 0 ? KEYS / 4 : 1 ))
log "pty: $KEYS keystrokes back to back, $PTY_GAP_KEYS with ${PTY_GAP_MS} ms pauses (two modes each)"
for mode in echo cat; do
    "$APIBENCH" pty --socket "$SOCK" --mode "$mode" --keystrokes "$KEYS" --out "$WORK/rows/pty-$mode-0" >/dev/null \
        || die "pty ($mode) failed"
    "$APIBENCH" pty --socket "$SOCK" --mode "$mode" --keystrokes "$PTY_GAP_KEYS" --gap-ms "$PTY_GAP_MS" --warmup 20 \
        --out "$WORK/rows/pty-$mode-gap" >/dev/null || die "pty ($mode, pauses) failed"
done

read -r IDLE1 TOTAL1 < <(cpu_idle_total)
IDLE_PCT=$(( (IDLE1 - IDLE0) * 100 / (TOTAL1 - TOTAL0 > 0 ? TOTAL1 - TOTAL0 : 1) ))
LOAD_END=$(cut -d' ' -f1 /proc/loadavg)

declare -A R
for f in "$WORK"/rows/*.jsonl; do
    name=$(basename "$f" .jsonl)
    R[$name]=$("$APIBENCH" merge "$WORK/rows/$name")
done
DAEMON_RSS_END=$(awk '/^VmRSS/{print $2}' "/proc/$DAEMON_PID/status" 2>/dev/null || echo '?')
stop_daemon

# --- 6. report -------------------------------------------------------------------------
if [[ $(stat -fc %T /sys/fs/cgroup) == cgroup2fs ]]; then
    CGMODE="v2 (unified)"
elif mountpoint -q /sys/fs/cgroup/unified 2>/dev/null; then
    CGMODE="hybrid (v1 controllers + cgroup2 at /sys/fs/cgroup/unified)"
else
    CGMODE="v1"
fi
ver() { "$@" 2>/dev/null | head -n1 | tr -d '\r' || echo '?'; }
VERSIONS="bwrap $(ver bwrap --version | awk '{print $2}'), crun $(ver crun --version | awk '{print $3}'), runtimed $(cd "$REPO" && git rev-parse --short HEAD 2>/dev/null || echo '?')$(cd "$REPO" && git diff --quiet HEAD 2>/dev/null || echo '+changes')"
DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
get() { jq -r "$2" <<<"${R[$1]}"; }
f1() { awk -v x="$1" 'BEGIN { if (x == "" || x == "null") print "–"; else printf "%.1f", x }'; }
f2() { awk -v x="$1" 'BEGIN { if (x == "" || x == "null") print "–"; else printf "%.2f", x }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0 || a == "null") print "–"; else printf "%.2f×", a / b }'; }
kib_mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

report() {
    echo "## runtimed API: throughput, latency, memory"
    echo
    echo "- Date: $DATE"
    echo "- Machine: kernel $(uname -r), $(nproc) CPUs, cgroup $CGMODE, 1-min load $LOAD_START before / $LOAD_END after, CPU idle during the measurements ${IDLE_PCT}%"
    echo "- Versions: $VERSIONS"
    echo "- apibench: each row ${SECS} s in $ROUNDS round(s) of alternating order, ${WARMUP} s warm-up per round; latency = one operation's wall time on the client; concurrency c = client threads, each one keep-alive connection (or one child at a time)"
    echo
    echo "| row | c | ops/s | p50 ms | p99 ms | CPU ms/op | machine CPU ms/op | machine busy | ops/s vs bwrap | p50 vs bwrap |"
    echo "|-----|--:|------:|-------:|-------:|----------:|------------------:|-------------:|---------------:|-------------:|"
    local name c
    for name in "${ROWS[@]}"; do
        c=${name##*-}
        local ps p50 p99 cpu busy bps bp50
        ps=$(get "$name" .per_sec) p50=$(get "$name" .p50_ms) p99=$(get "$name" .p99_ms)
        cpu=$(get "$name" .cpu_ms_per_op)
        busy=$(get "$name" 'if .machine_total_ticks > 0 then (.machine_busy_ticks * 100 / .machine_total_ticks | floor | tostring) + "%" else "?" end')
        bps=$(get "bwrap-$c" .per_sec) bp50=$(get "bwrap-$c" .p50_ms)
        echo "| ${LABEL[$name]} | $c | $(f1 "$ps") | $(f2 "$p50") | $(f2 "$p99") | $(f2 "$cpu") | $(f2 "$(get "$name" .machine_cpu_ms_per_op)") | $busy | $(ratio "$ps" "$bps") | $(ratio "$p50" "$bp50") |"
    done
    echo
    echo "PTY keystroke → echo over the WebSocket (Unix socket), one terminal:"
    echo
    echo "| terminal | keystrokes | pause before each | p50 ms | p99 ms | max ms |"
    echo "|----------|-----------:|------------------:|-------:|-------:|-------:|"
    local mode gap label
    for mode in echo cat; do
        for gap in 0 gap; do
            name=pty-$mode-$gap
            if [[ $mode == echo ]]; then label="\`/bin/cat\`, cooked tty: echo by the line discipline"
            else label="\`cat\` on a raw tty: echo written by cat"; fi
            echo "| $label | $(get "$name" .ops) | $([[ $gap == 0 ]] && echo none || echo "${PTY_GAP_MS} ms") | $(f2 "$(get "$name" .p50_ms)") | $(f2 "$(get "$name" .p99_ms)") | $(f2 "$(get "$name" .max_ms)") |"
        done
    done
    echo
    local n
    n=$(jq -r .sessions <<<"$MEM")
    echo "Memory with 0 and $n idle sessions (MiB; per session in KiB):"
    echo
    echo "| figure | what it counts | fresh | 0 sessions | $n idle | after deleting them | per idle session (KiB) |"
    echo "|--------|----------------|------:|-----------:|---------:|--------------------:|------------------:|"
    local key what per
    for key in daemon_rss daemon_pss helpers_rss helpers_pss sandbox_rss sandbox_pss total_pss sandbox_cgroup; do
        case $key in
            daemon_rss)  what="VmRSS of the \`runtimed serve\` process (all its threads)" ;;
            daemon_pss)  what="its PSS (each shared page split among the processes mapping it: falls as helpers share the binary's pages, so no per-session figure)" ;;
            helpers_rss) what="sum of VmRSS of its \`runtimed sandbox-host\` children, one per session ($(jq -r .idle.helpers <<<"$MEM") with $n sessions); the same pages of the runtimed binary count in each" ;;
            helpers_pss) what="their summed PSS" ;;
            sandbox_rss) what="sum of VmRSS of every process below the helpers: the sandboxes' PID 1s ($(jq -r .idle.sandbox_procs <<<"$MEM") processes)" ;;
            sandbox_pss) what="their summed PSS" ;;
            total_pss)   what="PSS of daemon + helpers + sandboxes: the user memory all of it really takes" ;;
            sandbox_cgroup) what="sum of the sandboxes' memory cgroups' usage ($(jq -r .idle.sandbox_cgroups <<<"$MEM") cgroups): what the kernel charges to them, kernel objects included; not the helpers" ;;
        esac
        per=$(jq -r ".per_session_kib.$key" <<<"$MEM")
        [[ $key == daemon_pss ]] && per=
        echo "| $key | $what | $(kib_mib "$(jq -r ".fresh.${key}_kib" <<<"$MEM")") | $(kib_mib "$(jq -r ".zero.${key}_kib" <<<"$MEM")") | $(kib_mib "$(jq -r ".idle.${key}_kib" <<<"$MEM")") | $(kib_mib "$(jq -r ".after_delete.${key}_kib" <<<"$MEM")") | $(f1 "$per") |"
    done
    echo
    echo "- \"fresh\": right after start-up; \"0 sessions\": after creating and deleting 5 sessions (so one-time allocations are not charged to the idle ones); \"$n idle\": 2 s after creating them one by one ($(jq -r .create_secs <<<"$MEM") s); \"after deleting them\": 2 s after deleting them ($(jq -r .delete_secs <<<"$MEM") s)."
    echo "- The daemon's VmRSS at the end of the run (after ~all rows): ${DAEMON_RSS_END} KiB."
    echo
    local run2 pty99 per_d
    run2=$(get run-2 .per_sec) pty99=$(get pty-echo-0 .p99_ms) per_d=$(jq -r .per_session_kib.daemon_rss <<<"$MEM")
    echo "Goals:"
    echo
    echo "- \`/v1/run\` of /bin/true at c=2: $(f1 "$run2")/s (goal ≥ 500/s): $(awk -v x="$run2" 'BEGIN { print (x >= 500 ? "met" : "**not met**") }')"
    echo "- PTY echo p99: $(f2 "$pty99") ms back to back, $(f2 "$(get pty-echo-gap .p99_ms)") ms with pauses (goal < 2 ms): $(awk -v x="$pty99" -v y="$(get pty-echo-gap .p99_ms)" 'BEGIN { print (x < 2 && y < 2 ? "met" : "**not met**") }')"
    echo "- daemon RSS per idle session: $(f1 "$per_d") KiB (goal < 1024 KiB): $(awk -v x="$per_d" 'BEGIN { print (x < 1024 ? "met" : "**not met**") }')"
    echo
    echo "- CPU ms/op: user+system CPU of the measured processes over the window, divided by the operations: for the daemon rows the daemon and every process below it (helpers, sandboxes, the programs; reaped ones through cutime/cstime); for bwrap, crun and the CLI the spawned commands and their descendants (RUSAGE_CHILDREN of apibench, a child subreaper that reaps their orphans). Kernel threads (kworkers tearing down network namespaces) are not counted. On $(nproc) CPUs, $(nproc)000 / (CPU ms/op) is the most ops/s the row could reach."
    echo "- machine CPU ms/op: busy time of all CPUs during the row (/proc/stat) per op: the row's processes, the kernel threads working for them (network namespace teardown), the load generator, and anything else that ran. machine busy: the same as a share of all CPUs' time; at c=1 a quiet row is near 50%."
    echo "- crun: busybox-static bundle, default \`crun spec\` with args=[\"/bin/true\"], --cgroup-manager=disabled (no cgroups, no limits)$([[ -n $HYBRID_FIX ]] && echo "; run in a private mount namespace where $UNIFIED_CTRL reads empty (hybrid host, see startup.sh)")."
    echo "- bwrap: \`$BWRAP_CMD\`"
}

report
if [[ -n $MARKDOWN ]]; then
    report >"$MARKDOWN"
    log "wrote $MARKDOWN"
fi
