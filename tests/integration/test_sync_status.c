/*
 * test_sync_status.c - the sync-status table (DS2Grist_Sync) as an agent sees
 * it in the document: the real producer and worker against the DS and Grist
 * emulators, a real redis-server and the Kafka mock broker.
 *
 *   row_and_resync  after a sync the procedure's row shows the table, the
 *                   dossier count, the last and next polls and no error; a
 *                   dossier removed from Grist by hand comes back whole once
 *                   an agent ticks "Resynchroniser" (set through Grist's API),
 *                   the box is cleared and the resync shown done; dossiers changed
 *                   in DS during the resync end up in their latest version; the
 *                   checkbox column removed by hand comes back; a deletion
 *                   un-marked by hand in Grist is marked again by a resync
 *   two_workers     two workers, one document: one of them writes the table each period
 *                   (one GET of the ticked rows per period, not one per worker)
 *   errors          DS refusing the token shows "DS : ..." (no secret) until
 *                   the token works again and the agent ticks the box; a
 *                   dossier Grist refuses shows "Dossier N non écrit : ..."
 *                   until that dossier is written (by a worker started since); Grist failing the
 *                   document's writes for a while shows "Grist : écritures
 *                   ralenties ..." until they go through; an error text quoting the
 *                   DS token and the Grist key shows "***" instead
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ds2grist/clock.h"
#include "ds2grist/redis.h"
#include "stack.h"

#define TOKEN D2G_STACK_DS_TOKEN
#define GKEY D2G_STACK_GRIST_KEY
#define PROC 1501
#define DOSSIERS 30

static const char *PROCS =
    "[{\"number\": 1501, \"ds_token\": \"main\", \"grist_server\": \"g\", \"document\": \"docA\", \"table_prefix\": \"Suivi\"}]";
/* Polls every second, the status table written every second. */
static const char *EXTRA = "\"defaults\": {\"poll_interval_s\": 1}, \"worker\": {\"status_interval_s\": 1}";

static void start(d2g_testenv_t *env, d2g_test_proc_t *producer, d2g_test_proc_t *worker) {
    char cfg[600];
    assert_int_equal(d2g_testenv_start_ds(env, "{\"seed\": 7, \"procedures\": [{\"number\": 1501, \"dossiers\": 30}],"
                                               " \"tokens\": [{\"name\": \"main\", \"secret\": \"" TOKEN "\", \"procedures\": \"*\"}]}"),
                     0);
    assert_int_equal(d2g_testenv_start_grist(env, "{\"docs\": [{\"id\": \"docA\", \"keys\": [\"" GKEY "\"]}]}"), 0);
    assert_int_equal(d2g_test_write_config(env, "ds2grist.json", PROCS, 400, 8, EXTRA, cfg, sizeof(cfg)), 0);
    d2g_stack_spawn(env, producer, D2G_PRODUCER_BIN, "producer", cfg);
    d2g_stack_spawn(env, worker, D2G_WORKER_BIN, "worker", cfg);
    assert_int_equal(d2g_stack_wait_synced(env, "docA", "Suivi", PROC, 120), DOSSIERS);
}

static json_t *field(json_t *row, const char *name) { return d2g_stack_field(row, name); }

/* The status row of PROC (new reference), or NULL. */
static json_t *status_row(d2g_testenv_t *env) {
    json_t *rows = d2g_stack_grist_rows(env, "docA", "DS2Grist_Sync"), *found = NULL;
    size_t i;
    json_t *r;
    json_array_foreach(rows, i, r) if (json_integer_value(field(r, "demarche")) == PROC) found = json_incref(r);
    json_decref(rows);
    return found;
}

typedef int (*row_test_t)(json_t *row, const void *arg);

/* Waits until the status row passes test; returns it (new reference). */
static json_t *wait_row(d2g_testenv_t *env, row_test_t test, const void *arg, int timeout_s, const char *what) {
    int64_t end = d2g_clock_mono_ms() + timeout_s * 1000LL;
    for (;;) {
        json_t *row = status_row(env);
        if (row && test(row, arg))
            return row;
        if (d2g_clock_mono_ms() > end) {
            char *t = row ? json_dumps(row, JSON_COMPACT) : NULL;
            printf("# status row never %s after %d s (logs in %s): %s\n", what, timeout_s, env->dir,
                   t ? t : "no row");
            free(t);
            json_decref(row);
            fail();
        }
        json_decref(row);
        d2g_test_sleep_ms(300);
    }
}

static const char *text_of(json_t *row, const char *name) {
    const char *s = json_string_value(field(row, name));
    return s ? s : "";
}

