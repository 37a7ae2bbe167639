/* Run under LD_PRELOAD=libbrisk.so (not linked with brisk): memory that
 * libc allocates and hands to the program must be brisk's.
 *
 * brisk_malloc_usable_size() is looked up with dlsym, so the program only
 * works when libbrisk.so was preloaded; it reports and aborts on a pointer
 * brisk never returned, so a block from any other allocator cannot pass. */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <execinfo.h>
#include <glob.h>
#include <limits.h>
#include <netdb.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <wchar.h>

static size_t (*usable)(void *);
static void (*stats)(void *);
static int failures, checked;

#define CHECK(cond, ...)                                           \
    do {                                                           \
        if (!(cond)) {                                             \
            fprintf(stderr, "libc_alloc: FAIL line %d: ", __LINE__); \
            fprintf(stderr, __VA_ARGS__);                          \
            fputc('\n', stderr);                                   \
            failures++;                                            \
        }                                                          \
    } while (0)

/* First field of struct brisk_stats: the bytes the program holds. */
static size_t allocated(void)
{
    static size_t st[4096];
    stats(st);
    return st[0];
}

static void owned(const char *what, void *p, size_t need)
{
    CHECK(p != NULL, "%s returned NULL", what);
    if (!p)
        return;
    size_t n = usable(p);
    CHECK(n >= need, "%s: brisk usable size %zu < %zu", what, n, need);
    checked++;
}

static char *format(const char *fmt, ...)
{
    char *out = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&out, fmt, ap);
    va_end(ap);
    return n < 0 ? NULL : out;
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "/usr/include";
    usable = (size_t (*)(void *))dlsym(RTLD_DEFAULT, "brisk_malloc_usable_size");
    stats = (void (*)(void *))dlsym(RTLD_DEFAULT, "brisk_stats");
    if (!usable || !stats) {
        fprintf(stderr, "libc_alloc: brisk is not in this process (run it with LD_PRELOAD=libbrisk.so)\n");
        return 1;
    }
    Dl_info info;
    void *m = dlsym(RTLD_DEFAULT, "malloc");
    CHECK(m && dladdr(m, &info) && strstr(info.dli_fname, "libbrisk"),
          "malloc resolves to %s", m && dladdr(m, &info) ? info.dli_fname : "?");

    /* strdup / strndup / wcsdup, and the accounting: a 100000-byte copy
     * must show in brisk's statistics. */
    size_t n = 100000;
    char *text = malloc(n + 1);
    memset(text, 'a', n);
    text[n] = '\0';
    size_t before = allocated();
    char *dup = strdup(text);
    size_t after = allocated();
    owned("strdup", dup, n + 1);
    CHECK(after >= before + n + 1, "strdup: brisk's allocated %zu -> %zu", before, after);
    free(dup);
    char *ndup = strndup(text, 5000);
    owned("strndup", ndup, 5001);
    free(ndup);
    wchar_t *w = wcsdup(L"brisk wide string");
    owned("wcsdup", w, sizeof(wchar_t) * (wcslen(L"brisk wide string") + 1));
    free(w);

    /* getline and getdelim on a long line from a memory stream */
    char *src = malloc(n + 2);
    memcpy(src, text, n);
    src[n] = '\n';
    src[n + 1] = 'z';
    FILE *f = fmemopen(src, n + 2, "r");
    char *line = NULL;
    size_t cap = 0;
    CHECK(getline(&line, &cap, f) == (ssize_t)n + 1, "getline length");
    owned("getline", line, n + 2);
    char *rest = NULL;
    size_t rcap = 0;
    CHECK(getdelim(&rest, &rcap, '\n', f) == 1, "getdelim length");
    owned("getdelim", rest, 2);
    fclose(f);
    free(line);
    free(rest);
    free(src);

    /* scandir: the array and every entry */
    struct dirent **names = NULL;
    int count = scandir(dir, &names, NULL, alphasort);
    CHECK(count > 2, "scandir(%s) returned %d", dir, count);
    if (count > 0) {
        owned("scandir array", names, sizeof(*names) * (size_t)count);
        for (int i = 0; i < count; i++) {
            owned("scandir entry", names[i], offsetof(struct dirent, d_name) + strlen(names[i]->d_name) + 1);
            free(names[i]);
        }
        free(names);
    }

    /* open_memstream growing to ~1 MiB */
    char *buf = NULL;
    size_t size = 0;
    FILE *ms = open_memstream(&buf, &size);
    for (int i = 0; i < 70000; i++)
        fprintf(ms, "line %09d\n", i);
    fclose(ms);
    CHECK(size == 70000u * 15, "open_memstream size %zu", size);
    owned("open_memstream", buf, size + 1);
    free(buf);

    /* asprintf / vasprintf */
    char *a = NULL;
    CHECK(asprintf(&a, "%s|%d", text + n - 3000, 7) == 3002, "asprintf length");
    owned("asprintf", a, 3003);
    free(a);
    char *v = format("%0*d", 20000, 5);
    owned("vasprintf", v, 20001);
    free(v);

    /* realpath, canonicalize_file_name, getcwd, tempnam-free variants */
    char *real = realpath(dir, NULL);
    owned("realpath", real, real ? strlen(real) + 1 : 1);
    free(real);
    char *canon = canonicalize_file_name("/usr/../usr/include/../include");
    owned("canonicalize_file_name", canon, canon ? strlen(canon) + 1 : 1);
    free(canon);
    char *cwd = getcwd(NULL, 0);
    owned("getcwd", cwd, cwd ? strlen(cwd) + 1 : 1);
    free(cwd);

    /* glob: the path vector and its strings */
    glob_t g;
    char pattern[PATH_MAX];
    snprintf(pattern, sizeof pattern, "%s/*.h", dir);
    if (glob(pattern, 0, NULL, &g) == 0) {
        owned("glob gl_pathv", g.gl_pathv, sizeof(char *) * g.gl_pathc);
        owned("glob path", g.gl_pathv[0], strlen(g.gl_pathv[0]) + 1);
        globfree(&g);
    } else {
        CHECK(0, "glob(%s) found nothing", pattern);
    }

    /* getaddrinfo on numeric addresses (no network): freeaddrinfo frees
     * what libc allocated */
    struct addrinfo hints = { .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV }, *res = NULL;
    CHECK(getaddrinfo("127.0.0.1", "80", &hints, &res) == 0, "getaddrinfo");
    if (res) {
        owned("getaddrinfo", res, sizeof *res);
        freeaddrinfo(res);
    }

    /* backtrace_symbols returns one malloc'd block */
    void *frames[8];
    int depth = backtrace(frames, 8);
    char **syms = backtrace_symbols(frames, depth);
    owned("backtrace_symbols", syms, sizeof(char *) * (size_t)depth);
    free(syms);

    free(text);
    if (failures) {
        fprintf(stderr, "libc_alloc: %d failure(s)\n", failures);
        return 1;
    }
    printf("libc_alloc: OK, %d blocks from libc functions are brisk's\n", checked);
    return 0;
}
