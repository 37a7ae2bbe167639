/* placement_sim: how many hugepages does a placement policy cycle through
 * for the churn workload's large blocks?
 *
 * The churn workload (bench/workloads/wl_churn.c) keeps one slot in 256 of
 * its live heap for a block of 256 KiB..4 MiB (40 slots at scale full, each
 * with its fixed power-of-two size band: churn_shape.h) and replaces a
 * random slot's block at each step, allocating the new block before it
 * frees the old one.  brisk keeps a free hugepage resident until it has
 * been idle for decay_ms (1 s), and a partly used one always, so the large
 * blocks cost, in resident memory, every hugepage they touched within the
 * last decay_ms.
 *
 * This replays that stream (no memory is touched: page indices only)
 * through
 *   - brisk: the buddy heap of src/page_heap/buddy.c, over as many 64 MiB
 *     regions as it needs, the region picked as page_heap.c picks it
 *     (smallest fitting block, oldest region on ties);
 *   - first-fit: page ranges, the lowest free range that fits;
 *   - best-fit: page ranges, the smallest free range that fits (lowest on
 *     ties);
 * and reports, for windows of W allocations, the hugepages that are in use
 * or were allocated from or freed into within the last W allocations, over
 * the live bytes (mean over samples after a warm-up, each taken after a
 * step's free): the large blocks' share of churn's RSS / live.  W = 0
 * counts the hugepages in use only: fragmentation alone.  Churn at scale
 * full makes about 12,500 large allocations a second, so its 1 s decay is
 * W = 12,500.  (A block of exactly 256 KiB, a size class in brisk, is
 * replayed as large: one draw in 2^18 of the smallest band.)
 *
 * usage: brisk_placement_sim [steps [seed [live MiB]]]
 * (defaults 100000, 1 and 200: churn at scale full with its default seed;
 * 3..1200 MiB, which give churn 1..about 240 large blocks) */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "page_heap/buddy.h"
#include "churn_shape.h"

#define PAGE_SHIFT BK_PAGE_SHIFT
#define REGION_PAGES BK_REGION_PAGES
#define HP_PAGES ((size_t)1 << BK_HUGEPAGE_ORDER)
#define HPS (REGION_PAGES / HP_PAGES)
#define MAX_REGIONS 16
#define MAX_SLOTS 256
#define NWINDOWS 5

enum policy { BRISK, FIRST_FIT, BEST_FIT, NPOLICIES };
static const char *const policy_name[NPOLICIES] = { "brisk", "first-fit", "best-fit" };
static const long windows[NWINDOWS] = { 0, 100, 1000, 5000, 12500 };

static struct {
    enum policy policy;
    int nregions;
    struct bk_buddy *buddy[MAX_REGIONS];
    uint8_t used[MAX_REGIONS][REGION_PAGES];   /* first-fit, best-fit */
    long touched[MAX_REGIONS][HPS];            /* allocation count at last use */
    long now;
} sim;

static uint64_t rng_state;

static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void die(const char *what)
{
    fprintf(stderr, "brisk_placement_sim: %s\n", what);
    exit(1);
}

static void touch(int r, size_t first, size_t n)
{
    for (size_t h = first / HP_PAGES; h <= (first + n - 1) / HP_PAGES; h++)
        sim.touched[r][h] = sim.now;
}

static int new_region(void)
{
    if (sim.nregions == MAX_REGIONS)
        die("too many regions");
    int r = sim.nregions++;
    if (sim.policy == BRISK) {
        if (!(sim.buddy[r] = calloc(1, sizeof *sim.buddy[r])))
            die("out of memory");
        bk_buddy_init(sim.buddy[r], BK_REGION_ORDER, true);
    }
    memset(sim.used[r], 0, sizeof sim.used[r]);
    for (size_t h = 0; h < HPS; h++)
        sim.touched[r][h] = -(1L << 40);
    return r;
}

static long buddy_alloc(size_t n, int *region)
{
    unsigned order = bk_log2_ceil(n), best_k = 64;
    int best = -1;
    for (int r = 0; r < sim.nregions; r++) {
        uint32_t avail = sim.buddy[r]->order_mask >> order;
        if (avail && (unsigned)__builtin_ctz(avail) < best_k) {
            best = r;
            best_k = (unsigned)__builtin_ctz(avail);
        }
    }
    if (best < 0)
        best = new_region();
    bool zeroed;
    *region = best;
    return bk_buddy_alloc(sim.buddy[best], n, 1, &zeroed);
}

static long range_alloc(size_t n, int *region)
{
    int best = -1;
    size_t best_at = 0, best_len = SIZE_MAX;
    for (int r = 0; r < sim.nregions && !(sim.policy == FIRST_FIT && best >= 0); r++)
        for (size_t p = 0, q; p < REGION_PAGES; p = q) {
            for (q = p; q < REGION_PAGES && !sim.used[r][q]; q++)
                ;
            if (q - p >= n && q - p < best_len) {
                best = r;
                best_at = p;
                best_len = sim.policy == FIRST_FIT ? 0 : q - p;
            }
            if (q == p)
                q++;
        }
    if (best < 0)
        best = new_region();
    memset(&sim.used[best][best_at], 1, n);
    *region = best;
    return (long)best_at;
}

