/*
 * test_worker.c - the whole pipeline, as agents and operators check it: the
 * real producer and workers against the DS and Grist emulators, a real
 * redis-server and the Kafka mock broker. What is asserted is what a user
 * sees in Grist: the dossiers of DS, each once, field by field.
 *
 *   end_to_end     3 procedures, 2 documents, 3 workers: Grist = DS
 *   form_changes   a champ added mid-run becomes a column; a renamed one keeps its column
 *   deletions      deleted dossiers marked; removed repetition rows removed
 *   cap            8 workers on one document, 3 permits: never more than 3 in flight, no 429
 *   crash          a worker joins, another is SIGKILLed mid-batch: nothing lost, nothing doubled
 *   poison         bad messages land in the dead-letter topic, each with its reason
 *                  (d2g-error); the rest syncs
 *   slow           a slow document does not stall another one, under the per-document
 *                  bound and under the worker-wide one
 *   cell_diffs     20 of 60 dossiers get one champ of 61 changed in DS: Grist receives
 *                  at most 3 cells per changed dossier (the key, the champ, the date),
 *                  adds no row, and holds the new values; a row someone removed from
 *                  Grist comes back whole on its dossier's next change (not half empty)
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
#include "stack.h"

#define TOKEN D2G_STACK_DS_TOKEN
#define GKEY D2G_STACK_GRIST_KEY

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

/* GET /admin/procedures/<procedure>/dossiers[/<number>] (number 0: the list). */
static json_t *ds_get(d2g_testenv_t *env, long long procedure, long long number) {
    return d2g_stack_ds_get(env, procedure, number);
}

static json_t *ds_do(d2g_testenv_t *env, const char *method, const char *path, const char *body) {
    return d2g_stack_ds_do(env, method, path, body);
}

/* Every row of a Grist table (admin dump); NULL if the table does not exist yet. */
static json_t *grist_rows(d2g_testenv_t *env, const char *doc, const char *table) {
    return d2g_stack_grist_rows(env, doc, table);
}

static json_t *grist_stats(d2g_testenv_t *env) {
    char url[320];
    snprintf(url, sizeof(url), "%s/admin/stats", env->grist_url);
    json_t *j = d2g_test_json("GET", url, NULL);
    assert_non_null(j);
    return j;
}

/* A row's field (dump rows are {id, fields} or flat). */
static json_t *field(json_t *row, const char *name) { return d2g_stack_field(row, name); }

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
        d2g_test_sleep_ms(500);
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
    d2g_stack_spawn(env, &producer, D2G_PRODUCER_BIN, "producer", cfg);
    /* worker-0 serves /healthz, /readyz and /metrics (DS2GRIST_HTTP_PORT). */
    char port[16];
    int http_port = 20000 + (int)(d2g_clock_wall_ms() % 20000);
    snprintf(port, sizeof(port), "%d", http_port);
    for (int i = 0; i < 3; i++) {
        char name[16];
        snprintf(name, sizeof(name), "worker-%d", i);
        if (i == 0)
            setenv("DS2GRIST_HTTP_PORT", port, 1);
        d2g_stack_spawn(env, &workers[i], D2G_WORKER_BIN, name, cfg);
        unsetenv("DS2GRIST_HTTP_PORT");
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

    /* What Kubernetes and Prometheus see of worker-0. */
    char url[128], *body = NULL;
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/healthz", http_port);
    assert_int_equal(d2g_test_http("GET", url, NULL, NULL, NULL), 200);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/readyz", http_port);
    assert_int_equal(d2g_test_http("GET", url, NULL, NULL, NULL), 200);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", http_port);
    assert_int_equal(d2g_test_http("GET", url, NULL, NULL, &body), 200);
    assert_non_null(strstr(body, "# TYPE ds2grist_dossiers_written_total counter"));
    assert_non_null(strstr(body, "ds2grist_grist_requests_total{document=\"g/doc"));
    assert_non_null(strstr(body, "ds2grist_grist_permit_wait_seconds_bucket"));
    assert_non_null(strstr(body, "# TYPE ds2grist_worker_dossiers_buffered gauge"));
    assert_non_null(strstr(body, "# TYPE ds2grist_worker_partitions_paused gauge"));
    assert_null(strstr(body, GKEY)); /* no secret in metrics */
    assert_null(strstr(body, TOKEN));
    free(body);
    for (int i = 0; i < 3; i++)
        assert_int_equal(d2g_test_proc_stop(&workers[i]), 0);
    assert_int_equal(d2g_test_proc_stop(&producer), 0);
}

