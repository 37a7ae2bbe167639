/* Buddy heap over page indices (see buddy.h for the invariants). */
#include "buddy.h"

#include <string.h>

static void head_bit_set(struct bk_buddy *b, size_t p, unsigned order, bool on)
{
    if (order < BK_BUDDY_ORDERED_MIN)
        return;
    size_t i = bk_buddy_head_bit(order, p);
    uint64_t bit = 1ull << (i & 63);
    b->head_bits[i >> 6] = on ? b->head_bits[i >> 6] | bit : b->head_bits[i >> 6] & ~bit;
}

/* The block allocation takes from free list `order` (not empty): the
 * lowest, from order BK_BUDDY_ORDERED_MIN up: the first head bit at or
 * after the order's first one (the bits of higher orders come after the
 * order's own, so as long as the order has a free block, the first bit set
 * is one of its). */
static size_t block_to_take(const struct bk_buddy *b, unsigned order)
{
    if (order < BK_BUDDY_ORDERED_MIN)
        return b->head[order];
    size_t first = bk_buddy_head_bit(order, 0), w = first >> 6;
    uint64_t bits = b->head_bits[w] & (~0ull << (first & 63));
    while (!bits) {
        if (++w == BK_BUDDY_HEAD_WORDS)     /* not while the bits match the lists */
            return b->head[order];
        bits = b->head_bits[w];
    }
    size_t i = (w << 6) + (size_t)__builtin_ctzll(bits);
    return (i - first) << order;
}

static void list_push(struct bk_buddy *b, size_t p, unsigned order)
{
    uint16_t h = b->head[order];
    bk_buddy_node(b, p)->next = h;
    bk_buddy_node(b, p)->prev = BK_BUDDY_NIL;
    if (h != BK_BUDDY_NIL)
        bk_buddy_node(b, h)->prev = (uint16_t)p;
    b->head[order] = (uint16_t)p;
    b->head_order[bk_buddy_slot(p)] = (uint8_t)(order + 1);
    b->order_mask |= 1u << order;
    head_bit_set(b, p, order, true);
}

static void list_remove(struct bk_buddy *b, size_t p, unsigned order)
{
    uint16_t n = bk_buddy_node(b, p)->next, pr = bk_buddy_node(b, p)->prev;
    if (pr != BK_BUDDY_NIL)
        bk_buddy_node(b, pr)->next = n;
    else
        b->head[order] = n;
    if (n != BK_BUDDY_NIL)
        bk_buddy_node(b, n)->prev = pr;
    b->head_order[bk_buddy_slot(p)] = 0;
    head_bit_set(b, p, order, false);
    if (b->head[order] == BK_BUDDY_NIL)
        b->order_mask &= ~(1u << order);
}

/* Pages set in a bitmap in [first, first + n). */
static size_t count_bits(const uint64_t *map, size_t first, size_t n)
{
    size_t c = 0;
    for (size_t p = first; p < first + n;) {
        if ((p & 63) == 0 && p + 64 <= first + n) {
            c += (size_t)__builtin_popcountll(map[p >> 6]);
            p += 64;
        } else {
            c += (map[p >> 6] >> (p & 63)) & 1;
            p++;
        }
    }
    return c;
}

/* Set or clear pages [first, first + n) in a bitmap. */
static void set_bits(uint64_t *map, size_t first, size_t n, bool on)
{
    for (size_t p = first; p < first + n;) {
        if ((p & 63) == 0 && p + 64 <= first + n) {
            map[p >> 6] = on ? ~0ull : 0;
            p += 64;
        } else {
            uint64_t bit = 1ull << (p & 63);
            map[p >> 6] = on ? map[p >> 6] | bit : map[p >> 6] & ~bit;
            p++;
        }
    }
}

void bk_buddy_init(struct bk_buddy *b, unsigned max_order, bool zeroed)
{
    /* node[] is only ever read at the heads of free blocks, which
     * list_push and free_block write first: left alone, it stays untouched
     * in a fresh region header (64 of its 76 KiB) but for the slots of the
     * blocks in use (see bk_buddy_slot). */
    b->free_pages = b->dirty_free = b->order_mask = 0;
    if (!zeroed)
        memset(b->head_order, 0, sizeof b->head_order);
    memset(b->head_bits, 0, sizeof b->head_bits);
    memset(b->clean, 0, sizeof b->clean);
    memset(b->zero, 0, sizeof b->zero);
    b->max_order = max_order;
    for (unsigned k = 0; k <= BK_BUDDY_MAX_ORDER; k++)
        b->head[k] = BK_BUDDY_NIL;
    size_t pages = (size_t)1 << max_order;
    set_bits(b->clean, 0, pages, true);
    set_bits(b->zero, 0, pages, true);
    b->free_pages = (uint32_t)pages;
    list_push(b, 0, max_order);
}

