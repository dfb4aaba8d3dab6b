/*
 * test_write_faults.c - the worker's write path against what goes wrong in
 * Grist and in the data, as a user checks it: rows in Grist equal to the
 * dossiers of DS, nothing stalled, nothing sent to the dead-letter topic that
 * should not be, no secret anywhere. Real producer and worker, the DS and
 * Grist emulators, redis-server, the Kafka mock broker.
 *
 *   remove_new_block   deleted dossiers removed ("deleted": "remove") while the
 *                      form gained a repetition block whose child table does not
 *                      exist yet: its look-up is Grist's 404, and nothing stalls
 *   delete_gone_row    a delete answered "Invalid row id" (another writer removed
 *                      it first): the delete is done, no dossier dead-lettered
 *   big_numbers        dossier numbers above 2^31: each row once, re-delivered or not
 *   secret_in_error    Grist errors that quote the API key: the dead letters, the
 *                      worker's log and `ds2grist dlq list` never show it
 *   parked_and_back    every request answered 401 (a revoked key): the lane is
 *                      parked, `ds2grist status` shows it with its reason; the key
 *                      restored, it resumes by itself and every dossier arrives
 *   schema_after_timeout POST /tables and POST .../columns applied by Grist but
 *                      answered after the client's timeout: no duplicate table
 *                      (Aides2) or column (x_2), every dossier once
 *   alternating_proxy  a proxy failing every other request with an HTML page that
 *                      echoes the key: everything arrives, the backoff grows (few
 *                      requests), the log stays short and the key appears nowhere
 *   refused_repeatedly a dossier too large for any request, changed 20 times: 20
 *                      dead letters, the others synced, no schema made for it,
 *                      and the worker (ASan build: LeakSanitizer) exits clean
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
#include <sys/wait.h>

#include "ds2grist/clock.h"
#include "stack.h"

#define TOKEN D2G_STACK_DS_TOKEN
#define GKEY D2G_STACK_GRIST_KEY

static void start_emulators(d2g_testenv_t *env, const char *ds_extra, const char *procedures) {
    char cfg[2048];
    snprintf(cfg, sizeof(cfg),
             "{\"seed\": 9, %s \"procedures\": %s,"
             " \"tokens\": [{\"name\": \"main\", \"secret\": \"" TOKEN "\", \"procedures\": \"*\"}]}",
             ds_extra, procedures);
    assert_int_equal(d2g_testenv_start_ds(env, cfg), 0);
    assert_int_equal(d2g_testenv_start_grist(env, "{\"docs\": [{\"id\": \"docA\", \"keys\": [\"" GKEY "\"]}]}"), 0);
}

static const char *PROC_REMOVE =
    "[{\"number\": 1301, \"ds_token\": \"main\", \"grist_server\": \"g\", \"document\": \"docA\","
    "  \"table_prefix\": \"Aides\", \"options\": {\"deleted\": \"remove\"}}]";
static const char *PROC =
    "[{\"number\": 1301, \"ds_token\": \"main\", \"grist_server\": \"g\", \"document\": \"docA\","
    "  \"table_prefix\": \"Aides\"}]";

static void delete_dossier(d2g_testenv_t *env, long long number) {
    char path[128];
    snprintf(path, sizeof(path), "/admin/procedures/1301/dossiers/%lld?reason=user_request", number);
    json_decref(d2g_stack_ds_do(env, "DELETE", path, NULL));
}

static long long nth_number(d2g_testenv_t *env, size_t i) {
    json_t *ds = d2g_stack_ds_get(env, 1301, 0);
    long long n = json_integer_value(json_object_get(json_array_get(json_object_get(ds, "dossiers"), i), "number"));
    json_decref(ds);
    return n;
}

static size_t dead_letters(d2g_testenv_t *env, d2g_test_msgs_t *out) {
    memset(out, 0, sizeof(*out));
    assert_int_equal(d2g_test_kafka_read_all(env, "ds2grist.dlq", out), 0);
    return out->n;
}

/* Grist's requests of a kind so far (admin stats). */
static long long requests_of(d2g_testenv_t *env, const char *kind) {
    json_t *s = d2g_stack_grist_do(env, "GET", "/admin/stats", NULL);
    long long n = json_integer_value(json_object_get(json_object_get(json_object_get(s, "requests"), "byKind"), kind));
    json_decref(s);
    return n;
}

