/* Conformance of every brisk_* entry point with the glibc semantics of the
 * function it replaces. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include <sys/mman.h>

#include "api/internal_api.h"
#include "core/central_list.h"
#include "core/options.h"
#include "core/size_class.h"
#include "page_heap/meta.h"
#include "page_heap/page_heap.h"
#include "page_heap/page_map.h"
#include "brisk.h"
#include "check.h"

#define KIB ((size_t)1 << 10)
#define MIB ((size_t)1 << 20)
#define GIB ((size_t)1 << 30)

/* ---- helpers ------------------------------------------------------------ */

/* A pattern that depends on the position and a seed, so copies to the
 * wrong offset or from the wrong block are caught.  Byte i is byte i % 8 of
 * word i / 8, so any prefix of a filled block verifies (blocks are 16-byte
 * aligned, so whole words are written and compared directly). */
static uint64_t pat_word(size_t i, unsigned seed)
{
    return (i + 1) * 0x9e3779b97f4a7c15ull ^ ((uint64_t)seed << 56) ^ seed;
}

static unsigned char pat_byte(size_t i, unsigned seed)
{
    return (unsigned char)(pat_word(i / 8, seed) >> (8 * (i % 8)));
}

static void fill(void *p, size_t n, unsigned seed)
{
    uint64_t *w = p;
    size_t words = n / 8;
    for (size_t i = 0; i < words; i++)
        w[i] = pat_word(i, seed);
    for (size_t i = words * 8; i < n; i++)
        ((unsigned char *)p)[i] = pat_byte(i, seed);
}

/* Offset of the first byte of [0, n) that differs from fill(seed), or n. */
static size_t verify(const void *p, size_t n, unsigned seed)
{
    const uint64_t *w = p;
    size_t words = n / 8;
    for (size_t i = 0; i < words; i++)
        if (w[i] != pat_word(i, seed))
            return i * 8;
    for (size_t i = words * 8; i < n; i++)
        if (((const unsigned char *)p)[i] != pat_byte(i, seed))
            return i;
    return n;
}

static int all_zero(const void *p, size_t n)
{
    const unsigned char *c = p;
    size_t i = 0;
    for (; i < n && ((uintptr_t)(c + i) & 7); i++)
        if (c[i])
            return 0;
    for (; i + 8 <= n; i += 8)
        if (*(const uint64_t *)(c + i))
            return 0;
    for (; i < n; i++)
        if (c[i])
            return 0;
    return 1;
}

/* brisk warns on stderr about invalid alignments; keep the test's output
 * readable by sending fd 2 to /dev/null around such calls. */
static int saved_stderr = -1;

static void quiet(void)
{
    fflush(stderr);
    saved_stderr = dup(2);
    int fd = open("/dev/null", O_WRONLY);
    if (fd >= 0) {
        dup2(fd, 2);
        close(fd);
    }
}

static void loud(void)
{
    if (saved_stderr >= 0) {
        dup2(saved_stderr, 2);
        close(saved_stderr);
        saved_stderr = -1;
    }
}

static size_t allocated_now(void)
{
    static struct brisk_stats st;
    brisk_stats(&st);
    return st.allocated;
}

/* A spread of sizes from 0 to 64 MiB: every size to 1 KiB, then steps
 * around each power of two and each class boundary region. */
static size_t sizes[4096];
static unsigned nsizes;

static void make_sizes(void)
{
    for (size_t s = 0; s <= 1024; s++)
        sizes[nsizes++] = s;
    for (size_t p = 2 * KIB; p <= 64 * MIB; p *= 2) {
        const size_t d[] = { p / 8, p / 16, 1, 0 };
        for (unsigned i = 0; i < 4; i++) {
            sizes[nsizes++] = p - d[i];
            if (d[i])
                sizes[nsizes++] = p + d[i];
        }
        sizes[nsizes++] = p + p / 2 + 8;
    }
}

/* ---- malloc, usable size, free -------------------------------------------- */

static void test_malloc_alignment(void)
{
    static void *keep[64];
    for (unsigned i = 0; i < nsizes; i++) {
        size_t n = sizes[i];
        unsigned char *p = brisk_malloc(n);
        CHECK_LIMITED(p != NULL, "malloc(%zu) failed", n);
        if (!p)
            continue;
        CHECK_LIMITED((uintptr_t)p % 16 == 0, "malloc(%zu) = %p not 16-byte aligned", n,
                      (void *)p);
        size_t u = brisk_malloc_usable_size(p);
        CHECK_LIMITED(u >= n, "malloc(%zu): usable size %zu", n, u);
        if (n <= 2 * MIB)
            fill(p, u, (unsigned)i);    /* the whole usable size is writable */
        else
            p[u - 1] = 1, p[0] = 2;
        /* keep a few alive so later sizes do not just reuse one block */
        unsigned slot = i % 64;
        if (keep[slot]) {
            size_t ku = brisk_malloc_usable_size(keep[slot]);
            unsigned ks = (unsigned)(i - 64);
            if (ku <= 2 * MIB)
                CHECK_LIMITED(verify(keep[slot], ku, ks) == ku, "block of size %zu damaged",
                              sizes[ks]);
            brisk_free(keep[slot]);
        }
        keep[slot] = p;
    }
    for (unsigned i = 0; i < 64; i++) {
        brisk_free(keep[i]);
        keep[i] = NULL;
    }
}

static int cmp_ptr(const void *a, const void *b)
{
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
    return x < y ? -1 : x > y;
}

/* malloc_usable_size answers small blocks from the page map's window (the
 * free() fast path's test) and the rest from their span: both must give
 * the span's answer, for plain and aligned blocks of every small class; and
 * the window must know every small block inside it (else the test above
 * would pass on the slow path alone).  realloc to a size of the same class
 * keeps the block. */
