# Exactly the expected bytes: single spaces, one final newline.
n = int(input())
print(" ".join(str(i) for i in range(1, n + 1)))
