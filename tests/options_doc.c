/* Prints the README's option table from the options table in
 * src/core/options.h, the single source of truth.  With a README path as
 * argument, checks that the README holds exactly this table between its
 * "options:begin" and "options:end" markers instead, and exits 1 (printing
 * the expected table) if not. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/options.h"

static const char *type_name(enum bk_option_type t)
{
    switch (t) {
    case BK_OPT_BOOL: return "bool";
    case BK_OPT_UINT: return "integer";
    case BK_OPT_SIZE: return "size";
    case BK_OPT_ENUM: return "enum";
    case BK_OPT_MSEC: return "milliseconds or `never`";
    }
    return "?";
}

static size_t render(char *buf, size_t cap)
{
    size_t n = (size_t)snprintf(buf, cap, "| option | type | default | description |\n"
                                          "|---|---|---|---|\n");
    for (unsigned i = 0; i < BK_OPT_COUNT && n < cap; i++) {
        const struct bk_option *o = &bk_options[i];
        char def[32], choices[128] = "";
        bk_option_value_text(i, o->def, def, sizeof def);
        /* "a|b" would split a markdown cell: list enum words as "(a, b)". */
        for (const char *c = o->choices; c && *c; c++) {
            size_t l = strlen(choices);
            snprintf(choices + l, sizeof choices - l, "%s%s", l ? "" : " (",
                     *c == '|' ? ", " : (char[]){ *c, 0 });
        }
        if (o->choices)
            strncat(choices, ")", sizeof choices - strlen(choices) - 1);
        n += (size_t)snprintf(buf + n, cap - n, "| `%s` | %s%s | `%s` | %s |\n", o->name,
                              type_name(o->type), choices, def, o->description);
    }
    return n;
}

int main(int argc, char **argv)
{
    static char table[16384];
    render(table, sizeof table);
    if (argc < 2) {
        fputs(table, stdout);
        return 0;
    }
    FILE *f = fopen(argv[1], "r");
    if (!f) {
        perror(argv[1]);
        return 1;
    }
    static char readme[1 << 20];
    size_t len = fread(readme, 1, sizeof readme - 1, f);
    fclose(f);
    readme[len] = '\0';
    const char *begin = strstr(readme, "<!-- options:begin -->\n");
    const char *end = strstr(readme, "<!-- options:end -->");
    if (!begin || !end || end < begin) {
        fprintf(stderr, "README has no options:begin/options:end markers\n");
        return 1;
    }
    begin += strlen("<!-- options:begin -->\n");
    if ((size_t)(end - begin) != strlen(table) || strncmp(begin, table, strlen(table)) != 0) {
        fprintf(stderr, "README option table differs from src/core/options.h; expected:\n%s",
                table);
        return 1;
    }
    printf("README option table matches the options table (%d options)\n", BK_OPT_COUNT);
    return 0;
}
