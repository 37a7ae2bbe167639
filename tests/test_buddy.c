/* The buddy heap, driven over a fake region: it is pure bookkeeping over
 * page indices and never touches the memory it describes. */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "page_heap/buddy.h"
#include "check.h"

static struct bk_buddy B;

static size_t pages_of(const struct bk_buddy *b) { return (size_t)1 << b->max_order; }

/* Walk every free list and verify the invariants of buddy.h; `used` (one
 * byte per page, nonzero = allocated, may be NULL) is the caller's shadow. */
static void check_invariants(const struct bk_buddy *b, const uint8_t *used, const char *when)
{
    size_t n = pages_of(b);
    static uint8_t cover[BK_BUDDY_PAGES];
    memset(cover, 0, sizeof cover);
    size_t free_pages = 0, heads = 0, heads_ordered = 0;
    for (unsigned k = 0; k <= BK_BUDDY_MAX_ORDER; k++) {
        bool nonempty = b->head[k] != BK_BUDDY_NIL;
        CHECK(nonempty == (((b->order_mask >> k) & 1) != 0), "%s: order_mask bit %u wrong", when,
              k);
        if (k > b->max_order) {
            CHECK(!nonempty, "%s: free list %u above max_order %u", when, k, b->max_order);
            continue;
        }
        size_t steps = 0;
        uint16_t prev = BK_BUDDY_NIL;
        for (uint16_t p = b->head[k]; p != BK_BUDDY_NIL; p = b->node[bk_buddy_slot(p)].next) {
            size_t len = (size_t)1 << k;
            if (++steps > n) {
                CHECK(0, "%s: free list %u loops", when, k);
                break;
            }
            CHECK(b->node[bk_buddy_slot(p)].prev == prev, "%s: prev link of %u on list %u", when, p, k);
            prev = p;
            CHECK(p % len == 0, "%s: block %u on list %u is not aligned", when, p, k);
            CHECK(p + len <= n, "%s: block %u of order %u past the region", when, p, k);
            CHECK(bk_buddy_free_order_at(b, p) == (int)k, "%s: head_order[%u] = %d, on list %u",
                  when, p, bk_buddy_free_order_at(b, p), k);
            if (k < b->max_order) {
                size_t buddy = p ^ len;
                CHECK(bk_buddy_free_order_at(b, buddy) != (int)k,
                      "%s: free buddies %u and %zu of order %u not merged", when, p, buddy, k);
            }
            for (size_t q = p; q < p + len && q < n; q++) {
                CHECK_LIMITED(!cover[q], "%s: page %zu in two free blocks", when, q);
                cover[q] = 1;
                if (used)
                    CHECK_LIMITED(!used[q], "%s: allocated page %zu is on a free list", when, q);
            }
            size_t bit = bk_buddy_head_bit(k, p);
            CHECK_LIMITED(k < BK_BUDDY_ORDERED_MIN || (b->head_bits[bit >> 6] >> (bit & 63)) & 1,
                          "%s: head bit of block %u (order %u) not set", when, p, k);
            heads_ordered += k >= BK_BUDDY_ORDERED_MIN;
            free_pages += len;
            heads++;
        }
    }
    size_t bits = 0;
    for (size_t w = 0; w < BK_BUDDY_HEAD_WORDS; w++)
        bits += (size_t)__builtin_popcountll(b->head_bits[w]);
    CHECK(bits == heads_ordered, "%s: %zu head bits set, %zu blocks of order >= %d listed", when,
          bits, heads_ordered, BK_BUDDY_ORDERED_MIN);
    size_t marked = 0;
    for (size_t p = 0; p < n; p++)
        marked += bk_buddy_free_order_at(b, p) >= 0;
    CHECK(marked == heads, "%s: %zu pages carry a head order, %zu blocks listed", when, marked,
          heads);
    CHECK(free_pages == b->free_pages, "%s: free lists hold %zu pages, free_pages = %u", when,
          free_pages, b->free_pages);
    CHECK(b->dirty_free <= b->free_pages, "%s: dirty_free %u > free_pages %u", when,
          b->dirty_free, b->free_pages);
    if (used)
        for (size_t p = 0; p < n; p++)
            CHECK_LIMITED(used[p] || cover[p], "%s: page %zu neither free nor allocated", when, p);
}

static void check_single_block(const struct bk_buddy *b, const char *when)
{
    CHECK(b->free_pages == pages_of(b), "%s: free_pages %u", when, b->free_pages);
    CHECK(b->order_mask == 1u << b->max_order, "%s: order_mask %#x", when, b->order_mask);
    CHECK(bk_buddy_free_order_at(b, 0) == (int)b->max_order, "%s: block at 0 has order %d",
          when, bk_buddy_free_order_at(b, 0));
    check_invariants(b, NULL, when);
}

static void test_init(void)
{
    for (unsigned mo = 0; mo <= BK_BUDDY_MAX_ORDER; mo++) {
        bk_buddy_init(&B, mo, false);
        CHECK(B.dirty_free == 0, "init(%u): dirty_free %u", mo, B.dirty_free);
        check_single_block(&B, "init");
        for (unsigned k = 0; k <= BK_BUDDY_MAX_ORDER; k++)
            CHECK(bk_buddy_has(&B, k) == (k <= mo), "init(%u): has(%u)", mo, k);
    }
}

/* A heap inited over zeros without clearing head_order (a fresh region
 * header) is the same heap as one inited by clearing it, and a heap whose
 * every page came back (a recycled header: one free block at page 0) inits
 * cleanly either way the page heap may call it. */