static void test_usable_size_paths(void)
{
    for (unsigned i = 0; i < nsizes; i++) {
        size_t n = sizes[i];
        if (n > BK_SMALL_MAX)
            continue;
        for (size_t align = 16; align <= 4096; align *= 4) {
            void *p = align == 16 ? brisk_malloc(n) : brisk_aligned_alloc(align, n);
            REQUIRE(p != NULL);
            const struct bk_span *s = bk_pm_span((uintptr_t)p);
            REQUIRE(s != NULL);
            size_t got = brisk_malloc_usable_size(p);
            CHECK_LIMITED(got >= n, "usable size %zu < %zu", got, n);
            if (s->kind == BK_SPAN_SMALL) {
                size_t want = bk_classes[s->cls].size;
                CHECK_LIMITED(got == want, "usable size of a %zu-byte block (align %zu): "
                              "%zu, its class holds %zu", n, align, got, want);
                CHECK_LIMITED(bk_pm_window_index((uintptr_t)p) >= BK_PM_WINDOW_SLOTS ||
                                  bk_central_live_class(p) == s->cls,
                              "the window says class %u for a block of class %u",
                              bk_central_live_class(p), s->cls);
                CHECK_LIMITED(brisk_realloc(p, want) == p, "realloc to the class size moved "
                              "a %zu-byte block (align %zu)", n, align);
            }
            brisk_free(p);
        }
    }
}

static void test_malloc_zero(void)
{
    enum { N = 2000 };
    static void *p[N], *s[N];
    for (unsigned i = 0; i < N; i++) {
        p[i] = brisk_malloc(0);
        CHECK_LIMITED(p[i] != NULL, "malloc(0) returned NULL");
        CHECK_LIMITED((uintptr_t)p[i] % 16 == 0, "malloc(0) misaligned");
        s[i] = p[i];
    }
    qsort(s, N, sizeof(void *), cmp_ptr);
    for (unsigned i = 1; i < N; i++)
        CHECK_LIMITED(s[i] != s[i - 1], "malloc(0) returned %p twice", s[i]);
    for (unsigned i = 0; i < N; i++)
        brisk_free(p[i]);
}

static void test_free_errno(void)
{
    brisk_free(NULL);
    errno = 1234;
    brisk_free(NULL);
    CHECK(errno == 1234, "free(NULL) changed errno to %d", errno);
    const size_t n[] = { 1, 100, 5000, 300 * KIB, 3 * MIB, 20 * MIB };
    for (unsigned i = 0; i < sizeof n / sizeof n[0]; i++) {
        void *p = brisk_malloc(n[i]);
        REQUIRE(p != NULL);
        memset(p, 1, n[i]);
        errno = 1234;
        brisk_free(p);
        CHECK(errno == 1234, "free of a %zu-byte block set errno to %d", n[i], errno);
        p = brisk_malloc(n[i]);
        errno = 1234;
        brisk_free_sized(p, n[i]);
        CHECK(errno == 1234, "free_sized of %zu bytes set errno to %d", n[i], errno);
        p = brisk_aligned_alloc(4096, n[i]);
        errno = 1234;
        brisk_free_aligned_sized(p, 4096, n[i]);
        CHECK(errno == 1234, "free_aligned_sized of %zu bytes set errno to %d", n[i], errno);
    }
    /* the sized frees really free */
    size_t base = allocated_now();
    void *a = brisk_malloc(3000), *b = brisk_memalign(256, 3000), *c = brisk_malloc(5 * MIB);
    void *d = brisk_aligned_alloc(MIB, 100);
    CHECK(allocated_now() >= base + 3000 + 3000 + 5 * MIB + 100, "sized blocks not counted");
    brisk_free_sized(a, 3000);
    brisk_free_aligned_sized(b, 256, 3000);
    brisk_free_sized(c, 5 * MIB);
    brisk_free_aligned_sized(d, MIB, 100);
    CHECK(allocated_now() == base, "after the sized frees allocated %zu, before %zu",
          allocated_now(), base);
    brisk_free_sized(NULL, 0);
    brisk_free_aligned_sized(NULL, 64, 0);
    /* a free that returns a whole span (and releases pages) */
    static void *many[4096];
    for (unsigned i = 0; i < 4096; i++)
        many[i] = brisk_malloc(2048);
    errno = 1234;
    for (unsigned i = 0; i < 4096; i++)
        brisk_free(many[i]);
    brisk_release_memory();
    CHECK(errno == 1234, "freeing 4096 blocks + release set errno to %d", errno);
}

/* ---- calloc ---------------------------------------------------------------- */