static void test_remove_new_block(void **state) {
    d2g_testenv_t *env = *state;
    char cfg[600];
    d2g_test_proc_t producer, worker;
    start_emulators(env, "", "[{\"number\": 1301, \"dossiers\": 60}]");
    assert_int_equal(d2g_test_write_config(env, "ds2grist.json", PROC_REMOVE, 400, 8,
                                           "\"defaults\": {\"poll_interval_s\": 1}", cfg, sizeof(cfg)), 0);
    d2g_stack_spawn(env, &producer, D2G_PRODUCER_BIN, "producer", cfg);
    d2g_stack_spawn(env, &worker, D2G_WORKER_BIN, "worker", cfg);
    assert_int_equal(d2g_stack_wait_synced(env, "docA", "Aides", 1301, 90), 60);

    /* A repetition block added to the form: its child table does not exist
     * until a dossier has rows in it. Then two dossiers are deleted. */
    json_decref(d2g_stack_ds_do(env, "POST", "/admin/procedures/1301/champ-descriptors",
                                "{\"type\": \"RepetitionChampDescriptor\", \"label\": \"Financeurs\"}"));
    /* The producer stores the new revision with its next poll; workers read a
     * procedure's form again every 30 s. */
    d2g_test_sleep_ms(33000);
    long long a = nth_number(env, 0), b = nth_number(env, 1);
    delete_dossier(env, a);
    delete_dossier(env, b);
    /* And a dossier created after: it must arrive too (nothing stalls). */
    json_decref(d2g_stack_ds_do(env, "POST", "/admin/procedures/1301/dossiers", "{}"));
    size_t n = d2g_stack_wait_synced(env, "docA", "Aides", 1301, 60);
    printf("# remove mode with a new repetition block: %zu rows (59 expected), %lld look-ups, %lld deletes\n",
           n, requests_of(env, "GET records"), requests_of(env, "POST data/delete"));
    assert_int_equal(n, 59);
    assert_int_equal(d2g_stack_count(env, "docA", "Aides", "numero", a), 0);
    d2g_test_msgs_t dlq;
    assert_int_equal(dead_letters(env, &dlq), 0);
    d2g_test_msgs_free(&dlq);

    /* A delete that Grist answers "Invalid row id" (another writer removed the
     * row first): the row is gone, so the delete is done. Twice: a retry of the
     * same delete would meet it again (and dead-letter the dossier). */
    json_decref(d2g_stack_grist_do(env, "POST", "/admin/faults",
                                   "{\"doc\": \"docA\", \"status\": 400, \"method\": \"POST\", \"path\": \"/data/delete\","
                                   " \"count\": 2, \"error\": \"Invalid row id 999999\"}"));
    long long c = nth_number(env, 2);
    delete_dossier(env, c);
    json_t *made = d2g_stack_ds_do(env, "POST", "/admin/procedures/1301/dossiers", "{}");
    long long fresh = json_integer_value(json_object_get(made, "number"));
    json_decref(made);
    int64_t end = d2g_clock_mono_ms() + 60000;
    while (d2g_stack_count(env, "docA", "Aides", "numero", fresh) != 1 && d2g_clock_mono_ms() < end)
        d2g_test_sleep_ms(500);
    json_t *faults = d2g_stack_grist_do(env, "GET", "/admin/faults", NULL);
    printf("# a delete answered 'Invalid row id': taken as done; a dossier created after it arrived: %zu\n",
           d2g_stack_count(env, "docA", "Aides", "numero", fresh));
    json_decref(faults);
    d2g_test_sleep_ms(2000); /* a dead letter, if any, has been produced */
    assert_int_equal(d2g_stack_count(env, "docA", "Aides", "numero", fresh), 1);
    assert_int_equal(dead_letters(env, &dlq), 0);
    d2g_test_msgs_free(&dlq);
    d2g_test_proc_stop(&producer);
    d2g_test_proc_stop(&worker);
}

