/* cache-scratch and cache-thrash: false sharing induced by the allocator
 * (the two tests of the Hoard paper's suite, rewritten).
 *
 * Both: T threads each repeat, ITERS / T times: malloc a small object
 * (OBJ_SIZE = 8 bytes), write every byte of it REPS times (volatile byte
 * stores, so each pass really goes to memory), verify the last pass, free
 * it.  The work per object is the same for every allocator; what changes
 * is whether two threads' objects end up in the same 64-byte cache line,
 * in which case every store makes the line bounce between cores and the
 * run gets many times slower.
 *
 * cache-thrash (active false sharing): the threads start from nothing; an
 * allocator that hands consecutive small blocks to different threads puts
 * them in one line.
 *
 * cache-scratch (passive false sharing): the main thread first mallocs T
 * objects (consecutive blocks, so several share a line) and hands object i
 * to thread i, which frees it before its loop.  An allocator whose freeing
 * thread keeps that block for its own next malloc then gives each thread a
 * block in a line shared with the other threads, for the whole run. */
#include "wl.h"

#define OBJ_SIZE 8
#define REPS 100

typedef struct {
  int id;
  uint64_t iters;
  void *handed; /* cache-scratch: the main thread's object */
  uint64_t ops; /* out */
} cache_arg_t;

static inline unsigned char byte_of(int id, uint64_t rep, int k) {
  return (unsigned char)((uint64_t)id * 37 + rep * 7 + (uint64_t)k);
}

static void check_object(const unsigned char *p, int id, uint64_t rep, const char *what) {
  for (int k = 0; k < OBJ_SIZE; k++)
    if (p[k] != byte_of(id, rep, k))
      wl_fail("corrupt_%s ptr=%p size=%d offset=%d byte=0x%02x thread=%d", what, (void *)p,
              OBJ_SIZE, k, p[k], id);
}

static void *cache_thread(void *argp) {
  cache_arg_t *a = argp;
  uint64_t ops = 0;
  if (a->handed) {
    /* Written by the main thread as if by thread id, pass 0. */
    check_object(a->handed, a->id, 0, "cache_scratch_handed");
    free(a->handed);
    ops++;
  }
  const char *what = a->handed ? "cache_scratch" : "cache_thrash";
  for (uint64_t i = 0; i < a->iters; i++) {
    volatile unsigned char *p = wl_malloc(OBJ_SIZE);
    for (uint64_t r = 0; r < REPS; r++)
      for (int k = 0; k < OBJ_SIZE; k++) p[k] = byte_of(a->id, r, k);
    check_object((const unsigned char *)p, a->id, REPS - 1, what);
    free((void *)p);
  }
  ops += 2 * a->iters;
  a->ops = ops;
  return NULL;
}

static void run_cache(const wl_config_t *cfg, wl_result_t *res, bool scratch) {
  int T = cfg->threads;
  uint64_t total = wl_pick(cfg, 100000, 3000000, 15000000); /* objects */
  size_t stride = WL_STRIDE(cache_arg_t);
  char *args = wl_thread_args(T, stride);
  wl_live_t live = {0};
  for (int i = 0; i < T; i++) {
    cache_arg_t *a = (cache_arg_t *)(args + (size_t)i * stride);
    a->id = i;
    a->iters = wl_share(total, T, i);
    if (scratch) {
      unsigned char *p = wl_malloc(OBJ_SIZE);
      for (int k = 0; k < OBJ_SIZE; k++) p[k] = byte_of(i, 0, k);
      a->handed = p;
      wl_live_add(&live, OBJ_SIZE);
    }
  }
  /* The live set is the handed objects plus one object per thread. */
  wl_live_add(&live, (int64_t)T * OBJ_SIZE);
  wl_live_flush(&live);
  wl_live_add(&live, -(int64_t)(scratch ? 2 : 1) * T * OBJ_SIZE);
  wl_live_flush(&live);

  wl_run_threads(T, cache_thread, args, stride);

  uint64_t ops = scratch ? (uint64_t)T : 0; /* the main thread's mallocs */
  for (int i = 0; i < T; i++) ops += ((cache_arg_t *)(args + (size_t)i * stride))->ops;
  free(args);
  res->ops = ops;
  wl_extra(res, "objects=%llu object_size=%d writes_per_object=%d", (unsigned long long)total,
           OBJ_SIZE, REPS * OBJ_SIZE);
}

void wl_run_cache_scratch(const wl_config_t *cfg, wl_result_t *res) { run_cache(cfg, res, true); }

void wl_run_cache_thrash(const wl_config_t *cfg, wl_result_t *res) { run_cache(cfg, res, false); }