static void test_calloc(void)
{
    /* dirty memory comes back zeroed */
    const size_t n[] = { 1, 8, 16, 24, 100, 128, 500, 1000, 4096, 10000, 65536,
                         200 * KIB, 256 * KIB, 256 * KIB + 1, 300 * KIB, MIB, 4 * MIB + 3,
                         17 * MIB };
    enum { ROUNDS = 40 };
    static void *b[ROUNDS];
    for (unsigned i = 0; i < sizeof n / sizeof n[0]; i++) {
        unsigned rounds = n[i] > MIB ? 4 : ROUNDS;
        for (unsigned r = 0; r < rounds; r++) {
            b[r] = brisk_malloc(n[i]);
            REQUIRE(b[r] != NULL, "malloc(%zu)", n[i]);
            memset(b[r], 0xAA, brisk_malloc_usable_size(b[r]));
        }
        for (unsigned r = 0; r < rounds; r++)
            brisk_free(b[r]);
        for (unsigned r = 0; r < rounds; r++) {
            b[r] = r & 1 ? brisk_calloc(n[i], 1) : brisk_calloc(1, n[i]);
            REQUIRE(b[r] != NULL, "calloc(%zu)", n[i]);
            CHECK_LIMITED(all_zero(b[r], n[i]), "calloc(%zu) round %u: not zeroed", n[i], r);
            CHECK_LIMITED((uintptr_t)b[r] % 16 == 0, "calloc(%zu) misaligned", n[i]);
            memset(b[r], 0xAA, n[i]);
        }
        for (unsigned r = 0; r < rounds; r++)
            brisk_free(b[r]);
    }
    /* nmemb * size split */
    unsigned *a = brisk_calloc(1000, sizeof(unsigned));
    REQUIRE(a != NULL);
    CHECK(all_zero(a, 1000 * sizeof(unsigned)), "calloc(1000, 4) not zeroed");
    brisk_free(a);
    /* zero-sized */
    void *z = brisk_calloc(0, 10), *z2 = brisk_calloc(10, 0);
    CHECK(z != NULL && z2 != NULL && z != z2, "calloc with a zero count: %p %p", z, z2);
    brisk_free(z);
    brisk_free(z2);
    /* a large block whose tail was given back by a shrinking realloc: the
     * tail pages are dirty when calloc reuses them */
    unsigned char *big = brisk_malloc(4 * MIB);
    REQUIRE(big != NULL);
    memset(big, 0xAA, 4 * MIB);
    unsigned char *small = brisk_realloc(big, 2 * MIB + 1);
    REQUIRE(small != NULL);
    for (unsigned r = 0; r < 8; r++) {
        unsigned char *c = brisk_calloc(1, 1 * MIB);
        REQUIRE(c != NULL);
        CHECK(all_zero(c, MIB), "calloc(1 MiB) over a shrunk block's tail: not zeroed");
        memset(c, 0xAA, MIB);
        brisk_free(c);
    }
    brisk_free(small);

    /* pages given back to the kernel are remembered as clean, so calloc
     * skips its memset on them: they must really read as zero, and blocks
     * that stayed dirty beside them must be cleared */
    enum { NB = 48 };
    static void *blk[NB];
    for (unsigned i = 0; i < NB; i++) {
        size_t len = i % 3 ? 2 * MIB : 2 * MIB - 3 * 8192;
        blk[i] = brisk_malloc(len);
        REQUIRE(blk[i] != NULL);
        memset(blk[i], 0xAA, len);
    }
    for (unsigned i = 0; i < NB; i += 2)
        brisk_free(blk[i]);
    brisk_release_memory();                 /* the even blocks become clean */
    for (unsigned i = 1; i < NB; i += 2)
        brisk_free(blk[i]);                 /* the odd ones stay dirty */
    for (unsigned i = 0; i < NB; i++) {
        size_t len = i % 2 ? 2 * MIB : 1 * MIB + 4096;
        blk[i] = brisk_calloc(1, len);
        REQUIRE(blk[i] != NULL);
        CHECK_LIMITED(all_zero(blk[i], len), "calloc(%zu) #%u after passing dirty_max: not zeroed",
                      len, i);
    }
    for (unsigned i = 0; i < NB; i++)
        brisk_free(blk[i]);
}

static void test_overflow(void)
{
    struct { size_t a, b; } bad[] = {
        { SIZE_MAX, 2 }, { 2, SIZE_MAX }, { (size_t)1 << 32, (size_t)1 << 32 },
        { SIZE_MAX / 3 + 1, 3 }, { (size_t)PTRDIFF_MAX + 1, 1 }, { 1, (size_t)PTRDIFF_MAX + 1 },
        { (size_t)1 << 62, 2 }, { SIZE_MAX, SIZE_MAX } };
    for (unsigned i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        errno = 0;
        void *p = brisk_calloc(bad[i].a, bad[i].b);
        CHECK(p == NULL && errno == ENOMEM, "calloc(%#zx, %#zx) = %p errno %d", bad[i].a,
              bad[i].b, p, errno);
        brisk_free(p);
        unsigned char *old = brisk_malloc(100);
        REQUIRE(old != NULL);
        fill(old, 100, 9);
        errno = 0;
        p = brisk_reallocarray(old, bad[i].a, bad[i].b);
        CHECK(p == NULL && errno == ENOMEM, "reallocarray(p, %#zx, %#zx) = %p errno %d",
              bad[i].a, bad[i].b, p, errno);
        CHECK(verify(old, 100, 9) == 100, "reallocarray failure damaged the old block");
        if (p != old)
            brisk_free(p);
        brisk_free(old);
        errno = 0;
        p = brisk_reallocarray(NULL, bad[i].a, bad[i].b);
        CHECK(p == NULL && errno == ENOMEM, "reallocarray(NULL, %#zx, %#zx) = %p errno %d",
              bad[i].a, bad[i].b, p, errno);
    }
    /* reallocarray that does not overflow behaves like realloc */
    unsigned *r = brisk_reallocarray(NULL, 10, sizeof(unsigned));
    REQUIRE(r != NULL);
    for (unsigned i = 0; i < 10; i++)
        r[i] = i * 3;
    r = brisk_reallocarray(r, 100000, sizeof(unsigned));
    REQUIRE(r != NULL);
    for (unsigned i = 0; i < 10; i++)
        CHECK(r[i] == i * 3, "reallocarray lost element %u", i);
    brisk_free(r);
}

/* ---- sizes beyond PTRDIFF_MAX ------------------------------------------------ */

