# Calls a command that does not exist: bash exits with status 127.
read -r a b
set -e
add_numbers "$a" "$b"
echo $((a + b))
