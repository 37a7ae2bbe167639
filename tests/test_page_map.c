/* The page map over fake addresses: only the map's own leaves are touched,
 * never the addresses it describes (most are not mapped at all, so a stray
 * access would crash the test).  Nothing here calls brisk_malloc, so the
 * map holds only what this test puts in it. */
#include <stdint.h>
#include <string.h>

#include "page_heap/page_map.h"
#include "page_heap/span.h"
#include "check.h"

#define GIB ((uintptr_t)1 << 30)
#define PG  ((uintptr_t)BK_PAGE_SIZE)
#define TOP ((uintptr_t)1 << BK_PM_ADDR_BITS)

static struct bk_span spans[4];

/* The class byte the free() fast path sees for a: the window's byte, or 0
 * (slow path) outside the window. */
static unsigned fast_class(uintptr_t a)
{
    uintptr_t w = bk_pm_window_index(a);
    return w < BK_PM_WINDOW_SLOTS ? bk_pm_window[w] : 0;
}

static size_t window_nonzero(void)
{
    size_t n = 0;
    for (uintptr_t i = 0; i < BK_PM_WINDOW_SLOTS; i++)
        n += bk_pm_window[i] != 0;
    return n;
}

/* Before the first ensure the window holds no address at all: every
 * lookup, NULL and the top of memory included, is outside it. */
static void test_window_unplaced(void)
{
    const uintptr_t probe[] = { 0, 4096, 0x400000, 0x300000000000ull, TOP - 1, TOP,
                                UINTPTR_MAX, (uintptr_t)1 << 63 };
    for (unsigned i = 0; i < sizeof probe / sizeof probe[0]; i++)
        CHECK(bk_pm_window_index(probe[i]) >= BK_PM_WINDOW_SLOTS,
              "%#lx is inside the unplaced window", (unsigned long)probe[i]);
}

/* Placement for both layouts: top-down (above 64 TiB) keeps 16 GiB above
 * the first region, less up to 64 MiB lost to rounding the start down;
 * bottom-up keeps 16 GiB below it, plus up to 64 MiB; an address too low
 * for its side clamps at 0. */
static void test_window_placement(void)
{
    const uintptr_t top_down[] = { 0x7f1234567000ull, 0x7fffffe00000ull, (uintptr_t)1 << 46 };
    for (unsigned i = 0; i < sizeof top_down / sizeof top_down[0]; i++) {
        uintptr_t a = top_down[i], start = bk_pm_window_start_for(a);
        uintptr_t end = start + ((uintptr_t)1 << BK_PM_WINDOW_SHIFT);
        CHECK(start % (64u << 20) == 0 && a >= start && end - a <= BK_PM_WINDOW_ABOVE &&
                  end - a > BK_PM_WINDOW_ABOVE - (64u << 20),
              "top-down: window [%#lx, %#lx) around %#lx", (unsigned long)start,
              (unsigned long)end, (unsigned long)a);
    }
    const uintptr_t bottom_up[] = { 0x2aaaaaaab000ull, 0x2aaab4000000ull, ((uintptr_t)1 << 46) - PG };
    for (unsigned i = 0; i < sizeof bottom_up / sizeof bottom_up[0]; i++) {
        uintptr_t a = bottom_up[i], start = bk_pm_window_start_for(a);
        CHECK(start % (64u << 20) == 0 && a - start >= BK_PM_WINDOW_ABOVE &&
                  a - start < BK_PM_WINDOW_ABOVE + (64u << 20),
              "bottom-up: window at %#lx around %#lx", (unsigned long)start, (unsigned long)a);
    }
    CHECK(bk_pm_window_start_for(0x10000000ull) == 0, "a low address does not clamp at 0");
}

