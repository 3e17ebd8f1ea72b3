#!/usr/bin/env bash
# Browser tests: the terminal page (`runtimed serve --console`) in Debian's
# chromium, driven by playwright-core from console/node_modules. Assumes
# `cargo build --workspace --bins` already ran; run as root. Prints
# `browser: N passed, N failed` last and exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

for tool in node npm; do
    command -v "$tool" >/dev/null || { echo "browser: $tool is not installed" >&2; exit 1; }
done
if [[ ! -x /usr/bin/chromium ]]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

echo "== npm ci (console/)"
(cd console && npm ci --no-audit --no-fund --loglevel=error)

echo "== browser tests"
tap=$(mktemp)
trap 'rm -f "$tap"' EXIT
status=0
# Readable output on the console, TAP in a file for the counts.
node --test \
    --test-reporter=spec --test-reporter-destination=stdout \
    --test-reporter=tap --test-reporter-destination="$tap" \
    tests/browser/ || status=$?

# node:test's TAP summary: `# pass N`, `# fail N`, ...; 0 when absent.
count() {
    local n
    n=$(sed -n "s/^# $1 \([0-9][0-9]*\)$/\1/p" "$tap" | tail -n 1)
    echo "${n:-0}"
}
passed=$(count pass)
# A failed hook cancels the tests it guards: those count as failed.
failed=$(($(count fail) + $(count cancelled)))
skipped=$(count skipped)
echo "browser: $passed passed, $failed failed, $skipped skipped"
if ! grep -q '^# tests ' "$tap"; then
    echo "browser: node --test wrote no report" >&2
    status=1
elif [[ $failed -gt 0 && $status -eq 0 ]]; then
    status=1
fi
exit "$status"
