#!/usr/bin/env bash
# startup.sh - start-up latency of `runtimed run -- /bin/true` next to its peers.
#
# hyperfine (no shell, -N) times, side by side, in rounds of alternating order:
#   runtimed  runtimed run -- /bin/true          (full defaults)
#   bwrap     bwrap --unshare-all, host /usr read-only, /proc, /dev
#   unshare   util-linux unshare, all six namespaces, fresh /proc
#   crun      crun run of a busybox OCI bundle (default `crun spec`)
#   true      plain /bin/true: the floor of a process start
# and prints a Markdown table (median, mean ± σ, min, max, ratios vs runtimed
# and vs bwrap) with the machine facts. See bench/README.md for the caveats.
#
# Usage (as root):
#   bench/startup.sh [--runs N] [--rounds R] [--runtimed PATH] [--markdown FILE] [--only-peers]
#     --runs N          timed runs per command in all (default 200)
#     --rounds R        split them over R hyperfine invocations whose command
#                       order alternates (default 5; 5 warm-ups each)
#     --runtimed PATH   use this runtimed binary instead of building one with
#                       `cargo build --release -p runtimed`
#     --markdown FILE   also write the report (table + facts) to FILE
#     --only-peers      skip runtimed (no build, no runtimed row or ratio)
# Env: KEEP=1 keeps the temp dir.
set -euo pipefail

RUNS=200
ROUNDS=5
WARMUP=5
RUNTIMED=
MARKDOWN=
ONLY_PEERS=

