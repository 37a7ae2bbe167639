/* Page map leaves and updates (see page_map.h for the invariants). */
#include "page_map.h"
#include "../os/os.h"

struct bk_pm_leaf *bk_pm_root[1u << BK_PM_ROOT_BITS];
uintptr_t bk_pm_window_first = (UINTPTR_MAX >> BK_PM_SLOT_SHIFT) + 1;   /* above every slot */
struct bk_pm_fast bk_pm_fast;
static size_t leaf_bytes_mapped;

/* Top-down (the default layout: mappings start just below the stack, far
 * above 64 TiB, and each new one lands below the last): the window's top
 * is BK_PM_WINDOW_ABOVE above addr, the rest below.  Bottom-up (the legacy
 * layout, e.g. under `ulimit -s unlimited`: mappings start near a third of
 * the address space and climb): the other way round.  Either way rounded
 * down to 64 MiB, and clamped at address 0.  The 64 TiB threshold assumes
 * x86-64's 47-bit user address space (BK_PM_ADDR_BITS); with a smaller one
 * every layout reads as bottom-up, which costs only fast-path coverage. */
uintptr_t bk_pm_window_start_for(uintptr_t addr)
{
    uintptr_t span = (uintptr_t)1 << BK_PM_WINDOW_SHIFT;
    bool top_down = addr >= (uintptr_t)1 << 46;
    uintptr_t below = top_down ? span - BK_PM_WINDOW_ABOVE : BK_PM_WINDOW_ABOVE;
    uintptr_t base = addr > below ? addr - below : 0;
    return base & ~(((uintptr_t)64 << 20) - 1);
}

void bk_pm_window_place(uintptr_t addr)
{
    if (bk_pm_window_first > (UINTPTR_MAX >> BK_PM_SLOT_SHIFT))
        bk_store_relaxed(&bk_pm_window_first, bk_pm_window_start_for(addr) >> BK_PM_SLOT_SHIFT);
}

bool bk_pm_ensure(uintptr_t addr, size_t len)
{
    if (len == 0)
        len = 1;
    uintptr_t last = addr + len - 1;
    if (last < addr || (last >> BK_PM_LEAF_SHIFT) >= ((uintptr_t)1 << BK_PM_ROOT_BITS))
        return false;
    for (uintptr_t i = addr >> BK_PM_LEAF_SHIFT; i <= last >> BK_PM_LEAF_SHIFT; i++) {
        if (bk_pm_root[i])
            continue;
        struct bk_pm_leaf *leaf = bk_os_map(sizeof *leaf, 4096);
        if (!leaf)
            return false;
        leaf_bytes_mapped += sizeof *leaf;
        bk_store_release(&bk_pm_root[i], leaf);
    }
    return true;
}

void bk_pm_set(uintptr_t addr, size_t npages, struct bk_span *s, unsigned cls)
{
    for (size_t i = 0; i < npages; i++) {
        uintptr_t a = addr + (i << BK_PAGE_SHIFT);
        struct bk_pm_leaf *leaf = bk_pm_root[a >> BK_PM_LEAF_SHIFT];
        size_t idx = bk_pm_index(a);
        bk_store_relaxed(&leaf->span[idx], s);
        for (uintptr_t o = 0; o < BK_PAGE_SIZE; o += BK_PM_SLOT_SIZE) {
            uintptr_t w = bk_pm_window_index(a + o);
            if (w < BK_PM_WINDOW_SLOTS)
                bk_store_relaxed(&bk_pm_window[w], (uint8_t)cls);
        }
    }
}

void bk_pm_set_class(uintptr_t addr, unsigned cls)
{
    uintptr_t w = bk_pm_window_index(addr);
    if (w < BK_PM_WINDOW_SLOTS)
        bk_store_relaxed(&bk_pm_window[w], (uint8_t)cls);
}

size_t bk_pm_metadata_bytes(void)
{
    return leaf_bytes_mapped;
}
