/* Linux implementation of the OS layer (see os.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "os.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static void *map_anonymous(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

/* A mapping at exactly `at`, or NULL when anything is mapped there (a
 * kernel older than 4.17 takes MAP_FIXED_NOREPLACE as a mere hint: a
 * mapping elsewhere is given back). */
static char *map_at(uintptr_t at, size_t size)
{
    void *p = mmap((void *)at, size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    if ((uintptr_t)p != at) {
        munmap(p, size);
        return NULL;
    }
    return p;
}

void *bk_os_map(size_t size, size_t align)
{
    int saved = errno;
    char *p = map_anonymous(size);
    if (p && align > 4096 && ((uintptr_t)p & (align - 1))) {
        /* Misaligned.  (The kernel usually places a new mapping just below
         * the previous one, so after the first region the exact-size
         * attempt is aligned.)  First the aligned places on either side of
         * where the kernel put it, which need no more address space than
         * the block: under an RLIMIT_AS cap, the over-reservation below
         * can fail with room for the block left, when the kernel passes
         * over a hole of exactly the block's size (it pads large anonymous
         * mappings to align them to 2 MiB).  Then over-reserve by `align`
         * and trim both ends. */
        munmap(p, size);
        uintptr_t below = (uintptr_t)p & ~(uintptr_t)(align - 1);
        p = below ? map_at(below, size) : NULL;
        if (!p && below + align > below)
            p = map_at(below + align, size);
        char *raw = p || size + align < size ? NULL : map_anonymous(size + align);
        if (raw) {
            p = (char *)(((uintptr_t)raw + align - 1) & ~(uintptr_t)(align - 1));
            if (p > raw)
                munmap(raw, (size_t)(p - raw));
            size_t tail = (size_t)((raw + size + align) - (p + size));
            if (tail)
                munmap(p + size, tail);
        }
    }
    errno = saved;
    return p;
}

void bk_os_unmap(void *p, size_t size)
{
    int saved = errno;
    munmap(p, size);
    errno = saved;
}

void *bk_os_remap(void *p, size_t old_size, size_t new_size, void *at)
{
    int saved = errno;
    void *q = at ? mremap(p, old_size, new_size, MREMAP_MAYMOVE | MREMAP_FIXED, at)
                 : mremap(p, old_size, new_size, MREMAP_MAYMOVE);
    errno = saved;
    return q == MAP_FAILED ? NULL : q;
}

/* The kernel's page size (getauxval: no allocation, no system call). */
static size_t kernel_page_size(void)
{
    static size_t size;                   /* 0 until read; racing reads agree */
    size_t s = bk_load_relaxed(&size);
    if (!s) {
        s = (size_t)getauxval(AT_PAGESZ);
        if (!s || (s & (s - 1)))
            s = BK_OS_PAGE_SIZE;
        bk_store_relaxed(&size, s);
    }
    return s;
}

/* madvise rounds the length up to whole pages: on a kernel with pages
 * bigger than brisk's 4 KiB, a range that ends inside a kernel page would
 * lose the neighbour's data.  Such ranges are refused, and their pages
 * stay resident and dirty, as after any refused release. */
bool bk_os_release(void *p, size_t size, bool lazy)
{
    if (((uintptr_t)p | size) & (kernel_page_size() - 1))
        return false;
    int saved = errno;
    bool ok = madvise(p, size, lazy ? MADV_FREE : MADV_DONTNEED) == 0;
    errno = saved;
    return ok;
}

bool bk_os_advise_hugepages(void *p, size_t size, bool want)
{
    int saved = errno;
    bool ok = madvise(p, size, want ? MADV_HUGEPAGE : MADV_NOHUGEPAGE) == 0;
    errno = saved;
    return ok;
}

uint64_t bk_os_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void bk_os_sleep_ms(unsigned ms)
{
    struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
    int saved = errno;
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
    errno = saved;
}

bool bk_os_spawn_thread(void *(*fn)(void *))
{
    sigset_t all, old;
    sigfillset(&all);
    /* The new thread inherits the mask: it never runs a signal handler of
     * the program's. */
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_attr_t attr;
    pthread_t t;
    bool ok = pthread_attr_init(&attr) == 0;
    if (ok) {
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        ok = pthread_create(&t, &attr, fn, NULL) == 0;
        pthread_attr_destroy(&attr);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return ok;
}

void bk_os_write_stderr(const char *s, size_t n)
{
    int saved = errno;
    while (n > 0) {
        ssize_t w = write(2, s, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        s += w;
        n -= (size_t)w;
    }
    errno = saved;
}

void bk_os_abort(void)
{
    /* abort() in glibc may flush stdio, which can re-enter a corrupt heap;
     * raise SIGABRT directly first. */
    raise(SIGABRT);
    _exit(127);
}

/* Read a small file into buf (NUL-terminated); false if it cannot be read. */
static bool read_small_file(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, buf, cap - 1);
    close(fd);
    if (n <= 0)
        return false;
    buf[n] = '\0';
    return true;
}

enum bk_thp_mode bk_os_thp_mode(void)
{
    char buf[128];
    if (!read_small_file("/sys/kernel/mm/transparent_hugepage/enabled", buf, sizeof buf))
        return BK_THP_UNKNOWN;
    if (strstr(buf, "[always]"))
        return BK_THP_ALWAYS;
    if (strstr(buf, "[madvise]"))
        return BK_THP_MADVISE;
    return strstr(buf, "[never]") ? BK_THP_NEVER : BK_THP_UNKNOWN;
}

static long parse_long(const char **s)
{
    long v = 0;
    while (**s >= '0' && **s <= '9')
        v = v * 10 + (*(*s)++ - '0');
    return v;
}

/* CPU limit from cgroup v2 "cpu.max" ("max 100000" or "200000 100000") or
 * cgroup v1 cfs files; 0 when unlimited or unknown. */
static unsigned cgroup_cpu_limit(void)
{
    char buf[128];
    long quota = -1, period = 0;
    if (read_small_file("/sys/fs/cgroup/cpu.max", buf, sizeof buf)) {
        const char *s = buf;
        if (*s >= '0' && *s <= '9') {
            quota = parse_long(&s);
            while (*s == ' ')
                s++;
            period = parse_long(&s);
        }
    } else if (read_small_file("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", buf, sizeof buf) &&
               buf[0] != '-') {
        const char *s = buf;
        quota = parse_long(&s);
        if (read_small_file("/sys/fs/cgroup/cpu/cpu.cfs_period_us", buf, sizeof buf)) {
            s = buf;
            period = parse_long(&s);
        }
    }
    if (quota <= 0 || period <= 0)
        return 0;
    return (unsigned)((quota + period - 1) / period);
}

unsigned bk_os_cpu_count(void)
{
    cpu_set_t set;
    unsigned n = 0;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        n = (unsigned)CPU_COUNT(&set);
    if (n == 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n = c > 0 ? (unsigned)c : 1;
    }
    unsigned limit = cgroup_cpu_limit();
    if (limit && limit < n)
        n = limit;
    return n;
}

const char *bk_os_getenv(const char *name)
{
    size_t len = strlen(name);
    if (!environ)
        return NULL;
    for (char **e = environ; *e; e++)
        if (strncmp(*e, name, len) == 0 && (*e)[len] == '=')
            return *e + len + 1;
    return NULL;
}

size_t bk_os_anon_hugepage_bytes(void)
{
    char buf[4096];
    if (!read_small_file("/proc/self/smaps_rollup", buf, sizeof buf))
        return 0;
    const char *s = strstr(buf, "AnonHugePages:");
    if (!s)
        return 0;
    s += sizeof "AnonHugePages:" - 1;
    while (*s == ' ')
        s++;
    return (size_t)parse_long(&s) * 1024;
}

int bk_os_thread_id(void)
{
    return (int)syscall(SYS_gettid);
}

bool bk_os_thread_alive(int tid)
{
    int saved = errno;
    bool alive = syscall(SYS_tgkill, getpid(), tid, 0) == 0 || errno != ESRCH;
    errno = saved;
    return alive;
}
