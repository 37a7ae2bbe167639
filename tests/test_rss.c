/* RSS follows the live heap (functional check, generous bounds, no timing):
 * 4 threads allocate ~512 MiB in mixed sizes (16 B - 64 KiB and some 1-16
 * MiB blocks), touching everything; each thread then frees half of its own
 * blocks and half of another thread's, and exits.  Linked with libbrisk.so,
 * so malloc, free and malloc_trim are brisk's.
 *
 *  - right after the frees, with no further call, RSS is within the dirty
 *    cap (dirty_max, 64 MiB by default) of the baseline: nowhere near the
 *    peak;
 *  - right after malloc_trim(0), RSS is back within 5% of the peak above
 *    the baseline (plus a little metadata);
 *  - /proc/self/maps stays under 1000 lines throughout. */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

#define MIB ((size_t)1 << 20)
enum { THREADS = 4, SMALL = 60000 };
#define PER_THREAD (128 * MIB)

struct worker {
    void **blocks;
    size_t n;
    pthread_barrier_t *barrier;
    struct worker *peer;
};

static size_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, rss = 0;
    if (f) {
        if (fscanf(f, "%lu %lu", &size, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    return rss * (size_t)sysconf(_SC_PAGESIZE);
}

static unsigned maps_lines(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    unsigned n = 0;
    for (int c; f && (c = fgetc(f)) != EOF;)
        n += c == '\n';
    if (f)
        fclose(f);
    return n;
}

static uint64_t next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void *work(void *arg)
{
    struct worker *w = arg;
    uint64_t seed = (uint64_t)(uintptr_t)w | 1;
    size_t bytes = 0;
    w->blocks = malloc(sizeof(void *) * (SMALL + 64));
    while (bytes < PER_THREAD && w->n < SMALL + 64) {
        uint64_t r = next(&seed);
        /* one block in 2000 is 1-16 MiB, the rest 16 B - 64 KiB (log-ish) */
        size_t len = r % 2000 == 0 ? (1 + r % 16) * MIB : (size_t)16 << (r >> 20) % 13;
        len += r >> 40 & 15;
        char *p = malloc(len);
        REQUIRE(p != NULL);
        for (size_t i = 0; i < len; i += 4096)
            p[i] = (char)i;
        p[len - 1] = 1;
        w->blocks[w->n++] = p;
        bytes += len;
    }
    pthread_barrier_wait(w->barrier);
    /* half of my blocks (the even ones), and the odd ones of my peer */
    for (size_t i = 0; i < w->n; i += 2)
        free(w->blocks[i]);
    for (size_t i = 1; i < w->peer->n; i += 2)
        free(w->peer->blocks[i]);
    pthread_barrier_wait(w->barrier);
    return NULL;
}

int main(void)
{
    size_t base = rss_bytes();
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, THREADS + 1);
    static struct worker w[THREADS];
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i].barrier = &barrier;
        w[i].peer = &w[(i + 1) % THREADS];
        pthread_create(&t[i], NULL, work, &w[i]);
    }
    pthread_barrier_wait(&barrier);           /* everything allocated */
    size_t peak = rss_bytes();
    unsigned maps_peak = maps_lines();
    pthread_barrier_wait(&barrier);           /* everything freed */
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    size_t after_free = rss_bytes();
    if (getenv("TEST_RSS_STATS"))
        malloc_stats();
    for (int i = 0; i < THREADS; i++)
        free(w[i].blocks);
    malloc_trim(0);
    size_t after_trim = rss_bytes();
    unsigned maps_end = maps_lines();
    printf("baseline %zu MiB, peak %zu MiB, after free %zu MiB, after malloc_trim %zu MiB, "
           "maps %u at the peak, %u at the end\n",
           base / MIB, peak / MIB, after_free / MIB, after_trim / MIB, maps_peak, maps_end);

    CHECK(peak > base + 400 * MIB, "peak %zu MiB: the workload did not run", peak / MIB);
    size_t heap = peak - base;
    CHECK(after_free <= base + 64 * MIB + heap / 10,
          "after the frees RSS is %zu MiB (baseline %zu, peak %zu): the dirty cap did not shed",
          after_free / MIB, base / MIB, peak / MIB);
    CHECK(after_trim <= base + heap / 20 + 8 * MIB,
          "after malloc_trim(0) RSS is %zu MiB (baseline %zu, peak %zu)", after_trim / MIB,
          base / MIB, peak / MIB);
    CHECK(maps_peak < 1000 && maps_end < 1000, "maps lines: %u at the peak, %u at the end",
          maps_peak, maps_end);
    return check_report("test_rss");
}
