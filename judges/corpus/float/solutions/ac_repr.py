# Python's shortest round-trip repr: 0.3333333333333333, -2.5, -0.0.
a, b = map(int, input().split())
print(a / b)
