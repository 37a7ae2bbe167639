/* BRISK_CONF parsing (bk_options_parse) and option formatting, in-process:
 * warnings go to file descriptor 2, which each parse redirects to a pipe. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/options.h"
#include "check.h"

static char warnings[16384];

/* Parse conf with stderr captured into `warnings`; returns the number of
 * lines printed. */
static unsigned parse(const char *conf)
{
    int pfd[2];
    REQUIRE(pipe(pfd) == 0);
    fflush(stderr);
    int saved = dup(2);
    REQUIRE(saved >= 0);
    dup2(pfd[1], 2);
    close(pfd[1]);
    bk_options_parse(conf);
    dup2(saved, 2);
    close(saved);
    size_t n = 0;
    ssize_t r;
    while ((r = read(pfd[0], warnings + n, sizeof warnings - 1 - n)) > 0)
        n += (size_t)r;
    close(pfd[0]);
    warnings[n] = '\0';
    unsigned lines = 0;
    for (size_t i = 0; i < n; i++)
        lines += warnings[i] == '\n';
    return lines;
}

static size_t def(enum bk_option_id id) { return bk_options[id].def; }

/* Parse a single "name=value" and check the value and the warning count. */
static void expect_value(const char *conf, enum bk_option_id id, size_t want)
{
    unsigned lines = parse(conf);
    CHECK(lines == 0, "\"%s\" warned: %s", conf, warnings);
    CHECK(bk_opt(id) == want, "\"%s\": %s = %zu, want %zu", conf, bk_options[id].name, bk_opt(id),
          want);
    for (unsigned i = 0; i < BK_OPT_COUNT; i++)
        if (i != (unsigned)id)
            CHECK(bk_opt(i) == bk_options[i].def, "\"%s\" changed %s", conf, bk_options[i].name);
}

/* A rejected value: one warning line naming the option, the bad value and
 * the default, and the default kept. */
static void expect_invalid(const char *conf, enum bk_option_id id, const char *value)
{
    unsigned lines = parse(conf);
    CHECK(lines == 1, "\"%s\": %u warning lines: %s", conf, lines, warnings);
    char want[256], deftext[32];
    bk_option_value_text(id, def(id), deftext, sizeof deftext);
    snprintf(want, sizeof want,
             "brisk: BRISK_CONF: invalid value '%s' for option %s (keeping the default %s)\n",
             value, bk_options[id].name, deftext);
    CHECK(strcmp(warnings, want) == 0, "\"%s\": got \"%s\", want \"%s\"", conf, warnings, want);
    CHECK(bk_opt(id) == def(id), "\"%s\": %s = %zu, default %zu not kept", conf,
          bk_options[id].name, bk_opt(id), def(id));
}

static void test_table(void)
{
    for (unsigned i = 0; i < BK_OPT_COUNT; i++) {
        const struct bk_option *o = &bk_options[i];
        CHECK(o->name && *o->name, "option %u has no name", i);
        CHECK(o->description && strlen(o->description) > 10, "%s: no description", o->name);
        CHECK(o->def >= o->min && o->def <= o->max, "%s: default %zu outside [%zu, %zu]",
              o->name, o->def, o->min, o->max);
        CHECK((o->type == BK_OPT_ENUM) == (o->choices != NULL), "%s: choices", o->name);
        for (unsigned j = 0; j < i; j++)
            CHECK(strcmp(o->name, bk_options[j].name) != 0, "option %s listed twice", o->name);
    }
}

static void test_defaults(void)
{
    bk_option_values[BK_OPT_stripes] = 7;
    CHECK(parse(NULL) == 0, "NULL warned: %s", warnings);
    for (unsigned i = 0; i < BK_OPT_COUNT; i++)
        CHECK(bk_opt(i) == bk_options[i].def, "NULL: %s = %zu", bk_options[i].name, bk_opt(i));
    CHECK(parse("") == 0, "empty string warned: %s", warnings);
    CHECK(parse(",,,") == 0, "commas only warned: %s", warnings);
    for (unsigned i = 0; i < BK_OPT_COUNT; i++)
        CHECK(bk_opt(i) == bk_options[i].def, "\",,,\": %s = %zu", bk_options[i].name,
              bk_opt(i));
    /* every parse starts from the defaults */
    expect_value("stripes=8", BK_OPT_stripes, 8);
    expect_value("stats_print=1", BK_OPT_stats_print, 1);   /* stripes back to 0 */
    CHECK(def(BK_OPT_tcache_max_bytes) == 4 * BK_MIB, "tcache default %zu",
          def(BK_OPT_tcache_max_bytes));
    CHECK(def(BK_OPT_dirty_max) == 64 * BK_MIB, "dirty_max default %zu", def(BK_OPT_dirty_max));
}

