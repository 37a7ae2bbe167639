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
/* Resize a mapping, moving it if it must (mremap), or to exactly `at` when
 * at != NULL; NULL on failure, when the old mapping is unchanged. */
BK_INTERNAL void *bk_os_remap(void *p, size_t old_size, size_t new_size, void *at);
/* The kernel's page size as brisk assumes it (x86-64, and the 4 KiB
 * kernels of arm64): the unit of the page map's window and of carving.  On
 * a kernel with bigger pages brisk works the same, but bk_os_release
 * refuses ranges that are not whole kernel pages. */
#define BK_OS_PAGE_SIZE ((size_t)4096)

/* Give the pages back to the kernel.  With lazy == false (MADV_DONTNEED)
 * they leave the resident set at once and read as zero when touched again;
 * with lazy == true (MADV_FREE) the kernel takes them only under memory
 * pressure and until then they may keep their contents.  False when the
 * kernel refused (locked memory: mlock, mlockall; MADV_FREE on a kernel
 * before 4.5), or when the range is not whole pages of a kernel with pages
 * bigger than 4 KiB: then the pages stay as they were. */
BK_INTERNAL bool bk_os_release(void *p, size_t size, bool lazy);

/* Transparent hugepages: the kernel's mode from
 * /sys/kernel/mm/transparent_hugepage/enabled, and advice for a range. */
enum bk_thp_mode { BK_THP_UNKNOWN, BK_THP_ALWAYS, BK_THP_MADVISE, BK_THP_NEVER };
BK_INTERNAL enum bk_thp_mode bk_os_thp_mode(void);
/* MADV_HUGEPAGE (want == true) or MADV_NOHUGEPAGE; false when refused. */
BK_INTERNAL bool bk_os_advise_hugepages(void *p, size_t size, bool want);
/* Bytes of this process's anonymous memory backed by transparent hugepages
 * (AnonHugePages in /proc/self/smaps_rollup); 0 when unknown. */
BK_INTERNAL size_t bk_os_anon_hugepage_bytes(void);

/* A monotonic clock in milliseconds (coarse: a few ms of resolution, and
 * cheap enough for slow paths). */
BK_INTERNAL uint64_t bk_os_now_ms(void);
BK_INTERNAL void bk_os_sleep_ms(unsigned ms);
/* Start a detached thread running fn(NULL) with every signal blocked.
 * False when it could not be created. */
BK_INTERNAL bool bk_os_spawn_thread(void *(*fn)(void *));

BK_INTERNAL void bk_os_write_stderr(const char *s, size_t n);
BK_INTERNAL BK_NORETURN void bk_os_abort(void);
/* CPUs this process may run on: the affinity mask, capped by a cgroup v2
 * cpu.max quota or a cgroup v1 cfs quota when one is set. */
BK_INTERNAL unsigned bk_os_cpu_count(void);
BK_INTERNAL const char *bk_os_getenv(const char *name);
/* The calling thread's kernel id, and whether a thread of this process with
 * that id still exists. */
BK_INTERNAL int bk_os_thread_id(void);
BK_INTERNAL bool bk_os_thread_alive(int tid);

#endif
