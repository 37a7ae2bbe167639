/* Thread cache slow paths, lifecycle and registry (see thread_cache.h). */
#include "thread_cache.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <unistd.h>

#include "../core/central_list.h"
#include "../core/decay.h"
#include "../core/error.h"
#include "../core/large_alloc.h"
#include "../core/options.h"
#include "../os/lock.h"
#include "../os/os.h"
#include "../page_heap/meta.h"

static struct bk_tcache bk_tc_dead;    /* this thread's cache was destroyed */

__thread struct bk_tc_lists bk_tc_lists __attribute__((tls_model("initial-exec")));
__thread struct bk_tcache *bk_tc __attribute__((tls_model("initial-exec")));   /* NULL: none yet */

static struct {
    bk_lock_t lock;
    struct bk_tcache *live, *free;
    size_t nlive;
    unsigned next_stripe;
    unsigned creations;
} registry = { .lock = BK_LOCK_INIT };

static int tc_state;                   /* 0: not yet, 2: ready */
static int tc_usable;                  /* key created and caches enabled */
static int tc_key_ok;                  /* pthread_key_create succeeded */
static pthread_t tc_init_owner;
static int tc_init_running;
static bk_lock_t tc_init_lock = BK_LOCK_INIT;
static pthread_key_t tc_key;

static void thread_exit(void *arg);
static void fork_prepare(void);
static void fork_parent(void);
static void fork_child(void);

/* ---- initialisation ---------------------------------------------------- */

static void finish_init(void)
{
    tc_usable = tc_key_ok && bk_opt(BK_OPT_tcache_max_bytes) != 0;
    bk_store_release(&tc_init_running, 0);
    bk_store_release(&tc_state, 2);
}

/* Phase 2 of start-up (phase 1 is bk_core_init): the pthread key whose
 * destructor flushes a thread's cache at exit, and the fork handlers.  Both
 * calls may allocate (glibc's atfork list is a growable array); such a
 * recursive malloc on the initialising thread finds the core ready and no
 * caches yet, and is served by the central lists directly. */
void bk_tc_ensure_init(void)
{
    if (bk_likely(bk_load_acquire(&tc_state) == 2))
        return;
    bk_core_ensure();
    if (bk_load_acquire(&tc_init_running) && pthread_equal(tc_init_owner, pthread_self()))
        return;
    bk_lock(&tc_init_lock);
    if (!tc_state) {
        tc_init_owner = pthread_self();
        bk_store_release(&tc_init_running, 1);
        tc_key_ok = pthread_key_create(&tc_key, thread_exit) == 0;
        pthread_atfork(fork_prepare, fork_parent, fork_child);
        finish_init();
    }
    bk_unlock(&tc_init_lock);
}

/* Move a cache from the live list to the free list.  Registry lock held. */
static void registry_retire(struct bk_tcache *tc)
{
    if (tc->prev)
        tc->prev->next = tc->next;
    else
        registry.live = tc->next;
    if (tc->next)
        tc->next->prev = tc->prev;
    registry.nlive--;
    tc->next = registry.free;
    registry.free = tc;
}

/* Orphans.  A thread whose first allocator call comes in glibc's last
 * round of key destructors (a destructor that set its key again in each
 * earlier round) gets a cache whose destructor never runs.  Its cold half
 * is retired here and reused; the blocks its lists held are lost, for its
 * lists were in its TLS, which glibc has freed or re-initialised for a new
 * thread: up to tcache_max_bytes per such thread (before the lists moved
 * to TLS, a reaper returned them; the move saves 5 instructions per
 * malloc/free pair).  A cache is an orphan when its thread is gone
 * (tgkill(pid, tid, 0) fails with ESRCH; a kernel thread id reused in the
 * meantime hides it, never makes a live one look dead), or when a new
 * thread's lists sit where its lists were (the new thread has its stack).
 * Orphans are retired every 64 cache creations, when a cache is made on
 * their old lists, and by statistics before they read any lists.  A cache
 * made in another process, as in a child forked without the atfork
 * handlers by _Fork() or clone(), is never retired: its thread id means
 * nothing here, and leaking it is safe.  Registry lock held. */
