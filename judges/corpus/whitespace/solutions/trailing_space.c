/* A space after every number, the last one included: "1 2 3 \n". */
#include <stdio.h>

int main(void) {
    int n;
    if (scanf("%d", &n) != 1) return 1;
    for (int i = 1; i <= n; i++) printf("%d ", i);
    printf("\n");
    return 0;
}
