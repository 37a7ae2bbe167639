// The C++ plugin of plugin_host.c: an impossible allocation, both forms.
#include <cstdio>
#include <new>

extern "C" int plugin_run()
{
    volatile std::size_t huge = std::size_t(1) << 62;
    bool caught = false;
    try {
        char *p = new char[huge];
        std::printf("FAIL: new of 2^62 bytes gave %p\n", static_cast<void *>(p));
    } catch (const std::bad_alloc &) {
        caught = true;
    }
    char *q = new (std::nothrow) char[huge];
    std::printf("bad_alloc %s, nothrow %s\n", caught ? "caught" : "NOT caught",
                q ? "non-null" : "null");
    return caught && !q ? 0 : 1;
}
