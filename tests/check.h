/* Minimal assertion helpers shared by the unit tests.
 *
 * CHECK(cond) or CHECK(cond, "fmt", args...) records a failure (file, line,
 * the condition text and the optional printf-style explanation, which must
 * start with a string literal) and carries on, so one run reports every
 * broken property.  REQUIRE() does the same and then exits at once: use it
 * when going on would only crash (a NULL pointer about to be dereferenced).
 * CHECK_LIMITED() is for loops over millions of cases: past 50 failures it
 * only counts.  main() ends with `return check_report("name");`, which
 * prints a summary and returns nonzero if anything failed. */
#ifndef BRISK_TEST_CHECK_H
#define BRISK_TEST_CHECK_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static int check_failures;
static long check_count;

static inline void check_detail_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* fmt is " " followed by the caller's format (never empty, so gcc's
 * -Wformat-zero-length stays quiet when there is none). */
static inline void check_detail_(const char *fmt, ...)
{
    if (!fmt[1])
        return;
    va_list ap;
    va_start(ap, fmt);
    fputc(':', stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
}

static inline void check_fail_(const char *file, int line, const char *cond)
{
    check_failures++;
    fprintf(stderr, "FAIL %s:%d: %s", file, line, cond);
}

#define CHECK(cond, ...)                                                              \
    do {                                                                              \
        check_count++;                                                                \
        if (!(cond)) {                                                                \
            check_fail_(__FILE__, __LINE__, #cond);                                   \
            check_detail_(" " __VA_ARGS__);                                            \
            fputc('\n', stderr);                                                      \
            fflush(stderr);                                                           \
        }                                                                             \
    } while (0)

#define REQUIRE(cond, ...)                                                            \
    do {                                                                              \
        int before_ = check_failures;                                                 \
        CHECK(cond, __VA_ARGS__);                                                     \
        if (check_failures != before_) {                                              \
            fprintf(stderr, "stopping: the rest of the test depends on this\n");      \
            exit(1);                                                                  \
        }                                                                             \
    } while (0)

#define CHECK_LIMITED(cond, ...)                                                      \
    do {                                                                              \
        if (check_failures < 50) {                                                    \
            CHECK(cond, __VA_ARGS__);                                                 \
        } else {                                                                      \
            check_count++;                                                            \
            if (!(cond))                                                              \
                check_failures++;                                                     \
        }                                                                             \
    } while (0)

static inline int check_report(const char *name)
{
    if (check_failures) {
        fprintf(stderr, "%s: %d of %ld checks FAILED\n", name, check_failures, check_count);
        return 1;
    }
    printf("%s: all %ld checks passed\n", name, check_count);
    return 0;
}

#endif
