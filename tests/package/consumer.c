/* A downstream program built against an installed brisk.  It checks that
 * the malloc family it calls is brisk's, and that memory libc allocates on
 * its behalf (strdup, getline, open_memstream, asprintf, realpath, getcwd)
 * comes from brisk as well.
 *
 * Built three ways by tests/package/run.sh: against libbrisk.so (find_package
 * and pkg-config), against libbrisk.a in a dynamic executable
 * (CONSUMER_LINKS_ARCHIVE), and fully static (gcc -static, also
 * CONSUMER_LINKS_ARCHIVE).  argv[1], when given for a libbrisk.so build, is
 * the directory the shared library must have been loaded from. */
#define _GNU_SOURCE
#include <brisk.h>

#include <dlfcn.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failures;

#define CHECK(cond, ...)                                                  \
    do {                                                                  \
        if (!(cond)) {                                                    \
            fprintf(stderr, "consumer: FAIL %s:%d: ", __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                                 \
            fputc('\n', stderr);                                          \
            failures++;                                                   \
        }                                                                 \
    } while (0)

typedef void (*fn_t)(void);

/* Compare two function addresses without letting the compiler fold the
 * comparison (distinct declarations are assumed to have distinct addresses). */
static int same_function(fn_t a, fn_t b)
{
    volatile uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;
    return x == y;
}

static size_t allocated_now(void)
{
    static struct brisk_stats st;
    brisk_stats(&st);
    return st.allocated;
}

/* p must be a live block of at least `need` bytes that brisk handed out.
 * brisk_malloc_usable_size() aborts with a report for a pointer brisk does
 * not own, so merely returning proves ownership. */
static void owned(const char *what, void *p, size_t need)
{
    CHECK(p != NULL, "%s returned NULL", what);
    if (!p)
        return;
    size_t usable = brisk_malloc_usable_size(p);
    CHECK(usable >= need, "%s: brisk usable size %zu < %zu", what, usable, need);
    CHECK(malloc_usable_size(p) == usable, "%s: malloc_usable_size %zu != brisk's %zu", what,
          malloc_usable_size(p), usable);
}

static void check_symbols(void)
{
    CHECK(same_function((fn_t)malloc, (fn_t)brisk_malloc), "malloc is not brisk_malloc");
    CHECK(same_function((fn_t)free, (fn_t)brisk_free), "free is not brisk_free");
    CHECK(same_function((fn_t)calloc, (fn_t)brisk_calloc), "calloc is not brisk_calloc");
    CHECK(same_function((fn_t)realloc, (fn_t)brisk_realloc), "realloc is not brisk_realloc");
    CHECK(same_function((fn_t)posix_memalign, (fn_t)brisk_posix_memalign),
          "posix_memalign is not brisk_posix_memalign");
    CHECK(same_function((fn_t)aligned_alloc, (fn_t)brisk_aligned_alloc),
          "aligned_alloc is not brisk_aligned_alloc");
    CHECK(same_function((fn_t)malloc_usable_size, (fn_t)brisk_malloc_usable_size),
          "malloc_usable_size is not brisk_malloc_usable_size");
}

#if !defined(CONSUMER_LINKS_ARCHIVE)
/* libbrisk.so: malloc must resolve into it, loaded from the expected place,
 * and it must be in this process's mappings. */
static void check_shared_library(const char *expect_dir)
{
    Dl_info info;
    void *sym = dlsym(RTLD_DEFAULT, "malloc");
    CHECK(sym != NULL, "dlsym(malloc) failed");
    CHECK(sym && dladdr(sym, &info) && info.dli_fname && strstr(info.dli_fname, "libbrisk.so"),
          "malloc resolves to %s, not libbrisk.so", sym && dladdr(sym, &info) ? info.dli_fname : "?");
    if (expect_dir && sym && dladdr(sym, &info)) {
        char lib[PATH_MAX], dir[PATH_MAX];
        CHECK(realpath(info.dli_fname, lib) && realpath(expect_dir, dir) &&
                  strncmp(lib, dir, strlen(dir)) == 0 && lib[strlen(dir)] == '/',
              "libbrisk loaded from %s, expected a file under %s", info.dli_fname, expect_dir);
        printf("consumer: malloc from %s\n", info.dli_fname);
    }
    FILE *maps = fopen("/proc/self/maps", "r");
    char *line = NULL;
    size_t cap = 0;
    int mapped = 0;
    while (maps && getline(&line, &cap, maps) > 0)
        mapped |= strstr(line, "libbrisk.so") != NULL;
    CHECK(mapped, "libbrisk.so is not in /proc/self/maps");
    free(line);
    if (maps)
        fclose(maps);
}
#else
static void check_archive(void)
{
    /* The allocator is part of the executable: no libbrisk.so may be
     * mapped, and libc's own calls must still reach brisk (checked below). */
    FILE *maps = fopen("/proc/self/maps", "r");
    char *line = NULL;
    size_t cap = 0;
    int mapped = 0;
    while (maps && getline(&line, &cap, maps) > 0)
        mapped |= strstr(line, "libbrisk.so") != NULL;
    CHECK(!mapped, "libbrisk.so is mapped although the program links libbrisk.a");
    free(line);
    if (maps)
        fclose(maps);
}
#endif

static void check_accounting(void)
{
    size_t before = allocated_now();
    size_t big = 4u << 20;
    char *p = malloc(big);
    memset(p, 1, big);
    size_t during = allocated_now();
    CHECK(during >= before + big, "malloc(4 MiB): allocated %zu -> %zu", before, during);
    free(p);
    size_t after = allocated_now();
    CHECK(after + big <= during, "free(4 MiB): allocated %zu -> %zu", during, after);
}

/* Memory that libc allocates and the program frees. */
static void check_libc_allocations(void)
{
    size_t n = 200000;
    char *text = malloc(n + 1);
    memset(text, 'x', n);
    text[n] = '\0';

    size_t before = allocated_now();
    char *dup = strdup(text);
    size_t after = allocated_now();
    owned("strdup", dup, n + 1);
    CHECK(after >= before + n + 1, "strdup(200000): allocated %zu -> %zu", before, after);
    CHECK(dup && strcmp(dup, text) == 0, "strdup copy differs");
    free(dup);

    char *ndup = strndup(text, 1000);
    owned("strndup", ndup, 1001);
    free(ndup);

    /* getline on a 300000-byte line. */
    size_t linelen = 300000;
    char *src = malloc(linelen + 2);
    memset(src, 'y', linelen);
    src[linelen] = '\n';
    src[linelen + 1] = '\0';
    FILE *f = fmemopen(src, linelen + 1, "r");
    CHECK(f != NULL, "fmemopen failed");
    char *line = NULL;
    size_t cap = 0;
    ssize_t got = f ? getline(&line, &cap, f) : -1;
    CHECK(got == (ssize_t)linelen + 1, "getline returned %zd", got);
    owned("getline", line, linelen + 2);
    free(line);
    if (f)
        fclose(f);
    free(src);

    /* open_memstream growing to 1 MiB. */
    char *buf = NULL;
    size_t size = 0;
    FILE *ms = open_memstream(&buf, &size);
    CHECK(ms != NULL, "open_memstream failed");
    for (int i = 0; ms && i < 65536; i++)
        fprintf(ms, "%015d\n", i);
    if (ms)
        fclose(ms);
    CHECK(size == 65536u * 16, "open_memstream size %zu", size);
    owned("open_memstream", buf, size + 1);
    free(buf);

    char *fmt = NULL;
    int len = asprintf(&fmt, "%s-%d", text + n - 50000, 42);
    CHECK(len == 50003, "asprintf returned %d", len);
    owned("asprintf", fmt, (size_t)len + 1);
    free(fmt);

    char *real = realpath(".", NULL);
    owned("realpath", real, real ? strlen(real) + 1 : 1);
    free(real);
    char *cwd = getcwd(NULL, 0);
    owned("getcwd", cwd, cwd ? strlen(cwd) + 1 : 1);
    free(cwd);
    free(text);
}

/* A little cross-thread traffic: blocks allocated here, freed by workers. */
#define WORKERS 4
#define PER_WORKER 20000
static void *worker(void *arg)
{
    void **blocks = arg;
    for (int i = 0; i < PER_WORKER; i++) {
        free(blocks[i]);
        void *q = malloc((size_t)(i % 700) + 1);
        if (!q)
            return (void *)1;
        free(q);
    }
    return NULL;
}

static void check_threads(void)
{
    static void *blocks[WORKERS][PER_WORKER];
    pthread_t t[WORKERS];
    for (int w = 0; w < WORKERS; w++)
        for (int i = 0; i < PER_WORKER; i++)
            blocks[w][i] = malloc((size_t)(i * 7 % 4000) + 1);
    for (int w = 0; w < WORKERS; w++)
        CHECK(pthread_create(&t[w], NULL, worker, blocks[w]) == 0, "pthread_create");
    for (int w = 0; w < WORKERS; w++) {
        void *rc = NULL;
        pthread_join(t[w], &rc);
        CHECK(rc == NULL, "worker %d failed", w);
    }
}

int main(int argc, char **argv)
{
    (void)argc;
    check_symbols();
#if !defined(CONSUMER_LINKS_ARCHIVE)
    check_shared_library(argc > 1 ? argv[1] : NULL);
#else
    (void)argv;
    check_archive();
#endif
    check_accounting();
    check_libc_allocations();
    check_threads();
    if (failures) {
        fprintf(stderr, "consumer: %d check(s) failed\n", failures);
        return 1;
    }
    printf("consumer: OK (%s)\n",
#if defined(CONSUMER_LINKS_ARCHIVE)
           "libbrisk.a"
#else
           "libbrisk.so"
#endif
    );
    return 0;
}
