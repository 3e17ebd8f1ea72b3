# Four threading.Threads each sum a quarter of the numbers.
import sys
import threading

data = sys.stdin.read().split()
n = int(data[0])
a = list(map(int, data[1:1 + n]))
T = 4
part = [0] * T


def work(t):
    part[t] = sum(a[t::T])


threads = [threading.Thread(target=work, args=(t,)) for t in range(T)]
for th in threads:
    th.start()
for th in threads:
    th.join()
print(sum(part))
