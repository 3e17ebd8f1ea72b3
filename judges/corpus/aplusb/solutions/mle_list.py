# Keeps every 16 MiB chunk it makes (bytes filled with "x", so the pages are
# written): grows until the memory limit (OOM kill, or MemoryError where an
# address-space limit applies).
a, b = map(int, input().split())
chunks = []
while True:
    chunks.append(b"x" * (16 << 20))
print(a + b)
