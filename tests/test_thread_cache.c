/* Thread caches, observed through the public API and brisk_stats(): the
 * per-thread byte budget (the default tcache_max_bytes; BRISK_CONF is
 * read once at start-up, so the test runs with the default and refuses to
 * run with anything else), the flush at thread exit, and frees of blocks
 * whose allocating thread is gone. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "brisk.h"
#include "core/options.h"
#include "core/size_class.h"
#include "page_heap/page_map.h"
#include "thread_cache/thread_cache.h"
#include "check.h"

#define BUDGET (bk_options[BK_OPT_tcache_max_bytes].def)

static struct brisk_stats st;

static void stats(void) { brisk_stats(&st); }

static size_t class_index(size_t size)   /* index into st.classes */
{
    return bk_size_to_class(size) - 1;
}

/* The totals must agree with the per-class numbers, and each class's
 * cache must stay within its documented per-class bound (summed over the
 * live caches). */
static void check_consistent(const char *when)
{
    size_t cached = 0, central = 0, small = 0;
    for (size_t i = 0; i < st.nclasses; i++) {
        const struct brisk_class_stats *c = &st.classes[i];
        cached += c->cached_objects * c->size;
        central += c->central_objects * c->size;
        small += c->live_objects * c->size;
        CHECK(c->cached_objects <= (size_t)bk_classes[i + 1].cache_max * st.thread_caches,
              "%s: class %zu caches %zu objects, over cache_max %u x %zu caches", when, c->size,
              c->cached_objects, bk_classes[i + 1].cache_max, st.thread_caches);
    }
    CHECK(cached == st.cached_bytes, "%s: cached_bytes %zu, classes say %zu", when,
          st.cached_bytes, cached);
    CHECK(central == st.central_bytes, "%s: central_bytes %zu, classes say %zu", when,
          st.central_bytes, central);
    CHECK(st.allocated == small + st.large_allocated, "%s: allocated %zu != %zu + %zu", when,
          st.allocated, small, st.large_allocated);
}

/* Allocate `total` bytes in blocks of each size (interleaved), touch them,
 * and free them all; the cache must end within the budget. */
static void churn(const size_t *sizes, unsigned nsizes, size_t total, const char *when)
{
    size_t count = 0, requested = 0;
    for (unsigned i = 0; i < nsizes; i++) {
        count += total / sizes[i];
        requested += total / sizes[i] * sizes[i];
    }
    void **blocks = malloc(count * sizeof(void *));
    REQUIRE(blocks != NULL);
    size_t n = 0;
    for (size_t round = 0; n < count; round++) {
        for (unsigned i = 0; i < nsizes; i++) {
            if (round < total / sizes[i]) {
                void *p = brisk_malloc(sizes[i]);
                REQUIRE(p != NULL, "malloc(%zu)", sizes[i]);
                memset(p, (int)i + 1, sizes[i] < 64 ? sizes[i] : 64);
                blocks[n++] = p;
            }
        }
    }
    stats();
    size_t live = st.allocated;
    CHECK(live >= requested, "%s: allocated %zu while %zu bytes are live", when, live,
          requested);
    for (size_t i = 0; i < n; i++)
        brisk_free(blocks[i]);
    free(blocks);
    stats();
    check_consistent(when);
    CHECK(st.cached_bytes <= BUDGET * st.thread_caches,
          "%s: %zu bytes cached by %zu threads, budget %zu each", when, st.cached_bytes,
          st.thread_caches, BUDGET);
}

