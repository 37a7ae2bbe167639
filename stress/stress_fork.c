/* stress_fork: fork while other threads allocate.
 *
 * T worker threads allocate, reallocate and free continuously (verifying
 * every block) while the main thread forks N times, and worker 0 forks now
 * and then too, so fork() lands in the middle of every allocator path the
 * workers happen to be in.  A few more forks happen before the workers
 * start and after they are gone, while the process is single-threaded
 * (ThreadSanitizer only checks the child of such a fork).  Each child:
 *   - verifies the blocks its forking thread held, then frees half of them;
 *   - allocates, verifies and frees a few thousand blocks itself;
 *   - starts a thread that does the same, and joins it;
 *   - every few forks, forks a grandchild that does the same again;
 *   - samples statistics and trims (which take every allocator lock);
 * and exits 0.  An alarm kills a child that deadlocks (for example on a lock
 * some vanished thread held at the fork).  The parent checks that every
 * child exited with status 0.
 *
 * No fork overlaps a thread's start or exit.  Those run in the sanitizers'
 * runtimes, which take their own allocator's locks there, and gcc 12's
 * libasan has no fork handlers (LLVM added them in version 18): a child
 * forked while a worker was starting inherited ASan's allocator lock held
 * and hung in its first calloc.  So the main thread forks only once every
 * worker runs, workers stop only when told to, and none exits before all of
 * them have left the loop in which worker 0 forks.
 *
 * usage: stress_fork [-t workers] [-n forks] [-x steps per child]
 *                    [-s max seconds] [-S seed] */
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "stress_common.h"

#define SLOTS 64
#define CHILD_ALARM_S 30

struct table {
    struct blk b[SLOTS];
    unsigned owner;
    rng_t r;
    long ops;
};

static atomic_int stop_workers, workers_running, workers_stopped;
static long child_steps = 1000;
static atomic_long forks_done, children_ok;

/* One random step on a slot table: allocate, free or reallocate. */
static void step(struct table *t)
{
    struct blk *b = &t->b[rng_below(&t->r, SLOTS)];
    t->ops++;
    if (!b->p) {
        /* Mostly small: a fork write-protects the parent's whole resident
         * set, and every page touched afterwards faults once, so a small
         * heap keeps 50 forks affordable.  Still every class, and now and
         * then a large block. */
        size_t size = rng_below(&t->r, 5000) == 0 ? pick_large_size(&t->r)
                                                   : pick_small_size(&t->r);
        if (size > 16 * KIB && rng_below(&t->r, 8) != 0)
            size = (size_t)rng_range(&t->r, 1, 16 * KIB);
        uint64_t x = rng_below(&t->r, 10);
        if (x < 6) {
            blk_init(b, S_malloc(size), size, 16, 1, t->owner);
        } else if (x < 8) {
            blk_init(b, S_calloc(1, size), size, 16, 2, t->owner);
            blk_check_zero(b);
        } else {
            size_t align = (size_t)32 << rng_below(&t->r, 8);
            blk_init(b, S_memalign(align, size), size, align, 3, t->owner);
        }
        blk_fill(b);
        return;
    }
    if (rng_below(&t->r, 4) == 0) {
        blk_check(b, "corrupted before realloc");
        size_t ns = pick_small_size(&t->r) | 1;
        size_t keep = b->size < ns ? b->size : ns;
        void *q = S_realloc(b->p, ns);
        CHECK(q != NULL, "realloc(%p, %zu) returned NULL", (void *)b->p, ns);
        b->p = q;
        blk_check_prefix(b, keep);
        blk_init(b, q, ns, 16, 4, t->owner);
        blk_fill(b);
        return;
    }
    blk_free(b, "corrupted before free");
}

static void table_free_all(struct table *t)
{
    for (int i = 0; i < SLOTS; i++)
        if (t->b[i].p)
            blk_free(&t->b[i], "corrupted at the end");
}

/* ---- the child -------------------------------------------------------------------- */

