/* Ten decimals: the same text as the expected output. */
#include <stdio.h>

int main(void) {
    int a, b;
    if (scanf("%d %d", &a, &b) != 2) return 1;
    printf("%.10f\n", (double)a / b);
    return 0;
}
