/* jemalloc's non-standard API as libbrisk.so defines it
 * (src/api/jemalloc_compat.c): mallocx, rallocx, xallocx, sallocx,
 * dallocx, sdallocx, nallocx, mallctl, mallctlnametomib, mallctlbymib and
 * malloc_stats_print.  Links libbrisk.so (not jemalloc), so every call here
 * is brisk's; dladdr checks that. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* jemalloc.h's declarations and flags. */
void *mallocx(size_t size, int flags);
void *rallocx(void *ptr, size_t size, int flags);
size_t xallocx(void *ptr, size_t size, size_t extra, int flags);
size_t sallocx(const void *ptr, int flags);
void dallocx(void *ptr, int flags);
void sdallocx(void *ptr, size_t size, int flags);
size_t nallocx(size_t size, int flags);
int mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen);
int mallctlnametomib(const char *name, size_t *mibp, size_t *miblenp);
int mallctlbymib(const size_t *mib, size_t miblen, void *oldp, size_t *oldlenp, void *newp,
                 size_t newlen);
void malloc_stats_print(void (*write_cb)(void *, const char *), void *cbopaque, const char *opts);

#define MALLOCX_LG_ALIGN(la) ((int)(la))
#define MALLOCX_ZERO ((int)0x40)
#define MALLOCX_TCACHE_NONE ((int)(1 << 8))
#define MALLOCX_ARENA(a) ((int)(((unsigned)(a) + 1) << 20))

static int failures;
#define CHECK(cond)                                                                   \
    do {                                                                              \
        if (!(cond)) {                                                                \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);  \
            failures++;                                                               \
        }                                                                             \
    } while (0)

static void check_from_brisk(const char *name, void *fn)
{
    Dl_info info;
    CHECK(dladdr(fn, &info) != 0);
    if (!info.dli_fname || !strstr(info.dli_fname, "libbrisk")) {
        fprintf(stderr, "%s comes from %s, not libbrisk\n", name,
                info.dli_fname ? info.dli_fname : "?");
        failures++;
    }
}

static size_t test_sizes[] = {
    1, 2, 8, 15, 16, 17, 24, 31, 33, 48, 64, 100, 127, 128, 129, 144, 160, 200, 255, 256, 257,
    300, 500, 511, 512, 513, 1000, 1023, 1024, 1025, 2047, 2048, 3000, 4095, 4096, 4097, 5000,
    8191, 8192, 8193, 10000, 16384, 20000, 32768, 40000, 65535, 65536, 65537, 100000, 131072,
    200000, 262143, 262144, 262145, 300000, 524288, 1000000, 1048576, 3000000, 8388608,
    33554431, 33554432, 33554433, 40000000,
};
#define NSIZES (sizeof test_sizes / sizeof test_sizes[0])

static int all_bytes(const unsigned char *p, size_t n, unsigned char v)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != v)
            return 0;
    return 1;
}

/* nallocx must give exactly the real size mallocx then has, for every
 * size and alignment; sallocx and malloc_usable_size agree with it. */
static void test_sizes_and_alignment(void)
{
    for (size_t i = 0; i < NSIZES; i++) {
        size_t size = test_sizes[i];
        for (int lg = 0; lg <= 22; lg += (lg < 14 ? 1 : 4)) {
            if (size > (1u << 22) && lg > 0 && lg != 12)
                continue;       /* keep the huge cases few */
            int flags = MALLOCX_LG_ALIGN(lg);
            size_t align = (size_t)1 << lg;
            void *p = mallocx(size, flags);
            CHECK(p != NULL);
            if (!p)
                continue;
            size_t real = sallocx(p, 0);
            size_t predicted = nallocx(size, flags);
            if (predicted != real || real < size || malloc_usable_size(p) != real ||
                ((uintptr_t)p & (align - 1)) != 0) {
                fprintf(stderr, "size %zu lg_align %d: nallocx %zu, sallocx %zu, usable %zu, ptr %p\n",
                        size, lg, predicted, real, malloc_usable_size(p), p);
                failures++;
            }
            CHECK(xallocx(p, size, 0, flags) == real);
            memset(p, 0xa5, real);
            if (i % 2)
                dallocx(p, flags);
            else
                sdallocx(p, size, flags);
        }
    }
    /* Flags jemalloc's callers pass that brisk ignores. */
    void *p = mallocx(100, MALLOCX_TCACHE_NONE | MALLOCX_ARENA(0));
    CHECK(p != NULL && sallocx(p, 0) == nallocx(100, MALLOCX_TCACHE_NONE));
    free(p);                    /* free and dallocx take each other's blocks */
    p = malloc(1000);
    CHECK(sallocx(p, 0) == malloc_usable_size(p));
    dallocx(p, 0);
    /* Size 0 (undefined in jemalloc) is served as 1; impossible sizes give 0. */
    CHECK(nallocx(0, 0) == nallocx(1, 0));
    p = mallocx(0, 0);
    CHECK(p != NULL && sallocx(p, 0) == nallocx(1, 0));
    dallocx(p, 0);
    CHECK(nallocx((size_t)PTRDIFF_MAX + 1, 0) == 0);
    CHECK(nallocx(SIZE_MAX, 0) == 0);
    errno = 0;
    CHECK(mallocx((size_t)PTRDIFF_MAX + 1, 0) == NULL);
}

