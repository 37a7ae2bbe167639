/* Central free lists, driven directly (no thread caches): takes, gives of
 * full batches and partial chains, statistics, drain and span return.
 * Nothing else in this process allocates through brisk, so the classes
 * tested here hold exactly what the test put in them. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/bootstrap.h"
#include "core/central_list.h"
#include "core/size_class.h"
#include "page_heap/page_map.h"
#include "page_heap/span.h"
#include "check.h"

#define MAXOBJ 4096

struct pool {
    void *obj[MAXOBJ];
    size_t n;
};

static int cmp_ptr(const void *a, const void *b)
{
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
    return x < y ? -1 : x > y;
}

/* Take `want` objects and append the chain to the pool, checking each. */
static unsigned take(unsigned cls, unsigned stripe, unsigned want, struct pool *pool)
{
    const struct bk_class_info *ci = &bk_classes[cls];
    void *chain = (void *)0x1;
    unsigned got = bk_central_take(cls, stripe, want, want, &chain);
    CHECK(got == want, "class %u: took %u of %u", cls, got, want);
    unsigned walked = 0;
    for (void *p = chain; p && walked < got + 1; p = *(void **)p) {
        walked++;
        uintptr_t a = (uintptr_t)p;
        struct bk_span *s = bk_pm_span(a);
        CHECK_LIMITED(s != NULL, "class %u: object %p has no span", cls, p);
        if (!s)
            break;
        CHECK_LIMITED(s->kind == BK_SPAN_SMALL && s->cls == cls,
                      "class %u: object %p in a span of kind %u class %u", cls, p, s->kind,
                      s->cls);
        uintptr_t w = bk_pm_window_index(a);
        CHECK_LIMITED(w >= BK_PM_WINDOW_SLOTS || bk_pm_window[w] == cls,
                      "class %u: window says %u", cls, bk_pm_window[w]);
        CHECK_LIMITED(a < s->carved, "class %u: object %p above the carved part", cls, p);
        CHECK_LIMITED(a % 16 == 0, "class %u: object %p misaligned", cls, p);
        CHECK_LIMITED(a >= s->start && a + ci->size <= s->start + ci->objects * (uintptr_t)ci->size,
                      "class %u: object %p outside the objects of span %#lx", cls, p,
                      (unsigned long)s->start);
        CHECK_LIMITED((a - s->start) % ci->size == 0, "class %u: object %p off a boundary",
                      cls, p);
        CHECK_LIMITED(s->npages == ci->span_pages, "span of %zu pages, class wants %u",
                      s->npages, ci->span_pages);
        CHECK_LIMITED(s->start % (ci->span_pages * BK_PAGE_SIZE) == 0,
                      "span %#lx not naturally aligned", (unsigned long)s->start);
        /* writable, all of it (the object's own link word comes last) */
        memset((char *)p + sizeof(void *), 0x5c, ci->size - sizeof(void *));
        if (pool->n < MAXOBJ)
            pool->obj[pool->n++] = p;
    }
    CHECK(walked == got, "class %u: chain holds %u objects, take said %u", cls, walked, got);
    return got;
}

/* Give pool objects [from, from + n) back as one chain. */
static void give(unsigned cls, unsigned stripe, struct pool *pool, size_t from, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        *(void **)pool->obj[from + i] = i + 1 < n ? pool->obj[from + i + 1] : NULL;
    bk_central_give(cls, stripe, pool->obj[from], pool->obj[from + n - 1], n);
}

static void check_distinct(unsigned cls, struct pool *pool)
{
    void **sorted = malloc(pool->n * sizeof(void *));
    memcpy(sorted, pool->obj, pool->n * sizeof(void *));
    qsort(sorted, pool->n, sizeof(void *), cmp_ptr);
    for (size_t i = 1; i < pool->n; i++)
        CHECK_LIMITED((uintptr_t)sorted[i] - (uintptr_t)sorted[i - 1] >= bk_classes[cls].size,
                      "class %u: objects %p and %p overlap", cls, sorted[i - 1], sorted[i]);
    free(sorted);
}

