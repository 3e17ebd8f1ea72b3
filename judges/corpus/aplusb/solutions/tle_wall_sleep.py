# Prints the right answer (flushed), then sleeps: the wall-time limit must
# still fail it, it is not ACCEPTED.
import time

a, b = map(int, input().split())
print(a + b, flush=True)
time.sleep(60)