static void test_budget(void)
{
    size_t sizes[] = { 1024, 65536 };
    churn(sizes, 2, (size_t)32 << 20, "1K+64K");       /* 64 MiB in all */
    CHECK(st.thread_caches == 1, "one thread, %zu caches", st.thread_caches);
    CHECK(st.cached_bytes <= BUDGET, "1K+64K: cache holds %zu bytes", st.cached_bytes);
    /* the cache was used at all (else the bound proves nothing) */
    CHECK(st.cached_bytes > 0, "nothing cached after freeing 64 MiB");
    CHECK(st.classes[class_index(1024)].cached_objects > 0 ||
              st.classes[class_index(65536)].cached_objects > 0,
          "neither size class cached");

    /* every class at once, so lists must take capacity from each other */
    size_t all[BK_NUM_CLASSES];
    unsigned n = 0;
    for (unsigned c = 1; c < BK_NUM_CLASSES; c += 3)
        all[n++] = bk_classes[c].size;
    churn(all, n, (size_t)1 << 20, "every class");
    CHECK(st.cached_bytes <= BUDGET, "every class: cache holds %zu bytes", st.cached_bytes);

    /* a free-heavy pattern on the largest class: batch 2, 256 KiB each */
    size_t big[] = { BK_SMALL_MAX };
    churn(big, 1, (size_t)64 << 20, "256K");
    CHECK(st.cached_bytes <= BUDGET, "256K: cache holds %zu bytes", st.cached_bytes);
}

/* ---- thread exit ---------------------------------------------------------- */

struct worker {
    size_t size;
    unsigned count;
    unsigned keep;                 /* blocks left live for another thread */
    void **kept;
    struct brisk_stats inside;     /* stats seen by the worker before it exits */
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    void **tmp = malloc(w->count * sizeof(void *));
    for (unsigned i = 0; i < w->count; i++) {
        tmp[i] = brisk_malloc(w->size);
        if (tmp[i])
            memset(tmp[i], (int)(i & 0xff), w->size);
    }
    for (unsigned i = 0; i < w->keep; i++)
        w->kept[i] = tmp[i];
    for (unsigned i = w->keep; i < w->count; i++)
        brisk_free(tmp[i]);
    free(tmp);
    brisk_stats(&w->inside);
    return NULL;
}

static void test_thread_exit(void)
{
    static struct brisk_stats before;
    static struct worker w;
    const size_t size = 512;
    size_t ci = class_index(size);
    brisk_stats(&before);
    w.size = size;
    w.count = 3000;
    w.keep = 100;
    w.kept = malloc(w.keep * sizeof(void *));
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, worker_main, &w) == 0);
    pthread_join(t, NULL);

    CHECK(w.inside.thread_caches == before.thread_caches + 1,
          "while the worker ran: %zu caches, before %zu", w.inside.thread_caches,
          before.thread_caches);
    size_t worker_cached = w.inside.classes[ci].cached_objects -
                           before.classes[ci].cached_objects;
    CHECK(w.inside.classes[ci].cached_objects > before.classes[ci].cached_objects,
          "the worker cached nothing of class %zu", before.classes[ci].size);
    CHECK(w.inside.classes[ci].live_objects == before.classes[ci].live_objects + w.keep,
          "worker holds %u blocks; live %zu -> %zu", w.keep, before.classes[ci].live_objects,
          w.inside.classes[ci].live_objects);

    stats();
    check_consistent("after thread exit");
    CHECK(st.thread_caches == before.thread_caches, "after exit: %zu caches, before %zu",
          st.thread_caches, before.thread_caches);
    CHECK(st.classes[ci].cached_objects == before.classes[ci].cached_objects,
          "exited thread's %zu cached blocks still counted in caches (%zu -> %zu)",
          worker_cached, before.classes[ci].cached_objects, st.classes[ci].cached_objects);
    CHECK(st.cached_bytes == before.cached_bytes, "cached_bytes %zu -> %zu after exit",
          before.cached_bytes, st.cached_bytes);
    CHECK(st.classes[ci].central_objects >=
              before.classes[ci].central_objects + worker_cached ||
              st.classes[ci].spans < w.inside.classes[ci].spans,
          "flushed blocks did not reach the central list: central %zu -> %zu (+%zu expected)",
          before.classes[ci].central_objects, st.classes[ci].central_objects, worker_cached);
    CHECK(st.classes[ci].live_objects == before.classes[ci].live_objects + w.keep,
          "live %zu -> %zu, the worker left %u", before.classes[ci].live_objects,
          st.classes[ci].live_objects, w.keep);

    /* the kept blocks, allocated by a thread that is gone, are intact and
     * can be freed here */
    for (unsigned i = 0; i < w.keep; i++) {
        unsigned char *p = w.kept[i];
        REQUIRE(p != NULL);
        CHECK_LIMITED(p[0] == (i & 0xff) && p[size - 1] == (i & 0xff), "kept block %u damaged",
                      i);
        CHECK_LIMITED(brisk_malloc_usable_size(p) >= size, "usable size of kept block %u", i);
        brisk_free(p);
    }
    free(w.kept);
    stats();
    CHECK(st.allocated == before.allocated, "allocated %zu -> %zu after freeing everything",
          before.allocated, st.allocated);
}