/* Free one aligned block of 2^order pages freed at `t`, merging upwards.
 * The merged block's time is the mean free time of its dirty pages: a span
 * freed beside a large block that has been idle for long barely moves the
 * block's time, and a block freed into clean (released or never used)
 * space keeps its own. */
static void free_block(struct bk_buddy *b, size_t p, unsigned order, uint32_t t)
{
    size_t dirty = ((size_t)1 << order) - count_bits(b->clean, p, (size_t)1 << order);
    while (order < b->max_order) {
        size_t n = (size_t)1 << order, buddy = p ^ n;
        if (b->head_order[bk_buddy_slot(buddy)] != order + 1)
            break;
        size_t buddy_dirty = n - count_bits(b->clean, buddy, n);
        if (buddy_dirty) {
            int64_t delta = (int32_t)(bk_buddy_node(b, buddy)->freed_at - t);
            t += (uint32_t)(delta * (int64_t)buddy_dirty / (int64_t)(dirty + buddy_dirty));
        }
        dirty += buddy_dirty;
        list_remove(b, buddy, order);
        p &= ~n;
        order++;
    }
    list_push(b, p, order);
    bk_buddy_node(b, p)->freed_at = t;
}

/* Free [first, first + n) as maximal aligned blocks freed at `t`. */
static void free_range(struct bk_buddy *b, size_t first, size_t n, uint32_t t)
{
    size_t end = first + n;
    while (first < end) {
        unsigned order = first ? (unsigned)__builtin_ctzl(first) : b->max_order;
        while (first + ((size_t)1 << order) > end)
            order--;
        free_block(b, first, order, t);
        first += (size_t)1 << order;
    }
}

long bk_buddy_alloc(struct bk_buddy *b, size_t npages, size_t align_pages, bool *zeroed)
{
    size_t want = npages > align_pages ? npages : align_pages;
    if (npages == 0 || want > ((size_t)1 << b->max_order))
        return -1;
    unsigned order = bk_log2_ceil(want);
    uint32_t avail = b->order_mask >> order;
    if (!avail)
        return -1;
    unsigned k = order + (unsigned)__builtin_ctz(avail);
    size_t p = block_to_take(b, k);
    uint32_t t = bk_buddy_node(b, p)->freed_at;
    list_remove(b, p, k);
    while (k > order) {                  /* split, keeping the lower half */
        k--;
        list_push(b, p + ((size_t)1 << k), k);
        bk_buddy_node(b, p + ((size_t)1 << k))->freed_at = t;
    }
    size_t block = (size_t)1 << order;
    if (block > npages)                  /* give the tail back */
        free_range(b, p + npages, block - npages, t);
    size_t clean = count_bits(b->clean, p, npages);
    *zeroed = count_bits(b->zero, p, npages) == npages;
    set_bits(b->clean, p, npages, false);
    set_bits(b->zero, p, npages, false);
    b->free_pages -= (uint32_t)npages;
    b->dirty_free -= (uint32_t)(npages - clean);
    return (long)p;
}

/* The free block holding page p: its head, and its order in *order; -1 if
 * p is not free.  (A free block of order k holding p starts at p rounded
 * down to 2^k, so one look per order finds it.) */
static long block_holding(const struct bk_buddy *b, size_t p, unsigned *order)
{
    for (unsigned k = 0; k <= b->max_order; k++) {
        size_t h = p & ~(((size_t)1 << k) - 1);
        if (b->head_order[bk_buddy_slot(h)] == k + 1) {
            *order = k;
            return (long)h;
        }
    }
    return -1;
}

bool bk_buddy_claim(struct bk_buddy *b, size_t first, size_t npages)
{
    size_t end = first + npages;
    unsigned k;
    if (npages == 0 || end > ((size_t)1 << b->max_order))
        return false;
    for (size_t p = first; p < end; p = (size_t)block_holding(b, p, &k) + ((size_t)1 << k))
        if (block_holding(b, p, &k) < 0)
            return false;
    size_t clean = count_bits(b->clean, first, npages);
    for (size_t p = first; p < end;) {
        size_t h = (size_t)block_holding(b, p, &k), n = (size_t)1 << k;
        uint32_t t = bk_buddy_node(b, h)->freed_at;
        list_remove(b, h, k);
        if (h < first)
            free_range(b, h, first - h, t);
        if (h + n > end)
            free_range(b, end, h + n - end, t);
        p = h + n;
    }
    set_bits(b->clean, first, npages, false);
    set_bits(b->zero, first, npages, false);
    b->free_pages -= (uint32_t)npages;
    b->dirty_free -= (uint32_t)(npages - clean);
    return true;
}