static void test_zero(void)
{
    static const size_t sizes[] = { 24, 1000, 70000, 300000, 2000000 };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        for (int lg = 0; lg <= 12; lg += 6) {
            /* Dirty blocks of this size first, so reuse would show. */
            void *dirty[8];
            for (int k = 0; k < 8; k++) {
                dirty[k] = mallocx(sizes[i], MALLOCX_LG_ALIGN(lg));
                memset(dirty[k], 0xee, sallocx(dirty[k], 0));
            }
            for (int k = 0; k < 8; k++)
                dallocx(dirty[k], 0);
            unsigned char *p = mallocx(sizes[i], MALLOCX_LG_ALIGN(lg) | MALLOCX_ZERO);
            CHECK(p != NULL);
            if (p) {
                CHECK(all_bytes(p, sallocx(p, 0), 0));
                dallocx(p, 0);
            }
        }
    }
}

static void test_rallocx(void)
{
    /* Growing and shrinking keeps the contents, across small, large and
     * huge blocks, with and without alignment. */
    for (int lg = 0; lg <= 16; lg += 8) {
        int flags = MALLOCX_LG_ALIGN(lg);
        size_t align = (size_t)1 << lg;
        unsigned char *p = mallocx(10, flags);
        memset(p, 1, 10);
        size_t have = 10;
        static const size_t steps[] = { 20, 200, 5000, 100000, 600000, 40000000, 300000, 700, 8 };
        for (size_t s = 0; s < sizeof steps / sizeof steps[0]; s++) {
            size_t want = steps[s];
            unsigned char *q = rallocx(p, want, flags);
            CHECK(q != NULL);
            if (!q)
                return;
            size_t keep = have < want ? have : want;
            CHECK(all_bytes(q, keep, (unsigned char)(s + 1)));
            CHECK(((uintptr_t)q & (align - 1)) == 0);
            CHECK(sallocx(q, 0) >= want);
            memset(q, (unsigned char)(s + 2), want);
            p = q;
            have = want;
        }
        dallocx(p, 0);
    }
    /* MALLOCX_ZERO: bytes past the old real size read as zero. */
    for (int round = 0; round < 2; round++) {
        static const size_t grow[] = { 40, 3000, 90000, 500000, 3000000 };
        unsigned char *p = mallocx(16, 0);
        memset(p, 7, 16);
        for (size_t g = 0; g < sizeof grow / sizeof grow[0]; g++) {
            size_t old_real = sallocx(p, 0);
            memset(p, 7, old_real);
            /* Dirty memory the new block may come from. */
            void *d = malloc(grow[g]);
            memset(d, 0xdd, malloc_usable_size(d));
            free(d);
            unsigned char *q = rallocx(p, grow[g], MALLOCX_ZERO | (round ? MALLOCX_LG_ALIGN(6) : 0));
            CHECK(q != NULL);
            size_t new_real = sallocx(q, 0);
            CHECK(all_bytes(q, old_real < grow[g] ? old_real : grow[g], 7));
            if (new_real > old_real)
                CHECK(all_bytes(q + old_real, new_real - old_real, 0));
            p = q;
        }
        dallocx(p, 0);
    }
    /* rallocx(NULL, ...) allocates, size 0 keeps a block (never frees). */
    void *p = rallocx(NULL, 100, 0);
    CHECK(p != NULL);
    p = rallocx(p, 0, 0);
    CHECK(p != NULL && sallocx(p, 0) >= 1);
    dallocx(p, 0);
    /* xallocx never moves; it reports the real size (less than asked when
     * the block cannot grow in place). */
    unsigned char *x = mallocx(100, 0);
    size_t real = sallocx(x, 0);
    CHECK(xallocx(x, 1 << 20, 0, 0) == real);
    CHECK(xallocx(x, 50, 10, 0) == real);
    dallocx(x, 0);
}

