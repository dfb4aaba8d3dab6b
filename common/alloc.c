/* alloc.c - allocation that ends the process rather than return NULL, see alloc.h. */
#include "ds2grist/alloc.h"

#include <jansson.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void out_of_memory(size_t size) {
    /* No allocation from here on: a plain write, then abort() for a core. */
    fprintf(stderr, "ds2grist: out of memory allocating %zu bytes\n", size);
    fflush(stderr);
    abort();
}

void *d2g_malloc(size_t size) {
    void *p = malloc(size ? size : 1);
    if (!p)
        out_of_memory(size);
    return p;
}

void *d2g_calloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        out_of_memory(n * size);
    return p;
}

void *d2g_realloc(void *ptr, size_t size) {
    void *p = realloc(ptr, size ? size : 1);
    if (!p)
        out_of_memory(size);
    return p;
}

char *d2g_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = d2g_malloc(n);
    memcpy(p, s, n);
    return p;
}

char *d2g_strndup(const char *s, size_t n) {
    size_t len = strnlen(s, n);
    char *p = d2g_malloc(len + 1);
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

void d2g_alloc_init(void) {
    json_set_alloc_funcs(d2g_malloc, free);
#if defined(__GLIBC__) && defined(M_MXFAST)
    /* No fastbins. A worker's life is jansson trees of tens of thousands of
     * small blocks, freed a batch at a time, between allocations of a few
     * hundred kB (bodies, hashtables): with fastbins, glibc consolidates them
     * all at each large request or free, which was 18% of a worker's CPU
     * (perf, 3,000 wide dossiers). Without them the small blocks go through
     * the tcache and the small bins. Measured by tests/bench/bench_pipeline:
     * 0.96 -> 0.68 ms of CPU per dossier (decode + mapping + bodies + free). */
    mallopt(M_MXFAST, 0);
#endif
}
