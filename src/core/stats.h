/* Statistics: one structure (struct brisk_stats in brisk.h), filled layer by
 * layer, printed as text or JSON.  The core fills what the central lists,
 * large allocations and page heap know; the thread cache layer then adds
 * what sits in thread caches (bk_tc_stats_add) and derives live objects. */
#ifndef BRISK_STATS_H
#define BRISK_STATS_H

#include <stdio.h>
#include "../../include/brisk.h"
#include "../os/compiler.h"

BK_INTERNAL void bk_core_stats(struct brisk_stats *st);
/* Fill what depends on the per-class cached counts (live objects, totals). */
BK_INTERNAL void bk_stats_finish(struct brisk_stats *st);
BK_INTERNAL void bk_stats_write(FILE *out, int json, const struct brisk_stats *st);

#endif