static int get_size(const char *name, size_t *v)
{
    size_t len = sizeof *v;
    return mallctl(name, v, &len, NULL, 0);
}

static void refresh(void)
{
    uint64_t e = 1;
    size_t len = sizeof e;
    CHECK(mallctl("epoch", &e, &len, &e, sizeof e) == 0);
}

static void test_mallctl(void)
{
    uint64_t e0 = 0, e1 = 0, one = 1;
    size_t len = sizeof e0;
    CHECK(mallctl("epoch", &e0, &len, &one, sizeof one) == 0);
    len = sizeof e1;
    CHECK(mallctl("epoch", &e1, &len, &one, sizeof one) == 0);
    CHECK(e1 > e0);
    CHECK(mallctl("epoch", NULL, NULL, &one, 4) == EINVAL);     /* bad newlen */

    const char *version = NULL;
    len = sizeof version;
    CHECK(mallctl("version", &version, &len, NULL, 0) == 0);
    CHECK(version && strstr(version, "brisk"));

    unsigned narenas = 0;
    len = sizeof narenas;
    CHECK(mallctl("arenas.narenas", &narenas, &len, NULL, 0) == 0 && narenas == 1);

    /* Statistics follow the heap, between epochs. */
    size_t a0, a1, active, resident, mapped, retained, metadata;
    refresh();
    CHECK(get_size("stats.allocated", &a0) == 0);
    enum { N = 64 };
    void *blocks[N];
    for (int i = 0; i < N; i++)
        blocks[i] = malloc(256 * 1024 + 1);        /* 16 MiB and more, large blocks */
    CHECK(get_size("stats.allocated", &a1) == 0 && a1 == a0);   /* same epoch */
    refresh();
    CHECK(get_size("stats.allocated", &a1) == 0);
    CHECK(get_size("stats.active", &active) == 0);
    CHECK(get_size("stats.resident", &resident) == 0);
    CHECK(get_size("stats.mapped", &mapped) == 0);
    CHECK(get_size("stats.retained", &retained) == 0);
    CHECK(get_size("stats.metadata", &metadata) == 0);
    if (!(a1 >= a0 + (size_t)N * 256 * 1024 && active >= a1 && mapped >= active && resident > 0 &&
          metadata > 0)) {
        fprintf(stderr, "stats: allocated %zu -> %zu, active %zu, resident %zu, mapped %zu, retained %zu, metadata %zu\n",
                a0, a1, active, resident, mapped, retained, metadata);
        failures++;
    }
    for (int i = 0; i < N; i++)
        free(blocks[i]);
    refresh();
    size_t a2;
    CHECK(get_size("stats.allocated", &a2) == 0 && a2 + (size_t)N * 256 * 1024 <= a1);

    /* Purging: arena.<i>.purge for i = 0, narenas and MALLCTL_ARENAS_ALL. */
    CHECK(mallctl("arena.0.purge", NULL, NULL, NULL, 0) == 0);
    CHECK(mallctl("arena.1.purge", NULL, NULL, NULL, 0) == 0);
    CHECK(mallctl("arena.4096.purge", NULL, NULL, NULL, 0) == 0);
    CHECK(mallctl("arena.0.decay", NULL, NULL, NULL, 0) == 0);
    CHECK(mallctl("arena.2.purge", NULL, NULL, NULL, 0) == ENOENT);
    size_t dummy = 0;
    len = sizeof dummy;
    CHECK(mallctl("arena.0.purge", &dummy, &len, NULL, 0) == EPERM);

    /* Errors as jemalloc reports them. */
    CHECK(mallctl("background_thread", NULL, NULL, NULL, 0) == ENOENT);
    CHECK(mallctl("no.such.name", NULL, NULL, NULL, 0) == ENOENT);
    CHECK(mallctl("stats", NULL, NULL, NULL, 0) == ENOENT);
    CHECK(mallctl("stats.allocated.more", NULL, NULL, NULL, 0) == ENOENT);
    CHECK(mallctl("arena.x.purge", NULL, NULL, NULL, 0) == ENOENT);
    CHECK(mallctl("", NULL, NULL, NULL, 0) == ENOENT);
    CHECK(mallctl("stats.", NULL, NULL, NULL, 0) == ENOENT);
    size_t v = 123;
    CHECK(mallctl("stats.allocated", NULL, NULL, &v, sizeof v) == EPERM);
    uint32_t small = 0;
    len = sizeof small;
    CHECK(mallctl("stats.allocated", &small, &len, NULL, 0) == EINVAL && len == sizeof small);

    /* The MIB interface, as programs use it: look a name up once, patch the
     * index, query many times. */
    size_t mib[4], miblen = 4;
    CHECK(mallctlnametomib("stats.active", mib, &miblen) == 0 && miblen == 2);
    size_t act2 = 0;
    len = sizeof act2;
    CHECK(mallctlbymib(mib, miblen, &act2, &len, NULL, 0) == 0 && act2 > 0);
    miblen = 4;
    CHECK(mallctlnametomib("arena.0.purge", mib, &miblen) == 0 && miblen == 3 && mib[1] == 0);
    mib[1] = 4096;
    CHECK(mallctlbymib(mib, miblen, NULL, NULL, NULL, 0) == 0);
    mib[1] = 7;
    CHECK(mallctlbymib(mib, miblen, NULL, NULL, NULL, 0) == ENOENT);
    miblen = 1;                 /* a partial MIB */
    CHECK(mallctlnametomib("stats.allocated", mib, &miblen) == 0 && miblen == 1);
    CHECK(mallctlbymib(mib, 1, NULL, NULL, NULL, 0) == ENOENT);
    miblen = 4;
    CHECK(mallctlnametomib("nothing", mib, &miblen) == ENOENT);
    size_t bad[2] = { 99, 0 };
    CHECK(mallctlbymib(bad, 2, NULL, NULL, NULL, 0) == ENOENT);
}

