# Prints the right answer, then waits for a child process (sleep) that
# holds stdout open: the judge must kill the whole tree at the wall limit.
read -r a b
echo $((a + b))
sleep 60
