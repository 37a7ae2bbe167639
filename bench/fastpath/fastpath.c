/* brisk_fastpath: a fixed loop of malloc/free pairs, for counting the
 * instructions of an allocator's fast path under callgrind.
 *
 *   brisk_fastpath <size> <pairs> [batch] [--null]
 *
 * batch = 1 (the default): `pairs` times malloc(size) then free of it.
 * batch = B: pairs / B rounds of B mallocs then B frees, in the order they
 * were allocated (pairs must be a multiple of B; at most 4096).
 * --null: the same loops calling two local no-op functions instead of
 * malloc and free, to measure the loop and call overhead alone.
 *
 * Allocator-neutral: run it under LD_PRELOAD.  The instructions of one pair
 * are (count(N2) - count(N1)) / (N2 - N1) for two pair counts N1 < N2,
 * which cancels start-up, the first-touch slow paths and exit:
 *
 *   valgrind --tool=callgrind --callgrind-out-file=/dev/null \
 *       --trace-children=yes env LD_PRELOAD=lib.so brisk_fastpath 32 100000
 *
 * and read "Collected : N" on stderr (bench/compare.py does this).  The
 * figure includes the loop, the calls and the PLT jumps (a handful of
 * instructions; --null shows how many). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BATCH 4096

/* Make the pointer escape so the compiler keeps every malloc/free pair;
 * costs no instruction. */
#define ESCAPE(p) __asm__ volatile("" : : "r"(p))

__attribute__((noinline)) static void *null_malloc(size_t size)
{
    static char block[64];
    __asm__ volatile("" : : "r"(size));
    return block;
}

__attribute__((noinline)) static void null_free(void *p)
{
    __asm__ volatile("" : : "r"(p));
}

static void *slots[MAX_BATCH];

static void run_single(size_t size, unsigned long pairs)
{
    for (unsigned long i = 0; i < pairs; i++) {
        void *p = malloc(size);
        ESCAPE(p);
        free(p);
    }
}

static void run_batch(size_t size, unsigned long rounds, unsigned batch)
{
    for (unsigned long r = 0; r < rounds; r++) {
        for (unsigned i = 0; i < batch; i++) {
            slots[i] = malloc(size);
            ESCAPE(slots[i]);
        }
        for (unsigned i = 0; i < batch; i++)
            free(slots[i]);
    }
}

static void run_single_null(size_t size, unsigned long pairs)
{
    for (unsigned long i = 0; i < pairs; i++) {
        void *p = null_malloc(size);
        ESCAPE(p);
        null_free(p);
    }
}

static void run_batch_null(size_t size, unsigned long rounds, unsigned batch)
{
    for (unsigned long r = 0; r < rounds; r++) {
        for (unsigned i = 0; i < batch; i++) {
            slots[i] = null_malloc(size);
            ESCAPE(slots[i]);
        }
        for (unsigned i = 0; i < batch; i++)
            null_free(slots[i]);
    }
}

static int parse_ulong(const char *s, unsigned long *out)
{
    char *end;
    if (s[0] < '0' || s[0] > '9')
        return -1;
    *out = strtoul(s, &end, 10);
    return *end == '\0' ? 0 : -1;
}

int main(int argc, char **argv)
{
    int null = 0;
    const char *pos[3];
    int npos = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--null") == 0)
            null = 1;
        else if (npos < 3)
            pos[npos++] = argv[i];
        else
            npos = 4;
    }
    unsigned long size, pairs, batch = 1;
    if (npos < 2 || npos > 3 || parse_ulong(pos[0], &size) != 0 ||
        parse_ulong(pos[1], &pairs) != 0 || (npos == 3 && parse_ulong(pos[2], &batch) != 0) ||
        batch == 0 || batch > MAX_BATCH || pairs % batch != 0) {
        fprintf(stderr,
                "usage: brisk_fastpath <size> <pairs> [batch] [--null]\n"
                "  batch: 1..%d, and pairs must be a multiple of it\n",
                MAX_BATCH);
        return 2;
    }

    if (batch == 1)
        (null ? run_single_null : run_single)(size, pairs);
    else
        (null ? run_batch_null : run_batch)(size, pairs / batch, (unsigned)batch);

    printf("fastpath size=%lu pairs=%lu batch=%lu%s\n", size, pairs, batch, null ? " null" : "");
    return 0;
}
