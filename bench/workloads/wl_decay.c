/* decay: does memory go back to the system once the program has freed it,
 * without the program calling the allocator again?
 *
 * T threads (default 4) allocate TOTAL bytes between them (16 MiB tiny,
 * 256 MiB short, 1 GiB full; each thread its share): three quarters in
 * blocks of 16 B..64 KiB (log-uniform), one quarter in blocks of 1..16 MiB
 * (log-uniform; while that budget lasts, a step picks a big block with
 * probability 1/BIG_ONE_IN), each filled with wl_fill (which touches every
 * page).  A barrier; then everything is freed, half of it by another
 * thread: thread i verifies and frees the even-numbered blocks of its own
 * list and the odd-numbered ones of thread i+1's list.  A second barrier,
 * each thread frees its block list, and the threads exit, so that every
 * allocator has flushed their thread caches: what is left resident sits in
 * the central lists and the page heap.
 *
 * Then the main thread reads VmHWM (the peak) and the RSS (rss_after_free)
 * and waits WAIT seconds (2 s; tiny 0.3 s) without calling the allocator:
 * it reads /proc/self/statm every SAMPLE_S (100 ms) with open/read into
 * stack buffers and sleeps with clock_nanosleep.  Whatever the allocator
 * gives back during the wait, it gives back on its own (a background
 * thread, a timer), not because the program called it.  Finally it calls
 * the allocator's "release everything" entry point, found with dlsym
 * before the work starts (dlsym may malloc when a name is missing), in
 * this order:
 *   brisk_release_memory()                     brisk
 *   mallctl("arena.4096.purge", ...)           jemalloc (4096 is MALLCTL_ARENAS_ALL)
 *   MallocExtension_ReleaseFreeMemory()        tcmalloc (gperftools)
 *   mi_collect(true)                           mimalloc
 *   malloc_trim(0)                             anything else (glibc)
 * and reads the RSS at once (rss_after_trim).
 *
 * Reported (after check=ok; the percentages are of peak_rss_bytes, the
 * process's VmHWM, which the allocation phase sets): rss_after_free,
 * rss_at_1s and rss_at_2s (the RSS 1 s and 2 s into the wait; with tiny's
 * 0.3 s wait, both are the RSS at its end), rss_after_trim, pct_free,
 * pct_1s, pct_2s, pct_trim, trim (the entry point used), trim_rc (its
 * return value: bytes released for brisk, an errno for mallctl, else 0),
 * wait_s, work_seconds (the allocation and free phases alone), alloc_bytes,
 * blocks, big_blocks, cross_frees (blocks freed by another thread),
 * lazyfree_after_free, lazyfree_at_end (of the wait) and
 * lazyfree_after_trim (LazyFree of /proc/self/smaps_rollup: pages given
 * back with MADV_FREE that the kernel has not taken yet, which the RSS
 * still counts), rss_curve_mib (the RSS at each sample, MiB) and
 * merit=memory: `seconds`
 * includes the wait, so the time of this workload is not a figure of
 * merit (compare.py leaves it out of the time means). */
#include "wl.h"

#include <dlfcn.h>
#include <malloc.h>
#include <pthread.h>
#include <string.h>

#define MIB ((uint64_t)1 << 20)
#define SMALL_MIN 16
#define SMALL_MAX 65536
#define BIG_MIN MIB
#define BIG_MAX (16 * MIB)
#define BIG_ONE_IN 128
#define SAMPLE_S 0.1
#define MAX_SAMPLES 64
#define SALT 0xdeca900000000008ULL

typedef struct {
  void *p;
  size_t n;
} blk_t;

typedef struct {
  int id, nthreads;
  uint64_t seed, small_bytes, big_bytes;
  char *all_args; /* every thread's argument, to reach the neighbour's list */
  size_t stride;
  pthread_barrier_t *barrier;
  blk_t *blocks;   /* this thread's blocks, in allocation order */
  size_t count;
  uint64_t ops, big_blocks, cross_frees; /* out */
} decay_arg_t;

static decay_arg_t *arg_of(decay_arg_t *a, int i) {
  return (decay_arg_t *)(a->all_args + (size_t)i * a->stride);
}

static void release(blk_t *b, wl_live_t *live) {
  wl_verify(b->p, b->n, wl_key(b->p, b->n, SALT), "decay");
  free(b->p);
  wl_live_add(live, -(int64_t)b->n);
}