static bool orphan(const struct bk_tcache *tc, int pid)
{
    return tc->pid == pid && !bk_os_thread_alive(tc->tid);
}

static void retire_orphans(const struct bk_tc_lists *reused)
{
    int pid = getpid();
    for (struct bk_tcache *tc = registry.live, *next; tc; tc = next) {
        next = tc->next;
        if (tc->lists == reused || (!reused && orphan(tc, pid)))
            registry_retire(tc);
    }
}

static struct bk_tcache *cache_create(void)
{
    bk_lock(&registry.lock);
    if (++registry.creations % 64 == 0)
        retire_orphans(NULL);
    retire_orphans(&bk_tc_lists);
    struct bk_tcache *tc = registry.free;
    if (tc)
        registry.free = tc->next;
    bk_unlock(&registry.lock);
    if (!tc && !(tc = bk_meta_alloc(sizeof *tc, BK_CACHELINE)))
        return NULL;
    *tc = (struct bk_tcache){ .budget = bk_opt(BK_OPT_tcache_max_bytes),
                              .tid = bk_os_thread_id(),
                              .pid = getpid(),
                              .lists = &bk_tc_lists };
    bk_lock(&registry.lock);
    tc->stripe = registry.next_stripe++ % bk_central_stripes();
    tc->next = registry.live;
    if (registry.live)
        registry.live->prev = tc;
    registry.live = tc;
    registry.nlive++;
    bk_unlock(&registry.lock);
    bk_tc = tc;
    /* May allocate (keys past glibc's first 32); bk_tc is already set. */
    pthread_setspecific(tc_key, tc);
    return tc;
}

/* The calling thread's cache, created on first use; NULL when the thread
 * must go to the central lists directly (exiting, start-up, or caches
 * disabled). */
static struct bk_tcache *cache_get(void)
{
    struct bk_tcache *tc = bk_tc;
    if (bk_likely(tc != NULL && tc != &bk_tc_dead))
        return tc;
    bk_tc_ensure_init();
    if (tc == &bk_tc_dead || !bk_load_acquire(&tc_state) || !tc_usable)
        return NULL;
    return cache_create();
}

/* ---- capacity ----------------------------------------------------------- */

static void flush(struct bk_tcache *tc, unsigned cls, uint32_t n);

static void shrink(struct bk_tcache *tc, unsigned cls)
{
    const struct bk_class_info *ci = &bk_classes[cls];
    uint32_t new_cap = tc->cap[cls] - ci->batch;
    uint32_t count = tc->cap[cls] - bk_tc_lists.room[cls];
    if (count > new_cap)
        flush(tc, cls, count - new_cap);
    tc->cap[cls] = new_cap;
    bk_tc_lists.room[cls] -= ci->batch;
    tc->cap_bytes -= (size_t)ci->batch * ci->size;
}

/* Take capacity from other lists, round robin, until `need` more bytes fit
 * in the budget; false if no list has capacity to give. */
static bool steal(struct bk_tcache *tc, unsigned cls, size_t need)
{
    for (unsigned tries = 0; tries < BK_NUM_CLASSES && tc->cap_bytes + need > tc->budget;
         tries++) {
        unsigned v = 1 + tc->victim++ % (BK_NUM_CLASSES - 1);
        if (v != cls && tc->cap[v] >= bk_classes[v].batch)
            shrink(tc, v);
    }
    return tc->cap_bytes + need <= tc->budget;
}

/* One more batch of capacity for a list, within the class's cache_max and
 * the thread's budget.  Over budget, only a list with no capacity at all
 * takes capacity from the others: a list that has some makes do with it,
 * so a thread at its budget does not shuffle capacity (and flush blocks)
 * between lists on every refill. */
static bool grow(struct bk_tcache *tc, unsigned cls)
{
    const struct bk_class_info *ci = &bk_classes[cls];
    size_t add = (size_t)ci->batch * ci->size;
    if (tc->cap[cls] + ci->batch > ci->cache_max)
        return false;
    if (tc->cap_bytes + add > tc->budget &&
        (tc->cap[cls] != 0 || !steal(tc, cls, add)))
        return false;
    tc->cap[cls] += ci->batch;
    bk_tc_lists.room[cls] += ci->batch;
    tc->cap_bytes += add;
    return true;
}