/* Several threads allocate, hand blocks to the next thread and free what
 * they were handed; afterwards nothing is live and every cache is gone. */
#define NTHREADS 4
#define PER      4000

static void *ring[NTHREADS][PER];
static pthread_barrier_t barrier;

static void *ring_main(void *arg)
{
    unsigned id = (unsigned)(uintptr_t)arg;
    for (unsigned i = 0; i < PER; i++) {
        size_t size = 16 + (size_t)((i * 7919u + id * 104729u) % 40000u);
        if (i % 97 == 0)
            size = 300000 + i;                   /* a large block now and then */
        unsigned char *p = brisk_malloc(size);
        if (p) {
            p[0] = (unsigned char)id;
            p[size - 1] = (unsigned char)i;
        }
        ring[id][i] = p;
    }
    pthread_barrier_wait(&barrier);
    unsigned from = (id + 1) % NTHREADS;
    for (unsigned i = 0; i < PER; i++) {
        unsigned char *p = ring[from][i];
        if (!p || p[0] != from)
            return (void *)1;
        brisk_free(p);
    }
    return NULL;
}

static void test_cross_thread(void)
{
    static struct brisk_stats before;
    brisk_stats(&before);
    pthread_t t[NTHREADS];
    pthread_barrier_init(&barrier, NULL, NTHREADS);
    for (unsigned i = 0; i < NTHREADS; i++)
        REQUIRE(pthread_create(&t[i], NULL, ring_main, (void *)(uintptr_t)i) == 0);
    for (unsigned i = 0; i < NTHREADS; i++) {
        void *r;
        pthread_join(t[i], &r);
        CHECK(r == NULL, "thread %u found a damaged or missing block", i);
    }
    pthread_barrier_destroy(&barrier);
    stats();
    check_consistent("after the ring");
    CHECK(st.thread_caches == before.thread_caches, "%zu caches after the ring, %zu before",
          st.thread_caches, before.thread_caches);
    CHECK(st.allocated == before.allocated, "allocated %zu -> %zu after the ring",
          before.allocated, st.allocated);
    CHECK(st.large_allocated == before.large_allocated, "large_allocated %zu -> %zu",
          before.large_allocated, st.large_allocated);
    CHECK(st.cached_bytes == before.cached_bytes, "cached_bytes %zu -> %zu", before.cached_bytes,
          st.cached_bytes);
}

/* Small blocks on pages outside the page map's window (a heap that grew past
 * it) reach free() with class 0 in the window: the slow path must find
 * their class in the tree and cache them like any other, and still catch a
 * double free.  Simulated by clearing the window byte of a live block's
 * slot for the duration of the test. */
