/* Decay: the clock that gives free memory back over time.
 *
 * brisk runs no thread of its own by default.  Instead, allocator slow
 * paths (a thread cache refill or flush, a large allocation or free) call
 * bk_decay_maybe(), which reads a coarse clock and, once a tick is due,
 * lets one thread run the tick while the others go on (a trylock, so no
 * slow path ever waits for it).  A tick
 *   - advances bk_decay_epoch, which thread caches compare on their own
 *     slow paths to trim lists they have not used since their last trim;
 *   - drains central stripes that were idle for a whole tick;
 *   - runs the page heap's decay step (old free hugepages, pressure,
 *     empty regions).
 * Ticks come every decay_ms / 4 (10 ms to 1 s), so a free block goes back
 * between decay_ms and 1.25 x decay_ms after it was freed.  The cost per
 * tick is one pass over the size classes and one over the regions.
 *
 * A program that goes idle makes no slow-path calls: with the option
 * background_thread a detached thread (started on the first tick, again
 * in a fork child) runs the ticks on a timer instead.
 *
 * Lock order: the decay lock comes before every central and page heap
 * lock. */
#ifndef BRISK_DECAY_H
#define BRISK_DECAY_H

#include <stdbool.h>
#include <stdint.h>
#include "../os/compiler.h"

extern BK_INTERNAL uint32_t bk_decay_epoch;

/* Read the decay options and configure the page heap (core start-up). */
BK_INTERNAL void bk_decay_init(void);
/* Is memory given back by age at all (decay_ms != never)? */
BK_INTERNAL bool bk_decay_enabled(void);
/* Slow paths: run a tick if one is due and no other thread is running it. */
BK_INTERNAL void bk_decay_maybe(void);
/* Run one tick now, waiting for a running one (tests, background thread). */
BK_INTERNAL void bk_decay_tick(void);

BK_INTERNAL void bk_decay_fork_prepare(void);
BK_INTERNAL void bk_decay_fork_parent(void);
BK_INTERNAL void bk_decay_fork_child(void);

#endif