static int counted(json_t *row, const void *arg) {
    return json_integer_value(field(row, "dossiers")) == *(const json_int_t *)arg &&
           json_integer_value(field(row, "derniere_synchro")) > 0 && !*text_of(row, "derniere_erreur");
}

static int resynced(json_t *row, const void *arg) {
    (void)arg;
    return !json_is_true(field(row, "resync")) && !strcmp(text_of(row, "resync_etat"), "terminée") &&
           json_integer_value(field(row, "derniere_resync")) > 0;
}

static int resynced_after(json_t *row, const void *arg) {
    return resynced(row, NULL) && json_integer_value(field(row, "derniere_resync")) > *(const json_int_t *)arg;
}

static int has_resync_column(json_t *row, const void *arg) {
    (void)arg;
    return json_is_boolean(field(row, "resync"));
}

static int error_starts(json_t *row, const void *arg) {
    return !strncmp(text_of(row, "derniere_erreur"), (const char *)arg, strlen((const char *)arg));
}

static int no_error(json_t *row, const void *arg) {
    (void)arg;
    return !*text_of(row, "derniere_erreur") && json_is_null(field(row, "date_erreur"));
}

/* 1 when every dossier's row holds DS's latest modification date (waits up to timeout_s). */
static int latest_everywhere(d2g_testenv_t *env, int timeout_s) {
    int64_t end = d2g_clock_mono_ms() + timeout_s * 1000LL;
    for (;;) {
        json_t *ds = d2g_stack_ds_get(env, PROC, 0);
        json_t *rows = d2g_stack_grist_rows(env, "docA", "Suivi");
        size_t i, same = 0, n = json_array_size(json_object_get(ds, "dossiers"));
        json_t *d;
        json_array_foreach(json_object_get(ds, "dossiers"), i, d) {
            json_int_t num = json_integer_value(json_object_get(d, "number"));
            double want_ms = (double)json_integer_value(json_object_get(d, "updatedAtMs"));
            size_t k;
            json_t *r;
            json_array_foreach(rows, k, r) {
                double at = json_number_value(field(r, "date_derniere_modification"));
                if (json_integer_value(field(r, "numero")) == num && at * 1000 <= want_ms && want_ms - at * 1000 < 1000)
                    same++;
            }
        }
        json_decref(rows);
        json_decref(ds);
        if (same == n)
            return 1;
        if (d2g_clock_mono_ms() > end) {
            printf("# %zu of %zu dossiers in their latest version\n", same, n);
            return 0;
        }
        d2g_test_sleep_ms(500);
    }
}

/* The agent's tick: the cell set through Grist's API with the document's key. */
static void tick(d2g_testenv_t *env, json_t *row) {
    char url[320], body[128];
    snprintf(url, sizeof(url), "%s/api/docs/docA/tables/DS2Grist_Sync/records", env->grist_url);
    snprintf(body, sizeof(body), "{\"records\": [{\"id\": %lld, \"fields\": {\"resync\": true}}]}",
             (long long)json_integer_value(json_object_get(row, "id")));
    assert_int_equal(d2g_test_http("PATCH", url, GKEY, body, NULL), 200);
}

static void no_secret(json_t *row) {
    char *t = json_dumps(row, JSON_COMPACT);
    assert_null(strstr(t, TOKEN));
    assert_null(strstr(t, GKEY));
    free(t);
}

/* Requests to the status table so far: GETs and PUTs, and the most in flight on the document. */
static void status_cost(d2g_testenv_t *env, long long *gets, long long *puts, long long *max_in_flight) {
    json_t *st = d2g_stack_grist_do(env, "GET", "/admin/stats", NULL);
    json_t *doc = json_object_get(json_object_get(st, "docs"), "docA");
    const char *path;
    json_t *p;
    *gets = *puts = 0;
    json_object_foreach(json_object_get(doc, "paths"), path, p) {
        if (!strstr(path, "/tables/DS2Grist_Sync/records"))
            continue;
        if (!strncmp(path, "GET ", 4))
            *gets += json_integer_value(json_object_get(p, "requests"));
        if (!strncmp(path, "PUT ", 4))
            *puts += json_integer_value(json_object_get(p, "requests"));
    }
    *max_in_flight = json_integer_value(json_object_get(doc, "maxApiInFlight"));
    json_decref(st);
}

