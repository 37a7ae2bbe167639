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
 *    sequence of whole batches, and the first object of each (32 bytes or
 *    more) holds the batch's last in word 2, so the cut is one load, not a
 *    walk under the lock through objects another core wrote (the 16-byte
 *    class walks).  Word 1 is never written, so free marks (free_mark.h)
 *    survive on the stripes.
 *    Each stripe holds at most `park_max` batches (size_class.c); a flush
 *    beyond that goes to the spans instead, so memory parked here stays
 *    bounded.  A refill whose own stripe is empty takes a batch from
 *    another stripe before it goes to the spans.  N is a power of two.  A
 *    stripe from which no batch was taken during a whole decay tick gives
 *    its batches back to their spans (bk_central_decay), so parked memory
 *    drains once the program stops using a class.
 *
 *  - spans: under the class lock, the spans of this class that have free
 *    objects (the partial list).  A span is carved lazily, 4 KiB (an OS
 *    page) at a time, when its free list runs empty: the objects that
 *    start in the piece go onto the free list in address order, each with
 *    its free mark, and only then does the piece get its class byte in the
 *    page map's window (one byte per 4 KiB; page_map.h).  So every object
 *    slot below s->carved is at all times either free and marked or handed
 *    out, and every slot above it was never handed out: free() of such a
 *    slot finds class 0 in the window and is rejected by the slow path
 *    (bk_central_owns).  A program that uses a few objects of a class
 *    touches the OS pages of those objects, not a whole span: a span of
 *    4 KiB objects is 64 KiB.  Objects go back onto the free list of the
 *    span the page map names, and a span whose objects are all back
 *    returns to the page heap at once.
 *
 * Locks: a class lock, then the page heap lock (and the metadata lock
 * under either); no path holds a stripe lock together with any other.
 * Fork takes every class lock, then every stripe lock. */
#ifndef BRISK_CENTRAL_LIST_H
#define BRISK_CENTRAL_LIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "../os/compiler.h"
#include "../page_heap/page_map.h"
#include "../page_heap/span.h"
#include "free_mark.h"
#include "size_class.h"

struct bk_central_stats {
    size_t spans;           /* spans of the class */
    size_t objects;         /* objects the spans can hold */
    size_t free_in_spans;   /* free objects on spans (including never used) */
    size_t in_stripes;      /* objects in batches on the stripes */
};

/* Whether a is an object of small span s that may have been handed out:
 * on an object boundary, below s->carved.  Read without the class lock
 * (s->carved only grows while the span lives). */
static inline bool bk_central_owns(const struct bk_span *s, uintptr_t a)
{
    return bk_on_object_boundary(s->cls, a) && a < bk_load_relaxed(&s->carved);
}

/* The class of a live object, told by the page map's window as free()'s
 * fast path tells it: a's slot holds a class (a carved piece of a small
 * span), a is on one of its object boundaries, and the block does not
 * carry its free mark.  0 when the window cannot tell (outside it, a large
 * block, not an object, or free): the caller then asks the span.  bk_tc_free
 * spells the same tests out inline: through this function its fast path
 * took 3 instructions more (the test of the returned class, and the mark
 * formed twice). */
BK_FAST_PATH unsigned bk_central_live_class(const void *ptr)
{
    uintptr_t a = (uintptr_t)ptr, w = bk_pm_window_index(a);
    if (w >= BK_PM_WINDOW_SLOTS)
        return 0;
    unsigned cls = bk_load_relaxed(&bk_pm_window[w]);
    return bk_on_object_boundary(cls, a) && !bk_has_free_mark(ptr) ? cls : 0;
}

BK_INTERNAL void bk_central_init(unsigned nstripes);
BK_INTERNAL unsigned bk_central_stripes(void);
/* Whether class cls has its stripes yet (made on its first whole batch). */
BK_INTERNAL bool bk_central_striped(unsigned cls);
/* Take objects of class cls as a NULL-terminated chain through word 0:
 * a whole parked batch when max is the class's batch and a stripe has one
 * (those objects are resident already), else up to `want` (<= max) from
 * the spans.  Returns how many (0 only when out of memory). */
BK_INTERNAL unsigned bk_central_take(unsigned cls, unsigned stripe, unsigned want, unsigned max,
                                     void **chain);
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
