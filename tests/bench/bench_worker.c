/*
 * bench_worker.c - how fast the workers fill Grist documents, measured
 * against the Grist emulator's cost model (a write costs writeFixedMs +
 * writePerRowMs per row, one write at a time per document, 10 requests in
 * flight at most: the figures the notes measured on a real grist-core).
 *
 * The producer first puts every dossier of the DS emulator into Kafka and
 * stops; then the workers start, and the clock runs until every document
 * holds every dossier. Printed: dossiers/s and rows/s (all tables), Grist
 * requests and rows per write, the highest number of requests in flight per
 * document and the 429s, the share of the wall time each document spent
 * writing according to the cost model (near 100%: Grist is the limit, as it
 * should be), and the workers' peak resident memory. Nothing is asserted:
 * run it with scripts/bench.sh.
 *
 *   bench_worker [--dossiers N] [--documents D] [--workers W] [--permits P]
 *                [--worker-config JSON-MEMBERS]   e.g. '"max_buffered": 1000' 
 */
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ds2grist/clock.h"
#include "testenv.h"

#define TOKEN "bench-ds-token"
#define GKEY "bench-grist-key"
#define MAX_DOCS 16
#define MAX_WORKERS 32

/* What to stop when the run fails half-way (else it would outlive it). */
static d2g_testenv_t *running_env;
static d2g_test_proc_t *running[MAX_WORKERS + 1];
static int n_running;

static void die(const char *what) {
    fprintf(stderr, "bench_worker: %s\n", what);
    for (int i = 0; i < n_running; i++)
        d2g_test_proc_kill(running[i]);
    if (running_env)
        d2g_testenv_stop(running_env);
    exit(1);
}

/* The mock broker keeps at most 5 MiB per partition (oldest dropped first):
 * enough partitions keep every dossier of the run. */
#define PARTITIONS 32

/* Messages in the dossier topic (sum of the partitions' high watermarks);
 * *dropped gets those the broker no longer has (low watermarks). */
static long long topic_messages(const char *bootstrap, int partitions, long long *dropped) {
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, errstr, sizeof(errstr)) ||
        rd_kafka_conf_set(conf, "group.id", "bench-watermarks", errstr, sizeof(errstr)))
        die(errstr);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    if (!rk)
        die(errstr);
    long long total = 0;
    *dropped = 0;
    for (int p = 0; p < partitions; p++) {
        int64_t lo, hi;
        if (rd_kafka_query_watermark_offsets(rk, "ds2grist.dossiers", p, &lo, &hi, 5000) == 0) {
            total += hi;
            *dropped += lo;
        }
    }
    rd_kafka_destroy(rk);
    return total;
}

