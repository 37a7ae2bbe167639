/* Shared helpers of brisk_workloads: patterns, failure, live bytes,
 * threads, /proc/self/status, memory sampling.  See wl.h. */
#include "wl.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

const char *wl_workload_name = "?";

_Atomic int64_t wl_live_now;
_Atomic int64_t wl_live_peak;

void wl_extra(wl_result_t *res, const char *fmt, ...) {
  size_t room = sizeof res->extra - res->extra_len;
  if (room <= 1) return;
  res->extra[res->extra_len++] = ' ';
  room--;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(res->extra + res->extra_len, room, fmt, ap);
  va_end(ap);
  if (n < 0) n = 0;
  res->extra_len += (size_t)n < room ? (size_t)n : room - 1;
}

/* ------------------------------------------------------------------ */

static atomic_flag fail_once = ATOMIC_FLAG_INIT;

_Noreturn void wl_fail(const char *fmt, ...) {
  if (atomic_flag_test_and_set(&fail_once)) {
    /* Another thread is already reporting; it will exit the process. */
    for (;;) pause();
  }
  char reason[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(reason, sizeof reason, fmt, ap);
  va_end(ap);
  /* Printed with a single write so that it cannot interleave with anything
   * and needs no stdio lock another thread might hold. */
  char line[700];
  int n = snprintf(line, sizeof line, "result workload=%s check=FAIL reason=%s\n",
                   wl_workload_name, reason);
  if (n > (int)sizeof line - 1) n = (int)sizeof line - 1;
  ssize_t w = write(STDOUT_FILENO, line, (size_t)n);
  (void)w;
  _exit(1);
}

/* ------------------------------------------------------------------ */
/* Patterns */

#define GOLDEN 0x9e3779b97f4a7c15ULL

/* The pattern word at byte offset off: additive in off, so that the dense
 * loops step it with one addition. */
static inline uint64_t pat(uint64_t key, size_t off) { return key + (uint64_t)off * GOLDEN; }

static inline void put64(unsigned char *b, size_t off, uint64_t v) { memcpy(b + off, &v, 8); }

static inline uint64_t get64(const unsigned char *b, size_t off) {
  uint64_t v;
  memcpy(&v, b + off, 8);
  return v;
}

/* First differing byte of the 8-byte word at off (for the report). */
static size_t first_diff(const unsigned char *b, size_t off, uint64_t want) {
  uint64_t x = get64(b, off) ^ want;
  return off + (size_t)(__builtin_ctzll(x) / 8);
}

/* The bytes after the last whole word of a dense block. */
static inline void fill_tail(unsigned char *b, size_t n, uint64_t key) {
  size_t off = n & ~(size_t)7;
  uint64_t v = pat(key, off);
  for (size_t i = 0; off + i < n; i++) b[off + i] = (unsigned char)(v >> (8 * i));
}

static inline size_t check_tail(const unsigned char *b, size_t n, uint64_t key) {
  size_t off = n & ~(size_t)7;
  uint64_t v = pat(key, off);
  for (size_t i = 0; off + i < n; i++)
    if (b[off + i] != (unsigned char)(v >> (8 * i))) return off + i;
  return WL_CHECK_OK;
}

/* What wl_fill writes into a block over WL_DENSE_MAX: the first and last
 * 64 bytes (the last at unaligned offsets if n is not a multiple of 8) and
 * one word per 4 KiB in between. */
static inline size_t check_sparse(const unsigned char *b, size_t n, uint64_t key) {
  for (size_t off = 0; off < 64; off += 8)
    if (get64(b, off) != pat(key, off)) return first_diff(b, off, pat(key, off));
  for (size_t off = 4096; off + 8 <= n - 64; off += 4096)
    if (get64(b, off) != pat(key, off)) return first_diff(b, off, pat(key, off));
  for (size_t off = n - 64; off < n; off += 8)
    if (get64(b, off) != pat(key, off)) return first_diff(b, off, pat(key, off));
  return WL_CHECK_OK;
}

void wl_fill(void *p, size_t n, uint64_t key) {
  unsigned char *b = p;
  if (n <= WL_DENSE_MAX) {
    size_t words = n / 8;
    uint64_t v = key;
    for (size_t i = 0; i < words; i++, v += 8 * GOLDEN) put64(b, i * 8, v);
    fill_tail(b, n, key);
    return;
  }
  for (size_t off = 0; off < 64; off += 8) put64(b, off, pat(key, off));
  for (size_t off = 4096; off + 8 <= n - 64; off += 4096) put64(b, off, pat(key, off));
  for (size_t off = n - 64; off < n; off += 8) put64(b, off, pat(key, off));
}

size_t wl_check(const void *p, size_t n, uint64_t key) {
  const unsigned char *b = p;
  if (n <= WL_CHECK_DENSE_MAX) {
    size_t words = n / 8;
    uint64_t v = key, acc = 0;
    for (size_t i = 0; i < words; i++, v += 8 * GOLDEN) acc |= get64(b, i * 8) ^ v;
    if (acc) {
      for (size_t i = 0; i < words; i++)
        if (get64(b, i * 8) != pat(key, i * 8)) return first_diff(b, i * 8, pat(key, i * 8));
    }
    return check_tail(b, n, key);
  }
  if (n > WL_DENSE_MAX) return check_sparse(b, n, key);
  /* Densely filled, read sampled: whole aligned words only. */
  size_t whole = n & ~(size_t)7;
  for (size_t off = 0; off < 64; off += 8)
    if (get64(b, off) != pat(key, off)) return first_diff(b, off, pat(key, off));
  for (size_t off = 1024; off + 64 < whole; off += 1024)
    if (get64(b, off) != pat(key, off)) return first_diff(b, off, pat(key, off));
  for (size_t off = whole - 64; off < whole; off += 8)
    if (get64(b, off) != pat(key, off)) return first_diff(b, off, pat(key, off));
  return check_tail(b, n, key);
}

void wl_verify(const void *p, size_t n, uint64_t key, const char *what) {
  size_t off = wl_check(p, n, key);
  if (off != WL_CHECK_OK)
    wl_fail("corrupt_%s ptr=%p size=%zu offset=%zu byte=0x%02x", what, p, n, off,
            ((const unsigned char *)p)[off]);
}

static inline void check_block(void *p, size_t n, const char *fn) {
  if (p == NULL) wl_fail("%s_returned_null size=%zu", fn, n);
  uintptr_t mask = n >= 16 ? 15 : 7;
  if ((uintptr_t)p & mask) wl_fail("%s_misaligned ptr=%p size=%zu", fn, p, n);
}

void *wl_malloc(size_t n) {
  void *p = malloc(n);
  check_block(p, n, "malloc");
  return p;
}

void *wl_calloc(size_t count, size_t size) {
  void *p = calloc(count, size);
  check_block(p, count * size, "calloc");
  const unsigned char *b = p;
  for (size_t i = 0; i < count * size; i++)
    if (b[i]) wl_fail("calloc_not_zero ptr=%p size=%zu offset=%zu", p, count * size, i);
  return p;
}

void *wl_realloc(void *old, size_t n) {
  void *p = realloc(old, n);
  check_block(p, n, "realloc");
  return p;
}

/* ------------------------------------------------------------------ */
/* Live bytes */

void wl_live_flush(wl_live_t *l) {
  int64_t d = l->pending;
  l->pending = 0;
  if (d == 0) return;
  int64_t now = atomic_fetch_add_explicit(&wl_live_now, d, memory_order_relaxed) + d;
  if (d < 0) return;
  int64_t peak = atomic_load_explicit(&wl_live_peak, memory_order_relaxed);
  while (now > peak &&
         !atomic_compare_exchange_weak_explicit(&wl_live_peak, &peak, now, memory_order_relaxed,
                                                memory_order_relaxed)) {
  }
}

/* ------------------------------------------------------------------ */
/* Threads */

void *wl_thread_args(int n, size_t stride) {
  void *p = NULL;
  if (posix_memalign(&p, 128, (size_t)n * stride) != 0 || p == NULL)
    wl_fail("posix_memalign_failed size=%zu", (size_t)n * stride);
  memset(p, 0, (size_t)n * stride);
  return p;
}

void wl_run_threads(int n, void *(*fn)(void *), void *args, size_t stride) {
  pthread_t *tids = malloc((size_t)n * sizeof *tids);
  if (!tids) wl_fail("malloc_returned_null size=%zu", (size_t)n * sizeof *tids);
  for (int i = 0; i < n; i++) {
    int e = pthread_create(&tids[i], NULL, fn, (char *)args + (size_t)i * stride);
    if (e) wl_fail("pthread_create_failed error=%d thread=%d", e, i);
  }
  for (int i = 0; i < n; i++) pthread_join(tids[i], NULL);
  free(tids);
}

/* ------------------------------------------------------------------ */

/* read_small: below.  /proc/self/status is read without stdio, so that
 * reading it calls no malloc (decay reads VmHWM between its frees and its
 * allocator-free wait). */
static ssize_t read_small(const char *path, char *buf, size_t cap);

uint64_t wl_proc_status_bytes(const char *field) {
  char buf[8192];
  if (read_small("/proc/self/status", buf, sizeof buf) <= 0) return 0;
  size_t flen = strlen(field);
  for (const char *line = buf; line && *line; line = strchr(line, '\n')) {
    if (*line == '\n') line++;
    if (strncmp(line, field, flen) == 0 && line[flen] == ':')
      return strtoull(line + flen + 1, NULL, 10) * 1024;
  }
  return 0;
}

/* ------------------------------------------------------------------ */
/* Memory sampling without the allocator: open/read/close, stack buffers. */

/* Reads up to cap - 1 bytes of path into buf, NUL-terminated; returns the
 * length, or -1. */
static ssize_t read_small(const char *path, char *buf, size_t cap) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  size_t len = 0;
  while (len < cap - 1) {
    ssize_t n = read(fd, buf + len, cap - 1 - len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    len += (size_t)n;
  }
  close(fd);
  buf[len] = '\0';
  return (ssize_t)len;
}

uint64_t wl_rss_bytes(void) {
  char buf[256];
  if (read_small("/proc/self/statm", buf, sizeof buf) <= 0) return 0;
  /* "size resident shared text lib data dt", in pages. */
  char *p = buf;
  strtoull(p, &p, 10);
  uint64_t resident = strtoull(p, NULL, 10);
  return resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

uint64_t wl_rollup_bytes(const char *field) {
  char buf[4096];
  if (read_small("/proc/self/smaps_rollup", buf, sizeof buf) <= 0) return 0;
  size_t flen = strlen(field);
  for (const char *line = strchr(buf, '\n'); line; line = strchr(line + 1, '\n')) {
    if (strncmp(line + 1, field, flen) == 0 && line[1 + flen] == ':')
      return strtoull(line + 2 + flen, NULL, 10) * 1024;
  }
  return 0;
}

uint64_t wl_anon_huge_bytes(void) { return wl_rollup_bytes("AnonHugePages"); }

uint64_t wl_maps_lines(void) {
  int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char buf[4096];
  uint64_t lines = 0;
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    for (ssize_t i = 0; i < n; i++) lines += buf[i] == '\n';
  }
  close(fd);
  return lines;
}

const char *wl_thp_mode(void) {
  static char mode[16];
  char buf[128];
  strcpy(mode, "unknown");
  if (read_small("/sys/kernel/mm/transparent_hugepage/enabled", buf, sizeof buf) <= 0)
    return mode;
  char *a = strchr(buf, '['), *b = a ? strchr(a, ']') : NULL;
  if (a && b && (size_t)(b - a - 1) < sizeof mode) {
    memcpy(mode, a + 1, (size_t)(b - a - 1));
    mode[b - a - 1] = '\0';
  }
  return mode;
}

void wl_mem_sample(wl_mem_sample_t *s, double t) {
  s->t = t;
  s->live = atomic_load_explicit(&wl_live_now, memory_order_relaxed);
  s->rss = wl_rss_bytes();
  s->anon_huge = wl_anon_huge_bytes();
  s->maps = wl_maps_lines();
}

double wl_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void wl_sleep_until(double t) {
  struct timespec ts;
  ts.tv_sec = (time_t)t;
  ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
  if (ts.tv_nsec >= 1000000000L) ts.tv_nsec = 999999999L;
  if (ts.tv_nsec < 0) ts.tv_nsec = 0;
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
  }
}
