/* Shared helpers for brisk's stress programs.
 *
 * Allocation API.  By default the programs call the prefixed brisk_* API
 * (they link brisk_core, so they also run in the ASan/TSan builds, which
 * keep the sanitizer's own malloc).  Compiled with -DUSE_LIBC_NAMES the same
 * source calls the standard names instead (malloc, free, ...) and links
 * nothing special: run under LD_PRELOAD=libbrisk.so it exercises the
 * override library.  S_* below are the names the programs use.
 *
 * Content verification.  Every live block is described by a struct blk: its
 * address, the size requested, the length the program filled (the usable
 * size, so that overlapping usable ranges are caught too) and a 64-bit tag
 * unique to that allocation.  The bytes are a pattern derived from the tag
 * and the byte offset, so any byte written by someone else (another block
 * handed out twice, allocator metadata written into a live block, a lost
 * realloc copy) changes them.  Blocks up to FULL_FILL_MAX bytes are filled
 * entirely; larger ones (the 300 KiB - 20 MiB "large" blocks) are filled on
 * a sparse but page-dense subset (see walk()) to keep the runs short.  A
 * mismatch prints the block, the offset and a hex dump, and exits 1. */
#ifndef BRISK_STRESS_COMMON_H
#define BRISK_STRESS_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef USE_LIBC_NAMES
#include <dlfcn.h>
#include <malloc.h>
#define S_API_NAME "libc names (malloc, free, ...)"
#define S_malloc malloc
#define S_free free
#define S_calloc calloc
#define S_realloc realloc
#define S_reallocarray reallocarray
#define S_memalign memalign
#define S_aligned_alloc aligned_alloc
#define S_posix_memalign posix_memalign
#define S_valloc valloc
#define S_pvalloc pvalloc
#define S_malloc_usable_size malloc_usable_size
/* glibc 2.36 declares no free_sized: use free (libbrisk aliases both). */
#define S_free_sized(p, n) ((void)(n), free(p))
#define S_trim() ((void)malloc_trim(0))
#define S_stats() ((void)mallinfo2())
#else
#include <brisk.h>
#define S_API_NAME "brisk_* API"
#define S_malloc brisk_malloc
#define S_free brisk_free
#define S_calloc brisk_calloc
#define S_realloc brisk_realloc
#define S_reallocarray brisk_reallocarray
#define S_memalign brisk_memalign
#define S_aligned_alloc brisk_aligned_alloc
#define S_posix_memalign brisk_posix_memalign
#define S_valloc brisk_valloc
#define S_pvalloc brisk_pvalloc
#define S_malloc_usable_size brisk_malloc_usable_size
#define S_free_sized brisk_free_sized
#define S_trim() ((void)brisk_release_memory())
static inline void stress_stats_sample(void)
{
    static _Thread_local struct brisk_stats st;   /* ~5 KiB: off the stack */
    brisk_stats(&st);
    if (st.mapped < st.active && st.active != 0) {
        /* Sampled without a global lock, so only a gross inconsistency is
         * worth a line; nothing here is fatal. */
        fprintf(stderr, "note: stats sample mapped %zu < active %zu\n", st.mapped, st.active);
    }
}
#define S_stats() stress_stats_sample()
#endif

/* STRESS_TSAN: built with ThreadSanitizer (some runtime limitations of TSan
 * need a different route; each use says why). */
#if defined(__SANITIZE_THREAD__)
#define STRESS_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define STRESS_TSAN 1
#endif
#endif

#define KIB ((size_t)1 << 10)
#define MIB ((size_t)1 << 20)
#define FULL_FILL_MAX (256 * KIB + 4 * KIB)

/* ---- failure reporting ------------------------------------------------- */

static const char *stress_prog = "stress";

__attribute__((noreturn, format(printf, 1, 2))) static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: FAIL: ", stress_prog);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    fflush(stderr);
    _exit(1);
}

#define CHECK(cond, ...)                                                          \
    do {                                                                          \
        if (!(cond))                                                              \
            die(__VA_ARGS__);                                                     \
    } while (0)

/* ---- random numbers (one state per thread) ------------------------------ */

typedef struct { uint64_t s; } rng_t;

