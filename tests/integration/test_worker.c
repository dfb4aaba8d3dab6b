/*
 * test_worker.c - the whole pipeline, as agents and operators check it: the
 * real producer and workers against the DS and Grist emulators, a real
 * redis-server and the Kafka mock broker. What is asserted is what a user
 * sees in Grist: the dossiers of DS, each once, field by field.
 *
 *   end_to_end     3 procedures, 2 documents, 3 workers: Grist = DS
 *   form_changes   a champ added mid-run becomes a column; a renamed one keeps its column
 *   deletions      deleted dossiers marked; removed repetition rows removed
 *   cap            8 workers on one document, 8 permits: never more than 8 in flight, no 429
 *   crash          a worker joins, another is SIGKILLed mid-batch: nothing lost, nothing doubled
 *   poison         bad messages land in the dead-letter topic with their reason; the rest syncs
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ds2grist/clock.h"
#include "testenv.h"

#define TOKEN "ds-test-token"
#define GKEY "grist-test-key"

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int setup(void **state) {
    d2g_testenv_t *env = calloc(1, sizeof(*env));
    *state = env;
    setenv("D2G_TEST_DS_TOKEN", TOKEN, 1);
    setenv("D2G_TEST_GRIST_KEY", GKEY, 1);
    if (d2g_testenv_init(env) || d2g_testenv_start_redis(env) || d2g_testenv_start_kafka(env, 8))
        return -1;
    return 0;
}

static int teardown(void **state) {
    d2g_testenv_stop(*state);
    free(*state);
    return 0;
}

static void start_emulators(d2g_testenv_t *env, const char *ds_procedures, const char *grist_extra) {
    char cfg[4096];
    snprintf(cfg, sizeof(cfg),
             "{\"seed\": 5, \"procedures\": %s,"
             " \"tokens\": [{\"name\": \"main\", \"secret\": \"" TOKEN "\", \"procedures\": \"*\"}]}",
             ds_procedures);
    assert_int_equal(d2g_testenv_start_ds(env, cfg), 0);
    snprintf(cfg, sizeof(cfg),
             "{\"docs\": [{\"id\": \"docA\", \"keys\": [\"" GKEY "\"]}, {\"id\": \"docB\", \"keys\": [\"" GKEY "\"]}]%s}",
             grist_extra ? grist_extra : "");
    assert_int_equal(d2g_testenv_start_grist(env, cfg), 0);
}

static void spawn(d2g_testenv_t *env, d2g_test_proc_t *p, const char *bin, const char *name,
                  const char *cfg) {
    char *argv[] = {(char *)bin, "--config", (char *)cfg, NULL};
    assert_int_equal(d2g_test_proc_spawn(env, p, name, argv), 0);
}

/* GET /admin/procedures/<procedure>/dossiers[/<number>] (number 0: the list). */
static json_t *ds_get(d2g_testenv_t *env, long long procedure, long long number) {
    char url[320];
    if (number)
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/admin/procedures/%lld/dossiers/%lld",
                 env->ds_port, procedure, number);
    else
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/admin/procedures/%lld/dossiers",
                 env->ds_port, procedure);
    json_t *j = d2g_test_json("GET", url, NULL);
    assert_non_null(j);
    return j;
}

__attribute__((unused)) static json_t *ds_do(d2g_testenv_t *env, const char *method, const char *path, const char *body) {
    char url[320];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", env->ds_port, path);
    json_t *j = d2g_test_json(method, url, body);
    assert_non_null(j);
    return j;
}

