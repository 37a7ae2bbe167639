/* The buddy heap: power-of-two blocks of pages inside one region.
 *
 * A region of 2^max_order pages is managed as blocks of 2^k pages, each
 * aligned to its own size relative to the region base.  Allocation takes the
 * smallest free block that fits and splits it, pushing the upper halves
 * back as free blocks; freeing merges a block with its buddy (the other half
 * of its parent) for as long as the buddy is free and whole.  A request that
 * is not a power of two gets the power-of-two block and immediately returns
 * the tail, so a 33-page request holds 33 pages, not 64.
 *
 * Among free blocks of one size, a block of 16 pages or more is taken
 * lowest address first, a smaller one most recently freed first.  Address
 * order keeps a heap of large blocks that churns packed toward the region
 * start, so it cycles through fewer hugepages: replayed through this code,
 * the churn workload's large blocks touch 1.39-1.48x their live bytes in
 * hugepages within a second instead of 1.54-1.72x (bench/placement/).  In
 * the workload itself at scale full that shows only as 8-10% fewer page
 * faults and a 0.5-2.5% lower peak RSS; its RSS over live bytes stayed
 * 1.47 (the saving is within how much the free space between its large
 * blocks moves from moment to moment).  Ordering the smaller blocks too
 * changed nothing there but needs 2 KiB of head bits per region header
 * instead of 128 bytes: one more resident page in every process.
 *
 * Invariants (checked by tests/test_buddy.c):
 *  - every page is either in exactly one free block or allocated;
 *  - head_order[slot(p)] != 0 iff page p starts a free block, whose order
 *    is head_order[slot(p)] - 1; that block is on free list `order`, and
 *    if order >= BK_BUDDY_ORDERED_MIN its bit head_bit(order, p) is set in
 *    head_bits (no other bit is);
 *  - two free buddies of the same order never coexist (they would have
 *    merged);
 *  - a page is "clean" when it is not resident: never touched since the OS
 *    mapped it, or released since.  A page is "zero" when it is known to
 *    read as zero (clean with MADV_DONTNEED; MADV_FREE releases pages that
 *    may keep their contents).  Allocated pages are neither.  dirty_free
 *    counts free pages that are not clean: what releasing would give back;
 *  - node[slot(p)].freed_at, at the head p of a free block, is the time (a
 *    caller's clock, milliseconds, compared modulo 2^32) its dirty pages
 *    were freed, on average: a merge takes the mean of its parts' times
 *    weighted by their dirty pages, and the halves of a split keep their
 *    parent's.  Decay releases a block
 *    once it is old enough, so memory that is being reused never is, and a
 *    small span freed next to a long-idle block does not keep it resident.
 *
 * The structure is pure bookkeeping over page indices and never touches the
 * memory it describes, so tests drive it over a fake region. */
#ifndef BRISK_BUDDY_H
#define BRISK_BUDDY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "../os/compiler.h"
#include "span.h"

#define BK_BUDDY_MAX_ORDER BK_REGION_ORDER
#define BK_BUDDY_PAGES     BK_REGION_PAGES
#define BK_BUDDY_NIL       0xffffu

/* What a free block's head page carries: its links on its order's free
 * list and its free time.  One array of these rather than one array per
 * field, so that a fresh region touches a few pages of them, not a few of
 * each. */
struct bk_buddy_node {
    uint16_t next, prev;
    uint32_t freed_at;
};

/* Per-page entries (head_order[], node[]) are stored by slot, not by page:
 * the pages that start a hugepage (every head of a block of a hugepage or
 * more) take the first BK_BUDDY_CHUNKS slots, and every other page p slot
 * BK_BUDDY_CHUNKS + p.  After a region's first small span its free blocks
 * start at pages 1, 2, 4, ... 4096: stored by page, their entries lay on
 * seven OS pages of the header; by slot, the small ones sit next to the
 * pages in use and the large ones together at the front.  (Measured on
 * `sleep`: 12 KiB less private memory per process.) */
#define BK_BUDDY_CHUNKS (BK_BUDDY_PAGES >> BK_HUGEPAGE_ORDER)
#define BK_BUDDY_SLOTS  (BK_BUDDY_CHUNKS + BK_BUDDY_PAGES)

BK_FAST_PATH size_t bk_buddy_slot(size_t p)
{
    size_t in_chunk = p & (((size_t)1 << BK_HUGEPAGE_ORDER) - 1);
    return in_chunk ? BK_BUDDY_CHUNKS + p : p >> BK_HUGEPAGE_ORDER;
}

/* Free blocks of 2^BK_BUDDY_ORDERED_MIN pages or more are taken lowest
 * address first (see above), found through a bitmap of their heads: order
 * k's 2^(MAX - k) possible blocks take the bits from
 * bk_buddy_head_bit(k, 0) on, the orders one after the other, 128 bytes in
 * all.  Smaller blocks (pieces of small spans' regions, many and short
 * lived) are taken most recently freed first, off their list's head. */
#define BK_BUDDY_ORDERED_MIN 4
#define BK_BUDDY_HEAD_BITS (((size_t)2 << BK_BUDDY_MAX_ORDER >> BK_BUDDY_ORDERED_MIN) - 1)
#define BK_BUDDY_HEAD_WORDS ((BK_BUDDY_HEAD_BITS + 63) / 64)

BK_FAST_PATH size_t bk_buddy_head_bit(unsigned order, size_t p)
{
    size_t all = (size_t)2 << BK_BUDDY_MAX_ORDER;
    return (all >> BK_BUDDY_ORDERED_MIN) - (all >> order) + (p >> order);
}

