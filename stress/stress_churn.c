/* stress_churn: thousands of short-lived threads.
 *
 * Threads are started in waves of W (joined before the next wave) until N
 * have run.  Each allocates a set of blocks and frees some of them, takes
 * and frees blocks that threads of earlier waves left in a shared holding
 * pool, and leaves some of its own blocks there: those outlive the thread
 * that made them (and its thread cache) and are freed later by others.
 * Thread kinds, by index:
 *  - ordinary workers, some exiting with most of their blocks still held;
 *  - "destructor" threads: two pthread keys of ours carry blocks into key
 *    destructors.  key_early is created by a constructor that runs before
 *    brisk's own constructor, so its destructor runs before brisk's
 *    thread-exit destructor in each round; key_late is created after brisk
 *    has run, so its destructor runs after brisk's (like a C++ thread_local
 *    destructor freeing memory late).  Both verify and free what they were
 *    given, allocate and free more, and re-arm themselves so that they also
 *    run in later destructor rounds, after brisk's destructor.
 *  - "first malloc in a destructor" threads: they never allocate in their
 *    body; their first allocation happens in key_late's destructor (one in
 *    eight of them only in the last destructor round glibc makes).
 *  - threads that never touch the allocator.
 * Every block is verified before it is freed; allocations and frees are
 * counted and must match.
 *
 * usage: stress_churn [-t threads per wave] [-n threads in all]
 *                     [-x blocks per thread] [-s max seconds] [-S seed] */
#include "stress_common.h"

#define POOL_CAP 4096
#define DTOR_ROUNDS 4          /* glibc's PTHREAD_DESTRUCTOR_ITERATIONS */

/* ThreadSanitizer tears down a thread's state in its own key destructor in
 * the last round (its key is older than ours), after which any intercepted
 * call from a later destructor crashes the runtime.  Under TSan the
 * destructors therefore stop one round early, and a thread's first
 * allocation in a destructor comes at most in round 2 (so that brisk's
 * destructor, which then runs one round later, is still before TSan's). */
#ifdef STRESS_TSAN
#define LAST_ROUND (DTOR_ROUNDS - 1)
#define LATE_FIRST_ROUND (DTOR_ROUNDS - 2)
#else
#define LAST_ROUND DTOR_ROUNDS
#define LATE_FIRST_ROUND DTOR_ROUNDS
#endif

static pthread_key_t key_early, key_late;
static int key_early_ok;

static struct {
    pthread_mutex_t m;
    size_t n;
    struct blk b[POOL_CAP];
} pool = { .m = PTHREAD_MUTEX_INITIALIZER };

static atomic_long n_alloc, n_free, n_dtor_calls, n_late_first;
static long blocks_per_thread = 64;
static uint64_t base_seed;

/* ---- blocks ------------------------------------------------------------------ */

static void new_block(rng_t *r, struct blk *b, unsigned owner)
{
    size_t size = rng_below(r, 4) == 0 ? pick_small_size(r) : (size_t)rng_range(r, 1, 512);
    uint64_t x = rng_below(r, 8);
    void *p;
    if (x < 5) {
        p = S_malloc(size);
        blk_init(b, p, size, 16, 1, owner);
    } else if (x < 7) {
        p = S_calloc(size, 1);
        blk_init(b, p, size, 16, 2, owner);
        blk_check_zero(b);
    } else {
        size_t align = (size_t)64 << rng_below(r, 6);
        p = S_aligned_alloc(align, size);
        blk_init(b, p, size, align, 3, owner);
    }
    blk_fill(b);
    atomic_fetch_add_explicit(&n_alloc, 1, memory_order_relaxed);
}

static void drop_block(struct blk *b, const char *what)
{
    blk_free(b, what);
    atomic_fetch_add_explicit(&n_free, 1, memory_order_relaxed);
}

/* Leave a block in the pool for a later thread; free it if the pool is full. */
static void deposit(struct blk *b)
{
    pthread_mutex_lock(&pool.m);
    if (pool.n < POOL_CAP) {
        pool.b[pool.n++] = *b;
        b->p = NULL;
    }
    pthread_mutex_unlock(&pool.m);
    if (b->p)
        drop_block(b, "corrupted before free");
}

/* Take up to n blocks other threads left behind, verify and free them. */
static void withdraw(rng_t *r, long n)
{
    for (long i = 0; i < n; i++) {
        struct blk b = { 0 };
        pthread_mutex_lock(&pool.m);
        if (pool.n) {
            size_t k = (size_t)rng_below(r, pool.n);
            b = pool.b[k];
            pool.b[k] = pool.b[--pool.n];
        }
        pthread_mutex_unlock(&pool.m);
        if (!b.p)
            return;
        drop_block(&b, "corrupted while its owner was gone");
    }
}