static void test_outside_window(void)
{
    void *keep = brisk_malloc(48);             /* holds the span */
    void *p = brisk_malloc(48);
    REQUIRE(keep != NULL && p != NULL);
    uintptr_t w = bk_pm_window_index((uintptr_t)p);
    CHECK(w < BK_PM_WINDOW_SLOTS, "a fresh small block %p is outside the window", p);
    if (w >= BK_PM_WINDOW_SLOTS) {
        brisk_free(p);
        brisk_free(keep);
        return;
    }
    uint8_t cls = bk_pm_window[w];
    CHECK(cls == bk_size_to_class(48), "window class %u, want %u", cls, bk_size_to_class(48));
    stats();
    size_t cached = st.classes[class_index(48)].cached_objects;
    bk_pm_window[w] = 0;
    brisk_free(p);
    stats();
    CHECK(st.classes[class_index(48)].cached_objects == cached + 1,
          "a slow-path free was not cached (%zu -> %zu)", cached,
          st.classes[class_index(48)].cached_objects);
    void *q = brisk_malloc(48);
    CHECK(q == p, "the cached block did not come back: %p, want %p", q, p);
    bk_pm_window[w] = cls;
    brisk_free(q);
    brisk_free(keep);
}

/* Slow start (thread_cache.c): a new thread's first refills of a class take
 * 1, 2, 4, ... objects, and its list's capacity grows only when a refill
 * needs more than it has: 63 live 64-byte blocks (six refills) leave one
 * batch of capacity, not one per refill. */
static void *slow_start_thread(void *arg)
{
    enum { LIVE = 63 };
    void *blocks[LIVE];
    unsigned cls = bk_size_to_class(64);
    for (int i = 0; i < LIVE; i++)
        blocks[i] = brisk_malloc(64);
    *(uint32_t *)arg = bk_tc->cap[cls];
    for (int i = 0; i < LIVE; i++)
        brisk_free(blocks[i]);
    return NULL;
}

static void test_slow_start(void)
{
    uint32_t cap = UINT32_MAX;
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, slow_start_thread, &cap) == 0);
    pthread_join(t, NULL);
    unsigned batch = bk_classes[bk_size_to_class(64)].batch;
    CHECK(cap == batch, "after 63 mallocs of 64 bytes a new thread's capacity is %u, not "
          "one batch (%u)", cap, batch);
}

/* Small sizes past the lookup table (BK_LOOKUP_MAX < size <= BK_SMALL_MAX)
 * miss malloc's fast path but are still served from the thread's list: a
 * block freed into the cache comes back for the next malloc of its class,
 * with the list's length and room kept in step. */
static void test_past_lookup(void)
{
    const size_t sizes[] = { BK_LOOKUP_MAX + 1, 40000, 65536, 100000, BK_SMALL_MAX };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        unsigned cls = bk_size_to_class(n);
        CHECK(cls > bk_size_to_class(BK_LOOKUP_MAX) && bk_classes[cls].size >= n,
              "size %zu -> class %u of %u bytes", n, cls, bk_classes[cls].size);
        void *a = brisk_malloc(n), *b = brisk_malloc(n);
        REQUIRE(a && b);
        memset(a, 1, n);
        brisk_free(b);
        CHECK(bk_tc_lists.head[cls] == b, "size %zu: freed block not at the list head", n);
        uint16_t room = bk_tc_lists.room[cls];
        void *c = brisk_malloc(n);
        CHECK(c == b, "size %zu: malloc did not take the cached block (%p, cached %p)", n, c, b);
        CHECK(bk_tc_lists.room[cls] == room + 1, "size %zu: room %u after the pop, want %u", n,
              bk_tc_lists.room[cls], room + 1);
        CHECK(brisk_malloc_usable_size(c) == bk_classes[cls].size, "size %zu: usable %zu", n,
              brisk_malloc_usable_size(c));
        brisk_free(a);
        brisk_free(c);
    }
}

/* Slow start takes whole cache lines: a new thread's first refill of the
 * 48-byte class takes a multiple of 4 objects (lcm(48, 64) = 192 bytes),
 * so that two threads starting on a fresh span never share a line. */
static void *line_thread(void *arg)
{
    unsigned cls = bk_size_to_class(48);
    void *p = brisk_malloc(48);
    *(uint32_t *)arg = bk_tc->cap[cls] - bk_tc_lists.room[cls] + 1;   /* taken: listed + returned */
    brisk_free(p);
    return NULL;
}

