/* Memory return: the page heap's decay with an injected clock (ages, reuse
 * that is never released, the dirty cap, pressure on pieces, region unmap
 * and retain, decay 0 and never), then ticks through the public API (idle
 * stripes drain, unused thread-cache lists are trimmed), and, run as
 * `test_decay background` with BRISK_CONF=decay_ms=300,background_thread=1,
 * the background thread giving memory back while the program makes no
 * allocator call at all. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../include/brisk.h"
#include "check.h"
#include "core/central_list.h"
#include "core/decay.h"
#include "core/size_class.h"
#include "os/os.h"
#include "page_heap/page_heap.h"

#define MIB ((size_t)1 << 20)
#define PAGES(bytes) ((bytes) >> BK_PAGE_SHIFT)

static uint64_t fake_now = 100000;
static uint64_t fake_clock(void) { return fake_now; }

static struct bk_ph_stats ph_stats(void)
{
    struct bk_ph_stats st;
    bk_ph_get_stats(&st);
    return st;
}

static void configure(uint32_t decay_ms, size_t dirty_max, bool retain)
{
    struct bk_ph_config cfg = { .dirty_max = dirty_max, .decay_ms = decay_ms,
                                .retain = retain, .thp = BK_PH_THP_AUTO };
    bk_ph_configure(&cfg);
}

static struct bk_span *touched_span(size_t bytes)
{
    struct bk_span *s = bk_ph_alloc_span(PAGES(bytes), 1, 0);
    REQUIRE(s != NULL);
    memset((void *)s->start, 0x5a, bytes);
    return s;
}

static bool reads_zero(uintptr_t p, size_t n)
{
    for (size_t i = 0; i < n; i += 4096)
        if (((const unsigned char *)p)[i])
            return false;
    return true;
}

static void test_ages(void)
{
    configure(1000, 64 * MIB, false);
    struct bk_span *s = touched_span(4 * MIB);
    uintptr_t start = s->start;
    bk_ph_free_span(s);
    CHECK(ph_stats().dirty_free == 4 * MIB, "dirty after free: %zu", ph_stats().dirty_free);
    fake_now += 500;
    CHECK(bk_ph_decay() == 0, "a block 500 ms old was released (decay 1000 ms)");
    fake_now += 500;
    size_t r = bk_ph_decay();
    CHECK(r == 4 * MIB, "a block 1000 ms old: released %zu", r);
    CHECK(ph_stats().dirty_free == 0, "dirty after decay: %zu", ph_stats().dirty_free);
    /* the region is kept (large spans have regions of their own, and one
     * empty region stays mapped besides the small-span region of main()'s
     * brisk_malloc(1)), and the pages were really given back: with
     * MADV_DONTNEED they read as zero */
    CHECK(ph_stats().regions == 2, "regions %zu", ph_stats().regions);
    CHECK(reads_zero(start, 4 * MIB), "released pages still hold their contents");

    /* reuse within decay_ms is never released */
    size_t before = ph_stats().released_total;
    for (int i = 0; i < 20; i++) {
        s = touched_span(8 * MIB);
        bk_ph_free_span(s);
        fake_now += 600;
        bk_ph_decay();
    }
    CHECK(ph_stats().released_total == before, "memory reused every 600 ms was released: %zu",
          ph_stats().released_total - before);
    fake_now += 1000;
    CHECK(bk_ph_decay() == 8 * MIB, "the reused block once idle was not released");
}

/* A big free block whose one edge stays busy: spans taken from it and
 * freed back every 100 ms keep the block's mean free time young (each
 * merge pulls it a quarter of the way to now), yet its hugepages that no
 * span touched go once they have been idle for decay_ms, and the busy ones
 * stay. */
