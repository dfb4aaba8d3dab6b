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

/* The secrets the spawned services read (D2G_TEST_DS_TOKEN, D2G_TEST_GRIST_KEY):
 * distinctive, so that a test can search every output for them. */
#define D2G_STACK_DS_TOKEN "ds-test-token"
#define D2G_STACK_GRIST_KEY "grist-test-key-5f3c9a"

/* cmocka group setups: a d2g_testenv_t in *state, the two secrets exported,
 * a real redis-server, and (setup_kafka) the Kafka mock with 8 partitions.
 * teardown stops all of it and frees the env. */
int d2g_stack_setup_redis(void **state);
int d2g_stack_setup_kafka(void **state);
int d2g_stack_teardown(void **state);

/* Spawns `bin --config cfg` as name (log in <env->dir>/<name>.log); fails the
 * test if it cannot. */
void d2g_stack_spawn(d2g_testenv_t *env, d2g_test_proc_t *p, const char *bin, const char *name,
                     const char *cfg);

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