static void test_init_zeroed(void)
{
    static struct bk_buddy Z, Y;
    bool z;
    for (unsigned mo = 0; mo <= BK_BUDDY_MAX_ORDER; mo += 3) {
        memset(&Z, 0, sizeof Z);
        bk_buddy_init(&Z, mo, true);
        memset(&Y, 0x5a, sizeof Y);     /* a used header: anything in it */
        memset(Y.node, 0, sizeof Y.node);   /* (node[] is written where read) */
        bk_buddy_init(&Y, mo, false);
        CHECK(Z.max_order == Y.max_order && Z.free_pages == Y.free_pages &&
                  Z.dirty_free == Y.dirty_free && Z.order_mask == Y.order_mask &&
                  memcmp(Z.head, Y.head, sizeof Z.head) == 0 &&
                  memcmp(Z.clean, Y.clean, sizeof Z.clean) == 0 &&
                  memcmp(Z.zero, Y.zero, sizeof Z.zero) == 0 &&
                  memcmp(Z.head_order, Y.head_order, sizeof Z.head_order) == 0 &&
                  memcmp(Z.head_bits, Y.head_bits, sizeof Z.head_bits) == 0 &&
                  memcmp(Z.node, Y.node, sizeof Z.node) == 0,
              "init(%u) over zeros differs from a cleared init over garbage", mo);
        check_single_block(&Z, "zeroed init");
    }
    /* Used, then everything freed: head_order holds only page 0's entry. */
    bk_buddy_init(&Z, 12, false);
    long a = bk_buddy_alloc(&Z, 3, 1, &z), b = bk_buddy_alloc(&Z, 700, 1, &z);
    REQUIRE(a >= 0 && b >= 0);
    bk_buddy_free(&Z, (size_t)a, 3, 1);
    bk_buddy_free(&Z, (size_t)b, 700, 2);
    for (size_t i = 1; i < BK_BUDDY_SLOTS; i++)
        CHECK_LIMITED(Z.head_order[i] == 0, "emptied heap: head_order[%zu] = %u", i,
                      Z.head_order[i]);
    bk_buddy_init(&Z, 12, false);
    check_single_block(&Z, "re-init of an emptied heap");
}

static void test_split_merge(void)
{
    bool z;
    bk_buddy_init(&B, 12, false);
    long p = bk_buddy_alloc(&B, 1, 1, &z);
    CHECK(p == 0, "first page from a fresh heap: %ld", p);
    CHECK(z, "fresh page not reported zeroed");
    CHECK(B.free_pages == 4095, "free_pages %u", B.free_pages);
    CHECK(B.order_mask == 0xfff, "after splitting, order_mask %#x (want one block of 0..11)",
          B.order_mask);
    for (unsigned k = 0; k < 12; k++) {
        CHECK(B.head[k] == (1u << k), "order %u list head %u, want %u", k, B.head[k], 1u << k);
        CHECK(B.head[k] == BK_BUDDY_NIL || bk_buddy_node(&B, B.head[k])->next == BK_BUDDY_NIL,
              "order %u list has more than one block", k);
        CHECK(bk_buddy_free_order_at(&B, (size_t)1 << k) == (int)k, "block at %u: order %d",
              1u << k, bk_buddy_free_order_at(&B, (size_t)1 << k));
    }
    CHECK(!((B.order_mask >> 12) & 1), "max-order block still listed");
    check_invariants(&B, NULL, "after split");
    bk_buddy_free(&B, 0, 1, 0);
    check_single_block(&B, "merge after freeing page 0");

    /* every page separately, freed in a scrambled order, merges back */
    bk_buddy_init(&B, 12, false);
    for (size_t i = 0; i < 4096; i++) {
        long q = bk_buddy_alloc(&B, 1, 1, &z);
        CHECK_LIMITED(q == (long)i, "page %zu allocated as %ld", i, q);
    }
    CHECK(B.free_pages == 0 && B.order_mask == 0, "full heap: free_pages %u mask %#x",
          B.free_pages, B.order_mask);
    for (size_t i = 0; i < 4096; i++)
        bk_buddy_free(&B, (i * 2654435761u) % 4096, 1, 0);   /* odd multiplier: a permutation */
    check_single_block(&B, "merge after freeing 4096 single pages");
}

static void test_tail_return(void)
{
    bool z;
    bk_buddy_init(&B, 12, false);
    long p = bk_buddy_alloc(&B, 33, 1, &z);
    CHECK(p == 0, "33 pages at %ld", p);
    CHECK(B.free_pages == 4096 - 33, "free_pages %u after 33-page alloc (tail not returned?)",
          B.free_pages);
    /* the 31-page tail of the 64-page block comes back as blocks of
     * 1, 2, 4, 8 and 16 pages at 33, 34, 36, 40, 48 */
    static const struct { size_t at; int order; } tail[] = {
        { 33, 0 }, { 34, 1 }, { 36, 2 }, { 40, 3 }, { 48, 4 } };
    for (unsigned i = 0; i < 5; i++)
        CHECK(bk_buddy_free_order_at(&B, tail[i].at) == tail[i].order,
              "tail block at %zu has order %d, want %d", tail[i].at,
              bk_buddy_free_order_at(&B, tail[i].at), tail[i].order);
    check_invariants(&B, NULL, "after 33-page alloc");
    /* and 31 more pages fit in that same 64-page block: the buddy heap
     * serves each request with one power-of-two block, so the 31 tail pages
     * are taken as the five blocks above (a single 31-page request would
     * need an aligned 32-page block, which the tail cannot hold) */
    size_t got = 0;
    for (unsigned i = 5; i-- > 0;) {
        size_t len = (size_t)1 << tail[i].order;
        long q = bk_buddy_alloc(&B, len, 1, &z);
        CHECK(q >= 33 && q + (long)len <= 64, "%zu pages at %ld, outside the 64-page block",
              len, q);
        CHECK(z, "never-used tail pages not reported zeroed");
        got += len;
    }
    CHECK(got == 31, "%zu pages", got);
    CHECK(B.free_pages == 4096 - 64, "free_pages %u", B.free_pages);
    check_invariants(&B, NULL, "after filling the 64-page block");
    /* a 31-page request takes a 32-page block and returns its last page */
    long q = bk_buddy_alloc(&B, 31, 1, &z);
    CHECK(q == 64, "31 pages at %ld, want 64", q);
    CHECK(bk_buddy_free_order_at(&B, 95) == 0, "page 95 not returned (order %d)",
          bk_buddy_free_order_at(&B, 95));
    CHECK(B.free_pages == 4096 - 95, "free_pages %u", B.free_pages);
    /* free in pieces that do not match the allocations: still merges */
    bk_buddy_free(&B, 0, 64, 0);
    bk_buddy_free(&B, 64, 31, 0);
    check_single_block(&B, "after freeing 0..95");
    CHECK(B.dirty_free == 95, "dirty_free %u, want 95", B.dirty_free);

    /* odd sizes at every order */
    for (size_t n = 1; n <= 4096; n = n * 3 + 1) {
        bk_buddy_init(&B, 12, false);
        long r = bk_buddy_alloc(&B, n, 1, &z);
        CHECK(r == 0, "%zu pages at %ld", n, r);
        CHECK(B.free_pages == 4096 - n, "%zu pages: free_pages %u", n, B.free_pages);
        check_invariants(&B, NULL, "odd-size alloc");
        bk_buddy_free(&B, (size_t)r, n, 0);
        check_single_block(&B, "odd-size free");
    }
}