static void test_busy_edge(void)
{
    configure(1000, 64 * MIB, false);
    struct bk_span *big = touched_span(16 * MIB);
    uintptr_t start = big->start;
    bk_ph_free_span(big);
    size_t before = ph_stats().released_total;
    uintptr_t edge = 0;
    for (int i = 0; i < 20; i++) {
        fake_now += 100;
        struct bk_span *s = touched_span(4 * MIB);
        CHECK(s->start >= start && s->start + 4 * MIB <= start + 16 * MIB && (!edge || s->start == edge),
              "step %d: the 4 MiB span is not at the same place in the freed block", i);
        edge = s->start;
        bk_ph_free_span(s);
        bk_ph_decay();
    }
    size_t released = ph_stats().released_total - before;
    CHECK(released == 12 * MIB, "released %zu MiB of the idle 12 MiB", released / MIB);
    CHECK(!reads_zero(edge, 4 * MIB), "the busy edge was released");
    for (uintptr_t p = start; p < start + 16 * MIB; p += 2 * MIB)
        if (p < edge || p >= edge + 4 * MIB)
            CHECK(reads_zero(p, 2 * MIB), "idle hugepage at +%zu MiB still resident",
                  (size_t)(p - start) / MIB);
    fake_now += 1000;
    CHECK(bk_ph_decay() == 4 * MIB, "the edge, once idle, was not released");
}

static void test_cap(void)
{
    /* more than dirty_max free: whole hugepages go back at once, on the
     * free, down to half the cap */
    configure(1000, 16 * MIB, false);
    enum { N = 16 };
    struct bk_span *s[N];
    for (int i = 0; i < N; i++)
        s[i] = touched_span(2 * MIB);
    for (int i = 0; i < N; i++)
        bk_ph_free_span(s[i]);
    size_t dirty = ph_stats().dirty_free;
    CHECK(dirty <= 16 * MIB, "dirty %zu MiB after freeing 32 MiB (cap 16)", dirty / MIB);
    CHECK(ph_stats().released_total >= 16 * MIB, "released only %zu MiB",
          ph_stats().released_total / MIB);
    bk_ph_release_all(false);
}

static void test_pieces(void)
{
    /* pieces of partly used hugepages: kept while under half the cap, and
     * once over it, released when decay_ms old */
    configure(1000, 3 * MIB, false);
    enum { N = 512 };
    static struct bk_span *s[N];
    for (int i = 0; i < N; i++)
        s[i] = touched_span(8192);
    for (int i = 0; i < N; i += 2)
        bk_ph_free_span(s[i]);                    /* 256 single free pages: 2 MiB */
    CHECK(ph_stats().dirty_free == 2 * MIB, "dirty pieces %zu", ph_stats().dirty_free);
    CHECK(bk_ph_decay() == 0, "young pieces released");
    fake_now += 1000;
    CHECK(bk_ph_decay() == 2 * MIB, "old pieces over the cap not released");
    for (int i = 1; i < N; i += 2)
        bk_ph_free_span(s[i]);
    bk_ph_release_all(false);
}

static void test_regions(void)
{
    /* empty regions are unmapped once decay_ms old, keeping one empty one
     * (next to the small-span region of main()); with retain they stay */
    for (int retain = 0; retain < 2; retain++) {
        configure(1000, 1024 * MIB, retain);
        struct bk_span *s[4];
        for (int i = 0; i < 4; i++)
            s[i] = bk_ph_alloc_span(PAGES(BK_LARGE_MAX), 1, 0);
        for (int i = 0; i < 4; i++)
            REQUIRE(s[i] != NULL);
        size_t regions = ph_stats().regions;
        CHECK(regions >= 2, "4 x 32 MiB in %zu regions", regions);
        for (int i = 0; i < 4; i++)
            bk_ph_free_span(s[i]);
        fake_now += 1000;
        bk_ph_decay();
        if (retain)
            CHECK(ph_stats().regions == regions, "retain: %zu -> %zu regions", regions,
                  ph_stats().regions);
        else
            CHECK(ph_stats().regions == 2, "%zu regions left, want 2", ph_stats().regions);
    }
    configure(1000, 64 * MIB, false);
    bk_ph_release_all(false);
    /* the one left holds the span of brisk_malloc(1) in main() */
    CHECK(ph_stats().regions == 1, "malloc_trim left %zu regions", ph_stats().regions);
}

