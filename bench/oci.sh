#!/usr/bin/env bash
# oci.sh - what choosing runtimed as Docker's OCI runtime costs (issue 14,
# point 5): `docker run --rm busybox /bin/true` with --runtime runtimed, runc
# and crun on ONE private dockerd, side by side in one run; and the same
# container started by each runtime binary alone (`RUNTIME run --bundle`:
# create + start + wait + delete, no engine), which isolates the runtime's
# own cost from the engine's ~300 ms.
#
# hyperfine (no shell, -N), rounds in alternating order, a Markdown table
# (median, mean ± σ, min, max, ratio to runc's median) and the machine
# facts. A runtime that fails its pre-flight (e.g. a runtimed without the
# `oci` command line yet) is left out with its error, the others are
# measured. See bench/README.md for the set-up and the caveats.
#
# Usage (as root):
#   bench/oci.sh [--runs N] [--rounds R] [--runtimed PATH] [--markdown FILE] [--no-direct]
#     --runs N          timed runs per row in all (default 60)
#     --rounds R        split them over R hyperfine invocations whose row
#                       order alternates (default 3; 3 warm-ups each)
#     --runtimed PATH   use this runtimed binary instead of building one with
#                       `cargo build --release -p runtimed`
#     --markdown FILE   also write the report to FILE
#     --no-direct       only the `docker run` rows
# Env: KEEP=1 keeps the temp dir (dockerd's log, bundles, hyperfine JSON).
set -euo pipefail

RUNS=60
ROUNDS=3
WARMUP=3
RUNTIMED=
MARKDOWN=
DIRECT=1

