# bytearray(10**15): a 1 PB allocation fails at once, MemoryError,
# uncaught (status 1, "MemoryError" on stderr). A failed allocation is a
# memory limit even though the peak memory stays small.
a, b = map(int, input().split())
buf = bytearray(10**15)
print(a + b + len(buf))
