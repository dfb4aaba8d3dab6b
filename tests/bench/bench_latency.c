/*
 * bench_latency.c - how long a single change takes to cross an idle worker: from the
 * moment its message is handed to Kafka to the moment its row can be read in Grist.
 * Printed figures only.
 *
 *   bench_latency [--changes N] [--worker-config '"linger_ms": 250, ...']
 *
 * One worker (its default configuration unless told), the Grist emulator with its cost
 * model (grist-core's), the Kafka mock, Redis. After one warm-up dossier (the tables are
 * created then), N changes, one at a time and each alone in the pipeline, at random
 * intervals of 0.2 to 0.8 s so that none lines up with the worker's linger: each is a
 * new version of one of 20 dossiers, found in Grist by its modification date. The
 * delay is read by polling the emulator every 5 ms (the figures are up to 5 ms late).
 * The target: p99 <= 1 s with no backlog.
 */
#include "stack.h"
#include "testenv.h"

#include "ds2grist/clock.h"

#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOKEN "latency-ds-token"
#define GKEY "latency-grist-key"

static d2g_testenv_t *running; /* stopped by die(): no process left behind */

static void die(const char *what) {
    fprintf(stderr, "bench_latency: %s\n", what);
    if (running)
        d2g_testenv_stop(running);
    exit(1);
}

static int cmp_ll(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return x < y ? -1 : x > y;
}

/* A dossier version as the producer would emit it: second s of the day is its date. */
static char *envelope(long long number, int s) {
    char *text = malloc(2048);
    snprintf(text, 2048,
             "{\"v\":1,\"kind\":\"upsert\",\"procedure\":1501,\"number\":%lld,"
             "\"modified\":\"2026-01-01T%02d:%02d:%02d+01:00\",\"fetched_at\":\"x\","
             "\"dossier\":{\"number\":%lld,\"id\":\"d%lld\",\"state\":\"en_construction\","
             "\"dateDerniereModification\":\"2026-01-01T%02d:%02d:%02d+01:00\","
             "\"champs\":[{\"__typename\":\"TextChamp\",\"id\":\"t\",\"champDescriptorId\":\"Q2hhbXAtNzg=\","
             "\"label\":\"Nom\",\"stringValue\":\"version %d\"}]}}",
             number, s / 3600, s / 60 % 60, s % 60, number, number, s / 3600, s / 60 % 60, s % 60, s);
    return text;
}

/* 1 if the dossier's row holds the version of second s. */
static int landed(d2g_testenv_t *env, long long number, int s) {
    char url[512], *resp = NULL;
    snprintf(url, sizeof(url),
             "%s/api/docs/docL/tables/Suivi/records?filter=%%7B%%22numero%%22%%3A%%5B%lld%%5D%%7D",
             env->grist_url, number);
    int st = d2g_test_http("GET", url, GKEY, NULL, &resp);
    json_t *j = st == 200 && resp ? json_loads(resp, 0, NULL) : NULL;
    free(resp);
    json_t *rec = json_array_get(json_object_get(j, "records"), 0);
    json_t *d = json_object_get(json_object_get(rec, "fields"), "date_derniere_modification");
    /* 2026-01-01T00:00:00+01:00 is 1767222000 */
    int ok = json_is_number(d) && json_number_value(d) == 1767222000.0 + s;
    json_decref(j);
    return ok;
}