usage() { sed -n '/^# Usage/,/^# Env/p' "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "oci.sh: $*" >&2; exit 2; }
log() { echo "oci.sh: $*" >&2; }

while (($#)); do
    case $1 in
        --runs) [[ $# -ge 2 ]] || die "--runs needs a value"; RUNS=$2; shift 2 ;;
        --rounds) [[ $# -ge 2 ]] || die "--rounds needs a value"; ROUNDS=$2; shift 2 ;;
        --runtimed) [[ $# -ge 2 ]] || die "--runtimed needs a path"; RUNTIMED=$2; shift 2 ;;
        --markdown) [[ $# -ge 2 ]] || die "--markdown needs a file"; MARKDOWN=$2; shift 2 ;;
        --no-direct) DIRECT=; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "--runs must be a positive integer, got '$RUNS'"
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "--rounds must be a positive integer, got '$ROUNDS'"
[[ $(id -u) -eq 0 ]] || die "run as root (dockerd and the runtimes run rootful)"

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)

# --- 1. tools ---------------------------------------------------------------------
need=()
for pc in hyperfine:hyperfine jq:jq docker.io:dockerd containerd:containerd runc:runc \
          crun:crun busybox-static:/bin/busybox util-linux:unshare; do
    pkg=${pc%%:*} probe=${pc#*:}
    if [[ $probe == /* ]]; then [[ -e $probe ]] || need+=("$pkg")
    else command -v "$probe" >/dev/null || need+=("$pkg"); fi
done
if ((${#need[@]})); then
    log "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# --- 2. runtimed --------------------------------------------------------------------
if [[ -z $RUNTIMED ]]; then
    CARGO=$(command -v cargo || true)
    [[ -n $CARGO ]] || { [[ -x $HOME/.cargo/bin/cargo ]] && CARGO=$HOME/.cargo/bin/cargo; }
    [[ -n $CARGO ]] || die "cargo not found: pass --runtimed PATH"
    log "building runtimed (release)"
    RUNTIMED=$(cd "$REPO" && "$CARGO" build --release -q -p runtimed --message-format=json \
        | grep -o '"executable":"[^"]*/runtimed"' | tail -n 1 | cut -d'"' -f4)
    [[ -x $RUNTIMED ]] || die "could not build runtimed"
fi
[[ -x $RUNTIMED ]] || die "runtimed binary not executable: $RUNTIMED"
RUNTIMED=$(realpath "$RUNTIMED")

# --- 3. temp dir, cgroup parent, dockerd ------------------------------------------------
WORK=$(mktemp -d /tmp/oci-bench.XXXXXX)
chmod 755 "$WORK"
mkdir -p "$WORK/bin"
# runtimed answers the runc protocol under this name (a symlink, as the
# containerd shim takes a binary and no arguments).
ln -s "$RUNTIMED" "$WORK/bin/runtimed-runc"

# Containers' cgroups go below a parent made under this shell's own cgroup
# (on a hybrid host: below the deepest of its per-hierarchy paths, which
# all the others contain), never elsewhere on the host.
OWN=$(awk -F: '{ if (length($3) > length(d)) d = $3 } END { print (d == "" ? "/" : d) }' /proc/self/cgroup)
OWN=${OWN%/}
PARENT=$OWN/oci-bench-$$
CG_DIRS=() CG_MADE=()
while IFS= read -r line; do
    fstype=$(awk '{for (i = 1; i <= NF; i++) if ($i == "-") { print $(i + 1); exit }}' <<<"$line")
    mp=$(awk '{print $5}' <<<"$line")
    [[ $fstype == cgroup || $fstype == cgroup2 ]] || continue
    CG_DIRS+=("$mp$PARENT")
    # Remember each directory made on the way (removed in reverse at exit).
    p=$mp
    IFS=/ read -ra parts <<<"${PARENT#/}"
    for part in "${parts[@]}"; do
        p=$p/$part
        [[ -d $p ]] || { mkdir "$p"; CG_MADE+=("$p"); }
    done
done </proc/self/mountinfo

DOCKERD_PID=
cleanup() {
    set +e
    if [[ -n $DOCKERD_PID ]]; then
        kill -TERM "$DOCKERD_PID" 2>/dev/null
        for _ in $(seq 400); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$DOCKERD_PID" 2>/dev/null
    fi
    # Shims daemonise and name the temp dir in their arguments.
    for p in $(pgrep -f -- "$WORK" || true); do kill -KILL "$p" 2>/dev/null; done
    for d in "${CG_DIRS[@]}"; do find "$d" -depth -mindepth 1 -type d -exec rmdir {} + 2>/dev/null; done
    for ((k = ${#CG_MADE[@]} - 1; k >= 0; k--)); do rmdir "${CG_MADE[$k]}" 2>/dev/null; done
    if [[ -n ${KEEP:-} ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Everything runs in a private mount namespace: dockerd's mounts vanish with
# it, a tmpfs covers /run/containerd (the shims' sockets, which containerd
# 1.6 puts there whatever its state dir), and on a hybrid host an empty file
# covers the cgroup2 controller list, which crun 1.8 refuses otherwise.
UNIFIED_CTRL=/sys/fs/cgroup/unified/cgroup.controllers
HYBRID_FIX=
if [[ -r $UNIFIED_CTRL && -n $(<"$UNIFIED_CTRL") ]]; then HYBRID_FIX=1; : >"$WORK/empty"; fi
# The tmpfs's mount point stays: removing it while a test's engine has its
# own tmpfs there would detach that one in the other namespace.
mkdir -p /run/containerd
NS_SETUP='mount -t tmpfs -o mode=0711,size=16m bench-run /run/containerd
if [ -n "$1" ]; then mount --bind "$1" /sys/fs/cgroup/unified/cgroup.controllers; fi'

cat >"$WORK/daemon.json" <<EOF
{"runtimes": {"runtimed": {"path": "$WORK/bin/runtimed-runc"}, "crun": {"path": "$(command -v crun)"}}}
EOF
SOCK=$WORK/docker.sock
# shellcheck disable=SC2016  # expanded by the inner sh
unshare --mount --propagation private -- sh -c "set -e; $NS_SETUP"'
shift; exec "$@"' _ "${HYBRID_FIX:+$WORK/empty}" \
    "$(command -v dockerd)" --config-file "$WORK/daemon.json" \
    --data-root "$WORK/data" --exec-root "$WORK/run" --pidfile "$WORK/dockerd.pid" \
    -H "unix://$SOCK" --cgroup-parent "$PARENT" --exec-opt native.cgroupdriver=cgroupfs \
    --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false \
    --bridge=none --userland-proxy=false --storage-driver overlay2 \
    </dev/null >"$WORK/dockerd.log" 2>&1 &
DOCKERD_PID=$!
export DOCKER_CONFIG=$WORK/client
DOCKER=(docker -H "unix://$SOCK")
for _ in $(seq 900); do
    "${DOCKER[@]}" version >/dev/null 2>&1 && break
    kill -0 "$DOCKERD_PID" 2>/dev/null || { tail -20 "$WORK/dockerd.log" >&2; die "dockerd exited"; }
    sleep 0.1
done
"${DOCKER[@]}" version >/dev/null 2>&1 || { tail -20 "$WORK/dockerd.log" >&2; die "dockerd did not answer in 90 s"; }

# The image: busybox-static with every applet.
ROOTFS=$WORK/rootfs
mkdir -p "$ROOTFS"/{bin,proc,sys,dev,tmp,etc}
cp /bin/busybox "$ROOTFS/bin/busybox"
for a in $(/bin/busybox --list); do [[ $a == busybox ]] || ln -s busybox "$ROOTFS/bin/$a"; done
IMAGE=oci-bench/busybox:1
tar -C "$ROOTFS" -c . | "${DOCKER[@]}" import --change 'ENV PATH=/bin' - "$IMAGE" >/dev/null

# The bundle for the direct rows: the default `runc spec` (no user
# namespace asked for), /bin/true, no terminal, a cgroup below ours.
BUNDLE=$WORK/bundle
mkdir -p "$BUNDLE"
cp -a "$ROOTFS" "$BUNDLE/rootfs"
(cd "$BUNDLE" && runc spec)
jq --arg cg "$PARENT/direct" '.process.terminal = false | .process.args = ["/bin/true"]
    | .linux.cgroupsPath = $cg' "$BUNDLE/config.json" >"$WORK/config.json"
mv "$WORK/config.json" "$BUNDLE/config.json"
# The pre-flight's /bin/false twin of the bundle (same rootfs).
mkdir -p "$WORK/bundle-false"
jq --arg root "$BUNDLE/rootfs" '.process.args = ["/bin/false"] | .root.path = $root' \
    "$BUNDLE/config.json" >"$WORK/bundle-false/config.json"

# hyperfine and the pre-flight run in dockerd's mount namespace (the hybrid
# fix for the direct crun row; the docker client does not care).
in_ns() { nsenter --target "$DOCKERD_PID" --mount -- "$@"; }

# --- 4. rows and pre-flight -------------------------------------------------------------
names=() cmds=() skipped=()
add() { names+=("$1"); cmds+=("$2"); }
for rt in runtimed runc crun; do
    add "docker $rt" "${DOCKER[*]} run --rm --network none --runtime $rt $IMAGE /bin/true"
done
if [[ -n $DIRECT ]]; then
    add "direct runtimed" "$WORK/bin/runtimed-runc --root $WORK/state-runtimed run --bundle $BUNDLE oci-bench-$$"
    add "direct runc" "$(command -v runc) --root $WORK/state-runc run --bundle $BUNDLE oci-bench-$$"
    add "direct crun" "$(command -v crun) --root $WORK/state-crun run --bundle $BUNDLE oci-bench-$$"
fi
# Every row must work twice (a fixed id must be reusable after `run`), and
# must really run the program: /bin/false must fail. A runtime that cannot
# is left out, with its first error line, and the others go on.
keep_n=() keep_c=()
for i in "${!names[@]}"; do
    ok=1 err=
    for _ in 1 2; do
        # shellcheck disable=SC2086  # split on whitespace, as hyperfine -N does
        if ! err=$(in_ns ${cmds[$i]} 2>&1 </dev/null); then ok=; break; fi
    done
    if [[ -n $ok ]]; then
        false_cmd=${cmds[$i]/\/bin\/true//bin/false}
        false_cmd=${false_cmd/--bundle $BUNDLE /--bundle $WORK/bundle-false }
        # shellcheck disable=SC2086
        if in_ns $false_cmd >/dev/null 2>&1 </dev/null; then
            ok= err="exits 0 for /bin/false"
        fi
    fi
    if [[ -n $ok || ${names[$i]} == *runtimed* ]]; then :; else
        die "row '${names[$i]}' fails: ${cmds[$i]}"$'\n'"$err"
    fi
    if [[ -n $ok ]]; then keep_n+=("${names[$i]}"); keep_c+=("${cmds[$i]}")
    else skipped+=("${names[$i]}: $(head -c 300 <<<"$err" | tr '\n' ' ')"); log "left out ${names[$i]}: $err"; fi
done
names=("${keep_n[@]}") cmds=("${keep_c[@]}")

# --- 5. measure ---------------------------------------------------------------------------
JSON=$WORK/hyperfine.json
PER_ROUND=$(( (RUNS + ROUNDS - 1) / ROUNDS ))
log "hyperfine: ${#names[@]} rows, $ROUNDS rounds of $WARMUP warm-ups + $PER_ROUND runs each"
cpu_idle_total() { awk '/^cpu /{t=0; for(i=2;i<=NF;i++) t+=$i; print $5+$6, t}' /proc/stat; }
LOAD_START=$(cut -d' ' -f1 /proc/loadavg)
read -r IDLE0 TOTAL0 < <(cpu_idle_total)
order=("${!names[@]}")
for ((r = 0; r < ROUNDS; r++)); do
    hf=(hyperfine -N --warmup "$WARMUP" --runs "$PER_ROUND" --export-json "$WORK/round-$r.json")
    for i in "${order[@]}"; do hf+=(--command-name "${names[$i]}" "${cmds[$i]}"); done
    in_ns "${hf[@]}" </dev/null >/dev/null 2>&1 || in_ns "${hf[@]}" </dev/null >&2
    rev=(); for ((k = ${#order[@]} - 1; k >= 0; k--)); do rev+=("${order[$k]}"); done
    order=("${rev[@]}")
done
read -r IDLE1 TOTAL1 < <(cpu_idle_total)
IDLE_PCT=$(( (IDLE1 - IDLE0) * 100 / (TOTAL1 - TOTAL0 > 0 ? TOTAL1 - TOTAL0 : 1) ))
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

# --- 6. report ------------------------------------------------------------------------------
ver() { "$@" 2>/dev/null | head -n1 | tr -d '\r' || echo '?'; }
VERSIONS="dockerd $(ver dockerd --version | awk '{print $3}' | tr -d ,), containerd $(ver containerd --version | awk '{print $3}'), runc $(ver runc --version | awk '{print $3}'), crun $(ver crun --version | awk '{print $3}'), hyperfine $(ver hyperfine --version | awk '{print $2}')"
med() { jq -r --arg n "$1" '.results[] | select(.command == $n) | .median * 1000' "$JSON"; }
show() { local c=${1//$WORK/TMP}; c=${c//$RUNTIMED/RUNTIMED}; echo "${c//oci-bench-$$/ID}"; }
DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
LOAD_END=$(cut -d' ' -f1 /proc/loadavg)
report() {
    echo "## OCI runtimes under Docker: runtimed vs runc vs crun"
    echo
    echo "- Date: $DATE"
    echo "- Machine: kernel $(uname -r), $(nproc) CPUs, 1-min load $LOAD_START before / $LOAD_END after, CPU idle during the run ${IDLE_PCT}%"
    echo "- Versions: $VERSIONS"
    echo "- hyperfine -N, $ROUNDS rounds in alternating order, each $WARMUP warm-ups + $PER_ROUND runs per row ($((ROUNDS * PER_ROUND)) runs in all); times in ms"
    echo
    echo "| row | command | median | mean ± σ | min | max | vs runc (same way) |"
    echo "|-----|---------|-------:|---------:|----:|----:|-------------------:|"
    local i ref
    for i in "${!names[@]}"; do
        case ${names[$i]} in docker*) ref=$(med "docker runc") ;; *) ref=$(med "direct runc") ;; esac
        jq -r --arg n "${names[$i]}" --arg cmd "$(show "${cmds[$i]}")" --arg ref "$ref" '
            def f2: (. * 100 | round) / 100 | tostring
                    | if test("\\.") then . else . + ".0" end
                    | if test("\\.[0-9]$") then . + "0" else . end;
            .results[] | select(.command == $n)
            | [ $n, "`" + $cmd + "`", (.median * 1000 | f2),
                ((.mean * 1000 | f2) + " ± " + (.stddev * 1000 | f2)),
                (.min * 1000 | f2), (.max * 1000 | f2),
                (if $ref == "" then "" else ((.median * 1000) / ($ref | tonumber) | f2) + "×" end) ]
            | "| " + join(" | ") + " |"' "$JSON"
    done
    echo
    echo "- One private dockerd (temp data and exec roots, no bridge, no iptables), cgroupfs driver, containers below this shell's own cgroup; image: busybox-static."
    echo "- direct rows: \`RUNTIME run\` of a bundle with the default \`runc spec\` config (args /bin/true, no terminal, a cgroupsPath below ours): create + start + wait + delete, no engine."
    [[ -n $HYBRID_FIX ]] && echo "- Hybrid host: all rows ran where $UNIFIED_CTRL reads empty (crun 1.8 refuses the hybrid layout otherwise)."
    local s
    for s in "${skipped[@]}"; do echo "- Left out (pre-flight failed): $s"; done
    echo "- runtimed: $RUNTIMED"
}
report
if [[ -n $MARKDOWN ]]; then report >"$MARKDOWN"; log "wrote $MARKDOWN"; fi