/* Small spans and large spans never share a region: interleave them, and
 * each kind stays in regions of its own (a churning heap of both would
 * otherwise scatter small spans between the large blocks' pages). */
static void test_segregation(void)
{
    configure(1000, 64 * MIB, false);
    enum { N = 24 };
    struct bk_span *small[N], *large[N];
    unsigned cls = bk_size_to_class(1024);
    for (int i = 0; i < N; i++) {
        small[i] = bk_ph_alloc_span(bk_classes[cls].span_pages, bk_classes[cls].span_pages, cls);
        large[i] = bk_ph_alloc_span(PAGES(MIB) + (size_t)i, 1, 0);
        REQUIRE(small[i] != NULL && large[i] != NULL);
    }
    for (int i = 0; i < N; i++) {
        CHECK(!small[i]->region->large, "small span %d in a large-span region", i);
        CHECK(large[i]->region->large, "large span %d in a small-span region", i);
        for (int j = 0; j < N; j++)
            CHECK_LIMITED(small[i]->region != large[j]->region,
                          "small span %d and large span %d share a region", i, j);
    }
    for (int i = 0; i < N; i++) {
        bk_ph_free_span(small[i]);
        bk_ph_free_span(large[i]);
    }
    bk_ph_release_all(false);          /* leave nothing dirty for the next test */
}

static void test_zero_and_never(void)
{
    configure(0, 64 * MIB, false);
    struct bk_span *s = touched_span(4 * MIB);
    bk_ph_free_span(s);
    CHECK(ph_stats().dirty_free == 0, "decay 0: %zu dirty after the free",
          ph_stats().dirty_free);

    configure(BK_DECAY_NEVER, 64 * MIB, false);
    s = touched_span(4 * MIB);
    bk_ph_free_span(s);
    fake_now += 3600 * 1000;
    CHECK(bk_ph_decay() == 0, "decay never: released by age");
    CHECK(bk_ph_release_all(false) == 4 * MIB, "malloc_trim with decay never");
}

/* ---- the release threshold, through the public API ------------------------ */

/* Resident OS pages of [p, p + n), p page-aligned. */
static size_t resident_pages(void *p, size_t n)
{
    static unsigned char vec[(64 * MIB) / 4096];
    size_t pages = (n + 4095) / 4096;
    REQUIRE(pages <= sizeof vec && mincore(p, n, vec) == 0);
    size_t r = 0;
    for (size_t i = 0; i < pages; i++)
        r += vec[i] & 1;
    return r;
}

static void *touched(size_t n)
{
    char *p = brisk_malloc(n);
    REQUIRE(p != NULL);
    memset(p, 0x5a, n);
    return p;
}

/* Run first, before anything frees a big block: a block freed bigger than
 * any before goes back at once and raises the threshold to its size; the
 * next one of that size stays resident (decay's business). */