static void test_row_and_resync(void **state) {
    d2g_testenv_t *env = *state;
    d2g_test_proc_t producer, worker;
    int64_t t0 = d2g_clock_mono_ms(); /* the worker starts now */
    start(env, &producer, &worker);
    json_int_t all = DOSSIERS;
    json_t *row = wait_row(env, counted, &all, 60, "counting 30 dossiers");
    assert_string_equal(text_of(row, "table"), "Suivi");
    assert_true(json_integer_value(field(row, "prochaine_synchro")) >= json_integer_value(field(row, "derniere_synchro")));
    assert_false(json_is_true(field(row, "resync")));
    /* Labels in French, like the other tables. */
    json_t *cols = d2g_stack_grist_do(env, "GET", "/admin/docs/docA/tables/DS2Grist_Sync/columns", NULL);
    char *ct = json_dumps(cols, JSON_COMPACT);
    assert_non_null(strstr(ct, "Resynchroniser"));
    assert_non_null(strstr(ct, "Dossiers dans la table"));
    free(ct);
    json_decref(cols);

    /* Someone removes a dossier's row in Grist; DS did not change it. */
    json_t *rows = d2g_stack_grist_rows(env, "docA", "Suivi");
    json_t *gone = json_array_get(rows, 3);
    json_int_t gone_num = json_integer_value(field(gone, "numero"));
    char url[320], body[64];
    snprintf(url, sizeof(url), "%s/api/docs/docA/tables/Suivi/data/delete", env->grist_url);
    snprintf(body, sizeof(body), "[%lld]", (long long)json_integer_value(json_object_get(gone, "id")));
    assert_int_equal(d2g_test_http("POST", url, GKEY, body, NULL), 200);
    json_decref(rows);
    d2g_test_sleep_ms(3000); /* several polls: nothing brings it back by itself */
    assert_int_equal(d2g_stack_count(env, "docA", "Suivi", "numero", gone_num), 0);

    /* The agent ticks the box: a full resync; the row is back, whole; the box cleared. */
    tick(env, row);
    json_decref(row);
    /* DS keeps changing meanwhile: 10 dossiers touched while the resync is asked and runs. */
    json_decref(d2g_stack_ds_do(env, "POST", "/admin/procedures/1501/touch", "{\"count\": 5}"));
    d2g_test_sleep_ms(1500);
    json_decref(d2g_stack_ds_do(env, "POST", "/admin/procedures/1501/touch", "{\"count\": 5}"));
    row = wait_row(env, resynced, NULL, 90, "showing the resync done");
    assert_true(latest_everywhere(env, 60));
    assert_int_equal(d2g_stack_wait_synced(env, "docA", "Suivi", PROC, 60), DOSSIERS);
    json_t *back = NULL;
    rows = d2g_stack_grist_rows(env, "docA", "Suivi");
    size_t i;
    json_t *r;
    json_array_foreach(rows, i, r) if (json_integer_value(field(r, "numero")) == gone_num) back = r;
    assert_non_null(back);
    json_t *ds = d2g_stack_ds_get(env, PROC, gone_num);
    assert_string_equal(json_string_value(field(back, "etat")), json_string_value(json_object_get(ds, "state")));
    assert_true(json_integer_value(field(back, "date_depot")) > 0);
    json_decref(ds);
    json_decref(rows);
    assert_int_equal(json_integer_value(field(row, "dossiers")), DOSSIERS);
    no_secret(row);
    json_decref(row);
    /* Someone removes the checkbox column: it is made again, the box usable. */
    snprintf(url, sizeof(url), "%s/api/docs/docA/tables/DS2Grist_Sync/columns/resync", env->grist_url);
    assert_int_equal(d2g_test_http("DELETE", url, GKEY, NULL, NULL), 200);
    assert_null(field(row = status_row(env), "resync"));
    json_decref(row);
    json_decref(wait_row(env, has_resync_column, NULL, 30, "with its resync column again"));
    long long gets, puts, in_flight;
    status_cost(env, &gets, &puts, &in_flight);
    double secs = (double)(d2g_clock_mono_ms() - t0) / 1000.0;
    printf("# status table: %lld GETs and %lld PUTs in %.0f s (period 1 s); most in flight on the document %lld (limit 8)\n",
           gets, puts, secs, in_flight);
    assert_true(gets <= secs + 2 && puts <= gets + 2);
    assert_true(in_flight <= 8);

    /* A dossier deleted in DS is marked; someone un-marks it by hand; a resync marks it again. */
    rows = d2g_stack_grist_rows(env, "docA", "Suivi");
    json_int_t del = json_integer_value(field(json_array_get(rows, 7), "numero"));
    json_int_t del_id = json_integer_value(json_object_get(json_array_get(rows, 7), "id"));
    json_decref(rows);
    char path[96];
    snprintf(path, sizeof(path), "/admin/procedures/1501/dossiers/%lld?reason=user_request", (long long)del);
    json_decref(d2g_stack_ds_do(env, "DELETE", path, NULL));
    int marked = 0;
    for (int64_t end = d2g_clock_mono_ms() + 60000; !marked; d2g_test_sleep_ms(300)) {
        assert_true(d2g_clock_mono_ms() < end);
        rows = d2g_stack_grist_rows(env, "docA", "Suivi");
        json_array_foreach(rows, i, r) if (json_integer_value(field(r, "numero")) == del) marked = json_is_true(field(r, "supprime"));
        json_decref(rows);
    }
    snprintf(url, sizeof(url), "%s/api/docs/docA/tables/Suivi/records", env->grist_url);
    char patch[128];
    snprintf(patch, sizeof(patch), "{\"records\": [{\"id\": %lld, \"fields\": {\"supprime\": false}}]}", (long long)del_id);
    assert_int_equal(d2g_test_http("PATCH", url, GKEY, patch, NULL), 200);
    row = status_row(env);
    json_int_t before = json_integer_value(field(row, "derniere_resync"));
    tick(env, row);
    json_decref(row);
    json_decref(wait_row(env, resynced_after, &before, 90, "showing a second resync done"));
    marked = 0;
    for (int64_t end = d2g_clock_mono_ms() + 30000; !marked; d2g_test_sleep_ms(300)) {
        assert_true(d2g_clock_mono_ms() < end);
        rows = d2g_stack_grist_rows(env, "docA", "Suivi");
        json_array_foreach(rows, i, r) if (json_integer_value(field(r, "numero")) == del) marked = json_is_true(field(r, "supprime"));
        json_decref(rows);
    }
    assert_int_equal(d2g_test_proc_stop(&worker), 0);
    assert_int_equal(d2g_test_proc_stop(&producer), 0);
}

