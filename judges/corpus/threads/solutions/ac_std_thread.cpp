// Four std::threads each sum a quarter of the numbers. (glibc 2.34+ has
// pthreads in libc: no -pthread needed.)
#include <iostream>
#include <thread>
#include <vector>

int main() {
    std::ios::sync_with_stdio(false);
    int n;
    std::cin >> n;
    std::vector<long long> a(n);
    for (auto& v : a) std::cin >> v;
    const int T = 4;
    std::vector<long long> part(T, 0);
    std::vector<std::thread> workers;
    for (int t = 0; t < T; t++)
        workers.emplace_back([&, t] {
            for (int i = t; i < n; i += T) part[t] += a[i];
        });
    for (auto& w : workers) w.join();
    long long sum = 0;
    for (long long p : part) sum += p;
    std::cout << sum << "\n";
}