static void test_set_clear(void)
{
    uintptr_t base = 0x300000000000ull;          /* 48 TiB: far from anything */
    CHECK(fast_class(base) == 0 && bk_pm_span(base) == NULL, "no leaf yet, yet an entry");
    REQUIRE(bk_pm_ensure(base, 64 * PG), "ensure failed");
    CHECK(bk_pm_root[base >> BK_PM_LEAF_SHIFT] != NULL, "leaf not published");
    CHECK(bk_pm_window_index(base) >= BK_PM_WINDOW_SLOTS, "an ensure placed the window");
    /* the page heap places the window at its first region: base is below
     * 64 TiB, where only the bottom-up layout puts mappings, so the window
     * has 16 GiB below base and the rest above, on a 64 MiB boundary */
    bk_pm_window_place(base);
    bk_pm_window_place(base + ((uintptr_t)1 << 40));     /* placed once only */
    uintptr_t wstart = bk_pm_window_first << BK_PM_SLOT_SHIFT;
    uintptr_t wend = wstart + (BK_PM_WINDOW_SLOTS << BK_PM_SLOT_SHIFT);
    CHECK(wstart % (64u << 20) == 0, "window start %#lx not 64 MiB aligned",
          (unsigned long)wstart);
    CHECK(base >= wstart && base - wstart == BK_PM_WINDOW_ABOVE,
          "window [%#lx, %#lx) badly placed around %#lx", (unsigned long)wstart,
          (unsigned long)wend, (unsigned long)base);
    CHECK(bk_pm_window_index(wstart - 1) >= BK_PM_WINDOW_SLOTS &&
              bk_pm_window_index(wend) >= BK_PM_WINDOW_SLOTS &&
              bk_pm_window_index(wstart) == 0 &&
              bk_pm_window_index(wend - 1) == BK_PM_WINDOW_SLOTS - 1,
          "window edges");
    CHECK(window_nonzero() == 0, "fresh window not empty");
    for (uintptr_t a = base; a < base + 64 * PG; a += PG / 2)
        CHECK_LIMITED(fast_class(a) == 0 && bk_pm_span(a) == NULL,
                      "fresh leaf not empty at %#lx", (unsigned long)a);

    bk_pm_set(base + 4 * PG, 8, &spans[0], 17);
    for (uintptr_t a = base; a < base + 64 * PG; a += 16) {
        int in = a >= base + 4 * PG && a < base + 12 * PG;
        CHECK_LIMITED(fast_class(a) == (in ? 17u : 0u), "class at +%#lx: %u",
                      (unsigned long)(a - base), fast_class(a));
        CHECK_LIMITED(bk_pm_span(a) == (in ? &spans[0] : NULL), "span at +%#lx",
                      (unsigned long)(a - base));
    }
    CHECK(window_nonzero() == 8 * PG / BK_PM_SLOT_SIZE, "window holds %zu classed slots, want %lu",
          window_nonzero(), (unsigned long)(8 * PG / BK_PM_SLOT_SIZE));
    CHECK(bk_pm_window_index(base + PG) - bk_pm_window_index(base) == PG / BK_PM_SLOT_SIZE,
          "a page is not %lu slots", (unsigned long)(PG / BK_PM_SLOT_SIZE));
    /* overwrite part of it, then clear part of it */
    bk_pm_set(base + 8 * PG, 2, &spans[1], 96);
    CHECK(fast_class(base + 7 * PG + PG - 1) == 17, "page 7 lost its class");
    CHECK(fast_class(base + 8 * PG) == 96 && bk_pm_span(base + 9 * PG + 5) == &spans[1],
          "overwrite not visible");
    CHECK(fast_class(base + 10 * PG) == 17 && bk_pm_span(base + 10 * PG) == &spans[0],
          "page 10 changed by an overwrite of 8..9");
    CHECK(fast_class(base + 9 * PG + PG / 2) == 96 && fast_class(base + 7 * PG + PG / 2) == 17,
          "window not overwritten slot by slot");

    /* carving a piece: the window slot of that piece only, the tree's page */
    bk_pm_set(base + 40 * PG, 2, &spans[1], 0);
    bk_pm_set_class(base + 40 * PG + BK_PM_SLOT_SIZE, 5);
    for (uintptr_t a = base + 40 * PG; a < base + 42 * PG; a += 256) {
        int in = a >= base + 40 * PG + BK_PM_SLOT_SIZE && a < base + 40 * PG + 2 * BK_PM_SLOT_SIZE;
        CHECK_LIMITED(fast_class(a) == (in ? 5u : 0u), "piece: window class at +%#lx: %u",
                      (unsigned long)(a - base), fast_class(a));
    }
    CHECK(bk_pm_span(base + 40 * PG) == &spans[1] && bk_pm_span(base + 41 * PG) == &spans[1],
          "carving a piece changed the tree's spans");
    bk_pm_set(base + 40 * PG, 2, NULL, 0);
    bk_pm_set(base + 4 * PG, 8, NULL, 0);
    for (uintptr_t a = base; a < base + 64 * PG; a += PG)
        CHECK_LIMITED(fast_class(a) == 0 && bk_pm_span(a) == NULL, "not cleared at +%#lx",
                      (unsigned long)(a - base));
    CHECK(window_nonzero() == 0, "window not cleared");

    /* a large span: only its first page, class 0 */
    bk_pm_set(base + 32 * PG, 1, &spans[2], 0);
    CHECK(fast_class(base + 32 * PG) == 0 && bk_pm_span(base + 32 * PG + 100) == &spans[2],
          "large-span entry");
    CHECK(bk_pm_span(base + 33 * PG) == NULL, "large span leaked onto its second page");
    bk_pm_set(base + 32 * PG, 1, NULL, 0);
    CHECK(bk_pm_span(base + 32 * PG) == NULL, "large-span entry not cleared");

    /* ensure is idempotent: the leaf stays, entries survive */
    bk_pm_set(base, 1, &spans[3], 5);
    struct bk_pm_leaf *leaf = bk_pm_root[base >> BK_PM_LEAF_SHIFT];
    size_t meta = bk_pm_metadata_bytes();
    CHECK(bk_pm_ensure(base, GIB / 2), "second ensure failed");
    CHECK(bk_pm_root[base >> BK_PM_LEAF_SHIFT] == leaf, "leaf replaced by a second ensure");
    CHECK(bk_pm_metadata_bytes() == meta, "second ensure mapped %zu more bytes",
          bk_pm_metadata_bytes() - meta);
    CHECK(fast_class(base) == 5 && bk_pm_span(base) == &spans[3], "entry lost");
    bk_pm_set(base, 1, NULL, 0);
}

