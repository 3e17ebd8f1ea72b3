// Windows line ending: "1 2 3\r\n".
#include <iostream>

int main() {
    int n;
    std::cin >> n;
    for (int i = 1; i <= n; i++) std::cout << i << (i < n ? " " : "");
    std::cout << "\r\n";
}
