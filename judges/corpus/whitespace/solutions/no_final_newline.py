# No newline at the end: "1 2 3".
import sys

n = int(input())
sys.stdout.write(" ".join(str(i) for i in range(1, n + 1)))
