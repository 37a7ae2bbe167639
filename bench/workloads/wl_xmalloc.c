/* xmalloc: producer/consumer (every block is freed by another thread).
 *
 * T threads: P = T/2 producers (at least 1) and C = T - P consumers (at
 * least 1; with --threads 1 the run uses 2 threads and says so).  Each
 * producer mallocs its share of the blocks (random sizes, mostly small:
 * 16..256 bytes, one in 16 up to 4 KiB), fills them, and pushes them in
 * batches of BATCH (the batch descriptor is malloc'd too) into a bounded
 * queue of QUEUE_CAP batches.  Consumers pop batches, verify every block,
 * and free the blocks and the descriptor.  The memory thus flows one way,
 * from the producers' caches to the consumers', which is the pattern that
 * breaks allocators that only recycle memory within a thread.
 *
 * The queue is a mutex and two condition variables; with 64 blocks per
 * batch it is not the bottleneck. */
#include "wl.h"

#include <pthread.h>

#define BATCH 64
#define QUEUE_CAP 32
#define SALT 0x3a770c0000000002ULL

typedef struct {
  int count;
  struct {
    void *p;
    size_t size;
  } blk[BATCH];
} batch_t;

typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t not_empty, not_full;
  batch_t *ring[QUEUE_CAP];
  unsigned head, len;
} queue_t;

static void q_push(queue_t *q, batch_t *b) {
  pthread_mutex_lock(&q->mu);
  while (q->len == QUEUE_CAP) pthread_cond_wait(&q->not_full, &q->mu);
  q->ring[(q->head + q->len) % QUEUE_CAP] = b;
  q->len++;
  pthread_cond_signal(&q->not_empty);
  pthread_mutex_unlock(&q->mu);
}

static batch_t *q_pop(queue_t *q) {
  pthread_mutex_lock(&q->mu);
  while (q->len == 0) pthread_cond_wait(&q->not_empty, &q->mu);
  batch_t *b = q->ring[q->head];
  q->head = (q->head + 1) % QUEUE_CAP;
  q->len--;
  pthread_cond_signal(&q->not_full);
  pthread_mutex_unlock(&q->mu);
  return b;
}

typedef struct {
  int id;
  bool producer;
  uint64_t seed, blocks; /* producer: blocks to make */
  queue_t *q;
  _Atomic int *producers_left;
  int consumers;
  uint64_t ops; /* out */
} xm_arg_t;

static void *xm_producer(xm_arg_t *a) {
  wl_rng_t rng;
  wl_rng_seed(&rng, a->seed, (uint64_t)a->id);
  wl_live_t live = {0};
  uint64_t ops = 0;
  uint64_t left = a->blocks;
  while (left > 0) {
    batch_t *b = wl_malloc(sizeof *b);
    wl_live_add(&live, (int64_t)sizeof *b);
    int n = left < BATCH ? (int)left : BATCH;
    for (int i = 0; i < n; i++) {
      size_t sz = wl_below(&rng, 16) == 0 ? (size_t)wl_range(&rng, 257, 4096)
                                          : (size_t)wl_range(&rng, 16, 256);
      void *p = wl_malloc(sz);
      wl_fill(p, sz, wl_key(p, sz, SALT));
      b->blk[i].p = p;
      b->blk[i].size = sz;
      wl_live_add(&live, (int64_t)sz);
    }
    b->count = n;
    ops += (uint64_t)n + 1;
    left -= (uint64_t)n;
    /* The consumer's frees are accounted there; hand the bytes over now so
     * the global count never runs ahead of what is really live. */
    wl_live_flush(&live);
    q_push(a->q, b);
  }
  /* The last producer to finish tells every consumer to stop. */
  if (atomic_fetch_sub(a->producers_left, 1) == 1)
    for (int i = 0; i < a->consumers; i++) q_push(a->q, NULL);
  a->ops = ops;
  return NULL;
}

static void *xm_consumer(xm_arg_t *a) {
  wl_live_t live = {0};
  uint64_t ops = 0;
  for (;;) {
    batch_t *b = q_pop(a->q);
    if (!b) break;
    if (b->count < 1 || b->count > BATCH) wl_fail("corrupt_batch count=%d", b->count);
    for (int i = 0; i < b->count; i++) {
      wl_verify(b->blk[i].p, b->blk[i].size, wl_key(b->blk[i].p, b->blk[i].size, SALT),
                "xmalloc");
      free(b->blk[i].p);
      wl_live_add(&live, -(int64_t)b->blk[i].size);
    }
    ops += (uint64_t)b->count + 1;
    free(b);
    wl_live_add(&live, -(int64_t)sizeof *b);
  }
  wl_live_flush(&live);
  a->ops = ops;
  return NULL;
}

static void *xm_thread(void *argp) {
  xm_arg_t *a = argp;
  return a->producer ? xm_producer(a) : xm_consumer(a);
}

void wl_run_xmalloc(const wl_config_t *cfg, wl_result_t *res) {
  int T = cfg->threads < 2 ? 2 : cfg->threads;
  int P = T / 2, C = T - P;
  uint64_t total = wl_pick(cfg, 200000, 10000000, 50000000); /* blocks */

  queue_t q = {.head = 0, .len = 0};
  pthread_mutex_init(&q.mu, NULL);
  pthread_cond_init(&q.not_empty, NULL);
  pthread_cond_init(&q.not_full, NULL);
  _Atomic int producers_left = P;

  size_t stride = WL_STRIDE(xm_arg_t);
  char *args = wl_thread_args(T, stride);
  for (int i = 0; i < T; i++) {
    xm_arg_t *a = (xm_arg_t *)(args + (size_t)i * stride);
    a->id = i;
    a->producer = i < P;
    a->seed = cfg->seed;
    a->blocks = a->producer ? wl_share(total, P, i) : 0;
    a->q = &q;
    a->producers_left = &producers_left;
    a->consumers = C;
  }
  wl_run_threads(T, xm_thread, args, stride);

  uint64_t ops = 0;
  for (int i = 0; i < T; i++) ops += ((xm_arg_t *)(args + (size_t)i * stride))->ops;
  free(args);
  pthread_mutex_destroy(&q.mu);
  pthread_cond_destroy(&q.not_empty);
  pthread_cond_destroy(&q.not_full);

  res->threads = T;
  res->ops = ops;
  wl_extra(res, "producers=%d consumers=%d blocks=%llu", P, C, (unsigned long long)total);
}
