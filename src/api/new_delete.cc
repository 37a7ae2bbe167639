// The C++ allocation operators, all 20 forms (C++17), on brisk.
//
// operator new loops as the standard says: on failure it calls the installed
// new-handler and retries, and throws std::bad_alloc when there is none.  The
// nothrow forms return nullptr where the throwing forms would throw.  Sized
// and aligned deletes free like plain delete: brisk finds the size and
// alignment from the page map.
//
// No libstdc++ dependency.  libbrisk.so is preloaded into C programs too,
// and loading the C++ runtime into every one of them would cost each a
// megabyte of RSS and its start-up time.  So every C++ runtime symbol this
// file needs is a weak reference, bound when the process has libstdc++
// (any program that can call operator new does) and null otherwise, and
// the library links with the C driver (CMakeLists.txt builds this file as
// an object library, so that CMake does not add the C++ runtime).
#include <cstddef>
#include <new>

#include "internal_api.h"

// The runtime entry points: the new-handler, the bad_alloc thrower, and what
// the compiler's own code for catch (...) calls.
namespace std {
__attribute__((weak)) new_handler get_new_handler() noexcept;
__attribute__((weak, noreturn)) void __throw_bad_alloc();
}  // namespace std
// The compiler emits these for catch (...); the assembler makes references
// weak whatever their order in the file.
asm(".weak __gxx_personality_v0\n.weak __cxa_begin_catch\n.weak __cxa_end_catch\n"
    ".weak _Unwind_Resume");

namespace {

void *allocate(std::size_t size, std::size_t align)
{
    for (;;) {
        void *p = align ? bk_api_aligned(align, size) : bk_api_malloc(size);
        if (__builtin_expect(p != nullptr, 1))
            return p;
        std::new_handler handler = &std::get_new_handler ? std::get_new_handler() : nullptr;
        if (!handler) {
            if (&std::__throw_bad_alloc)
                std::__throw_bad_alloc();
            __builtin_trap();   // no C++ runtime, so no C++ caller either
        }
        handler();
    }
}

void *allocate_nothrow(std::size_t size, std::size_t align) noexcept
{
    try {
        return allocate(size, align);
    } catch (...) {
        return nullptr;
    }
}

}  // namespace

#define BK_CXX_EXPORT __attribute__((visibility("default")))

BK_CXX_EXPORT void *operator new(std::size_t n) { return allocate(n, 0); }
BK_CXX_EXPORT void *operator new[](std::size_t n) { return allocate(n, 0); }
BK_CXX_EXPORT void *operator new(std::size_t n, const std::nothrow_t &) noexcept
{
    return allocate_nothrow(n, 0);
}
BK_CXX_EXPORT void *operator new[](std::size_t n, const std::nothrow_t &) noexcept
{
    return allocate_nothrow(n, 0);
}
BK_CXX_EXPORT void *operator new(std::size_t n, std::align_val_t a)
{
    return allocate(n, static_cast<std::size_t>(a));
}
BK_CXX_EXPORT void *operator new[](std::size_t n, std::align_val_t a)
{
    return allocate(n, static_cast<std::size_t>(a));
}
BK_CXX_EXPORT void *operator new(std::size_t n, std::align_val_t a, const std::nothrow_t &) noexcept
{
    return allocate_nothrow(n, static_cast<std::size_t>(a));
}
BK_CXX_EXPORT void *operator new[](std::size_t n, std::align_val_t a,
                                   const std::nothrow_t &) noexcept
{
    return allocate_nothrow(n, static_cast<std::size_t>(a));
}

BK_CXX_EXPORT void operator delete(void *p) noexcept { bk_api_free(p); }
BK_CXX_EXPORT void operator delete[](void *p) noexcept { bk_api_free(p); }
BK_CXX_EXPORT void operator delete(void *p, const std::nothrow_t &) noexcept { bk_api_free(p); }
BK_CXX_EXPORT void operator delete[](void *p, const std::nothrow_t &) noexcept { bk_api_free(p); }
BK_CXX_EXPORT void operator delete(void *p, std::size_t) noexcept { bk_api_free(p); }
BK_CXX_EXPORT void operator delete[](void *p, std::size_t) noexcept { bk_api_free(p); }
BK_CXX_EXPORT void operator delete(void *p, std::align_val_t) noexcept { bk_api_free(p); }
BK_CXX_EXPORT void operator delete[](void *p, std::align_val_t) noexcept { bk_api_free(p); }
BK_CXX_EXPORT void operator delete(void *p, std::align_val_t, const std::nothrow_t &) noexcept
{
    bk_api_free(p);
}
BK_CXX_EXPORT void operator delete[](void *p, std::align_val_t, const std::nothrow_t &) noexcept
{
    bk_api_free(p);
}
BK_CXX_EXPORT void operator delete(void *p, std::size_t, std::align_val_t) noexcept
{
    bk_api_free(p);
}
BK_CXX_EXPORT void operator delete[](void *p, std::size_t, std::align_val_t) noexcept
{
    bk_api_free(p);
}
