/* Central free lists (see central_list.h). */
#define _LGPL_SOURCE
#include "central_list.h"

#include <urcu/lfstack.h>

#include "../os/lock.h"
#include "../page_heap/meta.h"
#include "../page_heap/page_heap.h"
#include "../page_heap/page_map.h"
#include "free_mark.h"
#include "size_class.h"

struct bk_stripe {
    bk_lock_t lock;                 /* guards `taken` */
    void *taken;                    /* whole batches popped from `stack` */
    struct __cds_lfs_stack stack;   /* batches pushed by flushes */
    uint32_t nbatches;              /* in stack + taken; atomic */
    uint32_t pops;                  /* batches taken so far; atomic */
    uint32_t pops_seen;             /* `pops` at the last decay tick */
} BK_ALIGNED(BK_CACHELINE);

struct bk_central {
    bk_lock_t lock;                 /* guards everything below */
    struct bk_span *partial;        /* spans with free objects */
    size_t spans;
    size_t free_in_spans;
    struct bk_stripe *stripes;      /* NULL until the first whole batch */
} BK_ALIGNED(BK_CACHELINE);

static struct bk_central centrals[BK_NUM_CLASSES];   /* zeros: see bk_central_init */
static unsigned nstripes = 1;

/* Word 0 of a free object is both its list link and, on a stripe, its
 * lfstack node (struct cds_lfs_node is that one pointer). */
static struct cds_lfs_node *as_node(void *object)
{
    return (struct cds_lfs_node *)object;
}

/* The class locks and the rest of every central list start as zeros in
 * BSS (a zeroed pthread mutex is an unlocked one): start-up writes none of
 * them, so a process touches the central lists only of the classes it uses. */
void bk_central_init(unsigned n)
{
    nstripes = n ? n : 1;
}

/* A class's stripes, made on its first whole batch: a process touches
 * stripe memory (128 bytes per stripe, up to 16 stripes) only for the
 * classes whose batches actually move between threads and the central
 * list, not for all of them at start-up.  Made under the class lock and
 * published with a release store; NULL if the metadata arena is out of
 * memory (the batch then goes to the spans). */
static struct bk_stripe *stripes_of(struct bk_central *c)
{
    struct bk_stripe *stripes = bk_load_acquire(&c->stripes);
    if (bk_likely(stripes != NULL))
        return stripes;
    bk_lock(&c->lock);
    stripes = c->stripes;
    if (!stripes && (stripes = bk_meta_alloc(sizeof *stripes * nstripes, BK_CACHELINE))) {
        for (unsigned s = 0; s < nstripes; s++) {
            bk_lock_init(&stripes[s].lock);
            stripes[s].taken = NULL;
            __cds_lfs_init(&stripes[s].stack);
            stripes[s].nbatches = 0;
            stripes[s].pops = stripes[s].pops_seen = 0;
        }
        bk_store_release(&c->stripes, stripes);
    }
    bk_unlock(&c->lock);
    return stripes;
}

bool bk_central_striped(unsigned cls)
{
    return bk_load_acquire(&centrals[cls].stripes) != NULL;
}

unsigned bk_central_stripes(void)
{
    return nstripes;
}

/* ---- span level (class lock held) ------------------------------------- */

static void partial_push(struct bk_central *c, struct bk_span *s)
{
    s->prev = NULL;
    s->next = c->partial;
    if (c->partial)
        c->partial->prev = s;
    c->partial = s;
    s->in_partial = 1;
}

static void partial_remove(struct bk_central *c, struct bk_span *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        c->partial = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->in_partial = 0;
}

/* Carve the next piece of a span whose free list is empty, one window slot
 * (4 KiB, an OS page) at a time: the objects that start in it go onto the
 * free list in address order, each with its free mark, so a class with a
 * few objects in a process touches 4 KiB of it, not a whole brisk page.
 * Then the piece gets its class byte in the window, which lets free()'s
 * fast path accept pointers into it.  False when every piece is carved. */
#define BK_CARVE_BYTES BK_PM_SLOT_SIZE

static bool carve_piece(struct bk_span *s, unsigned cls, const struct bk_class_info *ci)
{
    uintptr_t from = s->carved, end = s->start + (uintptr_t)ci->objects * ci->size;
    if (from >= end)
        return false;
    uintptr_t next = from + BK_CARVE_BYTES;
    uintptr_t p = s->start + (from - s->start + ci->size - 1) / ci->size * ci->size;
    void **link = &s->freelist;
    for (; p < next && p < end; p += ci->size) {
        *link = (void *)p;
        link = (void **)p;
        bk_set_free_mark((void *)p);
    }
    *link = NULL;
    bk_pm_set_class(from, cls);
    bk_store_relaxed(&s->carved, next);
    return true;
}

