# The last pair, printed larger index first: a different answer from the
# expected one on every test, and a valid one.
n, x = map(int, input().split())
a = list(map(int, input().split()))
best = None
for i in range(n):
    for j in range(i + 1, n):
        if a[i] + a[j] == x:
            best = (i, j)
i, j = best
print(j + 1, i + 1)