static void *child_thread(void *arg)
{
    struct table *t = arg;
    for (long i = 0; i < child_steps; i++)
        step(t);
    table_free_all(t);
    return NULL;
}

static int wait_child(pid_t pid, const char *who)
{
    int status;
    pid_t w;
    while ((w = waitpid(pid, &status, 0)) < 0 && errno == EINTR)
        ;
    if (w != pid) {
        fprintf(stderr, "%s: FAIL: waitpid(%d) for %s: %s\n", stress_prog, (int)pid, who,
                strerror(errno));
        return 0;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 1;
    if (WIFSIGNALED(status))
        fprintf(stderr, "%s: FAIL: %s %d killed by signal %d (%s)%s\n", stress_prog, who,
                (int)pid, WTERMSIG(status), strsignal(WTERMSIG(status)),
                WTERMSIG(status) == SIGALRM ? ": deadlocked after fork?" : "");
    else
        fprintf(stderr, "%s: FAIL: %s %d exited with status %d\n", stress_prog, who, (int)pid,
                WEXITSTATUS(status));
    return 0;
}

/* Everything a child (or grandchild) does; `held` is the forking thread's
 * table, copied into the child with the fork. */
static void child_body(struct table *held, long fork_no, int depth)
{
    alarm(CHILD_ALARM_S);
    for (int i = 0; i < SLOTS; i++)
        if (held->b[i].p)
            blk_check(&held->b[i], "block held at fork() is corrupted in the child");
    for (int i = 0; i < SLOTS; i += 2)
        if (held->b[i].p)
            blk_free(&held->b[i], "corrupted in the child");

    struct table mine = { .owner = 9000 + (unsigned)depth, .r = { (uint64_t)fork_no * 77 + 5 } };
    for (long i = 0; i < child_steps; i++)
        step(&mine);

    /* A new thread in the child: it gets a fresh thread cache. */
    struct table *tt = calloc(1, sizeof *tt);
    CHECK(tt != NULL, "out of memory");
    tt->owner = 9100 + (unsigned)depth;
    tt->r.s = (uint64_t)fork_no * 1234567 + 11;
    pthread_t th;
#ifdef STRESS_TSAN
    /* In the child, glibc hands a new thread the cached stack of a thread
     * that vanished at the fork, so it gets that thread's pthread_t, which
     * TSan still counts as running ("dup thread with used id").  A stack of
     * our own gives the thread an identity TSan has not seen. */
    size_t stack_size = 1 << 20;
    void *stack = mmap(NULL, stack_size, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    CHECK(stack != MAP_FAILED, "mmap for a thread stack: %s", strerror(errno));
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstack(&attr, stack, stack_size);
    int e = pthread_create(&th, &attr, child_thread, tt);
    CHECK(e == 0, "pthread_create in the child: %s", strerror(e));
    pthread_attr_destroy(&attr);
#else
    stress_pthread_create(&th, child_thread, tt);
#endif
    for (long i = 0; i < child_steps / 2; i++)
        step(&mine);
    stress_pthread_join(th);
#ifdef STRESS_TSAN
    munmap(stack, stack_size);
#endif
    free(tt);

    /* These take every allocator lock: a lock left held at the fork hangs
     * here (and the alarm fires). */
    S_stats();
    S_trim();

    if (depth == 0 && fork_no % 8 == 3) {
        pid_t g = fork();
        CHECK(g >= 0, "fork in the child: %s", strerror(errno));
        if (g == 0) {
            child_body(&mine, fork_no + 1000, 1);
            _exit(0);
        }
        if (!wait_child(g, "grandchild"))
            _exit(3);
    }
    table_free_all(&mine);
    table_free_all(held);
}

__attribute__((noreturn)) static void child_main(struct table *held, long fork_no)
{
    child_body(held, fork_no, 0);
    /* _exit: the blocks other threads held at the fork are not ours to free
     * (they are lost to the child by design), so skip exit-time leak checks
     * and destructors. */
    fflush(stdout);
    _exit(0);
}

static int do_fork(struct table *t, long fork_no, const char *who)
{
    pid_t pid = fork();
    CHECK(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0)
        child_main(t, fork_no);
    atomic_fetch_add(&forks_done, 1);
    int ok = wait_child(pid, who);
    if (ok)
        atomic_fetch_add(&children_ok, 1);
    return ok;
}

/* ---- workers ------------------------------------------------------------------------- */

static int worker_count;

static void wait_for_count(atomic_int *counter, int n)
{
    while (atomic_load(counter) < n)
        usleep(50);
}

struct worker {
    pthread_t th;
    struct table t;
    long forks;              /* worker 0: how many forks to make itself */
    int failed;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    long made = 0;
    atomic_fetch_add(&workers_running, 1);
    for (long i = 0; !atomic_load_explicit(&stop_workers, memory_order_relaxed); i++) {
        step(&w->t);
        if (made < w->forks && (i & 2047) == 2047) {
            if (!do_fork(&w->t, 500 + made, "child of a worker"))
                w->failed = 1;
            made++;
        }
        /* Leave the CPUs (2 on the CI machine) some room for the children,
         * which compete with these threads; the workers still spend most
         * of their time inside the allocator. */
        if ((i & 31) == 31)
            usleep(100);
    }
    atomic_fetch_add(&workers_stopped, 1);
    wait_for_count(&workers_stopped, worker_count);
    table_free_all(&w->t);
    return NULL;
}

int main(int argc, char **argv)
{
    struct stress_opts o = { .threads = 3, .iters = 50, .seconds = 60, .extra = 2000,
                             .seed = 0xf04c };
    stress_parse(argc, argv, &o, "[-t workers] [-n forks] [-x child steps] [-s seconds] [-S seed]");
    stress_check_backend();
    init_class_sizes();
    child_steps = o.extra;
    signal(SIGPIPE, SIG_IGN);

    struct table mt = { .owner = 999, .r = { o.seed ^ 0xabcdef } };
    int failed = 0;
    long forks = 0;

    /* Phase 1: forks while the process is still single-threaded.  The
     * children are the same (they verify, allocate, start a thread), but
     * here ThreadSanitizer keeps checking inside the child, which it stops
     * doing after a fork of a multithreaded process. */
    for (int k = 0; k < 3; k++, forks++) {
        for (int i = 0; i < 200; i++)
            step(&mt);
        if (!do_fork(&mt, forks, "child (single-threaded fork)"))
            failed = 1;
    }

    /* Phase 2: forks while the workers allocate. */
    struct worker *ws = calloc((size_t)o.threads, sizeof *ws);
    CHECK(ws != NULL, "out of memory");
    worker_count = (int)o.threads;
    for (long i = 0; i < o.threads; i++) {
        ws[i].t.owner = (unsigned)i;
        ws[i].t.r.s = o.seed + (uint64_t)i * 0x9E3779B97F4A7C15ull;
        ws[i].forks = i == 0 ? o.iters / 5 : 0;
        stress_pthread_create(&ws[i].th, worker_main, &ws[i]);
    }
    wait_for_count(&workers_running, worker_count);

    for (; forks < o.iters && !time_up(); forks++) {
        for (int i = 0; i < 200; i++)
            step(&mt);
        if (!do_fork(&mt, forks, "child"))
            failed = 1;
    }
    atomic_store(&stop_workers, 1);
    for (long i = 0; i < o.threads; i++) {
        stress_pthread_join(ws[i].th);
        failed |= ws[i].failed;
    }
    free(ws);

    /* Phase 3: single-threaded again, with the workers' caches recycled. */
    for (int k = 0; k < 2; k++, forks++) {
        for (int i = 0; i < 200; i++)
            step(&mt);
        if (!do_fork(&mt, forks, "child (single-threaded fork, after the workers)"))
            failed = 1;
    }
    table_free_all(&mt);
    CHECK(!failed, "a child failed (see above)");
    stress_done("%ld workers, %ld forks in all (%ld by the main thread), every child exited 0",
                o.threads, atomic_load(&forks_done), forks);
    return 0;
}
