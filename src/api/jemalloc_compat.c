/* jemalloc's non-standard API, answered by brisk (libbrisk.so and
 * libbrisk.a only).
 *
 * Programs linked against libjemalloc (Debian's redis-server, redis-cli and
 * redis-benchmark import mallctl, malloc_stats_print and nallocx besides the
 * standard malloc family) keep libjemalloc.so.2 among their dependencies
 * when brisk is preloaded.  brisk's malloc, free, realloc, ... win the
 * symbol lookup, but a jemalloc-only entry point that brisk did not define
 * would still bind to jemalloc, which would then be handed pointers brisk
 * allocated (sallocx, rallocx, dallocx, ...) or answer for a heap the
 * program does not use (mallctl, malloc_stats_print).  So brisk defines the
 * whole jemalloc 5 API here, on top of the brisk_* entry points:
 *
 *   mallocx rallocx xallocx sallocx dallocx sdallocx nallocx
 *   mallctl mallctlnametomib mallctlbymib malloc_stats_print
 *
 * Flags follow jemalloc: bits 0-5 are lg(alignment) (0: no alignment
 * beyond malloc's), 0x40 is MALLOCX_ZERO; the tcache (bits 8-19) and arena
 * (bits 20-31) selectors are accepted and ignored.  A size of 0, which
 * jemalloc leaves undefined, is served as 1.
 *
 * mallctl knows: epoch (uint64_t, read/write: a write takes a new snapshot
 * of the statistics, as jemalloc's does), version (const char *),
 * stats.allocated, stats.active, stats.resident, stats.mapped,
 * stats.retained, stats.metadata (size_t, from brisk_stats: retained is
 * brisk's "released"), arenas.narenas (unsigned, 1), arena.<i>.purge and
 * arena.<i>.decay (i = 0, 1 = narenas, or 4096 = MALLCTL_ARENAS_ALL:
 * brisk_release_memory()).  Anything else is ENOENT (background_thread
 * included: brisk has no background thread).  Reads and writes are checked
 * as jemalloc checks them: a wrong *oldlenp is EINVAL (after copying what
 * fits), a write to a read-only name is EPERM. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE     /* fopencookie */
#endif
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "../../include/brisk.h"
#include "../core/bootstrap.h"
#include "../core/size_class.h"
#include "../os/compiler.h"

#ifdef BRISK_OVERRIDE

#define JE_EXPORT __attribute__((visibility("default"), used))

#define MALLOCX_LG_ALIGN_MASK 0x3f
#define MALLOCX_ZERO 0x40
#define MALLCTL_ARENAS_ALL 4096u

/* jemalloc: (1 << lg) & (SIZE_MAX - 1), so lg 0 means "no alignment". */
static size_t flag_align(int flags)
{
    return ((size_t)1 << (flags & MALLOCX_LG_ALIGN_MASK)) & ~(size_t)1;
}

static void zero_tail(void *p, size_t from)
{
    size_t usable = brisk_malloc_usable_size(p);
    if (usable > from)
        memset((char *)p + from, 0, usable - from);
}

/* size >= 1. */
static void *alloc(size_t size, size_t align, bool zero)
{
    void *p;
    if (align <= BK_QUANTUM)
        p = zero ? brisk_calloc(1, size) : brisk_malloc(size);
    else
        p = brisk_aligned_alloc(align, size);
    /* MALLOCX_ZERO: the whole allocation (sallocx bytes) reads as zero. */
    if (p && zero)
        zero_tail(p, align <= BK_QUANTUM ? size : 0);
    return p;
}

JE_EXPORT void *mallocx(size_t size, int flags)
{
    return alloc(size ? size : 1, flag_align(flags), flags & MALLOCX_ZERO);
}

JE_EXPORT void *rallocx(void *ptr, size_t size, int flags)
{
    size_t align = flag_align(flags);
    bool zero = flags & MALLOCX_ZERO;
    if (!ptr)
        return mallocx(size, flags);
    if (size == 0)
        size = 1;               /* never brisk_realloc(p, 0), which frees */
    size_t old = brisk_malloc_usable_size(ptr);
    void *q;
    if (align <= BK_QUANTUM) {
        q = brisk_realloc(ptr, size);
    } else if (((uintptr_t)ptr & (align - 1)) == 0 && size <= old && size > old / 2) {
        q = ptr;                /* aligned already, and not much too large */
    } else {
        q = alloc(size, align, false);
        if (!q)
            return NULL;        /* the old block is intact */
        memcpy(q, ptr, old < size ? old : size);
        brisk_free(ptr);
    }
    /* Growing with MALLOCX_ZERO: the bytes past the old real size are zero. */
    if (q && zero)
        zero_tail(q, old);
    return q;
}

