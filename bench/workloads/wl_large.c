/* large: big blocks (1..32 MiB) and realloc growth.
 *
 * T threads (default 2) each do their share of ITERATIONS iterations.  An
 * iteration:
 *   - grows a buffer by realloc: malloc 1 MiB, then realloc to 2, 4, 8, 16
 *     and 32 MiB; after each step it checks that the old contents survived
 *     and memsets the new part (so every page of it is touched);
 *   - mallocs RANDOM_BLOCKS blocks of a random size in 1..32 MiB
 *     (log-uniform), memsets each whole, checks it and frees it.
 * Here the cost is mostly the kernel's (page faults, zeroing, mremap) and
 * memset: what the allocator decides is whether it keeps the memory mapped
 * and reuses it, returns it, or copies on realloc.
 *
 * Contents: memset to a per-iteration byte, then the sparse pattern of
 * wl_fill on top (one word per 4 KiB page, the first and last 64 bytes);
 * the check verifies those words and the memset byte in the middle of
 * every page. */
#include "wl.h"

#include <string.h>

#define MIB ((size_t)1 << 20)
#define MIN_BLOCK MIB
#define MAX_BLOCK (32 * MIB)
#define RANDOM_BLOCKS 2
#define SALT 0x1a26e00000000007ULL

typedef struct {
  int id;
  uint64_t seed, iterations;
  uint64_t ops;         /* out */
  uint64_t touched_mib; /* out */
} large_arg_t;

static void check_large(const unsigned char *p, size_t n, uint64_t key, unsigned char c) {
  wl_verify(p, n, key, "large");
  for (size_t off = 2048; off + 64 < n; off += 4096)
    if (p[off] != c)
      wl_fail("corrupt_large_memset ptr=%p size=%zu offset=%zu byte=0x%02x", (const void *)p,
              n, off, p[off]);
}

static void *large_thread(void *argp) {
  large_arg_t *a = argp;
  wl_rng_t rng;
  wl_rng_seed(&rng, a->seed, (uint64_t)a->id);
  wl_live_t live = {0};
  uint64_t ops = 0, touched = 0;

  for (uint64_t it = 0; it < a->iterations; it++) {
    uint64_t key = wl_mix64(SALT ^ wl_next(&rng));
    unsigned char c = (unsigned char)(key >> 56);

    size_t cur = MIN_BLOCK;
    unsigned char *p = wl_malloc(cur);
    memset(p, c, cur);
    wl_fill(p, cur, key);
    wl_live_add(&live, (int64_t)cur);
    touched += cur;
    ops++;
    while (cur < MAX_BLOCK) {
      p = wl_realloc(p, 2 * cur);
      ops++;
      check_large(p, cur, key, c); /* the copy (or move) kept the contents */
      memset(p + cur, c, cur);
      wl_live_add(&live, (int64_t)cur);
      touched += cur;
      cur *= 2;
      wl_fill(p, cur, key);
    }
    check_large(p, cur, key, c);
    free(p);
    wl_live_add(&live, -(int64_t)cur);
    ops++;

    for (int b = 0; b < RANDOM_BLOCKS; b++) {
      size_t n = (size_t)wl_logrange(&rng, MIN_BLOCK, MAX_BLOCK);
      uint64_t k2 = wl_mix64(key + (uint64_t)b + 1);
      unsigned char c2 = (unsigned char)(k2 >> 56);
      unsigned char *q = wl_malloc(n);
      memset(q, c2, n);
      wl_fill(q, n, k2);
      wl_live_add(&live, (int64_t)n);
      touched += n;
      check_large(q, n, k2, c2);
      free(q);
      wl_live_add(&live, -(int64_t)n);
      ops += 2;
    }
  }
  wl_live_flush(&live);
  a->ops = ops;
  a->touched_mib = touched / MIB;
  return NULL;
}

void wl_run_large(const wl_config_t *cfg, wl_result_t *res) {
  int T = cfg->threads;
  uint64_t iterations = wl_pick(cfg, 2, 12, 60);
  size_t stride = WL_STRIDE(large_arg_t);
  char *args = wl_thread_args(T, stride);
  for (int i = 0; i < T; i++) {
    large_arg_t *a = (large_arg_t *)(args + (size_t)i * stride);
    a->id = i;
    a->seed = cfg->seed;
    a->iterations = wl_share(iterations, T, i);
  }
  wl_run_threads(T, large_thread, args, stride);

  uint64_t ops = 0, touched = 0;
  for (int i = 0; i < T; i++) {
    large_arg_t *a = (large_arg_t *)(args + (size_t)i * stride);
    ops += a->ops;
    touched += a->touched_mib;
  }
  free(args);
  res->ops = ops;
  wl_extra(res, "iterations=%llu touched_mib=%llu", (unsigned long long)iterations,
           (unsigned long long)touched);
}
