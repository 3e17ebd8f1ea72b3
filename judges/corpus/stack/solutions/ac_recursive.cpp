// The textbook recursion J(1) = 0, J(i) = (J(i-1) + k) mod i, recursing n
// deep: 10^6 frames of a few dozen bytes need more than the usual 8 MiB
// stack, and fit in the 256 MiB the judge gives (stack limit = memory
// limit). The modulo after the call keeps it from being a tail call.
#include <cstdio>

static long long k;

static long long josephus(long long n) {
    if (n == 1) return 0;
    return (josephus(n - 1) + k) % n;
}

int main() {
    long long n;
    if (std::scanf("%lld %lld", &n, &k) != 2) return 1;
    std::printf("%lld\n", josephus(n) + 1);
}