static void *decay_thread(void *argp) {
  decay_arg_t *a = argp;
  wl_rng_t rng;
  wl_rng_seed(&rng, a->seed, (uint64_t)a->id);
  wl_live_t live = {0};
  uint64_t ops = 0;

  /* Small blocks average ~15 KiB: 1/512 of the small budget in slots is
   * far more than enough (a full list just ends the small allocations). */
  size_t cap = (size_t)(a->small_bytes / 512 + a->big_bytes / BIG_MIN) + 16;
  a->blocks = wl_malloc(cap * sizeof *a->blocks);
  wl_live_add(&live, (int64_t)(cap * sizeof *a->blocks));
  ops++;

  uint64_t small_left = a->small_bytes, big_left = a->big_bytes;
  size_t count = 0;
  while ((small_left > 0 || big_left > 0) && count < cap) {
    size_t n;
    if (big_left > 0 && (small_left == 0 || wl_below(&rng, BIG_ONE_IN) == 0)) {
      n = (size_t)wl_logrange(&rng, BIG_MIN, BIG_MAX);
      if (n > big_left) n = big_left < BIG_MIN ? BIG_MIN : (size_t)big_left;
      big_left -= n < big_left ? n : big_left;
      a->big_blocks++;
    } else {
      n = (size_t)wl_logrange(&rng, SMALL_MIN, SMALL_MAX);
      small_left -= n < small_left ? n : small_left;
    }
    void *p = wl_malloc(n);
    wl_fill(p, n, wl_key(p, n, SALT));
    a->blocks[count].p = p;
    a->blocks[count].n = n;
    count++;
    wl_live_add(&live, (int64_t)n);
    ops++;
  }
  a->count = count;
  wl_live_flush(&live);
  pthread_barrier_wait(a->barrier);

  /* Own even-numbered blocks, then the neighbour's odd-numbered ones. */
  for (size_t i = 0; i < count; i += 2) release(&a->blocks[i], &live);
  ops += (count + 1) / 2;
  decay_arg_t *nb = arg_of(a, (a->id + 1) % a->nthreads);
  for (size_t i = 1; i < nb->count; i += 2) release(&nb->blocks[i], &live);
  ops += nb->count / 2;
  if (nb != a) a->cross_frees = nb->count / 2;
  wl_live_flush(&live);
  pthread_barrier_wait(a->barrier);

  free(a->blocks);
  a->blocks = NULL;
  wl_live_add(&live, -(int64_t)(cap * sizeof(blk_t)));
  ops++;
  wl_live_flush(&live);
  a->ops = ops;
  return NULL;
}

/* The allocator's "release everything" entry point. */
typedef struct {
  const char *name;
  size_t (*brisk)(void);
  int (*mallctl)(const char *, void *, size_t *, void *, size_t);
  void (*tcmalloc)(void);
  void (*mimalloc)(bool);
} trim_t;

static void find_trim(trim_t *t) {
  memset(t, 0, sizeof *t);
  /* Object pointers converted to function pointers: POSIX guarantees
   * dlsym's result can be; the memcpy keeps -Wpedantic quiet. */
  void *s;
  if ((s = dlsym(RTLD_DEFAULT, "brisk_release_memory"))) {
    memcpy(&t->brisk, &s, sizeof s);
    t->name = "brisk_release_memory";
  } else if ((s = dlsym(RTLD_DEFAULT, "mallctl"))) {
    memcpy(&t->mallctl, &s, sizeof s);
    t->name = "mallctl_arena_purge";
  } else if ((s = dlsym(RTLD_DEFAULT, "MallocExtension_ReleaseFreeMemory"))) {
    memcpy(&t->tcmalloc, &s, sizeof s);
    t->name = "MallocExtension_ReleaseFreeMemory";
  } else if ((s = dlsym(RTLD_DEFAULT, "mi_collect"))) {
    memcpy(&t->mimalloc, &s, sizeof s);
    t->name = "mi_collect";
  } else {
    t->name = "malloc_trim";
  }
}

static long long call_trim(const trim_t *t) {
  if (t->brisk) return (long long)t->brisk();
  if (t->mallctl) return t->mallctl("arena.4096.purge", NULL, NULL, NULL, 0);
  if (t->tcmalloc) {
    t->tcmalloc();
    return 0;
  }
  if (t->mimalloc) {
    t->mimalloc(true);
    return 0;
  }
  return malloc_trim(0);
}

