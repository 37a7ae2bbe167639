/* Thread caches: per-thread free lists per size class, and the fast paths.
 *
 * Each thread has one initial-exec TLS word, bk_tc, pointing at its cache.
 * A thread that has none yet points at bk_tc_empty, and a thread whose exit
 * destructor has run points at bk_tc_dead: both are static caches whose
 * lists are all empty and whose room is all zero, so they fail the fast
 * paths' single miss test and send the thread to the slow path, which tells
 * the two apart.  The fast paths therefore never test for "no cache".
 *
 * Per class c a cache holds head[c], a singly linked list through word 0 of
 * each free block, and room[c], how many more blocks the list may take
 * before it must flush (its capacity cap[c] minus its length).  Capacities
 * start at 0, grow by one central batch whenever a list runs empty or full,
 * up to the class's cache_max, and their sum in bytes stays within the
 * thread's budget (option tcache_max_bytes): to grow past it a list takes
 * capacity from another (round robin), flushing what no longer fits.
 *
 * Trimming.  On its slow paths a cache notices each decay tick (a new
 * bk_decay_epoch, core/decay.h) and flushes half the blocks of every list
 * that went neither to the central lists nor to them since the previous
 * tick: blocks a thread stopped using drain away geometrically, while
 * lists in use keep theirs.  The fast paths pay nothing for this; a thread
 * that makes no slow-path call at all (idle, or running entirely from its
 * cache) keeps its blocks, at most tcache_max_bytes, until it does or exits.
 *
 * Double frees are caught with the free mark (core/free_mark.h). */
#ifndef BRISK_THREAD_CACHE_H
#define BRISK_THREAD_CACHE_H

#include <stdint.h>
#include "../../include/brisk.h"
#include "../core/bootstrap.h"
#include "../core/free_mark.h"
#include "../core/size_class.h"
#include "../os/compiler.h"
#include "../page_heap/page_map.h"

struct bk_tcache {
    void *head[BK_NUM_CLASSES];       /* hot: read by every malloc/free; */
    uint32_t room[BK_NUM_CLASSES];    /* head first, at offset 0, saves an add */
    uint32_t cap[BK_NUM_CLASSES];     /* cold: slow paths and statistics */
    size_t cap_bytes;
    size_t budget;
    unsigned stripe;
    unsigned victim;
    uint32_t trim_epoch;              /* bk_decay_epoch at the last trim */
    uint8_t fills[BK_NUM_CLASSES];    /* refills so far, up to the slow start's end */
    uint64_t used[2];                 /* classes refilled or flushed since */
    int tid, pid;                     /* owner's kernel thread and process */
    struct bk_tcache *next, *prev;    /* registry of live caches */
};

extern BK_INTERNAL __thread struct bk_tcache *bk_tc __attribute__((tls_model("initial-exec")));

BK_INTERNAL BK_SLOW_PATH void *bk_tc_malloc_slow(size_t size);
BK_INTERNAL BK_SLOW_PATH void bk_tc_free_slow(void *ptr);
/* Small-object allocation for an explicit class (aligned allocations). */
BK_INTERNAL void *bk_tc_malloc_class(unsigned cls);
/* Flush the calling thread's cache to the central lists (malloc_trim). */
BK_INTERNAL void bk_tc_flush_self(void);
/* Make sure brisk is initialised (core and thread-cache layers). */
BK_INTERNAL void bk_tc_ensure_init(void);
/* Add the thread caches' contents to statistics the core filled. */
BK_INTERNAL void bk_tc_stats_add(struct brisk_stats *st);

/* malloc fast path, 17 instructions in libbrisk.so (gcc 12 -O2, counted
 * with callgrind): the TLS load (two, through the GOT, in a shared
 * library), the class lookup (a shift and a load), and a list pop that
 * prefetches the next block and clears the free mark.  Everything unusual
 * (large sizes, an empty list, no cache yet) takes the one miss branch to
 * the slow path. */
BK_FAST_PATH void *bk_tc_malloc(size_t size)
{
    struct bk_tcache *tc = bk_tc;
    if (bk_likely(size <= BK_SMALL_MAX)) {
        unsigned cls = bk_size_to_class(size);
        void **p = tc->head[cls];
        if (bk_likely(p != NULL)) {
            /* The next malloc of this class reads its block's word 0:
             * start fetching it now rather than stall on it then. */
            __builtin_prefetch(p[0], 1, 3);
            tc->head[cls] = p[0];
            tc->room[cls]++;
            p[1] = NULL;
            return p;
        }
    }
    return bk_tc_malloc_slow(size);
}

/* free fast path, 28 instructions in libbrisk.so (gcc 12 -O2, counted with
 * callgrind): 7 read the class from the page map's window, 6 validate the
 * pointer, 4 check the free mark, 2 load the cache pointer, 4 check the
 * room and 5 push the block.  The class byte is 0 outside the window, for
 * NULL and foreign pointers, large blocks and 4 KiB pieces not carved yet.
 * Then come the tests: the pointer sits on an object boundary of a small
 * span (class 0 fails this test), it does not carry its own free mark
 * already, and the list has room.  Anything else goes to the slow path,
 * which either handles it or reports it. */
BK_FAST_PATH void bk_tc_free(void *ptr)
{
    uintptr_t a = (uintptr_t)ptr;
    uintptr_t w = bk_pm_window_index(a);
    if (bk_likely(w < BK_PM_WINDOW_SLOTS)) {
        unsigned cls = bk_load_relaxed(&bk_pm_window[w]);
        if (bk_likely(bk_on_object_boundary(cls, a))) {
            void **p = ptr;
            uintptr_t mark = bk_free_mark(a);
            struct bk_tcache *tc = bk_tc;
            uint32_t *room = &tc->room[cls], left;
            if (bk_likely((uintptr_t)p[1] != mark &&
                          !__builtin_sub_overflow(*room, 1u, &left))) {
                p[0] = tc->head[cls];
                p[1] = (void *)mark;
                tc->head[cls] = p;
                *room = left;
                return;
            }
        }
    }
    bk_tc_free_slow(ptr);
}

#endif