/* ---- moving blocks to and from the central lists ------------------------ */

/* Send the first n blocks of a list to the central lists. */
static void flush(struct bk_tcache *tc, unsigned cls, uint32_t n)
{
    while (n) {
        uint32_t batch = bk_classes[cls].batch;
        uint32_t k = n < batch ? n : batch;
        void **first = bk_tc_lists.head[cls], **last = first;
        for (uint32_t i = 1; i < k; i++)
            last = last[0];
        bk_tc_lists.head[cls] = last[0];
        last[0] = NULL;
        bk_tc_lists.room[cls] += k;
        n -= k;
        bk_central_give(cls, tc->stripe, first, last, k);
    }
}

/* Flush half of every list not used since the last tick (see the header). */
static void trim_unused(struct bk_tcache *tc)
{
    for (unsigned cls = 1; cls < BK_NUM_CLASSES; cls++) {
        uint32_t count = tc->cap[cls] - bk_tc_lists.room[cls];
        if (count && !(tc->used[cls >> 6] >> (cls & 63) & 1))
            flush(tc, cls, (count + 1) / 2);
    }
    tc->used[0] = tc->used[1] = 0;
}

/* Every refill and flush of a list passes here, before it reads the list:
 * a decay tick may start the background thread, whose creation allocates,
 * and those allocations may refill or flush this very list. */
static void note_slow_path(struct bk_tcache *tc, unsigned cls)
{
    bk_decay_maybe();
    uint32_t epoch = bk_load_relaxed(&bk_decay_epoch);
    if (epoch != tc->trim_epoch) {
        tc->trim_epoch = epoch;
        if (bk_decay_enabled())
            trim_unused(tc);
    }
    tc->used[cls >> 6] |= 1ull << (cls & 63);
}

/* Slow start: a thread's first refills of a class take 1, 2, 4, ... objects
 * from the spans, up to a batch, so a thread (or a whole process, like a
 * database backend) that uses a few objects of many classes does not carve
 * and touch a batch of each.  While it lasts a list grows only when its
 * capacity is short of what the refill wants (so 63 live 64-byte blocks
 * leave one batch of capacity, not six); afterwards every refill grows it,
 * since a list that keeps running empty is one in demand.  Parked batches,
 * resident already, are taken whole at any time; a refill that gets more
 * than it wanted that way, like one that finds nothing, does not count as
 * a step of the slow start.
 *
 * Each step is a whole number of cache lines: at least 64 / gcd(size, 64)
 * objects (1, 2 or 4: class sizes are multiples of 16), so that threads
 * taking their first objects from a fresh span, in address order, never
 * get objects in one cache line and write it from two cores for as long
 * as they keep them (cache-thrash at full scale: 3.25-3.86 s with first
 * steps of one 16-byte object, 3.07-3.15 s with whole lines, like jemalloc). */
#define BK_SLOW_START_FILLS 6

static uint32_t slow_start_want(unsigned cls, unsigned fill)
{
    uint32_t size = bk_classes[cls].size, batch = bk_classes[cls].batch;
    uint32_t low = size & -size;                 /* largest power of two dividing size */
    uint32_t line = BK_CACHELINE / (low < BK_CACHELINE ? low : BK_CACHELINE);
    uint32_t want = (1u << fill) > line ? 1u << fill : line;
    return want < batch ? want : batch;
}

static void *refill(struct bk_tcache *tc, unsigned cls)
{
    uint32_t batch = bk_classes[cls].batch;
    bool slow_start = tc->fills[cls] < BK_SLOW_START_FILLS;
    uint32_t want = slow_start ? slow_start_want(cls, tc->fills[cls]) : batch;
    if (!slow_start || (uint32_t)bk_tc_lists.room[cls] + 1 < want)
        grow(tc, cls);
    uint32_t fits = (uint32_t)bk_tc_lists.room[cls] + 1;   /* the block returned, and room */
    uint32_t max = fits < batch ? fits : batch;
    want = want < max ? want : max;
    void **chain;
    uint32_t n = bk_central_take(cls, tc->stripe, want, max, (void **)&chain);
    if (!n)
        return NULL;
    if (slow_start && n <= want)
        tc->fills[cls]++;
    bk_tc_lists.head[cls] = chain[0];
    bk_tc_lists.room[cls] -= n - 1;
    chain[1] = NULL;
    return chain;
}