static void test_alignment(void)
{
    bool z;
    bk_buddy_init(&B, 12, false);
    long a = bk_buddy_alloc(&B, 1, 1, &z);
    CHECK(a == 0, "%ld", a);
    for (size_t align = 1; align <= 2048; align *= 2) {
        for (size_t n = 1; n <= 3 * align && n <= 64; n = n * 2 + 1) {
            uint32_t before = B.free_pages;
            long p = bk_buddy_alloc(&B, n, align, &z);
            CHECK(p >= 0, "%zu pages aligned %zu failed", n, align);
            if (p < 0)
                continue;
            CHECK(p % (long)align == 0, "%zu pages aligned %zu at %ld", n, align, p);
            CHECK(B.free_pages == before - n, "aligned alloc of %zu pages took %u", n,
                  before - B.free_pages);
            check_invariants(&B, NULL, "aligned alloc");
            bk_buddy_free(&B, (size_t)p, n, 0);
        }
    }
    bk_buddy_free(&B, 0, 1, 0);
    check_single_block(&B, "after alignment tests");
    /* an alignment larger than the region cannot be met */
    CHECK(bk_buddy_alloc(&B, 1, 8192, &z) == -1, "alignment 8192 pages accepted");
    CHECK(B.free_pages == 4096, "failed alloc changed free_pages");
}

static void test_exhaustion(void)
{
    bool z;
    for (unsigned mo = 0; mo <= 12; mo += 4) {
        bk_buddy_init(&B, mo, false);
        size_t n = pages_of(&B);
        CHECK(bk_buddy_alloc(&B, n + 1, 1, &z) == -1, "order %u: %zu pages accepted", mo, n + 1);
        CHECK(bk_buddy_alloc(&B, 0, 1, &z) == -1, "order %u: 0 pages accepted", mo);
        long p = bk_buddy_alloc(&B, n, 1, &z);
        CHECK(p == 0, "order %u: whole region at %ld", mo, p);
        CHECK(bk_buddy_alloc(&B, 1, 1, &z) == -1, "order %u: alloc from a full heap", mo);
        CHECK(!bk_buddy_has(&B, 0), "order %u: full heap claims a free page", mo);
        CHECK(B.free_pages == 0, "order %u: free_pages %u", mo, B.free_pages);
        bk_buddy_free(&B, 0, n, 0);
        check_single_block(&B, "exhaustion");
    }
    /* fragmented: every other page allocated; no 2-page block anywhere */
    bk_buddy_init(&B, 6, false);
    for (size_t i = 0; i < 64; i++)
        CHECK(bk_buddy_alloc(&B, 1, 1, &z) == (long)i, "page %zu", i);
    for (size_t i = 0; i < 64; i += 2)
        bk_buddy_free(&B, i, 1, 0);
    CHECK(B.free_pages == 32, "free_pages %u", B.free_pages);
    CHECK(bk_buddy_alloc(&B, 2, 1, &z) == -1, "2 pages from a heap with no free pair");
    CHECK(!bk_buddy_has(&B, 1), "has(1) on a fragmented heap");
    CHECK(bk_buddy_has(&B, 0), "has(0) with 32 free pages");
    check_invariants(&B, NULL, "fragmented");
}

/* xorshift64*: deterministic and independent of libc */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

#define MAXLIVE 512

/* bk_buddy_census against a shadow: used[] (allocated pages) and
 * touched[] (pages ever allocated: dirty once free, as nothing here
 * releases them). */
static void check_census(const struct bk_buddy *b, const uint8_t *used, const uint8_t *touched,
                         const char *when)
{
    unsigned chunk_order = b->max_order >= 3 ? b->max_order - 3 : 0;
    size_t n = (size_t)1 << b->max_order, cp = (size_t)1 << chunk_order;
    struct bk_buddy_census c;
    bk_buddy_census(b, chunk_order, &c);
    uint32_t blocks = 0, free_chunks = 0, dirty_chunks = 0, partial = 0;
    int largest = -1;
    for (size_t q = 0; q < n; q++) {
        int o = bk_buddy_free_order_at(b, q);
        if (o >= 0) {
            blocks++;
            largest = o > largest ? o : largest;
        }
    }
    for (size_t ch = 0; ch < n / cp; ch++) {
        size_t nused = 0, ntouched = 0;
        for (size_t q = ch * cp; q < (ch + 1) * cp; q++) {
            nused += used[q];
            ntouched += touched[q];
        }
        if (nused == 0) {
            free_chunks++;
            dirty_chunks += ntouched != 0;
        } else if (nused < cp) {
            partial++;
        }
    }
    CHECK_LIMITED(c.free_blocks == blocks && c.largest_order == largest,
                  "%s: census %u blocks, largest order %d; want %u, %d", when, c.free_blocks,
                  c.largest_order, blocks, largest);
    CHECK_LIMITED(c.chunks_free == free_chunks && c.chunks_free_dirty == dirty_chunks &&
                      c.chunks_partial == partial,
                  "%s: census chunks free %u (dirty %u), partial %u; want %u (%u), %u", when,
                  c.chunks_free, c.chunks_free_dirty, c.chunks_partial, free_chunks, dirty_chunks,
                  partial);
}

