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
    struct bk_region *free_headers;       /* of unmapped regions, for reuse */
    struct bk_span *free_descriptors;     /* recycled, linked through next */
    struct bk_ph_config cfg;
    bool advise_huge;                     /* MADV_HUGEPAGE regions ... */
    bool heap_busy;                       /* ... once the heap is this big */
    size_t dirty_pages;                   /* sum of regions' dirty_free */
    size_t active_pages;
    size_t huge_bytes;
    size_t nregions;
    size_t regions_unmapped;
    size_t released_pages;
    size_t shed_above;                    /* dirty pages that trigger shed() */
    uint64_t (*clock)(void);
} ph = {
    .lock = BK_LOCK_INIT,
    .cfg = { .dirty_max = 64u << 20, .decay_ms = 1000 },
    .clock = bk_os_now_ms,
};

void bk_ph_configure(const struct bk_ph_config *cfg)
{
    ph.cfg = *cfg;
    ph.heap_busy = false;
    ph.shed_above = cfg->dirty_max >> BK_PAGE_SHIFT;
    enum bk_thp_mode mode = cfg->thp == BK_PH_THP_AUTO ? bk_os_thp_mode() : BK_THP_UNKNOWN;
    /* auto: advise where the kernel only backs advised ranges (with
     * "always" it backs every range anyway, with "never" none). */
    ph.advise_huge = cfg->thp == BK_PH_THP_ALWAYS || mode == BK_THP_MADVISE;
}

void bk_ph_set_clock(uint64_t (*now_ms)(void))
{
    ph.clock = now_ms ? now_ms : bk_os_now_ms;
}

static uint32_t now_ms(void)
{
    return (uint32_t)ph.clock();
}

/* Pages [first, first + n) of r were just taken or freed. */
static void mark_used(struct bk_region *r, size_t first, size_t n, uint32_t now)
{
    for (size_t c = first >> BK_HUGEPAGE_ORDER; c <= (first + n - 1) >> BK_HUGEPAGE_ORDER; c++)
        r->chunk_used[c] = now;
}

/* Descriptors come from the metadata arena a page at a time, page-aligned
 * (56 to a 4 KiB page): taken one by one they would start wherever the
 * last metadata object ended, and the first few would straddle two pages. */
#define BK_DESCRIPTOR_SLAB 4096

static struct bk_span *new_descriptor(void)
{
    if (!ph.free_descriptors) {
        struct bk_span *slab = bk_meta_alloc(BK_DESCRIPTOR_SLAB, BK_DESCRIPTOR_SLAB);
        if (!slab)
            return NULL;
        size_t n = BK_DESCRIPTOR_SLAB / sizeof *slab;
        for (size_t i = n; i-- > 0;) {
            slab[i].next = ph.free_descriptors;
            ph.free_descriptors = &slab[i];
        }
    }
    struct bk_span *s = ph.free_descriptors;
    ph.free_descriptors = s->next;
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
    /* Headers of unmapped regions (and one whose region could not be
     * mapped) wait for the next region. */
    struct bk_region *r = ph.free_headers;
    bool fresh = r == NULL;     /* fresh metadata reads as zeros */
    if (r)
        ph.free_headers = r->next;
    else if (!(r = bk_meta_alloc(sizeof *r, BK_CACHELINE)))
        return NULL;
    void *base = bk_os_map(BK_REGION_SIZE, BK_REGION_SIZE);
    if (base && !bk_pm_ensure((uintptr_t)base, BK_REGION_SIZE)) {
        bk_os_unmap(base, BK_REGION_SIZE);
        base = NULL;
    }
    if (!base) {
        r->next = ph.free_headers;
        ph.free_headers = r;
        return NULL;
    }
    bk_pm_window_place((uintptr_t)base);
    if (ph.cfg.thp == BK_PH_THP_NEVER || (ph.advise_huge && ph.heap_busy))
        bk_os_advise_hugepages(base, BK_REGION_SIZE, ph.cfg.thp != BK_PH_THP_NEVER);
    r->base = (uintptr_t)base;
    r->next = NULL;
    bk_buddy_init(&r->buddy, BK_REGION_ORDER, fresh);
    bk_buddy_node(&r->buddy, 0)->freed_at = now_ms();
    mark_used(r, 0, BK_REGION_PAGES, now_ms());
    if (ph.last_region)
        ph.last_region->next = r;
    else
        ph.regions = r;
    ph.last_region = r;
    ph.nregions++;
    return r;
}