usage() { sed -n '/^# Usage/,/^# Env/p' "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "startup.sh: $*" >&2; exit 2; }

while (($#)); do
    case $1 in
        --runs) [[ $# -ge 2 ]] || die "--runs needs a value"; RUNS=$2; shift 2 ;;
        --runs=*) RUNS=${1#*=}; shift ;;
        --rounds) [[ $# -ge 2 ]] || die "--rounds needs a value"; ROUNDS=$2; shift 2 ;;
        --rounds=*) ROUNDS=${1#*=}; shift ;;
        --runtimed) [[ $# -ge 2 ]] || die "--runtimed needs a path"; RUNTIMED=$2; shift 2 ;;
        --runtimed=*) RUNTIMED=${1#*=}; shift ;;
        --markdown) [[ $# -ge 2 ]] || die "--markdown needs a file"; MARKDOWN=$2; shift 2 ;;
        --markdown=*) MARKDOWN=${1#*=}; shift ;;
        --only-peers) ONLY_PEERS=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "--runs must be a positive integer, got '$RUNS'"
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "--rounds must be a positive integer, got '$ROUNDS'"
[[ $(id -u) -eq 0 ]] || die "run as root (crun runs rootful; runtimed sets cgroup limits)"

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
log() { echo "startup.sh: $*" >&2; }

# --- 1. tools ------------------------------------------------------------------
# package:probe, probe = a command on PATH or an absolute path that must exist.
need=()
for pc in hyperfine:hyperfine bubblewrap:bwrap crun:crun busybox-static:/bin/busybox \
          jq:jq util-linux:unshare; do
    pkg=${pc%%:*} probe=${pc#*:}
    if [[ $pkg == busybox-static ]]; then
        # the rootfs needs the static build; the dynamic `busybox` package also
        # ships /bin/busybox
        dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q '^install ok installed' \
            || need+=("$pkg")
    elif [[ $probe == /* ]]; then
        [[ -e $probe ]] || need+=("$pkg")
    else
        command -v "$probe" >/dev/null || need+=("$pkg")
    fi
done
if ((${#need[@]})); then
    log "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# --- 2. runtimed ----------------------------------------------------------------
if [[ -z $ONLY_PEERS ]]; then
    if [[ -z $RUNTIMED ]]; then
        CARGO=$(command -v cargo || true)
        [[ -n $CARGO ]] || { [[ -x $HOME/.cargo/bin/cargo ]] && CARGO=$HOME/.cargo/bin/cargo; }
        [[ -n $CARGO ]] || die "cargo not found: pass --runtimed PATH or --only-peers"
        log "building runtimed (release)"
        # The path comes from cargo itself (.cargo/config.toml sets a build
        # target, so it is target/<triple>/release/runtimed).
        RUNTIMED=$(cd "$REPO" && "$CARGO" build --release -q -p runtimed --message-format=json \
            | grep -o '"executable":"[^"]*/runtimed"' | tail -n 1 | cut -d'"' -f4)
        [[ -x $RUNTIMED ]] || { echo "startup.sh: could not build runtimed" >&2; exit 2; }
    fi
    [[ -x $RUNTIMED ]] || die "runtimed binary not executable: $RUNTIMED"
    RUNTIMED=$(realpath "$RUNTIMED")
fi

# --- 3. temp dir: busybox rootfs + OCI bundle for crun --------------------------
WORK=$(mktemp -d /tmp/startup-bench.XXXXXX)
chmod 755 "$WORK"
CRUN_ID=startup-bench-$$
cleanup() {
    crun delete -f "$CRUN_ID" >/dev/null 2>&1 || true
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
# Everything else stays at crun's defaults: pid/net/ipc/uts/mount namespaces,
# read-only root, /proc /dev /sys ... mounts, masked and read-only paths.
jq '.process.terminal = false | .process.args = ["/bin/true"]' \
    "$BUNDLE/config.json" >"$WORK/config.json"
mv "$WORK/config.json" "$BUNDLE/config.json"

# crun 1.8 refuses a hybrid layout whose cgroup2 root lists any controller
# ("cgroups in hybrid mode not supported"), even with --cgroup-manager=disabled.
# Workaround: run in a private mount namespace where that file reads empty.
# Nothing outside changes; crun then creates no cgroups and sets no limits.
UNIFIED_CTRL=/sys/fs/cgroup/unified/cgroup.controllers
HYBRID_FIX=
if [[ -r $UNIFIED_CTRL && -n $(<"$UNIFIED_CTRL") ]]; then
    HYBRID_FIX=1
    : >"$WORK/empty"
fi
in_ns() {   # run "$@" with the hybrid workaround applied, if needed
    if [[ -n $HYBRID_FIX ]]; then
        # shellcheck disable=SC2016  # expanded by the inner bash
        unshare --mount --propagation private -- bash -c \
            'mount --bind "$1" "$2" && shift 2 && exec "$@"' _ "$WORK/empty" "$UNIFIED_CTRL" "$@"
    else
        "$@"
    fi
}

# --- 4. the rows -----------------------------------------------------------------
HOSTRO="--ro-bind /usr /usr --symlink usr/bin /bin --symlink usr/lib /lib --symlink usr/lib64 /lib64 --symlink usr/sbin /sbin"
names=() cmds=()
add() { names+=("$1"); cmds+=("$2"); }
[[ -z $ONLY_PEERS ]] && add runtimed "$RUNTIMED run -- /bin/true"
add bwrap   "bwrap --unshare-all $HOSTRO --proc /proc --dev /dev /bin/true"
add unshare "unshare --user --map-root-user --pid --fork --mount --net --ipc --uts --mount-proc /bin/true"
add crun    "crun --cgroup-manager=disabled run --bundle $BUNDLE $CRUN_ID"
add true    "/bin/true"

# Pre-flight: every row must work once (hyperfine would abort on the first
# failure with less to go on). crun deletes the container when it exits, so a
# fixed id works back to back; check that too.
crun delete -f "$CRUN_ID" >/dev/null 2>&1 || true
for i in "${!names[@]}"; do
    for try in 1 2; do
        # shellcheck disable=SC2086  # the command is split on whitespace, as hyperfine -N does
        if ! out=$(in_ns ${cmds[$i]} 2>&1 </dev/null); then
            die "row '${names[$i]}' fails (try $try): ${cmds[$i]}"$'\n'"$out"
        fi
    done
done
if [[ -z $ONLY_PEERS ]]; then
    # A runtimed without a working `run` (e.g. an empty main) exits 0 without
    # running anything and would look impossibly fast.
    if in_ns "$RUNTIMED" run -- /bin/false >/dev/null 2>&1 </dev/null; then
        die "'$RUNTIMED run -- /bin/false' exits 0: does this runtimed implement 'run'? (try --only-peers)"
    fi
    pid1=$(in_ns "$RUNTIMED" run -- /bin/sh -c 'echo $$' 2>/dev/null </dev/null || true)
    [[ $pid1 == 1 || $pid1 == 2 ]] \
        || log "warning: '\$\$' inside 'runtimed run' is '$pid1', not 1 or 2: no new pid namespace?"
    if [[ -n $HYBRID_FIX ]] && command -v strace >/dev/null; then
        if strace -f -e trace=%file -o "$WORK/strace" "$RUNTIMED" run -- /bin/true >/dev/null 2>&1 </dev/null \
            && grep -q "$UNIFIED_CTRL" "$WORK/strace"; then
            log "warning: runtimed reads $UNIFIED_CTRL, which the crun workaround blanks for every row"
        fi
    fi
fi

# --- 5. measure: hyperfine in rounds -------------------------------------------
# hyperfine runs all of one command, then all of the next; on a shared,
# noisy machine a slow minute then lands on one row only. So the runs are
# split into ROUNDS hyperfine invocations whose command order alternates
# (forward, reverse, ...), and each row's statistics are computed over the
# times of all rounds.
JSON=$WORK/hyperfine.json
PER_ROUND=$(( (RUNS + ROUNDS - 1) / ROUNDS ))
log "hyperfine: ${#names[@]} commands, $ROUNDS rounds of $WARMUP warm-ups + $PER_ROUND runs each"
# CPU time left idle during the run tells how contended it was: the benchmark
# itself keeps about one CPU busy, so on 2 CPUs ~50% idle is a quiet machine.
cpu_idle_total() { awk '/^cpu /{t=0; for(i=2;i<=NF;i++) t+=$i; print $5+$6, t}' /proc/stat; }
LOAD_START=$(cut -d' ' -f1 /proc/loadavg)
read -r IDLE0 TOTAL0 < <(cpu_idle_total)
order=("${!names[@]}")
for ((r = 0; r < ROUNDS; r++)); do
    hf=(hyperfine -N --warmup "$WARMUP" --runs "$PER_ROUND" --export-json "$WORK/round-$r.json")
    for i in "${order[@]}"; do hf+=(--command-name "${names[$i]}" "${cmds[$i]}"); done
    in_ns "${hf[@]}" </dev/null >/dev/null 2>&1 || in_ns "${hf[@]}" </dev/null >&2
    # reverse the order for the next round
    rev=(); for ((k = ${#order[@]} - 1; k >= 0; k--)); do rev+=("${order[$k]}"); done
    order=("${rev[@]}")
done
read -r IDLE1 TOTAL1 < <(cpu_idle_total)
IDLE_PCT=$(( (IDLE1 - IDLE0) * 100 / (TOTAL1 - TOTAL0 > 0 ? TOTAL1 - TOTAL0 : 1) ))
# Merge: one result per command over all its times (same shape as hyperfine's).
jq -s '
  [ .[].results[] ] | group_by(.command)
  | map({command: .[0].command, times: ([ .[].times[] ] | sort)})
  | map(. as $r | ($r.times | length) as $n | ($r.times | add / $n) as $m
        | {command: $r.command, times: $r.times,
           median: (if $n % 2 == 1 then $r.times[($n - 1) / 2]
                    else ($r.times[$n / 2 - 1] + $r.times[$n / 2]) / 2 end),
           mean: $m,
           stddev: (if $n > 1 then ([ $r.times[] | (. - $m) * (. - $m) ] | add / ($n - 1) | sqrt) else 0 end),
           min: $r.times[0], max: $r.times[-1]})
  | {results: .}' "$WORK"/round-*.json >"$JSON"

# --- 6. report -------------------------------------------------------------------
if [[ $(stat -fc %T /sys/fs/cgroup) == cgroup2fs ]]; then
    CGMODE="v2 (unified)"
elif mountpoint -q /sys/fs/cgroup/unified 2>/dev/null; then
    CGMODE="hybrid (v1 controllers + cgroup2 at /sys/fs/cgroup/unified)"
else
    CGMODE="v1"
fi
ver() { "$@" 2>/dev/null | head -n1 | tr -d '\r' || echo '?'; }
VERSIONS="hyperfine $(ver hyperfine --version | awk '{print $2}'), bwrap $(ver bwrap --version | awk '{print $2}'), crun $(ver crun --version | awk '{print $3}'), unshare $(ver unshare --version | awk '{print $NF}')"

# Median of each row, in ms; ratios against runtimed's and bwrap's medians.
med() { jq -r --arg n "$1" '.results[] | select(.command == $n) | .median * 1000' "$JSON"; }
REF_RT=; [[ -z $ONLY_PEERS ]] && REF_RT=$(med runtimed)
REF_BW=$(med bwrap)
# display form of each command: the temp dir is shown as a placeholder
show() { local c=${1//$BUNDLE/BUNDLE}; echo "$c"; }

DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
LOAD_END=$(cut -d' ' -f1 /proc/loadavg)
report() {
    echo "## runtimed start-up vs peers"
    echo
    echo "- Date: $DATE"
    echo "- Machine: kernel $(uname -r), $(nproc) CPUs, cgroup $CGMODE, 1-min load $LOAD_START before / $LOAD_END after, CPU idle during the run ${IDLE_PCT}% (the benchmark itself keeps ~1 CPU busy)"
    echo "- Versions: $VERSIONS"
    echo "- hyperfine -N (no shell), $ROUNDS rounds in alternating order, each $WARMUP warm-ups + $PER_ROUND runs per command ($((ROUNDS * PER_ROUND)) runs in all); times in ms"
    echo
    if [[ -n $ONLY_PEERS ]]; then
        echo "| tool | command | median | mean ± σ | min | max | vs bwrap |"
        echo "|------|---------|-------:|---------:|----:|----:|---------:|"
    else
        echo "| tool | command | median | mean ± σ | min | max | vs runtimed | vs bwrap |"
        echo "|------|---------|-------:|---------:|----:|----:|------------:|---------:|"
    fi
    local i
    for i in "${!names[@]}"; do
        jq -r --arg n "${names[$i]}" --arg cmd "$(show "${cmds[$i]}")" \
              --arg rt "$REF_RT" --arg bw "$REF_BW" '
            def f2: (. * 100 | round) / 100 | tostring
                    | if test("\\.") then . else . + ".0" end
                    | if test("\\.[0-9]$") then . + "0" else . end;
            def ratio($ref): if $ref == "" then empty
                             else ((.median * 1000) / ($ref | tonumber) | f2) + "×" end;
            .results[] | select(.command == $n)
            | [ $n, "`" + $cmd + "`",
                (.median * 1000 | f2),
                ((.mean * 1000 | f2) + " ± " + (.stddev * 1000 | f2)),
                (.min * 1000 | f2), (.max * 1000 | f2),
                ratio($rt), ratio($bw) ]
            | "| " + join(" | ") + " |"' "$JSON"
    done
    echo
    echo "- BUNDLE: busybox-static rootfs, default \`crun spec\` with args=[\"/bin/true\"], terminal=false."
    echo "- crun runs with --cgroup-manager=disabled: it creates no cgroups and sets no limits."
    if [[ -n $HYBRID_FIX ]]; then
        echo "- Hybrid host: every row ran in a private mount namespace where"
        echo "  $UNIFIED_CTRL reads empty (an empty file bind-mounted over it),"
        echo "  because crun 1.8 refuses the hybrid layout otherwise."
    fi
    if [[ -z $ONLY_PEERS ]]; then
        echo "- runtimed: $RUNTIMED"
    fi
}

report
if [[ -n $MARKDOWN ]]; then
    report >"$MARKDOWN"
    log "wrote $MARKDOWN"
fi