static void test_census(void)
{
    static uint8_t used[BK_BUDDY_PAGES], touched[BK_BUDDY_PAGES];
    bool z;
    memset(used, 0, sizeof used);
    memset(touched, 0, sizeof touched);
    bk_buddy_init(&B, 12, false);
    check_census(&B, used, touched, "fresh");
    struct bk_buddy_census c;
    bk_buddy_census(&B, 8, &c);
    CHECK(c.free_blocks == 1 && c.largest_order == 12 && c.chunks_free == 16 &&
              c.chunks_free_dirty == 0 && c.chunks_partial == 0,
          "fresh heap: %u blocks, order %d, %u free chunks", c.free_blocks, c.largest_order,
          c.chunks_free);
    /* one page in use: chunk 0 partly used, the other 15 chunks free in
     * blocks of 2048, 1024, 512 and 256 pages */
    long p = bk_buddy_alloc(&B, 1, 1, &z);
    REQUIRE(p == 0);
    bk_buddy_census(&B, 8, &c);
    CHECK(c.free_blocks == 12 && c.largest_order == 11 && c.chunks_free == 15 &&
              c.chunks_partial == 1 && c.chunks_free_dirty == 0,
          "one page used: %u blocks, order %d, %u free chunks, %u partial", c.free_blocks,
          c.largest_order, c.chunks_free, c.chunks_partial);
    /* a whole chunk used and freed: free again, now dirty */
    long q = bk_buddy_alloc(&B, 256, 256, &z);
    REQUIRE(q >= 0);
    bk_buddy_free(&B, (size_t)q, 256, 1);
    bk_buddy_census(&B, 8, &c);
    CHECK(c.chunks_free == 15 && c.chunks_free_dirty == 1 && c.chunks_partial == 1,
          "chunk freed: %u free chunks, %u dirty, %u partial", c.chunks_free,
          c.chunks_free_dirty, c.chunks_partial);
    /* out-of-range chunk orders describe nothing */
    bk_buddy_census(&B, 13, &c);
    CHECK(c.free_blocks == 0 && c.largest_order == -1, "chunk order past the heap counted");
}

/* Where an allocation of `need` pages (size or alignment, the larger) must
 * land: in the smallest free block that fits, from BK_BUDDY_ORDERED_MIN on
 * the lowest of that order (found by scanning pages, not the head bits),
 * below it the head of its list; -1 if none. */
static long lowest_fit(const struct bk_buddy *b, size_t need)
{
    if (need > pages_of(b))
        return -1;
    for (unsigned k = 0; k <= b->max_order; k++)
        if (((size_t)1 << k) >= need && k < BK_BUDDY_ORDERED_MIN && b->head[k] != BK_BUDDY_NIL)
            return b->head[k];
        else if (((size_t)1 << k) >= need)
            for (size_t p = 0; p < pages_of(b); p += (size_t)1 << k)
                if (bk_buddy_free_order_at(b, p) == (int)k)
                    return (long)p;
    return -1;
}

static void test_random(unsigned max_order, unsigned rounds)
{
    static uint8_t used[BK_BUDDY_PAGES], touched[BK_BUDDY_PAGES];
    static struct { long first; size_t n; } live[MAXLIVE];
    size_t nlive = 0, used_pages = 0;
    size_t n = (size_t)1 << max_order;
    bool z;
    bk_buddy_init(&B, max_order, false);
    memset(used, 0, sizeof used);
    memset(touched, 0, sizeof touched);
    for (unsigned r = 0; r < rounds; r++) {
        bool do_alloc = nlive == 0 || (nlive < MAXLIVE && rnd() % 100 < 55);
        if (do_alloc) {
            size_t want = rnd() % 4 == 0 ? 1 + rnd() % (n / 4 + 1) : 1 + rnd() % 8;
            size_t align = (size_t)1 << (rnd() % 4 == 0 ? rnd() % (max_order + 1) : 0);
            long expect = lowest_fit(&B, want > align ? want : align);
            long p = bk_buddy_alloc(&B, want, align, &z);
            CHECK_LIMITED(p == expect, "alloc %zu aligned %zu at %ld, the lowest smallest fit is %ld",
                          want, align, p, expect);
            if (p < 0) {
                /* legitimate only if no free block of the needed order exists */
                size_t need = want > align ? want : align;
                unsigned order = 0;
                while (((size_t)1 << order) < need)
                    order++;
                CHECK(need > n || !bk_buddy_has(&B, order),
                      "alloc of %zu aligned %zu failed with a block of order %u free", want,
                      align, order);
                continue;
            }
            CHECK_LIMITED(p % (long)align == 0, "alloc %zu aligned %zu at %ld", want, align, p);
            CHECK_LIMITED((size_t)p + want <= n, "alloc %zu at %ld past the end", want, p);
            for (size_t q = (size_t)p; q < (size_t)p + want && q < n; q++) {
                CHECK_LIMITED(!used[q], "page %zu handed out twice", q);
                used[q] = touched[q] = 1;
            }
            used_pages += want;
            live[nlive].first = p;
            live[nlive].n = want;
            nlive++;
        } else {
            size_t i = rnd() % nlive;
            /* sometimes free a block in two pieces */
            if (live[i].n > 1 && rnd() % 4 == 0) {
                size_t cut = 1 + rnd() % (live[i].n - 1);
                bk_buddy_free(&B, (size_t)live[i].first + cut, live[i].n - cut, 0);
                bk_buddy_free(&B, (size_t)live[i].first, cut, 0);
            } else {
                bk_buddy_free(&B, (size_t)live[i].first, live[i].n, 0);
            }
            for (size_t q = (size_t)live[i].first; q < (size_t)live[i].first + live[i].n; q++)
                used[q] = 0;
            used_pages -= live[i].n;
            live[i] = live[--nlive];
        }
        CHECK_LIMITED(B.free_pages == n - used_pages, "round %u: free_pages %u, shadow says %zu",
                      r, B.free_pages, n - used_pages);
        if (r % 64 == 0) {
            check_invariants(&B, used, "random");
            check_census(&B, used, touched, "random");
        }
    }
    check_invariants(&B, used, "random end");
    while (nlive) {
        nlive--;
        bk_buddy_free(&B, (size_t)live[nlive].first, live[nlive].n, 0);
    }
    check_single_block(&B, "random: everything freed");
}