static double pct(uint64_t x, uint64_t of) { return of ? 100.0 * (double)x / (double)of : 0.0; }

void wl_run_decay(const wl_config_t *cfg, wl_result_t *res) {
  int T = cfg->threads;
  uint64_t total = wl_pick(cfg, 16, 256, 1024) * MIB;
  double wait = cfg->scale == WL_TINY ? 0.3 : 2.0;
  int nsamples = (int)(wait / SAMPLE_S + 0.5);
  trim_t trim;
  find_trim(&trim);

  double t0 = wl_now();
  pthread_barrier_t barrier;
  pthread_barrier_init(&barrier, NULL, (unsigned)T);
  size_t stride = WL_STRIDE(decay_arg_t);
  char *args = wl_thread_args(T, stride);
  for (int i = 0; i < T; i++) {
    decay_arg_t *a = (decay_arg_t *)(args + (size_t)i * stride);
    uint64_t share = wl_share(total, T, i);
    a->id = i;
    a->nthreads = T;
    a->seed = cfg->seed;
    a->big_bytes = share / 4;
    a->small_bytes = share - a->big_bytes;
    a->all_args = args;
    a->stride = stride;
    a->barrier = &barrier;
  }
  wl_run_threads(T, decay_thread, args, stride);
  pthread_barrier_destroy(&barrier);

  uint64_t ops = 0, blocks = 0, big = 0, cross = 0;
  for (int i = 0; i < T; i++) {
    decay_arg_t *a = (decay_arg_t *)(args + (size_t)i * stride);
    ops += a->ops;
    blocks += a->count;
    big += a->big_blocks;
    cross += a->cross_frees;
  }
  free(args);

  /* Everything is freed and the workers have exited.  From here to the
   * trim, no allocator call. */
  double t_free = wl_now();
  uint64_t peak = wl_proc_status_bytes("VmHWM");
  uint64_t rss_free = wl_rss_bytes();
  uint64_t lazy_free = wl_rollup_bytes("LazyFree");
  static uint64_t curve[MAX_SAMPLES];
  for (int k = 1; k <= nsamples && k <= MAX_SAMPLES; k++) {
    wl_sleep_until(t_free + SAMPLE_S * k);
    curve[k - 1] = wl_rss_bytes();
  }
  uint64_t lazy_end = wl_rollup_bytes("LazyFree");
  long long trim_rc = call_trim(&trim);
  uint64_t rss_trim = wl_rss_bytes();
  uint64_t lazy_trim = wl_rollup_bytes("LazyFree");

  uint64_t rss_1s = curve[(nsamples < 10 ? nsamples : 10) - 1];
  uint64_t rss_2s = curve[(nsamples < 20 ? nsamples : 20) - 1];
  char curve_text[MAX_SAMPLES * 8 + 1];
  size_t len = 0;
  for (int k = 0; k < nsamples && k < MAX_SAMPLES; k++)
    len += (size_t)snprintf(curve_text + len, sizeof curve_text - len, "%s%.1f", k ? "," : "",
                            (double)curve[k] / (double)MIB);

  res->ops = ops;
  wl_extra(res,
           "rss_after_free=%llu rss_at_1s=%llu rss_at_2s=%llu rss_after_trim=%llu "
           "pct_free=%.1f pct_1s=%.1f pct_2s=%.1f pct_trim=%.1f trim=%s trim_rc=%lld "
           "wait_s=%.1f work_seconds=%.4f alloc_bytes=%llu blocks=%llu big_blocks=%llu "
           "cross_frees=%llu lazyfree_after_free=%llu lazyfree_at_end=%llu "
           "lazyfree_after_trim=%llu rss_curve_mib=%s merit=memory",
           (unsigned long long)rss_free, (unsigned long long)rss_1s,
           (unsigned long long)rss_2s, (unsigned long long)rss_trim, pct(rss_free, peak),
           pct(rss_1s, peak), pct(rss_2s, peak), pct(rss_trim, peak), trim.name, trim_rc,
           wait, t_free - t0, (unsigned long long)total, (unsigned long long)blocks,
           (unsigned long long)big, (unsigned long long)cross, (unsigned long long)lazy_free,
           (unsigned long long)lazy_end, (unsigned long long)lazy_trim, curve_text);
}