/* Every row of a Grist table (admin dump); NULL if the table does not exist yet. */
static json_t *grist_rows(d2g_testenv_t *env, const char *doc, const char *table) {
    char url[320], *resp = NULL;
    snprintf(url, sizeof(url), "%s/admin/docs/%s/tables/%s/dump?format=json", env->grist_url, doc, table);
    int st = d2g_test_http("GET", url, NULL, NULL, &resp);
    json_t *j = st == 200 ? json_loads(resp, 0, NULL) : NULL;
    free(resp);
    if (json_is_object(j)) { /* {"records": [...]} or {"rows": [...]} */
        json_t *r = json_object_get(j, "records");
        if (!r)
            r = json_object_get(j, "rows");
        json_incref(r);
        json_decref(j);
        j = r;
    }
    return j;
}

static json_t *grist_stats(d2g_testenv_t *env) {
    char url[320];
    snprintf(url, sizeof(url), "%s/admin/stats", env->grist_url);
    json_t *j = d2g_test_json("GET", url, NULL);
    assert_non_null(j);
    return j;
}

/* A row's field (dump rows are {id, fields} or flat). */
static json_t *field(json_t *row, const char *name) {
    json_t *f = json_object_get(row, "fields");
    return json_object_get(f ? f : row, name);
}

/* Waits until the table holds exactly the numbers DS has (each once); returns
 * the number of rows then (or what it had at the time limit). */
static size_t wait_synced(d2g_testenv_t *env, const char *doc, const char *table, int procedure,
                          int timeout_s) {
    int64_t end = d2g_clock_mono_ms() + timeout_s * 1000LL;
    size_t have = 0;
    for (;;) {
        json_t *ds = ds_get(env, procedure, 0);
        json_t *want = json_object_get(ds, "dossiers");
        json_t *rows = grist_rows(env, doc, table);
        have = json_array_size(rows);
        int same = have == json_array_size(want);
        for (size_t i = 0; same && i < json_array_size(want); i++) {
            json_int_t n = json_integer_value(json_object_get(json_array_get(want, i), "number"));
            int count = 0;
            for (size_t k = 0; k < have; k++)
                count += json_integer_value(field(json_array_get(rows, k), "numero")) == n;
            same = count == 1;
        }
        json_decref(rows);
        json_decref(ds);
        if (same || d2g_clock_mono_ms() > end)
            return same ? have : (size_t)-1;
        sleep_ms(500);
    }
}

/* Field by field on a sample: state, labels, modification date. */
static void check_sample(d2g_testenv_t *env, const char *doc, const char *table, int procedure) {
    json_t *ds = ds_get(env, procedure, 0);
    json_t *want = json_object_get(ds, "dossiers");
    json_t *rows = grist_rows(env, doc, table);
    size_t n = json_array_size(want), checked = 0;
    for (size_t i = 0; i < n; i += n / 10 + 1) {
        json_t *d = json_array_get(want, i);
        json_int_t num = json_integer_value(json_object_get(d, "number"));
        json_t *row = NULL;
        for (size_t k = 0; k < json_array_size(rows) && !row; k++)
            if (json_integer_value(field(json_array_get(rows, k), "numero")) == num)
                row = json_array_get(rows, k);
        assert_non_null(row);
        assert_string_equal(json_string_value(field(row, "etat")),
                            json_string_value(json_object_get(d, "state")));
        /* labels: a ChoiceList ["L", names...] */
        json_t *labels = field(row, "labels"), *wl = json_object_get(d, "labels");
        size_t nl = json_array_size(labels) ? json_array_size(labels) - 1 : 0;
        assert_int_equal(nl, json_array_size(wl));
        /* date_derniere_modification: epoch seconds of DS's date */
        double epoch = json_number_value(field(row, "date_derniere_modification"));
        double want_ms = (double)json_integer_value(json_object_get(d, "updatedAtMs"));
        assert_true(epoch > 0 && epoch * 1000 <= want_ms && want_ms - epoch * 1000 < 1000);
        /* The full dossier's repetition rows are the child rows, one for one. */
        json_t *full = ds_get(env, procedure, num);
        size_t want_rows = 0;
        size_t k;
        json_t *c;
        json_array_foreach(json_object_get(full, "champs"), k, c)
            want_rows += json_array_size(json_object_get(c, "rows"));
        json_decref(full);
        size_t got_rows = 0;
        char url[320];
        snprintf(url, sizeof(url), "%s/admin/docs/%s/tables", env->grist_url, doc);
        json_t *tl = d2g_test_json("GET", url, NULL);
        const char *tid;
        json_t *t;
        json_object_foreach(json_object_get(tl, "tables"), tid, t) {
            if (strncmp(tid, table, strlen(table)) || tid[strlen(table)] != '_')
                continue;
            json_t *child = grist_rows(env, doc, tid);
            size_t ci;
            json_t *cr;
            json_array_foreach(child, ci, cr)
                got_rows += json_integer_value(field(cr, "dossier")) == num;
            json_decref(child);
        }
        json_decref(tl);
        assert_int_equal(got_rows, want_rows);
        checked++;
    }
    printf("# %s/%s: %zu dossiers checked field by field (state, labels, date, repetition rows)\n",
           doc, table, checked);
    json_decref(rows);
    json_decref(ds);
}