/* brisk never grows a block in place beyond its real size: report that
 * size, which is less than `size` when the block could not grow. */
JE_EXPORT size_t xallocx(void *ptr, size_t size, size_t extra, int flags)
{
    (void)size;
    (void)extra;
    (void)flags;
    return brisk_malloc_usable_size(ptr);
}

JE_EXPORT size_t sallocx(const void *ptr, int flags)
{
    (void)flags;
    return brisk_malloc_usable_size((void *)ptr);
}

JE_EXPORT void dallocx(void *ptr, int flags)
{
    (void)flags;
    brisk_free(ptr);
}

JE_EXPORT void sdallocx(void *ptr, size_t size, int flags)
{
    (void)flags;
    brisk_free_sized(ptr, size);
}

/* The real size mallocx(size, flags) would give, i.e. what
 * malloc_usable_size would then report; 0 if the request cannot be met.
 * Plain small requests (the common case: Redis asks nallocx(n, 0) before
 * resizing a string) read the size-class table malloc itself uses; large
 * or over-aligned ones, rare, ask the allocator by allocating and freeing,
 * so the answer is exact whatever the page heap's rounding is. */
JE_EXPORT size_t nallocx(size_t size, int flags)
{
    size_t align = flag_align(flags);
    if (size > PTRDIFF_MAX || align > ((size_t)1 << 62))
        return 0;
    if (size == 0)
        size = 1;
    if (align <= BK_QUANTUM && size <= BK_SMALL_MAX) {
        bk_core_ensure();
        return bk_classes[bk_size_to_class(size)].size;
    }
    void *p = alloc(size, align, false);
    if (!p)
        return 0;
    size_t n = brisk_malloc_usable_size(p);
    brisk_free(p);
    return n;
}

/* ---- malloc_stats_print ----------------------------------------------------- */

struct cb_sink {
    void (*write_cb)(void *, const char *);
    void *opaque;
};

static ssize_t cb_write(void *cookie, const char *buf, size_t size)
{
    struct cb_sink *s = cookie;
    char chunk[512];
    size_t done = 0;
    while (done < size) {       /* the callback takes NUL-terminated text */
        size_t n = size - done < sizeof chunk - 1 ? size - done : sizeof chunk - 1;
        memcpy(chunk, buf + done, n);
        chunk[n] = '\0';
        s->write_cb(s->opaque, chunk);
        done += n;
    }
    return (ssize_t)size;
}

/* opts: "J" asks for JSON (as jemalloc's); the section letters are ignored. */
JE_EXPORT void malloc_stats_print(void (*write_cb)(void *, const char *), void *cbopaque,
                                  const char *opts)
{
    int json = opts && strchr(opts, 'J');
    if (!write_cb) {
        brisk_stats_print(stderr, json);
        return;
    }
    struct cb_sink sink = { write_cb, cbopaque };
    FILE *f = fopencookie(&sink, "w", (cookie_io_functions_t){ .write = cb_write });
    if (!f)
        return;
    brisk_stats_print(f, json);
    fclose(f);
}

/* ---- mallctl ------------------------------------------------------------------- */

/* The statistics snapshot read by stats.*: taken when "epoch" is written
 * (and on first use).  Fields are stored one by one with relaxed atomics:
 * no lock, so a fork can never leave one held. */
enum { ST_ALLOCATED, ST_ACTIVE, ST_RESIDENT, ST_MAPPED, ST_RETAINED, ST_METADATA, ST_COUNT };
static size_t snapshot[ST_COUNT];
static uint64_t epoch;          /* 0: no snapshot yet */

static void refresh(void)
{
    struct brisk_stats st;      /* ~5 KiB */
    brisk_stats(&st);
    __atomic_store_n(&snapshot[ST_ALLOCATED], st.allocated, __ATOMIC_RELAXED);
    __atomic_store_n(&snapshot[ST_ACTIVE], st.active, __ATOMIC_RELAXED);
    __atomic_store_n(&snapshot[ST_RESIDENT], st.resident, __ATOMIC_RELAXED);
    __atomic_store_n(&snapshot[ST_MAPPED], st.mapped, __ATOMIC_RELAXED);
    __atomic_store_n(&snapshot[ST_RETAINED], st.released, __ATOMIC_RELAXED);
    __atomic_store_n(&snapshot[ST_METADATA], st.metadata, __ATOMIC_RELAXED);
    __atomic_add_fetch(&epoch, 1, __ATOMIC_RELEASE);
}

