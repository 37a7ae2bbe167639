/* Options table and BRISK_CONF parsing (see options.h). */
#include "options.h"

#include <stdbool.h>
#include <string.h>
#include "error.h"

const struct bk_option bk_options[BK_OPT_COUNT] = {
#define BK_OPTION_ROW(name, type, def, min, max, choices, desc) \
    { #name, BK_OPT_##type, def, min, max, choices, desc },
    BK_OPTION_TABLE(BK_OPTION_ROW)
#undef BK_OPTION_ROW
};

size_t bk_option_values[BK_OPT_COUNT] = {
#define BK_OPTION_DEFAULT(name, type, def, min, max, choices, desc) def,
    BK_OPTION_TABLE(BK_OPTION_DEFAULT)
#undef BK_OPTION_DEFAULT
};

static bool word_eq(const char *s, size_t n, const char *w)
{
    return strlen(w) == n && strncmp(s, w, n) == 0;
}

static bool parse_number(const char *s, size_t n, bool suffixes, size_t *out)
{
    size_t v = 0, i = 0;
    if (n == 0)
        return false;
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
        if (v > (SIZE_MAX - 9) / 10)
            return false;
        v = v * 10 + (size_t)(s[i] - '0');
    }
    if (i == 0)
        return false;
    if (i < n && suffixes) {
        unsigned shift = 0;
        switch (s[i] | 0x20) {
        case 'k': shift = 10; break;
        case 'm': shift = 20; break;
        case 'g': shift = 30; break;
        default: return false;
        }
        if (++i < n && (s[i] | 0x20) == 'b')
            i++;
        if (v > (SIZE_MAX >> shift))
            return false;
        v <<= shift;
    }
    *out = v;
    return i == n;
}

/* Index of word s[0..n) in a '|'-separated list, or -1. */
static int enum_index(const char *choices, const char *s, size_t n)
{
    int idx = 0;
    for (const char *c = choices; *c; idx++) {
        const char *end = strchr(c, '|');
        size_t len = end ? (size_t)(end - c) : strlen(c);
        if (len == n && strncmp(c, s, n) == 0)
            return idx;
        if (!end)
            break;
        c = end + 1;
    }
    return -1;
}

static bool parse_value(const struct bk_option *o, const char *s, size_t n, size_t *out)
{
    switch (o->type) {
    case BK_OPT_BOOL:
        if (word_eq(s, n, "1") || word_eq(s, n, "true") || word_eq(s, n, "yes"))
            return *out = 1, true;
        if (word_eq(s, n, "0") || word_eq(s, n, "false") || word_eq(s, n, "no"))
            return *out = 0, true;
        return false;
    case BK_OPT_ENUM: {
        int i = enum_index(o->choices, s, n);
        return i >= 0 ? (*out = (size_t)i, true) : false;
    }
    case BK_OPT_MSEC:
        if (word_eq(s, n, "never"))
            return *out = BK_OPT_NEVER, true;
        /* fall through */
    case BK_OPT_UINT:
    case BK_OPT_SIZE:
        return parse_number(s, n, o->type == BK_OPT_SIZE, out) && *out >= o->min &&
               *out <= o->max;
    }
    return false;
}

static void apply_pair(const char *s, size_t n)
{
    const char *eq = memchr(s, '=', n);
    size_t klen = eq ? (size_t)(eq - s) : n;
    for (unsigned i = 0; i < BK_OPT_COUNT; i++) {
        if (!word_eq(s, klen, bk_options[i].name))
            continue;
        size_t v;
        if (eq && parse_value(&bk_options[i], eq + 1, n - klen - 1, &v)) {
            bk_option_values[i] = v;
        } else {
            char def[32];
            bk_option_value_text(i, bk_options[i].def, def, sizeof def);
            bk_warn("BRISK_CONF: invalid value '%.*s' for option %s (keeping the default %s)",
                    eq ? (int)(n - klen - 1) : 0, eq ? eq + 1 : "", bk_options[i].name, def);
        }
        return;
    }
    bk_warn("BRISK_CONF: unknown option '%.*s' (ignored)", (int)klen, s);
}

void bk_options_parse(const char *conf)
{
    for (unsigned i = 0; i < BK_OPT_COUNT; i++)
        bk_option_values[i] = bk_options[i].def;
    if (!conf)
        return;
    while (*conf) {
        const char *end = strchr(conf, ',');
        size_t n = end ? (size_t)(end - conf) : strlen(conf);
        if (n)
            apply_pair(conf, n);
        if (!end)
            break;
        conf = end + 1;
    }
}

void bk_option_value_text(unsigned i, size_t v, char *buf, size_t cap)
{
    const struct bk_option *o = &bk_options[i];
    if (o->type == BK_OPT_ENUM) {
        const char *c = o->choices;
        for (size_t k = 0; k < v && strchr(c, '|'); k++)
            c = strchr(c, '|') + 1;
        const char *end = strchr(c, '|');
        bk_format(buf, cap, "%.*s", end ? (int)(end - c) : (int)strlen(c), c);
    } else if (o->type == BK_OPT_MSEC && v == BK_OPT_NEVER) {
        bk_format(buf, cap, "never");
    } else if (o->type == BK_OPT_SIZE && v && v % BK_GIB == 0) {
        bk_format(buf, cap, "%zuG", v / BK_GIB);
    } else if (o->type == BK_OPT_SIZE && v && v % BK_MIB == 0) {
        bk_format(buf, cap, "%zuM", v / BK_MIB);
    } else if (o->type == BK_OPT_SIZE && v && v % BK_KIB == 0) {
        bk_format(buf, cap, "%zuK", v / BK_KIB);
    } else {
        bk_format(buf, cap, "%zu", v);
    }
}
