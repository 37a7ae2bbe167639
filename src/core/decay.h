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
 * The release threshold.  A program that goes idle makes no slow-path
 * calls, so no tick gives back what it freed last: a database's background
 * process that sorted something once, a server between bursts.  glibc
 * returns such blocks: it maps blocks above its mmap threshold (128 KiB)
 * and unmaps them on free, raising the threshold to the size of each one
 * freed, so that a program reusing blocks of a size stops paying.  brisk
 * does the same for blocks of up to a hugepage: one freed that is bigger
 * than the threshold (128 KiB at start-up; afterwards the largest block
 * released this way so far) goes back to the kernel on the free, and the
 * threshold rises to its size.  A large block is freed into the page heap
 * as clean (and zero with madvise=dontneed, so a calloc that gets it skips
 * its memset).  An object of a small class (above 128 KiB) keeps its first
 * OS page, which holds its link and free mark, and gives back the rest;
 * only a free that reaches the thread cache's slow path does this (the
 * first free of a class usually does, as its list has no room yet, but
 * once a thread holds two of its objects at a time the list has room and
 * frees stay on the fast path).  Each new record size costs one release
 * and one re-fault, a handful over a program's life; a release inside a
 * transparent hugepage splits it.
 *
 * Up to a hugepage only: a free block that small lies in a partly used
 * hugepage, which decay never releases by age (whole free hugepages go by
 * age, pieces only under pressure), while bigger blocks become whole free
 * hugepages that decay returns; and a program that reuses blocks of 5-25
 * MiB would pay re-faults of up to 25 MiB each (the reuse workload ran 3x
 * slower at scale short without the cap).  Off with decay_ms=never
 * (memory goes back only on pressure or malloc_trim).
 *
 * Fork.  A child inherits its parent's free memory: the forking thread's
 * cache, the central lists, the dirty free pages.  All of it counts in the
 * child's RSS as well as the parent's, and the first write by either side
 * to a page of it copies the page.  So, with fork_release (the default;
 * off with decay_ms=never too), the forking thread gives memory back just
 * before the fork, as malloc_trim would: it flushes its own cache, drains
 * every stripe, the page heap releases every free page, and empty regions
 * but one are unmapped (the prepare handler, before it takes the locks).
 * Still inherited: other threads' caches, free objects in spans that also
 * hold live ones, and whatever was freed since the last release.  At most
 * once per tick interval (bk_decay_fork_release_due; a child inherits the
 * interval), so a program that forks in a loop while reusing its free
 * memory does not re-fault all of it after every fork.  The cost is that
 * of malloc_trim: in proportion to the calling thread's cache, the parked
 * batches, the free pages and the regions, beside a fork that copies the
 * page tables of the whole heap.  PostgreSQL's postmaster, which forks
 * every server process, had 140 KiB more heap resident than under glibc,
 * objects freed during start-up and still in its thread cache and the
 * central lists; after this change its heap is the size of glibc's, and
 * every child starts from it.  vfork, posix_spawn (and so system and
 * popen) and _Fork run no fork handlers, and so no release.  A program
 * that calls fork() from a signal handler that may have interrupted malloc
 * or free in the same thread (undefined already: fork is not
 * async-signal-safe in glibc, nor since POSIX.1-2024; _Fork is) could have
 * its cache flushed mid-update; such a program sets fork_release=0.
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

#define BK_RELEASE_THRESHOLD_START ((size_t)128 << 10)
#define BK_RELEASE_THRESHOLD_MAX   ((size_t)1 << 21)      /* a hugepage */
/* A block of `bytes` is being freed: true if it goes back to the kernel
 * now (bigger than the release threshold, which rises to `bytes`). */
BK_INTERNAL bool bk_decay_release_on_free(size_t bytes);
/* An object of a small class of `size` bytes is being freed: past the
 * threshold, give back its OS pages but the first. */
BK_INTERNAL void bk_decay_free_object(void *block, size_t size);
/* The threshold now (statistics, tests); bk_decay_init resets it. */
BK_INTERNAL size_t bk_decay_release_threshold(void);

/* Drain every central stripe and give every free page back, unmapping
 * empty regions but one if keep_region (a fork that
 * bk_decay_fork_release_due allows) or all of them (malloc_trim); the
 * bytes released. */
BK_INTERNAL size_t bk_decay_release_all(bool keep_region);
/* Before a fork: true if the forking thread should give its cache and the
 * heap's free memory back first (fork_release on, and none did within the
 * last tick interval).  Claims the interval. */
BK_INTERNAL bool bk_decay_fork_release_due(void);

BK_INTERNAL void bk_decay_fork_prepare(void);
BK_INTERNAL void bk_decay_fork_parent(void);
BK_INTERNAL void bk_decay_fork_child(void);

#endif
