/* brisk's options: one table, the single source of truth.
 *
 * Each row: name, type, default, minimum, maximum, description.  The values
 * are read once, at initialisation, from the BRISK_CONF environment
 * variable ("key=value,key=value"); sizes accept k/m/g suffixes, booleans
 * 0/1/true/false, enums one of their listed words, times a number of
 * milliseconds or "never" (stored as BK_OPT_NEVER).  An unknown key or a bad
 * value gets one line on stderr and the default is kept.  README.md's option
 * list is generated from this table (tests/test_options.c checks it). */
#ifndef BRISK_OPTIONS_H
#define BRISK_OPTIONS_H

#include <stddef.h>
#include <stdint.h>
#include "../os/compiler.h"

#define BK_KIB ((size_t)1 << 10)
#define BK_MIB ((size_t)1 << 20)
#define BK_GIB ((size_t)1 << 30)

/* X(name, type, default, min, max, choices, description) */
#define BK_OPTION_TABLE(X)                                                              \
    X(stats_print, BOOL, 0, 0, 1, NULL,                                                 \
      "Print allocator statistics to stderr when the process exits.")                   \
    X(stats_format, ENUM, 0, 0, 1, "text|json",                                         \
      "Format of the statistics printed by stats_print and malloc_stats().")           \
    X(tcache_max_bytes, SIZE, 4 * BK_MIB, 0, BK_GIB,                                    \
      NULL, "Bound on the bytes one thread cache may hold; 0 disables thread caches.")  \
    X(stripes, UINT, 0, 0, 64, NULL,                                                    \
      "Lock stripes per central free list; 0 derives it from the usable CPUs.")         \
    X(decay_ms, MSEC, 1000, 0, 3600000, NULL,                                           \
      "Free memory goes back to the kernel after staying free this long (ms); 0: at once; "\
      "never: only on pressure or malloc_trim.")                                        \
    X(madvise, ENUM, 0, 0, 1, "dontneed|free",                                          \
      "How memory goes back: dontneed (RSS drops at once) or free (MADV_FREE: the "      \
      "kernel takes it when it needs it).")                                             \
    X(dirty_max, SIZE, 64 * BK_MIB, 0, (size_t)1 << 40, NULL,                           \
      "Cap on free memory kept resident: above it free hugepages go back at once, "     \
      "oldest first, and pieces of partly used hugepages once decay_ms old.")           \
    X(thp, ENUM, 0, 0, 2, "auto|always|never",                                          \
      "Transparent hugepages for the heap: auto advises them when the kernel's THP mode " \
      "is madvise; always advises them; never opts out.")                               \
    X(retain, BOOL, 0, 0, 1, NULL,                                                      \
      "Keep empty 64 MiB regions mapped (released) instead of unmapping them.")         \
    X(background_thread, BOOL, 0, 0, 1, NULL,                                           \
      "Run decay from a background thread too, so that idle programs give memory back.") \
    X(fork_release, BOOL, 1, 0, 1, NULL,                                                \
      "Before a fork, give the forking thread's cache and all free pages back to the kernel "\
      "(at most once per decay tick; not with decay_ms=never), so that children inherit "  \
      "less free memory.")

enum bk_option_type { BK_OPT_BOOL, BK_OPT_UINT, BK_OPT_SIZE, BK_OPT_ENUM, BK_OPT_MSEC };

#define BK_OPT_NEVER SIZE_MAX

enum bk_option_id {
#define BK_OPTION_ID(name, type, def, min, max, choices, desc) BK_OPT_##name,
    BK_OPTION_TABLE(BK_OPTION_ID)
#undef BK_OPTION_ID
    BK_OPT_COUNT
};

struct bk_option {
    const char *name;
    enum bk_option_type type;
    size_t def, min, max;
    const char *choices;       /* '|'-separated words for ENUM */
    const char *description;
};

extern BK_INTERNAL const struct bk_option bk_options[BK_OPT_COUNT];
extern BK_INTERNAL size_t bk_option_values[BK_OPT_COUNT];

static inline size_t bk_opt(enum bk_option_id id) { return bk_option_values[id]; }

/* Parse a "key=value,..." string into bk_option_values (defaults first). */
BK_INTERNAL void bk_options_parse(const char *conf);
/* Write the value of option i as text ("2M", "json", "1"). */
BK_INTERNAL void bk_option_value_text(unsigned i, size_t value, char *buf, size_t cap);

#endif