static void test_huge_requests(void)
{
    const size_t too_big[] = { (size_t)PTRDIFF_MAX + 1, (size_t)PTRDIFF_MAX + 2,
                               SIZE_MAX / 2 + 4096, SIZE_MAX - 2 * 8192, SIZE_MAX - 8192,
                               SIZE_MAX - 4096, SIZE_MAX - 16, SIZE_MAX - 1, SIZE_MAX };
    /* old blocks for realloc: small, large (buddy) and huge (own mapping) */
    const size_t old_sizes[] = { 100, 300 * KIB, 20 * MIB };
    for (unsigned i = 0; i < sizeof too_big / sizeof too_big[0]; i++) {
        size_t n = too_big[i];
        void *p;
        errno = 0;
        p = brisk_malloc(n);
        CHECK(p == NULL && errno == ENOMEM, "malloc(%#zx) = %p errno %d", n, p, errno);
        errno = 0;
        p = brisk_calloc(1, n);
        CHECK(p == NULL && errno == ENOMEM, "calloc(1, %#zx) = %p errno %d", n, p, errno);
        errno = 0;
        p = brisk_realloc(NULL, n);
        CHECK(p == NULL && errno == ENOMEM, "realloc(NULL, %#zx) = %p errno %d", n, p, errno);
        for (unsigned o = 0; o < sizeof old_sizes / sizeof old_sizes[0]; o++) {
            size_t os = old_sizes[o];
            unsigned char *old = brisk_malloc(os);
            REQUIRE(old != NULL);
            size_t usable = brisk_malloc_usable_size(old);
            size_t head = 4096 < os ? 4096 : os;   /* pattern at the start */
            fill(old, head, 77);
            old[os - 1] = pat_byte(os - 1, 77);   /* and on the last byte */
            size_t before = allocated_now();
            errno = 0;
            p = brisk_realloc(old, n);
            CHECK(p == NULL && errno == ENOMEM, "realloc(<%zu-byte block>, %#zx) = %p errno %d",
                  os, n, p, errno);
            CHECK(verify(old, head, 77) == head && old[os - 1] == pat_byte(os - 1, 77),
                  "failed realloc to %#zx damaged the old %zu-byte block", n, os);
            CHECK(brisk_malloc_usable_size(old) == usable,
                  "failed realloc to %#zx changed the usable size %zu -> %zu", n, usable,
                  brisk_malloc_usable_size(old));
            CHECK(allocated_now() == before, "failed realloc to %#zx: allocated %zu -> %zu", n,
                  before, allocated_now());
            brisk_free(old);
        }
        const size_t aligns[] = { 8, 16, 64, 4096, 8192, MIB, 64 * MIB };
        for (unsigned a = 0; a < sizeof aligns / sizeof aligns[0]; a++) {
            errno = 0;
            p = brisk_memalign(aligns[a], n);
            CHECK(p == NULL && errno == ENOMEM, "memalign(%zu, %#zx) = %p errno %d", aligns[a],
                  n, p, errno);
            errno = 0;
            p = brisk_aligned_alloc(aligns[a], n);
            CHECK(p == NULL && errno == ENOMEM, "aligned_alloc(%zu, %#zx) = %p errno %d",
                  aligns[a], n, p, errno);
            void *out = (void *)0x1;
            int rc = brisk_posix_memalign(&out, aligns[a], n);
            CHECK(rc == ENOMEM && out == (void *)0x1, "posix_memalign(%zu, %#zx) = %d", aligns[a],
                  n, rc);
        }
        errno = 0;
        p = brisk_valloc(n);
        CHECK(p == NULL && errno == ENOMEM, "valloc(%#zx) = %p errno %d", n, p, errno);
        errno = 0;
        p = brisk_pvalloc(n);
        CHECK(p == NULL && errno == ENOMEM, "pvalloc(%#zx) = %p errno %d", n, p, errno);
    }
    /* just below the limit still cannot be served, and says so */
    errno = 0;
    void *p = brisk_malloc((size_t)PTRDIFF_MAX);
    CHECK(p == NULL && errno == ENOMEM, "malloc(PTRDIFF_MAX) = %p errno %d", p, errno);
}

/* ---- aligned allocation ------------------------------------------------------- */

static void check_aligned_block(const char *fn, void *p, size_t align, size_t n)
{
    CHECK_LIMITED(p != NULL, "%s(%zu, %zu) failed: errno %d", fn, align, n, errno);
    if (!p)
        return;
    size_t want = align < 16 ? 16 : align;
    CHECK_LIMITED((uintptr_t)p % want == 0, "%s(%zu, %zu) = %p misaligned", fn, align, n, p);
    size_t u = brisk_malloc_usable_size(p);
    CHECK_LIMITED(u >= n, "%s(%zu, %zu): usable %zu", fn, align, n, u);
    memset(p, 0x3c, u);
    CHECK_LIMITED(((unsigned char *)p)[u - 1] == 0x3c, "%s: last usable byte", fn);
}

