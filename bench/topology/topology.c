/* brisk_topology: print the machine's topology as hwloc sees it, in one
 * short block of text, for the head of benchmark reports:
 *
 *   topology: 1 package, 2 cores, 2 PUs, 1 NUMA node
 *     cpu model: Intel(R) Xeon(R) ...
 *     caches: L1d 32 KiB x2, L2 1 MiB x2, L3 32 MiB x1
 *     memory: 7.8 GiB (NUMA node 0: 7.8 GiB)
 *     usable PUs: 0-1 (logical order of cores: P#0 P#1)
 *
 * hwloc only sees what the process is allowed to use (cgroups, affinity),
 * which is what the benchmarks run on. */
#define _GNU_SOURCE
#include <hwloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void format_size(char *buf, size_t len, unsigned long long bytes)
{
    static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)bytes;
    int u = 0;
    while (v >= 1024.0 && u < 4) {
        v /= 1024.0;
        u++;
    }
    if (v == (double)(unsigned long long)v)
        snprintf(buf, len, "%llu %s", (unsigned long long)v, units[u]);
    else
        snprintf(buf, len, "%.1f %s", v, units[u]);
}

static const char *plural(int n, const char *one, const char *many)
{
    return n == 1 ? one : many;
}

/* One cache level: "L2 1 MiB x2"; sizes that differ between objects
 * (hybrid CPUs) are listed one by one. */
static void print_cache(hwloc_topology_t topo, hwloc_obj_type_t type, const char *name,
                        int *first)
{
    int n = hwloc_get_nbobjs_by_type(topo, type);
    unsigned long long size = 0;
    int count = 0;
    for (int i = 0; i < n; i++) {
        hwloc_obj_t c = hwloc_get_obj_by_type(topo, type, (unsigned)i);
        if (c->attr == NULL || c->attr->cache.type == HWLOC_OBJ_CACHE_INSTRUCTION)
            continue;
        if (count > 0 && c->attr->cache.size != size) {
            char buf[32];
            format_size(buf, sizeof buf, size);
            printf("%s%s %s x%d", *first ? "" : ", ", name, buf, count);
            *first = 0;
            count = 0;
        }
        size = c->attr->cache.size;
        count++;
    }
    if (count > 0) {
        char buf[32];
        format_size(buf, sizeof buf, size);
        printf("%s%s %s x%d", *first ? "" : ", ", name, buf, count);
        *first = 0;
    }
}

int main(void)
{
    hwloc_topology_t topo;
    if (hwloc_topology_init(&topo) != 0 || hwloc_topology_load(topo) != 0) {
        fprintf(stderr, "brisk_topology: hwloc could not load the topology\n");
        return 1;
    }

    int pus = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_PU);
    int cores = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE);
    int packages = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_PACKAGE);
    int numa = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_NUMANODE);
    printf("topology: %d %s, %d %s, %d %s, %d NUMA %s\n", packages,
           plural(packages, "package", "packages"), cores, plural(cores, "core", "cores"), pus,
           plural(pus, "PU", "PUs"), numa, plural(numa, "node", "nodes"));

    /* CPU model, from the first package (or the root on some platforms). */
    const char *model = NULL;
    hwloc_obj_t pkg = hwloc_get_obj_by_type(topo, HWLOC_OBJ_PACKAGE, 0);
    if (pkg != NULL)
        model = hwloc_obj_get_info_by_name(pkg, "CPUModel");
    if (model == NULL)
        model = hwloc_obj_get_info_by_name(hwloc_get_root_obj(topo), "CPUModel");
    if (model != NULL) {
        int len = (int)strlen(model);
        while (len > 0 && (model[len - 1] == ' ' || model[len - 1] == '\t'))
            len--;
        printf("  cpu model: %.*s\n", len, model);
    }

    printf("  caches: ");
    int first = 1;
    print_cache(topo, HWLOC_OBJ_L1CACHE, "L1d", &first);
    print_cache(topo, HWLOC_OBJ_L2CACHE, "L2", &first);
    print_cache(topo, HWLOC_OBJ_L3CACHE, "L3", &first);
    printf("%s\n", first ? "unknown" : "");

    char buf[32];
    hwloc_obj_t root = hwloc_get_root_obj(topo);
    format_size(buf, sizeof buf, root->total_memory);
    printf("  memory: %s", buf);
    if (numa > 0) {
        printf(" (");
        for (int i = 0; i < numa; i++) {
            hwloc_obj_t node = hwloc_get_obj_by_type(topo, HWLOC_OBJ_NUMANODE, (unsigned)i);
            format_size(buf, sizeof buf, node->attr ? node->attr->numanode.local_memory : 0);
            printf("%sNUMA node %u: %s", i ? ", " : "", node->os_index, buf);
        }
        printf(")");
    }
    printf("\n");

    char *allowed = NULL;
    hwloc_bitmap_list_asprintf(&allowed, hwloc_topology_get_allowed_cpuset(topo));
    printf("  usable PUs: %s (pin order:", allowed ? allowed : "?");
    free(allowed);
    for (int i = 0; i < pus && i < 64; i++) {
        hwloc_obj_t pu = hwloc_get_obj_by_type(topo, HWLOC_OBJ_PU, (unsigned)i);
        printf(" P#%u", pu->os_index);
    }
    printf("%s)\n", pus > 64 ? " ..." : "");

    hwloc_topology_destroy(topo);
    return 0;
}
