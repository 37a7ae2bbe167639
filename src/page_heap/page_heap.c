/* Page heap: regions, span descriptors, large and huge spans (see
 * page_heap.h). */
#include "page_heap.h"

#include "../os/lock.h"
#include "../os/os.h"
#include "meta.h"
#include "page_map.h"

static struct {
    bk_lock_t lock;
    struct bk_region *regions, *last_region;
    struct bk_span *free_descriptors;     /* recycled, linked through next */
    size_t dirty_max_pages;
    size_t dirty_pages;                   /* sum of regions' dirty_free */
    size_t active_pages;
    size_t huge_bytes;
    size_t nregions;
    size_t descriptors;
} ph = { .lock = BK_LOCK_INIT, .dirty_max_pages = (64u << 20) >> BK_PAGE_SHIFT };

void bk_ph_configure(size_t dirty_max_bytes)
{
    ph.dirty_max_pages = dirty_max_bytes >> BK_PAGE_SHIFT;
}

static struct bk_span *new_descriptor(void)
{
    struct bk_span *s = ph.free_descriptors;
    if (s) {
        ph.free_descriptors = s->next;
    } else {
        s = bk_meta_alloc(sizeof *s, 8);
        if (!s)
            return NULL;
        ph.descriptors++;
    }
    *s = (struct bk_span){ 0 };
    return s;
}

static void drop_descriptor(struct bk_span *s)
{
    s->kind = 0;
    s->next = ph.free_descriptors;
    ph.free_descriptors = s;
}

static struct bk_region *new_region(void)
{
    /* A header whose region could not be mapped waits for the next try. */
    static struct bk_region *spare;
    struct bk_region *r = spare ? spare : bk_meta_alloc(sizeof *r, BK_CACHELINE);
    spare = NULL;
    if (!r)
        return NULL;
    void *base = bk_os_map(BK_REGION_SIZE, BK_REGION_SIZE);
    if (base && !bk_pm_ensure((uintptr_t)base, BK_REGION_SIZE)) {
        bk_os_unmap(base, BK_REGION_SIZE);
        base = NULL;
    }
    if (!base) {
        spare = r;
        return NULL;
    }
    r->base = (uintptr_t)base;
    bk_buddy_init(&r->buddy, BK_REGION_ORDER);
    if (ph.last_region)
        ph.last_region->next = r;
    else
        ph.regions = r;
    ph.last_region = r;
    ph.nregions++;
    return r;
}

/* First region (oldest first, so busy regions fill up before new ones are
 * touched) with a free block of 2^order pages. */
static struct bk_region *region_with(unsigned order)
{
    for (struct bk_region *r = ph.regions; r; r = r->next)
        if (bk_buddy_has(&r->buddy, order))
            return r;
    return new_region();
}

struct bk_span *bk_ph_alloc_span(size_t npages, size_t align_pages, unsigned cls)
{
    size_t want = npages > align_pages ? npages : align_pages;
    if (want > BK_REGION_PAGES)
        return NULL;
    bk_lock(&ph.lock);
    struct bk_span *s = new_descriptor();
    struct bk_region *r = s ? region_with(bk_log2_ceil(want)) : NULL;
    if (!r) {
        if (s)
            drop_descriptor(s);
        bk_unlock(&ph.lock);
        return NULL;
    }
    bool zeroed;
    uint32_t dirty_before = r->buddy.dirty_free;
    long first = bk_buddy_alloc(&r->buddy, npages, align_pages, &zeroed);
    ph.dirty_pages -= dirty_before - r->buddy.dirty_free;
    s->start = r->base + ((uintptr_t)first << BK_PAGE_SHIFT);
    s->npages = npages;
    s->region = r;
    s->kind = cls ? BK_SPAN_SMALL : BK_SPAN_LARGE;
    s->cls = (uint8_t)cls;
    s->zeroed = zeroed;
    bk_pm_set(s->start, cls ? npages : 1, s, cls);
    ph.active_pages += npages;
    bk_unlock(&ph.lock);
    return s;
}

static bool release_cb(void *ctx, size_t first, size_t npages)
{
    struct bk_region *r = ctx;
    return bk_os_release((void *)(r->base + (first << BK_PAGE_SHIFT)), npages << BK_PAGE_SHIFT);
}

/* Give back free blocks of at least a hugepage once too much dirty memory
 * sits free.  Caller holds the lock. */
