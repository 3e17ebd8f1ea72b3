#!/usr/bin/env bash
# oci-validation.sh - the OCI runtime-tools validation suite (validation/*.t)
# against runc (the control) and runtimed, side by side; prints the pass
# counts per test program and runtime, and lists runtimed's gaps. It is a
# report, not a gate: it exits 0 whatever the counts (2 on a usage, build or
# VM error), so known gaps do not fail CI (issue 14, point 3).
#
# The suite creates cgroups at fixed paths (/test/..., /<container id>) and
# changes sysctls, so it never runs on the host: every program runs inside
# ../shared/tools/cgroup2-vm, the throwaway cgroup v2 VM (see its header).
#
# The source: Debian's golang-github-opencontainers-runtime-tools-dev ships
# only the library packages (generate, specerror, validate, ...), not
# validation/ nor cmd/runtimetest, so the suite cannot be built from it.
# Give a checkout of github.com/opencontainers/runtime-tools (v0.9.0 or the
# commit Debian packages, 0105384, builds with Go 1.19 from its vendor/
# directory, offline).
#
# Usage (as root):
#   .ci/oci-validation.sh --source DIR [--runtime NAME=PATH]... [--only REGEX]
#                         [--markdown FILE] [--timeout SECS]
#     --source DIR       the runtime-tools checkout (or $RUNTIME_TOOLS_SRC)
#     --runtime N=PATH   a runtime to test (default: runc=$(command -v runc)
#                        and runtimed=target/<triple>/debug/runtimed as `runtimed-runc`)
#     --only REGEX       only the test programs whose name matches
#     --markdown FILE    also write the report to FILE
#     --timeout SECS     per program and runtime (default 120)
#     --report-only      no build, no run: report the results of the last run
# Env: CGROUP2_VM overrides the VM script's path.
set -euo pipefail

