/* Bootstrap and fork handling for the core layers.
 *
 * Initialisation is lazy: the first allocation, from whatever thread and
 * however early (before any constructor has run), calls bk_core_init().  It
 * uses no malloc, so it cannot recurse: options come from the environment
 * block directly, tables and locks live in static storage or the metadata
 * arena.  The thread cache layer builds its own start-up on top of this.
 *
 * Fork: bk_core_fork_prepare takes every core lock in the global order
 * (init, decay, central stripes, central classes, page heap, metadata arena), so
 * that no other thread is inside the allocator when the process is copied;
 * bk_core_fork_parent and bk_core_fork_child release them (in the child
 * the forking thread, which holds them all, carries on alone). */
#ifndef BRISK_BOOTSTRAP_H
#define BRISK_BOOTSTRAP_H

#include <stdint.h>
#include "../os/compiler.h"
#include "free_mark.h"

extern BK_INTERNAL int bk_core_ready;

BK_INTERNAL void bk_core_init(void);
static inline void bk_core_ensure(void)
{
    if (bk_unlikely(!bk_load_acquire(&bk_core_ready)))
        bk_core_init();
}

BK_INTERNAL void bk_core_fork_prepare(void);
BK_INTERNAL void bk_core_fork_parent(void);
BK_INTERNAL void bk_core_fork_child(void);

#endif
