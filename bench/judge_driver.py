#!/usr/bin/env python3
"""bench/judge_driver.py - the client side of bench/judge.sh.

Modes (all print one JSON object on stdout):

  api SOCKET LANG SECONDS CONCURRENCY [--unique]
      Keeps CONCURRENCY submissions of an A+B with 10 tests in flight
      (POST /v1/judge/submissions?wait=true over the Unix socket) for
      SECONDS; --unique makes every source different (a comment), so
      nothing could be reused between submissions.
  bwrap LANG SECONDS CONCURRENCY [--compile-once]
      The same work done by CONCURRENCY loops of bubblewrap: per
      submission, compile (C++) in one bwrap, then run each of the 10
      tests in a fresh bwrap and compare the output; --compile-once
      compiles one program before the loops (what the judge's compile
      cache does for a source it saw before).
  variance SOCKET RUNS
      Judges one CPU-bound accepted C++ solution RUNS times, one at a
      time, and reports the CPU time of its test as measured by the judge.
"""

import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

TESTS = [{"stdin": f"{i} {i * 7}\n", "expected_output": f"{i * 8}\n"} for i in range(10)]

SOURCES = {
    "cpp": "#include <iostream>\nint main(){long a,b;std::cin>>a>>b;std::cout<<a+b<<\"\\n\";}\n",
    "python": "a, b = map(int, input().split())\nprint(a + b)\n",
}

# ~0.3 s of CPU, deterministic, no I/O beyond the answer.
CPU_BOUND = """#include <cstdio>
int main(){long a,b; if(scanf("%ld %ld",&a,&b)!=2) return 1;
 volatile unsigned long x=0; for(unsigned long i=0;i<300000000UL;i++) x+=i^(x>>3);
 printf("%ld\\n",a+b); return 0;}
"""


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=600)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(600)
        self.sock.connect(self.path)


def submit(sock, body):
    c = UnixConnection(sock)
    c.request(
        "POST",
        "/v1/judge/submissions?wait=true",
        body=json.dumps(body),
        headers={"Content-Type": "application/json"},
    )
    r = c.getresponse()
    data = r.read()
    c.close()
    if r.status != 201:
        raise RuntimeError(f"submit: {r.status} {data[:300]!r}")
    return json.loads(data)


def cpu_seconds():
    t = os.times()
    return t.children_user + t.children_system


def run_for(seconds, concurrency, one):
    """Runs one() in CONCURRENCY threads until SECONDS passed; returns
    (count, elapsed, failures)."""
    stop = time.monotonic() + seconds
    counts = [0] * concurrency
    failures = []

    def loop(k):
        n = 0
        while time.monotonic() < stop:
            try:
                one(k, n)
            except Exception as e:  # reported, not hidden
                failures.append(str(e))
                return
            n += 1
            counts[k] += 1

    t0 = time.monotonic()
    threads = [threading.Thread(target=loop, args=(k,)) for k in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts), time.monotonic() - t0, failures


def api_mode(sock, lang, seconds, conc, unique):
    def one(k, n):
        src = SOURCES[lang]
        if unique:
            mark = f"{k}-{n}-{time.monotonic_ns()}"
            src += f"// {mark}\n" if lang == "cpp" else f"# {mark}\n"
        v = submit(sock, {"language": lang, "source": src, "tests": TESTS})
        if v.get("verdict") != "ACCEPTED":
            raise RuntimeError(f"verdict {v.get('verdict')}: {v.get('detail')}")

    n, elapsed, failures = run_for(seconds, conc, one)
    return {"submissions": n, "seconds": elapsed, "failures": failures[:3]}


BWRAP = [
    "bwrap", "--unshare-all", "--die-with-parent",
    "--ro-bind", "/usr", "/usr",
    "--symlink", "usr/bin", "/bin", "--symlink", "usr/lib", "/lib",
    "--symlink", "usr/lib64", "/lib64", "--symlink", "usr/sbin", "/sbin",
    "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
]


