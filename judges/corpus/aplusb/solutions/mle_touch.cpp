// Allocates 256 MiB and writes every byte of it, under a 64 MiB limit (set
// for this solution in problem.toml): the OOM killer ends it. (Were the
// allocation refused instead, bad_alloc would also be a memory limit.)
#include <iostream>
#include <vector>

int main() {
    long long a, b;
    std::cin >> a >> b;
    std::vector<char> big(256u << 20, 1);  // value-initialised: every page touched
    long long sum = 0;
    for (std::size_t i = 0; i < big.size(); i += 4096) sum += big[i];
    std::cout << a + b + sum - (long long)(big.size() / 4096) << "\n";
}