int main(int argc, char **argv) {
    int changes = 100;
    const char *worker_json = "";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--changes") && i + 1 < argc)
            changes = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--worker-config") && i + 1 < argc)
            worker_json = argv[++i];
        else {
            fprintf(stderr, "usage: bench_latency [--changes N] [--worker-config JSON-MEMBERS]\n");
            return 2;
        }
    }
    if (changes < 1 || changes > 20000)
        die("--changes 1-20000");
    d2g_testenv_t *env = calloc(1, sizeof(*env));
    void *state = env;
    setenv("D2G_TEST_DS_TOKEN", TOKEN, 1);
    setenv("D2G_TEST_GRIST_KEY", GKEY, 1);
    setenv("DS2GRIST_LOG_LEVEL", "warn", 1);
    running = env;
    if (d2g_testenv_init(env) || d2g_testenv_start_redis(env) || d2g_testenv_start_kafka(env, 8))
        die("Redis or the Kafka mock did not start");
    if (d2g_testenv_start_ds(env, "{\"procedures\": [{\"number\": 1501, \"dossiers\": 0}],"
                                  " \"tokens\": [{\"name\": \"main\", \"secret\": \"" TOKEN "\", \"procedures\": \"*\"}]}") ||
        d2g_testenv_start_grist(env, "{\"docs\": [{\"id\": \"docL\", \"keys\": [\"" GKEY "\"]}]}"))
        die("the emulators did not start");
    char cfg[600], extra[400];
    snprintf(extra, sizeof(extra), "\"worker\": {%s}", worker_json);
    if (d2g_test_write_config(env, "ds2grist.json",
                              "[{\"number\": 1501, \"ds_token\": \"main\", \"grist_server\": \"g\","
                              " \"document\": \"docL\", \"table_prefix\": \"Suivi\"}]",
                              400, 8, extra, cfg, sizeof(cfg)))
        die("configuration");
    d2g_test_proc_t worker;
    char *wargv[] = {(char *)D2G_WORKER_BIN, "--config", cfg, NULL};
    if (d2g_test_proc_spawn(env, &worker, "worker", wargv))
        die("worker");

    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", env->kafka_bootstrap, errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "linger.ms", "0", errstr, sizeof(errstr));
    rd_kafka_t *p = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!p)
        die(errstr);
    long long *lat = calloc((size_t)changes + 1, sizeof(long long));
    srand(7);
    int s = 0;
    for (int i = -1; i < changes; i++) { /* -1: the warm-up (tables created) */
        long long number = 1 + (i < 0 ? 0 : i % 20);
        s++;
        char key[48], *e = envelope(number, s);
        snprintf(key, sizeof(key), "1501:%lld", number);
        int64_t t0 = d2g_clock_mono_ms();
        if (rd_kafka_producev(p, RD_KAFKA_V_TOPIC("ds2grist.dossiers"), RD_KAFKA_V_KEY(key, strlen(key)),
                              RD_KAFKA_V_VALUE(e, strlen(e)), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                              RD_KAFKA_V_END))
            die("produce");
        free(e);
        int64_t limit = t0 + (i < 0 ? 60000 : 30000);
        while (!landed(env, number, s)) {
            rd_kafka_poll(p, 0);
            if (d2g_clock_mono_ms() > limit)
                die("a change did not land in 30 s");
            d2g_test_sleep_ms(5);
        }
        if (i >= 0)
            lat[i] = d2g_clock_mono_ms() - t0;
        d2g_test_sleep_ms(200 + rand() % 600);
    }
    rd_kafka_flush(p, 5000);
    rd_kafka_destroy(p);
    d2g_test_proc_stop(&worker);
    qsort(lat, (size_t)changes, sizeof(long long), cmp_ll);
    long long sum = 0;
    for (int i = 0; i < changes; i++)
        sum += lat[i];
#define PCT(q) lat[(size_t)((double)(changes - 1) * (q) + 0.5)]
    printf("# bench_latency: %d single changes, each alone, into an idle worker (%s)\n", changes,
           *worker_json ? worker_json : "default configuration: linger_ms 250");
    printf("# from Kafka to a row readable in Grist: p50 %lld ms, p90 %lld ms, p99 %lld ms, max %lld ms, "
           "mean %.0f ms (target: p99 <= 1000 ms)\n",
           PCT(0.50), PCT(0.90), PCT(0.99), lat[changes - 1], (double)sum / changes);
    printf("RESULT changes=%d p50_ms=%lld p90_ms=%lld p99_ms=%lld max_ms=%lld\n", changes, PCT(0.50), PCT(0.90),
           PCT(0.99), lat[changes - 1]);
    free(lat);
    running = NULL;
    d2g_stack_teardown(&state);
    return 0;
}
