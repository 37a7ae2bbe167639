/* Large and huge allocations (see large_alloc.h). */
#include "large_alloc.h"

#include <string.h>
#include "../page_heap/page_heap.h"
#include "decay.h"

static size_t live_bytes;   /* bytes requested by live large blocks */

void *bk_large_alloc(size_t size, size_t align, bool zero)
{
    bk_decay_maybe();
    if (align < BK_PAGE_SIZE)
        align = BK_PAGE_SIZE;
    size_t bytes = bk_align_up(size, BK_PAGE_SIZE);
    struct bk_span *s;
    if (bytes <= BK_LARGE_MAX && align <= BK_LARGE_MAX)
        s = bk_ph_alloc_span(bytes >> BK_PAGE_SHIFT, align >> BK_PAGE_SHIFT, 0);
    else
        s = bk_ph_alloc_huge(bytes, align);
    if (!s)
        return NULL;
    s->requested = size;
    bk_fetch_add(&live_bytes, size);
    if (zero && !s->zeroed)
        memset((void *)s->start, 0, size);
    else if (!s->zeroed)
        ((uintptr_t *)s->start)[1] = 0;   /* a small span's free mark may linger */
    return (void *)s->start;
}

void bk_large_free(struct bk_span *s)
{
    bk_fetch_sub(&live_bytes, s->requested);
    if (s->kind == BK_SPAN_LARGE && bk_decay_release_on_free(s->npages << BK_PAGE_SHIFT))
        bk_ph_free_span_released(s);
    else
        bk_ph_free_span(s);
    bk_decay_maybe();
}

size_t bk_large_usable(const struct bk_span *s)
{
    return s->npages << BK_PAGE_SHIFT;
}

bool bk_large_resize_in_place(struct bk_span *s, size_t new_size)
{
    if (new_size == 0 || new_size > PTRDIFF_MAX)
        return false;
    size_t pages = bk_align_up(new_size, BK_PAGE_SIZE) >> BK_PAGE_SHIFT;
    if (pages > s->npages)
        return false;
    if (s->kind == BK_SPAN_LARGE && pages < s->npages)
        bk_ph_shrink_span(s, pages);
    bk_fetch_add(&live_bytes, new_size);
    bk_fetch_sub(&live_bytes, s->requested);
    s->requested = new_size;
    return true;
}

void *bk_large_grow(struct bk_span *s, size_t new_size)
{
    if (new_size > PTRDIFF_MAX)
        return NULL;
    size_t bytes = bk_align_up(new_size, BK_PAGE_SIZE);
    bool grown = s->kind == BK_SPAN_LARGE
                     ? bytes <= BK_LARGE_MAX && bk_ph_grow_span(s, bytes >> BK_PAGE_SHIFT)
                     : bytes > (s->npages << BK_PAGE_SHIFT) && bk_ph_remap_huge(s, bytes);
    if (!grown)
        return NULL;
    bk_fetch_add(&live_bytes, new_size);
    bk_fetch_sub(&live_bytes, s->requested);
    s->requested = new_size;
    return (void *)s->start;
}

size_t bk_large_live_bytes(void)
{
    return bk_load_relaxed(&live_bytes);
}
