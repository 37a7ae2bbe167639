/* brisk_workloads: allocator benchmark workloads (issue 3).
 *
 *   brisk_workloads <workload> [--scale tiny|short|full] [--threads N]
 *                   [--seed S] [--expect-allocator NAME]
 *   brisk_workloads --list
 *
 * Run it as is (glibc malloc) or under LD_PRELOAD of another allocator.  It
 * prints exactly one line on stdout:
 *
 *   result workload=<name> threads=<T> ops=<N> seconds=<S> ops_per_sec=<X>
 *          peak_live_bytes=<B> check=ok allocator=<a> scale=<s> seed=<S>
 *          cpu_seconds=<C> minor_faults=<F> peak_rss_bytes=<R> base_rss_bytes=<R0> ...
 *
 * (one line; the fields after check=ok are extra information, some of them
 * workload-specific) and exits 0, or prints
 *
 *   result workload=<name> check=FAIL reason=<...>
 *
 * and exits 1 when a block's content, alignment or a calloc'd zero fill is
 * wrong, or an allocation returns NULL.  Exit status 2: bad usage.
 *
 * --expect-allocator NAME fails the run (reason=allocator_mismatch) unless
 * the allocator the process is using is NAME (brisk, jemalloc, tcmalloc,
 * mimalloc or glibc; detected by looking up each allocator's own symbols),
 * so a test can make sure an LD_PRELOAD actually took effect.
 *
 * The workloads (details at the top of each source):
 *   larson         server simulation; slot arrays passed between threads
 *   xmalloc        producers malloc, consumers free, through a queue
 *   cache-scratch  passive false sharing (blocks freed by another thread)
 *   cache-thrash   active false sharing (concurrent small blocks)
 *   fragmentation  long-lived mixed sizes with churn; rss_over_live
 *   server         request-scoped bursts of allocations
 *   large          1-32 MiB blocks, realloc growth, memset
 *   decay          free 1 GiB, then wait: is the RSS given back?  (memory;
 *                  its seconds include a 2 s wait: merit=memory)
 *   churn          steady live heap replaced by 4 threads; RSS / live,
 *                  hugepage coverage, mappings, throughput
 *   reuse          one 5-25 MiB block malloc'd, touched, freed, repeatedly;
 *                  page faults per iteration
 *
 * --scale: tiny (well under 0.5 s; the ctest smoke runs), short (about 1-3 s
 * with the default threads on 2 cores; the headline comparison), full
 * (about 10 s; churn about a minute under glibc).  Default threads: 4
 * (large: 2, reuse: 1).  The total work of a scale is divided among the
 * threads, so --threads changes the parallelism, not the amount of work.
 * Default seed: 1. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "wl.h"

#include <dlfcn.h>
#include <errno.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

typedef struct {
  const char *name;
  void (*run)(const wl_config_t *, wl_result_t *);
  int default_threads;
} workload_t;

static const workload_t workloads[] = {
    {"larson", wl_run_larson, 4},
    {"xmalloc", wl_run_xmalloc, 4},
    {"cache-scratch", wl_run_cache_scratch, 4},
    {"cache-thrash", wl_run_cache_thrash, 4},
    {"fragmentation", wl_run_fragmentation, 4},
    {"server", wl_run_server, 4},
    {"large", wl_run_large, 2},
    {"decay", wl_run_decay, 4},
    {"churn", wl_run_churn, 4},
    {"reuse", wl_run_reuse, 1},
};
#define N_WORKLOADS (sizeof workloads / sizeof workloads[0])

static void usage(FILE *f) {
  fprintf(f,
          "usage: brisk_workloads <workload> [--scale tiny|short|full] [--threads N]\n"
          "                       [--seed S] [--expect-allocator NAME]\n"
          "       brisk_workloads --list\n"
          "workloads:");
  for (size_t i = 0; i < N_WORKLOADS; i++) fprintf(f, " %s", workloads[i].name);
  fprintf(f, "\n");
}

/* Which allocator serves this process: each one exports names of its own. */
static const char *detect_allocator(void) {
  static const struct {
    const char *symbol, *name;
  } probes[] = {
      {"brisk_malloc", "brisk"},
      {"mi_malloc", "mimalloc"},
      {"tc_malloc", "tcmalloc"},
      {"mallctl", "jemalloc"},
  };
  for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++)
    if (dlsym(RTLD_DEFAULT, probes[i].symbol)) return probes[i].name;
  return "glibc";
}