/* A small heap stays on base pages: a hugepage would make a program with
 * 100 KiB of heap resident for 2 MiB.  Once the heap holds more than
 * BK_BUSY_HEAP_PAGES, every region gets MADV_HUGEPAGE (when advised at
 * all), and so do new ones.  Lock held. */
#define BK_BUSY_HEAP_PAGES ((16u << 20) >> BK_PAGE_SHIFT)

static void heap_became_busy(void)
{
    ph.heap_busy = true;
    if (ph.advise_huge && ph.cfg.thp != BK_PH_THP_NEVER)
        for (struct bk_region *r = ph.regions; r; r = r->next)
            bk_os_advise_hugepages((void *)r->base, BK_REGION_SIZE, true);
}

/* Best fit: the region whose smallest free block of at least 2^order
 * pages is smallest, the oldest on ties (so busy regions fill up before new
 * ones are touched); a new region when none has one. */
static struct bk_region *region_with(unsigned order, bool large)
{
    struct bk_region *best = NULL;
    unsigned best_k = 64;
    for (struct bk_region *r = ph.regions; r && best_k != 0; r = r->next) {
        if (r->large != large && !bk_buddy_empty(&r->buddy))
            continue;
        uint32_t avail = r->buddy.order_mask >> order;
        if (avail && (unsigned)__builtin_ctz(avail) < best_k) {
            best = r;
            best_k = (unsigned)__builtin_ctz(avail);
        }
    }
    if (!best && (best = new_region()) == NULL)
        return NULL;
    best->large = large;
    return best;
}

struct bk_span *bk_ph_alloc_span(size_t npages, size_t align_pages, unsigned cls)
{
    size_t want = npages > align_pages ? npages : align_pages;
    if (want > BK_REGION_PAGES)
        return NULL;
    bk_lock(&ph.lock);
    struct bk_span *s = new_descriptor();
    struct bk_region *r = s ? region_with(bk_log2_ceil(want), cls == 0) : NULL;
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
    mark_used(r, (size_t)first, npages, now_ms());
    s->start = r->base + ((uintptr_t)first << BK_PAGE_SHIFT);
    s->npages = npages;
    s->region = r;
    s->kind = cls ? BK_SPAN_SMALL : BK_SPAN_LARGE;
    s->cls = (uint8_t)cls;
    s->zeroed = zeroed;
    bk_pm_set(s->start, cls ? npages : 1, s, 0);
    ph.active_pages += npages;
    if (bk_unlikely(!ph.heap_busy && ph.active_pages > BK_BUSY_HEAP_PAGES))
        heap_became_busy();
    bk_unlock(&ph.lock);
    return s;
}

struct release_ctx {
    struct bk_region *r;
    uint32_t now, min_age;
};

static bool release_cb(void *ctx, size_t first, size_t npages)
{
    struct bk_region *r = ((struct release_ctx *)ctx)->r;
    return bk_os_release((void *)(r->base + (first << BK_PAGE_SHIFT)), npages << BK_PAGE_SHIFT,
                         ph.cfg.lazy_release);
}

static bool chunk_idle(void *ctx, size_t chunk)
{
    const struct release_ctx *c = ctx;
    return bk_buddy_old_enough(c->r->chunk_used[chunk], c->now, c->min_age);
}

/* Release a region's free blocks of orders lo..hi freed at least min_age
 * ms before now; by_hugepage: instead their hugepages that no span was
 * taken from or freed into for min_age ms (lo is then BK_HUGEPAGE_ORDER).
 * Lock held. */
