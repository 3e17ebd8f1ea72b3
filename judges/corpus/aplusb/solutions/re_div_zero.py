# ZeroDivisionError, uncaught: exit status 1 with a traceback.
a, b = map(int, input().split())
print((a + b) // (a - a))
