/* larson: a server simulation in the style of Larson and Krishnan's
 * benchmark.
 *
 * There are T slot arrays of SLOTS blocks each, one per thread.  Each
 * thread first fills its own array with blocks of random size (16..1024
 * bytes).  Then, for ROUNDS rounds, every thread works on an array that
 * another thread worked on in the previous round (round r: thread i takes
 * array (i + r + 1) mod T), replacing PER_ROUND randomly chosen slots: it
 * verifies and frees the old block and mallocs, fills and stores a new one.
 * A barrier separates the rounds.  So blocks live across rounds, and most
 * of them are freed by a thread other than the one that allocated them
 * (with PER_ROUND = SLOTS, about 63% of the frees of a round hit a block
 * allocated in an earlier round by another thread), which is what a server
 * whose connections move between worker threads does to its allocator.
 *
 * The assignment of arrays to threads and every thread's random sequence
 * depend only on the seed and T, so the run is the same for every
 * allocator.  The total number of replacements of a scale is divided among
 * the threads (ROUNDS = TOTAL / (T * PER_ROUND)). */
#include "wl.h"

#include <pthread.h>

#define SLOTS 2048
#define PER_ROUND 2048
#define MIN_SIZE 16
#define MAX_SIZE 1024
#define SALT 0x1a250f0000000001ULL

typedef struct {
  void *p;
  size_t size;
} slot_t;

typedef struct {
  int id, nthreads;
  uint64_t seed, rounds;
  slot_t **arrays;
  pthread_barrier_t *barrier;
  uint64_t ops; /* out */
} larson_arg_t;

static void *larson_thread(void *argp) {
  larson_arg_t *a = argp;
  wl_rng_t rng;
  wl_rng_seed(&rng, a->seed, (uint64_t)a->id);
  wl_live_t live = {0};
  uint64_t ops = 0;
  int T = a->nthreads;

  slot_t *own = a->arrays[a->id];
  for (int s = 0; s < SLOTS; s++) {
    size_t n = (size_t)wl_range(&rng, MIN_SIZE, MAX_SIZE);
    void *p = wl_malloc(n);
    wl_fill(p, n, wl_key(p, n, SALT));
    own[s].p = p;
    own[s].size = n;
    wl_live_add(&live, (int64_t)n);
  }
  ops += SLOTS;
  wl_live_flush(&live);
  pthread_barrier_wait(a->barrier);

  for (uint64_t r = 0; r < a->rounds; r++) {
    slot_t *arr = a->arrays[(uint64_t)(a->id + 1 + (int)(r % (uint64_t)T)) % (uint64_t)T];
    for (int k = 0; k < PER_ROUND; k++) {
      slot_t *s = &arr[wl_below(&rng, SLOTS)];
      wl_verify(s->p, s->size, wl_key(s->p, s->size, SALT), "larson");
      free(s->p);
      wl_live_add(&live, -(int64_t)s->size);
      size_t n = (size_t)wl_range(&rng, MIN_SIZE, MAX_SIZE);
      void *p = wl_malloc(n);
      wl_fill(p, n, wl_key(p, n, SALT));
      s->p = p;
      s->size = n;
      wl_live_add(&live, (int64_t)n);
    }
    ops += 2 * PER_ROUND;
    wl_live_flush(&live);
    pthread_barrier_wait(a->barrier);
  }

  /* Every thread frees a distinct array: the one it would take next. */
  slot_t *last = a->arrays[(uint64_t)(a->id + 1 + (int)(a->rounds % (uint64_t)T)) % (uint64_t)T];
  for (int s = 0; s < SLOTS; s++) {
    wl_verify(last[s].p, last[s].size, wl_key(last[s].p, last[s].size, SALT), "larson");
    free(last[s].p);
    wl_live_add(&live, -(int64_t)last[s].size);
  }
  ops += SLOTS;
  wl_live_flush(&live);
  a->ops = ops;
  return NULL;
}

void wl_run_larson(const wl_config_t *cfg, wl_result_t *res) {
  int T = cfg->threads;
  uint64_t total = wl_pick(cfg, 300000, 12000000, 60000000); /* replacements */
  uint64_t rounds = total / ((uint64_t)T * PER_ROUND);
  if (rounds < 1) rounds = 1;

  slot_t **arrays = wl_malloc((size_t)T * sizeof *arrays);
  for (int i = 0; i < T; i++) arrays[i] = wl_malloc(SLOTS * sizeof(slot_t));
  pthread_barrier_t barrier;
  pthread_barrier_init(&barrier, NULL, (unsigned)T);

  size_t stride = WL_STRIDE(larson_arg_t);
  char *args = wl_thread_args(T, stride);
  for (int i = 0; i < T; i++) {
    larson_arg_t *a = (larson_arg_t *)(args + (size_t)i * stride);
    a->id = i;
    a->nthreads = T;
    a->seed = cfg->seed;
    a->rounds = rounds;
    a->arrays = arrays;
    a->barrier = &barrier;
  }
  wl_run_threads(T, larson_thread, args, stride);

  uint64_t ops = 0;
  for (int i = 0; i < T; i++) ops += ((larson_arg_t *)(args + (size_t)i * stride))->ops;
  pthread_barrier_destroy(&barrier);
  for (int i = 0; i < T; i++) free(arrays[i]);
  free(arrays);
  free(args);

  res->ops = ops;
  wl_extra(res, "rounds=%llu slots_per_thread=%d", (unsigned long long)rounds, SLOTS);
}