static size_t release_blocks(struct bk_region *r, unsigned lo, unsigned hi, uint32_t now,
                             uint32_t min_age, bool by_hugepage)
{
    struct release_ctx ctx = { r, now, min_age };
    struct bk_buddy_release req = {
        .min_order = lo, .max_order = hi, .now = now, .min_age = min_age,
        .zeroes = !ph.cfg.lazy_release, .release = release_cb,
        .chunk_idle = by_hugepage ? chunk_idle : NULL, .ctx = &ctx,
    };
    size_t pages = bk_buddy_release(&r->buddy, &req);
    ph.dirty_pages -= pages;
    ph.released_pages += pages;
    return pages;
}

/* More than dirty_max free and dirty: give back whole free hugepages, the
 * oldest first (passes of falling age), until half of dirty_max is left;
 * if that is not enough (live spans scattered over many hugepages, after a
 * heap shrank), pieces of partly used hugepages the same way: the heap is
 * under pressure, so RSS comes before keeping hugepages whole.  Memory
 * freed in the last quarter of decay_ms goes only when more sits free than
 * is in use (the heap shrank): a steady heap that keeps more than the cap
 * in flight reuses it, and releasing it would only make it fault back in.
 * When all that cannot get below dirty_max, the next shed waits until
 * dirty memory has grown by another eighth of dirty_max or a tick has run,
 * so frees do not rescan the regions each time.  Lock held. */
static void shed_orders(unsigned lo, unsigned hi, uint32_t now)
{
    size_t target = ph.cfg.dirty_max >> (BK_PAGE_SHIFT + 1);
    uint32_t decay = ph.cfg.decay_ms == BK_DECAY_NEVER ? 4000 : ph.cfg.decay_ms;
    uint32_t ages[3] = { decay, decay / 4, 0 };
    unsigned passes = ph.dirty_pages > ph.active_pages ? 3 : 2;
    for (unsigned i = 0; i < passes && ph.dirty_pages > target; i++)
        for (struct bk_region *r = ph.regions; r && ph.dirty_pages > target; r = r->next)
            release_blocks(r, lo, hi, now, ages[i], false);
}

static void shed(uint32_t now)
{
    size_t cap = ph.cfg.dirty_max >> BK_PAGE_SHIFT;
    shed_orders(BK_HUGEPAGE_ORDER, BK_REGION_ORDER, now);
    if (ph.dirty_pages > cap)
        shed_orders(0, BK_HUGEPAGE_ORDER - 1, now);
    ph.shed_above = ph.dirty_pages > cap ? ph.dirty_pages + cap / 8 : cap;
}

/* After a span free: decay_ms == 0 releases the hugepage-sized block it
 * made at once; too much dirty memory sheds.  Lock held. */
static void after_free(struct bk_region *r)
{
    if (ph.cfg.decay_ms == 0)
        release_blocks(r, BK_HUGEPAGE_ORDER, BK_REGION_ORDER, now_ms(), 0, false);
    if (ph.dirty_pages > ph.shed_above)
        shed(now_ms());
}

/* Unmap an empty region (lock held; prev is the region before it). */
static void unmap_region(struct bk_region *r, struct bk_region *prev)
{
    if (prev)
        prev->next = r->next;
    else
        ph.regions = r->next;
    if (ph.last_region == r)
        ph.last_region = prev;
    ph.dirty_pages -= r->buddy.dirty_free;
    bk_os_unmap((void *)r->base, BK_REGION_SIZE);
    ph.nregions--;
    ph.regions_unmapped++;
    r->next = ph.free_headers;
    ph.free_headers = r;
}

/* Unmap regions that have been empty for min_age ms, keeping the first
 * `keep` empty regions mapped (either kind may take one: a program that
 * makes a large allocation now and then does not map and unmap a region
 * each time).  Lock held. */
static void unmap_empty(uint32_t now, uint32_t min_age, size_t keep)
{
    if (ph.cfg.retain)
        return;
    size_t empty = 0;
    for (struct bk_region *r = ph.regions, *prev = NULL, *next; r; r = next) {
        next = r->next;
        if (bk_buddy_empty(&r->buddy) && empty++ >= keep &&
            bk_buddy_old_enough(bk_buddy_node(&r->buddy, 0)->freed_at, now, min_age))
            unmap_region(r, prev);
        else
            prev = r;
    }
}

