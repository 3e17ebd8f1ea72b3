// Infinite recursion with small frames, every byte of them written: the
// stack grows page by page, and as the stack limit is the memory limit, the
// stack's own pages reach the memory limit first (an OOM kill), or, at
// worst, the stack limit a few pages later with the memory at the limit
// (SIGSEGV at over 90 % of the memory limit): a memory limit either way.
#include <cstdio>

static int deeper(int depth) {
    volatile int frame[8];
    for (int i = 0; i < 8; i++) frame[i] = depth;
    return deeper(depth + 1) + frame[depth & 7];
}

int main() {
    long long n, k;
    if (std::scanf("%lld %lld", &n, &k) != 2) return 1;
    std::printf("%d\n", deeper(0));
}