/* An upsert envelope of dossier number (procedure 1301) at second sec, with one repetition row. */
static char *envelope(long long number, int sec) {
    char *text = malloc(2048);
    snprintf(text, 2048,
             "{\"v\":1,\"kind\":\"upsert\",\"procedure\":1301,\"number\":%lld,"
             "\"modified\":\"2026-01-01T00:00:%02d+01:00\",\"fetched_at\":\"x\","
             "\"dossier\":{\"number\":%lld,\"id\":\"d%lld\",\"state\":\"en_construction\","
             "\"dateDerniereModification\":\"2026-01-01T00:00:%02d+01:00\","
             "\"champs\":[{\"__typename\":\"RepetitionChamp\",\"id\":\"r\",\"champDescriptorId\":\"Q2hhbXAtNzc=\","
             "\"label\":\"Membres\",\"stringValue\":\"\",\"rows\":[{\"id\":\"row%lld\",\"champs\":["
             "{\"__typename\":\"TextChamp\",\"id\":\"t\",\"champDescriptorId\":\"Q2hhbXAtNzg=\",\"label\":\"Nom\","
             "\"stringValue\":\"v%d\"}]}]}]}}",
             number, sec, number, number, sec, number, sec);
    return text;
}

static void produce_raw(d2g_testenv_t *env, const char *key, const char *value);

static void test_big_numbers(void **state) {
    d2g_testenv_t *env = *state;
    char cfg[600], key[48];
    d2g_test_proc_t w1, w2;
    start_emulators(env, "", "[{\"number\": 1301, \"dossiers\": 0}]");
    assert_int_equal(d2g_test_write_config(env, "ds2grist.json", PROC, 400, 8, "", cfg, sizeof(cfg)), 0);
    /* DS's GraphQL Int is 32 bits, but the message format and Grist take any
     * 64-bit number: 40 dossiers from 3,000,000,000 (above 2^31), twice each. */
    enum { N = 40 };
    const long long base = 3000000000LL;
    for (int v = 0; v < 2; v++)
        for (int i = 0; i < N; i++) {
            snprintf(key, sizeof(key), "1301:%lld", base + i);
            char *e = envelope(base + i, v);
            produce_raw(env, key, e);
            free(e);
        }
    d2g_stack_spawn(env, &w1, D2G_WORKER_BIN, "worker1", cfg);
    int64_t end = d2g_clock_mono_ms() + 60000;
    size_t n = 0;
    while (d2g_clock_mono_ms() < end) {
        json_t *rows = d2g_stack_grist_rows(env, "docA", "Aides");
        n = json_array_size(rows);
        json_decref(rows);
        if (n >= N)
            break;
        d2g_test_sleep_ms(500);
    }
    /* A second worker, the first killed: what was not committed is read again. */
    d2g_stack_spawn(env, &w2, D2G_WORKER_BIN, "worker2", cfg);
    d2g_test_sleep_ms(4000);
    d2g_test_proc_kill(&w1);
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "1301:%lld", base + i);
        char *e = envelope(base + i, 2);
        produce_raw(env, key, e);
        free(e);
    }
    /* The third version must land too (written by worker2 once the group gave it the
     * partitions): an update found by its key, not a second row. Its modification date
     * is 2026-01-01T00:00:02+01:00. */
    const double v2_date = 1767222002.0;
    size_t latest = 0;
    for (int64_t end2 = d2g_clock_mono_ms() + 90000; d2g_clock_mono_ms() < end2; d2g_test_sleep_ms(500)) {
        json_t *now = d2g_stack_grist_rows(env, "docA", "Aides");
        size_t i;
        json_t *r;
        latest = 0;
        json_array_foreach(now, i, r) {
            json_t *d = d2g_stack_field(r, "date_derniere_modification");
            latest += json_is_number(d) && json_number_value(d) == v2_date;
        }
        json_decref(now);
        if (latest >= N)
            break;
    }
    json_t *rows = d2g_stack_grist_rows(env, "docA", "Aides");
    json_t *child = d2g_stack_grist_rows(env, "docA", "Aides_Membres");
    size_t once = 0;
    for (int i = 0; i < N; i++)
        once += d2g_stack_count(env, "docA", "Aides", "numero", base + i) == 1 &&
                d2g_stack_count(env, "docA", "Aides_Membres", "dossier", base + i) == 1;
    printf("# dossier numbers from 3,000,000,000: %zu rows, %zu child rows, %zu of %d dossiers exactly once,"
           " %zu at their third version\n",
           json_array_size(rows), json_array_size(child), once, N, latest);
    assert_int_equal(latest, N);
    assert_int_equal(json_array_size(rows), N);
    assert_int_equal(json_array_size(child), N);
    assert_int_equal(once, N);
    json_decref(rows);
    json_decref(child);
    d2g_test_proc_stop(&w2);
}

