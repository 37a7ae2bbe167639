/* stress_random: N threads doing random allocation calls with content
 * verification.
 *
 * Each thread owns a table of slots.  Every step picks a slot at random: an
 * empty slot gets a new block from one of malloc, calloc, realloc(NULL),
 * reallocarray(NULL), memalign, aligned_alloc, posix_memalign, valloc or
 * pvalloc, of a size across every small class up to 256 KiB and now and then
 * a large block (300 KiB - 20 MiB); a full slot is verified and then freed
 * (free or free_sized), reallocated (smaller, bigger, across classes, to 0),
 * re-verified, or swapped with a slot of a global exchange table, so that
 * blocks also travel to and are freed by other threads.  Thread 0 samples
 * brisk's statistics and trims memory now and then, concurrently with the
 * others.
 *
 * Checks: every block's pattern before each free/realloc and after
 * travelling; calloc memory reads zero; alignments; malloc_usable_size >=
 * requested; realloc keeps the old contents.  Any failure prints the block
 * and exits 1.
 *
 * usage: stress_random [-t threads] [-n steps per thread] [-s max seconds]
 *                      [-x slots per thread] [-S seed] */
#include "stress_common.h"

#define MAX_LARGE_LIVE 1       /* large blocks a thread holds at once */
#define XPOOL 256

struct slot {
    struct blk b;              /* b.p == NULL: empty */
};

struct xslot {
    pthread_mutex_t m;
    struct blk b;
} xpool[XPOOL];

struct worker {
    pthread_t th;
    unsigned id;
    long steps;
    long slots;
    uint64_t seed;
    /* counters */
    long allocs, frees, reallocs, swaps, large;
};

enum how {
    H_MALLOC = 1, H_CALLOC, H_REALLOC_NULL, H_REALLOCARRAY, H_MEMALIGN, H_ALIGNED_ALLOC,
    H_POSIX_MEMALIGN, H_VALLOC, H_PVALLOC, H_REALLOC
};

static bool is_large(size_t n)
{
    return n > 256 * KIB;
}

/* A power of two in [1, max]. */
static size_t pick_align(rng_t *r, unsigned max_log)
{
    return (size_t)1 << rng_below(r, max_log + 1);
}

static void do_alloc(struct worker *w, rng_t *r, struct blk *b, int *large_live)
{
    size_t size;
    bool large = *large_live < MAX_LARGE_LIVE && rng_below(r, 400) == 0;
    size = large ? pick_large_size(r) : pick_small_size(r);
    uint64_t x = rng_below(r, 100);
    void *p = NULL;
    size_t align = 16;
    unsigned how;
    if (x < 45) {
        how = H_MALLOC;
        p = S_malloc(size);
    } else if (x < 60) {
        how = H_CALLOC;
        size_t nmemb = (size_t)rng_range(r, 1, 8);
        size_t each = (size + nmemb - 1) / nmemb;
        size = nmemb * each;
        p = S_calloc(nmemb, each);
    } else if (x < 65) {
        how = H_REALLOC_NULL;
        p = S_realloc(NULL, size);
    } else if (x < 70) {
        how = H_REALLOCARRAY;
        size_t nmemb = (size_t)rng_range(r, 1, 4);
        size_t each = (size + nmemb - 1) / nmemb;
        size = nmemb * each;
        p = S_reallocarray(NULL, nmemb, each);
    } else if (x < 79) {
        how = H_MEMALIGN;
        /* Mostly up to 64 KiB; sometimes beyond the small classes;
         * sometimes not a power of two, which memalign rounds up. */
        uint64_t k = rng_below(r, 20);
        if (k == 0) {
            /* Up to 2 MiB; now and then 4 - 64 MiB, beyond the page heap's
             * largest span, which takes a mapping of its own. */
            align = rng_below(r, 10) == 0 ? (size_t)1 << rng_range(r, 22, 26) : pick_align(r, 21);
            p = S_memalign(align, size);
        } else if (k < 4) {
            size_t a = pick_align(r, 12);
            size_t odd = a + (size_t)rng_range(r, 1, a > 1 ? a - 1 : 1);
            align = a * 2;      /* the next power of two above `odd` */
            if (a == 1)
                align = 2;
            p = S_memalign(odd, size);
        } else {
            align = pick_align(r, 16);
            p = S_memalign(align, size);
        }
    } else if (x < 86) {
        how = H_ALIGNED_ALLOC;
        align = pick_align(r, rng_below(r, 10) == 0 ? 20 : 13);
        p = S_aligned_alloc(align, size);
    } else if (x < 95) {
        how = H_POSIX_MEMALIGN;
        align = sizeof(void *) << rng_below(r, 14);
        int e = S_posix_memalign(&p, align, size);
        CHECK(e == 0, "posix_memalign(%zu, %zu) returned %d", align, size, e);
    } else if (x < 98) {
        how = H_VALLOC;
        align = 4096;
        p = S_valloc(size);
    } else {
        how = H_PVALLOC;
        align = 4096;
        p = S_pvalloc(size);
#ifndef USE_LIBC_NAMES
        /* brisk's pvalloc rounds the size up to whole pages, at least one.
         * (glibc's own pvalloc does not reliably: the libc-names build, which
         * may run without brisk, only expects the size asked for.) */
        size = size ? (size + 4095) & ~(size_t)4095 : 4096;
#endif
    }
    blk_init(b, p, size, align, how, w->id);
    if (how == H_CALLOC)
        blk_check_zero(b);
    /* Any allocation whose requested size is large (including pvalloc's
     * rounding) counts against the thread's large quota. */
    if (is_large(b->size)) {
        (*large_live)++;
        w->large++;
    }
    blk_fill(b);
    w->allocs++;
}