struct bk_buddy {
    unsigned max_order;
    uint32_t free_pages;
    uint32_t dirty_free;
    uint32_t order_mask;                       /* bit k: free list k non-empty */
    uint16_t head[BK_BUDDY_MAX_ORDER + 1];     /* first free block per order */
    uint64_t head_bits[BK_BUDDY_HEAD_WORDS];   /* heads of blocks >= ORDERED_MIN */
    uint64_t clean[BK_BUDDY_PAGES / 64];
    uint64_t zero[BK_BUDDY_PAGES / 64];
    uint8_t head_order[BK_BUDDY_SLOTS];        /* order + 1 at free block heads */
    struct bk_buddy_node node[BK_BUDDY_SLOTS]; /* at free block heads */
};

/* The node of page p (meaningful at the head of a free block). */
BK_FAST_PATH struct bk_buddy_node *bk_buddy_node(struct bk_buddy *b, size_t p)
{
    return &b->node[bk_buddy_slot(p)];
}

/* What bk_buddy_release gives back: free blocks of min_order..max_order
 * that hold dirty pages and were freed at least min_age before now.
 * release(ctx, first, npages) does the work; when it returns true the
 * block becomes clean (and zero too if `zeroes`), when false it stays
 * dirty.  With chunk_idle set, the blocks go chunk by chunk (2^min_order
 * pages, aligned) instead, each when chunk_idle(ctx, chunk index) says so,
 * whatever its block's time (now and min_age are then unused): a caller
 * that knows when each chunk was last allocated from or freed into
 * releases the idle part of a big block whose mean time a busy edge keeps
 * young. */
struct bk_buddy_release {
    unsigned min_order, max_order;
    uint32_t now, min_age;
    bool zeroes;
    bool (*release)(void *ctx, size_t first, size_t npages);
    bool (*chunk_idle)(void *ctx, size_t chunk);
    void *ctx;
};

/* All 2^max_order pages free, clean and zero.  `zeroed`: *b is known to
 * read as zeros (fresh metadata): head_order[] is then left untouched
 * rather than cleared, which keeps 8 KiB of a new region's header off the
 * process's resident memory (only the slots of free block heads are ever
 * written). */
BK_INTERNAL void bk_buddy_init(struct bk_buddy *b, unsigned max_order, bool zeroed);
/* Allocate npages pages aligned to align_pages (a power of two, relative to
 * the region start).  Returns the first page index, or -1.  *zeroed says
 * whether every allocated page was clean. */
BK_INTERNAL long bk_buddy_alloc(struct bk_buddy *b, size_t npages, size_t align_pages,
                                bool *zeroed);
/* Take exactly pages [first, first + npages) if all of them are free
 * (growing a block in place); false, changing nothing, if any is not.  The
 * parts of the free blocks around the range stay free, with their times. */
BK_INTERNAL bool bk_buddy_claim(struct bk_buddy *b, size_t first, size_t npages);
/* Free npages pages from page `first` at time `now` (they become dirty),
 * merging buddies. */
BK_INTERNAL void bk_buddy_free(struct bk_buddy *b, size_t first, size_t npages, uint32_t now);
/* The same for pages the caller has just given back to the kernel: they
 * become free and clean (and zero if `zeroes`), and do not count in the
 * merged block's free time. */
BK_INTERNAL void bk_buddy_free_released(struct bk_buddy *b, size_t first, size_t npages,
                                        uint32_t now, bool zeroes);
/* Can a block of at least 2^order pages be allocated? */
static inline bool bk_buddy_has(const struct bk_buddy *b, unsigned order)
{
    return (b->order_mask >> order) != 0;
}
/* Release what *req selects (see struct bk_buddy_release).  Returns the
 * number of dirty pages made clean. */
BK_INTERNAL size_t bk_buddy_release(struct bk_buddy *b, const struct bk_buddy_release *req);
/* Dirty pages in free blocks of at least 2^min_order pages. */
BK_INTERNAL size_t bk_buddy_dirty_in_blocks(const struct bk_buddy *b, unsigned min_order);
/* Is every page free? */
static inline bool bk_buddy_empty(const struct bk_buddy *b)
{
    return b->free_pages == (uint32_t)1 << b->max_order;
}
/* Is the block freed at `t` at least min_age old at `now`? */
static inline bool bk_buddy_old_enough(uint32_t t, uint32_t now, uint32_t min_age)
{
    return (int32_t)(now - t) >= (int32_t)min_age;
}
/* The shape of a heap's free space, chunk by chunk (2^chunk_order pages:
 * the page heap passes hugepages), for statistics. */
struct bk_buddy_census {
    uint32_t free_blocks;        /* blocks on the free lists */
    int largest_order;           /* of the largest free block; -1 when none */
    uint32_t chunks_free;        /* chunks entirely free */
    uint32_t chunks_free_dirty;  /* of those, chunks holding dirty pages */
    uint32_t chunks_partial;     /* chunks with both free and allocated pages */
};
/* chunk_order <= max_order, and at most 2^10 chunks. */
BK_INTERNAL void bk_buddy_census(const struct bk_buddy *b, unsigned chunk_order,
                                 struct bk_buddy_census *c);
/* The order of the free block starting at page p, or -1 (for tests). */
BK_INTERNAL int bk_buddy_free_order_at(const struct bk_buddy *b, size_t p);

#endif
