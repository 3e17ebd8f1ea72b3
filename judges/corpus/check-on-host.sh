#!/usr/bin/env bash
# check-on-host.sh: a sanity check of the judge corpus's DATA, on the host,
# without any sandbox. It does not test the judge; the judge's own tests run
# the corpus through the API.
#
#   judges/corpus/check-on-host.sh [PROBLEM...]     (default: every problem)
#
# What it checks:
#  1. Every <problem>/problem.toml parses (python3 >= 3.11, tomllib) and
#     follows the format of README.md strictly: known keys only, the right
#     types, valid verdicts, languages and checker kinds, and every file it
#     names (tests, solutions, custom checker) exists; every file under
#     solutions/ and tests/ is used; a solution's name prefix (ac_, wa_,
#     ce_, re_, tle_, mle_, ole_) agrees with its label; Java solutions that
#     should compile declare `public class Main`; the corpus as a whole has
#     every verdict and an ACCEPTED A+B in every language.
#  2. Every solution is compiled the way the judge compiles it (gcc -O2 -static
#     -std=c17 -lm, g++ -O2 -static -std=c++17, javac Main.java, rustc -O, go build;
#     python3 -m py_compile, node --check, bash -n for the others):
#     COMPILATION_ERROR ones must fail, all others must succeed.
#  3. Only the ACCEPTED and WRONG_ANSWER solutions (the whitespace and float
#     ones included) are RUN, against every test, with the problem's limits
#     (or the solution's override) as a timeout, the stack limit set to the
#     memory limit as the judge does, and are judged with the checker
#     (exact bytes; tokens; float within the tolerance, absolute or relative,
#     and the verdict must not depend on which; the custom checker, compiled
#     with g++, exit 0 accepted / 1 wrong). The observed verdict must be the
#     label: ACCEPTED on every test, or WRONG_ANSWER on at least one test and
#     ACCEPTED on the others (a crash or timeout is a mismatch). The expected
#     outputs must satisfy the custom checker themselves. The deep-recursion
#     ACCEPTED solutions must also FAIL under an 8 MiB stack (so that the
#     test really needs the judge's stack limit).
#
# What it never does: run a solution labelled anything else (runtime
# errors, time, memory and output limits) or named sneaky_* (fork bombs,
# file snoopers, network probes): those only make sense in the sandbox. It
# compiles them, nothing more.
#
# A toolchain missing on the host (gcc, g++, python3, javac/java, node,
# rustc, go, bash) skips that language's solutions, reported by name; it is
# not a failure. /usr/bin/<tool> is preferred, as the judge uses those
# (Debian's rustc and go); otherwise the one on PATH.
#
# Exit status 0: all good. 1: a mismatch or a malformed problem (each
# printed with "FAIL"). 2: bad usage or no python3 >= 3.11.
# KEEP_TMP=1 keeps the build directory; JOBS=N sets the parallelism
# (default: the number of CPUs); WITHOUT="rustc go" treats those tools as
# missing.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)

py=""
for cand in "${PYTHON:-}" /usr/bin/python3 python3; do
    [ -n "$cand" ] || continue
    if command -v "$cand" >/dev/null 2>&1 &&
        "$cand" -c 'import sys, tomllib; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        py=$cand
        break
    fi
done
if [ -z "$py" ]; then
    echo "check-on-host.sh: needs python3 >= 3.11 (tomllib)" >&2
    exit 2
fi

exec "$py" - "$here" "$@" <<'PY'
import concurrent.futures
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tomllib

CORPUS = sys.argv[1]
ONLY = sys.argv[2:]

VERDICTS = ["ACCEPTED", "WRONG_ANSWER", "TIME_LIMIT_EXCEEDED", "MEMORY_LIMIT_EXCEEDED",
            "RUNTIME_ERROR", "COMPILATION_ERROR", "OUTPUT_LIMIT_EXCEEDED"]
