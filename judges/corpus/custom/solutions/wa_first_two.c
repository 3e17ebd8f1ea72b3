/* Always prints "1 2": right where a_1 + a_2 = x, wrong on test 2. */
#include <stdio.h>

int main(void) {
    printf("1 2\n");
    return 0;
}