/* The columns of a Grist table: id -> label. */
static json_t *grist_columns(d2g_testenv_t *env, const char *doc, const char *table) {
    char url[320];
    snprintf(url, sizeof(url), "%s/api/docs/%s/tables/%s/columns", env->grist_url, doc, table);
    char *resp = NULL;
    assert_int_equal(d2g_test_http("GET", url, GKEY, NULL, &resp), 200);
    json_t *j = json_loads(resp, 0, NULL);
    free(resp);
    json_t *out = json_object();
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(j, "columns"), i, c)
        json_object_set(out, json_string_value(json_object_get(c, "id")),
                        json_object_get(json_object_get(c, "fields"), "label"));
    json_decref(j);
    return out;
}

/* The row of dossier num in a table, or NULL (caller decrefs rows). */
static json_t *row_of(json_t *rows, json_int_t num) {
    for (size_t k = 0; k < json_array_size(rows); k++)
        if (json_integer_value(field(json_array_get(rows, k), "numero")) == num)
            return json_array_get(rows, k);
    return NULL;
}

static const char *PROC1 =
    "[{\"number\": 1201, \"ds_token\": \"main\", \"grist_server\": \"g\", \"document\": \"docA\", \"table_prefix\": \"Aides\"}]";

static void test_form_changes_and_deletions(void **state) {
    d2g_testenv_t *env = *state;
    char cfg[600], body[512];
    d2g_test_proc_t producer, worker;
    start_emulators(env, "[{\"number\": 1201, \"dossiers\": 120}]", NULL);
    assert_int_equal(d2g_test_write_config(env, "ds2grist.json", PROC1, 400, 8,
                                           "\"defaults\": {\"poll_interval_s\": 1}", cfg, sizeof(cfg)), 0);
    d2g_stack_spawn(env, &producer, D2G_PRODUCER_BIN, "producer", cfg);
    d2g_stack_spawn(env, &worker, D2G_WORKER_BIN, "worker", cfg);
    assert_int_equal(wait_synced(env, "docA", "Aides", 1201, 90), 120);
    json_t *before = grist_columns(env, "docA", "Aides");

    /* A champ added to the form, and another renamed: the next changes carry them. */
    json_t *added = ds_do(env, "POST", "/admin/procedures/1201/champ-descriptors",
                          "{\"type\": \"TextChampDescriptor\", \"label\": \"Avis du comité local\"}");
    json_t *full = ds_get(env, 1201, 0);
    json_int_t first = json_integer_value(json_object_get(json_array_get(json_object_get(full, "dossiers"), 0), "number"));
    json_int_t second = json_integer_value(json_object_get(json_array_get(json_object_get(full, "dossiers"), 1), "number"));
    json_int_t third = json_integer_value(json_object_get(json_array_get(json_object_get(full, "dossiers"), 2), "number"));
    json_decref(full);
    json_t *d1 = ds_get(env, 1201, first);
    const char *renamed_id = NULL, *rep_id = NULL;
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(d1, "champs"), i, c) {
        const char *t = json_string_value(json_object_get(c, "__typename"));
        if (!renamed_id && !strcmp(t, "TextChamp"))
            renamed_id = json_string_value(json_object_get(c, "champDescriptorId"));
        if (!rep_id && !strcmp(t, "RepetitionChamp") && json_array_size(json_object_get(c, "rows")) > 0)
            rep_id = json_string_value(json_object_get(c, "champDescriptorId"));
    }
    assert_non_null(renamed_id);
    char path[256];
    snprintf(path, sizeof(path), "/admin/procedures/1201/champ-descriptors/%s", renamed_id);
    json_decref(ds_do(env, "PATCH", path, "{\"label\": \"Intitulé du projet (nouveau libellé)\"}"));
    snprintf(body, sizeof(body), "{\"champs\": {\"%s\": \"Favorable\"}}",
             json_string_value(json_object_get(added, "id")));
    snprintf(path, sizeof(path), "/admin/procedures/1201/dossiers/%lld", (long long)first);
    json_decref(ds_do(env, "PATCH", path, body));

    /* A dossier deleted; the repetition rows of another removed. */
    snprintf(path, sizeof(path), "/admin/procedures/1201/dossiers/%lld?reason=user_request", (long long)second);
    json_decref(ds_do(env, "DELETE", path, NULL));
    json_t *d3 = ds_get(env, 1201, third);
    const char *rep3 = NULL;
    json_array_foreach(json_object_get(d3, "champs"), i, c)
        if (!rep3 && !strcmp(json_string_value(json_object_get(c, "__typename")), "RepetitionChamp"))
            rep3 = json_string_value(json_object_get(c, "champDescriptorId"));
    assert_non_null(rep3);
    snprintf(body, sizeof(body), "{\"champs\": {\"%s\": \"1\"}}", rep3); /* one row left */
    snprintf(path, sizeof(path), "/admin/procedures/1201/dossiers/%lld", (long long)third);
    json_decref(ds_do(env, "PATCH", path, body));
    json_decref(d3);

    /* Wait for the new column and the marked deletion. */
    int64_t end = d2g_clock_mono_ms() + 60000;
    json_t *after = NULL, *rows = NULL;
    const char *new_col = NULL;
    for (;;) {
        json_decref(after);
        json_decref(rows);
        after = grist_columns(env, "docA", "Aides");
        rows = grist_rows(env, "docA", "Aides");
        new_col = NULL;
        const char *id;
        json_t *label;
        json_object_foreach(after, id, label)
            if (label && !strcmp(json_string_value(label), "Avis du comité local"))
                new_col = id;
        json_t *r2 = row_of(rows, second), *r1 = row_of(rows, first);
        if (new_col && r1 && json_is_true(field(r2, "supprime")) &&
            json_is_string(field(r1, new_col)) && !strcmp(json_string_value(field(r1, new_col)), "Favorable"))
            break;
        assert_true(d2g_clock_mono_ms() < end);
        d2g_test_sleep_ms(500);
    }
    /* The renamed champ kept its column: every column id of before is still there,
     * and the only new one is the added champ's. */
    const char *id;
    json_t *label;
    json_object_foreach(before, id, label)
        assert_non_null(json_object_get(after, id));
    assert_int_equal(json_object_size(after), json_object_size(before) + 1);
    json_t *r2 = row_of(rows, second);
    assert_string_equal(json_string_value(field(r2, "motif_suppression")), "user_request");
    assert_true(json_number_value(field(r2, "date_suppression")) > 0);
    printf("# form changes: new column %s; renamed champ kept its column; deleted dossier marked\n", new_col);

    /* The third dossier has one repetition row left in its block's table. */
    int ok = 0;
    for (end = d2g_clock_mono_ms() + 30000; !ok && d2g_clock_mono_ms() < end; d2g_test_sleep_ms(500)) {
        char url[320];
        snprintf(url, sizeof(url), "%s/admin/docs/docA/tables", env->grist_url);
        json_t *tl = d2g_test_json("GET", url, NULL);
        size_t rows_left = 0;
        const char *tid;
        json_t *t;
        json_object_foreach(json_object_get(tl, "tables"), tid, t) {
            if (strncmp(tid, "Aides_", 6))
                continue;
            json_t *child = grist_rows(env, "docA", tid);
            size_t ci;
            json_t *cr;
            json_array_foreach(child, ci, cr)
                rows_left += json_integer_value(field(cr, "dossier")) == third;
            json_decref(child);
        }
        json_decref(tl);
        json_t *d3now = ds_get(env, 1201, third);
        size_t want = 0;
        json_array_foreach(json_object_get(d3now, "champs"), i, c)
            want += json_array_size(json_object_get(c, "rows"));
        json_decref(d3now);
        ok = rows_left == want;
    }
    assert_true(ok);
    /* Removing rows is not a failure: nothing went to the dead-letter topic. */
    d2g_test_msgs_t dlq = {0};
    assert_int_equal(d2g_test_kafka_read_all(env, "ds2grist.dlq", &dlq), 0);
    assert_int_equal(dlq.n, 0);
    d2g_test_msgs_free(&dlq);
    json_decref(after);
    json_decref(rows);
    json_decref(before);
    json_decref(added);
    json_decref(d1);
    assert_int_equal(d2g_test_proc_stop(&worker), 0);
    assert_int_equal(d2g_test_proc_stop(&producer), 0);
}

