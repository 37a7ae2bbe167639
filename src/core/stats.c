/* Statistics (see stats.h). */
#include "stats.h"

#include <string.h>
#include "../os/os.h"
#include "../page_heap/meta.h"
#include "../page_heap/page_heap.h"
#include "central_list.h"
#include "large_alloc.h"
#include "size_class.h"

void bk_core_stats(struct brisk_stats *st)
{
    memset(st, 0, sizeof *st);
    struct bk_ph_stats ph;
    bk_ph_get_stats(&ph);
    st->mapped = ph.mapped;
    st->active = ph.active;
    st->released = ph.clean_free;
    st->released_total = ph.released_total;
    st->regions = ph.regions;
    st->regions_unmapped = ph.regions_unmapped;
    st->hugepage_backed = bk_os_anon_hugepage_bytes();
    st->metadata = bk_meta_bytes() + ph.metadata;
    st->large_allocated = bk_large_live_bytes();
    st->nclasses = BK_NUM_CLASSES - 1;
    for (unsigned cls = 1; cls < BK_NUM_CLASSES; cls++) {
        struct bk_central_stats cs;
        struct brisk_class_stats *out = &st->classes[cls - 1];
        bk_central_get_stats(cls, &cs);
        out->size = bk_classes[cls].size;
        out->spans = cs.spans;
        out->central_objects = cs.free_in_spans + cs.in_stripes;
        /* Until the thread caches are counted: everything out of the spans.
         * (The stripes are sampled after the class lock is dropped.) */
        out->live_objects =
            cs.objects > out->central_objects ? cs.objects - out->central_objects : 0;
    }
    st->resident = ph.active + ph.dirty_free + st->metadata;
}

void bk_stats_finish(struct brisk_stats *st)
{
    st->allocated = st->large_allocated;
    st->cached_bytes = st->central_bytes = 0;
    for (size_t i = 0; i < st->nclasses; i++) {
        struct brisk_class_stats *c = &st->classes[i];
        /* Caches are sampled without locks: clamp a torn read. */
        if (c->cached_objects > c->live_objects)
            c->cached_objects = c->live_objects;
        c->live_objects -= c->cached_objects;
        st->allocated += c->live_objects * c->size;
        st->cached_bytes += c->cached_objects * c->size;
        st->central_bytes += c->central_objects * c->size;
    }
}

static void write_text(FILE *out, const struct brisk_stats *st)
{
    fprintf(out,
            "brisk statistics\n"
            "  allocated      %12zu bytes (live: small objects at class size + large)\n"
            "  active         %12zu bytes (in spans)\n"
            "  resident       %12zu bytes (estimate)\n"
            "  mapped         %12zu bytes\n"
            "  metadata       %12zu bytes\n"
            "  released       %12zu bytes (free, given back to the kernel)\n"
            "  released total %12zu bytes (since start-up)\n"
            "  regions        %12zu (%zu unmapped since start-up)\n"
            "  hugepages      %12zu bytes (process AnonHugePages)\n"
            "  thread caches  %12zu (holding %zu bytes)\n"
            "  central lists  %12zu bytes free\n"
            "  %8s %10s %10s %10s %8s\n",
            st->allocated, st->active, st->resident, st->mapped, st->metadata, st->released,
            st->released_total, st->regions, st->regions_unmapped, st->hugepage_backed,
            st->thread_caches, st->cached_bytes, st->central_bytes, "class", "live", "cached",
            "central", "spans");
    for (size_t i = 0; i < st->nclasses; i++) {
        const struct brisk_class_stats *c = &st->classes[i];
        if (c->spans || c->live_objects || c->cached_objects)
            fprintf(out, "  %8zu %10zu %10zu %10zu %8zu\n", c->size, c->live_objects,
                    c->cached_objects, c->central_objects, c->spans);
    }
}

/* The page heap's regions, printed after the classes (at most
 * BK_STATS_REGIONS of them: 2 GiB of regions; the count covers them all). */
