/* The page heap: spans of pages carved from hugepage-aligned regions.
 *
 * All state is guarded by one lock, taken only when a central list needs a
 * new span, a span becomes free, or a large block is allocated or freed.
 * Lock order: central list locks -> page heap lock -> metadata arena lock.
 *
 * Memory return.  Freed spans merge in the buddy heap; when the free but
 * dirty (touched) pages of all regions exceed `dirty_max` bytes, every free
 * block of at least a hugepage (2 MiB) is given back to the kernel with
 * MADV_DONTNEED and remembered as clean, so its next user gets zeroed pages
 * without a memset.  bk_ph_release_all() (malloc_trim) gives back every free
 * page at once. */
#ifndef BRISK_PAGE_HEAP_H
#define BRISK_PAGE_HEAP_H

#include <stdbool.h>
#include "../os/compiler.h"
#include "buddy.h"
#include "span.h"

struct bk_region {
    uintptr_t base;
    struct bk_region *next;
    struct bk_buddy buddy;
};

struct bk_ph_stats {
    size_t mapped;        /* region and huge mappings */
    size_t active;        /* bytes in allocated spans */
    size_t dirty_free;    /* free bytes still resident */
    size_t clean_free;    /* free bytes given back to the kernel */
    size_t huge;          /* bytes in huge mappings */
    size_t regions;
    size_t metadata;      /* region headers, span descriptors, page map */
};

BK_INTERNAL void bk_ph_configure(size_t dirty_max_bytes);
/* A span of npages pages aligned to align_pages pages.  cls != 0 makes a
 * small span (every page mapped to it and to its class); cls == 0 a large
 * span (first page mapped, class 0).  NULL when out of memory. */
BK_INTERNAL struct bk_span *bk_ph_alloc_span(size_t npages, size_t align_pages, unsigned cls);
/* A span with its own mapping of `bytes` (a multiple of the page size),
 * aligned to `align`. */
BK_INTERNAL struct bk_span *bk_ph_alloc_huge(size_t bytes, size_t align);
BK_INTERNAL void bk_ph_free_span(struct bk_span *s);
/* Give a large span's pages beyond new_npages back to the buddy heap. */
BK_INTERNAL void bk_ph_shrink_span(struct bk_span *s, size_t new_npages);
/* Release every free dirty page to the kernel; returns bytes released. */
BK_INTERNAL size_t bk_ph_release_all(void);
BK_INTERNAL void bk_ph_get_stats(struct bk_ph_stats *st);

BK_INTERNAL void bk_ph_lock(void);
BK_INTERNAL void bk_ph_unlock(void);

#endif
