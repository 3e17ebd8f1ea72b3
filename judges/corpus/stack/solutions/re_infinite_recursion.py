# Infinite recursion: a typo makes it count up, away from the base case.
# RecursionError at Python's recursion limit (1000), uncaught (status 1),
# on every test with n > 1.
n, k = map(int, input().split())


def josephus(m):
    if m == 1:
        return 0
    return (josephus(m + 1) + k) % m


print(josephus(n) + 1)