/* ---- key destructors ----------------------------------------------------------- */

struct dtor_arg {
    unsigned owner;
    int rounds_left;           /* re-arm this many more times */
    int alloc_round;           /* "first malloc" kind: allocate in this round only */
    int round;
    long n;
    struct blk b[];
};

static struct dtor_arg *dtor_arg_new(unsigned owner, long n, int rounds)
{
    /* The bookkeeping itself comes from the process's malloc, not brisk. */
    struct dtor_arg *a = calloc(1, sizeof *a + (size_t)n * sizeof a->b[0]);
    CHECK(a != NULL, "out of memory");
    a->owner = owner;
    a->rounds_left = rounds;
    a->alloc_round = 1;
    return a;
}

/* Common body: verify and free the blocks we carry (the late free), then
 * allocate a few more, free some and leave the rest in the pool. */
static void dtor_work(struct dtor_arg *a, const char *what)
{
    rng_t r = { base_seed ^ ((uint64_t)a->owner << 20) ^ (uint64_t)a->round };
    for (long i = 0; i < a->n; i++)
        if (a->b[i].p)
            drop_block(&a->b[i], what);
    a->n = 0;
    struct blk fresh[8];
    for (int i = 0; i < 8; i++)
        new_block(&r, &fresh[i], a->owner);
    for (int i = 0; i < 8; i++) {
        if (i & 1)
            deposit(&fresh[i]);
        else
            drop_block(&fresh[i], "corrupted in a key destructor");
    }
}

static void rearm(pthread_key_t key, struct dtor_arg *a)
{
    if (a->rounds_left > 0) {
        a->rounds_left--;
        int e = pthread_setspecific(key, a);
        CHECK(e == 0, "pthread_setspecific in a destructor: %s", strerror(e));
    } else {
        free(a);
    }
}

static void early_dtor(void *arg)
{
    struct dtor_arg *a = arg;
    atomic_fetch_add_explicit(&n_dtor_calls, 1, memory_order_relaxed);
    a->round++;
    dtor_work(a, a->round == 1 ? "corrupted: early destructor (before brisk's)"
                               : "corrupted: early destructor, later round");
    rearm(key_early, a);
}

static void late_dtor(void *arg)
{
    struct dtor_arg *a = arg;
    atomic_fetch_add_explicit(&n_dtor_calls, 1, memory_order_relaxed);
    a->round++;
    if (a->alloc_round != 0 && a->round != a->alloc_round) {
        rearm(key_late, a);     /* "first malloc" kind, not its round yet */
        return;
    }
    if (a->alloc_round != 0)
        atomic_fetch_add_explicit(&n_late_first, 1, memory_order_relaxed);
    dtor_work(a, "corrupted: late destructor (after brisk's)");
    rearm(key_late, a);
}

/* Runs before brisk's constructor (priority constructors run before the
 * default ones), so key_early's index is below brisk's thread-exit key and
 * its destructor runs first in every round. */
__attribute__((constructor(101))) static void make_early_key(void)
{
    key_early_ok = pthread_key_create(&key_early, early_dtor) == 0;
}

/* ---- threads -------------------------------------------------------------------- */

enum kind { K_WORKER, K_HOLDER, K_DTOR, K_FIRST_IN_DTOR, K_IDLE };

static enum kind kind_of(long idx)
{
    switch (idx % 16) {
    case 3: case 11: return K_HOLDER;
    case 5: case 13: return K_DTOR;
    case 7: return K_FIRST_IN_DTOR;
    case 15: return K_IDLE;
    default: return K_WORKER;
    }
}

struct churn_thread {
    pthread_t th;
    long idx;
};

