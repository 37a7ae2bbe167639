#include <brisk.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
int main(void)
{
    void *ps[1000];
    for (int r = 0; r < 10; r++) {
        for (int i = 0; i < 1000; i++) {
            size_t n = (size_t)(i * 37 % 5000) + 1;
            ps[i] = brisk_malloc(n);
            memset(ps[i], i, n);
        }
        for (int i = 0; i < 1000; i++)
            brisk_free(ps[i]);
    }
    void *big = brisk_malloc(5 << 20);
    memset(big, 1, 5 << 20);
    brisk_free(big);
    brisk_stats_print(stdout, 0);
    printf("ok\n");
    return 0;
}
