#!/usr/bin/env bash
# images.sh - runtimed's images: build time of the builtin `python` image
# (cold: mmdebstrap + apt in a sandbox; cached: nothing changed), start-up
# latency of a sandbox on that image vs on the host rootfs (goal <= 1.2x),
# next to crun and bwrap starting on the same image unpacked into one
# directory (umoci unpack of our export), and the disk used by N daemon
# sessions of the image vs a copy per sandbox.
#
# Usage (as root):
#   bench/images.sh [--runs N] [--sessions N] [--data-dir DIR] [--runtimed PATH] [--markdown FILE]
#     --runs N          timed starts per row (default 200, in 2 rounds of alternating order)
#     --sessions N      daemon sessions for the disk figure (default 50)
#     --data-dir DIR    use (and keep) this data dir; its base/python caches count as
#                       "cold" only if they are empty (default: a fresh temp dir)
#     --runtimed PATH   this binary instead of `cargo build --release -p runtimed`
#     --markdown FILE   also write the report to FILE
# Env: KEEP=1 keeps the temp dir. Needs the Debian mirror for the cold build.
set -euo pipefail

RUNS=200
ROUNDS=2
SESSIONS=50
DATA=
RUNTIMED=
MARKDOWN=

usage() { sed -n '/^# Usage/,/^# Env/p' "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "images.sh: $*" >&2; exit 2; }
log() { echo "images.sh: $*" >&2; }

while (($#)); do
    case $1 in
        --runs) RUNS=${2:?}; shift 2 ;;
        --sessions) SESSIONS=${2:?}; shift 2 ;;
        --data-dir) DATA=${2:?}; shift 2 ;;
        --runtimed) RUNTIMED=${2:?}; shift 2 ;;
        --markdown) MARKDOWN=${2:?}; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "--runs must be a positive integer"
[[ $SESSIONS =~ ^[1-9][0-9]*$ ]] || die "--sessions must be a positive integer"
[[ $(id -u) -eq 0 ]] || die "run as root"

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)

need=()
for pc in hyperfine:hyperfine bubblewrap:bwrap crun:crun umoci:umoci jq:jq mmdebstrap:mmdebstrap curl:curl; do
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

