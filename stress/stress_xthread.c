/* stress_xthread: blocks allocated on one thread and freed on another.
 *
 * Phase 1, producer/consumer pairs.  Each of P pairs has a queue: even pairs
 * a bounded queue under a mutex and condition variables, odd pairs a
 * lock-free single-producer single-consumer ring (C11 acquire/release).  The
 * producer allocates blocks (malloc, calloc, memalign; every small class,
 * now and then a large block), fills them and hands them over; the consumer
 * verifies each one and frees it, or first reallocates it (so realloc frees
 * a block another thread allocated) and then frees it.  All pairs run at
 * once.
 *
 * Phase 2, a ring of R threads.  Every round each thread allocates a batch
 * of blocks and passes it to its right-hand neighbour's mailbox, then takes
 * the batch its left-hand neighbour made from its own mailbox, verifies and
 * frees it: every thread frees only what another thread allocated.
 *
 * usage: stress_xthread [-t pairs] [-n items per producer] [-x ring threads]
 *                       [-s max seconds] [-S seed]
 * The ring makes n / 100 rounds of 64 blocks per thread. */
#include <sched.h>

#include "stress_common.h"

#define MQ_CAP 256
#define SPSC_CAP 1024
#define RING_BATCH 64

/* ---- a bounded queue under a mutex -------------------------------------- */

struct mqueue {
    pthread_mutex_t m;
    pthread_cond_t not_empty, not_full;
    size_t head, count;
    struct blk buf[MQ_CAP];
};

static void mq_init(struct mqueue *q)
{
    pthread_mutex_init(&q->m, NULL);
    pthread_cond_init(&q->not_empty, NULL);
    pthread_cond_init(&q->not_full, NULL);
    q->head = q->count = 0;
}

static void mq_destroy(struct mqueue *q)
{
    pthread_mutex_destroy(&q->m);
    pthread_cond_destroy(&q->not_empty);
    pthread_cond_destroy(&q->not_full);
}

static void mq_push(struct mqueue *q, const struct blk *b)
{
    pthread_mutex_lock(&q->m);
    while (q->count == MQ_CAP)
        pthread_cond_wait(&q->not_full, &q->m);
    q->buf[(q->head + q->count) % MQ_CAP] = *b;
    q->count++;
    pthread_cond_signal(&q->not_empty);
    pthread_mutex_unlock(&q->m);
}

static void mq_pop(struct mqueue *q, struct blk *b)
{
    pthread_mutex_lock(&q->m);
    while (q->count == 0)
        pthread_cond_wait(&q->not_empty, &q->m);
    *b = q->buf[q->head];
    q->head = (q->head + 1) % MQ_CAP;
    q->count--;
    pthread_cond_signal(&q->not_full);
    pthread_mutex_unlock(&q->m);
}

/* ---- a lock-free single-producer single-consumer ring ------------------------ */

struct spsc {
    _Alignas(64) atomic_size_t head;   /* next slot to read (consumer) */
    _Alignas(64) atomic_size_t tail;   /* next slot to write (producer) */
    _Alignas(64) struct blk buf[SPSC_CAP];
};

static void spsc_push(struct spsc *q, const struct blk *b)
{
    size_t t = atomic_load_explicit(&q->tail, memory_order_relaxed);
    while (t - atomic_load_explicit(&q->head, memory_order_acquire) == SPSC_CAP)
        sched_yield();
    q->buf[t % SPSC_CAP] = *b;
    atomic_store_explicit(&q->tail, t + 1, memory_order_release);
}

static void spsc_pop(struct spsc *q, struct blk *b)
{
    size_t h = atomic_load_explicit(&q->head, memory_order_relaxed);
    while (atomic_load_explicit(&q->tail, memory_order_acquire) == h)
        sched_yield();
    *b = q->buf[h % SPSC_CAP];
    atomic_store_explicit(&q->head, h + 1, memory_order_release);
}

/* ---- phase 1: pairs ---------------------------------------------------------- */

struct pair {
    unsigned id;
    bool lockfree;
    long items;
    uint64_t seed;
    struct mqueue *mq;
    struct spsc *sq;
    pthread_t prod, cons;
    long produced, consumed, large;
};

static void pair_push(struct pair *pr, const struct blk *b)
{
    if (pr->lockfree)
        spsc_push(pr->sq, b);
    else
        mq_push(pr->mq, b);
}

static void pair_pop(struct pair *pr, struct blk *b)
{
    if (pr->lockfree)
        spsc_pop(pr->sq, b);
    else
        mq_pop(pr->mq, b);
}

