/* The page map: address -> span descriptor in O(1), and, for the fast
 * path of free(), address -> size class.
 *
 * A two-level radix tree over the 47-bit user address space at page
 * granularity: the root (static, in BSS) has one slot per GiB; a leaf covers
 * one GiB (2^17 pages) and holds a span pointer per page.  Leaves come from
 * the OS layer when the page heap first maps memory in their GiB and are
 * never freed, so readers need no lock: a leaf pointer is published with a
 * release store and read with a relaxed load (the program's own
 * synchronisation orders a free after the malloc that returned the
 * pointer).  Span entries are written under the page heap lock.  The tree
 * holds no class: the slow paths take it from the span descriptor and
 * check the span's carved bound (bk_central_owns).
 *
 * Class bytes live in the window only (below).  Class 0 means "not a small
 * object here": a large or huge span's first page, a piece of a small span
 * not carved yet, or memory brisk does not own.  The page heap writes them
 * (always 0) when a span is placed or released, under its lock; while a
 * small span is handed out, its owner (the class's central list) writes
 * them as it carves the span, a 4 KiB piece at a time, under the class
 * lock.
 *
 * The window.  The fast path of free() reads only a class byte, and not from
 * the tree (two dependent loads and a null test) but from a flat array,
 * bk_pm_window: one byte per 4 KiB slot (an OS page, the carving step) of
 * a fixed 128 GiB window of address space, 32 MiB of BSS of which only the
 * pages describing mapped memory are ever touched (16 KiB per 64 MiB
 * region).  A slot's byte is the class once its piece is carved, so a
 * class with a few objects in a process touches one OS page of its span
 * and still frees on the fast path.  The window is placed once, around
 * the first region the page heap maps (never around a huge block's own
 * mapping, which may be freed and leave the window far from the heap),
 * with 16 GiB on one side of it and 112 GiB on the side the heap grows
 * towards: the kernel places each new mapping next to the previous one,
 * downwards in the default layout and upwards in the legacy one, so the
 * regions of all but enormous heaps (or programs that map tens of GiB of
 * their own in between) land inside it.  A slot outside the window reads
 * as class 0 in the fast path and its free goes to the slow path, which
 * uses the tree: slower, never wrong.  Before it is placed the window
 * starts above every possible slot number, so it holds nothing, and once
 * placed it never moves; a reader that sees the old position only
 * misses the fast path. */
#ifndef BRISK_PAGE_MAP_H
#define BRISK_PAGE_MAP_H

#include <stdbool.h>
#include "../os/compiler.h"
#include "span.h"

#define BK_PM_ADDR_BITS  47
#define BK_PM_LEAF_BITS  17
#define BK_PM_ROOT_BITS  (BK_PM_ADDR_BITS - BK_PAGE_SHIFT - BK_PM_LEAF_BITS)
#define BK_PM_LEAF_SHIFT (BK_PAGE_SHIFT + BK_PM_LEAF_BITS)

struct bk_pm_leaf {
    struct bk_span *span[1u << BK_PM_LEAF_BITS];
};

extern BK_INTERNAL struct bk_pm_leaf *bk_pm_root[1u << BK_PM_ROOT_BITS];

#define BK_PM_WINDOW_SHIFT 37                                  /* 128 GiB */
#define BK_PM_SLOT_SHIFT   12                                  /* a byte per 4 KiB */
#define BK_PM_SLOT_SIZE    ((uintptr_t)1 << BK_PM_SLOT_SHIFT)
#define BK_PM_WINDOW_SLOTS ((uintptr_t)1 << (BK_PM_WINDOW_SHIFT - BK_PM_SLOT_SHIFT))
#define BK_PM_WINDOW_ABOVE ((uintptr_t)16 << 30)               /* room behind the first region */

extern BK_INTERNAL uintptr_t bk_pm_window_first;               /* slot number of its first slot */