static void test_leaf_boundaries(void)
{
    /* a range that straddles the boundary between GiB 5 and GiB 6 */
    uintptr_t edge = 0x200000000000ull + 6 * GIB;
    uintptr_t start = edge - 3 * PG;
    size_t meta = bk_pm_metadata_bytes();
    CHECK(bk_pm_root[(edge - 1) >> BK_PM_LEAF_SHIFT] == NULL &&
              bk_pm_root[edge >> BK_PM_LEAF_SHIFT] == NULL,
          "leaves exist before ensure");
    REQUIRE(bk_pm_ensure(start, 6 * PG), "ensure across a GiB boundary");
    CHECK(bk_pm_root[(edge - 1) >> BK_PM_LEAF_SHIFT] != NULL, "lower leaf missing");
    CHECK(bk_pm_root[edge >> BK_PM_LEAF_SHIFT] != NULL, "upper leaf missing");
    CHECK(bk_pm_root[(edge >> BK_PM_LEAF_SHIFT) + 1] == NULL, "leaf past the range created");
    CHECK(bk_pm_root[((edge - 1) >> BK_PM_LEAF_SHIFT) - 1] == NULL,
          "leaf before the range created");
    CHECK(bk_pm_metadata_bytes() == meta + 2 * sizeof(struct bk_pm_leaf),
          "metadata grew by %zu, want two leaves", bk_pm_metadata_bytes() - meta);
    bk_pm_set(start, 6, &spans[1], 42);
    for (uintptr_t a = start - PG; a < start + 7 * PG; a += PG / 4) {
        int in = a >= start && a < start + 6 * PG;
        CHECK_LIMITED(bk_pm_span(a) == (in ? &spans[1] : NULL), "span at edge%+ld",
                      (long)(a - edge));
    }
    /* last page of one leaf and first of the next are distinct slots */
    bk_pm_set(edge - PG, 1, &spans[2], 0);
    CHECK(bk_pm_span(edge - 1) == &spans[2] && bk_pm_span(edge) == &spans[1],
          "edge slots aliased");
    bk_pm_set(start, 6, NULL, 0);
    for (uintptr_t a = start; a < start + 6 * PG; a += PG)
        CHECK(bk_pm_span(a) == NULL, "not cleared at edge%+ld",
              (long)(a - edge));

    /* a range spanning three leaves */
    uintptr_t s3 = 0x280000000000ull + GIB - PG;
    REQUIRE(bk_pm_ensure(s3, GIB + 2 * PG), "ensure over three leaves");
    for (int i = 0; i < 3; i++)
        CHECK(bk_pm_root[(s3 >> BK_PM_LEAF_SHIFT) + (uintptr_t)i] != NULL, "leaf %d missing", i);
    CHECK(bk_pm_span(s3 + GIB / 2) == NULL, "middle leaf not empty");

    /* these ranges lie outside the window (placed by test_set_clear at 48
     * TiB): the tree has their spans, the fast path sees class 0, and
     * nothing was written into the window for them */
    bk_pm_set(s3, 4, &spans[0], 11);
    CHECK(bk_pm_span(s3) == &spans[0] && fast_class(s3) == 0 && window_nonzero() == 0,
          "a page outside the window reached it");
    bk_pm_set(s3, 4, NULL, 0);
}

