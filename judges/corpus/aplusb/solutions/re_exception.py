# Splits on the wrong separator: int("1 2") raises ValueError, uncaught.
a, b = map(int, input().split(","))
print(a + b)
