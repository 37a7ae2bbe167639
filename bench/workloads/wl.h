/* brisk_workloads: allocator-neutral benchmark workloads.
 *
 * The program calls malloc, free, calloc and realloc by their standard
 * names and links no allocator: it measures whatever allocator the process
 * runs with (glibc's, or one given with LD_PRELOAD).
 *
 * Shared helpers for the workloads (wl_*.c):
 *
 *   - a per-thread xorshift64* generator, seeded from --seed and the thread
 *     index, so that every thread's sequence of sizes and choices is the
 *     same on every run and under every allocator;
 *   - content patterns: wl_fill() writes a pattern derived from a 64-bit key
 *     and the byte offset, wl_check() verifies it.  Blocks up to
 *     WL_DENSE_MAX (4 KiB) are filled entirely; larger ones on a sparse
 *     subset (the first and last 64 bytes and one word per 4 KiB page), so
 *     that every page of the block is touched but the fill stays cheap.
 *     wl_check() reads blocks up to WL_CHECK_DENSE_MAX (128 bytes) entirely,
 *     blocks up to 4 KiB on the first and last 64 bytes, one word per KiB
 *     and the odd tail bytes, and larger ones on the fill's sparse subset.
 *     (Reading every byte of every block before freeing it made the
 *     verification, nearly all of it cache misses, 60% of larson's time,
 *     which drowned the differences between allocators.  The sampled check
 *     still catches the usual failures: free-list links or other metadata
 *     written into a live block's first words, blocks handed out twice,
 *     blocks whose ends overlap; it can miss a write into the unsampled
 *     middle of a block over 128 bytes);
 *   - live-byte accounting: each thread adds its allocations and frees to a
 *     private counter that is folded into a global counter (and the global
 *     peak) whenever it moves by WL_LIVE_FLUSH bytes, so the reported peak
 *     is exact to within threads x WL_LIVE_FLUSH bytes and costs no shared
 *     cache line per operation;
 *   - wl_fail(): prints the one FAIL result line and exits 1.
 *
 * Operation counts ("ops") count allocator calls: every malloc, calloc,
 * realloc and free is one op.  Every loop is bounded by counts, never by
 * time, so each allocator gets exactly the same work for a given scale,
 * thread count and seed. */
#ifndef BRISK_WL_H
#define BRISK_WL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* ------------------------------------------------------------------ */
/* Configuration and results                                           */

typedef enum { WL_TINY = 0, WL_SHORT = 1, WL_FULL = 2 } wl_scale_t;

typedef struct {
  const char *name;  /* workload name, as given on the command line */
  int threads;       /* requested thread count */
  uint64_t seed;
  wl_scale_t scale;
} wl_config_t;

typedef struct {
  int threads;        /* threads actually used (a workload may adjust) */
  uint64_t ops;       /* allocator calls */
  char extra[1024];   /* workload-specific " key=value" fields */
  size_t extra_len;
} wl_result_t;