static void test_cap_with_eight_workers(void **state) {
    d2g_testenv_t *env = *state;
    char cfg[600];
    d2g_test_proc_t producer, workers[8];
    start_emulators(env, "[{\"number\": 1301, \"dossiers\": 2500}]", NULL);
    const char *procs = "[{\"number\": 1301, \"ds_token\": \"main\", \"grist_server\": \"g\","
                        " \"document\": \"docA\", \"table_prefix\": \"Dossiers\"}]";
    /* Small batches and no linger: many requests, so that the cap is really tested.
     * The limit (3) is well below what 8 workers would reach without it. */
    assert_int_equal(d2g_test_write_config(env, "ds2grist.json", procs, 400, 3,
                                           "\"worker\": {\"batch_bytes\": 60000, \"linger_ms\": 0}",
                                           cfg, sizeof(cfg)), 0);
    for (int i = 0; i < 8; i++) {
        char name[16];
        snprintf(name, sizeof(name), "worker-%d", i);
        d2g_stack_spawn(env, &workers[i], D2G_WORKER_BIN, name, cfg);
    }
    d2g_test_sleep_ms(4000); /* let the group form so all eight take part */
    d2g_stack_spawn(env, &producer, D2G_PRODUCER_BIN, "producer", cfg);
    assert_int_equal(wait_synced(env, "docA", "Dossiers", 1301, 180), 2500);
    json_t *st = grist_stats(env);
    json_t *doc = json_object_get(json_object_get(st, "docs"), "docA");
    json_int_t max_in_flight = json_integer_value(json_object_get(doc, "maxInFlight"));
    json_int_t sent429 = json_integer_value(json_object_get(doc, "sent429"));
    json_int_t requests = json_integer_value(json_object_get(doc, "requests"));
    printf("# cap: 8 workers, permit limit 3: %lld requests, highest in flight %lld, %lld 429s\n",
           (long long)requests, (long long)max_in_flight, (long long)sent429);
    assert_true(max_in_flight <= 3);
    assert_true(max_in_flight >= 2); /* several workers did write at once */
    assert_int_equal(sent429, 0);
    json_decref(st);
    for (int i = 0; i < 8; i++)
        d2g_test_proc_stop(&workers[i]);
    d2g_test_proc_stop(&producer);
}

