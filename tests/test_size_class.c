/* Size-class table: lookup, spacing, waste bounds, span geometry and the
 * object-boundary test free() relies on. */
#include <stdint.h>
#include <string.h>

#include "brisk.h"
#include "core/size_class.h"
#include "page_heap/span.h"
#include "check.h"

static int is_pow2(uint64_t x) { return x && !(x & (x - 1)); }

/* Smallest class whose size is >= size, by linear search (the reference). */
static unsigned reference_class(size_t size)
{
    for (unsigned c = 1; c < BK_NUM_CLASSES; c++)
        if (bk_classes[c].size >= size)
            return c;
    return 0;
}

static void test_table_shape(void)
{
    CHECK(BK_NUM_CLASSES - 1 <= BRISK_MAX_CLASSES, "%d classes do not fit brisk_stats",
          BK_NUM_CLASSES - 1);
    CHECK(bk_classes[1].size == 16, "first class is %u", bk_classes[1].size);
    CHECK(bk_classes[BK_NUM_CLASSES - 1].size == BK_SMALL_MAX, "last class is %u",
          bk_classes[BK_NUM_CLASSES - 1].size);
    for (unsigned c = 1; c < BK_NUM_CLASSES; c++) {
        const struct bk_class_info *ci = &bk_classes[c];
        CHECK(ci->size % 16 == 0, "class %u size %u not a multiple of 16", c, ci->size);
        if (c > 1)
            CHECK(ci->size > bk_classes[c - 1].size, "class %u size %u <= previous %u", c,
                  ci->size, bk_classes[c - 1].size);
        if (c <= BK_LINEAR_CLASSES)
            CHECK(ci->size == 16 * c, "linear class %u is %u", c, ci->size);
    }
    /* aligned allocation relies on every power of two 16..256K being a class */
    for (uint32_t p = 16; p <= BK_SMALL_MAX; p *= 2) {
        unsigned c = reference_class(p);
        CHECK(c && bk_classes[c].size == p, "power of two %u is not a class", p);
    }
}

static void test_lookup(void)
{
    CHECK(bk_size_to_class(0) == 1, "size 0 maps to class %u, want 1", bk_size_to_class(0));
    for (size_t s = 1; s <= BK_SMALL_MAX; s++) {
        unsigned got = bk_size_to_class(s), want = reference_class(s);
        CHECK_LIMITED(got == want, "size %zu -> class %u (size %u), want class %u (size %u)", s,
                      got, bk_classes[got].size, want, bk_classes[want].size);
        CHECK_LIMITED(bk_classes[got].size >= s, "size %zu -> class of %u bytes", s,
                      bk_classes[got].size);
        if (s <= BK_LOOKUP_MAX)
            CHECK_LIMITED(bk_size_to_class_lookup(s) == got, "size %zu: table says class %u, "
                          "bk_size_to_class %u", s, bk_size_to_class_lookup(s), got);
        if (s > 128) {
            double waste = (double)(bk_classes[got].size - s) / (double)s;
            CHECK_LIMITED(waste < 0.125, "size %zu wastes %.4f in class %u", s, waste,
                          bk_classes[got].size);
        }
    }
}

static void test_spans(void)
{
    for (unsigned c = 1; c < BK_NUM_CLASSES; c++) {
        const struct bk_class_info *ci = &bk_classes[c];
        size_t span = (size_t)ci->span_pages * BK_PAGE_SIZE;
        CHECK(is_pow2(ci->span_pages), "class %u span_pages %u", c, ci->span_pages);
        CHECK(ci->objects == span / ci->size, "class %u objects %u, span holds %zu", c,
              ci->objects, span / ci->size);
        CHECK((size_t)ci->objects * ci->size <= span, "class %u overflows its span", c);
        CHECK(span - (size_t)ci->objects * ci->size <= span / 8,
              "class %u tail waste %zu of a %zu-byte span", c,
              span - (size_t)ci->objects * ci->size, span);
        CHECK(ci->batch >= 2 && ci->batch <= 32, "class %u batch %u", c, ci->batch);
        uint32_t want_batch = 65536u / ci->size;
        want_batch = want_batch < 2 ? 2 : want_batch > 32 ? 32 : want_batch;
        CHECK(ci->batch == want_batch, "class %u batch %u, documented %u", c, ci->batch,
              want_batch);
        CHECK(ci->objects >= ci->batch, "class %u: %u objects per span < batch %u", c,
              ci->objects, ci->batch);
        /* the documented formula (size_class.c): a burst allowance of up to
         * 128 objects for classes up to 8 KiB only */
        uint32_t want_max = 262144u / ci->size;
        uint32_t burst = ci->size > 8192 ? 0 : 1048576u / ci->size < 128 ? 1048576u / ci->size : 128;
        want_max = want_max > burst ? want_max : burst;
        want_max = want_max < 1024 ? want_max : 1024;
        want_max = want_max > 2u * ci->batch ? want_max : 2u * ci->batch;
        CHECK(ci->cache_max == want_max, "class %u (size %u) cache_max %u, documented %u", c,
              ci->size, ci->cache_max, want_max);
        uint32_t want_park = 131072u / ((uint32_t)ci->batch * ci->size);
        want_park = want_park < 1 ? 1 : want_park > 16 ? 16 : want_park;
        CHECK(ci->park_max == want_park, "class %u (size %u) park_max %u, documented %u", c,
              ci->size, ci->park_max, want_park);
        /* the smallest such span: half of it must break one of the rules */
        if (ci->span_pages > 1) {
            size_t half = span / 2;
            CHECK(half / ci->size < ci->batch || half % ci->size > half / 8,
                  "class %u: span of %zu bytes would have done", c, half);
        }
        uint64_t mask = bk_pm_fast.class_word[BK_CHECK_OFF_MASK][c];
        CHECK(mask == span - 1, "class %u off_mask %#llx", c, (unsigned long long)mask);
    }
}

