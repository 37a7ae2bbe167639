/* Bad input.  Every case runs in a fork()ed child whose stdout and stderr go
 * to pipes.  The child first announces on stdout the pointer it is about
 * to misuse, then makes the bad call; it must die of SIGABRT after printing
 * exactly one line on stderr: "brisk: <call>(): <problem> <pointer>".
 *
 * Options are read once, when brisk initialises, so the BRISK_CONF cases
 * re-execute this program (/proc/self/exe options) with the variable set
 * and check its output: a fork would inherit an allocator that has already
 * read its configuration. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "brisk.h"
#include "core/options.h"
#include "core/size_class.h"
#include "page_heap/page_map.h"
#include "page_heap/span.h"
#include "thread_cache/thread_cache.h"
#include "check.h"

/* ---- running a child --------------------------------------------------- */

struct outcome {
    int status;          /* from waitpid */
    char err[8192];      /* what the child wrote to stderr */
    char out[8192];      /* and to stdout */
};

static void read_all(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
        if (n == cap - 1) {      /* keep draining so the child never blocks */
            char sink[512];
            while (read(fd, sink, sizeof sink) > 0) {}
            break;
        }
    }
    buf[n] = '\0';
}

/* fork; in the child redirect stdout/stderr to pipes and run fn(arg) or,
 * with fn NULL, exec this program in `mode` with BRISK_CONF = conf. */
static void run_child(void (*fn)(void *), void *arg, const char *mode, const char *conf,
                      struct outcome *o)
{
    int efd[2], ofd[2];
    REQUIRE(pipe(efd) == 0 && pipe(ofd) == 0);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    REQUIRE(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        dup2(efd[1], 2);
        dup2(ofd[1], 1);
        close(efd[0]);
        close(efd[1]);
        close(ofd[0]);
        close(ofd[1]);
        alarm(60);
        if (fn) {
            fn(arg);
            fflush(stdout);
            _exit(0);           /* survived: the parent reports it */
        }
        if (conf)
            setenv("BRISK_CONF", conf, 1);
        else
            unsetenv("BRISK_CONF");
        execl("/proc/self/exe", "test_errors", mode, (char *)NULL);
        _exit(126);
    }
    close(efd[1]);
    close(ofd[1]);
    /* outputs are small: stdout fits in the pipe while stderr is read */
    read_all(efd[0], o->err, sizeof o->err);
    read_all(ofd[0], o->out, sizeof o->out);
    close(efd[0]);
    close(ofd[0]);
    while (waitpid(pid, &o->status, 0) < 0 && errno == EINTR) {}
}

static void describe(const struct outcome *o, char *buf, size_t cap)
{
    if (WIFSIGNALED(o->status))
        snprintf(buf, cap, "was killed by signal %d", WTERMSIG(o->status));
    else if (WIFEXITED(o->status))
        snprintf(buf, cap, "exited with status %d", WEXITSTATUS(o->status));
    else
        snprintf(buf, cap, "status %#x", o->status);
}

/* Called in the child: tell the parent which pointer is about to be
 * misused (the parent cannot know: the child's heap is its own). */
static void announce(const void *p)
{
    printf("%p\n", p);
    fflush(stdout);
}

/* The child died of SIGABRT after printing exactly the one line
 * "brisk: <what> <announced pointer>\n". */
static void expect_abort(const char *name, const struct outcome *o, const char *what)
{
    char how[64], want[256], ptr[64];
    describe(o, how, sizeof how);
    if (!(WIFSIGNALED(o->status) && WTERMSIG(o->status) == SIGABRT)) {
        CHECK(0, "%s: child %s, want SIGABRT after \"brisk: %s %.*s\" (stderr: \"%s\")", name,
              how, what, (int)strcspn(o->out, "\n"), o->out, o->err);
        return;
    }
    size_t len = strlen(o->err);
    CHECK(len > 0 && strchr(o->err, '\n') == o->err + len - 1,
          "%s: want exactly one line on stderr, got \"%s\"", name, o->err);
    CHECK(strncmp(o->err, "brisk: ", 7) == 0, "%s: line does not start with \"brisk: \": \"%s\"",
          name, o->err);
    CHECK(strstr(o->err, what) != NULL, "%s: \"%s\" missing from \"%s\"", name, what, o->err);
    /* the announced pointer, then the exact line */
    size_t plen = strcspn(o->out, "\n");
    if (plen == 0 || plen >= sizeof ptr) {
        CHECK(0, "%s: the child announced no pointer (stdout \"%s\")", name, o->out);
        return;
    }
    memcpy(ptr, o->out, plen);
    ptr[plen] = '\0';
    snprintf(want, sizeof want, "brisk: %s %s\n", what, ptr);
    CHECK(strcmp(o->err, want) == 0, "%s: got \"%s\", want \"%s\"", name, o->err, want);
}