/* Appends " key=value" text to res->extra (printf format). */
void wl_extra(wl_result_t *res, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Picks the parameter for the configured scale. */
static inline uint64_t wl_pick(const wl_config_t *cfg, uint64_t tiny,
                               uint64_t shrt, uint64_t full) {
  return cfg->scale == WL_TINY ? tiny : cfg->scale == WL_SHORT ? shrt : full;
}

/* The workloads.  Each runs to completion (or calls wl_fail) and fills res. */
void wl_run_larson(const wl_config_t *cfg, wl_result_t *res);
void wl_run_xmalloc(const wl_config_t *cfg, wl_result_t *res);
void wl_run_cache_scratch(const wl_config_t *cfg, wl_result_t *res);
void wl_run_cache_thrash(const wl_config_t *cfg, wl_result_t *res);
void wl_run_fragmentation(const wl_config_t *cfg, wl_result_t *res);
void wl_run_server(const wl_config_t *cfg, wl_result_t *res);
void wl_run_large(const wl_config_t *cfg, wl_result_t *res);
void wl_run_decay(const wl_config_t *cfg, wl_result_t *res);
void wl_run_churn(const wl_config_t *cfg, wl_result_t *res);
void wl_run_reuse(const wl_config_t *cfg, wl_result_t *res);

/* ------------------------------------------------------------------ */
/* Failure                                                              */

/* Prints "result workload=<name> check=FAIL reason=<fmt...>" on stdout and
 * exits with status 1.  Safe to call from any thread; the first caller
 * wins.  The reason's first word must contain no spaces. */
_Noreturn void wl_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The workload name wl_fail prints. */
extern const char *wl_workload_name;

/* ------------------------------------------------------------------ */
/* Random numbers: xorshift64* per thread                              */

typedef struct {
  uint64_t s;
} wl_rng_t;

static inline uint64_t wl_mix64(uint64_t x) {
  /* A 64-bit finaliser: multiply-xorshift rounds. */
  x ^= x >> 31;
  x *= 0x7fb5d329728ea185ULL;
  x ^= x >> 27;
  x *= 0x81dadef4bc2dd44dULL;
  x ^= x >> 33;
  return x;
}

static inline void wl_rng_seed(wl_rng_t *r, uint64_t seed, uint64_t stream) {
  uint64_t s = wl_mix64(seed * 0x9e3779b97f4a7c15ULL + stream + 1);
  s ^= wl_mix64(stream * 0xd1b54a32d192ed03ULL + 0x632be59bd9b4e019ULL);
  r->s = s ? s : 0x5851f42d4c957f2dULL;
}

static inline uint64_t wl_next(wl_rng_t *r) {
  uint64_t x = r->s;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  r->s = x;
  return x * 0x2545f4914f6cdd1dULL;
}

__extension__ typedef unsigned __int128 wl_u128;

/* Uniform in [0, n) (multiply-high, no division). */
static inline uint64_t wl_below(wl_rng_t *r, uint64_t n) {
  return (uint64_t)(((wl_u128)wl_next(r) * n) >> 64);
}

/* Uniform in [lo, hi]. */
static inline uint64_t wl_range(wl_rng_t *r, uint64_t lo, uint64_t hi) {
  return lo + wl_below(r, hi - lo + 1);
}

/* Roughly log-uniform in [lo, hi] (lo >= 1): a uniform power-of-two band,
 * then uniform inside it. */
static inline uint64_t wl_logrange(wl_rng_t *r, uint64_t lo, uint64_t hi) {
  int lo_bit = 63 - __builtin_clzll(lo);
  int hi_bit = 63 - __builtin_clzll(hi);
  int b = lo_bit + (int)wl_below(r, (uint64_t)(hi_bit - lo_bit + 1));
  uint64_t a = (uint64_t)1 << b;
  uint64_t z = (b == 63) ? UINT64_MAX : (a << 1) - 1;
  if (a < lo) a = lo;
  if (z > hi) z = hi;
  return wl_range(r, a, z);
}

/* ------------------------------------------------------------------ */
/* Content patterns                                                     */

#define WL_DENSE_MAX 4096
#define WL_CHECK_DENSE_MAX 128
#define WL_CHECK_OK ((size_t)-1)

/* A key that differs for every (address, size, salt): two live blocks that
 * overlap get different patterns, so the overlap shows up. */
static inline uint64_t wl_key(const void *p, size_t n, uint64_t salt) {
  return wl_mix64((uint64_t)(uintptr_t)p ^ ((uint64_t)n << 40) ^ salt);
}

/* Writes the pattern for (key) into the n bytes at p (see the top). */
void wl_fill(void *p, size_t n, uint64_t key);
/* Returns WL_CHECK_OK, or the offset of the first byte that differs from
 * what wl_fill(p, n, key) wrote. */
size_t wl_check(const void *p, size_t n, uint64_t key);

/* wl_check, and wl_fail with "corrupt_<what>" if it does not match. */
void wl_verify(const void *p, size_t n, uint64_t key, const char *what);

/* malloc/calloc/realloc that fail the run on NULL or on a block that is not
 * 16-byte aligned (for sizes >= 16; 8-byte aligned below). */
void *wl_malloc(size_t n);
void *wl_calloc(size_t count, size_t size);
void *wl_realloc(void *p, size_t n);

/* ------------------------------------------------------------------ */
/* Live bytes                                                           */

#define WL_LIVE_FLUSH (32 * 1024)

typedef struct {
  int64_t pending;
} wl_live_t;

extern _Atomic int64_t wl_live_now;
extern _Atomic int64_t wl_live_peak;

void wl_live_flush(wl_live_t *l);

static inline void wl_live_add(wl_live_t *l, int64_t delta) {
  l->pending += delta;
  if (l->pending >= WL_LIVE_FLUSH || l->pending <= -WL_LIVE_FLUSH)
    wl_live_flush(l);
}

/* ------------------------------------------------------------------ */
/* Threads and misc                                                     */

/* Runs fn(arg_i) on n threads, arg_i = (char *)args + i * stride, and joins
 * them all. */
void wl_run_threads(int n, void *(*fn)(void *), void *args, size_t stride);

/* Allocates zeroed memory for per-thread argument structures, aligned to
 * 128 bytes (so the benchmark's own data never shares cache lines between
 * threads).  Comes from malloc like everything else; free with free(). */
void *wl_thread_args(int n, size_t stride);

/* Rounds a per-thread structure size up to a multiple of 128. */
#define WL_STRIDE(t) ((sizeof(t) + 127) & ~(size_t)127)

/* A value of /proc/self/status in bytes (e.g. "VmHWM"), 0 if missing. */
uint64_t wl_proc_status_bytes(const char *field);

/* ------------------------------------------------------------------ */
/* Memory of the process, read without the allocator                   */

/* These read /proc with open/read/close into stack buffers: no stdio and no
 * malloc, so a workload can sample its memory while it must not call the
 * allocator (decay's wait), and a sampler thread does not disturb the heap
 * it measures. */

/* Resident set size in bytes (/proc/self/statm, resident pages x page
 * size; the same counter as VmRSS).  0 if unreadable. */
uint64_t wl_rss_bytes(void);

/* A field of /proc/self/smaps_rollup in bytes (e.g. "LazyFree": pages
 * given back with MADV_FREE that the kernel has not taken yet, still
 * counted in the RSS).  0 if missing or unreadable. */
uint64_t wl_rollup_bytes(const char *field);

/* wl_rollup_bytes("AnonHugePages"): anonymous memory mapped with
 * transparent hugepages. */
uint64_t wl_anon_huge_bytes(void);

/* Number of lines of /proc/self/maps (the process's mappings, VMAs). */
uint64_t wl_maps_lines(void);

/* The transparent-hugepage mode, the bracketed word of
 * /sys/kernel/mm/transparent_hugepage/enabled ("always", "madvise",
 * "never"), or "unknown".  Points into a static buffer. */
const char *wl_thp_mode(void);

/* One sample of the above. */
typedef struct {
  double t;           /* seconds since the sampler started */
  uint64_t rss;       /* wl_rss_bytes() */
  uint64_t anon_huge; /* wl_anon_huge_bytes() */
  uint64_t maps;      /* wl_maps_lines() */
  int64_t live;       /* wl_live_now when the sample was taken */
} wl_mem_sample_t;

void wl_mem_sample(wl_mem_sample_t *s, double t);

/* CLOCK_MONOTONIC in seconds. */
double wl_now(void);

/* Sleeps until wl_now() >= t (absolute, CLOCK_MONOTONIC; EINTR-safe). */
void wl_sleep_until(double t);

/* Divides a total among n parts; part i gets the remainder's share. */
static inline uint64_t wl_share(uint64_t total, int n, int i) {
  return total / (uint64_t)n + ((uint64_t)i < total % (uint64_t)n ? 1 : 0);
}

#endif