/* 1 if the file holds needle. */
static int file_has(const char *path, const char *needle) {
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char buf[8192];
    size_t keep = strlen(needle);
    int found = 0;
    size_t len = 0;
    char *all = NULL;
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
        all = realloc(all, len + n + 1);
        memcpy(all + len, buf, n);
        len += n;
    }
    fclose(f);
    if (all) {
        all[len] = '\0';
        found = keep && strstr(all, needle) != NULL;
    }
    free(all);
    return found;
}

static void test_secret_in_error(void **state) {
    d2g_testenv_t *env = *state;
    char cfg[600], log[512];
    d2g_test_proc_t producer, worker;
    start_emulators(env, "", "[{\"number\": 1301, \"dossiers\": 20}]");
    assert_int_equal(d2g_test_write_config(env, "ds2grist.json", PROC, 400, 8, "", cfg, sizeof(cfg)), 0);
    /* Every write refused with an error that quotes the key (a proxy's
     * message, a misconfigured server): each dossier ends in the dead-letter
     * topic with the reason. */
    json_decref(d2g_stack_grist_do(env, "POST", "/admin/faults",
                                   "{\"doc\": \"docA\", \"status\": 400, \"method\": \"PUT\", \"count\": 1000,"
                                   " \"error\": \"Authorization: Bearer " GKEY " is not allowed here\"}"));
    d2g_stack_spawn(env, &worker, D2G_WORKER_BIN, "worker", cfg);
    d2g_stack_spawn(env, &producer, D2G_PRODUCER_BIN, "producer", cfg);
    d2g_test_msgs_t dlq = {0};
    for (int64_t end = d2g_clock_mono_ms() + 90000; d2g_clock_mono_ms() < end; d2g_test_sleep_ms(1000)) {
        d2g_test_msgs_free(&dlq);
        if (dead_letters(env, &dlq) >= 20)
            break;
    }
    assert_int_equal(dlq.n, 20);
    for (size_t i = 0; i < dlq.n; i++)
        assert_null(strstr(dlq.v[i].value, GKEY));
    d2g_test_msgs_free(&dlq);
    /* The headers: read with kcat-free librdkafka in the CLI, which prints them. */
    char out[512];
    snprintf(out, sizeof(out), "%s/dlq-list.txt", env->dir);
    char cmd[2048];
    snprintf(cmd, sizeof(cmd), "%s --config %s dlq list --json > %s 2>&1", D2G_CLI_BIN, cfg, out);
    int rc = system(cmd);
    assert_true(WIFEXITED(rc));
    assert_true(file_has(out, "is not allowed here"));
    assert_false(file_has(out, GKEY));
    d2g_test_proc_stop(&producer);
    d2g_test_proc_stop(&worker);
    snprintf(log, sizeof(log), "%s/worker.log", env->dir);
    assert_true(file_has(log, "***"));
    assert_false(file_has(log, GKEY));
    printf("# errors quoting the key: 20 dead letters, key in none of them, nor in dlq list, nor in the log\n");
}

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

