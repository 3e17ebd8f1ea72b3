// Checker for "pair": argv[1] the test's input, argv[2] the expected output
// (one valid pair), argv[3] the program's output. Exit 0: accepted, 1:
// wrong answer, anything else (here 3): the checker or the test is broken
// (an internal error of the judge, never the program's fault).
//
// Accepted: exactly two integer tokens i j, 1 <= i, j <= n, i != j,
// a_i + a_j == x (in any order, any whitespace around them).
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

static int wrong(const std::string& why) {
    std::cerr << "wrong answer: " << why << "\n";
    return 1;
}

static int broken(const std::string& why) {
    std::cerr << "checker error: " << why << "\n";
    return 3;
}

// Reads a whole file as whitespace-separated tokens.
static bool tokens(const char* path, std::vector<std::string>& out) {
    std::ifstream f(path, std::ios::binary);
    if (!f) return false;
    std::string t;
    while (f >> t) out.push_back(t);
    return true;
}

// A token that is a decimal integer that fits a long long, and nothing else.
static bool integer(const std::string& t, long long& v) {
    if (t.empty() || t.size() > 20) return false;
    char* end = nullptr;
    errno = 0;
    v = std::strtoll(t.c_str(), &end, 10);
    return errno == 0 && end == t.c_str() + t.size() && (std::isdigit((unsigned char)t.back()));
}

// "" if the pair is valid, else why not.
static std::string judge(const std::vector<std::string>& ans, const std::vector<long long>& a,
                         long long x) {
    if (ans.size() != 2) return "expected 2 tokens, got " + std::to_string(ans.size());
    long long i, j;
    if (!integer(ans[0], i) || !integer(ans[1], j)) return "not two integers";
    long long n = (long long)a.size();
    if (i < 1 || i > n || j < 1 || j > n) return "index out of 1..n";
    if (i == j) return "the same index twice";
    if (a[i - 1] + a[j - 1] != x)
        return "a_i + a_j = " + std::to_string(a[i - 1] + a[j - 1]) + ", not " + std::to_string(x);
    return "";
}

int main(int argc, char** argv) {
    if (argc != 4) return broken("usage: checker INPUT EXPECTED ACTUAL");
    std::vector<std::string> in, expected, actual;
    if (!tokens(argv[1], in)) return broken("cannot read the input");
    if (!tokens(argv[2], expected)) return broken("cannot read the expected output");
    if (!tokens(argv[3], actual)) return broken("cannot read the program's output");

    long long n, x;
    if (in.size() < 2 || !integer(in[0], n) || !integer(in[1], x) || n < 2 ||
        (long long)in.size() != 2 + n)
        return broken("malformed input");
    std::vector<long long> a(n);
    for (long long i = 0; i < n; i++)
        if (!integer(in[2 + i], a[i])) return broken("malformed input");

    std::string why = judge(expected, a, x);
    if (!why.empty()) return broken("the expected output is not valid: " + why);
    why = judge(actual, a, x);
    if (!why.empty()) return wrong(why);
    return 0;
}
