/* Prints the right answer (flushed), then sleeps without using CPU. */
#include <stdio.h>
#include <unistd.h>

int main(void) {
    long long a, b;
    if (scanf("%lld %lld", &a, &b) != 2) return 1;
    printf("%lld\n", a + b);
    fflush(stdout);
    sleep(60);
    return 0;
}
