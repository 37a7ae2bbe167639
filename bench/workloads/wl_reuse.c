/* reuse: the same big block, over and over ("do not thrash").
 *
 * One thread (default; with --threads T each does its share) repeats
 * ITERATIONS times (20 tiny, 300 short, 2000 full): malloc a block of
 * 5..25 MiB (uniform, any byte count), write one word in every 4 KiB page
 * (wl_fill's sparse pattern), verify it, free it.  An allocator that keeps
 * the freed block (or its pages) mapped and hands it out again costs a few
 * microseconds per iteration; one that gives the pages back to the kernel
 * at once (munmap, or MADV_DONTNEED on a block this size) takes a page
 * fault, and the kernel's zeroing of the page, for every page of every
 * iteration: thousands of faults per iteration.  A decay policy that
 * returns free memory over time must not do this to a program that frees
 * and reallocates the same memory many times a second.
 *
 * Reported: faults_per_iter (minor page faults of the process during the
 * loop, getrusage, per iteration; 0 means the pages stayed), iters_per_sec,
 * iterations, touched_mib (the sum of the block sizes). */
#include "wl.h"

#include <sys/resource.h>

#define MIB ((uint64_t)1 << 20)
#define MIN_BLOCK (5 * MIB)
#define MAX_BLOCK (25 * MIB)
#define SALT 0x2e05e0000000000aULL

typedef struct {
  int id;
  uint64_t seed, iterations;
  uint64_t ops, touched; /* out */
} reuse_arg_t;

static void *reuse_thread(void *argp) {
  reuse_arg_t *a = argp;
  wl_rng_t rng;
  wl_rng_seed(&rng, a->seed, (uint64_t)a->id);
  wl_live_t live = {0};
  for (uint64_t it = 0; it < a->iterations; it++) {
    size_t n = (size_t)wl_range(&rng, MIN_BLOCK, MAX_BLOCK);
    void *p = wl_malloc(n);
    uint64_t key = wl_key(p, n, SALT ^ it);
    wl_fill(p, n, key);
    wl_live_add(&live, (int64_t)n);
    wl_verify(p, n, key, "reuse");
    free(p);
    wl_live_add(&live, -(int64_t)n);
    a->touched += n;
  }
  wl_live_flush(&live);
  a->ops = 2 * a->iterations;
  return NULL;
}

void wl_run_reuse(const wl_config_t *cfg, wl_result_t *res) {
  int T = cfg->threads;
  uint64_t iterations = wl_pick(cfg, 20, 300, 2000);
  size_t stride = WL_STRIDE(reuse_arg_t);
  char *args = wl_thread_args(T, stride);
  for (int i = 0; i < T; i++) {
    reuse_arg_t *a = (reuse_arg_t *)(args + (size_t)i * stride);
    a->id = i;
    a->seed = cfg->seed;
    a->iterations = wl_share(iterations, T, i);
  }
  struct rusage ru0, ru1;
  getrusage(RUSAGE_SELF, &ru0);
  double t0 = wl_now();
  wl_run_threads(T, reuse_thread, args, stride);
  double secs = wl_now() - t0;
  getrusage(RUSAGE_SELF, &ru1);

  uint64_t ops = 0, touched = 0;
  for (int i = 0; i < T; i++) {
    reuse_arg_t *a = (reuse_arg_t *)(args + (size_t)i * stride);
    ops += a->ops;
    touched += a->touched;
  }
  free(args);
  res->ops = ops;
  long faults = ru1.ru_minflt - ru0.ru_minflt;
  wl_extra(res, "faults_per_iter=%.1f iters_per_sec=%.1f iterations=%llu touched_mib=%llu",
           (double)faults / (double)iterations, secs > 0 ? (double)iterations / secs : 0.0,
           (unsigned long long)iterations, (unsigned long long)(touched / MIB));
}
