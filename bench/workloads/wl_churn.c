/* churn: a steady live heap that is replaced continuously.  How much
 * memory does the allocator hold for it, in how many mappings, and how
 * much of it in transparent hugepages?
 *
 * A shared array of SLOTS pointers holds the live heap: LIVE bytes (8 MiB
 * tiny, 64 MiB short, 200 MiB full), SLOTS = LIVE / the mean block size.
 * Block sizes: 16 B..64 KiB (log-uniform), and in one slot of 256
 * 256 KiB..4 MiB (log-uniform).  So that the live heap stays steady (a
 * random walk of the live bytes would make RSS / live measure the walk, not
 * the allocator), each slot has a fixed power-of-two band, drawn once from
 * its index with the log-uniform weights (churn_shape.h): every block put
 * into the slot has a size drawn uniformly from that band.  The mix of sizes allocated
 * is the same as drawing each size afresh, the live bytes stay within a
 * few percent of LIVE.  Every block holds its size in its first 8 bytes
 * and wl_fill's pattern after it.
 *
 * T threads (default 4) first fill the slots (thread i the slots i, i+T,
 * ...); a barrier; then each does its share of STEPS steps: malloc and fill
 * a block of a random size, swap it into a random slot of the whole array
 * (atomic exchange), then verify and free the block it took out.  The
 * exchange hands each block to exactly one owner, so no block is freed
 * twice and no lock is needed; as any thread may have put a block into a
 * slot, about (T-1)/T of the frees are of blocks another thread allocated.
 * A barrier; then each thread frees its slots.
 *
 * A sampler thread records, from the start of the churn phase and every
 * SAMPLE_S (200 ms), the RSS, AnonHugePages (/proc/self/smaps_rollup), the
 * lines of /proc/self/maps and the live bytes (wl_live_now, exact to
 * T x 32 KiB); one more sample is taken when the churn phase ends, before
 * the frees.  It reads /proc without stdio or malloc.
 *
 * Reported: churn_ops_per_sec (allocator calls of the churn phase, 2 per
 * step, over its wall time: the throughput), churn_seconds, live_bytes
 * (median over the samples), rss_over_live_max and rss_over_live_median
 * ((RSS - base) / live bytes per sample, base being the RSS before the
 * workload allocated anything: the binary, the libraries, the allocator's
 * start-up; 1.0 would be no overhead), hugepage_coverage_median
 * (AnonHugePages / RSS, median over the samples), maps_max (most lines of
 * /proc/self/maps), rss_max, samples, slots, steps and thp (the system's
 * transparent-hugepage mode: always, madvise, never). */
#include "wl.h"
#include "churn_shape.h"

#include <pthread.h>
#include <string.h>
#include <time.h>

#define MIB ((uint64_t)1 << 20)
#define SAMPLE_S 0.2
#define MAX_SAMPLES 4096
#define SALT CHURN_SALT

typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int phase; /* 0 filling, 1 churning, 2 done */
  double t0, t_end;
  size_t n;
  wl_mem_sample_t s[MAX_SAMPLES];
} sampler_t;

static sampler_t sampler = {.mu = PTHREAD_MUTEX_INITIALIZER};

typedef struct {
  int id, nthreads;
  uint64_t seed, steps;
  uint32_t (*bands)[2]; /* per slot: lo, hi */
  _Atomic(void *) *slots;
  size_t nslots;
  pthread_barrier_t *barrier;
  uint64_t ops, churn_ops; /* out */
} churn_arg_t;

static void *new_block(const churn_arg_t *a, size_t slot, wl_rng_t *r, wl_live_t *live) {
  size_t n = (size_t)wl_range(r, a->bands[slot][0], a->bands[slot][1]);
  void *p = wl_malloc(n);
  memcpy(p, &n, sizeof n);
  wl_fill((char *)p + 8, n - 8, wl_key(p, n, SALT));
  wl_live_add(live, (int64_t)n);
  return p;
}

