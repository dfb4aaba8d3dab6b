/*
 * stack.h - what integration tests read back from a running stack: DS's
 * dossiers (the DS emulator's admin API), Grist's rows (the Grist
 * emulator's admin dumps), and the wait until Grist holds what DS has.
 */
#ifndef D2G_TEST_STACK_H
#define D2G_TEST_STACK_H

#include <jansson.h>
#include <stddef.h>

#include "testenv.h"

/* GET /admin/procedures/<procedure>/dossiers[/<number>] (number 0: the list). */
json_t *d2g_stack_ds_get(d2g_testenv_t *env, long long procedure, long long number);
/* method path [body] on the DS emulator; fails the test on a non-2xx. */
json_t *d2g_stack_ds_do(d2g_testenv_t *env, const char *method, const char *path, const char *body);
/* method path [body] on the Grist emulator's admin API. */
json_t *d2g_stack_grist_do(d2g_testenv_t *env, const char *method, const char *path, const char *body);
/* Every row of a Grist table; NULL if the table does not exist. */
json_t *d2g_stack_grist_rows(d2g_testenv_t *env, const char *doc, const char *table);
/* A dump row's field. */
json_t *d2g_stack_field(json_t *row, const char *name);
/* Waits until the table holds exactly the numbers DS lists for the
 * procedure (each once, deleted ones excluded when removed); returns the row
 * count then, or (size_t)-1 at the time limit. */
size_t d2g_stack_wait_synced(d2g_testenv_t *env, const char *doc, const char *table,
                             long long procedure, int timeout_s);
/* Rows of table whose numero is number. */
size_t d2g_stack_count(d2g_testenv_t *env, const char *doc, const char *table, const char *column,
                       long long value);

#endif
