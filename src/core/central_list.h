/* Central free lists: one per size class, between the thread caches and the
 * page heap.
 *
 * Each class has two levels:
 *
 *  - stripes: N lock stripes (N derived from the CPUs the process may use),
 *    each a lock-free stack (liburcu's lfstack, inlined) of free objects
 *    linked through word 0, the same link the thread caches use.  A flush
 *    pushes a whole pre-linked batch with one compare-and-swap and no lock:
 *    its last object is pointed at the old top, its first becomes the new
 *    top (a chain push in the lfstack's own layout, with its atomics).  A
 *    refill takes everything with __cds_lfs_pop_all under the stripe's lock
 *    (which only refills of that stripe contend on), keeps it, and cuts one
 *    batch off.  Flushes push exactly `batch` objects, so the stack is a
 *    sequence of whole batches.  No word but word 0 is ever written, so
 *    free marks (free_mark.h) survive on the stripes.
 *    Each stripe holds at most `max_batches` batches; a flush beyond that
 *    goes to the spans instead, so memory parked here stays bounded.  A
 *    refill whose own stripe is empty takes a batch from another stripe
 *    before it goes to the spans.  N is a power of two.  A stripe from
 *    which no batch was taken during a whole decay tick gives its batches
 *    back to their spans (bk_central_decay), so parked memory drains once
 *    the program stops using a class.
 *
 *  - spans: under the class lock, the spans of this class that have free
 *    objects (the partial list).  A new span is carved at once into a free
 *    list of all its objects in address order, each with its free mark, so
 *    that every object slot is at all times either free and marked or
 *    handed out.  Objects go back onto the free list of the span the page
 *    map names, and a span whose objects are all back returns to the page
 *    heap at once.
 *
 * Lock order: stripe lock, then class lock, then page heap lock. */
#ifndef BRISK_CENTRAL_LIST_H
#define BRISK_CENTRAL_LIST_H

#include <stddef.h>
#include <stdint.h>
#include "../os/compiler.h"

struct bk_central_stats {
    size_t spans;           /* spans of the class */
    size_t objects;         /* objects the spans can hold */
    size_t free_in_spans;   /* free objects on spans (including never used) */
    size_t in_stripes;      /* objects in batches on the stripes */
};

BK_INTERNAL void bk_central_init(unsigned nstripes);
BK_INTERNAL unsigned bk_central_stripes(void);
/* Take up to `want` objects of class cls as a NULL-terminated chain through
 * word 0; returns how many (0 only when out of memory). */
BK_INTERNAL unsigned bk_central_take(unsigned cls, unsigned stripe, unsigned want, void **chain);
/* Give back n objects chained through word 0 from first to last (whose
 * word 0 is NULL). */
BK_INTERNAL void bk_central_give(unsigned cls, unsigned stripe, void *first, void *last,
                                 unsigned n);
/* Give back a chain straight to its spans, parking nothing (a thread's
 * cache at exit: its blocks have no next user in sight). */
BK_INTERNAL void bk_central_return(unsigned cls, void *chain);
/* Move every batch parked on the stripes back to its spans (malloc_trim). */
BK_INTERNAL void bk_central_drain(void);
/* Decay tick: move the batches of stripes that were idle since the last
 * tick back to their spans.  Called with the decay lock held. */
BK_INTERNAL void bk_central_decay(void);
BK_INTERNAL void bk_central_get_stats(unsigned cls, struct bk_central_stats *st);

BK_INTERNAL void bk_central_lock_all(void);
BK_INTERNAL void bk_central_unlock_all(void);

#endif
