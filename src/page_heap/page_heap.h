/* The page heap: spans of pages carved from hugepage-aligned regions.
 *
 * All state is guarded by one lock, taken only when a central list needs a
 * new span, a span becomes free, or a large block is allocated or freed.
 * Lock order: central list locks -> page heap lock -> metadata arena lock.
 *
 * Placement.  Small spans (of a size class) and large spans live in
 * regions of their own kind; an empty region takes either kind.  Mixed, a
 * churning heap scatters small spans between the pages of freed large
 * blocks, and the large requests then find no free block big enough and
 * take fresh pages: segregated, the churn workload at 200 MiB runs 1.5x
 * faster with more of its heap in hugepages.  Within its kind, a new span
 * goes to the region whose smallest fitting free block is smallest (best
 * fit; the oldest region on ties), and inside it to that block.  A free block smaller than a hugepage (2 MiB) lies in a
 * hugepage that is partly in use, so spans fill partly used hugepages
 * first and free hugepages stay whole: whole for the kernel to back with a
 * transparent hugepage (regions get MADV_HUGEPAGE when the kernel's THP
 * mode asks for it, option thp, once the heap holds more than 16 MiB, so
 * that small programs stay small) and whole to give back.
 *
 * Memory return (decay).  Freed spans merge in the buddy heap, stamped with
 * the time they were freed.  bk_ph_decay(), called from the core's decay
 * tick, gives back to the kernel
 *   - every free hugepage that no span has been taken from or freed into
 *     for decay_ms (whole hugepages: no transparent hugepage is split).
 *     Each region keeps that time per hugepage: a block's own time, the
 *     mean of its parts', would keep a big free block resident as long as
 *     spans come and go at one edge of it;
 *   - under pressure, when the dirty pages in smaller free blocks (pieces
 *     of partly used hugepages) exceed half of dirty_max, those pieces
 *     too, once they are decay_ms old;
 *   - regions that have been entirely free for decay_ms are unmapped
 *     (unless option retain), keeping one empty region mapped.
 * Ticks only come while the program calls the allocator (or with the
 * background thread), so a cap bounds what waits for them: when more than
 * dirty_max bytes sit free and dirty, the free that passes the cap gives
 * back whole free hugepages at once, the oldest first, down to half the
 * cap (and if that is not enough, pieces of partly used hugepages too).  A program that frees most of a large heap and goes quiet is left
 * with at most dirty_max resident beyond its live memory, while one that
 * frees and reuses blocks of up to dirty_max never has them released.
 * Memory about to be reused is therefore never released: a block freed and
 * taken again within decay_ms is never touched by madvise.  decay_ms == 0
 * releases hugepage-sized free blocks at once, on the free.  Released pages
 * are remembered as clean (and zero, with MADV_DONTNEED), so a calloc that
 * gets them skips its memset.  bk_ph_release_all() (malloc_trim) gives back
 * every free page, whatever its size or age, and unmaps every empty region
 * (unless retain). */
#ifndef BRISK_PAGE_HEAP_H
#define BRISK_PAGE_HEAP_H

#include <stdbool.h>
#include "../os/compiler.h"
#include "buddy.h"
#include "span.h"

#define BK_REGION_CHUNKS (BK_REGION_PAGES >> BK_HUGEPAGE_ORDER)   /* hugepages */

struct bk_region {
    uintptr_t base;
    struct bk_region *next;
    bool large;                 /* holds large spans (else small ones) */
    /* When a span was last taken from or freed into each hugepage (the
     * page heap's clock): decay gives back the free hugepages idle for
     * decay_ms, whatever the time of the block they are in. */
    uint32_t chunk_used[BK_REGION_CHUNKS];
    struct bk_buddy buddy;
};

struct bk_ph_stats {
    size_t mapped;        /* region and huge mappings */
    size_t active;        /* bytes in allocated spans */
    size_t dirty_free;    /* free bytes still resident */
    size_t clean_free;    /* free bytes given back to the kernel */
    size_t huge;          /* bytes in huge mappings */
    size_t regions;
    size_t regions_unmapped;  /* empty regions given back so far */
    size_t released_total;    /* bytes given back with madvise so far */
    size_t metadata;      /* page map leaves mapped (region headers and span
                             descriptors are in the metadata arena, which
                             bk_meta_bytes counts) */
};

