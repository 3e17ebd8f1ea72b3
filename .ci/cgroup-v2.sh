#!/usr/bin/env bash
# Runs the cgroup tests of `sandbox` on a pure cgroup v2 kernel: builds the
# test binary on the host, then runs only the cgroup tests inside
# ../shared/tools/cgroup2-vm (a throwaway VM, see its header). They are
# privileged, so every run passes --include-ignored; the `vm_only_*` tests
# (a pure v2 kernel, a global sysctl), which the host's suite skips by name,
# run only here. A test that lacks a prerequisite fails. Exit status: the
# tests'.
set -euo pipefail

top=$(git rev-parse --show-toplevel)
vm="$top/../shared/tools/cgroup2-vm"
[ -x "$vm" ] || { echo "cgroup-v2.sh: $vm not found or not executable" >&2; exit 2; }
cd "$top"

# --lib: the unit-test binary of sandbox is the only artifact with an
# executable, so the last "executable" in cargo's JSON is it.
bin=$(cargo test -p sandbox --lib --no-run --message-format=json \
	| grep -o '"executable":"[^"]*"' | tail -n 1 | cut -d'"' -f4)
[ -n "$bin" ] && [ -x "$bin" ] || { echo "cgroup-v2.sh: no sandbox test binary found" >&2; exit 2; }

# The VM sees / read-only and the current directory read-write, but not the
# host's /tmp: copy a binary built there into the repository's target dir.
case $bin in
/tmp/*)
	mkdir -p "$top/target/cgroup-v2"
	cp "$bin" "$top/target/cgroup-v2/"
	bin="$top/target/cgroup-v2/${bin##*/}"
	;;
esac

# An exec's own cgroup below its session's (the session's processes in the
# leaf `init`), its OOM/pids/CPU-time accounting and `limits.cpu_time`:
# exec_cgroup and outcome, with the other end-to-end tests below.
# The end-to-end limit and accounting tests (real `runtimed run` sandboxes:
# clone3 into the cgroup, OOM kill, pids limit, CPU time of the tree, cgroup
# removal) and the daemon's (sessions below the daemon's supervisor leaf,
# OOM inside a session, teardown on DELETE, TTL, SIGTERM and kill -9) run in
# the same VM, and a part of the judge's (one-shot sandboxes from the
# zygote: verdicts and figures, the queue's 429, kill -9 and restart, SSE;
# the VM's /var/tmp is an overlayfs, which once broke the judge's output
# files and its compile step). And the core dump test, which must set the
# global kernel.core_pattern to a pipe: only ever here, in the throwaway VM.
cargo build -q --workspace --bins
e2e=$(cargo test -q -p runtimed-tests --no-run --message-format=json \
	| grep -o '"executable":"[^"]*/\(limits\|lifecycle\|daemon\|judge_api\|hostile_coredump\|hostile_files\|hostile_clients\|exec_cgroup\|outcome\)-[^"]*"' | cut -d'"' -f4)
[ "$(echo "$e2e" | wc -l)" -eq 9 ] || { echo "cgroup-v2.sh: end-to-end test binaries not found" >&2; exit 2; }
judge=$(echo "$e2e" | grep '/judge_api-')
core=$(echo "$e2e" | grep '/hostile_coredump-')
files=$(echo "$e2e" | grep '/hostile_files-')
clients=$(echo "$e2e" | grep '/hostile_clients-')
e2e=$(echo "$e2e" | grep -v '/judge_api-\|/hostile_coredump-\|/hostile_files-\|/hostile_clients-')
runtimed_bin=$(dirname "$(echo "$e2e" | head -n 1)")/../runtimed
script="set -e; timeout -k 5 180 $bin cgroup:: --include-ignored --test-threads=2"
# First, while few network namespaces are being torn down: a few sandboxes
# (the pipe handler, and raising a caller's hard core limit of 0, which
# needs the CAP_SYS_RESOURCE the development container lacks).
script="$script; timeout -k 5 120 $core --include-ignored --test-threads=1 vm_only_"
# Files written through the API are charged to the session's cgroup
# (memory.current on v2), and a disconnected /v1/run removes its cgroup.
script="$script; timeout -k 5 180 $files --include-ignored --test-threads=2"
script="$script; timeout -k 5 180 $clients --include-ignored --test-threads=1 a_run_whose_client_disconnects"
# The daemon's tests last: the network namespaces their many sandboxes
# leave are torn down by a kernel worker, slowly under emulation, and a new
# sandbox's clone3 waits for that (a 14 s start was seen right after them).
# The CLI's own tests (limits, lifecycle: their elapsed time is asserted)
# first, then those that drive a daemon's sessions (exec_cgroup, outcome),
# the daemon's own last: limits' CPU-time test once took 19 s to start
# right after exec_cgroup's sessions.
ordered=$(echo "$e2e" | grep '/limits-\|/lifecycle-'; echo "$e2e" | grep -v '/daemon-\|/limits-\|/lifecycle-'; echo "$e2e" | grep '/daemon-')
for t in $ordered; do script="$script; timeout -k 5 240 $t --include-ignored --test-threads=2"; done
# The judge's after them, for the same reason (many sandboxes); a limit
# test's start once waited 11 s behind them.
script="$script; timeout -k 5 240 $judge --include-ignored --test-threads=2 submissions_get a_full_queue accepted_submissions progress_streams"

# The emulated CPU compiles C++ in 7-12 s of CPU time (measured: g++ -static
# of an A+B, cold and warm), around the judge's default compile limit of
# 10 s: the test daemons here give C and C++ compiles a minute instead.
mkdir -p "$top/target/cgroup-v2"
langs="$top/target/cgroup-v2/languages.toml"
python3 - judges/languages.toml "$langs" <<'PY'
import re, sys
blocks = re.split(r"(?m)^(?=\[\[language\]\])", open(sys.argv[1]).read())
slow = "[language.compile]\ncpu_time_ms = 60000\nwall_time_ms = 120000\n"
picked = [b.replace("[language.compile]\n", slow, 1) for b in blocks
          if re.search(r'(?m)^name = "(c|cpp)"$', b)]
assert len(picked) == 2, "c and cpp in judges/languages.toml"
open(sys.argv[2], "w").write("".join(picked))
PY
echo "judge_languages = \"$langs\"" > "$top/target/cgroup-v2/test-config.toml"

start=$(date +%s)
status=0
# A bound on the whole VM run: a hang fails CI in minutes, not at its limit.
"$vm" --timeout 600 -- env RUNTIMED_BIN="$runtimed_bin" \
	RUNTIMED_TEST_CONFIG_APPEND="$top/target/cgroup-v2/test-config.toml" bash -c "$script" || status=$?
echo "cgroup-v2.sh: VM run took $(( $(date +%s) - start )) s, exit status $status"
exit "$status"