/* ---- invalid pointers ------------------------------------------------------ */

enum call { FREE, REALLOC, USABLE, FREE_SIZED };

static const char *call_name[] = { "free(): invalid pointer", "realloc(): invalid pointer",
                                   "malloc_usable_size(): invalid pointer",
                                   "free(): invalid pointer" };

static void make_call(enum call c, void *p)
{
    announce(p);
    switch (c) {
    case FREE: brisk_free(p); break;
    case REALLOC: (void)brisk_realloc(p, 100); break;
    case USABLE: (void)brisk_malloc_usable_size(p); break;
    case FREE_SIZED: brisk_free_sized(p, 64); break;
    }
}

static char global_buf[64] __attribute__((aligned(16)));

/* Each returns the bad pointer. */
static void *bad_stack(void)
{
    static volatile uintptr_t a;           /* launder: gcc warns on free(local) */
    char local[64];
    memset(local, 0, sizeof local);
    a = (uintptr_t)local + 16;
    return (void *)a;
}
static void *bad_global(void) { return global_buf + 16; }
static void *bad_small_middle(void) { return (char *)brisk_malloc(100) + 16; }  /* class 112 */
static void *bad_small_plus1(void) { return (char *)brisk_malloc(64) + 1; }
static void *bad_large_first_page(void) { return (char *)brisk_malloc(1 << 20) + 4096; }
static void *bad_large_later_page(void) { return (char *)brisk_malloc(1 << 20) + 5 * 8192; }
static void *bad_huge_middle(void) { return (char *)brisk_malloc(40 << 20) + (1 << 20); }

/* An address brisk never returned in the unused tail of a small span, past
 * its last object but on the span's object grid (offset objects * size):
 * 48-byte objects in an 8 KiB span leave a 32-byte tail at 8160. */
static void *bad_span_tail(void)
{
    unsigned cls = bk_size_to_class(48);
    const struct bk_class_info *ci = &bk_classes[cls];
    char *p = brisk_malloc(48);
    struct bk_span *s = bk_pm_span((uintptr_t)p);
    size_t span = (size_t)ci->span_pages * BK_PAGE_SIZE;
    if (!s || s->cls != cls || (size_t)ci->objects * ci->size + 16 > span) {
        fprintf(stderr, "setup: the 48-byte class has no tail to test\n");
        _exit(3);
    }
    return (void *)(s->start + (uintptr_t)ci->objects * ci->size);
}

/* An object slot of a live span on a page not carved yet: spans are carved
 * 4 KiB at a time, and a process's first 4 KiB allocation carves only the
 * span's first 4 KiB (one object), so slot 12 (page 6 of 8) was never
 * handed out and its page has class 0. */
static void *bad_uncarved_slot(void)
{
    char *p = brisk_malloc(4096);
    struct bk_span *s = bk_pm_span((uintptr_t)p);
    uintptr_t slot = s ? s->start + 12 * 4096 : 0;
    if (!s || s->npages < 8 || slot < s->carved) {
        fprintf(stderr, "setup: the 4 KiB span is carved past slot 12\n");
        _exit(3);
    }
    brisk_free(p);    /* cached: the list now has room, so only the class byte stops the fast path */
    return (void *)slot;
}

/* The uncarved half of a half-carved page: after the first 4 KiB
 * allocation, slot 1 shares the brisk page (8 KiB) of slot 0 and the tree's
 * class byte, but lies in a piece not carved yet (window byte 0, above the
 * span's carved bound). */
static void *bad_half_carved_slot(void)
{
    char *p = brisk_malloc(4096);
    struct bk_span *s = bk_pm_span((uintptr_t)p);
    if (!s || (uintptr_t)p != s->start || s->carved != s->start + 4096) {
        fprintf(stderr, "setup: not the first 4 KiB block of a fresh span\n");
        _exit(3);
    }
    uintptr_t w = bk_pm_window_index((uintptr_t)p + 4096);
    if (w < BK_PM_WINDOW_SLOTS && bk_pm_window[w] != 0) {
        fprintf(stderr, "the window has a class for a piece not carved yet\n");
        _exit(3);
    }
    brisk_free(p);    /* cached: the list now has room, so only the class byte stops the fast path */
    return p + 4096;
}