static void maybe_release(void)
{
    if (ph.dirty_pages <= ph.dirty_max_pages)
        return;
    for (struct bk_region *r = ph.regions; r; r = r->next)
        ph.dirty_pages -= bk_buddy_release(&r->buddy, BK_HUGEPAGE_ORDER, release_cb, r);
}

void bk_ph_free_span(struct bk_span *s)
{
    bk_lock(&ph.lock);
    bk_pm_set(s->start, s->kind == BK_SPAN_SMALL ? s->npages : 1, NULL, 0);
    if (s->kind == BK_SPAN_HUGE) {
        ph.huge_bytes -= s->npages << BK_PAGE_SHIFT;
        bk_os_unmap((void *)s->start, s->npages << BK_PAGE_SHIFT);
        drop_descriptor(s);
        bk_unlock(&ph.lock);
        return;
    }
    struct bk_region *r = s->region;
    bk_buddy_free(&r->buddy, (s->start - r->base) >> BK_PAGE_SHIFT, s->npages);
    ph.active_pages -= s->npages;
    ph.dirty_pages += s->npages;
    drop_descriptor(s);
    maybe_release();
    bk_unlock(&ph.lock);
}

void bk_ph_shrink_span(struct bk_span *s, size_t new_npages)
{
    if (s->kind != BK_SPAN_LARGE || new_npages >= s->npages || new_npages == 0)
        return;
    bk_lock(&ph.lock);
    struct bk_region *r = s->region;
    size_t first = ((s->start - r->base) >> BK_PAGE_SHIFT) + new_npages;
    bk_buddy_free(&r->buddy, first, s->npages - new_npages);
    ph.active_pages -= s->npages - new_npages;
    ph.dirty_pages += s->npages - new_npages;
    s->npages = new_npages;
    maybe_release();
    bk_unlock(&ph.lock);
}

struct bk_span *bk_ph_alloc_huge(size_t bytes, size_t align)
{
    if (align < BK_PAGE_SIZE)
        align = BK_PAGE_SIZE;
    void *p = bk_os_map(bytes, align);
    if (!p)
        return NULL;
    bk_lock(&ph.lock);
    struct bk_span *s = new_descriptor();
    if (!s || !bk_pm_ensure((uintptr_t)p, BK_PAGE_SIZE)) {
        if (s)
            drop_descriptor(s);
        bk_unlock(&ph.lock);
        bk_os_unmap(p, bytes);
        return NULL;
    }
    s->start = (uintptr_t)p;
    s->npages = bytes >> BK_PAGE_SHIFT;
    s->kind = BK_SPAN_HUGE;
    s->zeroed = 1;
    bk_pm_set(s->start, 1, s, 0);
    ph.huge_bytes += bytes;
    bk_unlock(&ph.lock);
    return s;
}

size_t bk_ph_release_all(void)
{
    size_t pages = 0;
    bk_lock(&ph.lock);
    for (struct bk_region *r = ph.regions; r; r = r->next)
        pages += bk_buddy_release(&r->buddy, 0, release_cb, r);
    ph.dirty_pages = 0;
    bk_unlock(&ph.lock);
    return pages << BK_PAGE_SHIFT;
}

void bk_ph_get_stats(struct bk_ph_stats *st)
{
    bk_lock(&ph.lock);
    size_t free_pages = 0, dirty = 0;
    for (struct bk_region *r = ph.regions; r; r = r->next) {
        free_pages += r->buddy.free_pages;
        dirty += r->buddy.dirty_free;
    }
    st->regions = ph.nregions;
    st->huge = ph.huge_bytes;
    st->mapped = ph.nregions * BK_REGION_SIZE + ph.huge_bytes;
    st->active = (ph.active_pages << BK_PAGE_SHIFT) + ph.huge_bytes;
    st->dirty_free = dirty << BK_PAGE_SHIFT;
    st->clean_free = (free_pages - dirty) << BK_PAGE_SHIFT;
    st->metadata = ph.nregions * sizeof(struct bk_region) +
                   ph.descriptors * sizeof(struct bk_span) + bk_pm_metadata_bytes();
    bk_unlock(&ph.lock);
}

void bk_ph_lock(void) { bk_lock(&ph.lock); }
void bk_ph_unlock(void) { bk_unlock(&ph.lock); }
