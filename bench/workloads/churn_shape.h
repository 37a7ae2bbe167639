/* The shape of the churn workload's live heap (wl_churn.c): how many slots
 * hold it and which size band each slot draws from.  Shared with
 * bench/placement/placement_sim.c, which replays churn's large blocks. */
#ifndef BRISK_BENCH_CHURN_SHAPE_H
#define BRISK_BENCH_CHURN_SHAPE_H

#include <stddef.h>
#include <stdint.h>

#include "wl.h"

#define CHURN_SMALL_MIN 16
#define CHURN_SMALL_MAX ((uint64_t)64 << 10)
#define CHURN_BIG_MIN ((uint64_t)256 << 10)
#define CHURN_BIG_MAX ((uint64_t)4 << 20)
#define CHURN_BIG_ONE_IN 256
#define CHURN_SALT 0xc4a2700000000009ULL

/* Is slot i one of the big ones (spread evenly)? */
static inline int churn_slot_is_big(size_t i) {
  return i % CHURN_BIG_ONE_IN == CHURN_BIG_ONE_IN / 2;
}

/* Slot i's band: [lo, hi] of a power of two, fixed for the slot, drawn as
 * wl_logrange draws them (each power of two equally likely). */
static inline void churn_slot_band(size_t i, uint64_t seed, uint64_t *lo, uint64_t *hi) {
  uint64_t min = CHURN_SMALL_MIN, max = CHURN_SMALL_MAX;
  if (churn_slot_is_big(i)) {
    min = CHURN_BIG_MIN;
    max = CHURN_BIG_MAX;
  }
  int lo_bit = 63 - __builtin_clzll(min), hi_bit = 63 - __builtin_clzll(max);
  uint64_t h = wl_mix64(seed * 0x9e3779b97f4a7c15ULL ^ (uint64_t)i ^ CHURN_SALT);
  int b = lo_bit + (int)(h % (uint64_t)(hi_bit - lo_bit + 1));
  uint64_t a = (uint64_t)1 << b, z = (a << 1) - 1;
  *lo = a < min ? min : a;
  *hi = z > max ? max : z;
}

/* The mean of wl_logrange(lo, hi): its bands, each equally likely. */
static inline double churn_mean_logrange(uint64_t lo, uint64_t hi) {
  int lo_bit = 63 - __builtin_clzll(lo), hi_bit = 63 - __builtin_clzll(hi);
  double sum = 0;
  for (int b = lo_bit; b <= hi_bit; b++) {
    uint64_t a = (uint64_t)1 << b, z = (a << 1) - 1;
    if (a < lo) a = lo;
    if (z > hi) z = hi;
    sum += ((double)a + (double)z) / 2;
  }
  return sum / (hi_bit - lo_bit + 1);
}

/* Slots for a live heap of `target` bytes. */
static inline size_t churn_slots(uint64_t target) {
  double mean = (churn_mean_logrange(CHURN_SMALL_MIN, CHURN_SMALL_MAX) * (CHURN_BIG_ONE_IN - 1) +
                 churn_mean_logrange(CHURN_BIG_MIN, CHURN_BIG_MAX)) / CHURN_BIG_ONE_IN;
  return (size_t)((double)target / mean);
}

#endif
