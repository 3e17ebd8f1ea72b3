# The right answer followed by 2 MiB of spaces: the tokens checker would
# accept it, but the output is over the 1 MiB output limit, which wins.
a, b = map(int, input().split())
print(a + b)
print(" " * (2 << 20))