static void test_aligned(void)
{
    for (size_t align = 1; align <= GIB; align *= 2) {
        size_t ns[6];
        unsigned k = 0;
        if (align < 64 * MIB) {
            ns[k++] = 1;
            ns[k++] = align;
            if (align <= 4 * MIB) {
                ns[k++] = 100;
                ns[k++] = align + 1;
                ns[k++] = 3 * align + 16;
            }
        } else {
            ns[k++] = 1;
            ns[k++] = 4096;
            ns[k++] = 100000;
        }
        for (unsigned i = 0; i < k; i++) {
            size_t n = ns[i];
            void *p = brisk_aligned_alloc(align, n);
            check_aligned_block("aligned_alloc", p, align, n);
            void *q = brisk_memalign(align, n);
            check_aligned_block("memalign", q, align, n);
            void *r = (void *)0x1;
            if (align < sizeof(void *))
                quiet();
            int rc = brisk_posix_memalign(&r, align, n);
            loud();
            if (align >= sizeof(void *)) {
                CHECK_LIMITED(rc == 0, "posix_memalign(%zu, %zu) = %d", align, n, rc);
                if (rc == 0)
                    check_aligned_block("posix_memalign", r, align, n);
                else
                    r = NULL;
            } else {
                CHECK_LIMITED(rc == EINVAL && r == (void *)0x1,
                              "posix_memalign(%zu) = %d (not a multiple of sizeof(void *))",
                              align, rc);
                r = NULL;
            }
            /* the three blocks do not overlap */
            if (p && q)
                CHECK_LIMITED(p != q, "same block twice");
            brisk_free(p);
            brisk_free_aligned_sized(q, align, n);
            brisk_free(r);
        }
        if (align >= 16 * MIB)
            brisk_release_memory();   /* keep the resident size small */
    }
    /* memalign rounds an alignment that is not a power of two up */
    const size_t odd[][2] = { { 24, 32 }, { 3, 4 }, { 100, 128 }, { 5000, 8192 },
                              { 3 * MIB, 4 * MIB }, { 0, 1 } };
    for (unsigned i = 0; i < sizeof odd / sizeof odd[0]; i++) {
        void *p = brisk_memalign(odd[i][0], 50);
        check_aligned_block("memalign", p, odd[i][1], 50);
        brisk_free(p);
    }
    /* aligned_alloc: an alignment that is not a power of two is EINVAL */
    const size_t bad_aa[] = { 0, 3, 24, 100, SIZE_MAX };
    for (unsigned i = 0; i < sizeof bad_aa / sizeof bad_aa[0]; i++) {
        quiet();
        errno = 0;
        void *p = brisk_aligned_alloc(bad_aa[i], 64);
        int err = errno;
        loud();
        CHECK(p == NULL && err == EINVAL, "aligned_alloc(%zu, 64) = %p errno %d", bad_aa[i], p,
              err);
    }
    errno = 0;
    void *p = brisk_memalign(((size_t)1 << 63) + 1, 64);
    CHECK(p == NULL && errno == EINVAL, "memalign(2^63 + 1) = %p errno %d", p, errno);
    /* posix_memalign: bad alignments give EINVAL and leave errno and *out */
    const size_t bad_pm[] = { 0, 1, 2, 3, 4, 12, 24, 48, 100, 4097, SIZE_MAX };
    for (unsigned i = 0; i < sizeof bad_pm / sizeof bad_pm[0]; i++) {
        void *out = (void *)0x1;
        quiet();
        errno = 4321;
        int rc = brisk_posix_memalign(&out, bad_pm[i], 64);
        int err = errno;
        loud();
        CHECK(rc == EINVAL, "posix_memalign(%zu) = %d, want EINVAL", bad_pm[i], rc);
        CHECK(err == 4321, "posix_memalign(%zu) changed errno to %d", bad_pm[i], err);
        CHECK(out == (void *)0x1, "posix_memalign(%zu) wrote *out on failure", bad_pm[i]);
    }
    /* a successful posix_memalign leaves errno alone too */
    void *out = NULL;
    errno = 4321;
    CHECK(brisk_posix_memalign(&out, 64, 100) == 0 && errno == 4321,
          "posix_memalign success changed errno to %d", errno);
    brisk_free(out);
    /* many small aligned blocks of one size are distinct and aligned */
    static void *blocks[500];
    for (unsigned i = 0; i < 500; i++) {
        blocks[i] = brisk_memalign(256, 40);
        check_aligned_block("memalign", blocks[i], 256, 40);
    }
    static void *sorted[500];
    memcpy(sorted, blocks, sizeof blocks);
    qsort(sorted, 500, sizeof(void *), cmp_ptr);
    for (unsigned i = 1; i < 500; i++)
        CHECK_LIMITED((uintptr_t)sorted[i] - (uintptr_t)sorted[i - 1] >= 40,
                      "memalign blocks %p and %p overlap", sorted[i - 1], sorted[i]);
    for (unsigned i = 0; i < 500; i++)
        brisk_free(blocks[i]);
}

static void test_valloc(void)
{
    const size_t n[] = { 0, 1, 100, 4095, 4096, 4097, 10000, 300 * KIB, 3 * MIB, 20 * MIB + 1 };
    for (unsigned i = 0; i < sizeof n / sizeof n[0]; i++) {
        void *p = brisk_valloc(n[i]);
        check_aligned_block("valloc", p, 4096, n[i]);
        brisk_free(p);
        void *q = brisk_pvalloc(n[i]);
        size_t rounded = n[i] ? (n[i] + 4095) & ~(size_t)4095 : 4096;
        check_aligned_block("pvalloc", q, 4096, rounded);
        brisk_free(q);
    }
}

/* ---- realloc ---------------------------------------------------------------- */

static void test_realloc(void)
{
    /* realloc(NULL, n) is malloc(n) */
    void *m = brisk_realloc(NULL, 100);
    REQUIRE(m != NULL);
    CHECK((uintptr_t)m % 16 == 0 && brisk_malloc_usable_size(m) >= 100, "realloc(NULL, 100)");
    void *m0 = brisk_realloc(NULL, 0);
    CHECK(m0 != NULL && m0 != m, "realloc(NULL, 0) = %p (malloc(0) is unique non-NULL)", m0);
    brisk_free(m0);
    /* realloc(p, 0) frees p and returns NULL */
    size_t base = allocated_now();
    void *z = brisk_malloc(5000);
    REQUIRE(z != NULL);
    CHECK(allocated_now() > base, "a live block is not counted");
    CHECK(brisk_realloc(z, 0) == NULL, "realloc(p, 0) did not return NULL");
    CHECK(allocated_now() == base, "realloc(p, 0) did not free: allocated %zu -> %zu", base,
          allocated_now());
    void *zl = brisk_malloc(3 * MIB);
    CHECK(brisk_realloc(zl, 0) == NULL, "realloc(large, 0) did not return NULL");
    CHECK(allocated_now() == base, "realloc(large, 0) did not free");
    brisk_free(m);

    /* growing and shrinking across small -> large -> huge and back */
    const size_t steps[] = { 1, 15, 16, 17, 100, 1000, 4096, 5000, 70000, 200 * KIB,
                             256 * KIB, 256 * KIB + 1, 300 * KIB, MIB, 3 * MIB, 10 * MIB,
                             16 * MIB, 16 * MIB + 1, 17 * MIB, 40 * MIB, 64 * MIB, 33 * MIB,
                             20 * MIB, 16 * MIB, 9 * MIB, 5 * MIB, MIB, 600 * KIB,
                             257 * KIB, 256 * KIB, 100 * KIB, 3000, 129, 1 };
    unsigned char *p = NULL;
    size_t cur = 0;
    for (unsigned i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        size_t n = steps[i];
        unsigned char *q = brisk_realloc(p, n);
        CHECK(q != NULL, "realloc(%zu -> %zu) failed", cur, n);
        if (!q)
            break;
        size_t keep = cur < n ? cur : n;
        size_t bad = verify(q, keep, i);
        CHECK(bad == keep, "realloc %zu -> %zu lost contents at offset %zu", cur, n, bad);
        CHECK((uintptr_t)q % 16 == 0, "realloc(%zu) misaligned", n);
        CHECK(brisk_malloc_usable_size(q) >= n, "realloc(%zu): usable %zu", n,
              brisk_malloc_usable_size(q));
        fill(q, n, i + 1);
        p = q;
        cur = n;
    }
    brisk_free(p);

    /* in-place shrink of a large block keeps contents; growing again works */
    unsigned char *l = brisk_malloc(MIB);
    REQUIRE(l != NULL);
    fill(l, MIB, 5);
    unsigned char *l2 = brisk_realloc(l, 700 * KIB);
    REQUIRE(l2 != NULL);
    CHECK(verify(l2, 700 * KIB, 5) == 700 * KIB, "shrunk large block lost contents");
    CHECK(brisk_malloc_usable_size(l2) >= 700 * KIB, "usable %zu", brisk_malloc_usable_size(l2));
    unsigned char *l3 = brisk_realloc(l2, 2 * MIB);
    REQUIRE(l3 != NULL);
    CHECK(verify(l3, 700 * KIB, 5) == 700 * KIB, "regrown large block lost contents");
    brisk_free(l3);

    /* growth without copying: a large block whose following pages are free
     * grows where it is (doubling from 256 KiB up to 32 MiB, the buddy
     * heap keeps the upper half of a split free), and a huge block is
     * resized by mremap; contents survive either way, and the grown blocks
     * free normally */
    brisk_release_memory();
    unsigned char *g = brisk_malloc(256 * KIB + 1);
    REQUIRE(g != NULL);
    fill(g, 256 * KIB + 1, 7);
    unsigned in_place = 0, steps_done = 0;
    size_t gsize = 256 * KIB + 1;
    for (size_t n = 512 * KIB; n <= 256 * MIB; n *= 2) {
        unsigned char *h = brisk_realloc(g, n);
        REQUIRE(h != NULL);
        in_place += h == g;
        steps_done++;
        CHECK(verify(h, gsize, 7) == gsize, "growth to %zu lost contents", n);
        CHECK(brisk_malloc_usable_size(h) >= n, "grown to %zu: usable %zu", n,
              brisk_malloc_usable_size(h));
        fill(h, n, 7);
        g = h;
        gsize = n;
    }
    CHECK(in_place >= steps_done / 2, "only %u of %u growth steps kept the block in place",
          in_place, steps_done);
    CHECK(verify(g, gsize, 7) == gsize, "256 MiB block lost contents");
    brisk_free(g);

    /* many small reallocs within one class stay valid */
    unsigned char *s = brisk_malloc(20);
    REQUIRE(s != NULL);
    fill(s, 20, 3);
    for (size_t n = 21; n <= 4000; n += 7) {
        s = brisk_realloc(s, n);
        REQUIRE(s != NULL);
        CHECK_LIMITED(verify(s, 20, 3) == 20, "realloc to %zu lost the first bytes", n);
    }
    brisk_free(s);
}

