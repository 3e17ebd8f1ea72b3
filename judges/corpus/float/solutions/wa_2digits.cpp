// Two decimals: 0.33 is 3.3e-3 away from 1/3.
#include <cstdio>

int main() {
    int a, b;
    if (std::scanf("%d %d", &a, &b) != 2) return 1;
    std::printf("%.2f\n", (double)a / b);
}