struct release_log {
    size_t calls, pages;
    bool refuse;                 /* act as the kernel refusing (mlocked pages) */
    uint8_t released[BK_BUDDY_PAGES];
};

static bool release_cb(void *ctx, size_t first, size_t npages)
{
    struct release_log *log = ctx;
    log->calls++;
    if (log->refuse)
        return false;
    log->pages += npages;
    for (size_t p = first; p < first + npages; p++)
        log->released[p]++;
    return true;
}

/* Release every dirty block of at least 2^min_order pages, whatever its
 * age, as with MADV_DONTNEED. */
static size_t release_all_from(unsigned min_order, struct release_log *log)
{
    struct bk_buddy_release req = { .min_order = min_order, .max_order = 31, .now = 0,
                                    .min_age = 0, .zeroes = true, .release = release_cb,
                                    .ctx = log };
    return bk_buddy_release(&B, &req);
}

static void test_clean_dirty(void)
{
    static struct release_log log;
    bool z = false;
    bk_buddy_init(&B, 12, false);
    long p = bk_buddy_alloc(&B, 10, 1, &z);
    CHECK(p == 0 && z, "fresh 10 pages: at %ld zeroed %d", p, z);
    CHECK(B.dirty_free == 0, "dirty_free %u", B.dirty_free);
    bk_buddy_free(&B, 0, 10, 0);
    CHECK(B.dirty_free == 10, "after freeing 10 pages dirty_free %u", B.dirty_free);
    z = true;
    p = bk_buddy_alloc(&B, 10, 1, &z);
    CHECK(p == 0 && !z, "reused pages: at %ld zeroed %d", p, z);
    CHECK(B.dirty_free == 0, "dirty_free %u", B.dirty_free);
    bk_buddy_free(&B, 0, 10, 0);

    /* a block straddling dirty and clean pages is not zeroed */
    z = true;
    p = bk_buddy_alloc(&B, 16, 1, &z);
    CHECK(p == 0 && !z, "16 pages over 10 dirty: at %ld zeroed %d", p, z);
    CHECK(B.dirty_free == 0, "dirty_free %u after taking the dirty pages", B.dirty_free);
    bk_buddy_free(&B, 0, 16, 0);
    CHECK(B.dirty_free == 16, "dirty_free %u", B.dirty_free);
    /* pages past the dirty ones were never used: still clean */
    z = false;
    p = bk_buddy_alloc(&B, 16, 16, &z);
    CHECK(p == 0 && !z, "at %ld zeroed %d", p, z);
    long q = bk_buddy_alloc(&B, 16, 16, &z);
    CHECK(q == 16 && z, "untouched pages at %ld zeroed %d", q, z);
    bk_buddy_free(&B, 0, 32, 0);
    CHECK(B.dirty_free == 32, "dirty_free %u", B.dirty_free);

    /* release with a minimum order: the 32 dirty pages merged back into the
     * 4096-page block, so a minimum order of 12 still covers them */
    memset(&log, 0, sizeof log);
    size_t r = release_all_from(12, &log);
    CHECK(r == 32, "release returned %zu, want 32", r);
    CHECK(log.calls == 1 && log.pages == 4096, "release callback: %zu calls, %zu pages",
          log.calls, log.pages);
    CHECK(B.dirty_free == 0, "dirty_free %u after release", B.dirty_free);
    z = false;
    p = bk_buddy_alloc(&B, 10, 1, &z);
    CHECK(p == 0 && z, "released pages: at %ld zeroed %d", p, z);
    bk_buddy_free(&B, 0, 10, 0);

    /* a release leaves small dirty blocks alone and reports what it did */
    bk_buddy_init(&B, 12, false);
    long a = bk_buddy_alloc(&B, 1, 1, &z);           /* page 0 */
    long b = bk_buddy_alloc(&B, 1, 1, &z);           /* page 1 */
    long c = bk_buddy_alloc(&B, 256, 256, &z);       /* pages 256..511 */
    CHECK(a == 0 && b == 1 && c == 256, "setup: %ld %ld %ld", a, b, c);
    bk_buddy_free(&B, 1, 1, 0);                          /* dirty order-0 block at 1 */
    bk_buddy_free(&B, 256, 256, 0);                      /* dirty, merges to order 8 at 256 */
    CHECK(B.dirty_free == 257, "dirty_free %u", B.dirty_free);
    memset(&log, 0, sizeof log);
    r = release_all_from(8, &log);
    CHECK(r == 256, "released %zu dirty pages, want 256", r);
    CHECK(B.dirty_free == 1, "dirty_free %u, the order-0 block should stay dirty", B.dirty_free);
    CHECK(!log.released[1], "page 1 (order 0) released with min_order 8");
    CHECK(log.released[256] && log.released[511], "dirty order-8 block not released");
    for (size_t i = 0; i < BK_BUDDY_PAGES; i++)
        CHECK_LIMITED(log.released[i] <= 1, "page %zu released %u times", i, log.released[i]);
    /* a second release finds nothing dirty at that order */
    memset(&log, 0, sizeof log);
    r = release_all_from(8, &log);
    CHECK(r == 0 && log.calls == 0, "second release: %zu pages, %zu calls", r, log.calls);
    /* min_order 0 takes the last dirty page */
    memset(&log, 0, sizeof log);
    r = release_all_from(0, &log);
    CHECK(r == 1 && log.released[1] == 1, "release(0): %zu pages", r);
    CHECK(B.dirty_free == 0, "dirty_free %u", B.dirty_free);
    check_invariants(&B, NULL, "after releases");
    bk_buddy_free(&B, 0, 1, 0);
    check_single_block(&B, "after releases");
    CHECK(B.dirty_free == 1, "dirty_free %u", B.dirty_free);
    /* a release the kernel refuses leaves the pages dirty: never zeroed */
    memset(&log, 0, sizeof log);
    log.refuse = true;
    long d = bk_buddy_alloc(&B, 1, 1, &z);            /* the dirty page 0 */
    CHECK(d == 0 && !z, "dirty page: at %ld zeroed %d", d, z);
    bk_buddy_free(&B, 0, 1, 0);
    r = release_all_from(0, &log);
    CHECK(r == 0 && log.calls > 0, "refused release: %zu pages, %zu calls", r, log.calls);
    CHECK(B.dirty_free == 1, "refused release: dirty_free %u", B.dirty_free);
    d = bk_buddy_alloc(&B, 1, 1, &z);
    CHECK(d == 0 && !z, "after a refused release: page %ld zeroed %d", d, z);
    bk_buddy_free(&B, 0, 1, 0);
}

