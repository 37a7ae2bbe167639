/* The one lock type brisk uses: a futex-backed pthread mutex.
 *
 * Every lock is taken only on slow paths (refill, flush, page-heap work), so
 * an uncontended pthread mutex is cheap enough, and unlike a spin lock it
 * behaves on an oversubscribed machine (many threads on 2 cores) where the
 * holder may be preempted.  pthread mutexes never call malloc. */
#ifndef BRISK_LOCK_H
#define BRISK_LOCK_H

#include <pthread.h>

typedef struct { pthread_mutex_t m; } bk_lock_t;

#define BK_LOCK_INIT { PTHREAD_MUTEX_INITIALIZER }

static inline void bk_lock(bk_lock_t *l) { pthread_mutex_lock(&l->m); }
static inline void bk_unlock(bk_lock_t *l) { pthread_mutex_unlock(&l->m); }
static inline int bk_trylock(bk_lock_t *l) { return pthread_mutex_trylock(&l->m) == 0; }
/* Initialise a lock in dynamic storage; also resets, in a fork child, a lock
 * that a thread which did not survive the fork may have held. */
static inline void bk_lock_init(bk_lock_t *l) { pthread_mutex_init(&l->m, NULL); }

#endif