SRC=${RUNTIME_TOOLS_SRC:-}
ONLY=
MARKDOWN=
PER=120
RUNTIMES=()
REPORT_ONLY=
die() { echo "oci-validation.sh: $*" >&2; exit 2; }
usage() { sed -n '/^# Usage/,/^# Env/p' "$0" | sed 's/^# \{0,1\}//'; }
while (($#)); do
    case $1 in
        --source) [[ $# -ge 2 ]] || die "--source needs a dir"; SRC=$2; shift 2 ;;
        --runtime) [[ $# -ge 2 && $2 == *=* ]] || die "--runtime needs NAME=PATH"; RUNTIMES+=("$2"); shift 2 ;;
        --only) [[ $# -ge 2 ]] || die "--only needs a regex"; ONLY=$2; shift 2 ;;
        --markdown) [[ $# -ge 2 ]] || die "--markdown needs a file"; MARKDOWN=$2; shift 2 ;;
        --timeout) [[ $# -ge 2 && $2 =~ ^[1-9][0-9]*$ ]] || die "--timeout needs seconds"; PER=$2; shift 2 ;;
        --report-only) REPORT_ONLY=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done
[[ $(id -u) -eq 0 ]] || die "run as root"
[[ -n $SRC ]] || die "no runtime-tools source: --source DIR (Debian's package lacks validation/, see the header)"
[[ -d $SRC/validation && -d $SRC/cmd/runtimetest ]] || die "$SRC has no validation/ and cmd/runtimetest"
SRC=$(cd "$SRC" && pwd)
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VM=${CGROUP2_VM:-$REPO/../shared/tools/cgroup2-vm}
[[ -x $VM ]] || die "$VM not found or not executable"
log() { echo "oci-validation.sh: $*" >&2; }

# --- build (offline: the vendored dependencies) -------------------------------
if [[ ! -x $SRC/runtimetest ]] || ! ls "$SRC"/validation/*/*.t >/dev/null 2>&1; then
    log "building runtimetest and validation/*.t in $SRC"
    (cd "$SRC" && GOFLAGS=-mod=vendor GOPROXY=off make runtimetest validation-executables >"$SRC/build.log" 2>&1) \
        || { tail -20 "$SRC/build.log" >&2; die "the suite does not build (log: $SRC/build.log)"; }
fi

# --- runtimes -------------------------------------------------------------------
mkdir -p "$SRC/runtimes"
if ((${#RUNTIMES[@]} == 0)); then
    RUNTIMES+=("runc=$(command -v runc || die 'runc not installed')")
    # .cargo/config.toml sets a build target, so the binary is under it.
    bin=
    for b in "$REPO"/target/*/debug/runtimed "$REPO"/target/debug/runtimed; do
        [[ -x $b ]] && { bin=$b; break; }
    done
    [[ -n $bin ]] || die "no runtimed under $REPO/target: cargo build --workspace --bins"
    RUNTIMES+=("runtimed=$bin")
fi
names=() paths=()
for r in "${RUNTIMES[@]}"; do
    name=${r%%=*} path=${r#*=}
    [[ -x $path ]] || die "runtime $name: $path is not executable"
    # runtimed answers the runc protocol under the name runtimed-runc.
    if [[ $(basename "$path") == runtimed ]]; then
        ln -sfn "$(realpath "$path")" "$SRC/runtimes/runtimed-runc"
        path=$SRC/runtimes/runtimed-runc
    fi
    names+=("$name") paths+=("$path")
done

# --- run in the VM ----------------------------------------------------------------
tests=()
for t in "$SRC"/validation/*/*.t; do
    n=$(basename "$t" .t)
    [[ -z $ONLY || $n =~ $ONLY ]] && tests+=("$n")
done
((${#tests[@]})) || die "no test program matches '$ONLY'"
OUT=$SRC/results
if [[ -z $REPORT_ONLY ]]; then
rm -rf "$OUT" && mkdir -p "$OUT"
# One VM boot for everything: a loop over programs × runtimes, each bounded,
# its TAP output and exit status kept in results/<runtime>/<test>.{tap,rc}.
inner='set -u
for i in "${!NAMES[@]}"; do
  mkdir -p "results/${NAMES[$i]}"
  for t in $TESTS; do
    rc=0
    RUNTIME=${PATHS[$i]} timeout -k 5 '"$PER"' ./validation/$t/$t.t >"results/${NAMES[$i]}/$t.tap" 2>&1 || rc=$?
    echo $rc >"results/${NAMES[$i]}/$t.rc"
  done
done'
log "running ${#tests[@]} programs × ${#names[@]} runtimes in the cgroup v2 VM"
vm_timeout=$(( (${#tests[@]} * ${#names[@]}) * (PER + 10) + 300 ))
decl="NAMES=($(printf '%q ' "${names[@]}")); PATHS=($(printf '%q ' "${paths[@]}")); TESTS='${tests[*]}'"
(cd "$SRC" && "$VM" --timeout "$vm_timeout" -- bash -c "$decl; $inner") >"$OUT/vm.log" 2>&1 \
    || { tail -30 "$OUT/vm.log" >&2; die "the VM run failed (log: $OUT/vm.log)"; }
fi

# --- report ------------------------------------------------------------------------
# A program passes when it exits 0, prints no "not ok" and no error
# diagnostic of its own: some programs report a failure only as a YAML
# block with an "error" key before any test line ("1..0" plan). The counts
# are its TAP lines.
report() {
    echo "OCI runtime-tools validation ($(git -C "$SRC" describe --always 2>/dev/null || basename "$SRC")), $(date -u +%F), cgroup v2 VM"
    echo
    printf '| test |'; for n in "${names[@]}"; do printf ' %s |' "$n"; done; echo
    printf '|---|'; for _ in "${names[@]}"; do printf -- '---|'; done; echo
    declare -A pass=() asserts=() aok=()
    gaps=()
    for t in "${tests[@]}"; do
        printf '| %s |' "$t"
        for n in "${names[@]}"; do
            tap=$OUT/$n/$t.tap rc=$(cat "$OUT/$n/$t.rc" 2>/dev/null || echo 255)
            ok=$(grep -c '^ok ' "$tap" || true) bad=$(grep -c '^not ok ' "$tap" || true)
            # An error diagnostic belongs to the test line above it (an
            # expected error of an "ok" test, or the detail of a "not ok");
            # one above every test line is a failure of its own.
            errs=$(awk '/^ok / { s = "ok" } /^not ok / { s = "bad" } /"error":/ && s == "" { n++ } END { print n + 0 }' "$tap")
            asserts[$n]=$(( ${asserts[$n]:-0} + ok + bad )) aok[$n]=$(( ${aok[$n]:-0} + ok ))
            if [[ $rc == 0 && $bad == 0 && $errs == 0 ]]; then
                pass[$n]=$(( ${pass[$n]:-0} + 1 )); printf ' pass (%s ok) |' "$ok"
            else
                printf ' **fail** (%s ok, %s not ok, %s errors, exit %s) |' "$ok" "$bad" "$errs" "$rc"
                if [[ $n != runc ]]; then
                    # The runtime's own complaint if it made one, else the
                    # first failing line.
                    why=$(awk '/^not ok/ { f = 1; if (!line) line = $0 }
                        f && match($0, /-runc: [^"\\]*/) { print "runtime: " substr($0, RSTART + 7, RLENGTH - 7); found = 1; exit }
                        END { if (!found && line) print line }' "$tap")
                    [[ -n $why ]] || why=$(grep -m1 -oE -- '-runc: [^"\\]*' "$tap" | sed 's/^-runc: /runtime: /' || grep -m1 -E '"error"|panic' "$tap" || tail -n1 "$tap")
                    gaps+=("$n/$t: ${why:0:160}")
                fi
            fi
        done
        echo
    done
    printf '| **programs passed** |'; for n in "${names[@]}"; do printf ' **%s / %s** |' "${pass[$n]:-0}" "${#tests[@]}"; done; echo
    printf '| assertions ok |'; for n in "${names[@]}"; do printf ' %s / %s |' "${aok[$n]:-0}" "${asserts[$n]:-0}"; done; echo
    echo
    if ((${#gaps[@]})); then
        echo "Known gaps (failing programs other than runc's, with the first complaint):"
        echo
        for g in "${gaps[@]}"; do echo "- $g"; done
    fi
}
report | tee ${MARKDOWN:+"$MARKDOWN"}
exit 0
