// A C++ downstream program on libbrisk.so: new and delete must be brisk's.
#include <brisk.h>

#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <new>
#include <string>
#include <vector>

int main()
{
    int failures = 0;
    auto owned = [&](const char *what, void *p, std::size_t need) {
        // brisk_malloc_usable_size aborts on a pointer brisk does not own.
        std::size_t usable = p ? brisk_malloc_usable_size(p) : 0;
        if (usable < need) {
            std::fprintf(stderr, "consumer_cxx: FAIL %s: usable %zu < %zu\n", what, usable, need);
            failures++;
        }
    };

    int *one = new int(7);
    owned("new int", one, sizeof(int));
    delete one;

    auto *arr = new double[100000];
    owned("new double[100000]", arr, sizeof(double) * 100000);
    delete[] arr;

    struct alignas(256) Wide { char bytes[256]; };
    auto *wide = new Wide;
    owned("new alignas(256)", wide, sizeof(Wide));
    if (reinterpret_cast<std::uintptr_t>(wide) % 256) {
        std::fprintf(stderr, "consumer_cxx: FAIL aligned new misaligned\n");
        failures++;
    }
    delete wide;

    std::vector<std::string> strings;
    std::map<int, std::string> map;
    for (int i = 0; i < 10000; i++) {
        strings.push_back(std::string(static_cast<std::size_t>(i % 300), 'a'));
        map[i] = strings.back();
    }
    owned("std::vector buffer", strings.data(), sizeof(std::string) * strings.size());
    auto shared = std::make_shared<std::vector<int>>(5000, 1);
    owned("std::vector<int> buffer", shared->data(), sizeof(int) * 5000);

    if (failures)
        return 1;
    std::printf("consumer_cxx: OK (%zu strings, %zu map entries)\n", strings.size(), map.size());
    return 0;
}
