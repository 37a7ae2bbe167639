/* libbrisk.so loaded with dlopen by a program that was not linked with it
 * and does not preload it.  brisk keeps its thread caches' lists in
 * initial-exec TLS (984 bytes), which a library loaded after start-up can
 * only get from the spare static TLS glibc reserves for such libraries:
 * this checks that it fits, and that brisk then serves its prefixed API,
 * in the main thread and in threads created after the load.  Argument:
 * the library's path.  Prints "dlopen ok" when all is well. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

static void *(*b_malloc)(size_t);
static void (*b_free)(void *);

static void *work(void *arg)
{
    enum { N = 5000 };
    static __thread void *blocks[N];
    for (int round = 0; round < 4; round++) {
        for (int i = 0; i < N; i++) {
            size_t size = 16 + (size_t)(i % 61) * 24;
            if (!(blocks[i] = b_malloc(size)))
                return "malloc failed";
            memset(blocks[i], i & 0xff, size);
        }
        for (int i = 0; i < N; i++) {
            if (((unsigned char *)blocks[i])[0] != (i & 0xff))
                return "a block changed under its owner";
            b_free(blocks[i]);
        }
    }
    return arg;
}

int main(int argc, char **argv)
{
    void *h = dlopen(argc > 1 ? argv[1] : "libbrisk.so", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        printf("FAIL: dlopen: %s\n", dlerror());
        return 1;
    }
    b_malloc = (void *(*)(size_t))dlsym(h, "brisk_malloc");
    b_free = (void (*)(void *))dlsym(h, "brisk_free");
    if (!b_malloc || !b_free) {
        printf("FAIL: dlsym: %s\n", dlerror());
        return 1;
    }
    const char *err = work(NULL);
    pthread_t t[4];
    void *res[4];
    for (int i = 0; i < 4; i++)
        if (pthread_create(&t[i], NULL, work, NULL) != 0) {
            printf("FAIL: pthread_create\n");
            return 1;
        }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], &res[i]);
        if (res[i] && !err)
            err = res[i];
    }
    if (err) {
        printf("FAIL: %s\n", err);
        return 1;
    }
    printf("dlopen ok\n");
    return 0;
}
