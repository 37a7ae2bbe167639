/* Input of the preload gcc test: compiled (and run) by gcc with and without
 * libbrisk.so preloaded; the object files and the program's output must be
 * identical.  Plenty of headers and some optimisable code keep cc1 busy. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>
#include <wchar.h>

struct entry {
    char *key;
    unsigned count;
    struct entry *next;
};

struct table {
    struct entry **slots;
    size_t nslots, nused;
};

static uint64_t seed = 88172645463325252u;

static uint64_t rnd(void)
{
    seed ^= seed << 13;
    seed ^= seed >> 7;
    seed ^= seed << 17;
    return seed;
}

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603u;
    while (*s)
        h = (h ^ (unsigned char)*s++) * 1099511628211u;
    return h;
}

static void grow(struct table *t)
{
    size_t n = t->nslots ? t->nslots * 2 : 64;
    struct entry **slots = calloc(n, sizeof *slots);
    for (size_t i = 0; i < t->nslots; i++) {
        struct entry *e = t->slots[i];
        while (e) {
            struct entry *next = e->next;
            size_t j = hash(e->key) & (n - 1);
            e->next = slots[j];
            slots[j] = e;
            e = next;
        }
    }
    free(t->slots);
    t->slots = slots;
    t->nslots = n;
}

static void add(struct table *t, const char *key)
{
    if (t->nused * 4 >= t->nslots * 3)
        grow(t);
    size_t i = hash(key) & (t->nslots - 1);
    for (struct entry *e = t->slots[i]; e; e = e->next)
        if (strcmp(e->key, key) == 0) {
            e->count++;
            return;
        }
    struct entry *e = malloc(sizeof *e);
    e->key = strdup(key);
    e->count = 1;
    e->next = t->slots[i];
    t->slots[i] = e;
    t->nused++;
}

static int by_count(const void *a, const void *b)
{
    const struct entry *x = *(struct entry *const *)a, *y = *(struct entry *const *)b;
    if (x->count != y->count)
        return x->count < y->count ? 1 : -1;
    return strcmp(x->key, y->key);
}

/* A tiny recursive-descent evaluator for + - * / and parentheses. */
static const char *src;
static long expr(void);
static long atom(void)
{
    while (isspace((unsigned char)*src))
        src++;
    if (*src == '(') {
        src++;
        long v = expr();
        if (*src == ')')
            src++;
        return v;
    }
    return strtol(src, (char **)&src, 10);
}
static long term(void)
{
    long v = atom();
    for (;;) {
        while (isspace((unsigned char)*src))
            src++;
        if (*src == '*') {
            src++;
            v *= atom();
        } else if (*src == '/') {
            src++;
            long d = atom();
            v = d ? v / d : 0;
        } else {
            return v;
        }
    }
}
static long expr(void)
{
    long v = term();
    for (;;) {
        while (isspace((unsigned char)*src))
            src++;
        if (*src == '+') {
            src++;
            v += term();
        } else if (*src == '-') {
            src++;
            v -= term();
        } else {
            return v;
        }
    }
}

static double integrate(double (*f)(double), double a, double b, int n)
{
    double h = (b - a) / n, s = (f(a) + f(b)) / 2;
    for (int i = 1; i < n; i++)
        s += f(a + i * h);
    return s * h;
}

static double bump(double x) { return exp(-x * x) * cos(3 * x); }

int main(void)
{
    struct table t = { 0 };
    char word[16];
    for (int i = 0; i < 200000; i++) {
        int len = 1 + (int)(rnd() % 4);
        for (int k = 0; k < len; k++)
            word[k] = (char)('a' + rnd() % 6);
        word[len] = '\0';
        add(&t, word);
    }
    struct entry **all = malloc(t.nused * sizeof *all);
    size_t n = 0;
    for (size_t i = 0; i < t.nslots; i++)
        for (struct entry *e = t.slots[i]; e; e = e->next)
            all[n++] = e;
    qsort(all, n, sizeof *all, by_count);
    printf("%zu distinct words\n", n);
    for (size_t i = 0; i < 5; i++)
        printf("  %-6s %u\n", all[i]->key, all[i]->count);
    const char *exprs[] = { "1 + 2 * 3", "(1 + 2) * 3", "100 / 7 - 3 * (2 - 5)",
                            "((((12))))*((3+4)*(5-6))" };
    for (size_t i = 0; i < sizeof exprs / sizeof *exprs; i++) {
        src = exprs[i];
        printf("%s = %ld\n", exprs[i], expr());
    }
    printf("integral %.9f\n", integrate(bump, -4, 4, 100000));
    for (size_t i = 0; i < n; i++) {
        free(all[i]->key);
        free(all[i]);
    }
    free(all);
    free(t.slots);
    return 0;
}
