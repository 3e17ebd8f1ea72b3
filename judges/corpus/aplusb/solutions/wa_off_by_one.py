# Off by one: a classic slip, wrong on every test.
a, b = map(int, input().split())
print(a + b + 1)