#define BK_DECAY_NEVER UINT32_MAX

struct bk_ph_config {
    size_t dirty_max;         /* cap on free dirty bytes (see above) */
    uint32_t decay_ms;        /* BK_DECAY_NEVER: no release by age */
    bool lazy_release;        /* MADV_FREE instead of MADV_DONTNEED */
    bool retain;              /* keep empty regions mapped */
    enum { BK_PH_THP_AUTO, BK_PH_THP_ALWAYS, BK_PH_THP_NEVER } thp;
};

BK_INTERNAL void bk_ph_configure(const struct bk_ph_config *cfg);
/* The clock decay reads (milliseconds); tests inject their own. */
BK_INTERNAL void bk_ph_set_clock(uint64_t (*now_ms)(void));
/* A span of npages pages aligned to align_pages pages.  cls != 0 makes a
 * small span (every page mapped to it, with class 0 until its owner carves
 * the page: bk_pm_set_class); cls == 0 a large span (first page mapped,
 * class 0).  NULL when out of memory. */
BK_INTERNAL struct bk_span *bk_ph_alloc_span(size_t npages, size_t align_pages, unsigned cls);
/* A span with its own mapping of `bytes` (a multiple of the page size),
 * aligned to `align`. */
BK_INTERNAL struct bk_span *bk_ph_alloc_huge(size_t bytes, size_t align);
BK_INTERNAL void bk_ph_free_span(struct bk_span *s);
/* The same, giving the span's pages back to the kernel at once (a large
 * block the core releases on its free: see decay.h); huge spans are
 * unmapped either way. */
BK_INTERNAL void bk_ph_free_span_released(struct bk_span *s);
/* Give back the whole OS pages inside [start, start + len), a free object
 * of a small span that stays allocated to its span (its first words, the
 * link and the free mark, must stay: start is past them).  The page heap
 * does not track them: the span's pages count as in use until it is
 * freed, and as dirty then.  A refused release leaves them resident. */
BK_INTERNAL void bk_ph_release_inside(uintptr_t start, size_t len);
/* Grow a large span in place to new_npages when the pages after it are
 * free; false (nothing changed) when they are not. */
BK_INTERNAL bool bk_ph_grow_span(struct bk_span *s, size_t new_npages);
/* Resize a huge span's mapping to new_bytes (a multiple of the page size),
 * moving it if the kernel must: the span's start may change.  False (and
 * the span unchanged) when the kernel cannot. */
BK_INTERNAL bool bk_ph_remap_huge(struct bk_span *s, size_t new_bytes);
/* Give a large span's pages beyond new_npages back to the buddy heap. */
BK_INTERNAL void bk_ph_shrink_span(struct bk_span *s, size_t new_npages);
/* One decay step (see above); returns the bytes released. */
BK_INTERNAL size_t bk_ph_decay(void);
/* Release every free dirty page to the kernel and unmap empty regions
 * (unless retain), all of them or, with keep_region, all but one (as decay
 * keeps one); returns bytes released. */
BK_INTERNAL size_t bk_ph_release_all(bool keep_region);
BK_INTERNAL void bk_ph_get_stats(struct bk_ph_stats *st);

/* One region, as statistics print it: where its free space is, and how
 * much of it is whole hugepages (what decay can give back whole) rather
 * than pieces of hugepages partly in use. */
struct bk_ph_region_info {
    uintptr_t base;
    bool large;                   /* holds large blocks (else small spans) */
    size_t free_bytes, dirty_bytes;
    size_t largest_free;          /* bytes in its largest free block */
    uint32_t free_blocks;
    uint32_t hugepages;           /* in the region */
    uint32_t hugepages_free;      /* entirely free */
    uint32_t hugepages_free_dirty;/* of those, holding dirty pages */
    uint32_t hugepages_partial;   /* partly in use */
};
/* Fills out[] with up to max regions, oldest first; returns how many
 * regions there are. */
BK_INTERNAL size_t bk_ph_region_info(struct bk_ph_region_info *out, size_t max);

BK_INTERNAL void bk_ph_lock(void);
BK_INTERNAL void bk_ph_unlock(void);

#endif
