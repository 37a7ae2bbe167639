/* Size classes: the table that maps a request size to a small-object class.
 *
 * The derivation lives in size_class.c.  The lookup the fast path uses is one
 * shift and one table load: bk_class_of_size[(size + 15) >> 4], for sizes up
 * to BK_LOOKUP_MAX (32 KiB).  Bigger small sizes (to 256 KiB) are computed
 * from the class spacing instead (bk_size_to_class), on malloc's slow path:
 * a table to 256 KiB would be 16 KiB of read-only data, four pages every
 * process that maps libbrisk.so has resident, for sizes whose allocation
 * then touches 32 KiB or more anyway.  Class 0 is
 * reserved: it means "not a small object" everywhere (the page map stores it
 * for large spans and unknown memory, and no thread cache ever holds a block
 * in class 0), so fast paths can fold that case into their miss branch. */
#ifndef BRISK_SIZE_CLASS_H
#define BRISK_SIZE_CLASS_H

#include <stdbool.h>
#include <stdint.h>
#include "../os/compiler.h"
#include "../page_heap/page_map.h"

#define BK_SMALL_MAX        (256u * 1024u)          /* largest small class */
#define BK_QUANTUM_SHIFT    4                       /* 16-byte alignment */
#define BK_QUANTUM          (1u << BK_QUANTUM_SHIFT)
#define BK_LOOKUP_MAX       (32u * 1024u)           /* largest size the table serves */
#define BK_LOOKUP_ENTRIES   ((BK_LOOKUP_MAX >> BK_QUANTUM_SHIFT) + 1)
#define BK_LINEAR_CLASSES   8                       /* 16, 32, ... 128 */
#define BK_STEPS_PER_DOUBLING 8                     /* 12.5% worst waste */
#define BK_DOUBLINGS        11                      /* 128 -> 256 KiB */
#define BK_NUM_CLASSES      (1 + BK_LINEAR_CLASSES + BK_STEPS_PER_DOUBLING * BK_DOUBLINGS)

struct bk_class_info {
    uint32_t size;        /* object size in bytes */
    uint32_t span_pages;  /* pages per span (a power of two) */
    uint32_t objects;     /* objects per span */
    uint16_t batch;       /* objects moved per central transfer */
    uint16_t cache_max;   /* most objects a thread cache keeps */
    uint16_t park_max;    /* most batches a central stripe parks */
};

/* What free() needs to validate a pointer without touching the span.
 *
 * Spans of small classes are naturally aligned powers of two, so the offset
 * of a pointer inside its span is n = addr & off_mask.  It is the start of
 * an object iff n = k * size with k < objects (the span's tail past the last
 * object is not an object).  One multiply and one compare decide both, by
 * a variant of Lemire's divisibility test: with c = floor(2^64 / size) + 1
 * and e = size * c - 2^64 (so 1 <= e <= size), write n = k * size + r; then
 * n * c mod 2^64 = k * e + r * c, which is k * e < objects * e when r = 0,
 * and at least c > 2^46 when r > 0 (n < 2^22 keeps everything below 2^64).
 * So n starts an object iff n * c mod 2^64 < limit with limit = objects * e.
 *
 * Class 0 has every field 0, and 0 * 0 < 0 fails: the same test rejects
 * pointers the page map does not know, so the fast path needs no separate
 * "class 0?" branch.
 *
 * The library's copy lives in the page map's class words, next to the
 * window free() reads the class from (page_map.h): bk_core_init computes
 * it from bk_classes, before any span is carved. */
struct bk_class_checks {
    uint64_t off_mask[BK_NUM_CLASSES];
    uint64_t divc[BK_NUM_CLASSES];
    uint64_t limit[BK_NUM_CLASSES];
};
enum { BK_CHECK_OFF_MASK, BK_CHECK_DIVC, BK_CHECK_LIMIT };
_Static_assert(BK_PM_CLASS_WORDS == 3 && BK_NUM_CLASSES <= BK_PM_CLASS_VALUES,
               "the page map's class words hold the boundary checks");

/* The tables, constant: generated at build time from the derivation in
 * size_class.c (see there). */
extern BK_INTERNAL const uint8_t bk_class_of_size[BK_LOOKUP_ENTRIES];
extern BK_INTERNAL const struct bk_class_info bk_classes[BK_NUM_CLASSES];

/* The boundary check of a class: its off_mask, divc and limit (for the
 * derivation and for bk_core_init, which installs it). */
static inline void bk_class_check_words(const struct bk_class_info *ci, uint64_t *off_mask,
                                        uint64_t *divc, uint64_t *limit)
{
    uint64_t size = ci->size;
    /* floor(2^64 / size) + 1; 2^64 itself is not representable, so count
     * with 2^64 - 1 and add the one it misses when size divides 2^64. */
    *divc = UINT64_MAX / size + (UINT64_MAX % size == size - 1) + 1;
    *off_mask = ((uint64_t)ci->span_pages << BK_PAGE_SHIFT) - 1;
    *limit = ci->objects * (size * *divc); /* objects * e */
}

/* The derivation itself (size_class.c), for the generator and the tests. */
struct bk_size_tables {
    uint8_t lookup[BK_LOOKUP_ENTRIES];
    struct bk_class_info classes[BK_NUM_CLASSES];
    struct bk_class_checks checks;
};
BK_INTERNAL void bk_size_classes_derive(struct bk_size_tables *t);

/* The table lookup: only valid for size <= BK_LOOKUP_MAX (size 0 is served
 * as 1). */
BK_FAST_PATH unsigned bk_size_to_class_lookup(size_t size)
{
    return bk_class_of_size[(size + BK_QUANTUM - 1) >> BK_QUANTUM_SHIFT];
}

/* Any size <= BK_SMALL_MAX.  Above the table, a size in (2^k, 2^k+1] falls
 * in step (size - 2^k - 1) >> (k - 3) of its doubling (size_class.c). */
BK_FAST_PATH unsigned bk_size_to_class(size_t size)
{
    if (size <= BK_LOOKUP_MAX)
        return bk_size_to_class_lookup(size);
    unsigned k = 63u - (unsigned)__builtin_clzll((unsigned long long)size - 1);
    return 1 + BK_LINEAR_CLASSES + (k - 7) * BK_STEPS_PER_DOUBLING +
           (unsigned)((size - 1 - ((size_t)1 << k)) >> (k - 3));
}

BK_FAST_PATH bool bk_on_object_boundary(unsigned cls, uintptr_t addr)
{
    const uint64_t (*w)[BK_PM_CLASS_VALUES] = bk_pm_fast.class_word;
    return (addr & w[BK_CHECK_OFF_MASK][cls]) * w[BK_CHECK_DIVC][cls] < w[BK_CHECK_LIMIT][cls];
}

#endif