# The judge's own C++ compile command (judges/languages.toml).
CPP_COMPILE = ["g++", "-O2", "-std=gnu++17", "-static", "-pipe", "-o", "main", "main.cpp"]


def bwrap_compile(box):
    with open(os.path.join(box, "main.cpp"), "w") as f:
        f.write(SOURCES["cpp"])
    subprocess.run(
        BWRAP + ["--bind", box, "/box", "--chdir", "/box",
                 *CPP_COMPILE],
        check=True, stdin=subprocess.DEVNULL)


def bwrap_mode(lang, seconds, conc, compile_once):
    work = tempfile.mkdtemp(prefix="judge-bench-bwrap-")
    shared = os.path.join(work, "shared")
    if compile_once:
        os.mkdir(shared)
        bwrap_compile(shared)

    def one(k, n):
        if compile_once:
            for t in TESTS:
                out = subprocess.run(
                    BWRAP + ["--ro-bind", shared, "/box", "--chdir", "/box", "/box/main"],
                    input=t["stdin"].encode(), capture_output=True, check=True).stdout
                if out.decode().split() != t["expected_output"].split():
                    raise RuntimeError(f"wrong output {out!r}")
            return
        box = os.path.join(work, f"{k}-{n}")
        os.mkdir(box)
        try:
            if lang == "cpp":
                with open(os.path.join(box, "main.cpp"), "w") as f:
                    f.write(SOURCES[lang])
                subprocess.run(
                    BWRAP + ["--bind", box, "/box", "--chdir", "/box",
                             *CPP_COMPILE],
                    check=True, stdin=subprocess.DEVNULL)
                argv = ["/box/main"]
            else:
                with open(os.path.join(box, "main.py"), "w") as f:
                    f.write(SOURCES[lang])
                argv = ["python3", "/box/main.py"]
            for t in TESTS:
                out = subprocess.run(
                    BWRAP + ["--ro-bind", box, "/box", "--chdir", "/box"] + argv,
                    input=t["stdin"].encode(), capture_output=True, check=True).stdout
                if out.decode().split() != t["expected_output"].split():
                    raise RuntimeError(f"wrong output {out!r}")
        finally:
            shutil.rmtree(box, ignore_errors=True)

    try:
        n, elapsed, failures = run_for(seconds, conc, one)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"submissions": n, "seconds": elapsed, "failures": failures[:3]}


def variance_mode(sock, runs):
    cpu = []
    wall = []
    for _ in range(runs):
        v = submit(sock, {"language": "cpp", "source": CPU_BOUND,
                          "tests": [{"stdin": "2 3\n", "expected_output": "5\n"}],
                          "limits": {"cpu_time_ms": 5000}})
        if v.get("verdict") != "ACCEPTED":
            raise RuntimeError(f"verdict {v.get('verdict')}: {v.get('detail')}")
        cpu.append(v["tests"][0]["cpu_time_ms"])
        wall.append(v["tests"][0]["wall_time_ms"])
    mean = statistics.mean(cpu)
    sd = statistics.pstdev(cpu)
    return {"runs": runs, "cpu_ms": cpu, "mean_ms": mean, "stdev_ms": sd,
            "cv_percent": 100 * sd / mean if mean else 0,
            "spread_percent": 100 * (max(cpu) - min(cpu)) / mean if mean else 0,
            "wall_mean_ms": statistics.mean(wall)}


def main(argv):
    mode = argv[1]
    c0 = cpu_seconds()
    if mode == "api":
        out = api_mode(argv[2], argv[3], float(argv[4]), int(argv[5]), "--unique" in argv)
    elif mode == "bwrap":
        out = bwrap_mode(argv[2], float(argv[3]), int(argv[4]), "--compile-once" in argv)
    elif mode == "variance":
        out = variance_mode(argv[2], int(argv[3]))
    else:
        raise SystemExit(f"unknown mode {mode}")
    out["client_child_cpu_s"] = cpu_seconds() - c0
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv)