/* Objects out of the central list must equal what the stats say is missing. */
static void check_stats(unsigned cls, size_t outstanding, const char *when)
{
    struct bk_central_stats st;
    bk_central_get_stats(cls, &st);
    const struct bk_class_info *ci = &bk_classes[cls];
    CHECK(st.objects == st.spans * ci->objects, "%s: class %u objects %zu for %zu spans", when,
          cls, st.objects, st.spans);
    CHECK(st.free_in_spans <= st.objects, "%s: class %u free %zu > objects %zu", when, cls,
          st.free_in_spans, st.objects);
    CHECK(st.in_stripes % ci->batch == 0, "%s: class %u %zu objects in stripes", when, cls,
          st.in_stripes);
    CHECK(st.objects == st.free_in_spans + st.in_stripes + outstanding,
          "%s: class %u: %zu objects != %zu free + %zu in stripes + %zu outstanding", when, cls,
          st.objects, st.free_in_spans, st.in_stripes, outstanding);
    /* enough spans for what is out of them, and none kept empty */
    size_t out_of_spans = st.in_stripes + outstanding;
    size_t min_spans = (out_of_spans + ci->objects - 1) / ci->objects;
    CHECK(st.spans >= min_spans, "%s: class %u %zu spans hold %zu objects", when, cls, st.spans,
          out_of_spans);
    CHECK(out_of_spans != 0 || st.spans == 0, "%s: class %u keeps %zu empty spans", when, cls,
          st.spans);
}

static void test_class(unsigned cls)
{
    static struct pool pool;
    const struct bk_class_info *ci = &bk_classes[cls];
    unsigned batch = ci->batch;
    unsigned stripes = bk_central_stripes();
    pool.n = 0;
    check_stats(cls, 0, "start");

    /* a partial take, a full batch, and enough to need several spans */
    take(cls, 0, 1, &pool);
    check_stats(cls, pool.n, "after taking 1");
    take(cls, 0, batch, &pool);
    check_stats(cls, pool.n, "after a batch");
    size_t target = (size_t)ci->objects * 3 + 1;
    if (target > MAXOBJ - batch)
        target = MAXOBJ - batch;
    while (pool.n + batch <= target)
        take(cls, pool.n % stripes, batch, &pool);
    check_stats(cls, pool.n, "after many batches");
    check_distinct(cls, &pool);
    struct bk_central_stats st;
    bk_central_get_stats(cls, &st);
    CHECK(st.spans >= (pool.n + ci->objects - 1) / ci->objects,
          "class %u: %zu objects out of %zu spans", cls, pool.n, st.spans);

    /* give back: full batches (parked on stripes), then partial chains and
     * single objects (straight to their spans) */
    size_t n = pool.n, given = 0;
    unsigned stripe = 0;
    while (given + batch <= n / 2) {
        give(cls, stripe++ % stripes, &pool, given, batch);
        given += batch;
        check_stats(cls, n - given, "after giving a batch");
    }
    bk_central_get_stats(cls, &st);
    CHECK(st.in_stripes > 0, "class %u: no full batch was parked (in_stripes 0)", cls);
    while (given < n) {
        /* 1 .. batch-1 objects: never a full batch */
        unsigned k = 1 + (unsigned)(given / batch) % (batch - 1);
        if (k > n - given)
            k = (unsigned)(n - given);
        give(cls, 0, &pool, given, k);
        given += k;
        check_stats(cls, n - given, "after giving a partial chain");
    }
    /* take a batch back: it comes from a stripe (the same objects) */
    bk_central_get_stats(cls, &st);
    size_t parked = st.in_stripes;
    pool.n = 0;
    take(cls, 0, batch, &pool);
    bk_central_get_stats(cls, &st);
    /* stripe 0 got the first batch given, so the take popped one there */
    CHECK(st.in_stripes == parked - batch, "class %u: batch taken but in_stripes %zu -> %zu",
          cls, parked, st.in_stripes);
    check_stats(cls, pool.n, "after retaking a batch");
    give(cls, 0, &pool, 0, batch);
    pool.n = 0;

    /* drain: every parked batch goes back to its spans, which are all free
     * now and return to the page heap */
    bk_central_drain();
    bk_central_get_stats(cls, &st);
    CHECK(st.in_stripes == 0, "class %u: %zu objects still parked after drain", cls,
          st.in_stripes);
    CHECK(st.spans == 0 && st.objects == 0 && st.free_in_spans == 0,
          "class %u after drain: %zu spans, %zu objects, %zu free", cls, st.spans, st.objects,
          st.free_in_spans);
}

/* The page heap reuses the spans: a second round sees the same behaviour
 * and the span is mapped to the new class. */
static void test_reuse(void)
{
    static struct pool pool;
    unsigned a = bk_size_to_class(64), b = bk_size_to_class(96);
    pool.n = 0;
    take(a, 0, bk_classes[a].batch, &pool);
    void *first = pool.obj[0];
    give(a, 0, &pool, 0, (unsigned)pool.n);
    bk_central_drain();
    uintptr_t w = bk_pm_window_index((uintptr_t)first);
    CHECK(bk_pm_span((uintptr_t)first) == NULL &&
              (w >= BK_PM_WINDOW_SLOTS || bk_pm_window[w] == 0),
          "freed span still in the page map");
    pool.n = 0;
    take(b, 0, bk_classes[b].batch, &pool);
    check_distinct(b, &pool);
    give(b, 0, &pool, 0, (unsigned)pool.n);
    bk_central_drain();
    struct bk_central_stats st;
    bk_central_get_stats(b, &st);
    CHECK(st.spans == 0, "class %u: %zu spans left", b, st.spans);
}

