// Scientific notation: 3.333333333333e-01.
#include <cstdio>

int main() {
    int a, b;
    if (std::scanf("%d %d", &a, &b) != 2) return 1;
    std::printf("%.12e\n", (double)a / b);
}
