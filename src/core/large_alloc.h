/* Large allocations: requests above the largest size class (or small
 * requests with an alignment no class provides) get a span of their own
 * from the page heap: a buddy block up to BK_LARGE_MAX, a mapping of its own
 * above.  No thread cache sits in front of them: at these sizes the page
 * heap lock is paid once per hundreds of KiB touched by the program. */
#ifndef BRISK_LARGE_ALLOC_H
#define BRISK_LARGE_ALLOC_H

#include <stdbool.h>
#include <stddef.h>
#include "../os/compiler.h"
#include "../page_heap/span.h"

/* size > 0, size <= PTRDIFF_MAX; align a power of two.  Zeroed if `zero`
 * (skipping the memset when the pages are known fresh).  NULL when out of
 * memory. */
BK_INTERNAL void *bk_large_alloc(size_t size, size_t align, bool zero);
BK_INTERNAL void bk_large_free(struct bk_span *s);
BK_INTERNAL size_t bk_large_usable(const struct bk_span *s);
/* Shrink in place when the new size needs fewer pages; false if the block
 * cannot hold new_size. */
BK_INTERNAL bool bk_large_resize_in_place(struct bk_span *s, size_t new_size);
/* Grow without copying when it can: a large block into the free pages
 * after it, a huge block by mremap (which may move it).  Returns the
 * block's (possibly new) address, or NULL when the caller must copy. */
BK_INTERNAL void *bk_large_grow(struct bk_span *s, size_t new_size);
BK_INTERNAL size_t bk_large_live_bytes(void);

#endif
