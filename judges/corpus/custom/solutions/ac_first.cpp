// Brute force, the first pair i < j in order: the same pair as the expected
// output.
#include <iostream>
#include <vector>

int main() {
    int n;
    long long x;
    std::cin >> n >> x;
    std::vector<long long> a(n);
    for (auto& v : a) std::cin >> v;
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            if (a[i] + a[j] == x) {
                std::cout << i + 1 << " " << j + 1 << "\n";
                return 0;
            }
    return 0;
}
