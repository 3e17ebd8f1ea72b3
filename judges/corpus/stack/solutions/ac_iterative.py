# The same recurrence as a loop: no deep stack.
n, k = map(int, input().split())
r = 0
for i in range(2, n + 1):
    r = (r + k) % i
print(r + 1)
