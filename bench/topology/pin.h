/* Pinning benchmark threads to processing units (PUs).
 *
 *   int brisk_pin_init(void);          load the topology once; returns the
 *                                      number of PUs this process may use
 *   int brisk_pin_thread(unsigned k);  bind the calling thread to the
 *                                      (k mod PUs)-th usable PU; 0 on success
 *
 * Call brisk_pin_init from one thread before the others call
 * brisk_pin_thread.  With hwloc (BRISK_BENCH_HAVE_HWLOC defined and the
 * program linked with hwloc) the k-th PU is the k-th in hwloc's logical
 * order, which walks packages, then cores, then hyperthreads, so k = 0, 1, …
 * fill distinct cores before sharing one.  Without hwloc it falls back to
 * the k-th CPU of the process's affinity mask (sched_getaffinity).
 *
 * Header-only so that any benchmark can use it; hwloc is a dependency of the
 * benchmarks only, never of libbrisk. */
#ifndef BRISK_BENCH_PIN_H
#define BRISK_BENCH_PIN_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <sched.h>

#ifdef BRISK_BENCH_HAVE_HWLOC
#include <hwloc.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif

#ifdef BRISK_BENCH_HAVE_HWLOC

static hwloc_topology_t brisk_pin_topology_;
static int brisk_pin_pus_ = -1;

static inline int brisk_pin_init(void)
{
    if (brisk_pin_pus_ >= 0)
        return brisk_pin_pus_;
    if (hwloc_topology_init(&brisk_pin_topology_) != 0)
        return brisk_pin_pus_ = 0;
    if (hwloc_topology_load(brisk_pin_topology_) != 0) {
        hwloc_topology_destroy(brisk_pin_topology_);
        return brisk_pin_pus_ = 0;
    }
    brisk_pin_pus_ = hwloc_get_nbobjs_by_type(brisk_pin_topology_, HWLOC_OBJ_PU);
    if (brisk_pin_pus_ < 0)
        brisk_pin_pus_ = 0;
    return brisk_pin_pus_;
}

static inline int brisk_pin_thread(unsigned k)
{
    if (brisk_pin_init() <= 0)
        return -1;
    hwloc_obj_t pu = hwloc_get_obj_by_type(brisk_pin_topology_, HWLOC_OBJ_PU,
                                           k % (unsigned)brisk_pin_pus_);
    if (pu == NULL)
        return -1;
    return hwloc_set_cpubind(brisk_pin_topology_, pu->cpuset, HWLOC_CPUBIND_THREAD);
}

#else /* no hwloc: the affinity mask, as it was at brisk_pin_init */

static cpu_set_t brisk_pin_set_;
static int brisk_pin_cpus_ = -1;

static inline int brisk_pin_init(void)
{
    if (brisk_pin_cpus_ >= 0)
        return brisk_pin_cpus_;
    if (sched_getaffinity(0, sizeof brisk_pin_set_, &brisk_pin_set_) != 0)
        return brisk_pin_cpus_ = 0;
    return brisk_pin_cpus_ = CPU_COUNT(&brisk_pin_set_);
}

static inline int brisk_pin_thread(unsigned k)
{
    if (brisk_pin_init() <= 0)
        return -1;
    unsigned want = k % (unsigned)brisk_pin_cpus_;
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
        if (!CPU_ISSET(cpu, &brisk_pin_set_))
            continue;
        if (want-- == 0) {
            cpu_set_t one;
            CPU_ZERO(&one);
            CPU_SET(cpu, &one);
            return pthread_setaffinity_np(pthread_self(), sizeof one, &one) == 0 ? 0 : -1;
        }
    }
    return -1;
}

#endif

#ifdef __cplusplus
}
#endif

#endif