/* A few cache_max values worked out by hand: 256 KiB worth, at most 1024,
 * with the 128-object burst allowance up to 8 KiB and not above. */
static void test_cache_max(void)
{
    const struct { uint32_t size, max; } want[] = {
        { 64, 1024 }, { 1024, 256 }, { 4096, 128 }, { 8192, 128 }, { 16384, 16 },
        { 32768, 8 }, { 65536, 4 }, { 262144, 4 },
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        unsigned c = reference_class(want[i].size);
        CHECK(bk_classes[c].size == want[i].size && bk_classes[c].cache_max == want[i].max,
              "size %u: class of %u bytes has cache_max %u, want %u", want[i].size,
              bk_classes[c].size, bk_classes[c].cache_max, want[i].max);
    }
}

/* bk_on_object_boundary must be true exactly at the starts of the span's
 * objects (multiples of the object size below objects * size: the tail past
 * the last object is not an object), for every 16-byte offset of a span,
 * whatever span (naturally aligned) the address lies in.  Pure arithmetic:
 * nothing is dereferenced. */
static void test_boundaries(void)
{
    const uintptr_t bases[] = { 0, (uintptr_t)1 << 40, ((uintptr_t)1 << 46) + ((uintptr_t)3 << 25) };
    /* class 0 (large blocks, unknown pages) is never on a boundary */
    for (uintptr_t a = 0; a < 3 * BK_PAGE_SIZE; a += 16)
        CHECK_LIMITED(!bk_on_object_boundary(0, bases[1] + a), "class 0 accepts offset %lu",
                      (unsigned long)a);
    for (unsigned c = 1; c < BK_NUM_CLASSES; c++) {
        const struct bk_class_info *ci = &bk_classes[c];
        size_t span = (size_t)ci->span_pages * BK_PAGE_SIZE;
        for (unsigned b = 0; b < sizeof bases / sizeof bases[0]; b++) {
            uintptr_t base = bases[b] + span * 5;   /* a naturally aligned span */
            for (size_t off = 0; off < span; off += 16) {
                int want = off % ci->size == 0 && off / ci->size < ci->objects;
                int got = bk_on_object_boundary(c, base + off);
                CHECK_LIMITED(got == want, "class %u (size %u) offset %zu: got %d want %d", c,
                              ci->size, off, got, want);
            }
            /* never on a boundary when not 16-byte aligned */
            for (size_t off = 1; off < 64 && off < span; off += 3)
                if (off % 16)
                    CHECK_LIMITED(!bk_on_object_boundary(c, base + off),
                                  "class %u offset %zu accepted", c, off);
        }
    }
}

/* The tables the library uses are generated at build time; they must be
 * exactly what the derivation gives (and then the checks above, which read
 * the library's tables, check the derivation's rules). */
static void test_generated(void)
{
    static struct bk_size_tables t;
    bk_size_classes_derive(&t);
    CHECK(memcmp(t.lookup, bk_class_of_size, sizeof t.lookup) == 0,
          "the compiled-in lookup table differs from the derivation");
    CHECK(memcmp(t.classes, bk_classes, sizeof t.classes) == 0,
          "the compiled-in class table differs from the derivation");
    /* the words bk_core_init installs next to the page map's window */
    const uint64_t (*w)[BK_PM_CLASS_VALUES] = bk_pm_fast.class_word;
    CHECK(memcmp(t.checks.off_mask, w[BK_CHECK_OFF_MASK], sizeof t.checks.off_mask) == 0 &&
              memcmp(t.checks.divc, w[BK_CHECK_DIVC], sizeof t.checks.divc) == 0 &&
              memcmp(t.checks.limit, w[BK_CHECK_LIMIT], sizeof t.checks.limit) == 0,
          "the installed boundary checks differ from the derivation");
    for (unsigned k = 0; k < BK_PM_CLASS_WORDS; k++)
        for (unsigned c = BK_NUM_CLASSES; c < BK_PM_CLASS_VALUES; c++)
            CHECK(w[k][c] == 0, "class value %u (no class) has check word %u set", c, k);
    CHECK(w[BK_CHECK_LIMIT][0] == 0, "class 0 must fail the boundary test");
}

int main(void)
{
    brisk_free(brisk_malloc(1));    /* start-up installs the boundary checks */
    test_generated();
    test_table_shape();
    test_lookup();
    test_spans();
    test_cache_max();
    test_boundaries();
    return check_report("test_size_class");
}
