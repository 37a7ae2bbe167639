/* The metadata arena: memory for brisk's own bookkeeping (span descriptors,
 * region headers, thread caches, central-list stripes).
 *
 * A bump allocator over chunks taken from the OS layer, never from malloc,
 * and never returned: callers recycle what they free through free lists of
 * their own.  Keeping metadata out of the heap it describes means a buffer
 * overflow in program memory cannot reach it. */
#ifndef BRISK_META_H
#define BRISK_META_H

#include <stddef.h>
#include "../os/compiler.h"

/* Zeroed, aligned to `align` (a power of two, at most 4096: 8 for
 * descriptors, BK_CACHELINE for anything threads write concurrently); NULL
 * when the OS has no memory. */
BK_INTERNAL void *bk_meta_alloc(size_t size, size_t align);
BK_INTERNAL size_t bk_meta_bytes(void);
BK_INTERNAL void bk_meta_lock_all(void);
BK_INTERNAL void bk_meta_unlock_all(void);

#endif
