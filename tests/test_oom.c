/* Out of memory: under an RLIMIT_AS cap, allocations fail with NULL and
 * errno = ENOMEM (never a crash or an abort), a failed realloc leaves its
 * block intact, and once memory is freed brisk allocates again. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include <brisk.h>

#define CHECK(c)                                                          \
    do {                                                                  \
        if (!(c)) {                                                       \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c); \
            return 1;                                                     \
        }                                                                 \
    } while (0)

static size_t vm_size(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    size_t pages = 0;
    if (f) {
        if (fscanf(f, "%zu", &pages) != 1)
            pages = 0;
        fclose(f);
    }
    return pages * 4096;
}

/* Fill the capped address space with blocks of `size`; returns how many. */
static size_t exhaust(void **blocks, size_t max, size_t size)
{
    size_t n = 0;
    while (n < max) {
        errno = 0;
        void *p = brisk_malloc(size);
        if (!p) {
            if (errno != ENOMEM)
                return 0;
            break;
        }
        memset(p, 0x5a, size < 4096 ? size : 4096);
        blocks[n++] = p;
    }
    return n;
}

int main(void)
{
    static void *blocks[1 << 16];
    void *keep = brisk_malloc(100);
    CHECK(keep);
    memcpy(keep, "still here", 11);

    struct rlimit rl = { vm_size() + (256u << 20), RLIM_INFINITY };
    CHECK(setrlimit(RLIMIT_AS, &rl) == 0);

    size_t sizes[] = { 1 << 20, 100 << 10, 6000 };
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        size_t n = exhaust(blocks, sizeof blocks / sizeof *blocks, sizes[s]);
        CHECK(n > 0 && n < sizeof blocks / sizeof *blocks);
        errno = 0;
        CHECK(brisk_malloc(200u << 20) == NULL && errno == ENOMEM);
        errno = 0;
        CHECK(brisk_calloc(1, 200u << 20) == NULL && errno == ENOMEM);
        errno = 0;
        CHECK(brisk_realloc(keep, 200u << 20) == NULL && errno == ENOMEM);
        CHECK(strcmp(keep, "still here") == 0);
        void *aligned = (void *)1;
        CHECK(brisk_posix_memalign(&aligned, 1 << 20, 200u << 20) == ENOMEM);
        for (size_t i = 0; i < n; i++)
            brisk_free(blocks[i]);
        brisk_release_memory();
        /* Memory is back: the same amount fits again. */
        size_t again = exhaust(blocks, sizeof blocks / sizeof *blocks, sizes[s]);
        CHECK(again * 10 >= n * 9);
        for (size_t i = 0; i < again; i++)
            brisk_free(blocks[i]);
        brisk_release_memory();
        printf("size %zu: %zu blocks before ENOMEM, %zu after freeing\n", sizes[s], n, again);
    }
    brisk_free(keep);
    printf("ok\n");
    return 0;
}
