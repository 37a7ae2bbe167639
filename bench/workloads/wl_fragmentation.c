/* fragmentation: long-lived mixed sizes with churn; how much memory does
 * the allocator need for what the program holds?
 *
 * Each of T threads keeps a live set of about TARGET / T bytes of blocks
 * between 16 bytes and 64 KiB.  The run is a sequence of PHASES phases of
 * STEPS steps per thread.  In each phase the sizes come from a band
 * [2^e, 2^(e+3)) (log-uniform), and e moves up and down between 4 and 13
 * from phase to phase (a triangle wave, each thread shifted by 3 phases,
 * so at any time the threads allocate different sizes).  A step draws a
 * size, frees randomly chosen live blocks until the new one fits under the
 * target, and mallocs and fills the new block.  One block in 64 is
 * "pinned" (kept until the end), up to 1/8 of the target.  So when the
 * size band moves, the old size's memory is left dotted with survivors, and
 * an allocator that cannot reuse it for the new sizes (or give it back to
 * the system) needs more memory.
 *
 * Every block holds its size in its first 8 bytes and the pattern after
 * it, so a slot is just a pointer (the slot arrays are malloc'd and count as
 * live bytes too).
 *
 * Reported: rss_over_live = VmHWM / peak_live_bytes (peak resident memory
 * of the process, from /proc/self/status, over the peak of the bytes the
 * program held; 1.0 would be no overhead at all), peak_rss_bytes (VmHWM)
 * and end_rss_bytes (VmRSS after everything was freed). */
#include "wl.h"

#include <string.h>

#define MIN_SIZE 16
#define MAX_SIZE 65536
#define SALT 0xf4a6000000000005ULL

typedef struct {
  int id;
  uint64_t seed, target, steps, phases;
  uint64_t ops; /* out */
} frag_arg_t;

static int band_of_phase(uint64_t phase) {
  /* 0 1 2 ... 9 8 7 ... 1 0 1 ...: a triangle wave of period 18. */
  int t = (int)(phase % 18);
  return 4 + (t < 10 ? t : 18 - t);
}

static void release(void *p, wl_live_t *live, uint64_t *held) {
  size_t n;
  memcpy(&n, p, sizeof n);
  if (n < MIN_SIZE || n > MAX_SIZE) wl_fail("corrupt_fragmentation_header ptr=%p size=%zu", p, n);
  size_t off = wl_check((char *)p + 8, n - 8, wl_key(p, n, SALT));
  if (off != WL_CHECK_OK)
    wl_fail("corrupt_fragmentation ptr=%p size=%zu offset=%zu byte=0x%02x", p, n, off + 8,
            ((unsigned char *)p)[off + 8]);
  free(p);
  wl_live_add(live, -(int64_t)n);
  *held -= n;
}

static void *frag_thread(void *argp) {
  frag_arg_t *a = argp;
  wl_rng_t rng;
  wl_rng_seed(&rng, a->seed, (uint64_t)a->id);
  wl_live_t live = {0};
  uint64_t ops = 0;

  /* The smallest band averages ~56 bytes: 1/64 of the target in slots is
   * enough to hold nearly the whole target in small blocks. */
  size_t cap = (size_t)(a->target / 64) + 1024;
  uint64_t pin_limit = a->target / 8;
  size_t pcap = (size_t)(pin_limit / 256) + 256;
  void **slots = wl_malloc(cap * sizeof *slots);
  void **pinned = wl_malloc(pcap * sizeof *pinned);
  wl_live_add(&live, (int64_t)((cap + pcap) * sizeof(void *)));
  ops += 2;
  size_t count = 0, npinned = 0;
  uint64_t held = 0, pinned_bytes = 0;

  for (uint64_t ph = 0; ph < a->phases; ph++) {
    int e = band_of_phase(ph + 3 * (uint64_t)a->id);
    uint64_t lo = (uint64_t)1 << e, hi = ((uint64_t)1 << (e + 3)) - 1;
    if (lo < MIN_SIZE) lo = MIN_SIZE;
    if (hi > MAX_SIZE) hi = MAX_SIZE;
    for (uint64_t s = 0; s < a->steps; s++) {
      size_t n = (size_t)wl_logrange(&rng, lo, hi);
      while ((held + n > a->target || count == cap) && count > 0) {
        size_t i = (size_t)wl_below(&rng, count);
        release(slots[i], &live, &held);
        slots[i] = slots[--count];
        ops++;
      }
      void *p = wl_malloc(n);
      memcpy(p, &n, sizeof n);
      wl_fill((char *)p + 8, n - 8, wl_key(p, n, SALT));
      wl_live_add(&live, (int64_t)n);
      held += n;
      ops++;
      if (wl_below(&rng, 64) == 0 && npinned < pcap && pinned_bytes + n <= pin_limit) {
        pinned[npinned++] = p;
        pinned_bytes += n;
      } else {
        slots[count++] = p;
      }
    }
  }

  for (size_t i = 0; i < count; i++) release(slots[i], &live, &held);
  for (size_t i = 0; i < npinned; i++) release(pinned[i], &live, &held);
  ops += count + npinned;
  free(slots);
  free(pinned);
  ops += 2;
  wl_live_add(&live, -(int64_t)((cap + pcap) * sizeof(void *)));
  wl_live_flush(&live);
  if (held != 0) wl_fail("fragmentation_accounting held=%llu", (unsigned long long)held);
  a->ops = ops;
  return NULL;
}

void wl_run_fragmentation(const wl_config_t *cfg, wl_result_t *res) {
  int T = cfg->threads;
  uint64_t target = wl_pick(cfg, 8, 64, 128) << 20; /* bytes live, all threads */
  uint64_t phases = wl_pick(cfg, 12, 36, 90);
  uint64_t steps_total = wl_pick(cfg, 100000, 2500000, 12000000); /* all phases and threads */
  size_t stride = WL_STRIDE(frag_arg_t);
  char *args = wl_thread_args(T, stride);
  for (int i = 0; i < T; i++) {
    frag_arg_t *a = (frag_arg_t *)(args + (size_t)i * stride);
    a->id = i;
    a->seed = cfg->seed;
    a->target = target / (uint64_t)T;
    a->steps = wl_share(steps_total / phases, T, i);
    a->phases = phases;
  }
  wl_run_threads(T, frag_thread, args, stride);

  uint64_t ops = 0;
  for (int i = 0; i < T; i++) ops += ((frag_arg_t *)(args + (size_t)i * stride))->ops;
  free(args);

  uint64_t hwm = wl_proc_status_bytes("VmHWM");
  uint64_t end_rss = wl_proc_status_bytes("VmRSS");
  int64_t peak = atomic_load(&wl_live_peak);
  res->ops = ops;
  wl_extra(res, "rss_over_live=%.3f end_rss_bytes=%llu target_live_bytes=%llu phases=%llu",
           peak > 0 ? (double)hwm / (double)peak : 0.0, (unsigned long long)end_rss,
           (unsigned long long)target, (unsigned long long)phases);
}