static void test_worker_killed_mid_batch(void **state) {
    d2g_testenv_t *env = *state;
    char cfg[600];
    d2g_test_proc_t producer, a, b, c;
    /* Slow writes keep batches in flight when the kill comes. */
    start_emulators(env, "[{\"number\": 1101, \"dossiers\": 1500}, {\"number\": 1102, \"dossiers\": 600},"
                         " {\"number\": 1103, \"dossiers\": 300}]",
                    ", \"writeFixedMs\": 60, \"writePerRowMs\": 1");
    assert_int_equal(d2g_test_write_config(env, "ds2grist.json", PROCS3, 400, 8,
                                           "\"worker\": {\"batch_bytes\": 200000}", cfg, sizeof(cfg)), 0);
    d2g_stack_spawn(env, &a, D2G_WORKER_BIN, "worker-a", cfg);
    d2g_stack_spawn(env, &b, D2G_WORKER_BIN, "worker-b", cfg);
    d2g_stack_spawn(env, &producer, D2G_PRODUCER_BIN, "producer", cfg);
    /* Once rows are arriving, one worker joins and another dies. */
    for (int64_t end = d2g_clock_mono_ms() + 60000; d2g_clock_mono_ms() < end; d2g_test_sleep_ms(200)) {
        json_t *rows = grist_rows(env, "docA", "Subventions");
        size_t n = json_array_size(rows);
        json_decref(rows);
        if (n >= 300)
            break;
    }
    d2g_stack_spawn(env, &c, D2G_WORKER_BIN, "worker-c", cfg);
    d2g_test_sleep_ms(500);
    d2g_test_proc_kill(&a);
    assert_int_equal(wait_synced(env, "docA", "Subventions", 1101, 180), 1500);
    assert_int_equal(wait_synced(env, "docA", "Bourses", 1102, 60), 600);
    assert_int_equal(wait_synced(env, "docB", "Agrements", 1103, 60), 300);
    check_sample(env, "docA", "Subventions", 1101);
    printf("# crash: worker killed mid-batch, another joined: 2400 dossiers, each exactly once\n");
    d2g_test_proc_stop(&b);
    d2g_test_proc_stop(&c);
    d2g_test_proc_stop(&producer);
}

/* Sends raw messages to the dossier topic, as a broken producer would. */
static void produce_raw(d2g_testenv_t *env, const char *key, const char *value) {
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", env->kafka_bootstrap, errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "message.max.bytes", "4000000", errstr, sizeof(errstr));
    rd_kafka_t *p = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    assert_non_null(p);
    assert_int_equal(rd_kafka_producev(p, RD_KAFKA_V_TOPIC("ds2grist.dossiers"),
                                       RD_KAFKA_V_KEY(key, strlen(key)),
                                       RD_KAFKA_V_VALUE((void *)value, strlen(value)),
                                       RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END), 0);
    assert_int_equal(rd_kafka_flush(p, 10000), 0);
    rd_kafka_destroy(p);
}