/* Peak resident memory of a process, in kB (VmHWM), or -1. */
static long peak_rss_kb(pid_t pid) {
    char path[64], line[256];
    long kb = -1;
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmHWM: %ld kB", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

/* CPU time a process used so far, in seconds (user + system), or -1. */
static double cpu_seconds(pid_t pid) {
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* fields after "pid (comm)" */
    unsigned long ut = 0, st = 0;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static json_int_t jint(json_t *o, const char *key) {
    return json_integer_value(json_object_get(o, key));
}

int main(int argc, char **argv) {
    int dossiers = 20000, documents = 1, workers = 2, permits = 8;
    const char *worker_json = ""; /* extra members of the "worker" section */
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(argv[i], "--dossiers") && v)
            dossiers = atoi(v), i++;
        else if (!strcmp(argv[i], "--documents") && v)
            documents = atoi(v), i++;
        else if (!strcmp(argv[i], "--workers") && v)
            workers = atoi(v), i++;
        else if (!strcmp(argv[i], "--permits") && v)
            permits = atoi(v), i++;
        else if (!strcmp(argv[i], "--worker-config") && v)
            worker_json = v, i++;
        else {
            fprintf(stderr, "usage: bench_worker [--dossiers N] [--documents D] [--workers W] "
                            "[--permits P] [--worker-config '\"max_buffered\": 1000, ...']\n");
            return 2;
        }
    }
    if (dossiers < documents || documents < 1 || documents > MAX_DOCS || workers < 1 ||
        workers > MAX_WORKERS || permits < 1)
        die("--documents 1-16, --workers 1-32, --permits >= 1, at least one dossier per document");

    setenv("D2G_TEST_DS_TOKEN", TOKEN, 1);
    setenv("D2G_TEST_GRIST_KEY", GKEY, 1);
    setenv("DS2GRIST_LOG_LEVEL", "warn", 1);
    d2g_testenv_t env;
    memset(&env, 0, sizeof(env));
    running_env = &env;
    if (d2g_testenv_init(&env) || d2g_testenv_start_redis(&env) || d2g_testenv_start_kafka(&env, PARTITIONS))
        die("cannot start Redis and Kafka");

    /* One procedure per document, the dossiers shared out. */
    char ds_procs[2048] = "", procs[4096] = "", docs[2048] = "", cfgtext[4096];
    size_t a = 0, b = 0, c = 0;
    for (int d = 0; d < documents; d++) {
        int n = dossiers / documents + (d < dossiers % documents);
        a += (size_t)snprintf(ds_procs + a, sizeof(ds_procs) - a, "%s{\"number\": %d, \"dossiers\": %d}",
                              d ? ", " : "", 9001 + d, n);
        b += (size_t)snprintf(procs + b, sizeof(procs) - b,
                              "%s{\"number\": %d, \"ds_token\": \"main\", \"grist_server\": \"g\","
                              " \"document\": \"doc%d\"}", d ? ", " : "", 9001 + d, d);
        c += (size_t)snprintf(docs + c, sizeof(docs) - c, "%s{\"id\": \"doc%d\", \"keys\": [\"" GKEY "\"]}",
                              d ? ", " : "", d);
    }
    snprintf(cfgtext, sizeof(cfgtext),
             "{\"seed\": 7, \"procedures\": [%s], \"rateLimitPerMinute\": 100000,"
             " \"tokens\": [{\"name\": \"main\", \"secret\": \"" TOKEN "\", \"procedures\": \"*\"}]}",
             ds_procs);
    if (d2g_testenv_start_ds(&env, cfgtext))
        die("cannot start the DS emulator");
    snprintf(cfgtext, sizeof(cfgtext), "{\"docs\": [%s]}", docs);
    if (d2g_testenv_start_grist(&env, cfgtext))
        die("cannot start the Grist emulator");
    char procs_json[4200], cfg[600], extra[1024];
    snprintf(procs_json, sizeof(procs_json), "[%s]", procs);
    snprintf(extra, sizeof(extra), "\"defaults\": {\"poll_interval_s\": 3600}, \"worker\": {%s}",
             worker_json);
    if (d2g_test_write_config(&env, "bench.json", procs_json, 100000, permits, extra, cfg,
                              sizeof(cfg)))
        die("cannot write the configuration");

    /* 1. Every dossier into Kafka. */
    printf("# bench_worker: %d dossiers, %d document(s), %d worker(s), %d permits per document\n",
           dossiers, documents, workers, permits);
    fflush(stdout);
    d2g_test_proc_t producer;
    char *pargv[] = {D2G_PRODUCER_BIN, "--config", cfg, NULL};
    if (d2g_test_proc_spawn(&env, &producer, "producer", pargv))
        die("cannot start the producer");
    running[n_running++] = &producer;
    int64_t t0 = d2g_clock_mono_ms();
    long long dropped = 0;
    while (topic_messages(env.kafka_bootstrap, PARTITIONS, &dropped) < dossiers) {
        if (d2g_clock_mono_ms() - t0 > 600000)
            die("the producer did not emit every dossier within 10 minutes");
        d2g_test_sleep_ms(200);
    }
    d2g_test_proc_stop(&producer);
    n_running = 0;
    if (dropped)
        die("the mock broker dropped messages (it keeps 5 MiB per partition): fewer dossiers");
    printf("# producer: %d dossiers in Kafka after %.1f s\n", dossiers,
           (double)(d2g_clock_mono_ms() - t0) / 1000.0);
    fflush(stdout);

    /* 2. The workers, against the clock. */
    d2g_test_proc_t w[MAX_WORKERS];
    char *wargv[] = {D2G_WORKER_BIN, "--config", cfg, NULL};
    int64_t t1 = d2g_clock_mono_ms();
    for (int i = 0; i < workers; i++) {
        char name[32];
        snprintf(name, sizeof(name), "worker-%d", i);
        if (d2g_test_proc_spawn(&env, &w[i], name, wargv))
            die("cannot start a worker");
        running[n_running++] = &w[i];
    }
    char url[300];
    snprintf(url, sizeof(url), "%s/admin/stats", env.grist_url);
    json_t *st = NULL;
    double elapsed = 0;
    long long last_rows = -1;
    int64_t last_change = t1;
    for (;;) {
        json_decref(st);
        st = d2g_test_json("GET", url, NULL);
        long long have = 0, rows = 0, in_flight = 0;
        for (int d = 0; d < documents; d++) {
            char doc[16], table[16];
            snprintf(doc, sizeof(doc), "doc%d", d);
            snprintf(table, sizeof(table), "D%d", 9001 + d);
            json_t *o = json_object_get(json_object_get(st, "docs"), doc), *n;
            const char *tid;
            have += jint(json_object_get(o, "tables"), table);
            json_object_foreach(json_object_get(o, "tables"), tid, n)
                rows += json_integer_value(n);
            in_flight += jint(o, "inFlight");
        }
        int64_t now = d2g_clock_mono_ms();
        if (rows != last_rows) {
            last_rows = rows;
            last_change = now;
        }
        /* Done: every dossier there, and the repetition rows settled. */
        if (have >= dossiers && in_flight == 0 && now - last_change >= 1000)
            break;
        if (now - t1 > 900000)
            die("the workers did not write every dossier within 15 minutes");
        d2g_test_sleep_ms(50);
    }
    elapsed = (double)(last_change - t1) / 1000.0;
    long rss = 0;
    double cpu = 0;
    for (int i = 0; i < workers; i++) {
        long kb = peak_rss_kb(w[i].pid);
        rss = kb > rss ? kb : rss;
        cpu += cpu_seconds(w[i].pid);
    }

    json_t *settings = json_object_get(st, "settings");
    double fixed = json_number_value(json_object_get(settings, "writeFixedMs"));
    double per_row = json_number_value(json_object_get(settings, "writePerRowMs"));
    double per_upd = json_number_value(json_object_get(settings, "writePerUpdatedRowMs"));
    long long rows = 0, writes = 0, added = 0, requests = 0, sent429 = 0;
    printf("# workers: %d dossiers written in %.2f s: %.0f dossiers/s\n", dossiers, elapsed,
           dossiers / elapsed);
    for (int d = 0; d < documents; d++) {
        char doc[16];
        snprintf(doc, sizeof(doc), "doc%d", d);
        json_t *o = json_object_get(json_object_get(st, "docs"), doc);
        long long doc_rows = 0;
        const char *tid;
        json_t *n;
        json_object_foreach(json_object_get(o, "tables"), tid, n)
            doc_rows += json_integer_value(n);
        double busy = (double)jint(o, "writes") * fixed + (double)jint(o, "rowsAdded") * per_row +
                      (double)jint(o, "rowsUpdated") * per_upd;
        printf("#   %s: %lld rows in %lld tables, %lld requests (%lld writes, %.0f rows per write), "
               "highest in flight %lld, %lld x 429, Grist busy writing %.0f%% of the time\n",
               doc, doc_rows, (long long)json_object_size(json_object_get(o, "tables")),
               (long long)jint(o, "requests"), (long long)jint(o, "writes"),
               jint(o, "writes") ? (double)(jint(o, "rowsAdded") + jint(o, "rowsUpdated")) /
                                       (double)jint(o, "writes") : 0.0,
               (long long)jint(o, "maxInFlight"), (long long)jint(o, "sent429"),
               100.0 * busy / (elapsed * 1000.0));
        rows += doc_rows;
        writes += jint(o, "writes");
        added += jint(o, "rowsAdded");
        requests += jint(o, "requests");
        sent429 += jint(o, "sent429");
    }
    printf("# all documents: %lld rows (dossiers and repetition rows), %.0f rows/s; %lld Grist "
           "requests, %lld writes, %lld x 429\n", rows, (double)rows / elapsed, requests, writes,
           sent429);
    printf("# workers: peak memory %.1f MB (the largest), CPU %.1f s in all (%.2f ms per dossier)\n",
           (double)rss / 1024.0, cpu, 1000.0 * cpu / dossiers);
    (void)added;
    json_decref(st);
    for (int i = 0; i < workers; i++)
        d2g_test_proc_stop(&w[i]);
    d2g_testenv_stop(&env);
    return 0;
}