static void test_refused_repeatedly(void **state) {
    d2g_testenv_t *env = *state;
    char cfg[600];
    d2g_test_proc_t producer, worker;
    start_emulators(env, "", "[{\"number\": 1301, \"dossiers\": 50}]");
    assert_int_equal(d2g_test_write_config(env, "ds2grist.json", PROC, 400, 8, "", cfg, sizeof(cfg)), 0);
    d2g_stack_spawn(env, &worker, D2G_WORKER_BIN, "worker", cfg);
    /* A dossier of 1.5 MB (one text champ of its own), 20 versions of it. */
    enum { VERSIONS = 20 };
    size_t big = 1500 * 1000;
    char *huge = malloc(big + 2048);
    for (int v = 0; v < VERSIONS; v++) {
        int off = snprintf(huge, 2048, "{\"v\":1,\"kind\":\"upsert\",\"procedure\":1301,\"number\":8888888,"
                                       "\"modified\":\"2026-01-01T00:00:%02d+01:00\",\"fetched_at\":\"x\","
                                       "\"dossier\":{\"number\":8888888,\"id\":\"y\",\"state\":\"en_construction\","
                                       "\"dateDerniereModification\":\"2026-01-01T00:00:%02d+01:00\","
                                       "\"champs\":[{\"__typename\":\"TextChamp\",\"id\":\"c1\",\"champDescriptorId\":\"Q2hhbXAtOTk5\","
                                       "\"label\":\"Pièce recopiée en entier\",\"stringValue\":\"", v, v);
        memset(huge + off, 'a' + v % 26, big);
        snprintf(huge + off + big, 64, "\"}]}}");
        produce_raw(env, "1301:8888888", huge);
        d2g_test_sleep_ms(300); /* separate batches */
    }
    free(huge);
    d2g_stack_spawn(env, &producer, D2G_PRODUCER_BIN, "producer", cfg);
    assert_int_equal(d2g_stack_wait_synced(env, "docA", "Aides", 1301, 120), 50);
    d2g_test_msgs_t dlq = {0};
    for (int64_t end = d2g_clock_mono_ms() + 30000; d2g_clock_mono_ms() < end; d2g_test_sleep_ms(500)) {
        d2g_test_msgs_free(&dlq);
        if (dead_letters(env, &dlq) >= 1)
            break;
    }
    /* Versions that met in one batch collapse into one dead letter. */
    assert_true(dlq.n >= 1 && dlq.n <= VERSIONS);
    d2g_test_msgs_free(&dlq);
    /* No column was made for the refused dossier's champ. */
    json_t *cols = d2g_stack_grist_do(env, "GET", "/admin/docs/docA/tables/Aides/columns", NULL);
    char *text = json_dumps(cols, 0);
    assert_null(strstr(text, "pi_ce_recopi") );
    assert_null(strstr(text, "Pièce recopiée"));
    free(text);
    json_decref(cols);
    d2g_test_proc_stop(&producer);
    int st = d2g_test_proc_stop(&worker);
    printf("# a dossier too large, %d versions: %zu dead letters, the 50 others synced, worker exit %d\n",
           VERSIONS, dlq.n, st);
    assert_int_equal(st, 0); /* under ASan, a leak makes LeakSanitizer fail the exit */
}

