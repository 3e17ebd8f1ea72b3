# Fork bombs. The first line is the classic, started in the background (each
# call starts two more and returns); the second keeps the main shell in a
# bomb of its own that never finishes (each call waits for the two it
# started). Once the pids limit refuses forks, bash retries each failed
# fork, sleeping 1+2+4+8 s: the tree mostly sleeps and the wall-time limit
# ends it. The wrong answer at the end is for a run without limits.
read -r a b
:(){ :|:& };:
f(){ f | f; }; f
echo $((a + b + 1))
