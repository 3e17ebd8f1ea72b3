# Prints 64 KiB blocks, forever.
import sys

a, b = map(int, input().split())
block = (str(a + b) + "\n") * 4096
while True:
    sys.stdout.write(block)