/* jemalloc's READ: a length mismatch copies what fits and fails. */
static int ctl_read(void *oldp, size_t *oldlenp, const void *v, size_t len)
{
    if (!oldp || !oldlenp)
        return 0;
    if (*oldlenp != len) {
        size_t n = *oldlenp < len ? *oldlenp : len;
        memcpy(oldp, v, n);
        *oldlenp = n;
        return EINVAL;
    }
    memcpy(oldp, v, len);
    return 0;
}

static bool writing(const void *newp, size_t newlen)
{
    return newp != NULL || newlen != 0;
}

/* Handlers get the resolved MIB (for arena.<i>). */
typedef int ctl_fn(const size_t *mib, void *oldp, size_t *oldlenp, void *newp, size_t newlen);

static int ctl_epoch(const size_t *mib, void *oldp, size_t *oldlenp, void *newp, size_t newlen)
{
    (void)mib;
    if (writing(newp, newlen)) {
        if (!newp || newlen != sizeof(uint64_t))
            return EINVAL;
        refresh();
    }
    uint64_t e = __atomic_load_n(&epoch, __ATOMIC_ACQUIRE);
    return ctl_read(oldp, oldlenp, &e, sizeof e);
}

static int ctl_version(const size_t *mib, void *oldp, size_t *oldlenp, void *newp, size_t newlen)
{
    (void)mib;
#define BK_STR2(x) #x
#define BK_STR(x) BK_STR2(x)
    /* jemalloc's format (major.minor.patch-count-gHASH), so that parsers of
     * the version number get brisk's. */
    static const char *const version = BK_STR(BRISK_VERSION_MAJOR) "." BK_STR(BRISK_VERSION_MINOR) "." BK_STR(
        BRISK_VERSION_PATCH) "-0-brisk";
    if (writing(newp, newlen))
        return EPERM;
    return ctl_read(oldp, oldlenp, &version, sizeof version);
}

static int ctl_stat(unsigned which, void *oldp, size_t *oldlenp, void *newp, size_t newlen)
{
    if (writing(newp, newlen))
        return EPERM;
    if (__atomic_load_n(&epoch, __ATOMIC_ACQUIRE) == 0)
        refresh();
    size_t v = __atomic_load_n(&snapshot[which], __ATOMIC_RELAXED);
    return ctl_read(oldp, oldlenp, &v, sizeof v);
}

#define STAT_HANDLER(name, which)                                                              \
    static int ctl_stats_##name(const size_t *mib, void *oldp, size_t *oldlenp, void *newp,    \
                                size_t newlen)                                                 \
    {                                                                                          \
        (void)mib;                                                                             \
        return ctl_stat(which, oldp, oldlenp, newp, newlen);                                   \
    }
STAT_HANDLER(allocated, ST_ALLOCATED)
STAT_HANDLER(active, ST_ACTIVE)
STAT_HANDLER(resident, ST_RESIDENT)
STAT_HANDLER(mapped, ST_MAPPED)
STAT_HANDLER(retained, ST_RETAINED)
STAT_HANDLER(metadata, ST_METADATA)

static int ctl_narenas(const size_t *mib, void *oldp, size_t *oldlenp, void *newp, size_t newlen)
{
    (void)mib;
    if (writing(newp, newlen))
        return EPERM;
    unsigned n = 1;
    return ctl_read(oldp, oldlenp, &n, sizeof n);
}

/* arena.<i>.purge and arena.<i>.decay: brisk has one heap; return every
 * free page of it.  mib[1] is <i>. */
static int ctl_arena_purge(const size_t *mib, void *oldp, size_t *oldlenp, void *newp, size_t newlen)
{
    if (mib[1] > 1 && mib[1] != MALLCTL_ARENAS_ALL)
        return ENOENT;
    if (oldp || oldlenp || writing(newp, newlen))
        return EPERM;
    brisk_release_memory();
    return 0;
}

/* The name tree.  A node's children are named, or (`indexed`) one child
 * stands for any decimal component, whose value becomes that MIB entry. */
struct ctl_node {
    const char *name;
    ctl_fn *fn;                         /* leaves */
    const struct ctl_node *children;    /* inner nodes, terminated by a NULL name */
    bool indexed;
};