static void do_free(struct worker *w, rng_t *r, struct blk *b, int *large_live)
{
    blk_check(b, "corrupted before free");
    if (is_large(b->size))
        (*large_live)--;
    if (rng_below(r, 8) == 0)
        S_free_sized(b->p, b->size);
    else
        S_free(b->p);
    b->p = NULL;
    w->frees++;
}

static void do_realloc(struct worker *w, rng_t *r, struct blk *b, int *large_live)
{
    blk_check(b, "corrupted before realloc");
    size_t old = b->size;
    size_t ns;
    uint64_t x = rng_below(r, 100);
    if (x < 3) {
        /* glibc semantics: realloc(p, 0) frees p and returns NULL. */
        void *q = S_realloc(b->p, 0);
        CHECK(q == NULL, "realloc(%p, 0) returned %p, expected NULL", (void *)b->p, q);
        if (is_large(old))
            (*large_live)--;
        b->p = NULL;
        w->frees++;
        return;
    }
    if (x < 30)
        ns = old ? (size_t)rng_range(r, 1, old) : 1;           /* shrink */
    else if (x < 60)
        ns = old + (size_t)rng_range(r, 1, old / 2 + 64);      /* grow a bit */
    else if (x < 61 && *large_live < MAX_LARGE_LIVE && !is_large(old))
        ns = pick_large_size(r);                                /* small -> large */
    else
        ns = pick_small_size(r) | 1;                            /* anywhere */
    if (is_large(ns) && !is_large(old) && *large_live >= MAX_LARGE_LIVE)
        ns = 256 * KIB;
    if (ns > 24 * MIB)
        ns = 24 * MIB;
    void *q = S_realloc(b->p, ns);
    CHECK(q != NULL, "realloc(%p, %zu) returned NULL", (void *)b->p, ns);
    struct blk nb = *b;
    nb.p = q;
    blk_check_prefix(&nb, old < ns ? old : ns);
    if (is_large(old))
        (*large_live)--;
    blk_init(b, q, ns, 16, H_REALLOC, w->id);
    blk_fill(b);
    if (is_large(ns))
        (*large_live)++;
    w->reallocs++;
}

/* Swap a slot with a random slot of the global table: the block we give may
 * be freed by another thread, the one we get was allocated by another. */
