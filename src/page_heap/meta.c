/* Metadata arena (see meta.h). */
#include "meta.h"
#include "../os/lock.h"
#include "../os/os.h"

#define META_CHUNK ((size_t)1 << 20)

static bk_lock_t meta_lock = BK_LOCK_INIT;
static char *cursor, *limit;
static size_t mapped;

void *bk_meta_alloc(size_t size, size_t align)
{
    bk_lock(&meta_lock);
    cursor = (char *)bk_align_up((uintptr_t)cursor, align);
    if (cursor > limit || (size_t)(limit - cursor) < size) {
        size_t chunk = size > META_CHUNK ? bk_align_up(size, 4096) : META_CHUNK;
        char *c = bk_os_map(chunk, 4096);
        if (!c) {
            bk_unlock(&meta_lock);
            return NULL;
        }
        mapped += chunk;
        cursor = c;
        limit = c + chunk;
    }
    void *p = cursor;
    cursor += size;
    bk_unlock(&meta_lock);
    return p;
}

size_t bk_meta_bytes(void)
{
    return bk_load_relaxed(&mapped);
}

void bk_meta_lock_all(void) { bk_lock(&meta_lock); }
void bk_meta_unlock_all(void) { bk_unlock(&meta_lock); }