static const struct ctl_node stats_nodes[] = {
    { "allocated", ctl_stats_allocated, NULL, false },
    { "active", ctl_stats_active, NULL, false },
    { "resident", ctl_stats_resident, NULL, false },
    { "mapped", ctl_stats_mapped, NULL, false },
    { "retained", ctl_stats_retained, NULL, false },
    { "metadata", ctl_stats_metadata, NULL, false },
    { NULL, NULL, NULL, false },
};
static const struct ctl_node arenas_nodes[] = {
    { "narenas", ctl_narenas, NULL, false },
    { NULL, NULL, NULL, false },
};
static const struct ctl_node arena_i_nodes[] = {
    { "purge", ctl_arena_purge, NULL, false },
    { "decay", ctl_arena_purge, NULL, false },
    { NULL, NULL, NULL, false },
};
static const struct ctl_node arena_nodes[] = {
    { "<i>", NULL, arena_i_nodes, false },
    { NULL, NULL, NULL, false },
};
static const struct ctl_node root_nodes[] = {
    { "epoch", ctl_epoch, NULL, false },
    { "version", ctl_version, NULL, false },
    { "stats", NULL, stats_nodes, false },
    { "arenas", NULL, arenas_nodes, false },
    { "arena", NULL, arena_nodes, true },
    { NULL, NULL, NULL, false },
};
static const struct ctl_node root = { "", NULL, root_nodes, false };

#define CTL_MAX_DEPTH 4

/* Name to MIB: up to *depth components (a partial MIB is legitimate, as in
 * jemalloc); *depth becomes the number written.  ENOENT if no such name. */
static int name_to_mib(const char *name, size_t *mib, size_t *depth)
{
    const struct ctl_node *node = &root;
    size_t n = 0;
    const char *p = name;
    if (!name)
        return ENOENT;
    for (;;) {
        size_t len = strcspn(p, ".");
        if (len == 0 || !node->children)
            return ENOENT;
        size_t value;
        const struct ctl_node *next;
        if (node->indexed) {
            value = 0;
            for (size_t i = 0; i < len; i++) {
                if (p[i] < '0' || p[i] > '9' || value > (SIZE_MAX - 9) / 10)
                    return ENOENT;
                value = value * 10 + (size_t)(p[i] - '0');
            }
            next = &node->children[0];
        } else {
            size_t i = 0;
            while (node->children[i].name &&
                   (strlen(node->children[i].name) != len || memcmp(node->children[i].name, p, len)))
                i++;
            if (!node->children[i].name)
                return ENOENT;
            value = i;
            next = &node->children[i];
        }
        if (n < *depth)
            mib[n] = value;
        n++;
        node = next;
        p += len;
        if (*p == '\0')
            break;
        p++;                            /* the '.' */
    }
    if (!node->fn && n <= *depth)       /* the name stops at an inner node */
        return ENOENT;
    if (n < *depth)
        *depth = n;
    return 0;
}

/* MIB to handler: the MIB must lead exactly to a leaf. */
static ctl_fn *mib_to_fn(const size_t *mib, size_t miblen)
{
    const struct ctl_node *node = &root;
    if (!mib || miblen == 0 || miblen > CTL_MAX_DEPTH)
        return NULL;
    for (size_t k = 0; k < miblen; k++) {
        if (!node->children)
            return NULL;
        if (node->indexed) {
            node = &node->children[0];  /* the handler checks the index */
        } else {
            size_t i = 0;
            while (node->children[i].name && i < mib[k])
                i++;
            if (!node->children[i].name)
                return NULL;
            node = &node->children[i];
        }
    }
    return node->fn;
}

JE_EXPORT int mallctlnametomib(const char *name, size_t *mibp, size_t *miblenp)
{
    if (!mibp || !miblenp)
        return EINVAL;
    return name_to_mib(name, mibp, miblenp);
}

JE_EXPORT int mallctlbymib(const size_t *mib, size_t miblen, void *oldp, size_t *oldlenp,
                           void *newp, size_t newlen)
{
    ctl_fn *fn = mib_to_fn(mib, miblen);
    if (!fn)
        return ENOENT;
    size_t full[CTL_MAX_DEPTH] = { 0 };
    memcpy(full, mib, miblen * sizeof *mib);
    return fn(full, oldp, oldlenp, newp, newlen);
}

JE_EXPORT int mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen)
{
    size_t mib[CTL_MAX_DEPTH];
    size_t depth = CTL_MAX_DEPTH;
    int rc = name_to_mib(name, mib, &depth);
    if (rc)
        return rc;
    return mallctlbymib(mib, depth, oldp, oldlenp, newp, newlen);
}

#endif /* BRISK_OVERRIDE */