static double tv_seconds(const struct timeval *tv) {
  return (double)tv->tv_sec + (double)tv->tv_usec * 1e-6;
}

static bool parse_u64(const char *s, uint64_t *out) {
  if (!s || !*s) return false;
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 0);
  if (errno || *end || s[0] == '-') return false;
  *out = v;
  return true;
}

int main(int argc, char **argv) {
  if (argc >= 2 && strcmp(argv[1], "--list") == 0) {
    for (size_t i = 0; i < N_WORKLOADS; i++) printf("%s\n", workloads[i].name);
    return 0;
  }
  if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
    usage(stdout);
    return 0;
  }
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  const workload_t *w = NULL;
  for (size_t i = 0; i < N_WORKLOADS; i++)
    if (strcmp(argv[1], workloads[i].name) == 0) w = &workloads[i];
  if (!w) {
    fprintf(stderr, "brisk_workloads: unknown workload '%s'\n", argv[1]);
    usage(stderr);
    return 2;
  }

  wl_config_t cfg = {.name = w->name, .threads = w->default_threads, .seed = 1,
                     .scale = WL_SHORT};
  const char *expect = NULL;
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    uint64_t n;
    if (strcmp(a, "--scale") == 0 && v) {
      if (strcmp(v, "tiny") == 0) cfg.scale = WL_TINY;
      else if (strcmp(v, "short") == 0) cfg.scale = WL_SHORT;
      else if (strcmp(v, "full") == 0) cfg.scale = WL_FULL;
      else {
        fprintf(stderr, "brisk_workloads: --scale must be tiny, short or full\n");
        return 2;
      }
      i++;
    } else if (strcmp(a, "--threads") == 0 && v) {
      if (!parse_u64(v, &n) || n < 1 || n > 1024) {
        fprintf(stderr, "brisk_workloads: --threads must be 1..1024\n");
        return 2;
      }
      cfg.threads = (int)n;
      i++;
    } else if (strcmp(a, "--seed") == 0 && v) {
      if (!parse_u64(v, &n)) {
        fprintf(stderr, "brisk_workloads: bad --seed '%s'\n", v);
        return 2;
      }
      cfg.seed = n;
      i++;
    } else if (strcmp(a, "--expect-allocator") == 0 && v) {
      expect = v;
      i++;
    } else {
      fprintf(stderr, "brisk_workloads: bad argument '%s'\n", a);
      usage(stderr);
      return 2;
    }
  }
  wl_workload_name = w->name;

  const char *alloc_name = detect_allocator();
  if (expect && strcmp(expect, alloc_name) != 0)
    wl_fail("allocator_mismatch expected=%s found=%s", expect, alloc_name);

  static const char *scale_names[] = {"tiny", "short", "full"};
  uint64_t base_rss = wl_proc_status_bytes("VmRSS");
  wl_result_t res;
  memset(&res, 0, sizeof res);
  res.threads = cfg.threads;

  struct timespec t0, t1;
  struct rusage ru0, ru1;
  getrusage(RUSAGE_SELF, &ru0);
  clock_gettime(CLOCK_MONOTONIC, &t0);
  w->run(&cfg, &res);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  getrusage(RUSAGE_SELF, &ru1);

  double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
  double cpu = tv_seconds(&ru1.ru_utime) - tv_seconds(&ru0.ru_utime) +
               tv_seconds(&ru1.ru_stime) - tv_seconds(&ru0.ru_stime);
  uint64_t hwm = wl_proc_status_bytes("VmHWM");
  int64_t peak = atomic_load(&wl_live_peak);
  if (peak < 0) peak = 0;
  if (atomic_load(&wl_live_now) != 0)
    wl_fail("live_bytes_not_zero_at_end live=%lld", (long long)atomic_load(&wl_live_now));

  printf("result workload=%s threads=%d ops=%llu seconds=%.4f ops_per_sec=%.0f "
         "peak_live_bytes=%lld check=ok allocator=%s scale=%s seed=%llu "
         "cpu_seconds=%.3f minor_faults=%ld peak_rss_bytes=%llu base_rss_bytes=%llu%s\n",
         w->name, res.threads, (unsigned long long)res.ops, secs,
         secs > 0 ? (double)res.ops / secs : 0.0, (long long)peak, alloc_name,
         scale_names[cfg.scale], (unsigned long long)cfg.seed, cpu,
         ru1.ru_minflt - ru0.ru_minflt, (unsigned long long)hwm,
         (unsigned long long)base_rss, res.extra);
  fflush(stdout);
  return 0;
}