/* A page at the window's last slot and one just past it. */
static void test_window_edges(void)
{
    uintptr_t wend = (bk_pm_window_first + BK_PM_WINDOW_SLOTS) << BK_PM_SLOT_SHIFT;
    REQUIRE(bk_pm_ensure(wend - 2 * PG, 4 * PG), "ensure at the window's end");
    bk_pm_set(wend - 2 * PG, 4, &spans[1], 21);
    CHECK(fast_class(wend - PG) == 21 && fast_class(wend - 2 * PG) == 21,
          "last window pages: %u %u", fast_class(wend - 2 * PG), fast_class(wend - PG));
    CHECK(fast_class(wend) == 0 && bk_pm_span(wend) == &spans[1], "page past the window");
    CHECK(bk_pm_window[BK_PM_WINDOW_SLOTS - 1] == 21 &&
              window_nonzero() == 2 * PG / BK_PM_SLOT_SIZE,
          "window slots written: %zu", window_nonzero());
    bk_pm_set(wend - 2 * PG, 4, NULL, 0);
    CHECK(window_nonzero() == 0, "window end not cleared");
}

static void test_limits(void)
{
    size_t meta = bk_pm_metadata_bytes();
    CHECK(!bk_pm_ensure(TOP, 1), "ensure accepted 2^47");
    CHECK(!bk_pm_ensure(TOP + GIB * 7, PG), "ensure accepted 2^47 + 7 GiB");
    CHECK(!bk_pm_ensure(TOP - PG, 2 * PG), "ensure accepted a range crossing 2^47");
    CHECK(!bk_pm_ensure(UINTPTR_MAX - PG, 4 * PG), "ensure accepted a wrapping range");
    CHECK(!bk_pm_ensure((uintptr_t)1 << 63, 1), "ensure accepted 2^63");
    CHECK(bk_pm_metadata_bytes() == meta, "a rejected ensure mapped a leaf");
    /* the last page below 2^47 is fine */
    CHECK(bk_pm_ensure(TOP - PG, PG), "ensure of the last page below 2^47 failed");
    bk_pm_set(TOP - PG, 1, &spans[0], 3);
    CHECK(bk_pm_span(TOP - 1) == &spans[0],
          "entry of the last page");
    /* lookups above the map's range are 0 / NULL, not out-of-bounds reads */
    const uintptr_t above[] = { TOP, TOP + PG, TOP + 5 * GIB, (uintptr_t)1 << 48,
                                (uintptr_t)1 << 56, UINTPTR_MAX, UINTPTR_MAX - PG + 1,
                                0xffff800000000000ull };
    for (unsigned i = 0; i < sizeof above / sizeof above[0]; i++) {
        CHECK(fast_class(above[i]) == 0, "class of %#lx is %u", (unsigned long)above[i],
              fast_class(above[i]));
        CHECK(bk_pm_span(above[i]) == NULL, "span of %#lx", (unsigned long)above[i]);
    }
    bk_pm_set(TOP - PG, 1, NULL, 0);
}

static void test_null(void)
{
    CHECK(fast_class(0) == 0 && bk_pm_span(0) == NULL, "NULL before its leaf exists");
    /* with the leaf of GiB 0 present (as after brisk maps low memory) NULL
     * still has class 0 and no span */
    REQUIRE(bk_pm_ensure(PG * 16, PG), "ensure in GiB 0");
    CHECK(bk_pm_root[0] != NULL, "GiB 0 leaf missing");
    bk_pm_set(PG * 16, 1, &spans[0], 9);
    CHECK(fast_class((uintptr_t)NULL) == 0, "class of NULL is %u", fast_class(0));
    CHECK(bk_pm_span((uintptr_t)NULL) == NULL, "span of NULL");
    CHECK(bk_pm_span(PG * 16 + 8) == &spans[0], "entry next to NULL");
    bk_pm_set(PG * 16, 1, NULL, 0);
}

int main(void)
{
    test_window_unplaced();
    test_window_placement();
    test_set_clear();
    test_leaf_boundaries();
    test_limits();
    test_null();
    test_window_edges();
    return check_report("test_page_map");
}
