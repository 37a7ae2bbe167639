/* Regression: the background thread starting inside a refill.  With
 * background_thread=1 the first decay tick starts the thread from the slow
 * path that reaches it; pthread_create allocates (the new thread's TLS
 * vector, 272-288 bytes with glibc 2.36), and when that allocation refills
 * the very list the outer refill was filling, the outer one used to
 * overwrite it: blocks lost, then a crash in the next flush.  Linked with
 * libbrisk.so; run with BRISK_CONF=background_thread=1 and the size of the
 * first allocation after the tick is due as argument. */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    size_t size = argc > 1 ? strtoul(argv[1], NULL, 0) : 272;
    free(malloc(100000));                 /* initialise */
    usleep(400 * 1000);                   /* the first tick is now due */
    char *first = malloc(size);           /* its refill runs the tick */
    char *more[200];
    for (int i = 0; i < 200; i++) {
        more[i] = malloc(size);
        memset(more[i], i, size);
    }
    for (int i = 0; i < 200; i++)
        for (size_t j = 0; j < size; j++)
            if (more[i][j] != (char)i) {
                printf("FAIL: block %d of %zu bytes overwritten\n", i, size);
                return 1;
            }
    for (int i = 0; i < 200; i++)
        free(more[i]);
    free(first);
    malloc_trim(0);
    printf("ok %zu\n", size);
    return 0;
}