static inline uint64_t rng_next(rng_t *r)
{
    /* splitmix64: tiny, fast, and good enough for picking sizes. */
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline uint64_t rng_below(rng_t *r, uint64_t n)
{
    return n ? rng_next(r) % n : 0;
}

/* Uniform in [lo, hi]. */
static inline uint64_t rng_range(rng_t *r, uint64_t lo, uint64_t hi)
{
    return lo + rng_below(r, hi - lo + 1);
}

/* Log-uniform in [lo, hi] (lo >= 1): as many small as big sizes per octave. */
static inline size_t rng_log(rng_t *r, size_t lo, size_t hi)
{
    unsigned blo = 63u - (unsigned)__builtin_clzl(lo);
    unsigned bhi = 63u - (unsigned)__builtin_clzl(hi);
    unsigned b = (unsigned)rng_range(r, blo, bhi);
    size_t a = (size_t)1 << b, z = a * 2 - 1;
    if (a < lo)
        a = lo;
    if (z > hi)
        z = hi;
    return (size_t)rng_range(r, a, z);
}

/* ---- time bound -------------------------------------------------------------- */

static double stress_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double stress_t0, stress_deadline;
static atomic_int stress_timed_out;

static void stress_start_clock(double seconds)
{
    stress_t0 = stress_now();
    stress_deadline = stress_t0 + seconds;
}

/* True once the time budget is spent; callers check it every few hundred
 * operations and wind down cleanly (a time-bounded run still passes). */
static inline bool time_up(void)
{
    if (atomic_load_explicit(&stress_timed_out, memory_order_relaxed))
        return true;
    if (stress_now() < stress_deadline)
        return false;
    atomic_store(&stress_timed_out, 1);
    return true;
}

/* ---- the pattern ------------------------------------------------------------- */

static atomic_uint_fast64_t stress_next_tag = 1;

/* A tag no other allocation in this run shares (mixed so that neighbouring
 * tags differ in every byte). */
static inline uint64_t new_tag(void)
{
    uint64_t t = atomic_fetch_add_explicit(&stress_next_tag, 1, memory_order_relaxed);
    t *= 0xD6E8FEB86659FD93ull;
    return t ^ (t >> 32) ^ 0x5bd1e9955bd1e995ull;
}

/* The pattern word for word index i of a block with this tag. */
static inline uint64_t pat_word(uint64_t tag, size_t i)
{
    return tag ^ ((uint64_t)i * 0x9E3779B97F4A7C15ull);
}

static inline uint8_t pat_byte(uint64_t tag, size_t off)
{
    return (uint8_t)(pat_word(tag, off >> 3) >> ((off & 7) * 8));
}

struct blk {
    unsigned char *p;
    size_t size;      /* requested */
    size_t len;       /* filled: the usable size */
    uint64_t tag;
    uint32_t how;     /* which call made it (for messages) */
    uint32_t owner;   /* thread that allocated it (for messages) */
};

enum { W_FILL, W_CHECK, W_ZERO };

static void report_mismatch(const struct blk *b, const char *what, size_t off, unsigned mode)
{
    uint8_t want = mode == W_ZERO ? 0 : pat_byte(b->tag, off);
    fprintf(stderr,
            "%s: FAIL: %s: block %p size %zu len %zu tag %016" PRIx64
            " (alloc #%u by thread %u): byte %zu is 0x%02x, expected 0x%02x\n",
            stress_prog, what, (void *)b->p, b->size, b->len, b->tag, b->how, b->owner, off,
            b->p[off], want);
    size_t from = off >= 32 ? (off - 32) & ~(size_t)15 : 0;
    size_t to = from + 96 < b->len ? from + 96 : b->len;
    for (size_t i = from; i < to; i += 16) {
        fprintf(stderr, "  +%-8zu", i);
        for (size_t j = i; j < i + 16 && j < to; j++)
            fprintf(stderr, " %02x", b->p[j]);
        fputc('\n', stderr);
    }
    fflush(stderr);
    _exit(1);
}

/* Fill, check or zero-check bytes [off, off + n) of b, clipped to limit. */
static void walk_range(const struct blk *b, size_t off, size_t n, size_t limit, unsigned mode,
                       const char *what)
{
    if (off >= limit)
        return;
    if (n > limit - off)
        n = limit - off;
    size_t end = off + n;
    unsigned char *p = b->p;
    uint64_t tag = b->tag;
    /* Bytes up to the first word boundary, whole words, trailing bytes. */
    while (off < end && (off & 7)) {
        uint8_t want = mode == W_ZERO ? 0 : pat_byte(tag, off);
        if (mode == W_FILL)
            p[off] = want;
        else if (p[off] != want)
            report_mismatch(b, what, off, mode);
        off++;
    }
    size_t wend = end & ~(size_t)7;
    if (off < wend) {
        uint64_t *w = (uint64_t *)(void *)(p + off);
        size_t i0 = off >> 3, nw = (wend - off) >> 3;
        if (mode == W_FILL) {
            for (size_t i = 0; i < nw; i++)
                w[i] = pat_word(tag, i0 + i);
        } else {
            uint64_t bad = 0;
            for (size_t i = 0; i < nw; i++)
                bad |= w[i] ^ (mode == W_ZERO ? 0 : pat_word(tag, i0 + i));
            if (bad) {
                for (size_t i = 0; i < nw; i++)
                    if (w[i] != (mode == W_ZERO ? 0 : pat_word(tag, i0 + i)))
                        for (size_t k = 0; k < 8; k++) {
                            size_t o = ((i0 + i) << 3) + k;
                            if (p[o] != (mode == W_ZERO ? 0 : pat_byte(tag, o)))
                                report_mismatch(b, what, o, mode);
                        }
            }
        }
        off = wend;
    }
    while (off < end) {
        uint8_t want = mode == W_ZERO ? 0 : pat_byte(tag, off);
        if (mode == W_FILL)
            p[off] = want;
        else if (p[off] != want)
            report_mismatch(b, what, off, mode);
        off++;
    }
}

/* The bytes of a block of length `len` that carry the pattern: all of them
 * up to FULL_FILL_MAX; beyond that the first 4 KiB, the first 64 bytes of
 * every further 4 KiB page, one word in the middle of each page, and the last
 * 64 bytes.  Clipped to `limit` (a realloc's preserved prefix). */
static void walk(const struct blk *b, size_t limit, unsigned mode, const char *what)
{
    size_t len = b->len;
    if (limit > len)
        limit = len;
    if (len <= FULL_FILL_MAX) {
        walk_range(b, 0, len, limit, mode, what);
        return;
    }
    walk_range(b, 0, 4096, limit, mode, what);
    for (size_t pg = 4096; pg < len; pg += 4096) {
        walk_range(b, pg, 64, limit, mode, what);
        walk_range(b, pg + 2048, 8, limit, mode, what);
    }
    walk_range(b, len - 64, 64, limit, mode, what);
}

static inline void blk_fill(struct blk *b)
{
    b->tag = new_tag();
    walk(b, b->len, W_FILL, "fill");
}

static inline void blk_check(const struct blk *b, const char *what)
{
    walk(b, b->len, W_CHECK, what);
}

/* calloc's promise: the requested bytes read as zero (checked on the same
 * page-dense subset as the pattern for large blocks). */
static inline void blk_check_zero(const struct blk *b)
{
    walk(b, b->size, W_ZERO, "calloc not zeroed");
}

/* After realloc: the first `keep` bytes must still hold the old pattern. */
static inline void blk_check_prefix(const struct blk *b, size_t keep)
{
    walk(b, keep, W_CHECK, "realloc lost contents");
}

/* Record a fresh block: size and alignment checks, the usable size.  The
 * caller fills it (after checking calloc's zeroes). */
static inline void blk_init(struct blk *b, void *p, size_t size, size_t align, uint32_t how,
                            uint32_t owner)
{
    CHECK(p != NULL, "allocation #%u of %zu bytes (align %zu) returned NULL (errno %d)", how,
          size, align, errno);
    CHECK(align <= 1 || ((uintptr_t)p & (align - 1)) == 0,
          "allocation #%u of %zu bytes: %p is not aligned to %zu", how, size, p, align);
    CHECK(((uintptr_t)p & 15) == 0, "allocation #%u of %zu bytes: %p is not 16-byte aligned",
          how, size, p);
    size_t usable = S_malloc_usable_size(p);
    CHECK(usable >= size, "allocation #%u: malloc_usable_size(%p) = %zu < requested %zu", how,
          p, usable, size);
    b->p = p;
    b->size = size;
    b->len = usable;
    b->how = how;
    b->owner = owner;
}

/* Check and free. */
static inline void blk_free(struct blk *b, const char *what)
{
    blk_check(b, what);
    S_free(b->p);
    b->p = NULL;
}

/* ---- command line ------------------------------------------------------------ */

struct stress_opts {
    long threads, iters, seconds, extra;
    uint64_t seed;
};

/* -t threads -n iterations -s seconds -x extra -S seed, with defaults. */
static void stress_parse(int argc, char **argv, struct stress_opts *o, const char *usage)
{
    stress_prog = argv[0];
    const char *slash = strrchr(argv[0], '/');
    if (slash)
        stress_prog = slash + 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || !a[1] || a[2] || i + 1 >= argc) {
            fprintf(stderr, "usage: %s %s\n", stress_prog, usage);
            exit(2);
        }
        char *end;
        errno = 0;
        unsigned long long v = strtoull(argv[++i], &end, 0);
        if (*end || errno) {
            fprintf(stderr, "%s: bad number '%s'\n", stress_prog, argv[i]);
            exit(2);
        }
        switch (a[1]) {
        case 't': o->threads = (long)v; break;
        case 'n': o->iters = (long)v; break;
        case 's': o->seconds = (long)v; break;
        case 'x': o->extra = (long)v; break;
        case 'S': o->seed = v; break;
        default:
            fprintf(stderr, "usage: %s %s\n", stress_prog, usage);
            exit(2);
        }
    }
    if (o->threads < 1 || o->iters < 0 || o->seconds < 1) {
        fprintf(stderr, "%s: need -t >= 1, -n >= 0, -s >= 1\n", stress_prog);
        exit(2);
    }
    stress_start_clock((double)o->seconds);
}