static void test_release_threshold(void)
{
    if (getenv("BRISK_CONF")) {           /* written for the default options */
        printf("test_release_threshold: skipped (BRISK_CONF is set)\n");
        return;
    }
    CHECK(bk_decay_release_threshold() == BK_RELEASE_THRESHOLD_START, "threshold %zu at start",
          bk_decay_release_threshold());
    /* a small-class object above the threshold keeps its first OS page (its
     * link and free mark) and gives back the others */
    size_t big_small = 200 * 1024;
    REQUIRE(big_small <= BK_SMALL_MAX && big_small > BK_RELEASE_THRESHOLD_START);
    size_t cls_size = bk_classes[bk_size_to_class(big_small)].size;
    char *q = touched(big_small);
    REQUIRE(((uintptr_t)q & 4095) == 0);        /* its class size is a multiple of 4 KiB */
    brisk_free(q);
    CHECK(bk_decay_release_threshold() == cls_size, "threshold %zu after a %zu-byte object",
          bk_decay_release_threshold(), cls_size);
    CHECK(resident_pages(q, 4096) == 1, "the first page (link, mark) was given back");
    CHECK(resident_pages(q + 4096, cls_size - 4096) == 0, "%zu of %zu pages still resident",
          resident_pages(q + 4096, cls_size - 4096), (cls_size - 4096) / 4096);
    char *q2 = touched(big_small);               /* the same object, faulted back in */
    CHECK(q2 == q, "the cached object was not reused (%p, %p)", (void *)q2, (void *)q);
    brisk_free(q2);
    CHECK(resident_pages(q2, big_small) == big_small / 4096,
          "a second free of the size released (%zu of %zu pages resident)",
          resident_pages(q2, big_small), big_small / 4096);
    /* a smaller object stays resident */
    char *s = touched(140 * 1024);
    brisk_free(s);
    CHECK(resident_pages(s, 140 * 1024) == 140 * 1024 / 4096, "an object under the threshold "
          "was released");

    /* a large block: freed into the page heap clean */
    size_t big = 1536 * 1024;
    char *p = touched(big);
    size_t clean0 = ph_stats().clean_free, dirty0 = ph_stats().dirty_free;
    brisk_free(p);
    CHECK(bk_decay_release_threshold() == big, "threshold %zu after 1.5 MiB",
          bk_decay_release_threshold());
    CHECK(resident_pages(p, big) == 0, "%zu pages of a 1.5 MiB block still resident",
          resident_pages(p, big));
    CHECK(ph_stats().clean_free >= clean0 + big && ph_stats().dirty_free <= dirty0,
          "the block was not freed as clean: clean %zu -> %zu, dirty %zu -> %zu", clean0,
          ph_stats().clean_free, dirty0, ph_stats().dirty_free);
    /* reused: it comes back known zero (calloc needs no memset), and its
     * next free keeps it */
    char *p2 = brisk_calloc(1, big);
    struct bk_span *s2 = bk_pm_span((uintptr_t)p2);
    CHECK(p2 == p && s2 && s2->zeroed && p2[0] == 0 && p2[big - 1] == 0,
          "calloc of the released block: %p (was %p), zeroed %d", (void *)p2, (void *)p,
          s2 ? s2->zeroed : -1);
    memset(p2, 0x5a, big);
    brisk_free(p2);
    CHECK(resident_pages(p2, big) == big / 4096, "the second 1.5 MiB free released");
    CHECK(bk_decay_release_threshold() == big, "threshold moved to %zu",
          bk_decay_release_threshold());
    /* smaller large blocks stay resident too */
    char *m = touched(1 * MIB);
    brisk_free(m);
    CHECK(resident_pages(m, 1 * MIB) == 1 * MIB / 4096, "a 1 MiB free under the threshold "
          "released");
    /* blocks above a hugepage are decay's: whole free hugepages go by age */
    char *h = touched(3 * MIB);
    brisk_free(h);
    CHECK(resident_pages(h, 3 * MIB) == 3 * MIB / 4096, "a 3 MiB block released on its free");
    CHECK(bk_decay_release_threshold() == big, "threshold moved to %zu by a 3 MiB block",
          bk_decay_release_threshold());
}

/* ---- fork: free memory goes back before the fork ------------------------- */

static size_t cached(struct brisk_stats *st, size_t size);

enum { FORK_OBJECTS = 16 };
#define FORK_SIZE ((size_t)48 << 10)   /* under the threshold; no other test uses it */

/* Resident OS pages of the freed objects but their first pages (which a
 * release inside a thread cache would keep); a region the release left
 * empty may be unmapped, and none of its pages is resident. */
static size_t fork_resident(char **p)
{
    static unsigned char vec[FORK_SIZE / 4096];
    size_t r = 0;
    for (int i = 0; i < FORK_OBJECTS; i++) {
        if (mincore(p[i] + 4096, FORK_SIZE - 4096, vec) != 0) {
            REQUIRE(errno == ENOMEM, "mincore: %s", strerror(errno));
            continue;
        }
        for (size_t j = 0; j < FORK_SIZE / 4096 - 1; j++)
            r += vec[j] & 1;
    }
    return r;
}

#define FORK_ALL (FORK_OBJECTS * (FORK_SIZE - 4096) / 4096)