PREFIXES = {"ac_": "ACCEPTED", "wa_": "WRONG_ANSWER", "ce_": "COMPILATION_ERROR",
            "re_": "RUNTIME_ERROR", "tle_": "TIME_LIMIT_EXCEEDED",
            "mle_": "MEMORY_LIMIT_EXCEEDED", "ole_": "OUTPUT_LIMIT_EXCEEDED"}
HOSTILE_PREFIX = "sneaky_"
LIMIT_KEYS = ("cpu_time_ms", "wall_time_ms", "memory_mb", "output_mb")
# The deep-recursion solutions that must fail under the usual 8 MiB stack.
NEEDS_DEEP_STACK = {("stack", "solutions/ac_recursive.cpp"), ("stack", "solutions/ac_recursive.c")}


def tool(name):
    path = f"/usr/bin/{name}"
    if os.access(path, os.X_OK):
        return path
    return shutil.which(name)


TOOLS = {n: tool(n) for n in ("gcc", "g++", "python3", "javac", "java", "node", "rustc", "go", "bash")}
for n in os.environ.get("WITHOUT", "").split():  # pretend these are missing
    TOOLS[n] = None

# language -> (source file name, tools needed, compile argv or None, run argv,
#              syntax-check argv for languages without a compile step)
LANGS = {
    "c": ("main.c", ["gcc"], ["gcc", "-O2", "-std=c17", "-static", "-o", "main", "main.c", "-lm"], ["./main"], None),
    "cpp": ("main.cpp", ["g++"], ["g++", "-O2", "-std=c++17", "-static", "-o", "main", "main.cpp"], ["./main"], None),
    "python": ("main.py", ["python3"], None, ["python3", "main.py"], ["python3", "-m", "py_compile", "main.py"]),
    "java": ("Main.java", ["javac", "java"], ["javac", "Main.java"], ["java", "-cp", ".", "Main"], None),
    "javascript": ("main.js", ["node"], None, ["node", "main.js"], ["node", "--check", "main.js"]),
    "rust": ("main.rs", ["rustc"], ["rustc", "-O", "-o", "main", "main.rs"], ["./main"], None),
    "go": ("main.go", ["go"], ["go", "build", "-o", "main", "main.go"], ["./main"], None),
    "bash": ("main.sh", ["bash"], None, ["bash", "main.sh"], ["bash", "-n", "main.sh"]),
}
COMPILED = {l for l, spec in LANGS.items() if spec[2]}

failures = []
skipped_langs = {}
lock = threading.Lock()


def fail(where, msg):
    with lock:
        failures.append(f"{where}: {msg}")


def resolve(argv):
    head = TOOLS.get(argv[0])
    return [head] + argv[1:] if head else argv


def missing_tools(lang):
    return [t for t in LANGS[lang][1] if not TOOLS[t]]


TMP = tempfile.mkdtemp(prefix="corpus-check.")
GOENV = {"GOCACHE": os.path.join(TMP, "go-cache"), "GOPATH": os.path.join(TMP, "go-path"),
         "GO111MODULE": "auto", "GOFLAGS": "", "GOTOOLCHAIN": "local"}


def env():
    e = dict(os.environ)
    e.update(GOENV)
    e.setdefault("HOME", TMP)
    e["LC_ALL"] = "C.UTF-8"
    return e


# ------------------------------------------------------------------ format

class Bad(Exception):
    pass


def expect(cond, msg):
    if not cond:
        raise Bad(msg)


def check_keys(table, allowed, required, what):
    expect(isinstance(table, dict), f"{what} must be a table")
    unknown = set(table) - set(allowed)
    expect(not unknown, f"{what}: unknown keys {sorted(unknown)}")
    missing = [k for k in required if k not in table]
    expect(not missing, f"{what}: missing {missing}")


def check_limits(limits, what, required):
    check_keys(limits, LIMIT_KEYS, LIMIT_KEYS if required else (), what)
    for k, v in limits.items():
        expect(isinstance(v, int) and not isinstance(v, bool) and v > 0, f"{what}.{k} must be a positive integer")