/* A large block already freed: its span is gone (the first page no longer
 * maps to anything), so the second free is an invalid pointer. */
static void *bad_freed_large(void)
{
    void *keep = brisk_malloc(1 << 20);   /* keeps its region's leaves busy */
    (void)keep;
    void *p = brisk_malloc(1 << 20);
    brisk_free(p);
    return p;
}

static const struct bad_case {
    const char *name;
    void *(*make)(void);
    enum call call;
} bad_cases[] = {
    { "free(stack pointer)", bad_stack, FREE },
    { "free(global)", bad_global, FREE },
    { "free(middle of a small block)", bad_small_middle, FREE },
    { "free(small block + 1)", bad_small_plus1, FREE },
    { "free(large block + 4096)", bad_large_first_page, FREE },
    { "free(large block + 5 pages)", bad_large_later_page, FREE },
    { "free(huge block + 1 MiB)", bad_huge_middle, FREE },
    { "free(tail of a small span)", bad_span_tail, FREE },
    { "free(slot on a page of a span not carved yet)", bad_uncarved_slot, FREE },
    { "malloc_usable_size(slot on a page not carved yet)", bad_uncarved_slot, USABLE },
    { "free(uncarved half of a half-carved page)", bad_half_carved_slot, FREE },
    { "malloc_usable_size(uncarved half of a half-carved page)", bad_half_carved_slot, USABLE },
    { "realloc(uncarved half of a half-carved page)", bad_half_carved_slot, REALLOC },
    { "free(large block already freed)", bad_freed_large, FREE },
    { "free_sized(middle of a small block)", bad_small_middle, FREE_SIZED },
    { "realloc(stack pointer)", bad_stack, REALLOC },
    { "realloc(middle of a small block)", bad_small_middle, REALLOC },
    { "realloc(large block + 4096)", bad_large_first_page, REALLOC },
    { "realloc(huge block + 1 MiB)", bad_huge_middle, REALLOC },
    { "malloc_usable_size(stack pointer)", bad_stack, USABLE },
    { "malloc_usable_size(middle of a small block)", bad_small_middle, USABLE },
    { "malloc_usable_size(large block + 5 pages)", bad_large_later_page, USABLE },
    { "malloc_usable_size(small block + 1)", bad_small_plus1, USABLE },
    { "realloc(small block + 1)", bad_small_plus1, REALLOC },
    { "malloc_usable_size(tail of a small span)", bad_span_tail, USABLE },
    { "realloc(tail of a small span)", bad_span_tail, REALLOC },
    { "realloc(slot on a page not carved yet)", bad_uncarved_slot, REALLOC },
};

static void bad_child(void *arg)
{
    const struct bad_case *c = arg;
    make_call(c->call, c->make());
}

static void test_bad_pointers(void)
{
    static struct outcome o;
    for (unsigned i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        run_child(bad_child, (void *)&bad_cases[i], NULL, NULL, &o);
        expect_abort(bad_cases[i].name, &o, call_name[bad_cases[i].call]);
    }
}

/* ---- double free ------------------------------------------------------------ */

#define DF "free(): double free of"

static void double_free(void *p)
{
    announce(p);
    brisk_free(p);
}

static void df_immediate(void *arg)
{
    (void)arg;
    void *p = brisk_malloc(64);
    brisk_free(p);
    double_free(p);
}

static void df_interleaved(void *arg)
{
    (void)arg;
    void *p = brisk_malloc(64);
    void *q[10], *r[10];
    for (int i = 0; i < 10; i++) {
        q[i] = brisk_malloc(64);
        r[i] = brisk_malloc(200 + 100 * (size_t)i);
    }
    brisk_free(p);
    for (int i = 0; i < 10; i++) {
        brisk_free(q[i]);
        brisk_free(r[i]);
    }
    double_free(p);
}

/* 10000 frees of the same class between the two frees of p. */
static void df_many_between(void *arg)
{
    (void)arg;
    enum { N = 10000 };
    static void *q[N];
    void *p = brisk_malloc(64);
    for (int i = 0; i < N; i++)
        q[i] = brisk_malloc(64);
    brisk_free(p);
    for (int i = 0; i < N; i++)
        brisk_free(q[i]);
    double_free(p);
}

