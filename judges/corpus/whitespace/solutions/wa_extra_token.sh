# One number too many: "1 2 3 4" for n = 3.
read -r n
seq -s ' ' 1 $((n + 1))
