/* Prints the answer, forever. */
#include <stdio.h>

int main(void) {
    long long a, b;
    if (scanf("%lld %lld", &a, &b) != 2) return 1;
    for (;;) printf("%lld\n", a + b);
    return 0;
}
