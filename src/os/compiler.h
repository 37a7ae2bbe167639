/* Compiler markers shared by every layer of brisk.
 *
 * BK_FAST_PATH functions are force-inlined into the entry points; BK_SLOW_PATH
 * functions are kept out of line and cold so that the fast path's registers
 * and code layout stay small.  bk_likely/bk_unlikely mark the expected branch
 * direction of every "anything unusual?" test. */
#ifndef BRISK_COMPILER_H
#define BRISK_COMPILER_H

#include <stddef.h>
#include <stdint.h>

#define bk_likely(x)   __builtin_expect(!!(x), 1)
#define bk_unlikely(x) __builtin_expect(!!(x), 0)

#define BK_FAST_PATH   static inline __attribute__((always_inline))
#define BK_SLOW_PATH   __attribute__((noinline, cold))
#define BK_INTERNAL    __attribute__((visibility("hidden")))
#define BK_EXPORT      __attribute__((visibility("default")))
#define BK_NORETURN    __attribute__((noreturn))
#define BK_CACHELINE   64
#define BK_ALIGNED(n)  __attribute__((aligned(n)))

/* ThreadSanitizer annotations for synchronisation it cannot see (liburcu's
 * inline-assembly atomics) and for reads that are racy by design (statistics
 * that sample other threads' caches). */
#if defined(__SANITIZE_THREAD__)
#define BK_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define BK_TSAN 1
#endif
#endif
#ifdef BK_TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define bk_tsan_acquire(a) __tsan_acquire((void *)(a))
#define bk_tsan_release(a) __tsan_release((void *)(a))
#define BK_NO_TSAN __attribute__((no_sanitize("thread")))
#else
#define bk_tsan_acquire(a) ((void)0)
#define bk_tsan_release(a) ((void)0)
#define BK_NO_TSAN
#endif

#define bk_load_relaxed(p)     __atomic_load_n((p), __ATOMIC_RELAXED)
#define bk_store_relaxed(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define bk_load_acquire(p)     __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define bk_store_release(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define bk_fetch_add(p, v)     __atomic_fetch_add((p), (v), __ATOMIC_RELAXED)
#define bk_fetch_sub(p, v)     __atomic_fetch_sub((p), (v), __ATOMIC_RELAXED)

static inline int bk_is_pow2(size_t x) { return x && !(x & (x - 1)); }
static inline size_t bk_align_up(size_t x, size_t a) { return (x + a - 1) & ~(a - 1); }
/* Smallest k with 2^k >= x (x >= 1). */
static inline unsigned bk_log2_ceil(size_t x)
{
    return x <= 1 ? 0 : 64u - (unsigned)__builtin_clzl(x - 1);
}

#endif