static const char *PROCS3 =
    "[{\"number\": 1101, \"ds_token\": \"main\", \"grist_server\": \"g\", \"document\": \"docA\", \"table_prefix\": \"Subventions\"},"
    " {\"number\": 1102, \"ds_token\": \"main\", \"grist_server\": \"g\", \"document\": \"docA\", \"table_prefix\": \"Bourses\"},"
    " {\"number\": 1103, \"ds_token\": \"main\", \"grist_server\": \"g\", \"document\": \"docB\", \"table_prefix\": \"Agrements\"}]";

static void test_end_to_end(void **state) {
    d2g_testenv_t *env = *state;
    char cfg[600];
    d2g_test_proc_t producer, workers[3];
    start_emulators(env, "[{\"number\": 1101, \"dossiers\": 600}, {\"number\": 1102, \"dossiers\": 250},"
                         " {\"number\": 1103, \"dossiers\": 120}]", NULL);
    assert_int_equal(d2g_test_write_config(env, "ds2grist.json", PROCS3, 400, 8,
                                           "\"defaults\": {\"poll_interval_s\": 2}", cfg, sizeof(cfg)), 0);
    int64_t t0 = d2g_clock_mono_ms();
    spawn(env, &producer, D2G_PRODUCER_BIN, "producer", cfg);
    for (int i = 0; i < 3; i++) {
        char name[16];
        snprintf(name, sizeof(name), "worker-%d", i);
        spawn(env, &workers[i], D2G_WORKER_BIN, name, cfg);
    }
    assert_int_equal(wait_synced(env, "docA", "Subventions", 1101, 120), 600);
    assert_int_equal(wait_synced(env, "docA", "Bourses", 1102, 60), 250);
    assert_int_equal(wait_synced(env, "docB", "Agrements", 1103, 60), 120);
    int64_t elapsed = d2g_clock_mono_ms() - t0;
    check_sample(env, "docA", "Subventions", 1101);
    check_sample(env, "docB", "Agrements", 1103);
    json_t *st = grist_stats(env);
    printf("# end to end: 970 dossiers in %lld ms; Grist requests %lld, 429s %lld, highest in flight docA %lld\n",
           (long long)elapsed,
           (long long)json_integer_value(json_object_get(json_object_get(st, "requests"), "total")),
           (long long)json_integer_value(json_object_get(st, "sent429")),
           (long long)json_integer_value(json_object_get(json_object_get(json_object_get(st, "docs"), "docA"), "maxInFlight")));
    json_decref(st);
    for (int i = 0; i < 3; i++)
        assert_int_equal(d2g_test_proc_stop(&workers[i]), 0);
    assert_int_equal(d2g_test_proc_stop(&producer), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_end_to_end, setup, teardown),
    };
    return cmocka_run_group_tests_name("pipeline", tests, NULL, NULL);
}
