#!/usr/bin/env bash
# No silent skips (issue 13, point 7): a test that did not run must never be
# reported "ok". Tests that need something from the host are #[ignore]d with
# a reason and fail when run without it; this lint fails CI when the old
# pattern (print a reason, return early, pass) creeps back into any crate.
# It reads source only; `.ci/run` calls it before the tests.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

python3 - "$@" <<'PY'
import pathlib, re, sys

roots = ["api", "judges", "rootfs-builder", "runtimed", "sandbox", "tests"]
files = sorted(p for r in roots for p in pathlib.Path(r).rglob("*.rs") if "target" not in p.parts)
bad = []

def flag(path, n, line, why):
    bad.append(f"{path}:{n}: {why}\n    {line.strip()}")

# An ignore reason says why the test cannot run everywhere, in one of three
# kinds the README documents.
REASON = re.compile(r'#\[ignore = "(privileged: |needs |cgroup v2 VM: |pending: )[^"]+"\]')
# Skip helpers and their flags: `skip(...)`, `root_or_skip()`, `env_or_skip!`,
# `must_work()` (SANDBOX_MUST_WORK made a skip fail only in CI).
HELPER = re.compile(r'(^|[^.\w])(skip|\w+_or_skip!?|must_work)\s*\(|SANDBOX_MUST_WORK')
# A printed skip: "skipped", "skipping", "SKIPPED", "not run".
PRINTED = re.compile(r'\b(e?print(ln)?!|panic!)\(.*(\b[Ss]kip(ped|ping)?\b|SKIPPED|\bnot run\b)')
# A gate whose failure path returns: `let Some(d) = Daemon::start() else { return };`
GATE_RETURN = re.compile(r'(Daemon::start\w*|harness!|daemon!|manager\w*\(\)|judge_env\(\)).*\belse\b')
ROOT_CHECK = re.compile(r'is_root\(\)|geteuid\(\)|Uid::effective\(\)')
FN = re.compile(r'^\s*(pub )?(async )?fn (\w+)')

for path in files:
    lines = path.read_text(errors="replace").split("\n")
    # Test code: test targets, tests.rs modules, and what follows #[cfg(test)].
    test_from = 0 if "tests" in path.parts or path.name == "tests.rs" else next(
        (k for k, l in enumerate(lines) if l.strip() == "#[cfg(test)]"), len(lines))
    for i, line in enumerate(lines):
        n = i + 1
        code = line.split("//")[0]
        if "#[ignore" in code and not REASON.search(code):
            flag(path, n, line, 'an #[ignore] needs a reason: "privileged: ...", "needs ...", "cgroup v2 VM: ..." or "pending: ..."')
        if HELPER.search(code):
            flag(path, n, line, "skip helper: a test that cannot run fails (runtimed_tests::missing) and is #[ignore]d")
        if PRINTED.search(code):
            # panic!("... did not run: ...") is the failing form and fine.
            if not re.search(r'panic!|did not run', code):
                flag(path, n, line, "a printed skip: fail instead (the test then must be #[ignore]d)")
        if GATE_RETURN.search(code):
            flag(path, n, line, "a gate that can return: it must fail the test instead")
        if i >= test_from and ROOT_CHECK.search(code) and re.search(r'^\s*if\b', code):
            body = "\n".join(l.split("//")[0] for l in lines[i + 1:i + 5])
            if re.search(r'^\s*return\b', body, re.M):
                flag(path, n, line, "returns early when not root: use require_root() and #[ignore]")
        m = FN.match(line)
        if m:
            attrs = []
            j = i - 1
            while j >= 0 and lines[j].strip().startswith("#["):
                attrs.append(lines[j].strip())
                j -= 1
            is_test = any(re.match(r"#\[(tokio::)?test\b", a) for a in attrs)
            vm_reason = any(a.startswith('#[ignore = "cgroup v2 VM: ') for a in attrs)
            vm_name = m.group(3).startswith("vm_only_")
            pending_reason = any(a.startswith('#[ignore = "pending: ') for a in attrs)
            if is_test and pending_reason != m.group(3).startswith("pending_"):
                flag(path, n, line, 'a test is named pending_* exactly when it is #[ignore = "pending: ..."] '
                     '(an open issue\'s point that does not pass yet: the README command skips pending_)')
            if is_test and vm_reason != vm_name:
                flag(path, n, line, 'a test is named vm_only_* exactly when it is #[ignore = "cgroup v2 VM: ..."] '
                     '(the README command skips vm_only_, .ci/cgroup-v2.sh runs them)')

# CI runs the README's test command as written.
readme = pathlib.Path("README.md").read_text()
block = re.search(r"```sh\n(.*?)```", readme, re.S).group(1).strip().split("\n")
if len(block) != 2 or block[1] not in pathlib.Path(".ci/run").read_text().split("\n"):
    bad.append("README.md: its second command (the tests) must appear as a line of .ci/run")

if bad:
    print("visible-skips: tests must not return early and pass:", file=sys.stderr)
    print("\n".join(bad), file=sys.stderr)
    sys.exit(1)
print(f"visible-skips: ok ({len(files)} files)")
PY
