# Not numbers at all: the checker must say WRONG_ANSWER, not fail.
echo "no idea"