static void test_poison_to_dead_letters(void **state) {
    d2g_testenv_t *env = *state;
    char cfg[600];
    d2g_test_proc_t producer, worker;
    start_emulators(env, "[{\"number\": 1201, \"dossiers\": 200}]", NULL);
    assert_int_equal(d2g_test_write_config(env, "ds2grist.json", PROC1, 400, 8, "", cfg, sizeof(cfg)), 0);
    d2g_stack_spawn(env, &worker, D2G_WORKER_BIN, "worker", cfg);
    /* 1: not JSON. 2: a procedure nobody configured. 3: a dossier whose champs
     * are not a list. 4: a dossier too big for any Grist request (1.2 MB). */
    produce_raw(env, "1201:1", "this is not json");
    produce_raw(env, "9999:1", "{\"v\":1,\"kind\":\"upsert\",\"procedure\":9999,\"number\":1,"
                               "\"modified\":\"2026-01-01T00:00:00+01:00\",\"fetched_at\":\"x\","
                               "\"dossier\":{\"number\":1}}");
    produce_raw(env, "1201:7777777", "{\"v\":1,\"kind\":\"upsert\",\"procedure\":1201,\"number\":7777777,"
                                     "\"modified\":\"2026-01-01T00:00:00+01:00\",\"fetched_at\":\"x\","
                                     "\"dossier\":{\"number\":7777777,\"id\":\"x\",\"state\":\"en_construction\","
                                     "\"champs\":\"oops\"}}");
    size_t big = 1200 * 1000;
    char *huge = malloc(big + 1024);
    int off = snprintf(huge, 1024, "{\"v\":1,\"kind\":\"upsert\",\"procedure\":1201,\"number\":8888888,"
                                   "\"modified\":\"2026-01-01T00:00:00+01:00\",\"fetched_at\":\"x\","
                                   "\"dossier\":{\"number\":8888888,\"id\":\"y\",\"state\":\"en_construction\","
                                   "\"dateDerniereModification\":\"2026-01-01T00:00:00+01:00\","
                                   "\"champs\":[{\"__typename\":\"TextChamp\",\"id\":\"c1\",\"champDescriptorId\":\"Q2hhbXAtOTk5\","
                                   "\"label\":\"Très long\",\"stringValue\":\"");
    memset(huge + off, 'x', big);
    snprintf(huge + off + big, 64, "\"}]}}");
    produce_raw(env, "1201:8888888", huge);
    free(huge);
    d2g_stack_spawn(env, &producer, D2G_PRODUCER_BIN, "producer", cfg);
    assert_int_equal(wait_synced(env, "docA", "Aides", 1201, 120), 200); /* the rest syncs */

    /* The four are in the dead-letter topic, unchanged keys, with their reason. */
    d2g_test_msgs_t dlq = {0};
    for (int64_t end = d2g_clock_mono_ms() + 30000; d2g_clock_mono_ms() < end; d2g_test_sleep_ms(500)) {
        d2g_test_msgs_free(&dlq);
        assert_int_equal(d2g_test_kafka_read_all(env, "ds2grist.dlq", &dlq), 0);
        if (dlq.n >= 4)
            break;
    }
    assert_int_equal(dlq.n, 4);
    /* Each with its reason (d2g-error) and where it came from. */
    const char *keys[] = {"1201:1", "9999:1", "1201:7777777", "1201:8888888"};
    const char *reasons[] = {"message is not JSON", "procedure 9999 is not configured",
                             "champs", "large"};
    for (int k = 0; k < 4; k++) {
        const d2g_test_msg_t *m = NULL;
        for (size_t i = 0; i < dlq.n; i++)
            if (!strcmp(dlq.v[i].key, keys[k]))
                m = &dlq.v[i];
        if (!m)
            fail_msg("%s not in the dead-letter topic", keys[k]);
        const char *why = d2g_test_msg_header(m, "d2g-error");
        printf("# poison: %s -> d2g-error \"%s\"\n", keys[k], why ? why : "(none)");
        if (!why || !strstr(why, reasons[k]))
            fail_msg("%s: d2g-error \"%s\" does not say \"%s\"", keys[k], why ? why : "(none)",
                     reasons[k]);
        assert_string_equal(d2g_test_msg_header(m, "d2g-source-topic"), "ds2grist.dossiers");
        assert_non_null(d2g_test_msg_header(m, "d2g-source-offset"));
        assert_non_null(d2g_test_msg_header(m, "d2g-failed-at"));
    }
    d2g_test_msgs_free(&dlq);
    json_t *rows = grist_rows(env, "docA", "Aides");
    assert_null(row_of(rows, 8888888));
    assert_null(row_of(rows, 7777777));
    json_decref(rows);
    printf("# poison: 4 bad messages dead-lettered, 200 good dossiers synced\n");
    d2g_test_proc_stop(&worker);
    d2g_test_proc_stop(&producer);
}

