// 32-bit ints: right on tests 1 and 3, wrong on test 2 (-2e9 does not fit,
// the sum wraps around to 2294967296).
#include <iostream>

int main() {
    int a, b;
    std::cin >> a >> b;
    unsigned sum = (unsigned)a + (unsigned)b;  // wraps (defined behaviour)
    std::cout << (long long)sum << "\n";
}