/* The class byte the free() fast path sees for a (0 outside the window). */
static unsigned window_class(uintptr_t a)
{
    uintptr_t w = bk_pm_window_index(a);
    return w < BK_PM_WINDOW_SLOTS ? bk_pm_window[w] : 0;
}

/* Carving (central_list.c): a new span is carved 4 KiB at a time, as its
 * free list runs dry, and each piece gets its window slot's class byte
 * (the fast path of free) as it is carved, not before.  Class 512 (8
 * objects per 4 KiB, spans of 16 KiB) is used by no other test here, so
 * its first take opens a new span. */
static void test_carving(void)
{
    unsigned cls = bk_size_to_class(512);
    REQUIRE(bk_classes[cls].size == 512 && bk_classes[cls].span_pages >= 2);
    void *chain[3];
    REQUIRE(bk_central_take(cls, 0, 1, 1, &chain[0]) == 1);
    struct bk_span *s = bk_pm_span((uintptr_t)chain[0]);
    REQUIRE(s != NULL && (uintptr_t)chain[0] == s->start);
    REQUIRE(bk_pm_window_index(s->start) < BK_PM_WINDOW_SLOTS);
    CHECK(s->carved == s->start + 4096, "one object carved %#lx bytes",
          (unsigned long)(s->carved - s->start));
    CHECK(window_class(s->start) == cls && window_class(s->start + 4095) == cls &&
              window_class(s->start + 4096) == 0,
          "first piece: window classes %u %u", window_class(s->start),
          window_class(s->start + 4096));
    REQUIRE(bk_central_take(cls, 0, 7, 7, &chain[1]) == 7);   /* the rest of the piece */
    CHECK(s->carved == s->start + 4096, "8 objects carved %#lx bytes",
          (unsigned long)(s->carved - s->start));
    REQUIRE(bk_central_take(cls, 0, 1, 1, &chain[2]) == 1);   /* the next piece */
    CHECK((uintptr_t)chain[2] == s->start + 4096, "ninth object at +%#lx",
          (unsigned long)((uintptr_t)chain[2] - s->start));
    CHECK(s->carved == s->start + 8192 && window_class(s->start + 4096) == cls &&
              window_class(s->start + 8192) == 0,
          "second piece: carved +%#lx, window classes %u and %u",
          (unsigned long)(s->carved - s->start), window_class(s->start + 4096),
          window_class(s->start + 8192));
    for (int i = 0; i < 3; i++)
        bk_central_return(cls, chain[i]);
}

/* Stripes are made on a class's first whole batch, not at start-up: class
 * 2048 (batch 32) is used by no other test here. */
static void test_lazy_stripes(void)
{
    unsigned cls = bk_size_to_class(2048);
    unsigned batch = bk_classes[cls].batch;
    CHECK(!bk_central_striped(cls), "class %u has stripes before any batch", cls);
    void *chain;
    REQUIRE(bk_central_take(cls, 0, 1, 1, &chain) == 1);
    bk_central_give(cls, 0, chain, chain, 1);              /* one object: to its span */
    CHECK(!bk_central_striped(cls), "a single object made stripes");
    REQUIRE(bk_central_take(cls, 0, batch, batch, &chain) == batch);
    void *last = chain;
    while (*(void **)last)
        last = *(void **)last;
    bk_central_give(cls, 0, chain, last, batch);           /* a whole batch: parked */
    CHECK(bk_central_striped(cls), "a whole batch made no stripes");
    struct bk_central_stats st;
    bk_central_get_stats(cls, &st);
    CHECK(st.in_stripes == batch, "%zu objects parked, want %u", st.in_stripes, batch);
    void *again;
    CHECK(bk_central_take(cls, 0, batch, batch, &again) == batch && again == chain,
          "the parked batch did not come back whole");
    bk_central_return(cls, again);
}

int main(void)
{
    bk_core_init();
    REQUIRE(bk_core_ready, "bk_core_init did not finish");
    CHECK(bk_central_stripes() >= 1 && (bk_central_stripes() & (bk_central_stripes() - 1)) == 0,
          "stripes %u", bk_central_stripes());
    const size_t sizes[] = { 16, 48, 128, 1024, 3000, 16384, 65536, BK_SMALL_MAX };
    for (unsigned i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        test_class(bk_size_to_class(sizes[i]));
    test_reuse();
    test_carving();
    test_lazy_stripes();
    return check_report("test_central_list");
}
