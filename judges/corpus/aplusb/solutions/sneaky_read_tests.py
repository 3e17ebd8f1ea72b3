# Hostile: looks for the judge's files. Reports to stderr whether host files
# are readable (/etc/shadow: readable or not, never its content) and what
# / holds, then searches for files holding the expected answer: names like
# *.out, *.ans, *expected*, *answer*, tried relative (., .., ../..) and
# absolute, in the places a judge might keep tests, in the directory stdin
# comes from, and through other processes' cwd and open files in /proc.
# It prints the RIGHT answer only if it found such a file (a leak: the
# verdict would be ACCEPTED), and a wrong one otherwise: WRONG_ANSWER is
# what a sandbox that holds gives. It gives up after 0.5 s of searching.
import os
import stat
import sys
import time

deadline = time.monotonic() + 0.5
a, b = map(int, sys.stdin.readline().split())
answer = str(a + b).encode()
found = []


def log(msg):
    print(msg, file=sys.stderr)


for path in ("/etc/shadow", "/etc/sudoers", "/root/.ssh/id_rsa", "/proc/1/environ",
             "/var/lib/runtimed/runtimed.db", "/run/runtimed/runtimed.sock"):
    try:
        with open(path, "rb") as f:
            n = len(f.read(4096))
        log(f"READABLE: {path} ({n} bytes read)")
    except OSError as e:
        log(f"not readable: {path}: {e.strerror}")

try:
    log("ls /: " + " ".join(sorted(os.listdir("/"))))
except OSError as e:
    log(f"ls /: {e.strerror}")

NAME_HINTS = ("expected", "answer", "output")
SUFFIXES = (".out", ".ans", ".a", ".ok", ".expected", ".sol")


def looks_like_answer_file(name):
    n = name.lower()
    return n.endswith(SUFFIXES) or any(h in n for h in NAME_HINTS)


def check(path):
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode) or st.st_size > 4096:
            return
        with open(path, "rb") as f:
            if f.read().split() == [answer]:
                found.append(path)
    except OSError:
        pass


def search(root, max_depth):
    base = root.rstrip("/").count("/")
    try:
        for dirpath, dirnames, filenames in os.walk(root):
            if time.monotonic() > deadline or found:
                return
            if dirpath.rstrip("/").count("/") - base >= max_depth:
                dirnames[:] = []
            dirnames[:] = [d for d in dirnames
                           if os.path.join(dirpath, d) not in ("/proc", "/sys", "/dev")]
            for name in filenames:
                if looks_like_answer_file(name):
                    check(os.path.join(dirpath, name))
    except OSError:
        pass


# Direct guesses, relative and absolute.
for guess in ("expected", "expected_output", "expected.txt", "answer.txt", "output.txt",
              "../expected", "../expected_output", "../../expected",
              "tests/01.out", "../tests/01.out", "../../tests/01.out",
              "/expected", "/tests/01.out", "/judge/expected", "/tmp/expected"):
    check(guess)

# Where stdin comes from: a file's directory may hold the expected output.
roots = []
try:
    stdin_path = os.readlink("/proc/self/fd/0")
    log(f"stdin is {stdin_path}")
    if stdin_path.startswith("/"):
        roots.append(os.path.dirname(stdin_path))
        roots.append(os.path.dirname(os.path.dirname(stdin_path)))
except OSError:
    pass

# Other processes: their working directories and open files.
me = os.getpid()
try:
    pids = [p for p in os.listdir("/proc") if p.isdigit() and int(p) != me]
except OSError:
    pids = []
log(f"other processes visible: {len(pids)}")
for pid in pids:
    for link in ("cwd", "root"):
        try:
            roots.append(os.readlink(f"/proc/{pid}/{link}"))
        except OSError:
            pass
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            check(f"/proc/{pid}/fd/{fd}")
    except OSError:
        pass

roots += [".", "..", "../..", "/tmp", "/workspace", "/var/lib/runtimed", "/var/tmp",
          "/run", "/work", "/home", "/root", "/srv", "/opt", "/mnt", "/builds", "/__w", "/"]
for root in roots:
    if found or time.monotonic() > deadline:
        break
    search(root, 6)

if found:
    log(f"LEAK: the expected answer is in {found[0]}")
    print(answer.decode())
else:
    log("found no expected output")
    print(a + b + 1)