static void *central_one(unsigned cls)
{
    void **p;
    bk_decay_maybe();
    if (!bk_central_take(cls, 0, 1, 1, (void **)&p))
        return NULL;
    p[1] = NULL;
    return p;
}

static void *cache_alloc(unsigned cls)
{
    struct bk_tcache *tc = cache_get();
    if (!tc)
        return central_one(cls);
    void **p = bk_tc_lists.head[cls];
    if (!p) {
        note_slow_path(tc, cls);
        if (!(p = bk_tc_lists.head[cls]))   /* (re-read: see note_slow_path) */
            return refill(tc, cls);
    }
    return bk_tc_pop(cls, p);
}

/* ---- slow paths ----------------------------------------------------------- */

void *bk_tc_malloc_class(unsigned cls)
{
    void *p = cache_alloc(cls);
    if (!p)
        errno = ENOMEM;
    return p;
}

void *bk_tc_malloc_slow(size_t size)
{
    void *p;
    if (size > BK_SMALL_MAX) {
        bk_core_ensure();
        p = size <= PTRDIFF_MAX ? bk_large_alloc(size, 0, false) : NULL;
    } else {
        /* Sizes past the lookup table (BK_LOOKUP_MAX) come here even when
         * their list has a block: pop it as the fast path would. */
        unsigned cls = bk_size_to_class(size);
        if ((p = bk_tc_lists.head[cls]) != NULL)
            return bk_tc_pop(cls, p);
        bk_tc_ensure_init();
        p = cache_alloc(cls);
    }
    if (!p)
        errno = ENOMEM;
    return p;
}

static void cache_free(unsigned cls, void **p)
{
    struct bk_tcache *tc = cache_get();
    p[1] = (void *)bk_free_mark((uintptr_t)p);
    /* A big object past the release threshold goes back to the kernel
     * but its first page (decay.h).  Only here, on the slow path: the
     * first free of a class usually comes here, its list having no room. */
    if (bk_classes[cls].size > BK_RELEASE_THRESHOLD_START)
        bk_decay_free_object(p, bk_classes[cls].size);
    if (!tc) {
        p[0] = NULL;
        bk_central_give(cls, 0, p, p, 1);
        return;
    }
    if (bk_tc_lists.room[cls] == 0)
        note_slow_path(tc, cls);
    if (bk_tc_lists.room[cls] == 0 && !grow(tc, cls)) {
        uint32_t count = tc->cap[cls] - bk_tc_lists.room[cls];
        uint32_t batch = bk_classes[cls].batch;
        flush(tc, cls, count < batch ? count : batch);
    }
    if (bk_tc_lists.room[cls] == 0) {        /* capacity 0 and no budget: bypass */
        p[0] = NULL;
        bk_central_give(cls, tc->stripe, p, p, 1);
        return;
    }
    p[0] = bk_tc_lists.head[cls];
    bk_tc_lists.head[cls] = p;
    bk_tc_lists.room[cls]--;
}

void bk_tc_free_slow(void *ptr)
{
    if (!ptr)
        return;
    uintptr_t a = (uintptr_t)ptr;
    struct bk_span *s = bk_pm_span(a);
    if (!s)
        bk_fatal_pointer("free", "invalid pointer", ptr);
    if (s->kind != BK_SPAN_SMALL) {
        if (a != s->start)
            bk_fatal_pointer("free", "invalid pointer", ptr);
        bk_large_free(s);
        return;
    }
    unsigned cls = s->cls;
    void **p = ptr;
    if (!bk_central_owns(s, a))
        bk_fatal_pointer("free", "invalid pointer", ptr);
    if ((uintptr_t)p[1] == bk_free_mark(a))
        bk_fatal_pointer("free", "double free of", ptr);
    cache_free(cls, p);
}

/* ---- thread exit, trim, fork, statistics ---------------------------------- */

