/* Spans: runs of pages handed out by the page heap, and their descriptors.
 *
 * Layout constants.  brisk's page is 8 KiB.  Memory comes from the OS in
 * regions of 64 MiB aligned to 64 MiB (so a buddy block of 2^k pages is
 * naturally aligned to 2^k pages in absolute addresses, and every region is
 * made of whole 2 MiB hugepages).  Requests above BK_LARGE_MAX get a mapping
 * of their own ("huge" spans).
 *
 * A descriptor lives out of band (page_heap.c takes it from the metadata
 * arena, never from malloc), so no overflow of program memory can reach it. */
#ifndef BRISK_SPAN_H
#define BRISK_SPAN_H

#include <stddef.h>
#include <stdint.h>

#define BK_PAGE_SHIFT    13
#define BK_PAGE_SIZE     ((size_t)1 << BK_PAGE_SHIFT)
#define BK_REGION_SHIFT  26
#define BK_REGION_SIZE   ((size_t)1 << BK_REGION_SHIFT)
#define BK_REGION_ORDER  (BK_REGION_SHIFT - BK_PAGE_SHIFT)      /* 13 */
#define BK_REGION_PAGES  ((size_t)1 << BK_REGION_ORDER)          /* 8192 */
#define BK_HUGEPAGE_ORDER (21 - BK_PAGE_SHIFT)                    /* 8 */
#define BK_LARGE_MAX     (BK_REGION_SIZE / 2)                     /* 32 MiB */

enum bk_span_kind {
    BK_SPAN_SMALL = 1,   /* carved into objects of one size class */
    BK_SPAN_LARGE = 2,   /* one block from a region's buddy heap */
    BK_SPAN_HUGE = 3,    /* one block with a mapping of its own */
};

struct bk_region;

struct bk_span {
    uintptr_t start;            /* first byte */
    size_t npages;              /* length in pages */
    struct bk_region *region;   /* owning region; NULL for huge spans */
    uint8_t kind;               /* enum bk_span_kind */
    uint8_t cls;                /* size class for small spans, else 0 */
    uint8_t zeroed;             /* every byte known zero when handed out */
    uint8_t in_partial;         /* on its central list's partial list */

    /* Small spans: owned by the central list of `cls`, under its lock. */
    uint32_t used;              /* objects out of the span (caches + program) */
    void *freelist;             /* free objects, linked through word 0 */
    uintptr_t carved;           /* objects starting below this 4 KiB boundary
                                   have been carved; grows; written under the
                                   class lock, read by free's slow path */
    struct bk_span *prev, *next;

    /* Large and huge spans: bytes the program asked for (for statistics). */
    size_t requested;
};

#endif