static void test_sizes(void)
{
    const struct { const char *conf; size_t v; } ok[] = {
        { "tcache_max_bytes=0", 0 },
        { "tcache_max_bytes=12345", 12345 },
        { "tcache_max_bytes=512k", 512 * BK_KIB },
        { "tcache_max_bytes=512K", 512 * BK_KIB },
        { "tcache_max_bytes=512kb", 512 * BK_KIB },
        { "tcache_max_bytes=512KB", 512 * BK_KIB },
        { "tcache_max_bytes=4m", 4 * BK_MIB },
        { "tcache_max_bytes=4M", 4 * BK_MIB },
        { "tcache_max_bytes=4MB", 4 * BK_MIB },
        { "tcache_max_bytes=1g", BK_GIB },
        { "tcache_max_bytes=1G", BK_GIB },
        { "tcache_max_bytes=1073741824", BK_GIB },   /* the maximum, exactly */
        { "tcache_max_bytes=1048576k", BK_GIB },
        { "dirty_max=1024g", (size_t)1 << 40 },      /* its maximum */
        { "dirty_max=0", 0 },
        { "dirty_max=100m", 100 * BK_MIB },
    };
    for (unsigned i = 0; i < sizeof ok / sizeof ok[0]; i++)
        expect_value(ok[i].conf, strncmp(ok[i].conf, "dirty", 5) ? BK_OPT_tcache_max_bytes
                                                                  : BK_OPT_dirty_max,
                     ok[i].v);
    const char *bad[] = { "2g", "1073741825", "1048577k", "1x", "k", "", "-1", "4 m", " 4m",
                          "4mm", "4mbb", "4b", "0x10", "1.5m", "99999999999999999999999",
                          "18446744073709551615", "17179869184g" };
    char conf[128];
    for (unsigned i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(conf, sizeof conf, "tcache_max_bytes=%s", bad[i]);
        expect_invalid(conf, BK_OPT_tcache_max_bytes, bad[i]);
    }
    /* a comma ends the value */
    expect_value("tcache_max_bytes=4m,", BK_OPT_tcache_max_bytes, 4 * BK_MIB);
    expect_invalid("dirty_max=1025g", BK_OPT_dirty_max, "1025g");
    expect_invalid("dirty_max=1t", BK_OPT_dirty_max, "1t");
}

static void test_uint(void)
{
    expect_value("stripes=0", BK_OPT_stripes, 0);
    expect_value("stripes=1", BK_OPT_stripes, 1);
    expect_value("stripes=64", BK_OPT_stripes, 64);
    expect_invalid("stripes=65", BK_OPT_stripes, "65");
    expect_invalid("stripes=4k", BK_OPT_stripes, "4k");   /* no suffixes on counts */
    expect_invalid("stripes=many", BK_OPT_stripes, "many");
    expect_invalid("stripes=", BK_OPT_stripes, "");
}

static void test_bool_enum(void)
{
    const char *yes[] = { "1", "true", "yes" }, *no[] = { "0", "false", "no" };
    char conf[64];
    for (unsigned i = 0; i < 3; i++) {
        snprintf(conf, sizeof conf, "stats_print=%s", yes[i]);
        expect_value(conf, BK_OPT_stats_print, 1);
        snprintf(conf, sizeof conf, "stats_print=%s", no[i]);
        expect_value(conf, BK_OPT_stats_print, 0);
    }
    expect_invalid("stats_print=2", BK_OPT_stats_print, "2");
    expect_invalid("stats_print=on", BK_OPT_stats_print, "on");
    expect_invalid("stats_print=truex", BK_OPT_stats_print, "truex");
    expect_invalid("stats_print=", BK_OPT_stats_print, "");
    expect_value("stats_format=json", BK_OPT_stats_format, 1);
    expect_value("stats_format=text", BK_OPT_stats_format, 0);
    expect_invalid("stats_format=xml", BK_OPT_stats_format, "xml");
    expect_invalid("stats_format=jso", BK_OPT_stats_format, "jso");
    expect_invalid("stats_format=jsonx", BK_OPT_stats_format, "jsonx");
    expect_invalid("stats_format=text|json", BK_OPT_stats_format, "text|json");
    /* a key with no '=' has an empty value */
    unsigned lines = parse("stats_print");
    CHECK(lines == 1 && strstr(warnings, "invalid value '' for option stats_print"),
          "\"stats_print\": %s", warnings);
}

