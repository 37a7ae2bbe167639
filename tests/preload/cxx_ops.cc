// Run under LD_PRELOAD=libbrisk.so (not linked with brisk): all 20
// replaceable allocation and deallocation functions of C++17 must be
// brisk's, and operator new must behave as the standard says: throw
// std::bad_alloc for an impossible size, call the new-handler and retry
// (so a handler that frees memory makes the retry succeed), and return
// nullptr from the nothrow forms where the others throw.
#include <dlfcn.h>
#include <sys/resource.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <new>
#include <string>

namespace {

int failures;
std::size_t (*usable)(void *);

#define CHECK(cond, ...)                                              \
    do {                                                              \
        if (!(cond)) {                                                \
            std::fprintf(stderr, "cxx_ops: FAIL line %d: ", __LINE__); \
            std::fprintf(stderr, __VA_ARGS__);                        \
            std::fputc('\n', stderr);                                 \
            failures++;                                               \
        }                                                             \
    } while (0)

// Defeat the compiler's knowledge of operator new/delete pairs.
template <class T> T opaque(T v)
{
    asm volatile("" : "+r"(v));
    return v;
}

void owned(const char *what, void *p, std::size_t size, std::size_t align, bool scribble = true)
{
    CHECK(p != nullptr, "%s returned nullptr", what);
    if (!p)
        return;
    // Aborts with a report if brisk did not allocate p.
    std::size_t n = usable(p);
    CHECK(n >= size, "%s: usable %zu < %zu", what, n, size);
    CHECK(reinterpret_cast<std::uintptr_t>(p) % align == 0, "%s: %p not aligned to %zu", what, p,
          align);
    if (scribble)
        std::memset(p, 0x5a, size);
}

// The function must come from libbrisk.so, not libstdc++.
void from_brisk(const char *what, void *fn)
{
    Dl_info info;
    CHECK(dladdr(fn, &info) && info.dli_fname && std::strstr(info.dli_fname, "libbrisk"),
          "%s resolves to %s, not libbrisk.so", what,
          dladdr(fn, &info) && info.dli_fname ? info.dli_fname : "?");
}

void check_resolution()
{
    using std::align_val_t;
    using std::nothrow_t;
    using std::size_t;
    // The 8 allocation functions.
    from_brisk("new(size)", reinterpret_cast<void *>(static_cast<void *(*)(size_t)>(&::operator new)));
    from_brisk("new[](size)", reinterpret_cast<void *>(static_cast<void *(*)(size_t)>(&::operator new[])));
    from_brisk("new(size, nothrow)",
               reinterpret_cast<void *>(static_cast<void *(*)(size_t, const nothrow_t &) noexcept>(&::operator new)));
    from_brisk("new[](size, nothrow)",
               reinterpret_cast<void *>(static_cast<void *(*)(size_t, const nothrow_t &) noexcept>(&::operator new[])));
    from_brisk("new(size, align)",
               reinterpret_cast<void *>(static_cast<void *(*)(size_t, align_val_t)>(&::operator new)));
    from_brisk("new[](size, align)",
               reinterpret_cast<void *>(static_cast<void *(*)(size_t, align_val_t)>(&::operator new[])));
    from_brisk("new(size, align, nothrow)",
               reinterpret_cast<void *>(static_cast<void *(*)(size_t, align_val_t, const nothrow_t &) noexcept>(&::operator new)));
    from_brisk("new[](size, align, nothrow)",
               reinterpret_cast<void *>(static_cast<void *(*)(size_t, align_val_t, const nothrow_t &) noexcept>(&::operator new[])));
    // The 12 deallocation functions.
    from_brisk("delete(p)", reinterpret_cast<void *>(static_cast<void (*)(void *) noexcept>(&::operator delete)));
    from_brisk("delete[](p)", reinterpret_cast<void *>(static_cast<void (*)(void *) noexcept>(&::operator delete[])));
    from_brisk("delete(p, nothrow)",
               reinterpret_cast<void *>(static_cast<void (*)(void *, const nothrow_t &) noexcept>(&::operator delete)));
    from_brisk("delete[](p, nothrow)",
               reinterpret_cast<void *>(static_cast<void (*)(void *, const nothrow_t &) noexcept>(&::operator delete[])));
    from_brisk("delete(p, size)",
               reinterpret_cast<void *>(static_cast<void (*)(void *, size_t) noexcept>(&::operator delete)));
    from_brisk("delete[](p, size)",
               reinterpret_cast<void *>(static_cast<void (*)(void *, size_t) noexcept>(&::operator delete[])));
    from_brisk("delete(p, align)",
               reinterpret_cast<void *>(static_cast<void (*)(void *, align_val_t) noexcept>(&::operator delete)));
    from_brisk("delete[](p, align)",
               reinterpret_cast<void *>(static_cast<void (*)(void *, align_val_t) noexcept>(&::operator delete[])));
    from_brisk("delete(p, align, nothrow)",
               reinterpret_cast<void *>(static_cast<void (*)(void *, align_val_t, const nothrow_t &) noexcept>(&::operator delete)));
    from_brisk("delete[](p, align, nothrow)",
               reinterpret_cast<void *>(static_cast<void (*)(void *, align_val_t, const nothrow_t &) noexcept>(&::operator delete[])));
    from_brisk("delete(p, size, align)",
               reinterpret_cast<void *>(static_cast<void (*)(void *, size_t, align_val_t) noexcept>(&::operator delete)));
    from_brisk("delete[](p, size, align)",
               reinterpret_cast<void *>(static_cast<void (*)(void *, size_t, align_val_t) noexcept>(&::operator delete[])));
}

// Every form, called explicitly, over a spread of sizes and alignments.
int exercise_forms()
{
    const std::size_t sizes[] = {0, 1, 8, 24, 100, 1000, 4096, 70000, 300000, 5u << 20};
    const std::size_t aligns[] = {16, 32, 64, 256, 4096, 65536, 1u << 21};
    const std::nothrow_t &nt = std::nothrow;
    int calls = 0;
    for (std::size_t n : sizes) {
        void *p;
        p = ::operator new(opaque(n));
        owned("new(size)", p, n, alignof(std::max_align_t));
        ::operator delete(p);
        p = ::operator new[](opaque(n));
        owned("new[](size)", p, n, alignof(std::max_align_t));
        ::operator delete[](p);
        p = ::operator new(opaque(n), nt);
        owned("new(size, nothrow)", p, n, alignof(std::max_align_t));
        ::operator delete(p, nt);
        p = ::operator new[](opaque(n), nt);
        owned("new[](size, nothrow)", p, n, alignof(std::max_align_t));
        ::operator delete[](p, nt);
        p = ::operator new(opaque(n));
        owned("new(size)", p, n, alignof(std::max_align_t));
        ::operator delete(p, n);
        p = ::operator new[](opaque(n));
        owned("new[](size)", p, n, alignof(std::max_align_t));
        ::operator delete[](p, n);
        calls += 12;
        for (std::size_t a : aligns) {
            std::align_val_t al{a};
            p = ::operator new(opaque(n), al);
            owned("new(size, align)", p, n, a);
            ::operator delete(p, al);
            p = ::operator new[](opaque(n), al);
            owned("new[](size, align)", p, n, a);
            ::operator delete[](p, al);
            p = ::operator new(opaque(n), al, nt);
            owned("new(size, align, nothrow)", p, n, a);
            ::operator delete(p, al, nt);
            p = ::operator new[](opaque(n), al, nt);
            owned("new[](size, align, nothrow)", p, n, a);
            ::operator delete[](p, al, nt);
            p = ::operator new(opaque(n), al);
            owned("new(size, align)", p, n, a);
            ::operator delete(p, n, al);
            p = ::operator new[](opaque(n), al);
            owned("new[](size, align)", p, n, a);
            ::operator delete[](p, n, al);
            calls += 12;
        }
    }
    // Deleting nullptr through every form is a no-op.
    ::operator delete(nullptr);
    ::operator delete[](nullptr);
    ::operator delete(nullptr, nt);
    ::operator delete[](nullptr, nt);
    ::operator delete(nullptr, std::size_t{8});
    ::operator delete[](nullptr, std::size_t{8});
    ::operator delete(nullptr, std::align_val_t{64});
    ::operator delete[](nullptr, std::align_val_t{64});
    ::operator delete(nullptr, std::align_val_t{64}, nt);
    ::operator delete[](nullptr, std::align_val_t{64}, nt);
    ::operator delete(nullptr, std::size_t{8}, std::align_val_t{64});
    ::operator delete[](nullptr, std::size_t{8}, std::align_val_t{64});
    // new-expressions, which the compiler maps to the same functions.
    struct alignas(128) Wide { char c[128]; };
    auto *w = new Wide[3];
    owned("new Wide[3]", w, sizeof(Wide) * 3, 128);
    delete[] w;
    auto *s = new std::string(5000, 'x');
    owned("new std::string", s, sizeof *s, alignof(std::string), false);
    owned("std::string buffer", s->data(), 5001, 1, false);
    delete s;
    return calls;
}

// Sizes no allocator can satisfy.
const std::size_t impossible[] = {SIZE_MAX, SIZE_MAX / 2, std::size_t{PTRDIFF_MAX} + 1,
                                  std::size_t{1} << 60};

void check_failures()
{
    for (std::size_t n : impossible) {
        bool threw = false;
        try {
            void *p = ::operator new(opaque(n));
            ::operator delete(p);
        } catch (const std::bad_alloc &) {
            threw = true;
        }
        CHECK(threw, "new(%zu) did not throw std::bad_alloc", n);
        threw = false;
        try {
            void *p = ::operator new[](opaque(n), std::align_val_t{4096});
            ::operator delete[](p, std::align_val_t{4096});
        } catch (const std::bad_alloc &) {
            threw = true;
        }
        CHECK(threw, "new[](%zu, align 4096) did not throw std::bad_alloc", n);
        CHECK(::operator new(opaque(n), std::nothrow) == nullptr, "new(%zu, nothrow) != nullptr", n);
        CHECK(::operator new[](opaque(n), std::nothrow) == nullptr, "new[](%zu, nothrow) != nullptr", n);
        CHECK(::operator new(opaque(n), std::align_val_t{64}, std::nothrow) == nullptr,
              "new(%zu, align, nothrow) != nullptr", n);
        CHECK(::operator new[](opaque(n), std::align_val_t{64}, std::nothrow) == nullptr,
              "new[](%zu, align, nothrow) != nullptr", n);
    }
}

// A handler called on every failed attempt; on its third call it uninstalls
// itself, so operator new throws (and the nothrow form returns nullptr).
int handler_calls;
void counting_handler()
{
    if (++handler_calls == 3)
        std::set_new_handler(nullptr);
}

void check_handler_loop()
{
    handler_calls = 0;
    std::set_new_handler(counting_handler);
    bool threw = false;
    try {
        void *p = ::operator new(opaque(SIZE_MAX / 2));
        ::operator delete(p);
    } catch (const std::bad_alloc &) {
        threw = true;
    }
    CHECK(threw && handler_calls == 3, "new with handler: threw=%d, handler called %d times (3 expected)",
          threw, handler_calls);

    handler_calls = 0;
    std::set_new_handler(counting_handler);
    void *p = ::operator new(opaque(SIZE_MAX / 2), std::align_val_t{256}, std::nothrow);
    CHECK(p == nullptr && handler_calls == 3,
          "nothrow aligned new with handler: %p, handler called %d times (3 expected)", p, handler_calls);

    // A handler that throws: its exception reaches the caller of new.
    std::set_new_handler([] { throw std::bad_alloc(); });
    threw = false;
    try {
        void *q = ::operator new[](opaque(SIZE_MAX / 4));
        ::operator delete[](q);
    } catch (const std::bad_alloc &) {
        threw = true;
    }
    CHECK(threw, "a throwing new-handler's exception did not propagate");
    std::set_new_handler(nullptr);
}

// The handler frees memory and the retry succeeds.  The address space is
// limited (RLIMIT_AS) to what the process uses plus a margin, with a large
// reserve block allocated beforehand: a request bigger than the margin
// fails until the handler frees the reserve.
void *reserve;
int freeing_calls;
void freeing_handler()
{
    freeing_calls++;
    if (reserve) {
        ::operator delete(reserve);
        reserve = nullptr;
    } else {
        std::set_new_handler(nullptr);
    }
}

std::size_t vm_size()
{
    std::ifstream status("/proc/self/status");
    std::string key;
    while (status >> key) {
        if (key == "VmSize:") {
            std::size_t kib = 0;
            status >> kib;
            return kib * 1024;
        }
    }
    return 0;
}

void check_handler_frees_memory()
{
    const std::size_t reserve_size = std::size_t{512} << 20, request = std::size_t{384} << 20,
                      margin = std::size_t{64} << 20;
    reserve = ::operator new(reserve_size);
    std::size_t vm = vm_size();
    CHECK(vm != 0, "VmSize not found in /proc/self/status");
    struct rlimit old, lim;
    getrlimit(RLIMIT_AS, &old);
    lim = old;
    lim.rlim_cur = vm + margin;
    if (old.rlim_max != RLIM_INFINITY && old.rlim_max < lim.rlim_cur) {
        std::printf("cxx_ops: RLIMIT_AS hard limit too low, new-handler retry check skipped\n");
        ::operator delete(reserve);
        return;
    }
    CHECK(setrlimit(RLIMIT_AS, &lim) == 0, "setrlimit(RLIMIT_AS)");

    // Without a handler the request fails: the limit really bites.
    std::set_new_handler(nullptr);
    void *p = ::operator new(opaque(request), std::nothrow);
    CHECK(p == nullptr, "new(384 MiB) succeeded under RLIMIT_AS with the reserve held");
    if (p)
        ::operator delete(p);

    freeing_calls = 0;
    std::set_new_handler(freeing_handler);
    p = nullptr;
    try {
        p = ::operator new(opaque(request));
    } catch (const std::bad_alloc &) {
        CHECK(false, "new(384 MiB) threw although the handler freed 512 MiB (handler called %d times)",
              freeing_calls);
    }
    CHECK(p != nullptr && freeing_calls == 1,
          "new(384 MiB) with a freeing handler: %p after %d handler call(s) (1 expected)", p,
          freeing_calls);
    if (p) {
        static_cast<char *>(p)[0] = 1;
        static_cast<char *>(p)[request - 1] = 1;
        owned("new(384 MiB) after the handler", p, request, 16);
        ::operator delete(p);
    }
    std::set_new_handler(nullptr);
    setrlimit(RLIMIT_AS, &old);
    if (reserve)
        ::operator delete(reserve);
    reserve = nullptr;
}

}  // namespace

int main()
{
    usable = reinterpret_cast<std::size_t (*)(void *)>(dlsym(RTLD_DEFAULT, "brisk_malloc_usable_size"));
    if (!usable) {
        std::fprintf(stderr, "cxx_ops: brisk is not in this process (run it with LD_PRELOAD=libbrisk.so)\n");
        return 1;
    }
    check_resolution();
    int calls = exercise_forms();
    check_failures();
    check_handler_loop();
    check_handler_frees_memory();
    if (failures) {
        std::fprintf(stderr, "cxx_ops: %d failure(s)\n", failures);
        return 1;
    }
    std::printf("cxx_ops: OK: 20 operator forms resolve to brisk, %d calls, bad_alloc, new-handler "
                "loop and retry, nothrow nullptr\n", calls);
    return 0;
}