static void test_two_workers(void **state) {
    d2g_testenv_t *env = *state;
    d2g_test_proc_t producer, worker, second;
    char cfg[600];
    int64_t t0 = d2g_clock_mono_ms();
    start(env, &producer, &worker);
    snprintf(cfg, sizeof(cfg), "%s/ds2grist.json", env->dir);
    d2g_stack_spawn(env, &second, D2G_WORKER_BIN, "worker-2", cfg);
    json_int_t all = DOSSIERS;
    json_decref(wait_row(env, counted, &all, 60, "counting 30 dossiers"));
    d2g_test_sleep_ms(8000);
    long long gets, puts, in_flight;
    status_cost(env, &gets, &puts, &in_flight);
    double secs = (double)(d2g_clock_mono_ms() - t0) / 1000.0;
    printf("# two workers: %lld GETs and %lld PUTs of the status table in %.0f s (period 1 s)\n", gets, puts, secs);
    assert_true(gets <= secs + 2);
    assert_int_equal(d2g_test_proc_stop(&second), 0);
    assert_int_equal(d2g_test_proc_stop(&worker), 0);
    assert_int_equal(d2g_test_proc_stop(&producer), 0);
}

static void test_errors(void **state) {
    d2g_testenv_t *env = *state;
    d2g_test_proc_t producer, worker;
    start(env, &producer, &worker);
    json_int_t all = DOSSIERS;
    json_decref(wait_row(env, counted, &all, 60, "counting 30 dossiers"));

    /* DS refuses the token: the agents see it, without the token. */
    json_decref(d2g_stack_ds_do(env, "POST", "/admin/tokens",
                                "{\"name\": \"main\", \"secret\": \"" TOKEN "\", \"procedures\": \"*\", \"expired\": true}"));
    json_t *row = wait_row(env, error_starts, "DS : ", 60, "showing DS's error");
    printf("# DS refusing the token: \"%s\"\n", text_of(row, "derniere_erreur"));
    assert_true(json_integer_value(field(row, "date_erreur")) > 0);
    no_secret(row);
    /* The token works again; the agent ticks the box rather than wait for the retry. */
    json_decref(d2g_stack_ds_do(env, "POST", "/admin/tokens",
                                "{\"name\": \"main\", \"secret\": \"" TOKEN "\", \"procedures\": \"*\"}"));
    tick(env, row);
    json_decref(row);
    json_decref(wait_row(env, no_error, NULL, 90, "clear of DS's error"));

    /* Grist refuses a dossier's row (it goes to the dead-letter topic). */
    json_decref(d2g_stack_grist_do(env, "POST", "/admin/faults",
                                   "{\"doc\": \"docA\", \"method\": \"PUT\", \"pattern\": \"^/tables/Suivi/records\","
                                   " \"status\": 400, \"error\": \"Invalid column \\\"boom\\\"\", \"count\": -1}"));
    json_t *made = d2g_stack_ds_do(env, "POST", "/admin/procedures/1501/dossiers", "{}");
    json_int_t num = json_integer_value(json_object_get(made, "number"));
    json_decref(made);
    char want[64];
    snprintf(want, sizeof(want), "Dossier %lld non écrit : ", (long long)num);
    row = wait_row(env, error_starts, want, 60, "showing the refused dossier");
    printf("# a dossier Grist refuses: \"%s\"\n", text_of(row, "derniere_erreur"));
    assert_non_null(strstr(text_of(row, "derniere_erreur"), "Invalid column"));
    no_secret(row);
    json_decref(row);
    /* Grist takes it again; the worker restarts (what it knew in memory is gone); the dossier
     * changes in DS and is written: the error is gone. */
    json_decref(d2g_stack_grist_do(env, "DELETE", "/admin/faults", NULL));
    assert_int_equal(d2g_test_proc_stop(&worker), 0);
    char cfg[600];
    snprintf(cfg, sizeof(cfg), "%s/ds2grist.json", env->dir);
    d2g_stack_spawn(env, &worker, D2G_WORKER_BIN, "worker-b", cfg);
    char path[96];
    snprintf(path, sizeof(path), "/admin/procedures/1501/dossiers/%lld", (long long)num);
    json_decref(d2g_stack_ds_do(env, "PATCH", path, "{\"state\": \"en_instruction\"}"));
    all = DOSSIERS + 1;
    json_decref(wait_row(env, counted, &all, 60, "clear of the refused dossier, 31 counted"));

    /* Grist fails the dossiers' writes 4 times in a row (503): the lane backs off, the agents see it;
     * then they go through and it is gone. */
    json_decref(d2g_stack_grist_do(env, "POST", "/admin/faults",
                                   "{\"doc\": \"docA\", \"method\": \"PUT\", \"pattern\": \"^/tables/Suivi/records\","
                                   " \"status\": 503, \"error\": \"Service Unavailable\", \"count\": 4}"));
    json_decref(d2g_stack_ds_do(env, "PATCH", path, "{\"state\": \"accepte\"}"));
    row = wait_row(env, error_starts, "Grist : écritures ralenties", 60, "showing Grist's failures");
    printf("# Grist failing the writes: \"%s\"\n", text_of(row, "derniere_erreur"));
    no_secret(row);
    json_decref(row);
    json_decref(wait_row(env, counted, &all, 60, "clear of Grist's failures"));

    /* An error text that quotes the secrets (a proxy echoing the request): scrubbed. */
    char url[128], err[256], at[32];
    d2g_redis_t *r = NULL;
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", env->redis_port);
    assert_int_equal(d2g_redis_connect(url, NULL, NULL, "ds2grist", 2000, &r, err, sizeof(err)), 0);
    snprintf(at, sizeof(at), "%lld", (long long)(d2g_clock_wall_ms() + 3600000));
    const char *hset[] = {"HSET", "ds2grist:{proc:1501}:status", "last_error",
                          "HTTP 502: bad gateway (Authorization: Bearer " TOKEN ", key " GKEY ")",
                          "last_error_ms", at};
    redisReply *rep = d2g_redis_argv(r, 6, hset, NULL, err, sizeof(err));
    assert_non_null(rep);
    freeReplyObject(rep);
    d2g_redis_free(r);
    row = wait_row(env, error_starts, "DS : HTTP 502", 30, "showing the echoed error");
    printf("# an error quoting the secrets: \"%s\"\n", text_of(row, "derniere_erreur"));
    no_secret(row);
    assert_non_null(strstr(text_of(row, "derniere_erreur"), "***"));
    json_decref(row);
    assert_int_equal(d2g_test_proc_stop(&worker), 0);
    assert_int_equal(d2g_test_proc_stop(&producer), 0);
}

int main(void) {
    d2g_test_filter_from_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_row_and_resync, d2g_stack_setup_kafka, d2g_stack_teardown),
        cmocka_unit_test_setup_teardown(test_two_workers, d2g_stack_setup_kafka, d2g_stack_teardown),
        cmocka_unit_test_setup_teardown(test_errors, d2g_stack_setup_kafka, d2g_stack_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
