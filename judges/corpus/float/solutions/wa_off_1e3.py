# Off by 1e-3: far outside a tolerance of 1e-6, absolute or relative.
a, b = map(int, input().split())
print("%.10f" % (a / b + 1e-3))