/* ---- statistics and memory return ----------------------------------------- */

static void test_stats(void)
{
    const size_t n[] = { 1, 24, 100, 1000, 10000, 100000, 300000, 5 * MIB, 20 * MIB };
    static void *b[9][20];
    size_t base = allocated_now(), total = 0;
    for (unsigned i = 0; i < 9; i++) {
        for (unsigned j = 0; j < 20; j++) {
            b[i][j] = brisk_malloc(n[i]);
            REQUIRE(b[i][j] != NULL);
            ((char *)b[i][j])[0] = 1;
            total += n[i];
        }
        size_t now = allocated_now();
        CHECK(now >= base + total, "after %zu bytes, allocated %zu (base %zu)", total, now, base);
    }
    struct brisk_stats st;
    brisk_stats(&st);
    CHECK(st.active >= st.allocated - st.large_allocated, "active %zu < small allocated %zu",
          st.active, st.allocated - st.large_allocated);
    CHECK(st.mapped >= st.active, "mapped %zu < active %zu", st.mapped, st.active);
    CHECK(st.large_allocated >= 20 * (300000 + 5 * MIB + 20 * MIB),
          "large_allocated %zu", st.large_allocated);
    /* metadata is what brisk mapped for its bookkeeping, each byte once:
     * the metadata arena's chunks (region headers, span descriptors, thread
     * caches, stripes) and the page map's leaves. */
    CHECK(st.metadata == bk_meta_bytes() + bk_pm_metadata_bytes(),
          "metadata %zu, want arena %zu + page map leaves %zu", st.metadata, bk_meta_bytes(),
          bk_pm_metadata_bytes());
    for (unsigned i = 0; i < 9; i++)
        for (unsigned j = 0; j < 20; j++)
            brisk_free(b[i][j]);
    CHECK(allocated_now() == base, "after freeing everything allocated %zu, before %zu",
          allocated_now(), base);

    /* text and JSON output */
    FILE *f = tmpfile();
    REQUIRE(f != NULL);
    brisk_stats_print(f, 0);
    brisk_stats_print(f, 1);
    long len = ftell(f);
    rewind(f);
    char *text = calloc(1, (size_t)len + 1);
    CHECK(fread(text, 1, (size_t)len, f) == (size_t)len, "read back the statistics");
    CHECK(strstr(text, "brisk statistics") != NULL, "text statistics missing");
    CHECK(strstr(text, "{\"allocated\":") != NULL, "JSON statistics missing");
    /* the regions, in both forms: one line / one object per region */
    CHECK(strstr(text, "hugepages: free (dirty) / partly used / all") != NULL,
          "text statistics list no regions");
    const char *list = strstr(text, "\"region_list\":[");
    CHECK(list != NULL, "JSON statistics list no regions");
    size_t objects = 0;
    for (const char *q = list; q && (q = strstr(q, "{\"base\":")) != NULL; q++)
        objects++;
    brisk_stats(&st);
    CHECK(objects == (st.regions < 32 ? st.regions : 32), "%zu regions listed, stats say %zu",
          objects, st.regions);
    free(text);
    fclose(f);

    /* what the region lines say agrees with the page heap's totals */
    static struct bk_ph_region_info info[64];
    size_t nr = bk_ph_region_info(info, 64);
    struct bk_ph_stats ph;
    bk_ph_get_stats(&ph);
    size_t free_sum = 0, dirty_sum = 0;
    for (size_t i = 0; i < nr && i < 64; i++) {
        const struct bk_ph_region_info *r = &info[i];
        free_sum += r->free_bytes;
        dirty_sum += r->dirty_bytes;
        CHECK(r->hugepages_free + r->hugepages_partial <= r->hugepages &&
                  r->hugepages_free_dirty <= r->hugepages_free,
              "region %zu: hugepages %u free (%u dirty), %u partial of %u", i, r->hugepages_free,
              r->hugepages_free_dirty, r->hugepages_partial, r->hugepages);
        CHECK(r->largest_free <= r->free_bytes && r->dirty_bytes <= r->free_bytes &&
                  r->free_bytes >= (size_t)r->hugepages_free << 21 &&
                  (r->free_bytes == 0) == (r->free_blocks == 0),
              "region %zu: free %zu, largest %zu, dirty %zu, %u blocks, %u free hugepages", i,
              r->free_bytes, r->largest_free, r->dirty_bytes, r->free_blocks, r->hugepages_free);
    }
    CHECK(nr == ph.regions, "%zu regions listed, page heap has %zu", nr, ph.regions);
    CHECK(nr > 64 || (free_sum == ph.dirty_free + ph.clean_free && dirty_sum == ph.dirty_free),
          "regions: free %zu, dirty %zu; page heap: free %zu, dirty %zu", free_sum, dirty_sum,
          ph.dirty_free + ph.clean_free, ph.dirty_free);
}

