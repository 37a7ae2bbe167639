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
// megabyte of RSS and its start-up time.  So the library links with the C
// driver (CMakeLists.txt builds this file as an object library, so that
// CMake does not add the C++ runtime), and finds the runtime's new-handler
// and bad_alloc thrower only on the out-of-memory path: through weak
// references, bound when the program itself links libstdc++, or else by
// asking the dynamic loader for a libstdc++ loaded later (a C program that
// dlopens a C++ plugin).  Without any C++ runtime in the process there is
// no C++ caller either.
#include <cstddef>
#include <dlfcn.h>
#include <new>

#include "internal_api.h"

namespace std {
__attribute__((weak)) new_handler get_new_handler() noexcept;
__attribute__((weak, noreturn)) void __throw_bad_alloc();
}  // namespace std
// What the compiler emits for catch (...) in allocate_nothrow; the
// assembler makes references weak whatever their order in the file.  (Not
// bound when libstdc++ only comes with a plugin dlopened with RTLD_LOCAL:
// then an exception thrown by a new-handler is not caught there.)
asm(".weak __gxx_personality_v0\n.weak __cxa_begin_catch\n.weak __cxa_end_catch\n"
    ".weak _Unwind_Resume");

namespace {

struct cxx_runtime {
    std::new_handler (*get_new_handler)() noexcept;
    void (*throw_bad_alloc)();
};

// Resolved on every out-of-memory (a cold path): a libstdc++ may have come
// since the last one.
cxx_runtime find_runtime()
{
    cxx_runtime rt = { &std::get_new_handler ? std::get_new_handler : nullptr,
                       &std::__throw_bad_alloc ? std::__throw_bad_alloc : nullptr };
    if (rt.get_new_handler && rt.throw_bad_alloc)
        return rt;
    void *lib = dlopen("libstdc++.so.6", RTLD_LAZY | RTLD_NOLOAD);
    if (lib) {
        if (!rt.get_new_handler)
            rt.get_new_handler = reinterpret_cast<std::new_handler (*)() noexcept>(
                dlsym(lib, "_ZSt15get_new_handlerv"));
        if (!rt.throw_bad_alloc)
            rt.throw_bad_alloc = reinterpret_cast<void (*)()>(dlsym(lib, "_ZSt17__throw_bad_allocv"));
        dlclose(lib);      // only drops the reference RTLD_NOLOAD took
    }
    return rt;
}

std::new_handler current_handler(const cxx_runtime &rt)
{
    return rt.get_new_handler ? rt.get_new_handler() : nullptr;
}

void *try_allocate(std::size_t size, std::size_t align)
{
    return align ? bk_api_aligned(align, size) : bk_api_malloc(size);
}

void *allocate(std::size_t size, std::size_t align)
{
    for (;;) {
        void *p = try_allocate(size, align);
        if (__builtin_expect(p != nullptr, 1))
            return p;
        cxx_runtime rt = find_runtime();
        std::new_handler handler = current_handler(rt);
        if (!handler) {
            if (rt.throw_bad_alloc)
                rt.throw_bad_alloc();
            __builtin_trap();   // no C++ runtime in the process
        }
        handler();
    }
}

// The nothrow forms: nullptr where the throwing forms would throw, including
// when the new-handler throws.
void *allocate_nothrow(std::size_t size, std::size_t align) noexcept
{
    for (;;) {
        void *p = try_allocate(size, align);
        if (__builtin_expect(p != nullptr, 1))
            return p;
        std::new_handler handler = current_handler(find_runtime());
        if (!handler)
            return nullptr;
        try {
            handler();
        } catch (...) {
            return nullptr;
        }
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