/* Touch and free FORK_OBJECTS objects (they sit in this thread's cache,
 * resident) and fork.  The child checks that it sees `want` of their pages
 * resident (what the parent gave back before the fork, the child never
 * had; SIZE_MAX: no check), then allocates, writes and frees one more
 * object and exits.
 * Returns how many of their pages are resident in the parent after. */
static size_t fork_after_frees(char **p, size_t want)
{
    for (int i = 0; i < FORK_OBJECTS; i++)
        p[i] = touched(FORK_SIZE);
    for (int i = 0; i < FORK_OBJECTS; i++)
        brisk_free(p[i]);
    CHECK(fork_resident(p) == FORK_ALL, "%zu of %zu freed pages resident before the fork",
          fork_resident(p), (size_t)FORK_ALL);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        if (want != SIZE_MAX && fork_resident(p) != want)
            _exit(2);
        char *q = touched(FORK_SIZE);
        brisk_free(q);
        _exit(q[1000] == 0x5a ? 0 : 1);
    }
    int status;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
          "fork child: status %#x (exit 2: it saw %s of the freed pages resident)", status,
          want ? "not all" : "some");
    return fork_resident(p);
}

/* fork_release (the default): the objects the thread cache held go back to
 * their spans, the spans (empty) to the page heap, and every free page to
 * the kernel, before the fork, so the child never has them.  At most once
 * per tick interval (250 ms with decay_ms=1000): a second fork within it
 * keeps them (checked only when the two forks really were that close;
 * timing decides nothing else).  It must be the process's first fork, so
 * that no interval has started yet. */
static void test_fork_release(void)
{
    if (getenv("BRISK_CONF")) {           /* written for the default options */
        printf("test_fork_release: skipped (BRISK_CONF is set)\n");
        return;
    }
    char *p[FORK_OBJECTS];
    uint64_t t0 = bk_os_now_ms();
    size_t left = fork_after_frees(p, 0);
    CHECK(left == 0, "%zu freed pages still resident after the fork", left);
    struct brisk_stats st;
    CHECK(cached(&st, FORK_SIZE) == 0, "%zu objects still cached after the fork",
          cached(&st, FORK_SIZE));
    left = fork_after_frees(p, SIZE_MAX);
    if (bk_os_now_ms() - t0 < 250)
        CHECK(left == FORK_ALL, "a fork within the interval released (%zu pages left)", left);
    else
        printf("test_fork_release: second fork not checked (over 250 ms after the first)\n");
}

/* Run as `test_decay fork_off` with BRISK_CONF=fork_release=0: a fork
 * gives nothing back. */
static int fork_off(void)
{
    char *p[FORK_OBJECTS];
    size_t left = fork_after_frees(p, FORK_ALL);
    CHECK(left == FORK_ALL, "fork_release=0: %zu pages left", left);
    return check_report("test_decay fork_off");
}

/* Run as `test_decay never` with BRISK_CONF=decay_ms=never: nothing goes
 * back by itself, not even before a fork. */
static int never(void)
{
    char *p = touched(1 * MIB);
    brisk_free(p);
    CHECK(resident_pages(p, 1 * MIB) == 1 * MIB / 4096, "decay_ms=never: a big free released");
    CHECK(bk_decay_release_threshold() == BK_RELEASE_THRESHOLD_START, "threshold %zu",
          bk_decay_release_threshold());
    char *q[FORK_OBJECTS];
    size_t left = fork_after_frees(q, FORK_ALL);
    CHECK(left == FORK_ALL, "decay_ms=never: a fork released (%zu pages left)", left);
    return check_report("test_decay never");
}

/* ---- ticks through the public API --------------------------------------- */

static void *free_many(void *arg)
{
    (void)arg;
    enum { N = 4000 };
    static void *p[N];
    for (int i = 0; i < N; i++)
        p[i] = brisk_malloc(64);
    for (int i = 0; i < N; i++)
        brisk_free(p[i]);
    return NULL;
}

