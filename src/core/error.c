/* One-line diagnostics (see error.h). */
#include "error.h"
#include "../os/os.h"

static void put_char(char *buf, size_t cap, size_t *n, char c)
{
    if (*n + 1 < cap)
        buf[*n] = c;
    (*n)++;
}

static void put_str(char *buf, size_t cap, size_t *n, const char *s, size_t max)
{
    for (size_t i = 0; i < max && s[i]; i++)
        put_char(buf, cap, n, s[i]);
}

static void put_num(char *buf, size_t cap, size_t *n, unsigned long long v, unsigned base)
{
    char tmp[24];
    int len = 0;
    do {
        tmp[len++] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v);
    while (len)
        put_char(buf, cap, n, tmp[--len]);
}

size_t bk_vformat(char *buf, size_t cap, const char *fmt, va_list ap)
{
    size_t n = 0;
    for (const char *f = fmt; *f; f++) {
        if (*f != '%') {
            put_char(buf, cap, &n, *f);
            continue;
        }
        f++;
        if (f[0] == '.' && f[1] == '*' && f[2] == 's') {
            int len = va_arg(ap, int);
            put_str(buf, cap, &n, va_arg(ap, const char *), (size_t)len);
            f += 2;
        } else if (*f == 's') {
            const char *s = va_arg(ap, const char *);
            put_str(buf, cap, &n, s ? s : "(null)", (size_t)-1);
        } else if (*f == 'c') {
            put_char(buf, cap, &n, (char)va_arg(ap, int));
        } else if (*f == 'd') {
            int v = va_arg(ap, int);
            if (v < 0)
                put_char(buf, cap, &n, '-');
            put_num(buf, cap, &n, v < 0 ? -(unsigned long long)v : (unsigned long long)v, 10);
        } else if (*f == 'u') {
            put_num(buf, cap, &n, va_arg(ap, unsigned), 10);
        } else if (*f == 'z' && (f[1] == 'u' || f[1] == 'x')) {
            put_num(buf, cap, &n, va_arg(ap, size_t), f[1] == 'u' ? 10 : 16);
            f++;
        } else if (*f == 'p') {
            put_str(buf, cap, &n, "0x", 2);
            put_num(buf, cap, &n, (uintptr_t)va_arg(ap, void *), 16);
        } else {
            put_char(buf, cap, &n, *f ? *f : '%');
            if (!*f)
                break;
        }
    }
    if (cap)
        buf[n < cap ? n : cap - 1] = '\0';
    return n;
}

size_t bk_format(char *buf, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t n = bk_vformat(buf, cap, fmt, ap);
    va_end(ap);
    return n;
}

static void vwarn(const char *fmt, va_list ap)
{
    char line[512] = "brisk: ";
    size_t n = 7 + bk_vformat(line + 7, sizeof line - 8, fmt, ap);
    if (n > sizeof line - 2)
        n = sizeof line - 2;
    line[n] = '\n';
    bk_os_write_stderr(line, n + 1);
}

void bk_warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vwarn(fmt, ap);
    va_end(ap);
}

void bk_fatal_pointer(const char *call, const char *problem, const void *p)
{
    bk_warn("%s(): %s %p", call, problem, p);
    bk_os_abort();
}
