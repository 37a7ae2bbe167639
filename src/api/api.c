/* Entry points: the malloc family, built on the thread cache.
 *
 * Every function here is exported under its brisk_ name.  When compiled
 * with BRISK_OVERRIDE (libbrisk.so and libbrisk.a), the same functions are
 * also exported under the standard names and glibc's internal aliases, so
 * that nothing, not even a static link, pulls in glibc's malloc.o.  Without
 * it (the brisk_core library the tests and sanitizer builds link), only the
 * prefixed names exist and the process keeps its own malloc. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "../../include/brisk.h"
#include "../core/error.h"
#include "../core/large_alloc.h"
#include "../core/central_list.h"
#include "../core/options.h"
#include "../core/stats.h"
#include "../page_heap/page_heap.h"
#include "../thread_cache/thread_cache.h"
#include "internal_api.h"

#ifdef BRISK_OVERRIDE
#define BK_ALIAS(target) __attribute__((alias(#target), visibility("default"), used))
#endif

#define SYSTEM_PAGE 4096u

/* ---- validation ---------------------------------------------------------- */

/* The span of a live block the program passes back, or a one-line report
 * and abort if brisk never returned it or it is free already. */
static struct bk_span *owned_span(void *ptr, const char *call)
{
    uintptr_t a = (uintptr_t)ptr;
    struct bk_span *s = bk_pm_span(a);
    if (!s || (s->kind == BK_SPAN_SMALL ? !bk_central_owns(s, a) : a != s->start))
        bk_fatal_pointer(call, "invalid pointer", ptr);
    if (s->kind == BK_SPAN_SMALL && bk_has_free_mark(ptr))
        bk_fatal_pointer(call, "pointer to a freed block", ptr);
    return s;
}

static size_t usable_size(const struct bk_span *s)
{
    return s->kind == BK_SPAN_SMALL ? bk_classes[s->cls].size : bk_large_usable(s);
}

/* ---- malloc, free, calloc, realloc --------------------------------------- */

BK_EXPORT void *brisk_malloc(size_t size)
{
    return bk_tc_malloc(size);
}

BK_EXPORT void brisk_free(void *ptr)
{
    bk_tc_free(ptr);
}

BK_EXPORT void *brisk_calloc(size_t nmemb, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(nmemb, size, &total) || total > PTRDIFF_MAX) {
        errno = ENOMEM;
        return NULL;
    }
    if (total <= BK_SMALL_MAX) {
        void *p = bk_tc_malloc(total);
        return p ? memset(p, 0, total) : NULL;
    }
    bk_core_ensure();
    void *p = bk_large_alloc(total, 0, true);
    if (!p)
        errno = ENOMEM;
    return p;
}

/* Can the block keep serving a request of `size` bytes where it is? */
static bool fits_in_place(struct bk_span *s, size_t size)
{
    if (s->kind == BK_SPAN_SMALL)
        return size <= BK_SMALL_MAX && bk_size_to_class(size ? size : 1) == s->cls;
    return size > BK_SMALL_MAX && size >= bk_large_usable(s) / 2 &&
           bk_large_resize_in_place(s, size);
}

/* A small block the window vouches for, as free()'s fast path would
 * (bk_central_live_class): it stays where it is if the new size has its
 * class, else moves.  size > 0; a size past PTRDIFF_MAX fails in malloc. */
static void *realloc_small(void *ptr, unsigned cls, size_t size)
{
    if (size <= BK_SMALL_MAX && bk_size_to_class(size) == cls)
        return ptr;
    void *q = bk_tc_malloc(size);
    if (!q)
        return NULL;            /* errno is ENOMEM; the old block is intact */
    size_t old = bk_classes[cls].size;
    memcpy(q, ptr, old < size ? old : size);
    bk_tc_free(ptr);
    return q;
}

BK_EXPORT void *brisk_realloc(void *ptr, size_t size)
{
    if (!ptr)
        return bk_tc_malloc(size);
    if (size == 0) {            /* glibc: realloc(p, 0) frees p, returns NULL */
        bk_tc_free(ptr);
        return NULL;
    }
    unsigned cls = bk_central_live_class(ptr);
    if (bk_likely(cls != 0))
        return realloc_small(ptr, cls, size);
    struct bk_span *s = owned_span(ptr, "realloc");
    if (size > PTRDIFF_MAX) {
        errno = ENOMEM;
        return NULL;
    }
    if (fits_in_place(s, size))
        return ptr;
    void *grown = s->kind != BK_SPAN_SMALL && size > BK_SMALL_MAX ? bk_large_grow(s, size) : NULL;
    if (grown)
        return grown;
    size_t old = usable_size(s);
    void *q = bk_tc_malloc(size);
    if (!q)
        return NULL;            /* errno is ENOMEM; the old block is intact */
    memcpy(q, ptr, old < size ? old : size);
    bk_tc_free(ptr);
    return q;
}