void bk_buddy_free(struct bk_buddy *b, size_t first, size_t npages, uint32_t now)
{
    b->free_pages += (uint32_t)npages;
    b->dirty_free += (uint32_t)npages;
    free_range(b, first, npages, now);
}

void bk_buddy_free_released(struct bk_buddy *b, size_t first, size_t npages, uint32_t now,
                            bool zeroes)
{
    set_bits(b->clean, first, npages, true);    /* before the merge weighs the times */
    if (zeroes)
        set_bits(b->zero, first, npages, true);
    b->free_pages += (uint32_t)npages;
    free_range(b, first, npages, now);
}

/* Release free pages [p, p + n) if any is dirty; the dirty pages given
 * back (b->dirty_free is the caller's to update). */
static size_t release_range(struct bk_buddy *b, size_t p, size_t n,
                            const struct bk_buddy_release *req)
{
    size_t dirty = n - count_bits(b->clean, p, n);
    if (!dirty || !req->release(req->ctx, p, n))
        return 0;
    set_bits(b->clean, p, n, true);
    if (req->zeroes)
        set_bits(b->zero, p, n, true);
    return dirty;
}

/* A free block of order k at p, by chunks (req->chunk_idle) or whole. */
static size_t release_block(struct bk_buddy *b, size_t p, unsigned k,
                            const struct bk_buddy_release *req)
{
    size_t n = (size_t)1 << k, chunk = (size_t)1 << req->min_order, released = 0;
    if (!req->chunk_idle)
        return bk_buddy_old_enough(bk_buddy_node(b, p)->freed_at, req->now, req->min_age)
                   ? release_range(b, p, n, req) : 0;
    for (size_t c = p; c < p + n; c += chunk)
        if (req->chunk_idle(req->ctx, c >> req->min_order))
            released += release_range(b, c, chunk, req);
    return released;
}

size_t bk_buddy_release(struct bk_buddy *b, const struct bk_buddy_release *req)
{
    size_t released = 0;
    unsigned top = req->max_order < b->max_order ? req->max_order : b->max_order;
    for (unsigned k = req->min_order; k <= top; k++)
        for (uint16_t p = b->head[k]; p != BK_BUDDY_NIL; p = bk_buddy_node(b, p)->next)
            released += release_block(b, p, k, req);
    b->dirty_free -= (uint32_t)released;
    return released;
}

size_t bk_buddy_dirty_in_blocks(const struct bk_buddy *b, unsigned min_order)
{
    size_t dirty = 0;
    for (unsigned k = min_order; k <= b->max_order; k++) {
        size_t n = (size_t)1 << k;
        for (uint16_t p = b->head[k]; p != BK_BUDDY_NIL; p = b->node[bk_buddy_slot(p)].next)
            dirty += n - count_bits(b->clean, p, n);
    }
    return dirty;
}

/* A chunk is entirely free only as (part of) one free block of at least
 * its order: buddies merge, so its pages never sit free in smaller blocks
 * that add up to the whole chunk.  Smaller blocks mark their chunk partly
 * used. */
void bk_buddy_census(const struct bk_buddy *b, unsigned chunk_order, struct bk_buddy_census *c)
{
    enum { MAX_CHUNKS = 1024 };
    uint8_t partial[MAX_CHUNKS / 8] = { 0 };
    size_t chunk_pages = (size_t)1 << chunk_order;
    *c = (struct bk_buddy_census){ .largest_order = -1 };
    if (chunk_order > b->max_order || (b->max_order - chunk_order) > 10)
        return;
    for (unsigned k = 0; k <= b->max_order; k++) {
        size_t n = (size_t)1 << k;
        for (uint16_t p = b->head[k]; p != BK_BUDDY_NIL; p = b->node[bk_buddy_slot(p)].next) {
            c->free_blocks++;
            c->largest_order = (int)k;
            if (k < chunk_order) {
                size_t chunk = p >> chunk_order;
                partial[chunk / 8] |= (uint8_t)(1u << (chunk % 8));
                continue;
            }
            for (size_t q = p; q < p + n; q += chunk_pages) {
                c->chunks_free++;
                c->chunks_free_dirty += count_bits(b->clean, q, chunk_pages) != chunk_pages;
            }
        }
    }
    for (size_t i = 0; i < sizeof partial; i++)
        c->chunks_partial += (uint32_t)__builtin_popcount(partial[i]);
}

int bk_buddy_free_order_at(const struct bk_buddy *b, size_t p)
{
    return (int)b->head_order[bk_buddy_slot(p)] - 1;
}