/* p alone is flushed to its span's free list by brisk_release_memory (the
 * malloc_trim behind it); a live neighbour keeps the span. */
static void df_after_trim_single(void *arg)
{
    (void)arg;
    void *keep = brisk_malloc(64);
    void *p = brisk_malloc(64);
    (void)keep;
    brisk_free(p);
    brisk_release_memory();
    double_free(p);
}

/* p is the most recently freed of a full batch when the cache is flushed
 * by brisk_release_memory, so it is the first block of a batch pushed to a
 * central stripe (then drained back to its span). */
static void df_after_trim_batch(void *arg)
{
    (void)arg;
    unsigned batch = bk_classes[bk_size_to_class(64)].batch;
    void *keep = brisk_malloc(64);
    static void *b[64];
    (void)keep;
    for (unsigned i = 0; i < batch; i++)
        b[i] = brisk_malloc(64);
    for (unsigned i = 1; i < batch; i++)
        brisk_free(b[i]);
    brisk_free(b[0]);
    brisk_release_memory();
    double_free(b[0]);
}

/* A thread frees a batch, p last, and exits: its cache is flushed and p
 * heads a full batch parked on a stripe.  The second free comes from the
 * main thread. */
static void *free_batch_then_exit(void *arg)
{
    void **b = arg;
    unsigned batch = bk_classes[bk_size_to_class(64)].batch;
    for (unsigned i = 1; i < batch; i++)
        brisk_free(b[i]);
    brisk_free(b[0]);
    return NULL;
}

static void df_after_thread_exit(void *arg)
{
    (void)arg;
    unsigned batch = bk_classes[bk_size_to_class(64)].batch;
    void *keep = brisk_malloc(64);
    static void *b[64];
    (void)keep;
    for (unsigned i = 0; i < batch; i++)
        b[i] = brisk_malloc(64);
    pthread_t t;
    if (pthread_create(&t, NULL, free_batch_then_exit, b) != 0)
        _exit(4);
    pthread_join(t, NULL);
    double_free(b[0]);
}

/* The cache overflows: free blocks until a free makes the cache flush a
 * batch (its block count drops); the flushed batch was headed by the block
 * freed just before, which is then freed again. */
static void df_overflow_flush(void *arg)
{
    (void)arg;
    unsigned cls = bk_size_to_class(64);
    enum { N = 5000 };
    static void *q[N];
    void *keep = brisk_malloc(64);
    (void)keep;
    for (int i = 0; i < N; i++)
        q[i] = brisk_malloc(64);
    uint32_t count = 0;
    for (int i = 0; i < N; i++) {
        brisk_free(q[i]);
        uint32_t now = bk_tc->cap[cls] - bk_tc_lists.room[cls];
        if (i > 0 && now < count + 1) {
            double_free(q[i - 1]);
            return;              /* not caught: the parent reports it */
        }
        count = now;
    }
    fprintf(stderr, "setup: the cache never flushed\n");
    _exit(3);
}

/* A large block's span is gone after the first free. */
static void df_large(void *arg)
{
    (void)arg;
    void *keep = brisk_malloc(1 << 20);
    void *p = brisk_malloc(1 << 20);
    (void)keep;
    brisk_free(p);
    announce(p);
    brisk_free(p);
}

/* realloc and malloc_usable_size of a freed small block: a same-class
 * realloc must not hand the block back as live while it is free. */
static void freed_realloc(void *arg)
{
    (void)arg;
    void *p = brisk_malloc(32);
    brisk_free(p);
    announce(p);
    (void)brisk_realloc(p, 24);
}

static void freed_usable(void *arg)
{
    (void)arg;
    void *p = brisk_malloc(32);
    brisk_free(p);
    announce(p);
    (void)brisk_malloc_usable_size(p);
}

/* An object slot of a carved piece that was never handed out carries the
 * free mark carving gave it: realloc and malloc_usable_size call it freed. */
static void *never_handed_out_slot(void)
{
    uintptr_t p = (uintptr_t)brisk_malloc(64);
    uintptr_t piece = p & ~(uintptr_t)4095;
    return (void *)(p == piece + 4096 - 64 ? piece : piece + 4096 - 64);
}

static void never_handed_out_realloc(void *arg)
{
    (void)arg;
    void *p = never_handed_out_slot();
    announce(p);
    (void)brisk_realloc(p, 24);
}

