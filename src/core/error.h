/* Error reporting: one line on stderr, formatted without malloc.
 *
 * bk_format understands %s, %.*s, %c, %d, %u, %zu, %zx, %p and %%, which is
 * all brisk's messages need.  Every message starts with "brisk: ". */
#ifndef BRISK_ERROR_H
#define BRISK_ERROR_H

#include <stdarg.h>
#include <stddef.h>
#include "../os/compiler.h"

BK_INTERNAL size_t bk_vformat(char *buf, size_t cap, const char *fmt, va_list ap);
BK_INTERNAL size_t bk_format(char *buf, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Write "brisk: <message>\n" to stderr. */
BK_INTERNAL void bk_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Report a pointer the program passed to `call` that brisk cannot accept
 * ("invalid pointer", "double free") and abort. */
BK_INTERNAL BK_NORETURN BK_SLOW_PATH void bk_fatal_pointer(const char *call, const char *problem,
                                                           const void *p);

#endif