struct text {
    char buf[1 << 16];
    size_t len;
    int calls;
};

static void collect(void *opaque, const char *s)
{
    struct text *t = opaque;
    size_t n = strlen(s);
    if (t->len + n < sizeof t->buf) {
        memcpy(t->buf + t->len, s, n);
        t->len += n;
        t->buf[t->len] = '\0';
    }
    t->calls++;
}

static void test_stats_print(void)
{
    static struct text t;
    malloc_stats_print(collect, &t, NULL);
    CHECK(t.calls > 0 && strstr(t.buf, "brisk"));
    memset(&t, 0, sizeof t);
    malloc_stats_print(collect, &t, "J");
    CHECK(t.calls > 0 && t.buf[0] == '{' && strstr(t.buf, "\"allocated\""));
}

int main(void)
{
    check_from_brisk("mallocx", (void *)mallocx);
    check_from_brisk("rallocx", (void *)rallocx);
    check_from_brisk("xallocx", (void *)xallocx);
    check_from_brisk("sallocx", (void *)sallocx);
    check_from_brisk("dallocx", (void *)dallocx);
    check_from_brisk("sdallocx", (void *)sdallocx);
    check_from_brisk("nallocx", (void *)nallocx);
    check_from_brisk("mallctl", (void *)mallctl);
    check_from_brisk("mallctlnametomib", (void *)mallctlnametomib);
    check_from_brisk("mallctlbymib", (void *)mallctlbymib);
    check_from_brisk("malloc_stats_print", (void *)malloc_stats_print);
    check_from_brisk("malloc", (void *)malloc);

    test_sizes_and_alignment();
    test_zero();
    test_rallocx();
    test_mallctl();
    test_stats_print();
    if (failures) {
        fprintf(stderr, "test_jemalloc_compat: %d failure(s)\n", failures);
        return 1;
    }
    printf("test_jemalloc_compat: OK\n");
    return 0;
}
