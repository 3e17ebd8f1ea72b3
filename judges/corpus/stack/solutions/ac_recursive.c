/* The same recursion in C, n deep. */
#include <stdio.h>

static long long k;

static long long josephus(long long n) {
    if (n == 1) return 0;
    return (josephus(n - 1) + k) % n;
}

int main(void) {
    long long n;
    if (scanf("%lld %lld", &n, &k) != 2) return 1;
    printf("%lld\n", josephus(n) + 1);
    return 0;
}