static void test_parked_and_back(void **state) {
    d2g_testenv_t *env = *state;
    char cfg[600], out[512], cmd[2048];
    d2g_test_proc_t producer, worker;
    start_emulators(env, "", "[{\"number\": 1301, \"dossiers\": 150}]");
    assert_int_equal(d2g_test_write_config(env, "ds2grist.json", PROC, 400, 8, "", cfg, sizeof(cfg)), 0);
    json_decref(d2g_stack_grist_do(env, "POST", "/admin/faults",
                                   "{\"doc\": \"docA\", \"status\": 401, \"count\": 100000,"
                                   " \"error\": \"invalid API key\"}"));
    d2g_stack_spawn(env, &worker, D2G_WORKER_BIN, "worker", cfg);
    d2g_stack_spawn(env, &producer, D2G_PRODUCER_BIN, "producer", cfg);
    snprintf(out, sizeof(out), "%s/status.json", env->dir);
    snprintf(cmd, sizeof(cmd), "%s --config %s status --json --no-lag > %s 2>/dev/null", D2G_CLI_BIN, cfg, out);
    json_t *lane = NULL;
    for (int64_t end = d2g_clock_mono_ms() + 60000; !lane && d2g_clock_mono_ms() < end; d2g_test_sleep_ms(1000)) {
        if (system(cmd) == -1)
            continue;
        json_t *st = json_load_file(out, 0, NULL);
        json_t *l = json_array_get(json_object_get(json_array_get(json_object_get(st, "documents"), 0), "lanes"), 0);
        if (l && !strcmp(json_string_value(json_object_get(l, "state")), "parked"))
            lane = json_incref(l);
        json_decref(st);
    }
    assert_non_null(lane);
    assert_string_equal(json_string_value(json_object_get(lane, "reason")), "auth");
    assert_non_null(strstr(json_string_value(json_object_get(lane, "error")), "401"));
    printf("# revoked key: status shows the lane %s (%s) since %s: %s\n", json_string_value(json_object_get(lane, "state")),
           json_string_value(json_object_get(lane, "reason")), json_string_value(json_object_get(lane, "since")),
           json_string_value(json_object_get(lane, "error")));
    json_decref(lane);
    /* The key works again: the lane resumes without a restart. */
    int64_t t0 = d2g_clock_mono_ms();
    json_decref(d2g_stack_grist_do(env, "DELETE", "/admin/faults", NULL));
    assert_int_equal(d2g_stack_wait_synced(env, "docA", "Aides", 1301, 120), 150);
    printf("# key restored: 150 dossiers in Grist %.1f s later\n", (double)(d2g_clock_mono_ms() - t0) / 1000.0);
    /* and status no longer lists it */
    int listed = 1;
    for (int64_t end = d2g_clock_mono_ms() + 20000; listed && d2g_clock_mono_ms() < end; d2g_test_sleep_ms(500)) {
        if (system(cmd) == -1)
            continue;
        json_t *st = json_load_file(out, 0, NULL);
        listed = json_array_size(json_object_get(json_array_get(json_object_get(st, "documents"), 0), "lanes")) > 0;
        json_decref(st);
    }
    assert_false(listed);
    d2g_test_proc_stop(&producer);
    d2g_test_proc_stop(&worker);
}

/* 1 if the Grist emulator has document modes and late-applied faults. */
static int emulator_has_modes(d2g_testenv_t *env) {
    char url[320], *resp = NULL;
    snprintf(url, sizeof(url), "%s/admin/docs/docA/mode", env->grist_url);
    int st = d2g_test_http("GET", url, NULL, NULL, &resp);
    free(resp);
    return st == 200;
}

/* A configuration whose Grist timeout is short (the emulator answers later). */
static void short_timeout_config(d2g_testenv_t *env, char *cfg, size_t len) {
    char path[512];
    assert_int_equal(d2g_test_write_config(env, "base.json", PROC, 400, 8, "", path, sizeof(path)), 0);
    json_t *j = json_load_file(path, 0, NULL);
    assert_non_null(j);
    json_object_set_new(json_object_get(j, "grist"), "timeout_s", json_integer(1));
    char *text = json_dumps(j, 0);
    assert_int_equal(d2g_testenv_write_file(env, "ds2grist.json", text, cfg, len), 0);
    free(text);
    json_decref(j);
}