WORK=$(mktemp -d /tmp/images-bench.XXXXXX)
chmod 755 "$WORK"
DAEMON_PID=
cleanup() {
    [[ -n $DAEMON_PID ]] && kill "$DAEMON_PID" 2>/dev/null && wait "$DAEMON_PID" 2>/dev/null || true
    crun delete -f images-bench-$$ >/dev/null 2>&1 || true
    if [[ -n ${KEEP:-} ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
[[ -n $DATA ]] || DATA=$WORK/data
mkdir -p "$DATA"
img() { "$RUNTIMED" image --data-dir "$DATA" "$@"; }

# --- 1. build: cold, then cached -------------------------------------------------
secs() { local t0 t1; t0=$(date +%s.%N); "$@" >"$WORK/build.log" 2>&1 || { cat "$WORK/build.log" >&2; die "failed: $*"; }; t1=$(date +%s.%N); echo "$t1 - $t0" | bc; }
log "cold build of python (mmdebstrap + apt; minutes)"
COLD=$(secs img build python)
log "cached build of python"
CACHED=$(secs img build python)

# --- 2. start-up latency ---------------------------------------------------------
# One directory with the whole image for the peers (umoci unpack of our
# export), the same files runtimed stacks as layers.
img export python "$WORK/layout" >/dev/null
umoci unpack --image "$WORK/layout:latest" "$WORK/bundle" >/dev/null
ROOTFS=$WORK/bundle/rootfs
jq '.process.terminal = false | .process.args = ["/bin/true"]' "$WORK/bundle/config.json" >"$WORK/c.json"
mv "$WORK/c.json" "$WORK/bundle/config.json"
UNIFIED_CTRL=/sys/fs/cgroup/unified/cgroup.controllers
HYBRID_FIX=
if [[ -r $UNIFIED_CTRL && -n $(<"$UNIFIED_CTRL") ]]; then HYBRID_FIX=1; : >"$WORK/empty"; fi
in_ns() {
    if [[ -n $HYBRID_FIX ]]; then
        # shellcheck disable=SC2016
        unshare --mount --propagation private -- bash -c \
            'mount --bind "$1" "$2" && shift 2 && exec "$@"' _ "$WORK/empty" "$UNIFIED_CTRL" "$@"
    else "$@"; fi
}
names=(host image crun bwrap)
cmds=(
    "$RUNTIMED run -- /bin/true"
    "$RUNTIMED run --image python --data-dir $DATA -- /bin/true"
    "crun --cgroup-manager=disabled run --bundle $WORK/bundle images-bench-$$"
    "bwrap --unshare-all --ro-bind $ROOTFS / --proc /proc --dev /dev --tmpfs /tmp /bin/true"
)
for i in "${!names[@]}"; do
    # shellcheck disable=SC2086
    in_ns ${cmds[$i]} </dev/null >/dev/null 2>&1 || die "row ${names[$i]} fails: ${cmds[$i]}"
done
PER=$(( (RUNS + ROUNDS - 1) / ROUNDS ))
order=("${!names[@]}")
for ((r = 0; r < ROUNDS; r++)); do
    hf=(hyperfine -N --warmup 5 --runs "$PER" --export-json "$WORK/round-$r.json")
    for i in "${order[@]}"; do hf+=(--command-name "${names[$i]}" "${cmds[$i]}"); done
    in_ns "${hf[@]}" </dev/null >/dev/null 2>&1 || in_ns "${hf[@]}" </dev/null >&2
    rev=(); for ((k = ${#order[@]} - 1; k >= 0; k--)); do rev+=("${order[$k]}"); done; order=("${rev[@]}")
done
jq -s '[ .[].results[] ] | group_by(.command)
  | map({command: .[0].command, t: ([ .[].times[] ] | sort)})
  | map({command, median: (.t[(.t | length) / 2 | floor]), mean: (.t | add / length)})' \
  "$WORK"/round-*.json >"$WORK/start.json"
med() { jq -r --arg n "$1" '.[] | select(.command == $n) | .median * 1000' "$WORK/start.json"; }

# --- 3. disk used by N sessions ----------------------------------------------------
SOCK=$WORK/rt.sock
"$RUNTIMED" serve --data-dir "$DATA" --socket "$SOCK" --no-tcp >"$WORK/daemon.log" 2>&1 &
DAEMON_PID=$!
for _ in $(seq 1 300); do [[ -S $SOCK ]] && break; sleep 0.1; done
[[ -S $SOCK ]] || { cat "$WORK/daemon.log" >&2; die "daemon did not start"; }
api() { curl -sS --unix-socket "$SOCK" -H 'content-type: application/json' "$@"; }
du_k() { du -sk "$1" | cut -f1; }
DATA_BEFORE=$(du_k "$DATA")
LAYERS_K=$(du_k "$DATA/layers")
for _ in $(seq 1 "$SESSIONS"); do
    id=$(api -X POST http://x/v1/sessions -d '{"image":"python"}' | jq -r .id)
    [[ $id == s-* ]] || die "session create failed: $id"
    api -X POST "http://x/v1/sessions/$id/exec" -d '{"argv":["python3","-c","open(\"/tmp/x\",\"w\").write(\"x\"*4096)"]}' >/dev/null
done
DATA_AFTER=$(du_k "$DATA")
NLAYERS=$(find "$DATA/layers/sha256" -mindepth 1 -maxdepth 1 -type d | wc -l)
kill "$DAEMON_PID"; wait "$DAEMON_PID" 2>/dev/null || true; DAEMON_PID=

# --- 4. report ----------------------------------------------------------------------
H=$(med host) I=$(med image) C=$(med crun) B=$(med bwrap)
ratio() { echo "scale=2; $1 / $2" | bc; }
report() {
    echo "## runtimed images"
    echo
    echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC'); kernel $(uname -r), $(nproc) CPUs; hyperfine -N, $ROUNDS rounds x $PER runs, alternating order"
    echo
    echo "| figure | value |"
    echo "|---|---:|"
    printf '| cold build of `python` (mmdebstrap base + apt in a sandbox) | %.1f s |\n' "$COLD"
    printf '| cached build of `python` (nothing changed) | %.2f s |\n' "$CACHED"
    printf '| start, host rootfs (`runtimed run -- /bin/true`), median | %.2f ms |\n' "$H"
    printf '| start, `--image python` (%d layers, overlay), median | %.2f ms (**%sx** host; goal <= 1.2x) |\n' "$NLAYERS" "$I" "$(ratio "$I" "$H")"
    printf '| crun on the same image unpacked into one dir, median | %.2f ms (%sx runtimed image) |\n' "$C" "$(ratio "$C" "$I")"
    printf '| bwrap on the same dir, median | %.2f ms (%sx runtimed image) |\n' "$B" "$(ratio "$B" "$I")"
    echo "| unpacked layers on disk (once) | $((LAYERS_K / 1024)) MiB |"
    echo "| data dir before / after $SESSIONS sessions (each wrote 4 KiB; upper layers are size-capped tmpfs) | $((DATA_BEFORE / 1024)) / $((DATA_AFTER / 1024)) MiB |"
    echo "| a copy of the image per session would take | $((LAYERS_K * SESSIONS / 1024)) MiB |"
    echo
    echo "- crun: --cgroup-manager=disabled (no cgroups, no limits); bwrap: no cgroups, no seccomp; runtimed rows: cgroups, seccomp, Landlock, uid pool."
}
report
[[ -z $MARKDOWN ]] || { report >"$MARKDOWN"; log "wrote $MARKDOWN"; }