#define BK_STATS_REGIONS 32

struct region_list {
    size_t n, shown;
    struct bk_ph_region_info r[BK_STATS_REGIONS];
};

static void get_regions(struct region_list *l)
{
    l->n = bk_ph_region_info(l->r, BK_STATS_REGIONS);
    l->shown = l->n < BK_STATS_REGIONS ? l->n : BK_STATS_REGIONS;
}

static void write_regions_text(FILE *out, const struct region_list *l)
{
    fprintf(out, "  %18s %5s %10s %10s %6s %11s  %s\n", "region", "kind", "free KiB",
            "dirty KiB", "blocks", "largest KiB", "hugepages: free (dirty) / partly used / all");
    for (size_t i = 0; i < l->shown; i++) {
        const struct bk_ph_region_info *r = &l->r[i];
        fprintf(out, "  %#18zx %5s %10zu %10zu %6u %11zu  %u (%u) / %u / %u\n", (size_t)r->base,
                r->large ? "large" : "small", r->free_bytes >> 10, r->dirty_bytes >> 10,
                r->free_blocks, r->largest_free >> 10, r->hugepages_free,
                r->hugepages_free_dirty, r->hugepages_partial, r->hugepages);
    }
    if (l->n > l->shown)
        fprintf(out, "  ... and %zu more regions\n", l->n - l->shown);
}

static void write_regions_json(FILE *out, const struct region_list *l)
{
    fprintf(out, ",\"region_list\":[");
    for (size_t i = 0; i < l->shown; i++) {
        const struct bk_ph_region_info *r = &l->r[i];
        fprintf(out,
                "%s{\"base\":%zu,\"kind\":\"%s\",\"free\":%zu,\"dirty\":%zu,"
                "\"free_blocks\":%u,\"largest_free\":%zu,\"hugepages\":%u,"
                "\"hugepages_free\":%u,\"hugepages_free_dirty\":%u,\"hugepages_partial\":%u}",
                i ? "," : "", (size_t)r->base, r->large ? "large" : "small", r->free_bytes,
                r->dirty_bytes, r->free_blocks, r->largest_free, r->hugepages, r->hugepages_free,
                r->hugepages_free_dirty, r->hugepages_partial);
    }
    fprintf(out, "]");
}

static void write_json(FILE *out, const struct brisk_stats *st)
{
    fprintf(out,
            "{\"allocated\":%zu,\"active\":%zu,\"resident\":%zu,\"mapped\":%zu,"
            "\"metadata\":%zu,\"released\":%zu,\"released_total\":%zu,\"regions\":%zu,"
            "\"regions_unmapped\":%zu,\"hugepage_backed\":%zu,\"large_allocated\":%zu,"
            "\"thread_caches\":%zu,\"cached_bytes\":%zu,\"central_bytes\":%zu,\"classes\":[",
            st->allocated, st->active, st->resident, st->mapped, st->metadata, st->released,
            st->released_total, st->regions, st->regions_unmapped, st->hugepage_backed,
            st->large_allocated, st->thread_caches, st->cached_bytes, st->central_bytes);
    for (size_t i = 0; i < st->nclasses; i++) {
        const struct brisk_class_stats *c = &st->classes[i];
        fprintf(out, "%s{\"size\":%zu,\"live\":%zu,\"cached\":%zu,\"central\":%zu,\"spans\":%zu}",
                i ? "," : "", c->size, c->live_objects, c->cached_objects, c->central_objects,
                c->spans);
    }
    fprintf(out, "]");
}

void bk_stats_write(FILE *out, int json, const struct brisk_stats *st)
{
    struct region_list regions;   /* ~2 KiB */
    get_regions(&regions);
    if (json) {
        write_json(out, st);
        write_regions_json(out, &regions);
        fprintf(out, "}\n");
    } else {
        write_text(out, st);
        write_regions_text(out, &regions);
    }
    fflush(out);
}