/* Under LD_PRELOAD the program only means something if the override is in
 * place: with STRESS_REQUIRE_BRISK=1, insist that brisk's symbols are
 * loaded. */
static void stress_check_backend(void)
{
#ifdef USE_LIBC_NAMES
    const char *req = getenv("STRESS_REQUIRE_BRISK");
    if (req && *req == '1')
        CHECK(dlsym(RTLD_DEFAULT, "brisk_malloc") != NULL,
              "STRESS_REQUIRE_BRISK=1 but brisk is not loaded (LD_PRELOAD missing?)");
#endif
}

static void stress_done(const char *summary_fmt, ...)
    __attribute__((format(printf, 1, 2)));
static void stress_done(const char *summary_fmt, ...)
{
    va_list ap;
    va_start(ap, summary_fmt);
    printf("%s [%s]: ", stress_prog, S_API_NAME);
    vprintf(summary_fmt, ap);
    printf("%s; %.2f s\n", atomic_load(&stress_timed_out) ? " (stopped at the time bound)" : "",
           stress_now() - stress_t0);
    va_end(ap);
    fflush(stdout);
}

static inline void stress_pthread_create(pthread_t *t, void *(*fn)(void *), void *arg)
{
    int e = pthread_create(t, NULL, fn, arg);
    CHECK(e == 0, "pthread_create: %s", strerror(e));
}