static size_t cached(struct brisk_stats *st, size_t size)
{
    brisk_stats(st);
    return st->classes[bk_size_to_class(size) - 1].cached_objects;
}

static void test_ticks(void)
{
    static struct brisk_stats st;
    /* a thread frees 4000 objects: its flushes park batches on a stripe */
    pthread_t t;
    pthread_create(&t, NULL, free_many, NULL);
    pthread_join(t, NULL);
    unsigned cls = bk_size_to_class(64);
    struct bk_central_stats cs;
    bk_central_get_stats(cls, &cs);
    CHECK(cs.in_stripes > 0, "no batches parked after 4000 frees");
    bk_decay_tick();                   /* notes the stripes' activity */
    bk_decay_tick();                   /* nobody took a batch since: idle */
    bk_central_get_stats(cls, &cs);
    CHECK(cs.in_stripes == 0, "%zu objects still parked after an idle tick", cs.in_stripes);

    /* this thread caches 128-byte blocks, then works in another class only:
     * each tick its slow paths see halves the unused list */
    enum { N = 1000, M = 3000 };
    static void *p[M];
    for (int i = 0; i < N; i++)
        p[i] = brisk_malloc(128);
    for (int i = 0; i < N; i++)
        brisk_free(p[i]);
    size_t start = cached(&st, 128);
    CHECK(start >= 64, "only %zu 128-byte blocks cached", start);
    for (int round = 0; round < 5; round++) {
        bk_decay_tick();
        for (int i = 0; i < M; i++)
            p[i] = brisk_malloc(1024);
        for (int i = 0; i < M; i++)
            brisk_free(p[i]);
    }
    size_t end = cached(&st, 128);
    CHECK(end <= start / 4, "unused list kept %zu of %zu blocks over 5 ticks", end, start);
    CHECK(cached(&st, 1024) > 0, "the list in use was emptied");
}

/* ---- background thread ---------------------------------------------------- */

static int threads_in_process(void)
{
    DIR *d = opendir("/proc/self/task");
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        n += e->d_name[0] != '.';
    if (d)
        closedir(d);
    return n;
}

static size_t dirty_bytes(void)
{
    static struct brisk_stats st;
    brisk_stats(&st);
    return st.resident - st.active - st.metadata;
}

static int background(void)
{
    usleep(100 * 1000);
    brisk_free(brisk_malloc(1 * MIB));        /* a slow path: the first tick starts it */
    enum { N = 16 };
    void *p[N];
    for (int i = 0; i < N; i++) {
        p[i] = brisk_malloc(2 * MIB);
        REQUIRE(p[i] != NULL);
        memset(p[i], 1, 2 * MIB);
    }
    for (int i = 0; i < N; i++)
        brisk_free(p[i]);
    CHECK(dirty_bytes() >= 8 * MIB, "only %zu dirty bytes before the wait", dirty_bytes());
    /* no allocator call from here on: only the background thread can give
     * the 32 MiB back (decay_ms=300; generous wait for a loaded machine) */
    for (int i = 0; i < 50 && dirty_bytes() > 2 * MIB; i++)
        usleep(100 * 1000);
    CHECK(dirty_bytes() <= 2 * MIB, "%zu dirty bytes after 5 s idle", dirty_bytes());
    /* (sanitizer runtimes may run a thread of their own as well) */
    CHECK(threads_in_process() >= 2, "%d threads: no background thread?", threads_in_process());
    return check_report("test_decay background");
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "background") == 0)
        return background();
    if (argc > 1 && strcmp(argv[1], "never") == 0)
        return never();
    if (argc > 1 && strcmp(argv[1], "fork_off") == 0)
        return fork_off();
    brisk_free(brisk_malloc(1));              /* start-up configures the page heap */
    test_release_threshold();
    bk_ph_set_clock(fake_clock);
    test_ages();
    test_busy_edge();
    test_cap();
    test_pieces();
    test_regions();
    test_segregation();
    test_zero_and_never();
    bk_ph_set_clock(NULL);
    configure(1000, 64 * MIB, false);
    test_ticks();
    test_fork_release();
    return check_report("test_decay");
}