def check_checker(checker, pdir, what):
    expect(isinstance(checker, dict) and "kind" in checker, f"{what} must be a table with a kind")
    kind = checker["kind"]
    if kind in ("exact", "tokens"):
        check_keys(checker, ["kind"], ["kind"], what)
    elif kind == "float":
        check_keys(checker, ["kind", "tolerance"], ["kind"], what)
        tol = checker.get("tolerance", 1e-6)
        expect(isinstance(tol, float) and 0 <= tol <= 1, f"{what}.tolerance must be a float in [0, 1]")
    elif kind == "custom":
        check_keys(checker, ["kind", "language", "source"], ["kind", "language", "source"], what)
        expect(checker["language"] in LANGS, f"{what}.language: unknown {checker['language']!r}")
        expect(os.path.isfile(os.path.join(pdir, checker["source"])), f"{what}.source: no file {checker['source']}")
    else:
        raise Bad(f"{what}.kind: unknown {kind!r}")


def file_field(pdir, rel, what):
    expect(isinstance(rel, str) and rel and not os.path.isabs(rel) and ".." not in rel.split("/"),
           f"{what} must be a relative path inside the problem directory")
    expect(os.path.isfile(os.path.join(pdir, rel)), f"{what}: no file {rel}")
    return rel


def load_problem(name):
    pdir = os.path.join(CORPUS, name)
    with open(os.path.join(pdir, "problem.toml"), "rb") as f:
        p = tomllib.load(f)
    check_keys(p, ["title", "statement", "checker", "limits", "test", "solution"],
               ["title", "statement", "checker", "limits", "test", "solution"], "problem")
    expect(isinstance(p["title"], str) and p["title"], "title must be a string")
    expect(isinstance(p["statement"], str) and p["statement"], "statement must be a string")
    check_checker(p["checker"], pdir, "checker")
    check_limits(p["limits"], "limits", True)
    used = set()
    expect(isinstance(p["test"], list) and p["test"], "at least one [[test]]")
    tests = []
    for i, t in enumerate(p["test"], 1):
        w = f"test {i}"
        check_keys(t, ["stdin", "stdin_file", "expected_output", "expected_file"], [], w)
        expect(("stdin" in t) != ("stdin_file" in t), f"{w}: exactly one of stdin, stdin_file")
        expect(("expected_output" in t) != ("expected_file" in t),
               f"{w}: exactly one of expected_output, expected_file")
        if "stdin" in t:
            expect(isinstance(t["stdin"], str), f"{w}.stdin must be a string")
            stdin = t["stdin"].encode()
        else:
            rel = file_field(pdir, t["stdin_file"], f"{w}.stdin_file")
            used.add(rel)
            stdin = open(os.path.join(pdir, rel), "rb").read()
        if "expected_output" in t:
            expect(isinstance(t["expected_output"], str), f"{w}.expected_output must be a string")
            expected = t["expected_output"].encode()
        else:
            rel = file_field(pdir, t["expected_file"], f"{w}.expected_file")
            used.add(rel)
            expected = open(os.path.join(pdir, rel), "rb").read()
        tests.append((stdin, expected))
    expect(isinstance(p["solution"], list) and p["solution"], "at least one [[solution]]")
    sols = []
    for i, s in enumerate(p["solution"], 1):
        w = f"solution {i} ({s.get('file', '?')})"
        check_keys(s, ["file", "language", "verdict", "verdict_any", "time_limit", "limits", "checker", "note"],
                   ["file", "language", "note"], w)
        file_field(pdir, s["file"], f"{w}.file")
        used.add(s["file"])
        expect(s["language"] in LANGS, f"{w}.language: unknown {s['language']!r}")
        expect(("verdict" in s) != ("verdict_any" in s), f"{w}: exactly one of verdict, verdict_any")
        if "verdict" in s:
            expect(s["verdict"] in VERDICTS, f"{w}.verdict: unknown {s['verdict']!r}")
            labels = [s["verdict"]]
        else:
            va = s["verdict_any"]
            expect(isinstance(va, list) and len(va) >= 2 and len(set(va)) == len(va)
                   and all(v in VERDICTS for v in va), f"{w}.verdict_any: a list of two or more verdicts")
            expect("ACCEPTED" not in va and "WRONG_ANSWER" not in va,
                   f"{w}.verdict_any: not for ACCEPTED/WRONG_ANSWER, they must be certain")
            labels = va
        if "time_limit" in s:
            expect("TIME_LIMIT_EXCEEDED" in labels, f"{w}.time_limit only with TIME_LIMIT_EXCEEDED")
            expect(s["time_limit"] in ("cpu", "wall"), f"{w}.time_limit: cpu or wall")
        if "limits" in s:
            check_limits(s["limits"], f"{w}.limits", False)
        if "checker" in s:
            check_checker(s["checker"], pdir, f"{w}.checker")
        expect(isinstance(s["note"], str) and s["note"].strip(), f"{w}.note must say why")
        base = os.path.basename(s["file"])
        for prefix, v in PREFIXES.items():
            if base.startswith(prefix):
                expect(v in labels, f"{w}: the name says {v}, the label {labels}")
        if "COMPILATION_ERROR" in labels:
            expect(s["language"] in COMPILED, f"{w}: COMPILATION_ERROR in a language without a compile step")
        if s["language"] == "java" and "COMPILATION_ERROR" not in labels:
            src = open(os.path.join(pdir, s["file"]), encoding="utf-8").read()
            expect(re.search(r"public\s+(final\s+)?class\s+Main\b", src), f"{w}: no public class Main")
        sols.append(dict(s, labels=labels))
    if p["checker"]["kind"] == "custom":
        used.add(p["checker"]["source"])
    for sub in ("solutions", "tests"):
        d = os.path.join(pdir, sub)
        if os.path.isdir(d):
            for f in sorted(os.listdir(d)):
                expect(f"{sub}/{f}" in used, f"{sub}/{f} is not used by problem.toml")
    return dict(p, dir=pdir, name=name, tests=tests, sols=sols)


