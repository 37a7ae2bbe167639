/* Thread caches: per-thread free lists per size class, and the fast paths.
 *
 * A cache has two halves.  Its lists, bk_tc_lists, are initial-exec TLS
 * (976 bytes per thread): per class c, head[c], a singly linked list
 * through word 0 of each free block, and room[c], how many more blocks the
 * list may take before it must flush (its capacity cap[c] minus its
 * length).  The fast paths touch nothing else, and reach both arrays from
 * the thread pointer with one load of the TLS offset: no cache pointer to
 * follow, no "has this thread a cache?" test.  A thread without a cache
 * (none made yet, or destroyed at its exit) has empty lists and no room,
 * so it fails the fast paths' single miss test and goes to the slow path,
 * which tells the cases apart.
 *
 * The cold half, struct bk_tcache (capacities, budget, stripe, slow-start
 * and trim state, registry links), lives in metadata and is reached
 * through bk_tc: NULL until the thread's cache is made (on its first slow
 * path, once brisk is initialised and caches are enabled), bk_tc_dead
 * after its exit destructor ran.  Capacities start at 0, grow by one
 * central batch whenever a list runs empty or full, up to the class's
 * cache_max (at most 1024, so room fits 16 bits), and their sum in bytes
 * stays within the thread's budget (option tcache_max_bytes): to grow past
 * it a list takes capacity from another (round robin), flushing what no
 * longer fits.
 *
 * free's room test decrements room[c] in memory and branches on the
 * borrow: a list that had no room is left at 0xffff for an instant, and
 * the miss branch puts it back before the slow path runs.  Only the owning
 * thread writes its lists; statistics read other threads' (thread_cache.c).
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

#include <stdbool.h>
#include <stdint.h>
#include "../../include/brisk.h"
#include "../core/bootstrap.h"
#include "../core/free_mark.h"
#include "../core/size_class.h"
#include "../os/compiler.h"
#include "../page_heap/page_map.h"

struct bk_tc_lists {
    void *head[BK_NUM_CLASSES];       /* first, at offset 0: indexing it needs no add */
    uint16_t room[BK_NUM_CLASSES];
};

struct bk_tcache {
    uint32_t cap[BK_NUM_CLASSES];
    size_t cap_bytes;
    size_t budget;
    unsigned stripe;
    unsigned victim;
    uint32_t trim_epoch;              /* bk_decay_epoch at the last trim */
    uint8_t fills[BK_NUM_CLASSES];    /* refills so far, up to the slow start's end */
    uint64_t used[2];                 /* classes refilled or flushed since */
    int tid, pid;                     /* owner's kernel thread and process */
    struct bk_tc_lists *lists;        /* the owner's bk_tc_lists (for statistics) */
    struct bk_tcache *next, *prev;    /* registry of live caches */
};

extern BK_INTERNAL __thread struct bk_tc_lists bk_tc_lists __attribute__((tls_model("initial-exec")));
extern BK_INTERNAL __thread struct bk_tcache *bk_tc __attribute__((tls_model("initial-exec")));

BK_INTERNAL BK_SLOW_PATH void *bk_tc_malloc_slow(size_t size);
BK_INTERNAL BK_SLOW_PATH void bk_tc_free_slow(void *ptr);
/* Small-object allocation for an explicit class (aligned allocations). */
BK_INTERNAL void *bk_tc_malloc_class(unsigned cls);
/* Flush the calling thread's cache, drain the central lists and give every
 * free page back to the kernel (malloc_trim; keep_region: see
 * bk_decay_release_all); the bytes released. */
BK_INTERNAL size_t bk_tc_release_memory(bool keep_region);
/* Make sure brisk is initialised (core and thread-cache layers). */
BK_INTERNAL void bk_tc_ensure_init(void);
/* Add the thread caches' contents to statistics the core filled. */
BK_INTERNAL void bk_tc_stats_add(struct brisk_stats *st);

/* room[cls]-- in memory; true when it borrowed (the list had no room).
 * On x86-64 this is one subtract-and-branch on the TLS word: gcc 12 gives
 * a load, a subtraction, a store and a test for any C spelling of it. */
BK_FAST_PATH bool bk_tc_take_room(unsigned cls)
{
#if defined(__x86_64__) && defined(__GNUC__)
    __asm__ goto("subw $1, %0\n\tjb %l[borrow]"
                 : : "m"(bk_tc_lists.room[cls]) : "memory", "cc" : borrow);
    return false;
borrow:
    return true;
#else
    return __builtin_sub_overflow(bk_tc_lists.room[cls], 1, &bk_tc_lists.room[cls]);
#endif
}

/* Take p, the head of list cls, off the list.  A thread whose list is not
 * empty has a cache (a thread without one has empty lists), so no other
 * test is needed. */
BK_FAST_PATH void *bk_tc_pop(unsigned cls, void **p)
{
    /* The next malloc of this class reads its block's word 0: start
     * fetching it now rather than stall on it then. */
    __builtin_prefetch(p[0], 1, 3);
    bk_tc_lists.head[cls] = p[0];
    bk_tc_lists.room[cls]++;
    p[1] = NULL;
    return p;
}

/* malloc fast path, 16 instructions in libbrisk.so (gcc 12 -O2, counted
 * with callgrind, `ret` included): the TLS offset from the GOT, the class lookup (a shift
 * and a load), and a list pop that prefetches the next block and clears
 * the free mark.  Everything unusual (sizes past the lookup table, an empty
 * list, no cache yet) takes the one miss branch to the slow path, which
 * serves small sizes above BK_LOOKUP_MAX from the same lists. */
BK_FAST_PATH void *bk_tc_malloc(size_t size)
{
    if (bk_likely(size <= BK_LOOKUP_MAX)) {
        unsigned cls = bk_size_to_class_lookup(size);
        void **p = bk_tc_lists.head[cls];
        if (bk_likely(p != NULL))
            return bk_tc_pop(cls, p);
    }
    return bk_tc_malloc_slow(size);
}

/* free fast path, 23 instructions in libbrisk.so (gcc 12 -O2, counted with
 * callgrind, `ret` included): 7 read the class from the page map's window,
 * 5 validate the pointer (the class words share the window's base), 3
 * check the free mark, 3 take room (the TLS offset, a decrement in memory,
 * its borrow test) and 4 push the block and mark it.  The class byte is 0
 * outside the window, for NULL and foreign pointers, large blocks and
 * 4 KiB pieces not carved yet.  Then come the tests: the pointer sits on
 * an object boundary of a small span (class 0 fails this test), it does
 * not carry its own free mark already, and the list has room.  Anything
 * else goes to the slow path, which either handles it or reports it. */
BK_FAST_PATH void bk_tc_free(void *ptr)
{
    uintptr_t a = (uintptr_t)ptr;
    uintptr_t w = bk_pm_window_index(a);
    if (bk_likely(w < BK_PM_WINDOW_SLOTS)) {
        unsigned cls = bk_load_relaxed(&bk_pm_window[w]);
        if (bk_likely(bk_on_object_boundary(cls, a))) {
            void **p = ptr;
            uintptr_t mark = bk_free_mark(a);
            if (bk_likely((uintptr_t)p[1] != mark)) {
                if (bk_unlikely(bk_tc_take_room(cls))) {
                    bk_tc_lists.room[cls]++;      /* back to 0: the list is full */
                } else {
                    p[0] = bk_tc_lists.head[cls];
                    p[1] = (void *)mark;
                    bk_tc_lists.head[cls] = p;
                    return;
                }
            }
        }
    }
    bk_tc_free_slow(ptr);
}

#endif
