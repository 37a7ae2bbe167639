/* The OS layer: every system call brisk makes goes through here.
 *
 * Nothing in this layer calls malloc, so it can be used while the allocator
 * bootstraps.  Memory calls report failure by returning NULL / false; they
 * never print. */
#ifndef BRISK_OS_H
#define BRISK_OS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "compiler.h"

/* Reserve and commit `size` bytes of fresh zeroed memory aligned to `align`
 * (a power of two, at least the system page). NULL on failure. */
BK_INTERNAL void *bk_os_map(size_t size, size_t align);
BK_INTERNAL void bk_os_unmap(void *p, size_t size);
/* Give the pages back to the kernel; they read as zero when touched again.
 * False when the kernel refused (locked memory: mlock, mlockall): then the
 * pages keep their contents. */
BK_INTERNAL bool bk_os_release(void *p, size_t size);

BK_INTERNAL void bk_os_write_stderr(const char *s, size_t n);
BK_INTERNAL BK_NORETURN void bk_os_abort(void);
BK_INTERNAL uint64_t bk_os_random(void);
/* CPUs this process may run on: the affinity mask, capped by a cgroup v2
 * cpu.max quota or a cgroup v1 cfs quota when one is set. */
BK_INTERNAL unsigned bk_os_cpu_count(void);
BK_INTERNAL const char *bk_os_getenv(const char *name);
/* The calling thread's kernel id, and whether a thread of this process with
 * that id still exists. */
BK_INTERNAL int bk_os_thread_id(void);
BK_INTERNAL bool bk_os_thread_alive(int tid);

#endif
