/* Integer division by zero: SIGFPE on x86-64. The divisor is a volatile
   zero so that the compiler emits the division instead of folding it. */
#include <stdio.h>

static volatile long long zero = 0;

int main(void) {
    long long a, b;
    if (scanf("%lld %lld", &a, &b) != 2) return 1;
    printf("%lld\n", (a + b) / zero);
    return 0;
}