static void *churn_main(void *arg)
{
    struct churn_thread *ct = arg;
    unsigned me = (unsigned)ct->idx;
    enum kind k = kind_of(ct->idx);
    rng_t r = { base_seed + (uint64_t)ct->idx * 0x9E3779B97F4A7C15ull };
    if (k == K_IDLE)
        return NULL;
    if (k == K_FIRST_IN_DTOR) {
        /* No brisk call in the body at all: the first one comes from the
         * late destructor, in round 1, or (one in eight) in the last round
         * glibc makes, when brisk's own destructor will not run again
         * (under TSan: round 2, see LATE_FIRST_ROUND). */
        struct dtor_arg *a = dtor_arg_new(me, 0, LAST_ROUND - 1);
        a->alloc_round = (ct->idx / 16) % 8 == 0 ? LATE_FIRST_ROUND : 1;
        CHECK(pthread_setspecific(key_late, a) == 0, "pthread_setspecific failed");
        return NULL;
    }
    long n = blocks_per_thread;
    struct blk *mine = calloc((size_t)n, sizeof *mine);
    CHECK(mine != NULL, "out of memory");
    for (long i = 0; i < n; i++)
        new_block(&r, &mine[i], me);
    withdraw(&r, n / 8 + 1);
    /* Free about half, in random order. */
    for (long i = 0; i < n / 2; i++) {
        struct blk *b = &mine[rng_below(&r, (uint64_t)n)];
        if (b->p)
            drop_block(b, "corrupted before free");
    }
    if (k == K_DTOR) {
        /* Hand what is left to the destructors: half to the early one,
         * half to the late one.  Each re-arms itself so that it runs in
         * every destructor round (1-4; under TSan 1-3). */
        struct dtor_arg *ea = dtor_arg_new(me, n, LAST_ROUND - 1);
        struct dtor_arg *la = dtor_arg_new(me, n, LAST_ROUND - 1);
        ea->alloc_round = la->alloc_round = 0;
        for (long i = 0; i < n; i++) {
            if (!mine[i].p)
                continue;
            struct dtor_arg *a = (i & 1) ? la : ea;
            a->b[a->n++] = mine[i];
        }
        if (key_early_ok)
            CHECK(pthread_setspecific(key_early, ea) == 0, "pthread_setspecific failed");
        else
            dtor_work(ea, "corrupted"), free(ea);
        CHECK(pthread_setspecific(key_late, la) == 0, "pthread_setspecific failed");
    } else {
        /* Holders exit with everything still allocated (freed later by
         * other threads); workers leave one block in eight. */
        for (long i = 0; i < n; i++) {
            if (!mine[i].p)
                continue;
            if (k == K_HOLDER || rng_below(&r, 8) == 0)
                deposit(&mine[i]);
            else
                drop_block(&mine[i], "corrupted before free");
        }
    }
    free(mine);
    return NULL;
}

int main(int argc, char **argv)
{
    struct stress_opts o = { .threads = 16, .iters = 3000, .seconds = 60, .extra = 64,
                             .seed = 0xc4124 };
    stress_parse(argc, argv, &o, "[-t wave] [-n threads] [-x blocks] [-s seconds] [-S seed]");
    stress_check_backend();
    init_class_sizes();
    blocks_per_thread = o.extra < 2 ? 2 : o.extra;
    base_seed = o.seed;
    CHECK(key_early_ok, "could not create the early pthread key");

    /* brisk is initialised (its thread-exit key exists) before key_late. */
    S_free(S_malloc(1));
    CHECK(pthread_key_create(&key_late, late_dtor) == 0, "pthread_key_create failed");
    CHECK(key_early < key_late, "key order: early %u, late %u", key_early, key_late);

    long wave = o.threads, total = o.iters, started = 0;
    struct churn_thread *ts = calloc((size_t)wave, sizeof *ts);
    CHECK(ts != NULL, "out of memory");
    while (started < total && !time_up()) {
        long k = total - started < wave ? total - started : wave;
        for (long i = 0; i < k; i++) {
            ts[i].idx = started + i;
            stress_pthread_create(&ts[i].th, churn_main, &ts[i]);
        }
        for (long i = 0; i < k; i++)
            stress_pthread_join(ts[i].th);
        started += k;
    }
    free(ts);

    /* Everything still in the pool belongs to threads that are gone. */
    rng_t r = { o.seed };
    long left = (long)pool.n;
    withdraw(&r, left);
    CHECK(pool.n == 0, "pool not empty");
    long a = atomic_load(&n_alloc), f = atomic_load(&n_free);
    CHECK(a == f, "%ld allocations but %ld frees", a, f);

    long orphaned = -1;
#ifndef USE_LIBC_NAMES
    struct brisk_stats *st = calloc(1, sizeof *st);
    CHECK(st != NULL, "out of memory");
    brisk_stats(st);
    /* Only the main thread is alive: any other cache is one that no
     * destructor will ever flush (a thread whose first allocation came in
     * the last destructor round).  Reported, not fatal. */
    orphaned = (long)st->thread_caches - 1;
    if (orphaned > 0)
        fprintf(stderr,
                "%s: note: %ld thread caches are still registered after every thread exited "
                "(threads that first allocated in the last key-destructor round)\n",
                stress_prog, orphaned);
    free(st);
    S_trim();
#endif
    stress_done("%ld threads in waves of %ld; %ld blocks, %ld left to later threads at the end, "
                "%ld destructor calls, %ld first allocations in a destructor, orphaned caches %ld",
                started, wave, a, left, atomic_load(&n_dtor_calls), atomic_load(&n_late_first),
                orphaned);
    return 0;
}