static void release(void *p, wl_live_t *live) {
  size_t n;
  memcpy(&n, p, sizeof n);
  if (n < CHURN_SMALL_MIN || n > CHURN_BIG_MAX) wl_fail("corrupt_churn_header ptr=%p size=%zu", p, n);
  size_t off = wl_check((char *)p + 8, n - 8, wl_key(p, n, SALT));
  if (off != WL_CHECK_OK)
    wl_fail("corrupt_churn ptr=%p size=%zu offset=%zu byte=0x%02x", p, n, off + 8,
            ((unsigned char *)p)[off + 8]);
  free(p);
  wl_live_add(live, -(int64_t)n);
}

static void set_phase(int phase) {
  pthread_mutex_lock(&sampler.mu);
  if (phase == 1) {
    sampler.t0 = wl_now();
  } else {
    sampler.t_end = wl_now();
    if (sampler.n < MAX_SAMPLES) {
      wl_mem_sample(&sampler.s[sampler.n], sampler.t_end - sampler.t0);
      sampler.n++;
    }
  }
  sampler.phase = phase;
  pthread_cond_broadcast(&sampler.cv);
  pthread_mutex_unlock(&sampler.mu);
}

static void *sampler_thread(void *unused) {
  (void)unused;
  pthread_mutex_lock(&sampler.mu);
  while (sampler.phase == 0) pthread_cond_wait(&sampler.cv, &sampler.mu);
  while (sampler.phase == 1) {
    if (sampler.n < MAX_SAMPLES) {
      wl_mem_sample(&sampler.s[sampler.n], wl_now() - sampler.t0);
      sampler.n++;
    }
    double next = sampler.t0 + SAMPLE_S * (double)sampler.n;
    struct timespec ts;
    ts.tv_sec = (time_t)next;
    ts.tv_nsec = (long)((next - (double)ts.tv_sec) * 1e9);
    if (ts.tv_nsec > 999999999L) ts.tv_nsec = 999999999L;
    while (sampler.phase == 1 && wl_now() < next)
      pthread_cond_timedwait(&sampler.cv, &sampler.mu, &ts);
  }
  pthread_mutex_unlock(&sampler.mu);
  return NULL;
}

static void *churn_thread(void *argp) {
  churn_arg_t *a = argp;
  wl_rng_t rng;
  wl_rng_seed(&rng, a->seed, (uint64_t)a->id);
  wl_live_t live = {0};
  uint64_t ops = 0;
  size_t T = (size_t)a->nthreads;

  for (size_t i = (size_t)a->id; i < a->nslots; i += T) {
    atomic_store_explicit(&a->slots[i], new_block(a, i, &rng, &live), memory_order_relaxed);
    ops++;
  }
  wl_live_flush(&live);
  if (pthread_barrier_wait(a->barrier) == PTHREAD_BARRIER_SERIAL_THREAD) set_phase(1);

  for (uint64_t s = 0; s < a->steps; s++) {
    size_t i = (size_t)wl_below(&rng, a->nslots);
    void *p = new_block(a, i, &rng, &live);
    void *old = atomic_exchange_explicit(&a->slots[i], p, memory_order_acq_rel);
    release(old, &live);
  }
  a->churn_ops = 2 * a->steps;
  ops += a->churn_ops;
  wl_live_flush(&live);
  if (pthread_barrier_wait(a->barrier) == PTHREAD_BARRIER_SERIAL_THREAD) set_phase(2);
  /* The sample of set_phase(2) must see the heap before the frees. */
  pthread_barrier_wait(a->barrier);

  for (size_t i = (size_t)a->id; i < a->nslots; i += T) {
    release(atomic_load_explicit(&a->slots[i], memory_order_relaxed), &live);
    ops++;
  }
  wl_live_flush(&live);
  a->ops = ops;
  return NULL;
}

static int cmp_double(const void *x, const void *y) {
  double a = *(const double *)x, b = *(const double *)y;
  return (a > b) - (a < b);
}

