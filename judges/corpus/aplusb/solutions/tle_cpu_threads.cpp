// Two threads spinning: the CPU time of the whole process counts, so the
// CPU limit runs out after about half of it in wall time.
#include <atomic>
#include <iostream>
#include <thread>

static std::atomic<unsigned long long> spins{0};

int main() {
    long long a, b;
    std::cin >> a >> b;
    auto spin = [] { for (;;) spins.fetch_add(1, std::memory_order_relaxed); };
    std::thread t1(spin), t2(spin);
    t1.join();
    t2.join();
    std::cout << a + b << "\n";
}