/* free()'s fast path reads a window byte and then words indexed by that
 * byte (the core's object-boundary test for the class, size_class.h).
 * Both live in one object, so that one base address serves both: as two
 * symbols they cost the fast path a second `lea`.  The window comes first:
 * with the words first, gcc 12 forms the window's address and subtracts
 * its offset to reach the words; this way they are a displacement of 32
 * MiB from the same base.  The page map only stores the class words; the
 * core fills them once, at start-up, before any class byte is written.
 * All zero until then, which the core's test reads as "no object here":
 * every free takes the slow path. */
#define BK_PM_CLASS_WORDS  3                                    /* per class value */
#define BK_PM_CLASS_VALUES 128                                  /* class values covered */

struct bk_pm_fast {
    uint8_t window[BK_PM_WINDOW_SLOTS];
    uint64_t class_word[BK_PM_CLASS_WORDS][BK_PM_CLASS_VALUES];
};
extern BK_INTERNAL struct bk_pm_fast bk_pm_fast;
#define bk_pm_window (bk_pm_fast.window)

/* Index of addr's slot in the window: BK_PM_WINDOW_SLOTS or more (the
 * subtraction wraps) when addr lies outside it.  A plain read, so that it
 * folds into the subtraction: bk_pm_window_first is written once, when the
 * page heap maps its first region, and a free of a small block happens
 * after that (a free of anything else only misses the fast path). */
BK_FAST_PATH uintptr_t bk_pm_window_index(uintptr_t addr)
{
    return (addr >> BK_PM_SLOT_SHIFT) - bk_pm_window_first;
}

static inline struct bk_pm_leaf *bk_pm_leaf_of(uintptr_t addr)
{
    uintptr_t i = addr >> BK_PM_LEAF_SHIFT;
    if (bk_unlikely(i >= ((uintptr_t)1 << BK_PM_ROOT_BITS)))
        return NULL;
    return bk_load_relaxed(&bk_pm_root[i]);
}

static inline size_t bk_pm_index(uintptr_t addr)
{
    return (addr >> BK_PAGE_SHIFT) & ((1u << BK_PM_LEAF_BITS) - 1);
}

/* Span holding addr (any page of a small span, the first page of a large or
 * huge one); NULL if none. */
static inline struct bk_span *bk_pm_span(uintptr_t addr)
{
    struct bk_pm_leaf *leaf = bk_pm_leaf_of(addr);
    return leaf ? bk_load_relaxed(&leaf->span[bk_pm_index(addr)]) : NULL;
}

/* Make sure leaves exist for [addr, addr + len); false if out of memory or
 * outside the mapped address space.  Caller holds the page heap lock. */
BK_INTERNAL bool bk_pm_ensure(uintptr_t addr, size_t len);
/* Place the window around a region at addr, if it has no place yet (the
 * page heap calls this for every region it maps, under its lock). */
BK_INTERNAL void bk_pm_window_place(uintptr_t addr);
/* Where the window starts when placed around addr (see above). */
BK_INTERNAL uintptr_t bk_pm_window_start_for(uintptr_t addr);
/* Point npages pages from addr at span s in the tree, and give every window
 * slot of those pages class cls (s may be NULL and cls 0 to clear).
 * The page heap always passes 0 (carving gives the class, a piece at a
 * time); a nonzero class would open uncarved slots to the fast path.
 * Leaves must exist.  Caller holds the page heap lock. */
BK_INTERNAL void bk_pm_set(uintptr_t addr, size_t npages, struct bk_span *s, unsigned cls);
/* Give the 4 KiB piece at addr of a small span that is handed out (its
 * span entries are set) its class byte in the window.  The span's owner
 * (its central list) calls this as it carves the piece, under the class
 * lock: the page heap does not touch the entries of a span while it is
 * handed out. */
BK_INTERNAL void bk_pm_set_class(uintptr_t addr, unsigned cls);
/* Bytes of leaves mapped (metadata statistics). */
BK_INTERNAL size_t bk_pm_metadata_bytes(void);

#endif