size_t bk_ph_decay(void)
{
    bk_lock(&ph.lock);
    uint32_t now = now_ms(), age = ph.cfg.decay_ms;
    size_t pages = 0, pieces = 0;
    for (struct bk_region *r = ph.regions; r; r = r->next) {
        if (age != BK_DECAY_NEVER)
            pages += release_blocks(r, BK_HUGEPAGE_ORDER, BK_REGION_ORDER, now, age, true);
        pieces += r->buddy.dirty_free - bk_buddy_dirty_in_blocks(&r->buddy, BK_HUGEPAGE_ORDER);
    }
    /* Pressure: more than half the cap sits in pieces of partly used
     * hugepages. */
    if (pieces > ph.cfg.dirty_max >> (BK_PAGE_SHIFT + 1))
        for (struct bk_region *r = ph.regions; r; r = r->next)
            pages += release_blocks(r, 0, BK_HUGEPAGE_ORDER - 1, now,
                                    age == BK_DECAY_NEVER ? 0 : age, false);
    if (age != BK_DECAY_NEVER)
        unmap_empty(now, age, 1);
    ph.shed_above = ph.cfg.dirty_max >> BK_PAGE_SHIFT;
    bk_unlock(&ph.lock);
    return pages << BK_PAGE_SHIFT;
}

/* released: the caller gave the span's pages back to the kernel already. */
static void free_span(struct bk_span *s, bool released)
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
    size_t first = (s->start - r->base) >> BK_PAGE_SHIFT;
    if (released) {
        bk_buddy_free_released(&r->buddy, first, s->npages, now_ms(), !ph.cfg.lazy_release);
        ph.released_pages += s->npages;
    } else {
        bk_buddy_free(&r->buddy, first, s->npages, now_ms());
        ph.dirty_pages += s->npages;
    }
    mark_used(r, first, s->npages, now_ms());
    ph.active_pages -= s->npages;
    drop_descriptor(s);
    after_free(r);
    bk_unlock(&ph.lock);
}

void bk_ph_free_span(struct bk_span *s)
{
    free_span(s, false);
}

void bk_ph_free_span_released(struct bk_span *s)
{
    /* The span is still the caller's: no lock needed to release it. */
    bool released = s->kind != BK_SPAN_HUGE &&
                    bk_os_release((void *)s->start, s->npages << BK_PAGE_SHIFT,
                                  ph.cfg.lazy_release);
    free_span(s, released);
}

void bk_ph_release_inside(uintptr_t start, size_t len)
{
    uintptr_t first = bk_align_up(start, BK_OS_PAGE_SIZE);
    uintptr_t end = (start + len) & ~(uintptr_t)(BK_OS_PAGE_SIZE - 1);
    if (end > first)
        bk_os_release((void *)first, end - first, ph.cfg.lazy_release);
}

void bk_ph_shrink_span(struct bk_span *s, size_t new_npages)
{
    if (s->kind != BK_SPAN_LARGE || new_npages >= s->npages || new_npages == 0)
        return;
    bk_lock(&ph.lock);
    struct bk_region *r = s->region;
    size_t first = ((s->start - r->base) >> BK_PAGE_SHIFT) + new_npages;
    bk_buddy_free(&r->buddy, first, s->npages - new_npages, now_ms());
    mark_used(r, first, s->npages - new_npages, now_ms());
    ph.active_pages -= s->npages - new_npages;
    ph.dirty_pages += s->npages - new_npages;
    s->npages = new_npages;
    after_free(r);
    bk_unlock(&ph.lock);
}

bool bk_ph_grow_span(struct bk_span *s, size_t new_npages)
{
    if (s->kind != BK_SPAN_LARGE || new_npages <= s->npages)
        return false;
    bk_lock(&ph.lock);
    struct bk_region *r = s->region;
    size_t first = (s->start - r->base) >> BK_PAGE_SHIFT;
    uint32_t dirty_before = r->buddy.dirty_free;
    bool ok = first + new_npages <= BK_REGION_PAGES &&
              bk_buddy_claim(&r->buddy, first + s->npages, new_npages - s->npages);
    if (ok) {
        mark_used(r, first + s->npages, new_npages - s->npages, now_ms());
        ph.dirty_pages -= dirty_before - r->buddy.dirty_free;
        ph.active_pages += new_npages - s->npages;
        s->npages = new_npages;
    }
    bk_unlock(&ph.lock);
    return ok;
}