/* Exact figures: after brisk_release_memory() no free page is dirty; a
 * 4 MiB block (two hugepages, past the release threshold) written and
 * freed leaves exactly two entirely free, dirty hugepages, and the printed
 * JSON says so too. */
static size_t json_sum(const char *text, const char *key)
{
    size_t sum = 0, klen = strlen(key);
    for (const char *q = text; (q = strstr(q, key)) != NULL; q += klen)
        sum += strtoull(q + klen, NULL, 10);
    return sum;
}

static void test_region_stats_exact(void)
{
    static struct bk_ph_region_info info[64];
    if (bk_opt(BK_OPT_decay_ms) < 1000 || bk_opt(BK_OPT_dirty_max) < 8 * MIB) {
        fprintf(stderr, "test_api: region statistics not checked exactly: decay_ms or dirty_max "
                        "below the defaults (BRISK_CONF=%s)\n", getenv("BRISK_CONF"));
        return;
    }
    brisk_release_memory();
    void *p = brisk_malloc(4 * MIB);
    REQUIRE(p != NULL);
    memset(p, 0x5c, 4 * MIB);
    size_t nr = bk_ph_region_info(info, 64), dirty0 = 0, partial0 = 0;
    for (size_t i = 0; i < nr && i < 64; i++) {
        dirty0 += info[i].hugepages_free_dirty;
        partial0 += info[i].hugepages_partial;
    }
    CHECK(dirty0 == 0, "after brisk_release_memory, %zu free hugepages are dirty", dirty0);
    brisk_free(p);
    nr = bk_ph_region_info(info, 64);
    size_t dirty1 = 0, partial1 = 0, dirty_bytes = 0;
    for (size_t i = 0; i < nr && i < 64; i++) {
        dirty1 += info[i].hugepages_free_dirty;
        partial1 += info[i].hugepages_partial;
        dirty_bytes += info[i].dirty_bytes;
    }
    CHECK(dirty1 == 2 && dirty_bytes == 4 * MIB, "a freed 4 MiB block: %zu dirty free "
          "hugepages, %zu dirty bytes (want 2, 4 MiB)", dirty1, dirty_bytes);
    CHECK(partial1 == partial0, "partly used hugepages %zu -> %zu around a whole-hugepage block",
          partial0, partial1);

    FILE *f = tmpfile();
    REQUIRE(f != NULL);
    brisk_stats_print(f, 1);
    long len = ftell(f);
    rewind(f);
    char *text = calloc(1, (size_t)len + 1);
    REQUIRE(text != NULL);
    CHECK(fread(text, 1, (size_t)len, f) == (size_t)len, "read back the statistics");
    const char *list = strstr(text, "\"region_list\":[");
    REQUIRE(list != NULL);
    CHECK(json_sum(list, "\"hugepages_free_dirty\":") == 2 &&
              json_sum(list, "\"dirty\":") == 4 * MIB,
          "JSON: %zu dirty free hugepages, %zu dirty bytes", json_sum(list,
          "\"hugepages_free_dirty\":"), json_sum(list, "\"dirty\":"));
    free(text);
    fclose(f);
    brisk_release_memory();
}

static void test_release(void)
{
    brisk_release_memory();                 /* start from nothing dirty */
    /* the 1 MiB frees below must stay dirty: a 2 MiB free first puts the
     * release threshold (decay.h) above them, whatever ran before */
    void *two = brisk_malloc(2 * MIB);
    REQUIRE(two != NULL);
    memset(two, 0x77, 2 * MIB);
    brisk_free(two);
    brisk_release_memory();
    enum { N = 24 };
    static void *b[N];
    for (unsigned i = 0; i < N; i++) {
        b[i] = brisk_malloc(MIB);
        REQUIRE(b[i] != NULL);
        memset(b[i], 0x77, MIB);
    }
    for (unsigned i = 0; i < N; i++)
        brisk_free(b[i]);
    struct brisk_stats before, after;
    brisk_stats(&before);
    size_t r = brisk_release_memory();
    brisk_stats(&after);
    CHECK(r >= N * MIB, "release returned %zu after freeing %u MiB", r, (unsigned)N);
    /* released and kept mapped, or unmapped with its region */
    CHECK(after.released >= before.released + N * MIB || after.mapped + N * MIB <= before.mapped,
          "released %zu -> %zu, mapped %zu -> %zu", before.released, after.released,
          before.mapped, after.mapped);
    CHECK(after.resident + N * MIB <= before.resident, "resident %zu -> %zu", before.resident,
          after.resident);
    CHECK(brisk_release_memory() == 0, "a second release found more to give back");
    /* released memory is usable again: the buddy heap now knows those pages
     * as clean, so calloc skips its memset; they must really read as zero */
    static void *c[3];
    for (unsigned i = 0; i < 3; i++) {
        c[i] = brisk_calloc(1, 8 * MIB);
        REQUIRE(c[i] != NULL);
        CHECK(all_zero(c[i], 8 * MIB), "calloc(8 MiB) over released pages not zeroed");
    }
    for (unsigned i = 0; i < 3; i++)
        brisk_free(c[i]);
    /* small objects too: a freed class's spans go back */
    static void *s[20000];
    for (unsigned i = 0; i < 20000; i++) {
        s[i] = brisk_malloc(1000);
        REQUIRE(s[i] != NULL);
        memset(s[i], 1, 1000);
    }
    for (unsigned i = 0; i < 20000; i++)
        brisk_free(s[i]);
    r = brisk_release_memory();
    CHECK(r >= 16 * MIB, "release after freeing 20 MB of small blocks returned %zu", r);
}