/* The memory-return options of issue 4: times, enums, booleans. */
static void test_decay_options(void)
{
    expect_value("decay_ms=0", BK_OPT_decay_ms, 0);
    expect_value("decay_ms=250", BK_OPT_decay_ms, 250);
    expect_value("decay_ms=3600000", BK_OPT_decay_ms, 3600000);
    expect_value("decay_ms=never", BK_OPT_decay_ms, BK_OPT_NEVER);
    expect_invalid("decay_ms=3600001", BK_OPT_decay_ms, "3600001");
    expect_invalid("decay_ms=-1", BK_OPT_decay_ms, "-1");
    expect_invalid("decay_ms=1s", BK_OPT_decay_ms, "1s");         /* milliseconds only */
    expect_invalid("decay_ms=Never", BK_OPT_decay_ms, "Never");
    expect_invalid("decay_ms=", BK_OPT_decay_ms, "");
    expect_value("madvise=free", BK_OPT_madvise, 1);
    expect_value("madvise=dontneed", BK_OPT_madvise, 0);
    expect_invalid("madvise=remove", BK_OPT_madvise, "remove");
    expect_value("thp=always", BK_OPT_thp, 1);
    expect_value("thp=never", BK_OPT_thp, 2);
    expect_value("thp=auto", BK_OPT_thp, 0);
    expect_invalid("thp=madvise", BK_OPT_thp, "madvise");
    expect_value("retain=1", BK_OPT_retain, 1);
    expect_invalid("retain=maybe", BK_OPT_retain, "maybe");
    expect_value("background_thread=true", BK_OPT_background_thread, 1);
    expect_invalid("background_thread=2", BK_OPT_background_thread, "2");
    expect_value("fork_release=0", BK_OPT_fork_release, 0);
    expect_value("fork_release=true", BK_OPT_fork_release, 1);
    expect_invalid("fork_release=2", BK_OPT_fork_release, "2");
    char buf[32];
    bk_option_value_text(BK_OPT_decay_ms, BK_OPT_NEVER, buf, sizeof buf);
    CHECK(strcmp(buf, "never") == 0, "decay_ms never printed \"%s\"", buf);
    bk_option_value_text(BK_OPT_decay_ms, 1000, buf, sizeof buf);
    CHECK(strcmp(buf, "1000") == 0, "decay_ms 1000 printed \"%s\"", buf);
    parse(NULL);
}

