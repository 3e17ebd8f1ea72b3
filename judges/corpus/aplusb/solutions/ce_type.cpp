// Type error: a std::string cannot initialise a long long.
#include <iostream>
#include <string>

int main() {
    long long a, b;
    std::cin >> a >> b;
    std::string s = "sum";
    long long sum = s;
    std::cout << sum + a + b << "\n";
}
