#!/usr/bin/env bash
# Fuzzes the native HTTP API from its own OpenAPI document (issue 12):
# schemathesis (PyPI, pinned) against a real `runtimed serve`, bounded in
# time. It fails on any 5xx, on an answer the document does not describe
# (status, content type, body schema, headers), and on a panic in the
# daemon's log.
#
# Needs the binaries built (`cargo build --workspace --bins`) and root
# (the daemon makes real sandboxes). Knobs: SCHEMATHESIS_EXAMPLES (cases
# per operation and phase, default 100), SCHEMATHESIS_TIMEOUT (hard bound
# of the run, seconds, default 900), SCHEMATHESIS_VENV.
#
# Not fuzzed, and why:
# - POST /v1/images/build and /v1/images/pull reach the network (Debian
#   mirrors, registries) and take minutes; what they refuse before that is
#   tested in tests/tests/daemon_images.rs.
# - The WebSocket routes (/pty, /ptys/{pty_id}) are fuzzed up to the
#   upgrade (parameters, session and terminal lookup: schemathesis speaks
#   no WebSocket, so a valid request answers 400 websocket_required); the
#   terminal itself is tested in tests/tests/daemon.rs.
# - The operator-only routes (image import and delete, /metrics) answer
#   403 to the tenant token used here: schemathesis cannot speak over the
#   Unix socket, and the default TCP listener has no operator.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

ST_VERSION=4.32.5
VENV=${SCHEMATHESIS_VENV:-$PWD/target/schemathesis-venv}
EXAMPLES=${SCHEMATHESIS_EXAMPLES:-100}
TIMEOUT=${SCHEMATHESIS_TIMEOUT:-900}
TOKEN=schemathesis-fuzz-token-$RANDOM$RANDOM

# ---- schemathesis in a venv (pinned, reused between runs) ----------------
if ! "$VENV/bin/st" --version 2>/dev/null | grep -qF "$ST_VERSION"; then
    rm -rf "$VENV"
    if ! python3 -m venv "$VENV" 2>/dev/null; then
        # Debian's python3 keeps venv (ensurepip) in its own package.
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
        rm -rf "$VENV"
        /usr/bin/python3 -m venv "$VENV"
    fi
    "$VENV/bin/pip" install -q --disable-pip-version-check "schemathesis==$ST_VERSION"
fi

# ---- the daemon ---------------------------------------------------------
RUNTIMED=${RUNTIMED_BIN:-}
for b in target/x86_64-unknown-linux-gnu/debug/runtimed target/debug/runtimed; do
    [[ -z $RUNTIMED && -x $b ]] && RUNTIMED=$b
done
[[ -n $RUNTIMED ]] || { echo "schemathesis.sh: no runtimed binary (cargo build --workspace --bins)" >&2; exit 1; }