static void test_unknown_and_mixed(void)
{
    unsigned lines = parse("nosuch=1");
    CHECK(lines == 1 && strcmp(warnings, "brisk: BRISK_CONF: unknown option 'nosuch' (ignored)\n") ==
                            0,
          "unknown option: \"%s\"", warnings);
    lines = parse("stats=1");               /* a prefix of a real name */
    CHECK(lines == 1 && strstr(warnings, "unknown option 'stats'"), "prefix: \"%s\"", warnings);
    lines = parse("stats_print_extra=1");   /* a real name as a prefix */
    CHECK(lines == 1 && strstr(warnings, "unknown option 'stats_print_extra'"),
          "longer name: \"%s\"", warnings);
    lines = parse("=5");
    CHECK(lines == 1 && strstr(warnings, "unknown option ''"), "empty key: \"%s\"", warnings);

    /* several pairs: good ones apply, each bad one warns once */
    lines = parse("stats_print=1,nosuch=1,stripes=8,tcache_max_bytes=bogus,,dirty_max=128m,"
                  "stats_format=json");
    CHECK(lines == 2, "mixed: %u warning lines: %s", lines, warnings);
    CHECK(strstr(warnings, "unknown option 'nosuch'") != NULL, "mixed: %s", warnings);
    CHECK(strstr(warnings, "invalid value 'bogus' for option tcache_max_bytes") != NULL,
          "mixed: %s", warnings);
    CHECK(bk_opt(BK_OPT_stats_print) == 1, "mixed: stats_print %zu", bk_opt(BK_OPT_stats_print));
    CHECK(bk_opt(BK_OPT_stripes) == 8, "mixed: stripes %zu", bk_opt(BK_OPT_stripes));
    CHECK(bk_opt(BK_OPT_tcache_max_bytes) == def(BK_OPT_tcache_max_bytes), "mixed: tcache %zu",
          bk_opt(BK_OPT_tcache_max_bytes));
    CHECK(bk_opt(BK_OPT_dirty_max) == 128 * BK_MIB, "mixed: dirty_max %zu",
          bk_opt(BK_OPT_dirty_max));
    CHECK(bk_opt(BK_OPT_stats_format) == 1, "mixed: stats_format %zu",
          bk_opt(BK_OPT_stats_format));
    /* every warning line is a brisk line */
    for (const char *l = warnings; *l;) {
        size_t len = strcspn(l, "\n");
        CHECK(strncmp(l, "brisk: BRISK_CONF: ", 19) == 0, "line \"%.*s\"", (int)len, l);
        l += len + (l[len] == '\n');
    }
    /* a later valid value wins */
    lines = parse("stripes=2,stripes=16");
    CHECK(lines == 0 && bk_opt(BK_OPT_stripes) == 16, "repeat: stripes %zu",
          bk_opt(BK_OPT_stripes));
    parse(NULL);
}

static void test_value_text(void)
{
    const struct { enum bk_option_id id; size_t v; const char *text; } t[] = {
        { BK_OPT_tcache_max_bytes, 2 * BK_MIB, "2M" },
        { BK_OPT_tcache_max_bytes, BK_GIB, "1G" },
        { BK_OPT_tcache_max_bytes, 512 * BK_KIB, "512K" },
        { BK_OPT_tcache_max_bytes, 1536 * BK_KIB, "1536K" },
        { BK_OPT_tcache_max_bytes, 1000, "1000" },
        { BK_OPT_tcache_max_bytes, 0, "0" },
        { BK_OPT_dirty_max, (size_t)1 << 40, "1024G" },
        { BK_OPT_stats_format, 0, "text" },
        { BK_OPT_stats_format, 1, "json" },
        { BK_OPT_stats_print, 1, "1" },
        { BK_OPT_stripes, 64, "64" },
    };
    char buf[32];
    for (unsigned i = 0; i < sizeof t / sizeof t[0]; i++) {
        memset(buf, 'x', sizeof buf);
        bk_option_value_text(t[i].id, t[i].v, buf, sizeof buf);
        CHECK(strcmp(buf, t[i].text) == 0, "%s = %zu printed \"%s\", want \"%s\"",
              bk_options[t[i].id].name, t[i].v, buf, t[i].text);
    }
    /* the text of every default parses back to the default */
    for (unsigned i = 0; i < BK_OPT_COUNT; i++) {
        char conf[96];
        bk_option_value_text(i, bk_options[i].def, buf, sizeof buf);
        snprintf(conf, sizeof conf, "%s=%s", bk_options[i].name, buf);
        unsigned lines = parse(conf);
        CHECK(lines == 0 && bk_opt(i) == bk_options[i].def, "\"%s\" does not round-trip: %s",
              conf, warnings);
    }
    /* a tiny buffer is truncated, NUL-terminated */
    char small[3] = { 'x', 'x', 'x' };
    bk_option_value_text(BK_OPT_stats_format, 0, small, sizeof small);
    CHECK(small[2] == '\0' && strncmp(small, "te", 2) == 0, "truncated text \"%.3s\"", small);
}

int main(void)
{
    test_table();
    test_defaults();
    test_sizes();
    test_uint();
    test_bool_enum();
    test_decay_options();
    test_unknown_and_mixed();
    test_value_text();
    return check_report("test_options");
}
