/* Busy loop forever: runs out of CPU time (the wall limit is larger). */
#include <stdio.h>

int main(void) {
    long long a, b;
    if (scanf("%lld %lld", &a, &b) != 2) return 1;
    volatile unsigned long long spin = 0;
    for (;;) spin++;
    printf("%lld\n", a + b);
    return 0;
}
