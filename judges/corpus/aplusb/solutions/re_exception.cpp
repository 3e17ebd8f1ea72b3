// std::vector::at out of range throws std::out_of_range, uncaught:
// std::terminate, abort(), SIGABRT. An exception that is not bad_alloc is a
// runtime error, not a memory limit.
#include <iostream>
#include <vector>

int main() {
    std::vector<long long> v(2);
    std::cin >> v.at(0) >> v.at(1);
    std::cout << v.at(0) + v.at(1) + v.at(2) << "\n";
}
