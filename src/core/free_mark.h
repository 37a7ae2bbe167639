/* The free mark: how brisk recognises a block that is already free.
 *
 * Every free block carries, in word 1, its address xor a per-process random
 * secret (bk_free_key, drawn at start-up).  free() writes the mark into
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
 * misreported, a live block would have to hold exactly address ^ secret in
 * its second word. */
#ifndef BRISK_FREE_MARK_H
#define BRISK_FREE_MARK_H

#include <stdint.h>
#include "../os/compiler.h"

/* Secret mixed into the mark; set once by bk_core_init. */
extern BK_INTERNAL uintptr_t bk_free_key;

BK_FAST_PATH uintptr_t bk_free_mark(uintptr_t addr)
{
    return addr ^ bk_free_key;
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