WORK=$(mktemp -d /tmp/runtimed-schemathesis.XXXXXX)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
BASE=http://127.0.0.1:$PORT
# Kept after the run: every request's status (debug) and any failure.
mkdir -p target/schemathesis
LOG=$PWD/target/schemathesis/daemon.log
DAEMON=
cleanup() {
    if [[ -n $DAEMON ]] && kill -0 "$DAEMON" 2>/dev/null; then
        kill -TERM "$DAEMON"
        for _ in $(seq 100); do kill -0 "$DAEMON" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$DAEMON" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# Light sandboxes, short timeouts: the run stays fast on 2 cores.
cat >"$WORK/config.toml" <<EOF
max_sessions = 12
max_sessions_per_tenant = 6
default_memory = 67108864
max_memory = 268435456
default_pids = 64
max_pids = 512
default_disk = 16777216
max_disk = 67108864
default_ttl_seconds = 300
max_ttl_seconds = 600
exec_timeout_ms = 2000
exec_output_limit = 65536
max_body_bytes = 1048576
max_image_bytes = 1048576
judge_slots = 1
judge_queue_max = 8

[[tokens]]
token = "$TOKEN"
tenant = "fuzz"
EOF
RUNTIMED_LOG=${RUNTIMED_LOG:-info,api::routes=debug,api::error=debug} "$RUNTIMED" serve --config "$WORK/config.toml" --data-dir "$WORK/data" \
    --socket "$WORK/runtimed.sock" --listen "127.0.0.1:$PORT" >"$LOG" 2>&1 &
DAEMON=$!
for _ in $(seq 300); do
    curl -sf "$BASE/healthz" >/dev/null && break
    kill -0 "$DAEMON" 2>/dev/null || { cat "$LOG" >&2; exit 1; }
    sleep 0.2
done
curl -sf "$BASE/healthz" >/dev/null || { echo "schemathesis.sh: the daemon did not come up" >&2; tail -30 "$LOG" >&2; exit 1; }
api() { curl -sS --max-time 120 -H "Authorization: Bearer $TOKEN" "$@"; }

# ---- data for the sub-resources -----------------------------------------
# A session whose id the session's sub-resources (exec, files, archive,
# terminals) are fuzzed with, a terminal in it (opened over a WebSocket
# that curl drops: the terminal outlives it), and a judge submission.
# The judge's toolchain probe runs first, so /v1/judge/languages answers
# at once during the run.
api "$BASE/v1/judge/languages" >/dev/null
id_of() { python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'; }
SESSION=$(api -X POST "$BASE/v1/sessions" -H 'Content-Type: application/json' \
    -d '{"labels": {"fuzz": "seed"}}' | id_of) || {
    echo "schemathesis.sh: the seed session could not be created" >&2
    tail -30 "$LOG" >&2
    exit 1
}
# (curl gives up after 3 s on the open WebSocket: the terminal stays)
curl -s -o /dev/null --max-time 3 -H "Authorization: Bearer $TOKEN" \
    "$BASE/v1/sessions/$SESSION/pty?pty_id=seed" \
    -H 'Connection: Upgrade' -H 'Upgrade: websocket' -H 'Sec-WebSocket-Version: 13' \
    -H 'Sec-WebSocket-Key: c2NoZW1hdGhlc2lzLWZ1eno=' || true
# Without a judge (no python3), the submission routes get unknown ids.
SUBMISSION=$(api -X POST "$BASE/v1/judge/submissions" -H 'Content-Type: application/json' \
    -d '{"language":"python","source":"print(input())","tests":[{"stdin":"1","expected_output":"1"}]}' \
    | id_of) || SUBMISSION=sub-000000000000

# The seeded ids replace `id` and `pty_id` of the sub-resources' paths
# (GET /v1/sessions/{id} keeps generated ids for its 404, and reaches
# real sessions through the stateful phase's links).
# The deletes of a session and of a terminal get ids that do not exist:
# schemathesis reuses ids it saw in answers (GET /v1/sessions lists the
# seeded one), and a deleted seed would leave only 404s for the rest.
cat >"$WORK/schemathesis.toml" <<EOF
# Nothing kept between runs (a run starts from its seed, not from the
# crashes of the last one).
[cache]
enabled = false

# (include-path and include-method in one entry select either: single
# operations are named "METHOD /path")
[[operations]]
include-path-regex = "^/v1/sessions/\\\\{id\\\\}/"
parameters = { "path.id" = "$SESSION", "path.pty_id" = "seed" }

[[operations]]
include-name = "DELETE /v1/sessions/{id}"
parameters = { "path.id" = "s-000000000000" }

[[operations]]
include-name = "DELETE /v1/sessions/{id}/ptys/{pty_id}"
parameters = { "path.id" = "$SESSION", "path.pty_id" = "gone" }

[[operations]]
include-path-regex = "^/v1/judge/submissions/\\\\{id\\\\}"
parameters = { "path.id" = "$SUBMISSION" }
EOF

# ---- the run --------------------------------------------------------------
status=0
SCHEMATHESIS_HOOKS=schemathesis_hooks PYTHONPATH=$PWD/.ci \
    timeout "$TIMEOUT" "$VENV/bin/st" --config-file "$WORK/schemathesis.toml" run "$BASE/v1/openapi.json" \
    -H "Authorization: Bearer $TOKEN" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance \
    --exclude-path /v1/images/build --exclude-path /v1/images/pull \
    --max-examples "$EXAMPLES" --workers 2 --request-timeout 60 \
    --generation-database none --no-color --warnings off || status=$?

# ---- the daemon's side ----------------------------------------------------
if grep -n 'panicked at' "$LOG"; then
    echo "schemathesis.sh: the daemon panicked (above; its log: $LOG)" >&2
    status=1
fi
if ! curl -sf "$BASE/healthz" >/dev/null; then
    echo "schemathesis.sh: the daemon is gone after the run" >&2
    tail -50 "$LOG" >&2
    status=1
fi
if ((status != 0)); then
    echo "schemathesis.sh: FAILED (status $status); the daemon's last lines:" >&2
    tail -30 "$LOG" >&2
    exit "$status"
fi
echo "schemathesis.sh: no 5xx, no conformance failure, no panic"
