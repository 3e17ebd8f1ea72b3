# Bug: allows i == j. Test 2 has a_1 = 5 and x = 10, so it prints "1 1".
n, x = map(int, input().split())
a = list(map(int, input().split()))
for i in range(n):
    for j in range(i, n):
        if a[i] + a[j] == x:
            print(i + 1, j + 1)
            raise SystemExit
