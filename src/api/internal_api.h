/* Hidden entry points shared by the C and C++ halves of the API layer. */
#ifndef BRISK_INTERNAL_API_H
#define BRISK_INTERNAL_API_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

__attribute__((visibility("hidden"))) void *bk_api_malloc(size_t size);
__attribute__((visibility("hidden"))) void bk_api_free(void *ptr);
/* align: a power of two; NULL with errno = ENOMEM on failure. */
__attribute__((visibility("hidden"))) void *bk_api_aligned(size_t align, size_t size);

#ifdef __cplusplus
}
#endif

#endif