static struct bk_span *new_span(struct bk_central *c, unsigned cls)
{
    const struct bk_class_info *ci = &bk_classes[cls];
    struct bk_span *s = bk_ph_alloc_span(ci->span_pages, ci->span_pages, cls);
    if (!s)
        return NULL;
    s->used = 0;
    s->freelist = NULL;
    s->carved = s->start;
    c->spans++;
    c->free_in_spans += ci->objects;
    partial_push(c, s);
    return s;
}

static void *span_pop(struct bk_span *s, unsigned cls, const struct bk_class_info *ci)
{
    while (!s->freelist && carve_piece(s, cls, ci))
        ;
    void *p = s->freelist;
    if (p) {
        s->freelist = *(void **)p;
        s->used++;
    }
    return p;
}

static unsigned take_from_spans(struct bk_central *c, unsigned cls, unsigned want, void **chain)
{
    const struct bk_class_info *ci = &bk_classes[cls];
    void *head = NULL, **link = &head;
    unsigned n = 0;
    bk_lock(&c->lock);
    while (n < want) {
        struct bk_span *s = c->partial ? c->partial : new_span(c, cls);
        if (!s)
            break;
        void *p;
        while (n < want && (p = span_pop(s, cls, ci)) != NULL) {
            *link = p;
            link = (void **)p;
            n++;
        }
        if (s->used == ci->objects)
            partial_remove(c, s);
    }
    *link = NULL;
    c->free_in_spans -= n;
    bk_unlock(&c->lock);
    *chain = head;
    return n;
}

static void return_to_spans(struct bk_central *c, unsigned cls, void *chain)
{
    const struct bk_class_info *ci = &bk_classes[cls];
    bk_lock(&c->lock);
    while (chain) {
        void *p = chain;
        chain = *(void **)p;
        struct bk_span *s = bk_pm_span((uintptr_t)p);
        *(void **)p = s->freelist;
        s->freelist = p;
        s->used--;
        c->free_in_spans++;
        if (!s->in_partial)
            partial_push(c, s);
        if (s->used == 0) {
            partial_remove(c, s);
            c->spans--;
            c->free_in_spans -= ci->objects;
            bk_ph_free_span(s);
        }
    }
    bk_unlock(&c->lock);
}

/* ---- stripe level ----------------------------------------------------- */

/* A batch's first object remembers the batch's last one in word 2 (free
 * objects of 32 bytes or more have one; words 0 and 1 are the link and the
 * free mark), so cutting a batch off a stripe takes one load instead of a
 * walk through `batch` objects that another core wrote, under the stripe
 * lock.  The 16-byte class still walks. */
#define BK_TAIL_WORD 2

static bool has_tail_word(unsigned cls)
{
    return bk_classes[cls].size >= (BK_TAIL_WORD + 1) * sizeof(void *);
}

/* Cut one batch of n objects off the stripe's objects (taking everything
 * flushes pushed since the last refill when the kept ones run out). */
static void *stripe_pop(struct bk_stripe *st, unsigned n, bool tail)
{
    bk_lock(&st->lock);
    if (!st->taken) {
        struct cds_lfs_head *h = __cds_lfs_pop_all(&st->stack);
        bk_tsan_acquire(&st->stack);
        st->taken = h;
    }
    void **first = st->taken, **last = first;
    if (first) {
        if (tail)
            last = first[BK_TAIL_WORD];
        else
            for (unsigned i = 1; i < n; i++)
                last = last[0];
        st->taken = last[0];
        last[0] = NULL;
        bk_fetch_sub(&st->nbatches, 1);
        bk_fetch_add(&st->pops, 1);
    }
    bk_unlock(&st->lock);
    return first;
}

/* Push a chain of exactly `batch` objects, first..last, with one CAS,
 * unless the stripe already parks park_max batches. */
static int stripe_push(struct bk_stripe *st, unsigned park_max, void *first, void *last,
                       bool tail)
{
    if (bk_fetch_add(&st->nbatches, 1) >= park_max) {
        bk_fetch_sub(&st->nbatches, 1);
        return 0;
    }
    if (tail)
        ((void **)first)[BK_TAIL_WORD] = last;
    struct cds_lfs_head *top = CMM_LOAD_SHARED(st->stack.head);
    for (;;) {
        as_node(last)->next = top ? &top->node : NULL;
        bk_tsan_release(&st->stack);
        struct cds_lfs_head *seen =
            uatomic_cmpxchg(&st->stack.head, top, (struct cds_lfs_head *)as_node(first));
        if (seen == top)
            return 1;
        top = seen;
    }
}

