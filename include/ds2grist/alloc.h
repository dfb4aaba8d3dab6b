/*
 * alloc.h - memory allocation that never returns NULL.
 *
 * As with Redis's zmalloc, an allocation that fails ends the process, after
 * one line on stderr naming the size asked for. A service that cannot get
 * memory cannot keep its promises anyway, and ds2grist is built so that a
 * restart loses nothing: a worker stores an offset only once its dossier is
 * in Grist or in the dead-letter topic, and a producer moves a cursor only
 * once Kafka has acknowledged the page. With this rule every other path is
 * free of "out of memory" branches that nobody ever runs.
 *
 * Memory from these functions is released with free(), like any malloc'ed
 * block. d2g_alloc_init() puts jansson under the same rule, so that
 * json_object(), json_array() and json_dumps() fail only on bad input.
 */
#ifndef D2G_ALLOC_H
#define D2G_ALLOC_H

#include <stddef.h>

void *d2g_malloc(size_t size);
void *d2g_calloc(size_t n, size_t size);
void *d2g_realloc(void *ptr, size_t size);
char *d2g_strdup(const char *s);
char *d2g_strndup(const char *s, size_t n);

/* Makes jansson allocate through d2g_malloc (json_set_alloc_funcs) and tunes
 * glibc's malloc for many small short-lived blocks (no fastbins, alloc.c says
 * why). Called by d2g_cli_start(); programs that do not use it call it first
 * thing. */
void d2g_alloc_init(void);

#endif