static void do_swap(struct worker *w, rng_t *r, struct blk *b)
{
    struct xslot *x = &xpool[rng_below(r, XPOOL)];
    if (b->p && is_large(b->size))
        return;                 /* large blocks stay home: bounded memory */
    if (b->p)
        blk_check(b, "corrupted before exchange");
    pthread_mutex_lock(&x->m);
    struct blk got = x->b;
    x->b = *b;
    pthread_mutex_unlock(&x->m);
    *b = got;
    if (b->p)
        blk_check(b, "corrupted while travelling between threads");
    w->swaps++;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    rng_t r = { w->seed };
    struct slot *slots = calloc((size_t)w->slots, sizeof *slots);
    CHECK(slots != NULL, "out of memory for the slot table");
    int large_live = 0;
    for (long step = 0; step < w->steps; step++) {
        if ((step & 255) == 0 && time_up())
            break;
        struct blk *b = &slots[rng_below(&r, (uint64_t)w->slots)].b;
        if (!b->p) {
            if (rng_below(&r, 64) == 0)
                do_swap(w, &r, b);
            else
                do_alloc(w, &r, b, &large_live);
        } else {
            uint64_t x = rng_below(&r, 100);
            if (x < 55)
                do_free(w, &r, b, &large_live);
            else if (x < 85)
                do_realloc(w, &r, b, &large_live);
            else if (x < 88)
                do_swap(w, &r, b);
            else {
                blk_check(b, "corrupted while held");
                CHECK(S_malloc_usable_size(b->p) >= b->size,
                      "malloc_usable_size(%p) = %zu < %zu", (void *)b->p,
                      S_malloc_usable_size(b->p), b->size);
            }
        }
        /* Thread 0: statistics and trimming while everyone allocates. */
        if (w->id == 0 && (step & 16383) == 16383) {
            if (rng_below(&r, 4) == 0)
                S_trim();
            else
                S_stats();
        }
    }
    for (long i = 0; i < w->slots; i++)
        if (slots[i].b.p)
            do_free(w, &r, &slots[i].b, &large_live);
    CHECK(large_live == 0, "thread %u: large-block count is %d at the end", w->id, large_live);
    free(slots);
    return NULL;
}

int main(int argc, char **argv)
{
    struct stress_opts o = { .threads = 8, .iters = 200000, .seconds = 60, .extra = 256,
                             .seed = 0x5eed };
    stress_parse(argc, argv, &o, "[-t threads] [-n steps] [-s seconds] [-x slots] [-S seed]");
    stress_check_backend();
    init_class_sizes();
    if (o.extra < 1)
        o.extra = 1;
    for (int i = 0; i < XPOOL; i++)
        pthread_mutex_init(&xpool[i].m, NULL);

    struct worker *ws = calloc((size_t)o.threads, sizeof *ws);
    CHECK(ws != NULL, "out of memory");
    for (long i = 0; i < o.threads; i++) {
        ws[i].id = (unsigned)i;
        ws[i].steps = o.iters;
        ws[i].slots = o.extra;
        ws[i].seed = o.seed * 0x100000001b3ull + (uint64_t)i * 0x9E3779B97F4A7C15ull + 1;
        stress_pthread_create(&ws[i].th, worker_main, &ws[i]);
    }
    long allocs = 0, frees = 0, reallocs = 0, swaps = 0, large = 0;
    for (long i = 0; i < o.threads; i++) {
        stress_pthread_join(ws[i].th);
        allocs += ws[i].allocs;
        frees += ws[i].frees;
        reallocs += ws[i].reallocs;
        swaps += ws[i].swaps;
        large += ws[i].large;
    }
    /* What is left in the exchange table was allocated by threads that are
     * gone: verify and free it from here. */
    long left = 0;
    for (int i = 0; i < XPOOL; i++) {
        if (xpool[i].b.p) {
            blk_free(&xpool[i].b, "corrupted in the exchange table");
            frees++;
            left++;
        }
        pthread_mutex_destroy(&xpool[i].m);
    }
    CHECK(allocs == frees, "%ld allocations but %ld frees", allocs, frees);
    free(ws);
    stress_done("%ld threads: %ld allocations (%ld large), %ld reallocs, %ld swaps, "
                "%ld freed from the exchange table",
                o.threads, allocs, large, reallocs, swaps, left);
    return 0;
}
