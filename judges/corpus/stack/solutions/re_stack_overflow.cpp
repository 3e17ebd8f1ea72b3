// Infinite recursion with 1 MiB frames of which only one byte is written:
// the stack reaches its limit (256 MiB: the memory limit) after about 256
// frames while only a few MiB are resident: SIGSEGV, a runtime error.
// (gcc -O2 without -fstack-clash-protection, Debian's default, does not
// probe the untouched pages of a frame.)
#include <cstdio>

static int deeper(int depth) {
    volatile char frame[1 << 20];
    frame[0] = (char)depth;
    return deeper(depth + 1) + frame[0];
}

int main() {
    long long n, k;
    if (std::scanf("%lld %lld", &n, &k) != 2) return 1;
    std::printf("%d\n", deeper(0));
}
