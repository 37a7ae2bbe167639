// Input of the preload g++ test: template-heavy C++ for cc1plus; compiled
// with and without libbrisk.so preloaded, the objects must be identical and
// the program's output the same.
#include <algorithm>
#include <functional>
#include <iomanip>
#include <iostream>
#include <map>
#include <memory>
#include <numeric>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <unordered_map>
#include <variant>
#include <vector>

namespace {

template <class K, class V> std::map<V, std::vector<K>> invert(const std::unordered_map<K, V> &m)
{
    std::map<V, std::vector<K>> out;
    for (const auto &[k, v] : m)
        out[v].push_back(k);
    for (auto &[v, ks] : out)
        std::sort(ks.begin(), ks.end());
    return out;
}

using Value = std::variant<long, double, std::string>;

std::string show(const Value &v)
{
    return std::visit(
        [](const auto &x) {
            std::ostringstream os;
            os << x;
            return os.str();
        },
        v);
}

struct Shape {
    virtual ~Shape() = default;
    virtual double area() const = 0;
    virtual std::string name() const = 0;
};
struct Circle : Shape {
    double r;
    explicit Circle(double r) : r(r) {}
    double area() const override { return 3.141592653589793 * r * r; }
    std::string name() const override { return "circle"; }
};
struct Rect : Shape {
    double w, h;
    Rect(double w, double h) : w(w), h(h) {}
    double area() const override { return w * h; }
    std::string name() const override { return "rect"; }
};

}  // namespace

int main()
{
    std::unordered_map<std::string, int> lengths;
    std::string text = "the quick brown fox jumps over the lazy dog while the cat sleeps";
    std::istringstream words(text);
    for (std::string w; words >> w;)
        lengths[w] = static_cast<int>(w.size());
    for (const auto &[len, ws] : invert(lengths)) {
        std::cout << len << ":";
        for (const auto &w : ws)
            std::cout << ' ' << w;
        std::cout << '\n';
    }
    std::vector<Value> values{42L, 2.5, std::string("brisk"), 7L};
    for (const auto &v : values)
        std::cout << show(v) << '\n';
    std::vector<std::unique_ptr<Shape>> shapes;
    for (int i = 1; i <= 6; i++) {
        if (i % 2)
            shapes.push_back(std::make_unique<Circle>(i));
        else
            shapes.push_back(std::make_unique<Rect>(i, i + 1));
    }
    std::sort(shapes.begin(), shapes.end(), [](const auto &a, const auto &b) { return a->area() < b->area(); });
    for (const auto &s : shapes)
        std::cout << s->name() << ' ' << std::fixed << std::setprecision(3) << s->area() << '\n';
    std::set<std::tuple<int, int, int>> triples;
    for (int a = 1; a < 40; a++)
        for (int b = a; b < 40; b++)
            for (int c = b; c < 60; c++)
                if (a * a + b * b == c * c)
                    triples.emplace(a, b, c);
    std::cout << triples.size() << " pythagorean triples\n";
    std::vector<int> v(1000);
    std::iota(v.begin(), v.end(), 1);
    std::function<long(long)> f = [](long x) { return x * x % 97; };
    long acc = std::accumulate(v.begin(), v.end(), 0L, [&](long s, int x) { return s + f(x); });
    std::cout << "sum " << acc << '\n';
    return 0;
}
