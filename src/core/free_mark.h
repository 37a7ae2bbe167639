/* The free mark: how brisk recognises a block that is already free.
 *
 * Every free block carries, in word 1, its address plus BK_FREE_MARK_OFFSET,
 * an odd constant, so a mark is never an aligned pointer.  free() writes the mark into
 * every block it takes back, a span writes it into every object of a
 * piece (4 KiB) when it carves the piece, and every path that hands a
 * block to the program clears word 1.
 * Word 0 of a free block is its link in whichever list holds it (a thread
 * cache list, a batch on a central stripe, a span's free list), so nothing
 * ever overwrites the mark while the block is free.
 *
 * So a block whose word 1 holds its own mark is free: free() reports a
 * double free instead of taking it twice, whether the first free left it in
 * a thread cache, in a central batch or on its span, and a "free" of a slot
 * in the carved part of a span that was never handed out is reported the
 * same way (a slot not carved yet is an invalid pointer: central_list.h).  To be
 * misreported, a live block would have to hold exactly its own address plus
 * the offset in its second word.
 *
 * Why the address is in the mark: without it, a mark left in memory by a
 * span of another class that used the same pages before (say at offset 24
 * of what is now a live 64-byte block) could be copied by the program
 * (uninitialised bytes of a struct) into word 1 of some live block, which
 * free() would then take for a double free.  A stale mark only matches the
 * block at the address it was made for.  Why a constant and not a random
 * per-process secret: the mark detects mistakes, it is no defence (a
 * program that writes a freed block defeats it whatever its value), and an
 * offset folds into one `lea` on free's fast path where a secret costs a
 * load and an xor. */
#ifndef BRISK_FREE_MARK_H
#define BRISK_FREE_MARK_H

#include <stdint.h>
#include "../os/compiler.h"

/* Odd, and small enough to be an x86-64 address displacement. */
#define BK_FREE_MARK_OFFSET ((uintptr_t)0x5bd1e995u)

BK_FAST_PATH uintptr_t bk_free_mark(uintptr_t addr)
{
    return addr + BK_FREE_MARK_OFFSET;
}

BK_FAST_PATH void bk_set_free_mark(void *block)
{
    ((uintptr_t *)block)[1] = bk_free_mark((uintptr_t)block);
}

BK_FAST_PATH int bk_has_free_mark(const void *block)
{
    return ((const uintptr_t *)block)[1] == bk_free_mark((uintptr_t)block);
}

#endif
