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

/* Zeroed, 64-byte aligned; NULL when the OS has no memory. */
BK_INTERNAL void *bk_meta_alloc(size_t size);
BK_INTERNAL size_t bk_meta_bytes(void);
BK_INTERNAL void bk_meta_lock_all(void);
BK_INTERNAL void bk_meta_unlock_all(void);
BK_INTERNAL void bk_meta_reinit_child(void);

#endif