/* A document far behind pauses the partitions feeding it; the other document goes on. */
/* docA is slow (a busy Grist), docB is not, one worker serves both with the
 * given "worker" settings: docB completes while docA is still behind, and the
 * worker's log shows event (what it paused, and why). */
static void slow_document(d2g_testenv_t *env, const char *worker_json, const char *event) {
    char cfg[600], extra[300];
    d2g_test_proc_t producer, worker;
    start_emulators(env, "[{\"number\": 1101, \"dossiers\": 800}, {\"number\": 1103, \"dossiers\": 200}]", NULL);
    char url[320];
    snprintf(url, sizeof(url), "%s/admin/config", env->grist_url);
    json_decref(d2g_test_json("POST", url, "{\"writeFixedMs\": 250}"));
    const char *procs =
        "[{\"number\": 1101, \"ds_token\": \"main\", \"grist_server\": \"g\", \"document\": \"docA\", \"table_prefix\": \"Subventions\"},"
        " {\"number\": 1103, \"ds_token\": \"main\", \"grist_server\": \"g\", \"document\": \"docB\", \"table_prefix\": \"Agrements\"}]";
    snprintf(extra, sizeof(extra), "\"worker\": {%s, \"batch_bytes\": 100000}", worker_json);
    assert_int_equal(d2g_test_write_config(env, "ds2grist.json", procs, 400, 8, extra, cfg, sizeof(cfg)), 0);
    d2g_stack_spawn(env, &worker, D2G_WORKER_BIN, "worker", cfg);
    d2g_stack_spawn(env, &producer, D2G_PRODUCER_BIN, "producer", cfg);
    int64_t t0 = d2g_clock_mono_ms();
    assert_int_equal(wait_synced(env, "docB", "Agrements", 1103, 120), 200);
    int64_t b_done = d2g_clock_mono_ms() - t0;
    json_t *rows = grist_rows(env, "docA", "Subventions");
    size_t a_then = json_array_size(rows);
    json_decref(rows);
    assert_int_equal(wait_synced(env, "docA", "Subventions", 1101, 300), 800);
    int64_t a_done = d2g_clock_mono_ms() - t0;
    d2g_test_proc_stop(&worker);
    d2g_test_proc_stop(&producer);
    /* The worker paused what fed the slow document (its log says so). */
    char path[600], line[4096], want[64];
    snprintf(path, sizeof(path), "%s/worker.log", env->dir);
    snprintf(want, sizeof(want), "\"event\":\"%s\"", event);
    FILE *f = fopen(path, "r");
    int paused = 0;
    while (f && fgets(line, sizeof(line), f))
        paused |= strstr(line, want) != NULL;
    if (f)
        fclose(f);
    printf("# slow document (%s): docB complete after %lld ms (docA had %zu/800), docA after %lld ms;"
           " %s: %s\n", worker_json, (long long)b_done, a_then, (long long)a_done, event,
           paused ? "yes" : "no");
    assert_true(paused);
    assert_true(a_then < 800); /* docB did not wait for docA */
}

static void test_slow_document_does_not_stall_others(void **state) {
    slow_document(*state, "\"max_buffered\": 100", "partition_paused");
}

/* The worker-wide bound (memory) does not stall the healthy document either:
 * when the worker is full, only documents over their share pause. */
static void test_full_worker_pauses_the_slow_document_only(void **state) {
    slow_document(*state, "\"max_buffered\": 5000, \"max_buffered_total\": 100", "worker_full");
}

/* The same bound in bytes (worker.max_buffered_bytes): 1 MiB of messages is about 60
 * of these dossiers, far under any count limit here, and still the worker is full and
 * only the slow document pauses: memory follows the size of the dossiers, not only
 * their number. */
static void test_full_worker_by_bytes(void **state) {
    slow_document(*state, "\"max_buffered\": 5000, \"max_buffered_total\": 100000, \"max_buffered_bytes\": 1048576",
                  "worker_full");
}

/* SIGTERM when Kafka is gone: the worker still exits, cleanly and in time. */
static const char *PROC_DIFF =
    "[{\"number\": 1401, \"ds_token\": \"main\", \"grist_server\": \"g\", \"document\": \"docA\", \"table_prefix\": \"Suivi\"}]";