static double median(double *v, size_t n) {
  if (n == 0) return 0;
  qsort(v, n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void wl_run_churn(const wl_config_t *cfg, wl_result_t *res) {
  int T = cfg->threads;
  uint64_t base = wl_rss_bytes();
  uint64_t target = wl_pick(cfg, 8, 64, 200) * MIB;
  uint64_t steps = wl_pick(cfg, 60000, 2000000, 32000000);
  size_t nslots = churn_slots(target);
  if (nslots < (size_t)T) nslots = (size_t)T;

  _Atomic(void *) *slots = wl_malloc(nslots * sizeof *slots);
  uint32_t (*bands)[2] = wl_malloc(nslots * sizeof *bands);
  for (size_t i = 0; i < nslots; i++) {
    uint64_t lo, hi;
    churn_slot_band(i, cfg->seed, &lo, &hi);
    bands[i][0] = (uint32_t)lo;
    bands[i][1] = (uint32_t)hi;
  }
  int64_t arrays = (int64_t)(nslots * (sizeof *slots + sizeof *bands));
  wl_live_t live = {0};
  wl_live_add(&live, arrays);
  wl_live_flush(&live);

  sampler.phase = 0;
  sampler.n = 0;
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&sampler.cv, &ca);
  pthread_condattr_destroy(&ca);
  pthread_t sampler_tid;
  int e = pthread_create(&sampler_tid, NULL, sampler_thread, NULL);
  if (e) wl_fail("pthread_create_failed error=%d thread=sampler", e);

  pthread_barrier_t barrier;
  pthread_barrier_init(&barrier, NULL, (unsigned)T);
  size_t stride = WL_STRIDE(churn_arg_t);
  char *args = wl_thread_args(T, stride);
  for (int i = 0; i < T; i++) {
    churn_arg_t *a = (churn_arg_t *)(args + (size_t)i * stride);
    a->id = i;
    a->nthreads = T;
    a->seed = cfg->seed;
    a->steps = wl_share(steps, T, i);
    a->slots = slots;
    a->bands = bands;
    a->nslots = nslots;
    a->barrier = &barrier;
  }
  wl_run_threads(T, churn_thread, args, stride);
  pthread_join(sampler_tid, NULL);
  pthread_barrier_destroy(&barrier);

  uint64_t ops = 0, churn_ops = 0;
  for (int i = 0; i < T; i++) {
    churn_arg_t *a = (churn_arg_t *)(args + (size_t)i * stride);
    ops += a->ops;
    churn_ops += a->churn_ops;
  }
  free(args);
  free(slots);
  free(bands);
  ops += 4;
  wl_live_add(&live, -arrays);
  wl_live_flush(&live);

  size_t n = sampler.n;
  double ratio[MAX_SAMPLES], cover[MAX_SAMPLES], lives[MAX_SAMPLES];
  double ratio_max = 0;
  uint64_t maps_max = 0, rss_max = 0;
  for (size_t k = 0; k < n; k++) {
    const wl_mem_sample_t *s = &sampler.s[k];
    double used = s->rss > base ? (double)(s->rss - base) : 0;
    ratio[k] = s->live > 0 ? used / (double)s->live : 0;
    cover[k] = s->rss ? (double)s->anon_huge / (double)s->rss : 0;
    lives[k] = (double)s->live;
    if (ratio[k] > ratio_max) ratio_max = ratio[k];
    if (s->maps > maps_max) maps_max = s->maps;
    if (s->rss > rss_max) rss_max = s->rss;
  }
  double secs = sampler.t_end - sampler.t0;

  res->ops = ops;
  wl_extra(res,
           "churn_ops_per_sec=%.0f churn_seconds=%.4f live_bytes=%.0f rss_over_live_max=%.3f "
           "rss_over_live_median=%.3f hugepage_coverage_median=%.3f maps_max=%llu "
           "rss_max=%llu samples=%zu slots=%zu steps=%llu thp=%s",
           secs > 0 ? (double)churn_ops / secs : 0.0, secs, median(lives, n), ratio_max,
           median(ratio, n), median(cover, n), (unsigned long long)maps_max,
           (unsigned long long)rss_max, n, nslots, (unsigned long long)steps, wl_thp_mode());
}