bool bk_ph_remap_huge(struct bk_span *s, size_t new_bytes)
{
    size_t old_bytes = s->npages << BK_PAGE_SHIFT;
    if (s->kind != BK_SPAN_HUGE)
        return false;
    /* Under the lock: the page map entry must never name a span whose
     * mapping moved. */
    bk_lock(&ph.lock);
    void *q = bk_os_remap((void *)s->start, old_bytes, new_bytes, NULL);
    if (q && (uintptr_t)q != s->start && !bk_pm_ensure((uintptr_t)q, BK_PAGE_SIZE)) {
        /* No page map leaf for the new place: move it back where it was
         * (the old range is free: the move unmapped it). */
        if (!bk_os_remap(q, new_bytes, old_bytes, (void *)s->start)) {
            static const char msg[] = "brisk: realloc(): a block moved by mremap could not "
                                      "be moved back (out of memory)\n";
            bk_os_write_stderr(msg, sizeof msg - 1);
            bk_os_abort();
        }
        q = NULL;
    }
    if (q) {
        bk_pm_set(s->start, 1, NULL, 0);
        s->start = (uintptr_t)q;
        bk_pm_set(s->start, 1, s, 0);
        ph.huge_bytes += new_bytes - old_bytes;
        s->npages = new_bytes >> BK_PAGE_SHIFT;
    }
    bk_unlock(&ph.lock);
    return q != NULL;
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

size_t bk_ph_release_all(bool keep_region)
{
    size_t pages = 0;
    bk_lock(&ph.lock);
    uint32_t now = now_ms();
    for (struct bk_region *r = ph.regions; r; r = r->next)
        pages += release_blocks(r, 0, BK_REGION_ORDER, now, 0, false);
    unmap_empty(now, 0, keep_region);
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
    st->regions_unmapped = ph.regions_unmapped;
    st->released_total = ph.released_pages << BK_PAGE_SHIFT;
    st->huge = ph.huge_bytes;
    st->mapped = ph.nregions * BK_REGION_SIZE + ph.huge_bytes;
    st->active = (ph.active_pages << BK_PAGE_SHIFT) + ph.huge_bytes;
    st->dirty_free = dirty << BK_PAGE_SHIFT;
    st->clean_free = (free_pages - dirty) << BK_PAGE_SHIFT;
    st->metadata = bk_pm_metadata_bytes();
    bk_unlock(&ph.lock);
}

size_t bk_ph_region_info(struct bk_ph_region_info *out, size_t max)
{
    size_t n = 0;
    bk_lock(&ph.lock);
    for (struct bk_region *r = ph.regions; r; r = r->next, n++) {
        if (n >= max)
            continue;
        struct bk_buddy_census c;
        bk_buddy_census(&r->buddy, BK_HUGEPAGE_ORDER, &c);
        out[n] = (struct bk_ph_region_info){
            .base = r->base,
            .large = r->large,
            .free_bytes = (size_t)r->buddy.free_pages << BK_PAGE_SHIFT,
            .dirty_bytes = (size_t)r->buddy.dirty_free << BK_PAGE_SHIFT,
            .largest_free = c.largest_order < 0 ? 0 : BK_PAGE_SIZE << c.largest_order,
            .free_blocks = c.free_blocks,
            .hugepages = BK_REGION_CHUNKS,
            .hugepages_free = c.chunks_free,
            .hugepages_free_dirty = c.chunks_free_dirty,
            .hugepages_partial = c.chunks_partial,
        };
    }
    bk_unlock(&ph.lock);
    return n;
}

void bk_ph_lock(void) { bk_lock(&ph.lock); }
void bk_ph_unlock(void) { bk_unlock(&ph.lock); }