static void flush_all(struct bk_tcache *tc)
{
    for (unsigned cls = 1; cls < BK_NUM_CLASSES; cls++)
        flush(tc, cls, tc->cap[cls] - bk_tc_lists.room[cls]);
}

/* pthread key destructor: every list straight to the spans, and no room
 * left.  From here on the thread's bk_tc is bk_tc_dead, so whatever it
 * allocates or frees later (other destructors, C++ thread_local
 * destructors, glibc's own thread clean-up) misses the fast paths and goes
 * to the central lists. */
static void thread_exit(void *arg)
{
    struct bk_tcache *tc = arg;
    bk_tc = &bk_tc_dead;
    for (unsigned cls = 1; cls < BK_NUM_CLASSES; cls++) {
        bk_central_return(cls, bk_tc_lists.head[cls]);
        bk_tc_lists.head[cls] = NULL;
        bk_tc_lists.room[cls] = 0;
    }
    bk_lock(&registry.lock);
    registry_retire(tc);
    bk_unlock(&registry.lock);
}

size_t bk_tc_release_memory(bool keep_region)
{
    struct bk_tcache *tc = bk_tc;
    if (tc != NULL && tc != &bk_tc_dead)
        flush_all(tc);
    return bk_decay_release_all(keep_region);
}

/* Before taking the locks, the forking thread may give memory back
 * (decay.h, "Fork"): what sits free at the fork would otherwise be
 * inherited, resident, by the child, and copied on the first write. */
static void fork_prepare(void)
{
    if (bk_decay_fork_release_due())
        bk_tc_release_memory(true);
    bk_lock(&registry.lock);
    bk_core_fork_prepare();
}

static void fork_parent(void)
{
    bk_core_fork_parent();
    bk_unlock(&registry.lock);
}

/* In the child only the forking thread survives: the other threads' caches
 * can never be flushed (they may have been mid-update), so they are dropped
 * from the registry and their blocks are lost to the child. */
static void fork_child(void)
{
    bk_core_fork_child();
    struct bk_tcache *self = bk_tc;
    bool has_cache = self != NULL && self != &bk_tc_dead;
    registry.live = has_cache ? self : NULL;
    registry.nlive = has_cache;
    if (has_cache) {
        self->next = self->prev = NULL;
        self->tid = bk_os_thread_id();   /* the child's thread has new ids */
        self->pid = getpid();
    }
    bk_unlock(&registry.lock);
    /* A fork that raced phase 2 of start-up: the handlers are registered
     * (they are running), so the child finishes what the initialising
     * thread, absent here, had left to do. */
    if (!tc_state && tc_init_running)
        finish_init();
    /* Not taken by prepare (initialisation registers the fork handlers
     * while holding it, and glibc runs them under its own atfork lock): a
     * thread that was initialising brisk in the parent is gone. */
    bk_lock_init(&tc_init_lock);
}

/* Other threads' counters are read without synchronisation on purpose:
 * statistics are a sample, and the fast paths must not pay for them.
 * Their room counters are in their TLS, which lives as long as the thread:
 * a thread that exits retires its cache under the registry lock (held
 * here) before its TLS goes, and orphans (see retire_orphans) are retired
 * first.  What is left open: an orphan whose thread exits between that
 * check and the reads (a few hundred instructions), or whose kernel
 * thread id a new thread of this process took before any retirement
 * pass, while glibc unmapped its stack (it keeps up to 40 MiB of stacks
 * for reuse); reading its lists could then fault. */
BK_NO_TSAN void bk_tc_stats_add(struct brisk_stats *st)
{
    int pid = getpid();
    bk_lock(&registry.lock);
    retire_orphans(NULL);
    st->thread_caches = registry.nlive;
    for (struct bk_tcache *tc = registry.live; tc; tc = tc->next) {
        if (tc->pid != pid)
            continue;
        for (unsigned cls = 1; cls < BK_NUM_CLASSES; cls++) {
            uint32_t cap = *(volatile uint32_t *)&tc->cap[cls];
            uint32_t room = *(volatile uint16_t *)&tc->lists->room[cls];
            if (cap > room)
                st->classes[cls - 1].cached_objects += cap - room;
        }
    }
    bk_unlock(&registry.lock);
}