/* Decay bookkeeping with an injected clock: free times, merges, splits,
 * ages, wrap-around, and MADV_FREE releases that do not zero. */
static size_t release_aged(unsigned lo, unsigned hi, uint32_t now, uint32_t age, bool zeroes,
                           struct release_log *log)
{
    struct bk_buddy_release req = { .min_order = lo, .max_order = hi, .now = now,
                                    .min_age = age, .zeroes = zeroes, .release = release_cb,
                                    .ctx = log };
    memset(log, 0, sizeof *log);
    return bk_buddy_release(&B, &req);
}

static void test_decay(void)
{
    static struct release_log log;
    bool z;
    bk_buddy_init(&B, 10, false);
    long a = bk_buddy_alloc(&B, 256, 256, &z);       /* pages 0..255 */
    long b = bk_buddy_alloc(&B, 256, 256, &z);       /* 256..511 */
    long c = bk_buddy_alloc(&B, 512, 512, &z);       /* 512..1023: the heap is full */
    CHECK(a == 0 && b == 256 && c == 512, "setup: %ld %ld %ld", a, b, c);

    bk_buddy_free(&B, 0, 256, 1000);                  /* order 8 at 0, freed at 1000 */
    CHECK(bk_buddy_node(&B, 0)->freed_at == 1000, "freed_at %u", bk_buddy_node(&B, 0)->freed_at);
    /* too young at 1500 with an age of 1000 ms; old enough at 2000 */
    size_t r = release_aged(8, 12, 1500, 1000, true, &log);
    CHECK(r == 0 && log.calls == 0, "young block released: %zu pages", r);
    r = release_aged(8, 12, 2000, 1000, true, &log);
    CHECK(r == 256 && log.released[0] && log.released[255], "old block: %zu pages", r);
    CHECK(B.dirty_free == 0, "dirty_free %u", B.dirty_free);

    /* merging two equally dirty halves takes the mean of their times */
    a = bk_buddy_alloc(&B, 256, 256, &z);
    CHECK(a == 0 && z, "reuse of pages released with MADV_DONTNEED: %ld zeroed %d", a, z);
    bk_buddy_free(&B, 0, 256, 3000);
    bk_buddy_free(&B, 256, 256, 5000);               /* merges into order 9 at 0 */
    CHECK(bk_buddy_free_order_at(&B, 0) == 9, "order %d", bk_buddy_free_order_at(&B, 0));
    CHECK(bk_buddy_node(&B, 0)->freed_at == 4000, "merged block stamped %u, want 4000", bk_buddy_node(&B, 0)->freed_at);
    r = release_aged(8, 12, 4500, 1000, true, &log);
    CHECK(r == 0, "merged block released %zu pages before its newest part aged", r);
    CHECK(bk_buddy_dirty_in_blocks(&B, 8) == 512, "dirty in blocks >= order 8: %zu",
          bk_buddy_dirty_in_blocks(&B, 8));

    /* a small fresh free next to a large idle dirty block barely moves its
     * time (the block's dirty pages are mostly idle) */
    a = bk_buddy_alloc(&B, 256, 256, &z);            /* 0..255 out of the order-9 block */
    long d = bk_buddy_alloc(&B, 1, 1, &z);           /* page 256: splits the upper half */
    CHECK(a == 0 && d == 256, "setup: %ld %ld", a, d);
    bk_buddy_free(&B, 0, 256, 5000);                 /* 256 dirty at 5000 */
    bk_buddy_free(&B, 256, 1, 9000);                 /* 1 dirty at 9000: merges all */
    /* 255 pages at 4000 (the split half), 1 at 9000, 256 at 5000 */
    CHECK(bk_buddy_free_order_at(&B, 0) == 9 && bk_buddy_node(&B, 0)->freed_at >= 4505 && bk_buddy_node(&B, 0)->freed_at <= 4515,
          "order %d stamped %u, want 9 at about 4510", bk_buddy_free_order_at(&B, 0),
          bk_buddy_node(&B, 0)->freed_at);
    r = release_aged(8, 12, 6000, 1000, true, &log);
    CHECK(r == 512, "idle block not released: %zu pages", r);
    a = bk_buddy_alloc(&B, 512, 512, &z);
    bk_buddy_free(&B, 0, 256, 5000);                 /* dirty again: 0..255 at 5000 */
    bk_buddy_free(&B, 256, 256, 5000);

    /* a split keeps the parent's time: the half left free is as old */
    a = bk_buddy_alloc(&B, 256, 256, &z);            /* lower half of the order-9 block */
    CHECK(a == 0 && bk_buddy_node(&B, 256)->freed_at == 5000, "split: at %ld, half stamped %u", a,
          bk_buddy_node(&B, 256)->freed_at);
    /* a block freed into clean space keeps its own time */
    /* the order range limits what is released: pieces below order 8 stay */
    bk_buddy_free(&B, 512, 4, 6000);                 /* 4 pages of c: order 2 at 512 */
    CHECK(bk_buddy_dirty_in_blocks(&B, 8) == 256 && B.dirty_free == 260,
          "dirty: %zu in big blocks, %u in all", bk_buddy_dirty_in_blocks(&B, 8), B.dirty_free);
    r = release_aged(8, 12, 7000, 1000, true, &log);
    CHECK(r == 256 && !log.released[512], "release >= order 8: %zu pages", r);
    r = release_aged(0, 7, 7000, 1000, false, &log); /* MADV_FREE: not zeroed */
    CHECK(r == 4 && log.released[512] == 1, "release < order 8: %zu pages", r);
    CHECK(B.dirty_free == 0, "dirty_free %u", B.dirty_free);
    c = bk_buddy_alloc(&B, 4, 4, &z);
    CHECK(c == 512 && !z, "pages released lazily must not count as zero: %ld zeroed %d", c, z);
    bk_buddy_free(&B, 512, 512, 8000);
    bk_buddy_free(&B, 0, 256, 8000);
    CHECK(bk_buddy_empty(&B), "heap not empty after freeing everything");
    check_single_block(&B, "after decay");
    CHECK(bk_buddy_node(&B, 0)->freed_at == 8000, "whole heap stamped %u", bk_buddy_node(&B, 0)->freed_at);

    /* ages are compared modulo 2^32 */
    CHECK(bk_buddy_old_enough(0xfffffff0u, 0x10u, 0x20u), "wrapped clock: 32 ms not old");
    CHECK(!bk_buddy_old_enough(0xfffffff0u, 0x10u, 0x21u), "wrapped clock: 32 ms too old");
    CHECK(bk_buddy_old_enough(5, 5, 0), "age 0 must release at once");
}