BK_EXPORT void *brisk_reallocarray(void *ptr, size_t nmemb, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(nmemb, size, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    return brisk_realloc(ptr, total);
}

/* ---- aligned allocation -------------------------------------------------- */

/* align: a power of two (anything else fails with EINVAL). */
static void *aligned(size_t align, size_t size)
{
    if (!bk_is_pow2(align)) {
        errno = EINVAL;
        return NULL;
    }
    if (align <= BK_QUANTUM)
        return bk_tc_malloc(size);
    if (size > PTRDIFF_MAX || align > ((size_t)1 << 62)) {
        errno = ENOMEM;
        return NULL;
    }
    if (size == 0)
        size = 1;
    if (size <= BK_SMALL_MAX && align <= BK_SMALL_MAX) {
        /* The first class at least `size` whose objects are multiples of
         * `align`: spans are naturally aligned powers of two at least as
         * large as their objects, so every object is aligned. */
        bk_tc_ensure_init();
        unsigned cls = bk_size_to_class(size);
        while (bk_classes[cls].size % align)
            cls++;
        return bk_tc_malloc_class(cls);
    }
    bk_core_ensure();
    void *p = bk_large_alloc(size, align, false);
    if (!p)
        errno = ENOMEM;
    return p;
}

static bool bad_alignment(const char *call, size_t align, bool need_word_multiple)
{
    if (bk_is_pow2(align) && (!need_word_multiple || align % sizeof(void *) == 0))
        return false;
    bk_warn("%s(): invalid alignment %zu (not a power of two%s)", call, align,
            need_word_multiple ? " multiple of sizeof(void *)" : "");
    return true;
}

BK_EXPORT int brisk_posix_memalign(void **out, size_t alignment, size_t size)
{
    if (bad_alignment("posix_memalign", alignment, true))
        return EINVAL;
    int saved = errno;
    void *p = aligned(alignment, size);
    errno = saved;
    if (!p)
        return ENOMEM;
    *out = p;
    return 0;
}

BK_EXPORT void *brisk_aligned_alloc(size_t alignment, size_t size)
{
    if (bad_alignment("aligned_alloc", alignment, false)) {
        errno = EINVAL;
        return NULL;
    }
    return aligned(alignment, size);
}

/* glibc's memalign rounds an alignment that is not a power of two up. */
BK_EXPORT void *brisk_memalign(size_t alignment, size_t size)
{
    if (alignment > ((size_t)1 << 63)) {
        errno = EINVAL;
        return NULL;
    }
    if (!bk_is_pow2(alignment))
        alignment = alignment <= 1 ? 1 : (size_t)1 << bk_log2_ceil(alignment);
    return aligned(alignment, size);
}

BK_EXPORT void *brisk_valloc(size_t size)
{
    return aligned(SYSTEM_PAGE, size);
}

BK_EXPORT void *brisk_pvalloc(size_t size)
{
    if (size > PTRDIFF_MAX) {
        errno = ENOMEM;
        return NULL;
    }
    size_t rounded = size ? bk_align_up(size, SYSTEM_PAGE) : SYSTEM_PAGE;
    return aligned(SYSTEM_PAGE, rounded);
}

/* ---- sizes and sized frees -------------------------------------------------- */

/* Programs that count their memory call this after every malloc and before
 * every free (Redis's zmalloc does): a small block is answered from the
 * window, as free() validates it, not through the radix tree (Redis spent
 * more instructions here than in malloc and free together). */
BK_EXPORT size_t brisk_malloc_usable_size(void *ptr)
{
    unsigned cls = bk_central_live_class(ptr);
    if (bk_likely(cls != 0))
        return bk_classes[cls].size;
    return ptr ? usable_size(owned_span(ptr, "malloc_usable_size")) : 0;
}

BK_EXPORT void brisk_free_sized(void *ptr, size_t size)
{
    (void)size;
    bk_tc_free(ptr);
}

BK_EXPORT void brisk_free_aligned_sized(void *ptr, size_t alignment, size_t size)
{
    (void)alignment;
    (void)size;
    bk_tc_free(ptr);
}

/* ---- memory return, statistics, glibc's malloc introspection ------------- */

BK_EXPORT size_t brisk_release_memory(void)
{
    bk_tc_ensure_init();
    return bk_tc_release_memory(false);
}

BK_EXPORT void brisk_stats(struct brisk_stats *out)
{
    bk_tc_ensure_init();
    bk_core_stats(out);
    bk_tc_stats_add(out);
    bk_stats_finish(out);
}

BK_EXPORT void brisk_stats_print(FILE *out, int json)
{
    struct brisk_stats st;          /* ~5 KiB */
    brisk_stats(&st);
    bk_stats_write(out ? out : stderr, json, &st);
}

BK_EXPORT int brisk_malloc_trim(size_t pad)
{
    (void)pad;
    return brisk_release_memory() > 0;
}

BK_EXPORT struct mallinfo2 brisk_mallinfo2(void)
{
    struct brisk_stats st;
    brisk_stats(&st);
    struct mallinfo2 mi = { 0 };
    mi.arena = st.mapped;
    mi.uordblks = st.allocated;
    mi.fordblks = st.mapped > st.allocated ? st.mapped - st.allocated : 0;
    return mi;
}

BK_EXPORT struct mallinfo brisk_mallinfo(void)
{
    struct mallinfo2 m2 = brisk_mallinfo2();
    struct mallinfo mi = { 0 };
    mi.arena = (int)m2.arena;
    mi.uordblks = (int)m2.uordblks;
    mi.fordblks = (int)m2.fordblks;
    return mi;
}

BK_EXPORT void brisk_malloc_stats(void)
{
    bk_tc_ensure_init();
    brisk_stats_print(stderr, (int)bk_opt(BK_OPT_stats_format));
}

/* glibc's XML report, from brisk's statistics. */
BK_EXPORT int brisk_malloc_info(int options, FILE *fp)
{
    if (options != 0 || !fp) {
        errno = EINVAL;
        return -1;
    }
    struct brisk_stats st;
    brisk_stats(&st);
    fprintf(fp,
            "<malloc version=\"brisk-1\">\n"
            "<total type=\"allocated\" size=\"%zu\"/>\n"
            "<total type=\"active\" size=\"%zu\"/>\n"
            "<total type=\"mapped\" size=\"%zu\"/>\n"
            "<total type=\"released\" size=\"%zu\"/>\n"
            "<system type=\"current\" size=\"%zu\"/>\n"
            "</malloc>\n",
            st.allocated, st.active, st.mapped, st.released, st.resident);
    return 0;
}

/* Every glibc tunable is accepted and ignored: brisk's own configuration is
 * BRISK_CONF. */
BK_EXPORT int brisk_mallopt(int param, int value)
{
    (void)param;
    (void)value;
    return 1;
}

/* Start-up: create the thread-exit key and fork handlers as soon as the
 * library loads (a malloc arriving earlier initialises lazily), and print
 * statistics at exit when asked to. */
__attribute__((constructor)) static void brisk_load(void)
{
    bk_tc_ensure_init();
}

__attribute__((destructor)) static void brisk_unload(void)
{
    if (bk_core_ready && bk_opt(BK_OPT_stats_print))
        brisk_stats_print(stderr, (int)bk_opt(BK_OPT_stats_format));
}

/* ---- hidden entry points for the C++ operators ------------------------------ */

BK_INTERNAL void *bk_api_malloc(size_t size) __attribute__((alias("brisk_malloc")));
BK_INTERNAL void bk_api_free(void *ptr) __attribute__((alias("brisk_free")));
BK_INTERNAL void *bk_api_aligned(size_t align, size_t size)
{
    return aligned(align, size);
}

/* ---- the standard names -------------------------------------------------------- */

#ifdef BRISK_OVERRIDE
void *malloc(size_t) BK_ALIAS(brisk_malloc);
void free(void *) BK_ALIAS(brisk_free);
void *calloc(size_t, size_t) BK_ALIAS(brisk_calloc);
void *realloc(void *, size_t) BK_ALIAS(brisk_realloc);
void *reallocarray(void *, size_t, size_t) BK_ALIAS(brisk_reallocarray);
int posix_memalign(void **, size_t, size_t) BK_ALIAS(brisk_posix_memalign);
void *aligned_alloc(size_t, size_t) BK_ALIAS(brisk_aligned_alloc);
void *memalign(size_t, size_t) BK_ALIAS(brisk_memalign);
void *valloc(size_t) BK_ALIAS(brisk_valloc);
void *pvalloc(size_t) BK_ALIAS(brisk_pvalloc);
size_t malloc_usable_size(void *) BK_ALIAS(brisk_malloc_usable_size);
void free_sized(void *, size_t) BK_ALIAS(brisk_free_sized);
void free_aligned_sized(void *, size_t, size_t) BK_ALIAS(brisk_free_aligned_sized);
int malloc_trim(size_t) BK_ALIAS(brisk_malloc_trim);
struct mallinfo2 mallinfo2(void) BK_ALIAS(brisk_mallinfo2);
struct mallinfo mallinfo(void) BK_ALIAS(brisk_mallinfo);
void malloc_stats(void) BK_ALIAS(brisk_malloc_stats);
int mallopt(int, int) BK_ALIAS(brisk_mallopt);
int malloc_info(int, FILE *) BK_ALIAS(brisk_malloc_info);
void cfree(void *) BK_ALIAS(brisk_free);
void *__libc_malloc(size_t) BK_ALIAS(brisk_malloc);
void __libc_free(void *) BK_ALIAS(brisk_free);
void *__libc_calloc(size_t, size_t) BK_ALIAS(brisk_calloc);
void *__libc_realloc(void *, size_t) BK_ALIAS(brisk_realloc);
void *__libc_memalign(size_t, size_t) BK_ALIAS(brisk_memalign);
void *__libc_valloc(size_t) BK_ALIAS(brisk_valloc);
void *__libc_pvalloc(size_t) BK_ALIAS(brisk_pvalloc);
int __posix_memalign(void **, size_t, size_t) BK_ALIAS(brisk_posix_memalign);
#endif