static void never_handed_out_usable(void *arg)
{
    (void)arg;
    void *p = never_handed_out_slot();
    announce(p);
    (void)brisk_malloc_usable_size(p);
}

/* A "free" of an object slot of a live span that was never handed out, in a
 * carved piece (p's own 4 KiB, carved whole when p was): carving marks every
 * slot free, so this is a double free. */
static void df_never_handed_out(void *arg)
{
    (void)arg;
    uintptr_t p = (uintptr_t)brisk_malloc(64);
    uintptr_t piece = p & ~(uintptr_t)4095;
    uintptr_t slot = p == piece + 4096 - 64 ? piece : piece + 4096 - 64;
    double_free((void *)slot);
}

static void test_double_free(void)
{
    static const struct {
        const char *name;
        void (*fn)(void *);
        const char *what;
    } cases[] = {
        { "double free, immediate", df_immediate, DF },
        { "double free, other frees between", df_interleaved, DF },
        { "double free, 10000 frees between", df_many_between, DF },
        { "double free after trim (alone on its span)", df_after_trim_single, DF },
        { "double free after trim (head of a full batch)", df_after_trim_batch, DF },
        { "double free after the freeing thread exited", df_after_thread_exit, DF },
        { "double free after a cache-overflow flush", df_overflow_flush, DF },
        { "double free of a large block", df_large, "free(): invalid pointer" },
        { "double free of a slot never handed out", df_never_handed_out, DF },
        { "realloc of a freed block", freed_realloc, "realloc(): pointer to a freed block" },
        { "malloc_usable_size of a freed block", freed_usable,
          "malloc_usable_size(): pointer to a freed block" },
        { "realloc of a slot never handed out", never_handed_out_realloc,
          "realloc(): pointer to a freed block" },
        { "malloc_usable_size of a slot never handed out", never_handed_out_usable,
          "malloc_usable_size(): pointer to a freed block" },
    };
    static struct outcome o;
    for (unsigned i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        run_child(cases[i].fn, NULL, NULL, NULL, &o);
        expect_abort(cases[i].name, &o, cases[i].what);
    }
}

/* The mechanism behind double-free detection, checked directly: every
 * freed small block whose span is still in use carries its free mark in
 * word 1, wherever it went (thread cache, a batch on a stripe, a span's
 * free list).  Runs in a child so the parent's heap stays untouched. */
static void marks_child(void *arg)
{
    (void)arg;
    unsigned cls = bk_size_to_class(64);
    enum { N = 20000 };
    static void *q[N];
    for (int i = 0; i < N; i++)
        q[i] = brisk_malloc(64);
    /* every 50th block stays live, so every span stays */
    for (int i = 0; i < N; i++)
        if (i % 50)
            brisk_free(q[i]);
    unsigned missing[2] = { 0, 0 }, total = 0;
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1)
            brisk_release_memory();   /* now everything is in the central lists */
        total = 0;
        for (int i = 0; i < N; i++) {
            if (i % 50 == 0)
                continue;
            uintptr_t a = (uintptr_t)q[i];
            struct bk_span *s = bk_pm_span(a);
            if (!s || s->cls != cls)
                continue;
            total++;
            if (((uintptr_t *)q[i])[1] != bk_free_mark(a))
                missing[pass]++;
        }
    }
    printf("%u %u %u\n", missing[0], missing[1], total);
}

static void test_free_marks(void)
{
    static struct outcome o;
    run_child(marks_child, NULL, NULL, NULL, &o);
    unsigned m0 = 1, m1 = 1, total = 0;
    if (!(WIFEXITED(o.status) && WEXITSTATUS(o.status) == 0 &&
          sscanf(o.out, "%u %u %u", &m0, &m1, &total) == 3)) {
        CHECK(0, "free-mark child failed: stdout \"%s\" stderr \"%s\"", o.out, o.err);
        return;
    }
    CHECK(total > 19000, "only %u freed blocks checked", total);
    CHECK(m0 == 0, "%u of %u freed blocks lost their free mark after the frees", m0, total);
    CHECK(m1 == 0, "%u of %u freed blocks lost their free mark after brisk_release_memory", m1,
          total);
}

/* ---- BRISK_CONF, through a fresh process ------------------------------------- */

