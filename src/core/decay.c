/* Decay ticks and the optional background thread (see decay.h). */
#include "decay.h"

#include "../os/lock.h"
#include "../os/os.h"
#include "../page_heap/page_heap.h"
#include "central_list.h"
#include "options.h"

uint32_t bk_decay_epoch;

static bk_lock_t decay_lock = BK_LOCK_INIT;
static uint64_t next_tick;            /* clock ms; atomic */
static uint32_t interval_ms = 250;
static bool enabled = true;
static bool background;
static int bg_state;                  /* 0: none, 1: running or starting, 2: failed */
static size_t release_threshold = BK_RELEASE_THRESHOLD_START;   /* atomic */
static bool fork_release;
static uint64_t next_fork_release;    /* clock ms; atomic */

void bk_decay_init(void)
{
    size_t decay = bk_opt(BK_OPT_decay_ms);
    enabled = decay != BK_OPT_NEVER;
    struct bk_ph_config cfg = {
        .dirty_max = bk_opt(BK_OPT_dirty_max),
        .decay_ms = enabled ? (uint32_t)decay : BK_DECAY_NEVER,
        .lazy_release = bk_opt(BK_OPT_madvise) == 1,
        .retain = bk_opt(BK_OPT_retain) != 0,
        .thp = (int)bk_opt(BK_OPT_thp),
    };
    bk_ph_configure(&cfg);
    size_t iv = enabled ? decay / 4 : 1000;
    interval_ms = (uint32_t)(iv < 10 ? 10 : iv > 1000 ? 1000 : iv);
    background = bk_opt(BK_OPT_background_thread) != 0;
    next_tick = bk_os_now_ms() + interval_ms;
    release_threshold = BK_RELEASE_THRESHOLD_START;
    fork_release = enabled && bk_opt(BK_OPT_fork_release) != 0;
    next_fork_release = 0;
}

bool bk_decay_release_on_free(size_t bytes)
{
    size_t t = bk_load_relaxed(&release_threshold);
    if (bytes > BK_RELEASE_THRESHOLD_MAX)
        return false;
    do {
        if (bytes <= t || !enabled)
            return false;
    } while (!__atomic_compare_exchange_n(&release_threshold, &t, bytes, true,
                                          __ATOMIC_RELAXED, __ATOMIC_RELAXED));
    return true;
}

void bk_decay_free_object(void *block, size_t size)
{
    if (bk_decay_release_on_free(size))
        bk_ph_release_inside((uintptr_t)block + 2 * sizeof(void *), size - 2 * sizeof(void *));
}

size_t bk_decay_release_threshold(void)
{
    return bk_load_relaxed(&release_threshold);
}

size_t bk_decay_release_all(bool keep_region)
{
    bk_central_drain();
    return bk_ph_release_all(keep_region);
}

bool bk_decay_fork_release_due(void)
{
    if (!fork_release)
        return false;
    uint64_t now = bk_os_now_ms(), due = bk_load_relaxed(&next_fork_release);
    return now >= due &&
           __atomic_compare_exchange_n(&next_fork_release, &due, now + interval_ms, false,
                                       __ATOMIC_RELAXED, __ATOMIC_RELAXED);
}

bool bk_decay_enabled(void)
{
    return enabled;
}

/* Decay lock held. */
static void tick(void)
{
    bk_fetch_add(&bk_decay_epoch, 1);
    if (enabled)
        bk_central_decay();
    bk_ph_decay();
}

void bk_decay_tick(void)
{
    bk_lock(&decay_lock);
    bk_store_relaxed(&next_tick, bk_os_now_ms() + interval_ms);
    tick();
    bk_unlock(&decay_lock);
}

static void *background_main(void *arg)
{
    (void)arg;
    for (;;) {
        bk_os_sleep_ms(interval_ms);
        bk_decay_tick();
    }
    return NULL;
}

/* Started from a slow path with no lock held: thread creation allocates,
 * and those allocations find bg_state already 1. */
static void start_background(void)
{
    int expected = 0;
    if (__atomic_compare_exchange_n(&bg_state, &expected, 1, false, __ATOMIC_ACQ_REL,
                                    __ATOMIC_RELAXED) &&
        !bk_os_spawn_thread(background_main))
        bk_store_relaxed(&bg_state, 2);
}

void bk_decay_maybe(void)
{
    uint64_t now = bk_os_now_ms();
    if (bk_likely(now < bk_load_relaxed(&next_tick)))
        return;
    if (background && bk_load_relaxed(&bg_state) == 0)
        start_background();
    if (!bk_trylock(&decay_lock))
        return;
    if (now >= bk_load_relaxed(&next_tick)) {
        bk_store_relaxed(&next_tick, now + interval_ms);
        tick();
    }
    bk_unlock(&decay_lock);
}

void bk_decay_fork_prepare(void)
{
    bk_lock(&decay_lock);
}

void bk_decay_fork_parent(void)
{
    bk_unlock(&decay_lock);
}

/* The background thread did not survive the fork: the child starts its
 * own on its first tick. */
void bk_decay_fork_child(void)
{
    bk_unlock(&decay_lock);
    if (bk_load_relaxed(&bg_state) == 1)
        bk_store_relaxed(&bg_state, 0);
}