/* Allocate and fill one block on the calling thread. */
static void make_block(rng_t *r, struct blk *b, unsigned owner, long *large)
{
    size_t size;
    if (rng_below(r, 1000) == 0) {
        size = pick_large_size(r);
        (*large)++;
    } else {
        size = pick_small_size(r);
    }
    uint64_t x = rng_below(r, 10);
    void *p;
    size_t align = 16;
    if (x < 7) {
        p = S_malloc(size);
        blk_init(b, p, size, align, 1, owner);
    } else if (x < 9) {
        p = S_calloc(1, size);
        blk_init(b, p, size, align, 2, owner);
        blk_check_zero(b);
    } else {
        align = (size_t)32 << rng_below(r, 8);
        p = S_memalign(align, size);
        blk_init(b, p, size, align, 3, owner);
    }
    blk_fill(b);
}

/* Verify a block another thread made and free it (maybe via realloc). */
static void consume_block(rng_t *r, struct blk *b, unsigned me)
{
    blk_check(b, "corrupted in transit (producer -> consumer)");
    uint64_t x = rng_below(r, 20);
    if (x < 2) {
        size_t ns = pick_small_size(r) | 1;
        size_t keep = b->size < ns ? b->size : ns;
        void *q = S_realloc(b->p, ns);
        CHECK(q != NULL, "realloc(%p, %zu) returned NULL", (void *)b->p, ns);
        b->p = q;
        blk_check_prefix(b, keep);
        blk_init(b, q, ns, 16, 4, me);
        blk_fill(b);
        blk_free(b, "corrupted after a cross-thread realloc");
    } else if (x < 4) {
        S_free_sized(b->p, b->size);
    } else {
        S_free(b->p);
    }
}

static void *producer_main(void *arg)
{
    struct pair *pr = arg;
    rng_t r = { pr->seed };
    struct blk b;
    for (long i = 0; i < pr->items; i++) {
        if ((i & 127) == 0 && time_up())
            break;
        make_block(&r, &b, pr->id, &pr->large);
        pair_push(pr, &b);
        pr->produced++;
    }
    memset(&b, 0, sizeof b);   /* p == NULL: end of stream */
    pair_push(pr, &b);
    return NULL;
}

static void *consumer_main(void *arg)
{
    struct pair *pr = arg;
    rng_t r = { pr->seed ^ 0xc0ffee };
    for (;;) {
        struct blk b;
        pair_pop(pr, &b);
        if (!b.p)
            break;
        consume_block(&r, &b, 1000 + pr->id);
        pr->consumed++;
    }
    return NULL;
}

/* ---- phase 2: the ring ------------------------------------------------------- */

struct batch {
    struct batch *next;
    struct blk items[RING_BATCH];
};

struct mailbox {
    pthread_mutex_t m;
    pthread_cond_t cv;
    struct batch *head, *tail;
};

struct ring_thread {
    unsigned id;
    uint64_t seed;
    pthread_t th;
    struct mailbox box;
    struct ring_thread *right;
    long sent, freed;
};

static pthread_barrier_t ring_barrier;
static long ring_rounds;
static bool ring_stop;          /* written by the barrier's serial thread */

static void box_put(struct mailbox *mb, struct batch *bt)
{
    bt->next = NULL;
    pthread_mutex_lock(&mb->m);
    if (mb->tail)
        mb->tail->next = bt;
    else
        mb->head = bt;
    mb->tail = bt;
    pthread_cond_signal(&mb->cv);
    pthread_mutex_unlock(&mb->m);
}

static struct batch *box_take(struct mailbox *mb)
{
    pthread_mutex_lock(&mb->m);
    while (!mb->head)
        pthread_cond_wait(&mb->cv, &mb->m);
    struct batch *bt = mb->head;
    mb->head = bt->next;
    if (!mb->head)
        mb->tail = NULL;
    pthread_mutex_unlock(&mb->m);
    return bt;
}