static unsigned count_lines(const char *s)
{
    unsigned n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* Lines of s that start with "brisk: ". */
static unsigned brisk_lines(const char *s)
{
    unsigned n = 0;
    for (const char *l = s; *l;) {
        n += strncmp(l, "brisk: ", 7) == 0;
        const char *nl = strchr(l, '\n');
        if (!nl)
            break;
        l = nl + 1;
    }
    return n;
}

/* Mode of the exec'd child: initialise brisk, print the option values. */
static int child_report_options(void)
{
    void *p = brisk_malloc(10);
    brisk_free(p);
    for (unsigned i = 0; i < BK_OPT_COUNT; i++)
        printf("%s=%zu\n", bk_options[i].name, bk_opt(i));
    return 0;
}

static void test_conf(void)
{
    static struct outcome o;
    char how[64], want[128];

    /* no BRISK_CONF: silent, defaults */
    run_child(NULL, NULL, "options", NULL, &o);
    describe(&o, how, sizeof how);
    CHECK(WIFEXITED(o.status) && WEXITSTATUS(o.status) == 0, "options child %s", how);
    CHECK(brisk_lines(o.err) == 0, "no BRISK_CONF, yet brisk printed \"%s\"", o.err);
    for (unsigned i = 0; i < BK_OPT_COUNT; i++) {
        snprintf(want, sizeof want, "%s=%zu\n", bk_options[i].name, bk_options[i].def);
        CHECK(strstr(o.out, want) != NULL, "default %s missing from \"%s\"", want, o.out);
    }

    /* an unknown key and a bad value: one line each, defaults kept */
    run_child(NULL, NULL, "options", "nosuch=1,tcache_max_bytes=bogus", &o);
    describe(&o, how, sizeof how);
    CHECK(WIFEXITED(o.status) && WEXITSTATUS(o.status) == 0, "options child %s", how);
    CHECK(count_lines(o.err) == 2 && brisk_lines(o.err) == 2,
          "want exactly two brisk warnings, got \"%s\"", o.err);
    CHECK(strstr(o.err, "brisk: BRISK_CONF: unknown option 'nosuch' (ignored)\n") != NULL,
          "no unknown-option warning in \"%s\"", o.err);
    CHECK(strstr(o.err, "brisk: BRISK_CONF: invalid value 'bogus' for option tcache_max_bytes "
                        "(keeping the default 4M)\n") != NULL,
          "no invalid-value warning in \"%s\"", o.err);
    for (unsigned i = 0; i < BK_OPT_COUNT; i++) {
        snprintf(want, sizeof want, "%s=%zu\n", bk_options[i].name, bk_options[i].def);
        CHECK(strstr(o.out, want) != NULL, "after bad BRISK_CONF: %s missing from \"%s\"", want,
              o.out);
    }

    /* valid settings take effect, silently */
    run_child(NULL, NULL, "options", "stripes=3,dirty_max=1g,stats_format=json", &o);
    CHECK(brisk_lines(o.err) == 0, "valid BRISK_CONF warned: \"%s\"", o.err);
    CHECK(strstr(o.out, "stripes=3\n") && strstr(o.out, "stats_format=1\n") &&
              strstr(o.out, "dirty_max=1073741824\n"),
          "settings not applied: \"%s\"", o.out);

    /* stats_print: statistics on stderr at exit, as text or JSON */
    run_child(NULL, NULL, "options", "stats_print=1", &o);
    describe(&o, how, sizeof how);
    CHECK(WIFEXITED(o.status) && WEXITSTATUS(o.status) == 0, "stats_print child %s", how);
    CHECK(strstr(o.err, "brisk statistics\n") != NULL, "stats_print=1 printed \"%s\"", o.err);
    CHECK(strstr(o.err, "thread caches") != NULL, "stats_print=1 printed \"%s\"", o.err);
    run_child(NULL, NULL, "options", "stats_print=true,stats_format=json", &o);
    CHECK(strstr(o.err, "{\"allocated\":") != NULL && !strstr(o.err, "brisk statistics"),
          "stats_print with json printed \"%s\"", o.err);
    run_child(NULL, NULL, "options", "stats_print=0", &o);
    CHECK(strstr(o.err, "statistics") == NULL && strstr(o.err, "allocated") == NULL,
          "stats_print=0 printed \"%s\"", o.err);
}

int main(int argc, char **argv)
{
    if (argc > 1) {
        if (strcmp(argv[1], "options") == 0)
            return child_report_options();
        fprintf(stderr, "unknown mode %s\n", argv[1]);
        return 2;
    }
    test_bad_pointers();
    test_double_free();
    test_free_marks();
    test_conf();
    return check_report("test_errors");
}
