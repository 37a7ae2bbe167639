/* brisk: a thread-caching, high-concurrency malloc.
 *
 * libbrisk.so / libbrisk.a replace the whole malloc family (malloc, free,
 * calloc, realloc, the aligned variants, malloc_usable_size, the glibc
 * aliases and the C++ operators).  The brisk_* functions below are always
 * exported as well, so a program (or a sanitizer build, which must keep the
 * sanitizer's own malloc) can call brisk explicitly. */
#ifndef BRISK_H
#define BRISK_H

#include <stddef.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BRISK_VERSION_MAJOR 0
#define BRISK_VERSION_MINOR 1
#define BRISK_VERSION_PATCH 0
#define BRISK_MAX_CLASSES 128

void *brisk_malloc(size_t size);
void brisk_free(void *ptr);
void *brisk_calloc(size_t nmemb, size_t size);
void *brisk_realloc(void *ptr, size_t size);
void *brisk_reallocarray(void *ptr, size_t nmemb, size_t size);
int brisk_posix_memalign(void **out, size_t alignment, size_t size);
void *brisk_aligned_alloc(size_t alignment, size_t size);
void *brisk_memalign(size_t alignment, size_t size);
void *brisk_valloc(size_t size);
void *brisk_pvalloc(size_t size);
size_t brisk_malloc_usable_size(void *ptr);
void brisk_free_sized(void *ptr, size_t size);
void brisk_free_aligned_sized(void *ptr, size_t alignment, size_t size);

/* Return every free page to the kernel now: the calling thread's cache, the
 * central lists and the page heap.  Returns the bytes released. */
size_t brisk_release_memory(void);

struct brisk_class_stats {
    size_t size;              /* object size of the class */
    size_t live_objects;      /* handed to the program */
    size_t cached_objects;    /* in thread caches */
    size_t central_objects;   /* in central lists (spans and batches) */
    size_t spans;             /* spans of this class */
};

struct brisk_stats {
    size_t allocated;         /* bytes the program holds (small: class size) */
    size_t active;            /* bytes in spans handed out by the page heap */
    size_t resident;          /* estimate: active + free dirty pages + metadata */
    size_t mapped;            /* bytes mapped from the OS for the heap */
    size_t metadata;          /* bytes of brisk's own bookkeeping */
    size_t released;          /* free bytes given back to the kernel */
    size_t released_total;    /* bytes given back with madvise since start-up */
    size_t regions;           /* 64 MiB regions mapped */
    size_t regions_unmapped;  /* empty regions unmapped since start-up */
    size_t hugepage_backed;   /* the process's anonymous memory in transparent
                                 hugepages (AnonHugePages), all of it, not
                                 only brisk's */
    size_t large_allocated;   /* bytes requested by live large blocks */
    size_t thread_caches;     /* live thread caches */
    size_t cached_bytes;      /* bytes held in thread caches */
    size_t central_bytes;     /* bytes free in central lists */
    size_t nclasses;
    struct brisk_class_stats classes[BRISK_MAX_CLASSES];
};

void brisk_stats(struct brisk_stats *out);
/* Write the statistics to `out` (stderr if NULL) as text, or as one JSON
 * object when json != 0. */
void brisk_stats_print(FILE *out, int json);

/* glibc's introspection calls, answered from the same statistics. */
int brisk_malloc_trim(size_t pad);
void brisk_malloc_stats(void);
int brisk_malloc_info(int options, FILE *fp);
int brisk_mallopt(int param, int value);

#ifdef __cplusplus
}
#endif

#endif