static void test_schema_after_timeout(void **state) {
    d2g_testenv_t *env = *state;
    char cfg[600];
    d2g_test_proc_t producer, worker;
    start_emulators(env, "", "[{\"number\": 1301, \"dossiers\": 80}]");
    if (!emulator_has_modes(env))
        skip();
    short_timeout_config(env, cfg, sizeof(cfg));
    /* Grist applies the creations, but answers after the worker gave up. */
    json_decref(d2g_stack_grist_do(env, "POST", "/admin/faults",
                                   "[{\"doc\": \"docA\", \"method\": \"POST\", \"pattern\": \"^/tables$\", \"apply\": true,"
                                   "  \"delayMs\": 2500, \"count\": 2}]"));
    d2g_stack_spawn(env, &worker, D2G_WORKER_BIN, "worker", cfg);
    d2g_stack_spawn(env, &producer, D2G_PRODUCER_BIN, "producer", cfg);
    assert_int_equal(d2g_stack_wait_synced(env, "docA", "Aides", 1301, 120), 80);
    /* A champ added to the form: its column is created under the same kind of fault. */
    json_decref(d2g_stack_grist_do(env, "POST", "/admin/faults",
                                   "[{\"doc\": \"docA\", \"method\": \"POST\", \"pattern\": \"/columns$\", \"apply\": true,"
                                   "  \"delayMs\": 2500, \"count\": 2}]"));
    json_decref(d2g_stack_ds_do(env, "POST", "/admin/procedures/1301/champ-descriptors",
                                "{\"type\": \"TextChampDescriptor\", \"label\": \"Avis tardif\"}"));
    int has = 0;
    for (int64_t end = d2g_clock_mono_ms() + 90000; !has && d2g_clock_mono_ms() < end; d2g_test_sleep_ms(1000)) {
        json_decref(d2g_stack_ds_do(env, "PATCH", "/admin/procedures/1301/dossiers/1000001", "{\"state\": \"accepte\"}"));
        json_t *cl = d2g_stack_grist_do(env, "GET", "/admin/docs/docA/tables/Aides/columns", NULL);
        char *txt = json_dumps(cl, 0);
        has = strstr(txt, "avis_tardif") != NULL;
        free(txt);
        json_decref(cl);
    }
    assert_true(has);
    d2g_test_sleep_ms(4000); /* any late second attempt would land now */
    assert_int_equal(d2g_stack_wait_synced(env, "docA", "Aides", 1301, 60), 80);
    json_t *tables = d2g_stack_grist_do(env, "GET", "/admin/docs/docA/tables", NULL);
    char *t = json_dumps(tables, JSON_SORT_KEYS);
    json_t *cols = d2g_stack_grist_do(env, "GET", "/admin/docs/docA/tables/Aides/columns", NULL);
    char *c = json_dumps(cols, 0);
    int dup_col = strstr(c, "avis_tardif_2") != NULL || strstr(c, "avis_tardif2") != NULL;
    json_t *tl = json_object_get(tables, "tables");
    printf("# creations answered after the timeout: %zu tables (%s), column avis_tardif made once: %s\n",
           json_object_size(tl), json_object_get(tl, "Aides2") ? "Aides2 too" : "no Aides2", dup_col ? "no" : "yes");
    assert_null(strstr(t, "Aides2"));
    assert_false(dup_col);
    free(t);
    free(c);
    json_decref(tables);
    json_decref(cols);
    d2g_test_proc_stop(&producer);
    d2g_test_proc_stop(&worker);
}

static size_t count_lines(const char *path, const char *needle) {
    FILE *f = fopen(path, "r");
    char line[8192];
    size_t n = 0;
    while (f && fgets(line, sizeof(line), f))
        n += strstr(line, needle) != NULL;
    if (f)
        fclose(f);
    return n;
}

/* Dossiers of procedure whose row in docA/Aides holds DS's current version. */
static size_t rows_current(d2g_testenv_t *env, long long procedure) {
    json_t *ds = d2g_stack_ds_get(env, procedure, 0);
    json_t *rows = d2g_stack_grist_rows(env, "docA", "Aides");
    json_t *dates = json_object();
    size_t i, n = 0;
    json_t *r;
    json_array_foreach(rows, i, r) {
        char k[32];
        snprintf(k, sizeof(k), "%lld", (long long)json_integer_value(d2g_stack_field(r, "numero")));
        json_object_set(dates, k, json_object_get(dates, k) ? json_null() : d2g_stack_field(r, "date_derniere_modification"));
    }
    json_array_foreach(json_object_get(ds, "dossiers"), i, r) {
        char k[32];
        snprintf(k, sizeof(k), "%lld", (long long)json_integer_value(json_object_get(r, "number")));
        json_t *d = json_object_get(dates, k);
        double want = (double)(json_integer_value(json_object_get(r, "updatedAtMs")) / 1000);
        n += json_is_number(d) && json_number_value(d) == want; /* once, and current */
    }
    json_decref(dates);
    json_decref(rows);
    json_decref(ds);
    return n;
}