/* A dump row whose text cells hold what DS's touch wrote for dossier num. */
static int holds_touch(json_t *row, json_int_t num) {
    char want[64];
    snprintf(want, sizeof(want), "(dossier %lld)", (long long)num);
    json_t *fields = json_object_get(row, "fields") ? json_object_get(row, "fields") : row;
    const char *k;
    json_t *v;
    json_object_foreach(fields, k, v) {
        if (json_is_string(v) && strstr(json_string_value(v), "Projet modifi") && strstr(json_string_value(v), want))
            return 1;
    }
    return 0;
}

static void test_cell_diffs(void **state) {
    d2g_testenv_t *env = *state;
    char cfg[600];
    d2g_test_proc_t producer, worker;
    start_emulators(env, "[{\"number\": 1401, \"dossiers\": 60}]", NULL);
    /* The document's cells are counted: no sync-status table writes in the window. */
    assert_int_equal(d2g_test_write_config(env, "ds2grist.json", PROC_DIFF, 400, 8,
                                           "\"defaults\": {\"poll_interval_s\": 1},"
                                           " \"worker\": {\"status_interval_s\": 0}", cfg, sizeof(cfg)), 0);
    d2g_stack_spawn(env, &producer, D2G_PRODUCER_BIN, "producer", cfg);
    d2g_stack_spawn(env, &worker, D2G_WORKER_BIN, "worker-0", cfg);
    assert_int_equal(wait_synced(env, "docA", "Suivi", 1401, 120), 60);
    /* Settled (the child rows too), then counted from zero. */
    d2g_test_sleep_ms(2000);
    json_decref(d2g_stack_grist_do(env, "POST", "/admin/stats/reset", NULL));

    json_t *touched = ds_do(env, "POST", "/admin/procedures/1401/touch", "{\"count\": 20}");
    json_t *nums = json_object_get(touched, "numbers");
    assert_int_equal(json_array_size(nums), 20);
    /* Wait until Grist holds the 20 new values. */
    int64_t end = d2g_clock_mono_ms() + 60000;
    size_t have = 0;
    while (have < 20) {
        if (d2g_clock_mono_ms() > end) {
            json_t *rows = grist_rows(env, "docA", "Suivi");
            char *t = json_dumps(row_of(rows, json_integer_value(json_array_get(nums, 0))), JSON_COMPACT);
            printf("# not updated after 60 s (%zu/20); logs in %s; %s\n", have, env->dir, t);
            free(t);
            json_t *st = grist_stats(env);
            t = json_dumps(json_object_get(json_object_get(st, "docs"), "docA"), JSON_COMPACT);
            printf("# stats %s\n", t);
            free(t);
            json_decref(st);
            json_decref(rows);
            fail();
        }
        d2g_test_sleep_ms(300);
        json_t *rows = grist_rows(env, "docA", "Suivi");
        have = 0;
        size_t i;
        json_t *n;
        json_array_foreach(nums, i, n) {
            json_t *row = row_of(rows, json_integer_value(n));
            have += row && holds_touch(row, json_integer_value(n));
        }
        json_decref(rows);
    }
    d2g_test_sleep_ms(1500); /* whatever else the batch sends */
    json_t *st = grist_stats(env);
    json_t *doc = json_object_get(json_object_get(st, "docs"), "docA");
    long long cells = json_integer_value(json_object_get(doc, "cellsAdded")) +
                      json_integer_value(json_object_get(doc, "cellsUpdated")) +
                      json_integer_value(json_object_get(doc, "cellsUnchanged"));
    long long added = json_integer_value(json_object_get(doc, "rowsAdded"));
    long long puts = 0;
    const char *path;
    json_t *p;
    json_object_foreach(json_object_get(doc, "paths"), path, p)
        if (!strncmp(path, "PUT ", 4))
            puts += json_integer_value(json_object_get(p, "requests"));
    /* The emulator counts the fields sent; the key (in require) is one more per dossier. */
    printf("# cell diffs: 20 dossiers with 1 champ changed: %lld fields + 20 keys = %.2f cells per dossier, "
           "%lld rows added, %lld PUTs\n", cells, (double)(cells + 20) / 20.0, added, puts);
    assert_true(cells + 20 <= 3 * 20);
    assert_int_equal(added, 0);
    json_decref(st);
    /* Every dossier still once, field by field on a sample. */
    assert_int_equal(wait_synced(env, "docA", "Suivi", 1401, 30), 60);
    check_sample(env, "docA", "Suivi", 1401);
    json_decref(touched);

    /* Someone removes a row in Grist; its dossier changes in DS: the row comes back whole. */
    json_t *rows = grist_rows(env, "docA", "Suivi");
    json_t *gone = json_array_get(rows, 5);
    json_int_t gone_num = json_integer_value(field(gone, "numero"));
    char url[320], body[64];
    snprintf(url, sizeof(url), "%s/api/docs/docA/tables/Suivi/data/delete", env->grist_url);
    snprintf(body, sizeof(body), "[%lld]", (long long)json_integer_value(json_object_get(gone, "id")));
    assert_int_equal(d2g_test_http("POST", url, GKEY, body, NULL), 200);
    json_decref(rows);
    json_decref(ds_do(env, "POST", "/admin/procedures/1401/touch", "{\"count\": 60}"));
    end = d2g_clock_mono_ms() + 60000;
    json_t *back = NULL;
    while (!back) {
        assert_true(d2g_clock_mono_ms() < end);
        d2g_test_sleep_ms(300);
        rows = grist_rows(env, "docA", "Suivi");
        json_t *r = row_of(rows, gone_num);
        if (r && holds_touch(r, gone_num))
            back = json_incref(r);
        json_decref(rows);
    }
    /* Whole: its fixed columns are there, not only the changed cells. */
    json_t *full = ds_get(env, 1401, gone_num);
    const char *etat = json_string_value(field(back, "etat"));
    assert_non_null(etat);
    assert_string_equal(etat, json_string_value(json_object_get(full, "state")));
    json_decref(full);
    assert_true(json_integer_value(field(back, "date_depot")) > 0);
    json_decref(back);
    assert_int_equal(wait_synced(env, "docA", "Suivi", 1401, 30), 60);
    assert_int_equal(d2g_test_proc_stop(&worker), 0);
    assert_int_equal(d2g_test_proc_stop(&producer), 0);
}