static inline void stress_pthread_join(pthread_t t)
{
    int e = pthread_join(t, NULL);
    CHECK(e == 0, "pthread_join: %s", strerror(e));
}

/* ---- sizes ------------------------------------------------------------------- */

/* brisk's size classes (16..128 by 16, then 8 steps per doubling up to
 * 256 KiB), recomputed here so the programs can hit every class boundary
 * without brisk's internal headers. */
static size_t class_sizes[128];
static unsigned nclass_sizes;

static void init_class_sizes(void)
{
    nclass_sizes = 0;
    for (size_t s = 16; s <= 128; s += 16)
        class_sizes[nclass_sizes++] = s;
    for (size_t k = 128; k < 256 * KIB; k *= 2)
        for (size_t i = 1; i <= 8; i++)
            class_sizes[nclass_sizes++] = k + i * (k / 8);
}

/* A small size (0 .. 256 KiB): mostly small, every class reachable, with
 * exact class sizes and their neighbours now and then. */
__attribute__((unused)) static size_t pick_small_size(rng_t *r)
{
    uint64_t x = rng_below(r, 1000);
    if (x < 60) {
        size_t c = class_sizes[rng_below(r, nclass_sizes)];
        size_t s = c + (size_t)rng_range(r, 0, 2) - 1;   /* c - 1, c, c + 1 */
        return s > 256 * KIB ? 256 * KIB : s;
    }
    if (x < 70)
        return rng_below(r, 17);                        /* 0 .. 16 */
    if (x < 620)
        return (size_t)rng_range(r, 1, 1024);
    if (x < 920)
        return rng_log(r, 1024, 32 * KIB);
    return (size_t)rng_range(r, 32 * KIB, 256 * KIB);
}

/* A large block: 300 KiB .. 4 MiB log-uniform, one in eight up to 20 MiB,
 * one in 64 a huge block of 33..40 MiB (beyond 32 MiB brisk maps each
 * block on its own). */
__attribute__((unused)) static size_t pick_large_size(rng_t *r)
{
    if (rng_below(r, 64) == 0)
        return rng_range(r, 33 * MIB, 40 * MIB);
    if (rng_below(r, 8) == 0)
        return rng_log(r, 4 * MIB, 20 * MIB);
    return rng_log(r, 300 * KIB, 4 * MIB);
}

#endif