/*
 * A proxy in front of the document that fails every other request with an HTML page
 * echoing the API key, while 400 dossiers change: every change still lands, the
 * backoff holds (no storm of retries), the key is in no log. The schema exists already
 * (made before the proxy flapped): a schema change is never re-sent without reading
 * the schema again (a blind re-send can make Aides2), so against a strict alternation
 * every re-send would meet the failing turn; data upserts are safe to re-send.
 */
static void test_alternating_proxy(void **state) {
    d2g_testenv_t *env = *state;
    char cfg[600], log[512];
    d2g_test_proc_t producer, worker;
    start_emulators(env, "", "[{\"number\": 1301, \"dossiers\": 400}]");
    if (!emulator_has_modes(env))
        skip();
    assert_int_equal(d2g_test_write_config(env, "ds2grist.json", PROC, 400, 8, "", cfg, sizeof(cfg)), 0);
    d2g_stack_spawn(env, &worker, D2G_WORKER_BIN, "worker", cfg);
    d2g_stack_spawn(env, &producer, D2G_PRODUCER_BIN, "producer", cfg);
    assert_int_equal(d2g_stack_wait_synced(env, "docA", "Aides", 1301, 120), 400);
    json_decref(d2g_stack_grist_do(env, "POST", "/admin/stats/reset", NULL));
    json_decref(d2g_stack_grist_do(env, "POST", "/admin/docs/docA/mode",
                                   "{\"mode\": \"alternate\", \"status\": 502, \"body\": \"html-echo\"}"));
    json_decref(d2g_stack_ds_do(env, "POST", "/admin/procedures/1301/touch", "{\"count\": 400}"));
    int64_t t0 = d2g_clock_mono_ms();
    size_t current = 0;
    for (int64_t end = t0 + 180000; d2g_clock_mono_ms() < end; d2g_test_sleep_ms(500))
        if ((current = rows_current(env, 1301)) == 400)
            break;
    double took = (double)(d2g_clock_mono_ms() - t0) / 1000.0;
    json_t *s = d2g_stack_grist_do(env, "GET", "/admin/stats", NULL);
    long long requests = json_integer_value(json_object_get(json_object_get(json_object_get(s, "docs"), "docA"), "requests"));
    json_decref(s);
    d2g_test_proc_stop(&producer);
    d2g_test_proc_stop(&worker);
    snprintf(log, sizeof(log), "%s/worker.log", env->dir);
    size_t retries = count_lines(log, "grist_retry"), all = count_lines(log, "\"level\"");
    printf("# a proxy failing every other request: 400 changed dossiers current in Grist after %.1f s (%zu), "
           "%lld requests, %zu retry log lines, %zu lines in all\n", took, current, requests, retries, all);
    assert_int_equal(current, 400);
    assert_true(retries <= 20);
    assert_false(file_has(log, GKEY));
}

int main(void) {
    d2g_test_filter_from_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_remove_new_block, d2g_stack_setup_kafka, d2g_stack_teardown),
        cmocka_unit_test_setup_teardown(test_big_numbers, d2g_stack_setup_kafka, d2g_stack_teardown),
        cmocka_unit_test_setup_teardown(test_secret_in_error, d2g_stack_setup_kafka, d2g_stack_teardown),
        cmocka_unit_test_setup_teardown(test_parked_and_back, d2g_stack_setup_kafka, d2g_stack_teardown),
        cmocka_unit_test_setup_teardown(test_schema_after_timeout, d2g_stack_setup_kafka, d2g_stack_teardown),
        cmocka_unit_test_setup_teardown(test_alternating_proxy, d2g_stack_setup_kafka, d2g_stack_teardown),
        cmocka_unit_test_setup_teardown(test_refused_repeatedly, d2g_stack_setup_kafka, d2g_stack_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