static void test_slow_start_lines(void)
{
    uint32_t taken = 0;
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, line_thread, &taken) == 0);
    pthread_join(t, NULL);
    CHECK(taken >= 4 && taken % 4 == 0, "a new thread's first refill of 48-byte blocks took %u",
          taken);
}

/* Each list's length is its capacity minus its room, through frees that
 * find lists full (free's room test borrows, and the miss branch must put
 * room back before the slow path flushes or grows), refills, and frees of
 * more blocks than a list may hold.  Runs in a thread of its own, so the
 * lists start empty. */
static uint32_t list_length(unsigned cls)
{
    uint32_t n = 0;
    for (void **p = bk_tc_lists.head[cls]; p; p = p[0])
        n++;
    return n;
}

static void check_lists(const char *when, const size_t *sizes, unsigned nsizes)
{
    for (unsigned i = 0; i < nsizes; i++) {
        unsigned cls = bk_size_to_class(sizes[i]);
        uint32_t cap = bk_tc->cap[cls], room = bk_tc_lists.room[cls];
        CHECK(room <= cap && list_length(cls) == cap - room,
              "%s: class %u lists %u blocks, capacity %u, room %u", when, bk_classes[cls].size,
              list_length(cls), cap, room);
    }
}

static void *lists_thread(void *arg)
{
    (void)arg;
    static const size_t sizes[] = { 16, 48, 512, 8192, 65536 };
    enum { N = 3000 };
    static void *blocks[N];
    for (unsigned round = 0; round < 3; round++) {
        for (unsigned i = 0; i < 5; i++) {
            for (unsigned k = 0; k < N; k++)
                REQUIRE((blocks[k] = brisk_malloc(sizes[i])) != NULL);
            check_lists("after the mallocs", sizes, 5);
            for (unsigned k = 0; k < N; k++) {
                brisk_free(blocks[k]);
                if (k % 97 == 0)
                    check_lists("during the frees", sizes, 5);
            }
            check_lists("after the frees", sizes, 5);
        }
    }
    return NULL;
}

static void test_lists_match_room(void)
{
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, lists_thread, NULL) == 0);
    pthread_join(t, NULL);
}

/* After a thread's cache is destroyed (brisk's key destructor ran), its
 * lists are empty with no room, so what it allocates and frees in later
 * destructors misses the fast paths, goes to the central lists, and leaves
 * the lists as they were (free's borrow put back). */
static pthread_key_t late_key;
static int late_ok = -1;

static void late_destructor(void *arg)
{
    (void)arg;
    int ok = 1;
    for (unsigned round = 0; round < 50; round++) {
        void *p = brisk_malloc(64), *q = brisk_malloc(1000);
        ok &= p != NULL && q != NULL;
        memset(p, 1, 64);
        brisk_free(p);
        brisk_free(q);
    }
    for (unsigned cls = 1; cls < BK_NUM_CLASSES; cls++)
        ok &= bk_tc_lists.head[cls] == NULL && bk_tc_lists.room[cls] == 0;
    late_ok = ok;
}

static void *late_thread(void *arg)
{
    (void)arg;
    void *p = brisk_malloc(64);   /* makes the cache (and its destructor) */
    brisk_free(p);
    pthread_setspecific(late_key, (void *)1);
    return NULL;
}

static void test_after_thread_exit(void)
{
    /* Created after brisk's key: its destructor runs after brisk's. */
    REQUIRE(pthread_key_create(&late_key, late_destructor) == 0);
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, late_thread, NULL) == 0);
    pthread_join(t, NULL);
    CHECK(late_ok == 1, "allocation after the cache's destruction: lists not empty, or "
          "malloc failed (%d)", late_ok);
    stats();
    check_consistent("after allocations in a late destructor");
}