unsigned bk_central_take(unsigned cls, unsigned stripe, unsigned want, unsigned max,
                         void **chain)
{
    struct bk_central *c = &centrals[cls];
    struct bk_stripe *stripes = bk_load_acquire(&c->stripes);
    if (max == bk_classes[cls].batch && stripes) {
        /* Own stripe first, then the others: a consumer thread flushes to
         * its stripe what a producer on another stripe needs next. */
        for (unsigned i = 0; i < nstripes; i++) {
            struct bk_stripe *st = &stripes[(stripe + i) & (nstripes - 1)];
            void *first;
            if (bk_load_relaxed(&st->nbatches) != 0 &&
                (first = stripe_pop(st, max, has_tail_word(cls))) != NULL) {
                *chain = first;
                return max;
            }
        }
    }
    return take_from_spans(c, cls, want, chain);
}

void bk_central_give(unsigned cls, unsigned stripe, void *first, void *last, unsigned n)
{
    struct bk_central *c = &centrals[cls];
    struct bk_stripe *stripes;
    if (n == bk_classes[cls].batch && (stripes = stripes_of(c)) != NULL &&
        stripe_push(&stripes[stripe & (nstripes - 1)], bk_classes[cls].park_max, first, last,
                    has_tail_word(cls)))
        return;
    return_to_spans(c, cls, first);
}

void bk_central_return(unsigned cls, void *chain)
{
    if (chain)
        return_to_spans(&centrals[cls], cls, chain);
}

static void drain_stripe(struct bk_central *c, unsigned cls, struct bk_stripe *st)
{
    void *first;
    while ((first = stripe_pop(st, bk_classes[cls].batch, has_tail_word(cls))) != NULL)
        return_to_spans(c, cls, first);
}

void bk_central_drain(void)
{
    for (unsigned cls = 1; cls < BK_NUM_CLASSES; cls++) {
        struct bk_stripe *stripes = bk_load_acquire(&centrals[cls].stripes);
        for (unsigned s = 0; stripes && s < nstripes; s++)
            drain_stripe(&centrals[cls], cls, &stripes[s]);
    }
}

/* A stripe none of whose batches was taken since the last tick is idle:
 * its batches only pin their spans, so they go back to them (and whole
 * spans to the page heap).  Ticks are serialised by the decay lock, which
 * guards pops_seen. */
void bk_central_decay(void)
{
    for (unsigned cls = 1; cls < BK_NUM_CLASSES; cls++) {
        struct bk_central *c = &centrals[cls];
        struct bk_stripe *stripes = bk_load_acquire(&c->stripes);
        for (unsigned s = 0; stripes && s < nstripes; s++) {
            struct bk_stripe *st = &stripes[s];
            uint32_t pops = bk_load_relaxed(&st->pops);
            if (pops == st->pops_seen && bk_load_relaxed(&st->nbatches) != 0)
                drain_stripe(c, cls, st);
            st->pops_seen = bk_load_relaxed(&st->pops);
        }
    }
}

void bk_central_get_stats(unsigned cls, struct bk_central_stats *st)
{
    struct bk_central *c = &centrals[cls];
    bk_lock(&c->lock);
    st->spans = c->spans;
    st->objects = c->spans * bk_classes[cls].objects;
    st->free_in_spans = c->free_in_spans;
    bk_unlock(&c->lock);
    size_t batches = 0;
    struct bk_stripe *stripes = bk_load_acquire(&c->stripes);
    for (unsigned s = 0; stripes && s < nstripes; s++)
        batches += bk_load_relaxed(&stripes[s].nbatches);
    st->in_stripes = batches * bk_classes[cls].batch;
}

/* Fork: every class lock, in class order (no stripes can appear while they
 * are held), then the stripes that exist.  No path holds a stripe lock and
 * a class lock at once, so this order deadlocks with nothing. */
void bk_central_lock_all(void)
{
    for (unsigned cls = 1; cls < BK_NUM_CLASSES; cls++)
        bk_lock(&centrals[cls].lock);
    for (unsigned cls = 1; cls < BK_NUM_CLASSES; cls++)
        for (unsigned s = 0; centrals[cls].stripes && s < nstripes; s++)
            bk_lock(&centrals[cls].stripes[s].lock);
}

void bk_central_unlock_all(void)
{
    for (unsigned cls = BK_NUM_CLASSES - 1; cls >= 1; cls--)
        for (unsigned s = 0; centrals[cls].stripes && s < nstripes; s++)
            bk_unlock(&centrals[cls].stripes[s].lock);
    for (unsigned cls = BK_NUM_CLASSES - 1; cls >= 1; cls--)
        bk_unlock(&centrals[cls].lock);
}
