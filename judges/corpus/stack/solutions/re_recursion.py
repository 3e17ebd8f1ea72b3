# The textbook recursion without raising Python's recursion limit (1000):
# RecursionError, uncaught, on the tests with n >= 1000 (status 1).
n, k = map(int, input().split())


def josephus(m):
    if m == 1:
        return 0
    return (josephus(m - 1) + k) % m


print(josephus(n) + 1)