/* Orphans: threads whose first allocator calls come in glibc's last round
 * of key destructors get caches whose destructor never runs.  Statistics
 * must retire them (not read their lists, which were in TLS glibc has
 * since freed or handed to a new thread), the count of caches must come
 * back to where it was, and a thread made afterwards on a reused stack
 * must start with empty lists. */
enum { ORPHAN_BLOCKS = 300 };
static pthread_key_t orphan_key;

static void orphan_destructor(void *arg)
{
    uintptr_t round = (uintptr_t)arg;
    if (round < 4) {              /* rounds 1-3: ask glibc for another */
        pthread_setspecific(orphan_key, (void *)(round + 1));
        return;
    }
    void *blocks[ORPHAN_BLOCKS];  /* round 4, the last: the cache is made now */
    for (int i = 0; i < ORPHAN_BLOCKS; i++)
        blocks[i] = brisk_malloc(64 + (size_t)(i % 4) * 64);
    for (int i = 0; i < ORPHAN_BLOCKS; i++)
        brisk_free(blocks[i]);
}

static void *orphan_thread(void *arg)
{
    (void)arg;
    pthread_setspecific(orphan_key, (void *)1);   /* no allocation before exit */
    return NULL;
}

static void *fresh_thread(void *arg)
{
    int empty = 1;
    for (unsigned cls = 1; cls < BK_NUM_CLASSES; cls++)
        empty &= bk_tc_lists.head[cls] == NULL && bk_tc_lists.room[cls] == 0;
    *(int *)arg = empty;
    brisk_free(brisk_malloc(64));
    return NULL;
}

static void test_orphans(void)
{
    static struct brisk_stats before;
    brisk_stats(&before);
    REQUIRE(pthread_key_create(&orphan_key, orphan_destructor) == 0);
    for (int i = 0; i < 20; i++) {
        pthread_t t;
        REQUIRE(pthread_create(&t, NULL, orphan_thread, NULL) == 0);
        pthread_join(t, NULL);
    }
    stats();
    check_consistent("after orphaned caches");
    CHECK(st.thread_caches == before.thread_caches,
          "%zu caches after 20 orphans, %zu before", st.thread_caches, before.thread_caches);
    for (int i = 0; i < 20; i++) {
        int empty = 0;
        pthread_t t;
        REQUIRE(pthread_create(&t, NULL, fresh_thread, &empty) == 0);
        pthread_join(t, NULL);
        CHECK(empty, "a new thread found lists left by an orphan");
    }
    stats();
    check_consistent("after new threads on orphans' stacks");
    CHECK(st.thread_caches == before.thread_caches,
          "%zu caches after the new threads, %zu before", st.thread_caches,
          before.thread_caches);
}

int main(void)
{
    /* The first block is a 20 GiB one, freed at once: the window must not be
     * placed around its mapping (the regions that follow land in the hole
     * it leaves, above where such a window would end), but around the first
     * region.  test_outside_window checks where small blocks fall. */
    void *huge = brisk_malloc((size_t)20 << 30);
    if (!huge)
        fprintf(stderr, "test_thread_cache: no 20 GiB of address space; first block small\n");
    brisk_free(huge);
    brisk_free(brisk_malloc(1));   /* initialise */
    if (bk_opt(BK_OPT_tcache_max_bytes) != BUDGET) {
        fprintf(stderr, "test_thread_cache: needs the default tcache_max_bytes (BRISK_CONF=%s)\n",
                getenv("BRISK_CONF") ? getenv("BRISK_CONF") : "");
        return 1;
    }
    test_budget();
    test_outside_window();
    test_slow_start();
    test_slow_start_lines();
    test_past_lookup();
    test_thread_exit();
    test_lists_match_room();
    test_after_thread_exit();
#ifndef BK_TSAN
    /* ThreadSanitizer finishes a thread in its own last-round key
     * destructor; its interceptors crash when called after that. */
    test_orphans();
#endif
    test_cross_thread();
    test_budget();                  /* the cache is still bounded after all that */
    return check_report("test_thread_cache");
}