/* Claiming an exact range (growing a block in place). */
static void test_claim(void)
{
    bool z;
    bk_buddy_init(&B, 10, false);
    long a = bk_buddy_alloc(&B, 5, 1, &z);            /* 0..4, tail 5..7 back */
    CHECK(a == 0, "setup: %ld", a);
    CHECK(bk_buddy_claim(&B, 5, 3), "pages 5..7 free but not claimed");
    check_invariants(&B, NULL, "after claiming 5..7");
    CHECK(B.free_pages == 1024 - 8, "free_pages %u", B.free_pages);
    /* a range reaching into used pages is refused, changing nothing */
    long c = bk_buddy_alloc(&B, 1, 1, &z);            /* page 8 */
    CHECK(c == 8, "page %ld", c);
    CHECK(!bk_buddy_claim(&B, 6, 4), "claimed used pages");
    CHECK(!bk_buddy_claim(&B, 9, 1020), "claimed past the end");
    CHECK(B.free_pages == 1024 - 9, "refused claims changed free_pages: %u", B.free_pages);
    check_invariants(&B, NULL, "after refused claims");
    /* a range spanning several free blocks, leaving free parts on both
     * sides with their times */
    bk_buddy_free(&B, 0, 9, 700);                     /* all free again */
    check_single_block(&B, "before the spanning claim");
    CHECK(bk_buddy_claim(&B, 3, 300), "3..302 not claimed");
    check_invariants(&B, NULL, "after claiming 3..302");
    CHECK(bk_buddy_free_order_at(&B, 0) == 1 && bk_buddy_free_order_at(&B, 2) == 0,
          "left part: orders %d %d", bk_buddy_free_order_at(&B, 0), bk_buddy_free_order_at(&B, 2));
    CHECK(bk_buddy_free_order_at(&B, 303) == 0 && bk_buddy_node(&B, 303)->freed_at == 700,
          "right part at 303: order %d time %u", bk_buddy_free_order_at(&B, 303), bk_buddy_node(&B, 303)->freed_at);
    CHECK(B.dirty_free == 3, "dirty_free %u (pages 0..2 of the 9 used ones)", B.dirty_free);
    bk_buddy_free(&B, 3, 300, 800);
    check_single_block(&B, "after freeing the claimed range");
}

/* The slot map is one to one, fits the arrays, gives the pages that start
 * a hugepage the first slots, and keeps other pages in page order: the
 * entries of the blocks around the first pages in use, and of all large
 * blocks, share a few OS pages of the header. */
static void test_slots(void)
{
    static uint8_t seen[BK_BUDDY_SLOTS];
    for (size_t p = 0; p < BK_BUDDY_PAGES; p++) {
        size_t s = bk_buddy_slot(p);
        CHECK(s < BK_BUDDY_SLOTS && !seen[s], "page %zu: slot %zu out of range or taken", p, s);
        if (s < BK_BUDDY_SLOTS)
            seen[s] = 1;
        bool chunk_head = p % ((size_t)1 << BK_HUGEPAGE_ORDER) == 0;
        CHECK(chunk_head ? s < BK_BUDDY_CHUNKS : s == BK_BUDDY_CHUNKS + p,
              "page %zu: slot %zu", p, s);
    }
    /* A fresh heap after one small block: its free blocks start at pages
     * 1, 2, 4, ..., and their nodes span under two OS pages. */
    bk_buddy_init(&B, BK_BUDDY_MAX_ORDER, false);
    bool zeroed;
    CHECK(bk_buddy_alloc(&B, 1, 1, &zeroed) == 0, "first page");
    uintptr_t lo = UINTPTR_MAX, hi = 0;
    for (unsigned k = 0; k < BK_BUDDY_MAX_ORDER; k++) {
        uintptr_t a = (uintptr_t)bk_buddy_node(&B, (size_t)1 << k);
        lo = a < lo ? a : lo;
        hi = a > hi ? a : hi;
    }
    CHECK(hi - lo < 2 * 4096, "free block nodes spread over %zu bytes", (size_t)(hi - lo));
    check_invariants(&B, NULL, "after the first page");
}

/* Chunk by chunk: only the chunks idle() names go, inside free blocks of
 * at least a chunk, whatever the blocks' times; clean chunks are skipped,
 * and a refused chunk stays dirty. */
static const uint8_t *idle_map;
static bool chunk_idle_cb(void *ctx, size_t chunk)
{
    (void)ctx;
    return idle_map[chunk];
}