static void *ring_main(void *arg)
{
    struct ring_thread *t = arg;
    rng_t r = { t->seed };
    long large = 0;
    for (long round = 0;; round++) {
        /* Every thread must make the same number of rounds: one thread
         * decides, between two barriers, whether this round happens. */
        if (pthread_barrier_wait(&ring_barrier) == PTHREAD_BARRIER_SERIAL_THREAD)
            ring_stop = round >= ring_rounds || time_up();
        pthread_barrier_wait(&ring_barrier);
        if (ring_stop)
            break;
        struct batch *bt = calloc(1, sizeof *bt);
        CHECK(bt != NULL, "out of memory for a batch");
        for (int i = 0; i < RING_BATCH; i++)
            make_block(&r, &bt->items[i], 2000 + t->id, &large);
        box_put(&t->right->box, bt);
        t->sent += RING_BATCH;
        bt = box_take(&t->box);
        for (int i = RING_BATCH - 1; i >= 0; i--) {
            blk_check(&bt->items[i], "corrupted in transit (ring neighbour)");
            if (i & 1)
                S_free(bt->items[i].p);
            else
                S_free_sized(bt->items[i].p, bt->items[i].size);
        }
        t->freed += RING_BATCH;
        free(bt);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    struct stress_opts o = { .threads = 4, .iters = 50000, .seconds = 60, .extra = 8,
                             .seed = 0x71e4d };
    stress_parse(argc, argv, &o, "[-t pairs] [-n items] [-x ring threads] [-s seconds] [-S seed]");
    stress_check_backend();
    init_class_sizes();
    if (o.extra < 2)
        o.extra = 2;

    /* Phase 1. */
    long np = o.threads;
    struct pair *pairs = calloc((size_t)np, sizeof *pairs);
    CHECK(pairs != NULL, "out of memory");
    for (long i = 0; i < np; i++) {
        struct pair *pr = &pairs[i];
        pr->id = (unsigned)i;
        pr->lockfree = i & 1;
        pr->items = o.iters;
        pr->seed = o.seed + (uint64_t)i * 0x9E3779B97F4A7C15ull;
        if (pr->lockfree) {
            pr->sq = aligned_alloc(64, sizeof *pr->sq);
            CHECK(pr->sq != NULL, "out of memory");
            atomic_init(&pr->sq->head, 0);
            atomic_init(&pr->sq->tail, 0);
        } else {
            pr->mq = malloc(sizeof *pr->mq);
            CHECK(pr->mq != NULL, "out of memory");
            mq_init(pr->mq);
        }
    }
    for (long i = 0; i < np; i++) {
        stress_pthread_create(&pairs[i].cons, consumer_main, &pairs[i]);
        stress_pthread_create(&pairs[i].prod, producer_main, &pairs[i]);
    }
    long produced = 0, consumed = 0, large = 0;
    for (long i = 0; i < np; i++) {
        stress_pthread_join(pairs[i].prod);
        stress_pthread_join(pairs[i].cons);
        produced += pairs[i].produced;
        consumed += pairs[i].consumed;
        large += pairs[i].large;
        if (pairs[i].lockfree) {
            free(pairs[i].sq);
        } else {
            mq_destroy(pairs[i].mq);
            free(pairs[i].mq);
        }
    }
    CHECK(produced == consumed, "pairs: %ld blocks produced but %ld consumed", produced, consumed);
    free(pairs);
    bool phase1_cut = time_up();

    /* Phase 2 (skipped when phase 1 used up the time). */
    long nr = o.extra;
    ring_rounds = o.iters / 100 > 0 ? o.iters / 100 : 1;
    struct ring_thread *ring = calloc((size_t)nr, sizeof *ring);
    CHECK(ring != NULL, "out of memory");
    int e = pthread_barrier_init(&ring_barrier, NULL, (unsigned)nr);
    CHECK(e == 0, "pthread_barrier_init: %s", strerror(e));
    for (long i = 0; i < nr; i++) {
        ring[i].id = (unsigned)i;
        ring[i].seed = o.seed * 31 + (uint64_t)i * 0xD1B54A32D192ED03ull + 7;
        ring[i].right = &ring[(i + 1) % nr];
        pthread_mutex_init(&ring[i].box.m, NULL);
        pthread_cond_init(&ring[i].box.cv, NULL);
    }
    for (long i = 0; i < nr; i++)
        stress_pthread_create(&ring[i].th, ring_main, &ring[i]);
    long sent = 0, freed = 0;
    for (long i = 0; i < nr; i++) {
        stress_pthread_join(ring[i].th);
        sent += ring[i].sent;
        freed += ring[i].freed;
    }
    for (long i = 0; i < nr; i++) {
        CHECK(ring[i].box.head == NULL, "ring: thread %ld's mailbox is not empty", i);
        pthread_mutex_destroy(&ring[i].box.m);
        pthread_cond_destroy(&ring[i].box.cv);
    }
    pthread_barrier_destroy(&ring_barrier);
    CHECK(sent == freed, "ring: %ld blocks sent but %ld freed", sent, freed);
    free(ring);
    stress_done("%ld pairs passed %ld blocks (%ld large)%s; a ring of %ld threads passed %ld",
                np, produced, large, phase1_cut ? " (time bound)" : "", nr, sent);
    return 0;
}
