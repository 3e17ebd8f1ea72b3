// new of 1 PiB: more than any address space (and the heuristic overcommit
// refuses far less), so operator new throws std::bad_alloc, uncaught:
// terminate, SIGABRT, "std::bad_alloc" on stderr. A failed allocation is a
// memory limit even though the peak memory stays small.
#include <cstddef>
#include <iostream>

static char* volatile sink;

int main() {
    long long a, b;
    std::cin >> a >> b;
    std::size_t n = std::size_t(1) << 50;
    char* p = new char[n];
    sink = p;  // escapes: the allocation cannot be elided
    p[0] = 1;
    std::cout << a + b + p[0] - 1 << "\n";
    delete[] p;
}