# ------------------------------------------------------------------- build

builds = {}
build_lock = threading.Lock()


def build(pdir, rel, lang):
    """Returns (ok, output, dir) for the source compiled once per file."""
    key = (os.path.join(pdir, rel), lang)
    with build_lock:
        ev = builds.get(key)
        if ev is None:
            builds[key] = ev = [threading.Event(), None]
            owner = True
        else:
            owner = False
    if not owner:
        ev[0].wait()
        return ev[1]
    d = tempfile.mkdtemp(dir=TMP)
    src, _, comp, _, syntax = LANGS[lang]
    shutil.copy(os.path.join(pdir, rel), os.path.join(d, src))
    argv = comp or syntax
    try:
        r = subprocess.run(resolve(argv), cwd=d, env=env(), stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
        res = (r.returncode == 0, r.stdout.decode(errors="replace"), d)
    except subprocess.TimeoutExpired:
        res = (False, "compiler timed out (300 s)", d)
    ev[1] = res
    ev[0].set()
    return res


# --------------------------------------------------------------------- run

def run(d, lang, stdin, limits, stack_bytes, extra_args=()):
    """Runs the built program; returns a dict with the outcome."""
    argv = resolve(LANGS[lang][3]) + list(extra_args)
    inp = tempfile.NamedTemporaryFile(dir=TMP, delete=False)
    inp.write(stdin)
    inp.close()
    out_path, err_path = inp.name + ".out", inp.name + ".err"
    cpu_s = limits["cpu_time_ms"] / 1000
    wall_s = limits["wall_time_ms"] / 1000

    # Limits through the shell's ulimit, not preexec_fn (not safe with threads):
    # the stack limit as the judge sets it, a CPU-time backstop, no core dumps.
    secs = int(cpu_s) + 2
    wrapper = ["/bin/sh", "-c",
               f'ulimit -s {stack_bytes >> 10} && ulimit -t {secs} && ulimit -c 0 && exec "$@"', "sh"]

    with open(inp.name, "rb") as fin, open(out_path, "wb") as fout, open(err_path, "wb") as ferr:
        start = time.monotonic()
        p = subprocess.Popen(wrapper + argv, cwd=d, env=env(), stdin=fin, stdout=fout, stderr=ferr,
                             start_new_session=True)
        killed = []

        def kill():
            killed.append(True)
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

        timer = threading.Timer(wall_s + 1, kill)
        timer.start()
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.monotonic() - start
        timer.cancel()
        p.returncode = os.waitstatus_to_exitcode(status)
        try:  # whatever it left behind
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    cpu = ru.ru_utime + ru.ru_stime
    out = open(out_path, "rb").read()
    err = open(err_path, "rb").read()
    res = dict(out=out, err=err, cpu_ms=int(cpu * 1000), wall_ms=int(wall * 1000), code=p.returncode,
               input=inp.name, output=out_path)
    if killed or wall > wall_s:
        res["verdict"] = "TIME_LIMIT_EXCEEDED (wall)"
    elif cpu > cpu_s:
        res["verdict"] = "TIME_LIMIT_EXCEEDED (cpu)"
    elif len(out) > limits["output_mb"] << 20:
        res["verdict"] = "OUTPUT_LIMIT_EXCEEDED"
    elif p.returncode != 0:
        how = f"signal {-p.returncode}" if p.returncode < 0 else f"exit code {p.returncode}"
        res["verdict"] = f"RUNTIME_ERROR ({how})"
    return res


# ---------------------------------------------------------------- checkers

NUMBER = re.compile(rb"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def float_tokens_equal(e, a, tol, relative):
    if NUMBER.fullmatch(e) and NUMBER.fullmatch(a):
        x, y = float(e), float(a)
        diff = abs(x - y)
        return diff <= tol or (relative and diff <= tol * abs(x))
    return e == a


def compare(checker, expected, actual, where):
    """ACCEPTED or WRONG_ANSWER (a checker failure is reported and counts as a mismatch)."""
    kind = checker["kind"]
    if kind == "exact":
        return "ACCEPTED" if expected == actual else "WRONG_ANSWER"
    if kind == "tokens":
        return "ACCEPTED" if expected.split() == actual.split() else "WRONG_ANSWER"
    if kind == "float":
        tol = checker.get("tolerance", 1e-6)
        e, a = expected.split(), actual.split()
        verdicts = set()
        for relative in (True, False):
            ok = len(e) == len(a) and all(float_tokens_equal(x, y, tol, relative) for x, y in zip(e, a))
            verdicts.add("ACCEPTED" if ok else "WRONG_ANSWER")
        if len(verdicts) > 1:
            fail(where, "the float verdict depends on absolute vs relative tolerance: pick other values")
        return "ACCEPTED" if "ACCEPTED" in verdicts and len(verdicts) == 1 else "WRONG_ANSWER"
    raise AssertionError(kind)


def custom_checker(problem):
    c = problem["checker"]
    missing = missing_tools(c["language"])
    if missing:
        with lock:
            skipped_langs.setdefault(f"the custom checker of {problem['name']}", missing)
        return None, f"no {', '.join(missing)} for the custom checker"
    ok, output, d = build(problem["dir"], c["source"], c["language"])
    if not ok:
        return None, f"the custom checker does not compile:\n{output}"

    def check(stdin, expected, actual, where):
        paths = []
        for name, data in (("input", stdin), ("expected", expected), ("actual", actual)):
            f = tempfile.NamedTemporaryFile(dir=TMP, delete=False, suffix="." + name)
            f.write(data)
            f.close()
            paths.append(f.name)
        argv = resolve(LANGS[c["language"]][3]) + paths
        r = subprocess.run(argv, cwd=d, env=env(), stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
        if r.returncode == 0:
            return "ACCEPTED"
        if r.returncode == 1:
            return "WRONG_ANSWER"
        fail(where, f"the custom checker failed (exit {r.returncode}): {r.stderr.decode(errors='replace').strip()}")
        return "CHECKER_FAILED"

    return check, None


# ------------------------------------------------------------------- judge

def judge_solution(problem, s):
    """Returns a one-line result; records failures."""
    where = f"{problem['name']}/{s['file']}"
    if "checker" in s:
        where += f" [checker {s['checker']['kind']}]"
    lang = s["language"]
    missing = missing_tools(lang)
    if missing:
        with lock:
            skipped_langs.setdefault(lang, missing)
        return where, f"SKIPPED (no {', '.join(missing)})"
    ok, output, d = build(problem["dir"], s["file"], lang)
    labels = s["labels"]
    if "COMPILATION_ERROR" in labels:
        if ok:
            fail(where, "labelled COMPILATION_ERROR but it compiles")
            return where, "FAIL: compiles"
        lines = [l.strip() for l in output.splitlines() if l.strip()] or ["no output"]
        first = next((l for l in lines if "error" in l.lower() or "not used" in l), lines[-1])
        return where, f"ok: does not compile ({first[:90]})"
    if not ok:
        fail(where, f"does not compile (labelled {labels}):\n{output}")
        return where, "FAIL: does not compile"
    base = os.path.basename(s["file"])
    if base.startswith(HOSTILE_PREFIX):
        return where, f"compiled; not run (hostile: labelled {'/'.join(labels)}, for the sandbox only)"
    if labels not in (["ACCEPTED"], ["WRONG_ANSWER"]):
        return where, f"compiled; not run (labelled {'/'.join(labels)}, for the sandbox only)"
    limits = dict(problem["limits"], **s.get("limits", {}))
    checker = s.get("checker", problem["checker"])
    if checker["kind"] == "custom":
        custom_fn, why = custom_checker(problem)
        if custom_fn is None:
            if why.startswith("no "):
                return where, f"SKIPPED ({why})"
            fail(where, why)
            return where, "FAIL: checker"
    verdicts = []
    cpu_max = 0
    stack = limits["memory_mb"] << 20
    for i, (stdin, expected) in enumerate(problem["tests"], 1):
        r = run(d, lang, stdin, limits, stack)
        cpu_max = max(cpu_max, r["cpu_ms"])
        if "verdict" in r:
            v = r["verdict"]
            tail = r["err"][-300:].decode(errors="replace").strip()
            if tail:
                v += f" [stderr: {tail}]"
        elif checker["kind"] == "custom":
            v = custom_fn(stdin, expected, r["out"], f"{where} test {i}")
        else:
            v = compare(checker, expected, r["out"], f"{where} test {i}")
        verdicts.append(v)
    expected_label = labels[0]
    summary = " ".join("AC" if v == "ACCEPTED" else "WA" if v == "WRONG_ANSWER" else "??" for v in verdicts)
    bad = [f"test {i}: {v}" for i, v in enumerate(verdicts, 1) if v not in ("ACCEPTED", "WRONG_ANSWER")]
    if bad:
        fail(where, f"labelled {expected_label}, but " + "; ".join(bad))
        return where, f"FAIL: {summary}"
    observed = "WRONG_ANSWER" if "WRONG_ANSWER" in verdicts else "ACCEPTED"
    if observed != expected_label:
        fail(where, f"labelled {expected_label}, observed {observed} (tests: {summary})")
        return where, f"FAIL: {summary}"
    note = ""
    if cpu_max > limits["cpu_time_ms"] // 2:
        note = f" (slow: {cpu_max} ms of CPU, the limit is {limits['cpu_time_ms']} ms)"
    if (problem["name"], s["file"]) in NEEDS_DEEP_STACK:
        deepest = max(problem["tests"], key=lambda t: int(t[0].split()[0]))
        r = run(d, lang, deepest[0], limits, 8 << 20)
        if "verdict" not in r:
            fail(where, "meant to need a deep stack, but it passes with an 8 MiB stack")
            return where, "FAIL: does not need a deep stack"
        note += f"; under an 8 MiB stack: {r['verdict']}, as intended"
    return where, f"ok: {observed} ({summary}; max {cpu_max} ms CPU){note}"


def main():
    names = sorted(n for n in os.listdir(CORPUS)
                   if os.path.isfile(os.path.join(CORPUS, n, "problem.toml")))
    if ONLY:
        unknown = set(ONLY) - set(names)
        if unknown:
            print(f"check-on-host.sh: no such problem: {' '.join(sorted(unknown))}", file=sys.stderr)
            sys.exit(2)
        names = [n for n in names if n in ONLY]
    print("toolchains:")
    for t, path in TOOLS.items():
        print(f"  {t:8} {path or 'MISSING'}")
    problems = []
    for n in names:
        try:
            problems.append(load_problem(n))
        except (Bad, tomllib.TOMLDecodeError, OSError, UnicodeDecodeError) as e:
            fail(f"{n}/problem.toml", str(e))
    # The corpus as a whole (only when checking all of it).
    if not ONLY and problems and len(problems) == len(names):
        seen = {v for p in problems for s in p["sols"] for v in s["labels"]}
        for v in VERDICTS:
            if v not in seen:
                fail("corpus", f"no solution labelled {v}")
        ab = next((p for p in problems if p["name"] == "aplusb"), None)
        if ab is None:
            fail("corpus", "no aplusb problem")
        else:
            ac_langs = {s["language"] for s in ab["sols"] if s["labels"] == ["ACCEPTED"]}
            for lang in LANGS:
                if lang not in ac_langs:
                    fail("aplusb", f"no ACCEPTED solution in {lang}")
    # The expected outputs must satisfy a custom checker themselves.
    for p in problems:
        if p["checker"]["kind"] == "custom":
            fn, why = custom_checker(p)
            if fn is None:
                if not why.startswith("no "):
                    fail(f"{p['name']}/{p['checker']['source']}", why)
                continue
            for i, (stdin, expected) in enumerate(p["tests"], 1):
                if fn(stdin, expected, expected, f"{p['name']} test {i} (expected output)") != "ACCEPTED":
                    fail(f"{p['name']} test {i}", "the custom checker rejects the expected output")
    counts = {"ran": 0, "compile error confirmed": 0, "built only": 0, "skipped": 0, "failed": 0}
    jobs = int(os.environ.get("JOBS") or os.cpu_count() or 2)
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        results = [(p, [pool.submit(judge_solution, p, s) for s in p["sols"]]) for p in problems]
        for p, futs in results:
            print(f"\n{p['name']}: {p['title']} ({len(p['tests'])} tests, checker {p['checker']['kind']})")
            for f in futs:
                where, line = f.result()
                label = where[len(p["name"]) + 1:]
                print(f"  {label:58} {line}")
                if line.startswith("SKIPPED"):
                    counts["skipped"] += 1
                elif line.startswith("FAIL"):
                    counts["failed"] += 1
                elif line.startswith("ok: does not compile"):
                    counts["compile error confirmed"] += 1
                elif line.startswith("compiled; not run"):
                    counts["built only"] += 1
                else:
                    counts["ran"] += 1
    total = sum(len(p["sols"]) for p in problems)
    print(f"\n{len(problems)} problems, {total} solutions: "
          + ", ".join(f"{v} {k}" for k, v in counts.items()))
    for lang, tools in sorted(skipped_langs.items()):
        print(f"SKIPPED {lang}: no {', '.join(tools)} on this host")
    if failures:
        print(f"\n{len(failures)} failure(s):")
        for f in failures:
            print(f"FAIL {f}")
        return 1
    print("all good")
    return 0


try:
    code = main()
finally:
    if os.environ.get("KEEP_TMP") == "1":
        print(f"build directory kept: {TMP}")
    else:
        shutil.rmtree(TMP, ignore_errors=True)
sys.exit(code)
PY