/* glibc's introspection calls, answered from brisk's statistics. */
static void test_introspection(void)
{
    CHECK(brisk_mallopt(1, 0) == 1, "mallopt did not accept a tunable");
    /* malloc_trim: 1 when memory went back to the kernel, 0 when none did */
    void *big = brisk_malloc(4 * MIB);
    REQUIRE(big != NULL);
    memset(big, 1, 4 * MIB);
    brisk_free(big);
    CHECK(brisk_malloc_trim(0) == 1, "malloc_trim after freeing 4 MiB did not report a release");
    CHECK(brisk_malloc_trim(0) == 0, "a second malloc_trim reported a release");
    /* malloc_info: XML with the totals; options must be 0 */
    FILE *f = tmpfile();
    REQUIRE(f != NULL);
    void *live = brisk_malloc(2 * MIB);
    CHECK(brisk_malloc_info(0, f) == 0, "malloc_info(0, f) failed");
    long len = ftell(f);
    rewind(f);
    char *xml = calloc(1, (size_t)len + 1);
    CHECK(fread(xml, 1, (size_t)len, f) == (size_t)len, "read back malloc_info");
    CHECK(strncmp(xml, "<malloc", 7) == 0 && strstr(xml, "</malloc>") != NULL,
          "malloc_info wrote \"%s\"", xml);
    const char *key = "type=\"allocated\" size=\"";
    const char *alloc = strstr(xml, key);
    CHECK(alloc && strtoull(alloc + strlen(key), NULL, 10) >= 2 * MIB,
          "malloc_info: allocated in \"%s\"", xml);
    free(xml);
    fclose(f);
    brisk_free(live);
    errno = 0;
    CHECK(brisk_malloc_info(1, stdout) == -1 && errno == EINVAL, "malloc_info(1) errno %d",
          errno);
    /* malloc_stats prints the statistics on stderr */
    int pfd[2];
    REQUIRE(pipe(pfd) == 0);
    fflush(stderr);
    int saved = dup(2);
    dup2(pfd[1], 2);
    close(pfd[1]);
    brisk_malloc_stats();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    static char text[65536];
    ssize_t n, got = 0;
    while ((n = read(pfd[0], text + got, sizeof text - 1 - (size_t)got)) > 0)
        got += n;
    close(pfd[0]);
    text[got] = '\0';
    CHECK(strstr(text, "brisk statistics") != NULL, "malloc_stats printed \"%.200s\"", text);
}

/* Locked memory cannot be released (madvise fails with EINVAL on mlocked
 * pages): it must not be remembered as clean, so a calloc that lands on
 * it still clears it. */
static void test_calloc_after_mlock(void)
{
    const size_t n = 4u << 20;
    unsigned char *p = brisk_malloc(n);
    CHECK(p != NULL, "malloc(4 MiB)");
    if (!p || mlock(p, n) != 0) {
        printf("test_api: mlock unavailable (%s): calloc-after-mlock case skipped\n",
               strerror(errno));
        brisk_free(p);
        return;
    }
    memset(p, 0xab, n);
    brisk_free(p);
    brisk_release_memory();
    unsigned char *q = brisk_calloc(1, n);
    CHECK(q != NULL, "calloc(4 MiB)");
    size_t bad = 0;
    for (size_t i = 0; q && i < n; i++)
        bad += q[i] != 0;
    CHECK(bad == 0, "calloc over released-but-locked pages: %zu non-zero bytes (same block: %d)",
          bad, p == q);
    munlock(p, n);
    brisk_free(q);
}

/* The C++ aligned operators pass their alignment through unchecked: one
 * that is not a power of two must fail cleanly, not walk off the class
 * table. */
static void test_aligned_not_pow2_internal(void)
{
    size_t aligns[] = { 3, 24, 100000, 300000 };
    for (size_t i = 0; i < sizeof aligns / sizeof aligns[0]; i++) {
        errno = 0;
        void *p = bk_api_aligned(aligns[i], 100);
        CHECK(p == NULL && errno == EINVAL, "bk_api_aligned(%zu, 100) = %p errno %d", aligns[i],
              p, errno);
    }
}

/* A large block never shows a stale free mark: word 1 is cleared when it
 * is handed out. */
static void test_large_word1(void)
{
    enum { N = 4000 };
    static void *small[N];
    for (int i = 0; i < N; i++)
        small[i] = brisk_malloc(64);
    for (int i = 0; i < N; i++)
        brisk_free(small[i]);
    brisk_release_memory();   /* the small spans go back to the page heap */
    void *big = brisk_malloc(300 << 10);
    CHECK(big && ((uintptr_t *)big)[1] == 0, "large block word 1 = %#lx",
          big ? (unsigned long)((uintptr_t *)big)[1] : 0ul);
    brisk_free(big);
}

int main(void)
{
    make_sizes();
    test_malloc_alignment();
    test_usable_size_paths();
    test_malloc_zero();
    test_free_errno();
    test_calloc();
    test_overflow();
    test_huge_requests();
    test_aligned();
    test_valloc();
    test_realloc();
    test_stats();
    test_region_stats_exact();
    test_release();
    test_introspection();
    test_calloc_after_mlock();
    test_aligned_not_pow2_internal();
    test_large_word1();
    return check_report("test_api");
}
