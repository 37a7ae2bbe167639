/* Deterministic input for the preload tests.
 *
 *   gen lines N   N lines "word<TAB>number<TAB>text", pseudo-random but the
 *                 same on every run (about 50 bytes a line)
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t state = 0x9e3779b97f4a7c15u;

static uint64_t next(void)
{
    /* xorshift64* */
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    return state * 0x2545f4914f6cdd1du;
}

static void word(char *out, unsigned min, unsigned max)
{
    static const char letters[] = "etaoinshrdlucmfwypvbgkjqxz";
    unsigned n = min + (unsigned)(next() % (max - min + 1));
    for (unsigned i = 0; i < n; i++) {
        /* skewed towards the frequent letters: many shared prefixes */
        uint64_t r = next() % 676;
        out[i] = letters[(unsigned)(r / 26) < 13 ? r % 13 : r % 26];
    }
    out[n] = '\0';
}

int main(int argc, char **argv)
{
    if (argc != 3 || strcmp(argv[1], "lines") != 0) {
        fprintf(stderr, "usage: gen lines N\n");
        return 2;
    }
    unsigned long n = strtoul(argv[2], NULL, 10);
    static char buf[1 << 16];
    setvbuf(stdout, buf, _IOFBF, sizeof buf);
    char key[32], text[64];
    for (unsigned long i = 0; i < n; i++) {
        word(key, 3, 12);
        word(text, 10, 40);
        uint64_t num = next() % 1000000007u;
        if (i % 7 == 0)
            num %= 1000;    /* plenty of equal numeric keys */
        printf("%s\t%" PRIu64 "\t%s\n", key, num, text);
    }
    return fflush(stdout) != 0;
}