static void test_stop_without_kafka(void **state) {
    d2g_testenv_t *env = *state;
    char cfg[600];
    d2g_test_proc_t producer, worker;
    start_emulators(env, "[{\"number\": 1201, \"dossiers\": 100}]", NULL);
    assert_int_equal(d2g_test_write_config(env, "ds2grist.json", PROC1, 400, 8, "", cfg, sizeof(cfg)), 0);
    d2g_stack_spawn(env, &worker, D2G_WORKER_BIN, "worker", cfg);
    d2g_stack_spawn(env, &producer, D2G_PRODUCER_BIN, "producer", cfg);
    assert_int_equal(wait_synced(env, "docA", "Aides", 1201, 90), 100);
    d2g_test_proc_kill(&env->kafka); /* the brokers vanish */
    int64_t t0 = d2g_clock_mono_ms();
    int wst = d2g_test_proc_stop(&worker);
    int64_t worker_ms = d2g_clock_mono_ms() - t0;
    t0 = d2g_clock_mono_ms();
    int pst = d2g_test_proc_stop(&producer);
    int64_t producer_ms = d2g_clock_mono_ms() - t0;
    printf("# stop without Kafka: worker exited %d after %lld ms, producer %d after %lld ms\n", wst,
           (long long)worker_ms, pst, (long long)producer_ms);
    assert_int_equal(wst, 0);
    assert_int_equal(pst, 0);
}

int main(void) {
    d2g_test_filter_from_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_end_to_end, d2g_stack_setup_kafka, d2g_stack_teardown),
        cmocka_unit_test_setup_teardown(test_form_changes_and_deletions, d2g_stack_setup_kafka, d2g_stack_teardown),
        cmocka_unit_test_setup_teardown(test_cap_with_eight_workers, d2g_stack_setup_kafka, d2g_stack_teardown),
        cmocka_unit_test_setup_teardown(test_worker_killed_mid_batch, d2g_stack_setup_kafka, d2g_stack_teardown),
        cmocka_unit_test_setup_teardown(test_poison_to_dead_letters, d2g_stack_setup_kafka, d2g_stack_teardown),
        cmocka_unit_test_setup_teardown(test_slow_document_does_not_stall_others, d2g_stack_setup_kafka, d2g_stack_teardown),
        cmocka_unit_test_setup_teardown(test_full_worker_pauses_the_slow_document_only, d2g_stack_setup_kafka, d2g_stack_teardown),
        cmocka_unit_test_setup_teardown(test_full_worker_by_bytes, d2g_stack_setup_kafka, d2g_stack_teardown),
        cmocka_unit_test_setup_teardown(test_stop_without_kafka, d2g_stack_setup_kafka, d2g_stack_teardown),
        cmocka_unit_test_setup_teardown(test_cell_diffs, d2g_stack_setup_kafka, d2g_stack_teardown),
    };
    return cmocka_run_group_tests_name("pipeline", tests, NULL, NULL);
}
