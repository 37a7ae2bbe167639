/* Derivation of the size-class table.
 *
 * Classes grow linearly in 16-byte steps up to 128 bytes (16, 32, ..., 128:
 * the 16-byte quantum is glibc's minimum alignment on x86-64, so no finer
 * step is useful).  Above 128 bytes every power-of-two interval (2^k, 2^k+1]
 * is cut into BK_STEPS_PER_DOUBLING = 8 equal steps of 2^k / 8 bytes:
 *
 *     144, 160, ..., 256,  288, 320, ..., 512,  ...,  229376, 262144
 *
 * A request of s bytes in (2^k, 2^k+1] lands in the next step above it, so
 * it wastes less than one step: waste / s < (2^k / 8) / 2^k = 12.5%.  Every
 * class size is a multiple of 16, so every object is 16-byte aligned, and
 * the power-of-two sizes (256, 512, ..., 256 KiB) are classes, which is what
 * memalign uses for alignments above 16.
 *
 * Spans.  A class's span is the smallest power-of-two number of pages that
 * (a) holds at least `batch` objects, so one central refill touches one
 * span, and (b) wastes at most 1/8 of the span in its unusable tail.
 * Power-of-two spans come straight from the buddy heap naturally aligned,
 * which makes "is this pointer on an object boundary" a mask and a multiply
 * (see bk_on_object_boundary).
 *
 * Batches.  A transfer between a thread cache and the central list moves
 * batch = clamp(64 KiB / size, 2, 32) objects: big enough to amortise the
 * central lock for small objects, small enough that a batch of large ones
 * does not pin megabytes.  A thread cache keeps at most
 *
 *     cache_max = max(2 * batch, min(1024, max(256 KiB / size, burst)))
 *     burst     = min(128, 1 MiB / size) up to 8 KiB, 0 above
 *
 * objects of a class: 256 KiB worth of small objects, but room for a burst
 * of 128 objects up to 8 KiB (a loop that allocates 100 buffers of 8 KiB and
 * frees them must not go to the central lists every time), and a per-thread
 * byte budget caps the sum (thread_cache.c).  A central stripe parks at most
 *
 *     park_max = clamp(128 KiB / (batch * size), 1, 16)
 *
 * batches: parked objects pin their spans, so this bounds the memory the
 * page heap cannot get back (central_list.c).
 *
 * The derivation runs at build time: size_class_gen.c prints its result as
 * constant tables, which the library compiles in (read-only data, shared by
 * every process that maps libbrisk.so, instead of 20 KiB of private memory
 * filled at each start-up).  The lookup table stops at BK_LOOKUP_MAX (32
 * KiB, 2 KiB of table); bk_size_to_class computes the classes above it
 * from the spacing above.  tests/test_size_class.c derives them again and
 * checks the compiled-in tables against the derivation. */
#include "size_class.h"

#include <string.h>

#include "../page_heap/span.h"

static uint32_t class_size(unsigned cls)
{
    if (cls <= BK_LINEAR_CLASSES)
        return cls * BK_QUANTUM;
    unsigned i = cls - BK_LINEAR_CLASSES - 1;              /* 0-based above 128 */
    unsigned k = 7 + i / BK_STEPS_PER_DOUBLING;            /* interval (2^k, 2^k+1] */
    unsigned step = 1u << (k - 3);
    return (1u << k) + (i % BK_STEPS_PER_DOUBLING + 1) * step;
}

static uint32_t clamp32(uint32_t v, uint32_t lo, uint32_t hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

static void derive_class(struct bk_size_tables *t, unsigned cls)
{
    struct bk_class_info *ci = &t->classes[cls];
    uint32_t size = class_size(cls);
    uint32_t batch = clamp32(65536u / size, 2, 32);
    size_t span = BK_PAGE_SIZE;
    while (span / size < batch || span % size > span / 8)
        span *= 2;
    ci->size = size;
    ci->span_pages = (uint32_t)(span >> BK_PAGE_SHIFT);
    ci->objects = (uint32_t)(span / size);
    ci->batch = (uint16_t)batch;
    uint32_t cap = 262144u / size;
    if (size <= 8192) {
        uint32_t mid = 1048576u / size < 128 ? 1048576u / size : 128;
        cap = cap > mid ? cap : mid;
    }
    cap = cap < 1024 ? cap : 1024;
    ci->cache_max = (uint16_t)(cap > 2 * batch ? cap : 2 * batch);
    ci->park_max = (uint16_t)clamp32(131072u / (batch * size), 1, 16);
    bk_class_check_words(ci, &t->checks.off_mask[cls], &t->checks.divc[cls], &t->checks.limit[cls]);
}

void bk_size_classes_derive(struct bk_size_tables *t)
{
    memset(t, 0, sizeof *t);    /* padding too: the tests compare tables bytewise */
    for (unsigned cls = 1; cls < BK_NUM_CLASSES; cls++)
        derive_class(t, cls);
    /* Fill the lookup table: entry i serves sizes (16(i-1), 16i]. */
    unsigned cls = 1;
    for (unsigned i = 0; i < BK_LOOKUP_ENTRIES; i++) {
        uint32_t max_size = i == 0 ? 1 : i << BK_QUANTUM_SHIFT;
        while (t->classes[cls].size < max_size)
            cls++;
        t->lookup[i] = (uint8_t)cls;
    }
}