static void test_release_chunks(void)
{
    static struct release_log log;
    bool z;
    bk_buddy_init(&B, 12, false);                               /* 16 chunks of 256 pages */
    long a = bk_buddy_alloc(&B, 4096, 1, &z);
    CHECK(a == 0, "setup: %ld", a);
    bk_buddy_free(&B, 0, 1024, 5000);                    /* chunks 0-3, one free block */
    bk_buddy_free(&B, 1024 + 100, 50, 5000);             /* a piece in chunk 4 */
    /* chunks 0..3 and 4 free in part: 1 and 3 idle, 4 idle too (but its
     * free block is below a chunk, so it stays), the rest busy */
    static uint8_t idle[16] = { [1] = 1, [3] = 1, [4] = 1 };
    idle_map = idle;
    memset(&log, 0, sizeof log);
    struct bk_buddy_release req = { .min_order = 8, .max_order = 12, .zeroes = true,
                                    .release = release_cb, .chunk_idle = chunk_idle_cb,
                                    .ctx = &log };
    size_t r = bk_buddy_release(&B, &req);
    CHECK(r == 512 && log.pages == 512 && log.calls == 2, "released %zu pages in %zu calls", r,
          log.calls);
    for (size_t p = 0; p < 1024 + 256; p++)
        CHECK_LIMITED(log.released[p] == (p / 256 == 1 || p / 256 == 3),
                      "page %zu released %u times", p, log.released[p]);
    CHECK(B.dirty_free == 1024 + 50 - 512, "dirty_free %u", B.dirty_free);
    check_invariants(&B, NULL, "after releasing chunks");
    /* again: the released chunks are clean now, so nothing is called */
    memset(&log, 0, sizeof log);
    r = bk_buddy_release(&B, &req);
    CHECK(r == 0 && log.calls == 0, "clean chunks released again: %zu pages, %zu calls", r,
          log.calls);
    /* a chunk whose release is refused stays dirty */
    idle[0] = 1;
    log.refuse = true;
    r = bk_buddy_release(&B, &req);
    CHECK(r == 0 && log.calls == 1 && B.dirty_free == 1024 + 50 - 512,
          "refused chunk: %zu pages, %zu calls, dirty_free %u", r, log.calls, B.dirty_free);
    /* a released chunk is handed out again as zeroed, a dirty one not */
    CHECK(bk_buddy_claim(&B, 1024 + 100, 50), "claim back the piece in chunk 4");
    long q = bk_buddy_alloc(&B, 256, 256, &z);
    CHECK(q >= 0 && (q == 256 || q == 768) == z, "chunk at %ld: zeroed %d", q, z);
}

static bool page_bit(const uint64_t *map, size_t p)
{
    return map[p / 64] >> (p % 64) & 1;
}

/* Free pages whose clean bit is clear: what dirty_free must count. */
static size_t dirty_on_lists(const struct bk_buddy *b)
{
    size_t dirty = 0;
    for (unsigned k = 0; k <= b->max_order; k++)
        for (uint16_t p = b->head[k]; p != BK_BUDDY_NIL; p = b->node[bk_buddy_slot(p)].next)
            for (size_t q = p; q < p + ((size_t)1 << k); q++)
                dirty += !page_bit(b->clean, q);
    return dirty;
}

static void check_released(const char *when)
{
    check_invariants(&B, NULL, when);
    CHECK(B.dirty_free == dirty_on_lists(&B), "%s: dirty_free %u, free pages not clean %zu",
          when, B.dirty_free, dirty_on_lists(&B));
}

/* Pages freed as released (the caller gave them back already) are free,
 * clean and zero without a release call, count nothing dirty, and do not
 * weigh in the time of the block they merge into; reallocated, they come
 * back zeroed. */
static void test_free_released(void)
{
    bool z;
    bk_buddy_init(&B, 10, false);
    long a = bk_buddy_alloc(&B, 256, 256, &z), b = bk_buddy_alloc(&B, 256, 256, &z);
    long c = bk_buddy_alloc(&B, 512, 512, &z);
    CHECK(a == 0 && b == 256 && c == 512, "setup: %ld %ld %ld", a, b, c);
    bk_buddy_free(&B, 0, 256, 1000);                          /* dirty, at 1000 */
    bk_buddy_free_released(&B, 256, 200, 5000, true);         /* clean, at 5000 */
    check_released("free_released 256+200");
    CHECK(B.dirty_free == 256, "dirty_free %u, want 256 (the released pages are clean)",
          B.dirty_free);
    CHECK(B.free_pages == 456, "free_pages %u", B.free_pages);
    CHECK(page_bit(B.clean, 256) && page_bit(B.clean, 455) && !page_bit(B.clean, 456) &&
              page_bit(B.zero, 300) && !page_bit(B.clean, 0),
          "clean/zero bits of the released range");
    bk_buddy_free(&B, 456, 56, 5000);                         /* completes the order-9 block */
    check_released("free 456+56");
    CHECK(bk_buddy_free_order_at(&B, 0) == 9, "order %d", bk_buddy_free_order_at(&B, 0));
    /* 256 dirty pages at 1000 and 56 at 5000: the 200 clean ones weigh nothing */
    uint32_t t = bk_buddy_node(&B, 0)->freed_at;
    CHECK(t >= 1710 && t <= 1720, "merged block stamped %u, want about 1718", t);
    a = bk_buddy_alloc(&B, 512, 512, &z);
    CHECK(a == 0 && !z && B.dirty_free == 0, "realloc: %ld zeroed %d dirty %u", a, z,
          B.dirty_free);
    bk_buddy_free_released(&B, 0, 512, 6000, false);          /* MADV_FREE: clean, not zero */
    check_released("free_released lazy");
    a = bk_buddy_alloc(&B, 100, 1, &z);
    CHECK(a == 0 && !z, "lazily released pages reported zeroed (%ld)", a);
    bk_buddy_free_released(&B, 0, 100, 6000, true);
    check_released("free_released 0+100");
    a = bk_buddy_alloc(&B, 64, 1, &z);
    CHECK(a == 0 && z && B.dirty_free == 0, "released pages: at %ld, zeroed %d, dirty %u", a, z,
          B.dirty_free);
}

int main(void)
{
    test_init();
    test_init_zeroed();
    test_census();
    test_slots();
    test_split_merge();
    test_tail_return();
    test_alignment();
    test_exhaustion();
    test_random(13, 60000);
    test_random(12, 60000);
    test_random(6, 20000);
    test_random(3, 5000);
    test_clean_dirty();
    test_decay();
    test_claim();
    test_release_chunks();
    test_free_released();
    return check_report("test_buddy");
}
