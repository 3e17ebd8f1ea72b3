/* Writes through a null pointer: SIGSEGV. The pointer is read from a
   volatile so that the compiler cannot see it is null (it would otherwise
   be free to turn the store into a trap, SIGILL). */
#include <stdint.h>
#include <stdio.h>

static volatile uintptr_t where = 0;

int main(void) {
    long long a, b;
    if (scanf("%lld %lld", &a, &b) != 2) return 1;
    long long *p = (long long *)where;
    *p = a + b;
    printf("%lld\n", *p);
    return 0;
}