static long alloc_pages(size_t n, int *region)
{
    long p = sim.policy == BRISK ? buddy_alloc(n, region) : range_alloc(n, region);
    if (p < 0)
        die("allocation failed");
    touch(*region, (size_t)p, n);
    return p;
}

static void free_pages(int r, size_t first, size_t n)
{
    if (sim.policy == BRISK)
        bk_buddy_free(sim.buddy[r], first, n, 0);
    else
        memset(&sim.used[r][first], 0, n);
    touch(r, first, n);
}

struct block { size_t bytes, pages; long first; int region; };

/* A size in a band, as churn draws it. */
static size_t block_size(const uint64_t band[2])
{
    return (size_t)(band[0] + rnd() % (band[1] - band[0] + 1));
}

static void run(enum policy policy, long steps, int nslots, const uint64_t (*band)[2],
                uint64_t seed, double out[NWINDOWS])
{
    static struct block live[MAX_SLOTS];
    for (int r = 0; r < sim.nregions; r++)
        free(sim.buddy[r]);
    memset(&sim, 0, sizeof sim);
    sim.policy = policy;
    rng_state = seed * 0x9e3779b97f4a7c15ULL + 88172645463325252ULL;
    double sum[NWINDOWS] = { 0 };
    long samples = 0;
    size_t live_bytes = 0;
    for (int i = 0; i < nslots; i++) {
        live[i].bytes = block_size(band[i]);
        live[i].pages = (live[i].bytes + BK_PAGE_SIZE - 1) >> PAGE_SHIFT;
        live[i].first = alloc_pages(live[i].pages, &live[i].region);
        live_bytes += live[i].bytes;
    }
    for (sim.now = 1; sim.now <= steps; sim.now++) {
        int i = (int)(rnd() % (uint64_t)nslots);
        struct block b = { .bytes = block_size(band[i]) };
        b.pages = (b.bytes + BK_PAGE_SIZE - 1) >> PAGE_SHIFT;
        b.first = alloc_pages(b.pages, &b.region);
        free_pages(live[i].region, (size_t)live[i].first, live[i].pages);
        live_bytes += b.bytes - live[i].bytes;
        live[i] = b;
        if (sim.now < steps / 5 || sim.now % 100)
            continue;
        samples++;
        for (int r = 0; r < sim.nregions; r++)
            for (size_t h = 0; h < HPS; h++) {
                bool in_use = false;
                for (int j = 0; j < nslots && !in_use; j++)
                    in_use = live[j].region == r && (size_t)live[j].first < (h + 1) * HP_PAGES &&
                             (size_t)live[j].first + live[j].pages > h * HP_PAGES;
                for (int w = 0; w < NWINDOWS; w++)
                    if (in_use || sim.now - sim.touched[r][h] < windows[w])
                        sum[w] += (double)(HP_PAGES << PAGE_SHIFT) / (double)live_bytes;
            }
    }
    for (int w = 0; w < NWINDOWS; w++) {
        out[w] = samples ? sum[w] / (double)samples : 0;
        /* The hugepages in use hold every live byte. */
        if (out[w] < 1.0)
            die("a footprint below the live bytes: the replay is wrong");
    }
}

int main(int argc, char **argv)
{
    long steps = argc > 1 ? atol(argv[1]) : 100000;
    uint64_t seed = argc > 2 ? strtoull(argv[2], NULL, 0) : 1;
    long live_mib = argc > 3 ? atol(argv[3]) : 200;
    if (steps < 500 || live_mib < 3 || live_mib > 1200)
        die("usage: brisk_placement_sim [steps >= 500 [seed [live MiB 3..1200]]]");
    /* churn's big slots and their bands */
    static uint64_t band[MAX_SLOTS][2];
    int nslots = 0;
    size_t slots = churn_slots((uint64_t)live_mib << 20);
    for (size_t i = 0; i < slots; i++)
        if (churn_slot_is_big(i)) {
            if (nslots == MAX_SLOTS)
                die("too many large blocks");
            churn_slot_band(i, seed, &band[nslots][0], &band[nslots][1]);
            nslots++;
        }
    if (nslots == 0)
        die("no large blocks at that size");
    double result[NPOLICIES][NWINDOWS];
    for (int p = 0; p < NPOLICIES; p++)
        run((enum policy)p, steps, nslots, (const uint64_t(*)[2])band, seed, result[p]);
    printf("hugepages touched within the last W allocations / live bytes "
           "(%d large blocks of churn at %ld MiB, seed %llu, %ld steps)\n%8s", nslots, live_mib,
           (unsigned long long)seed, steps, "W");
    for (int p = 0; p < NPOLICIES; p++)
        printf(" %10s", policy_name[p]);
    printf("\n");
    for (int w = 0; w < NWINDOWS; w++) {
        printf("%8ld", windows[w]);
        for (int p = 0; p < NPOLICIES; p++)
            printf(" %10.3f", result[p][w]);
        printf("\n");
    }
    return 0;
}
