/*
 * bench_worker.c - how fast the workers fill Grist documents, against the
 * Grist emulator's cost model (grist-core 1.7.17: a write costs a fixed part
 * + per row + per cell, one write applied at a time per document, 10
 * requests in flight at most; tests/grist-emulator/README.md).
 *
 * The producer first puts every dossier of the DS emulator into Kafka and
 * stops; then the workers start, and the clock runs until every document
 * holds every dossier and the repetition rows have settled. Printed: rows/s,
 * the cost model's maximum for the same rows, their ratio, requests, mean
 * body per table, 429s, the workers' peak memory and CPU per dossier, and
 * the schema creation's cost per document. Nothing is asserted: run it with
 * scripts/bench.sh (its smoke run under CTest checks the exit code only).
 *
 * The clock runs from the first Grist request (the workers have joined the
 * consumer group) to the last row; the start-up before it is printed apart.
 * The maximum: each document's writes, as the emulator charged them, but
 * with the fixed cost paid once per ideal body (each table's PUT bytes cut
 * in bodies of Grist's 1 MB limit) instead of once per request, the document
 * never idle, documents in parallel: max over documents of
 *   busyMs - writeFixedMs x writes + writeFixedMs x sum_t ceil(PUT bytes_t / limit).
 * It counts the rows and cells actually written (updates and schema included).
 *
 *   bench_worker [--dossiers N] [--documents D] [--workers W] [--permits P]
 *                [--shape wide|narrow] [--many] [--worker-config JSON-MEMBERS]
 *   wide: the DS emulator's full form (a 61-column Dossiers table + repetition rows);
 *   narrow: 10 champs, no repetition; --many: 1,000 documents x 20 dossiers.
 */
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ds2grist/clock.h"
#include "testenv.h"

#define TOKEN "bench-ds-token"
#define GKEY "bench-grist-key"
#define MAX_DOCS 1000
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

/* A growing string. */
typedef struct {
    char *s;
    size_t len, cap;
} sbuf_t;

static void sb_printf(sbuf_t *b, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0)
            die("vsnprintf");
        if (b->s && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = (b->cap + (size_t)n + 1) * 2;
        char *s = realloc(b->s, cap);
        if (!s)
            die("out of memory");
        b->s = s;
        b->cap = cap;
    }
}

/* The mock broker keeps at most 5 MiB per partition (oldest dropped first):
 * enough partitions keep every dossier of the run (at least 32; more for a
 * large backlog: a wide message is about 10.5 kB, a narrow one about 2 kB). */
static int partitions_for(int dossiers, int narrow) {
    long long bytes = (long long)dossiers * (narrow ? 3 : 12) * 1024;
    long long n = bytes / (3 * 1024 * 1024) + 1;
    return n < 32 ? 32 : n > 1024 ? 1024 : (int)n;
}

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
static double jnum(json_t *o, const char *key) {
    return json_number_value(json_object_get(o, key));
}

/* Totals over the PUT .../records paths of one kind of table. */
typedef struct {
    long long requests, bytes;
    double busy_ms;
} put_totals_t;

/* "PUT /tables/<T>/records" -> T in table (NUL-terminated), or 0. */
static int put_records_table(const char *path, char *table, size_t len) {
    const char *pre = "PUT /tables/", *suf = "/records";
    size_t pl = strlen(path), n;
    if (strncmp(path, pre, strlen(pre)) || pl < strlen(pre) + strlen(suf) ||
        strcmp(path + pl - strlen(suf), suf))
        return 0;
    n = pl - strlen(pre) - strlen(suf);
    if (n == 0 || n >= len || memchr(path + strlen(pre), '/', n))
        return 0;
    memcpy(table, path + strlen(pre), n);
    table[n] = '\0';
    return 1;
}

int main(int argc, char **argv) {
    int dossiers = 8000, documents = 1, workers = 2, permits = 8, many = 0;
    const char *shape = "wide";
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
        else if (!strcmp(argv[i], "--shape") && v)
            shape = v, i++;
        else if (!strcmp(argv[i], "--many"))
            many = 1, documents = 1000, dossiers = 20000;
        else if (!strcmp(argv[i], "--worker-config") && v)
            worker_json = v, i++;
        else {
            fprintf(stderr, "usage: bench_worker [--dossiers N] [--documents D] [--workers W] "
                            "[--permits P] [--shape wide|narrow] [--many] "
                            "[--worker-config '\"max_buffered\": 1000, ...']\n");
            return 2;
        }
    }
    int narrow = !strcmp(shape, "narrow");
    if (dossiers < documents || documents < 1 || documents > MAX_DOCS || workers < 1 ||
        workers > MAX_WORKERS || permits < 1 || (!narrow && strcmp(shape, "wide")))
        die("--documents 1-1000, --workers 1-32, --permits >= 1, --shape wide|narrow, at least "
            "one dossier per document");

    int partitions = partitions_for(dossiers, narrow);
    setenv("D2G_TEST_DS_TOKEN", TOKEN, 1);
    setenv("D2G_TEST_GRIST_KEY", GKEY, 1);
    setenv("DS2GRIST_LOG_LEVEL", "warn", 1);
    d2g_testenv_t env;
    memset(&env, 0, sizeof(env));
    running_env = &env;
    if (d2g_testenv_init(&env) || d2g_testenv_start_redis(&env) || d2g_testenv_start_kafka(&env, partitions))
        die("cannot start Redis and Kafka");

    /* One procedure per document, the dossiers shared out. */
    sbuf_t ds_procs = {0}, procs = {0}, docs = {0}, cfgtext = {0};
    for (int d = 0; d < documents; d++) {
        int n = dossiers / documents + (d < dossiers % documents);
        sb_printf(&ds_procs, "%s{\"number\": %d, \"dossiers\": %d%s}", d ? ", " : "", 9001 + d, n,
                  narrow ? ", \"champs\": 10" : "");
        sb_printf(&procs, "%s{\"number\": %d, \"ds_token\": \"main\", \"grist_server\": \"g\","
                          " \"document\": \"doc%d\"}", d ? ", " : "", 9001 + d, d);
        sb_printf(&docs, "%s{\"id\": \"doc%d\", \"keys\": [\"" GKEY "\"]}", d ? ", " : "", d);
    }
    sb_printf(&cfgtext,
              "{\"seed\": 7, \"procedures\": [%s], \"rateLimitPerMinute\": 1000000,"
              " \"tokens\": [{\"name\": \"main\", \"secret\": \"" TOKEN "\", \"procedures\": \"*\"}]}",
              ds_procs.s);
    if (d2g_testenv_start_ds(&env, cfgtext.s))
        die("cannot start the DS emulator");
    cfgtext.len = 0;
    sb_printf(&cfgtext, "{\"docs\": [%s]}", docs.s);
    if (d2g_testenv_start_grist(&env, cfgtext.s))
        die("cannot start the Grist emulator");
    sbuf_t procs_json = {0};
    sb_printf(&procs_json, "[%s]", procs.s);
    char cfg[600], extra[1024];
    snprintf(extra, sizeof(extra), "\"defaults\": {\"poll_interval_s\": 3600}, \"worker\": {%s}",
             worker_json);
    if (d2g_test_write_config(&env, "bench.json", procs_json.s, 1000000, permits, extra, cfg,
                              sizeof(cfg)))
        die("cannot write the configuration");
    free(ds_procs.s);
    free(procs.s);
    free(docs.s);
    free(cfgtext.s);
    free(procs_json.s);

    /* 1. Every dossier into Kafka. */
    printf("# bench_worker: %d dossiers (%s), %d document(s), %d worker(s), %d permits per document\n",
           dossiers, narrow ? "narrow: 10 champs" : "wide: the full form, repetition rows", documents,
           workers, permits);
    fflush(stdout);
    d2g_test_proc_t producer;
    char *pargv[] = {D2G_PRODUCER_BIN, "--config", cfg, NULL};
    if (d2g_test_proc_spawn(&env, &producer, "producer", pargv))
        die("cannot start the producer");
    running[n_running++] = &producer;
    int64_t t0 = d2g_clock_mono_ms();
    long long dropped = 0;
    while (topic_messages(env.kafka_bootstrap, partitions, &dropped) < dossiers) {
        if (d2g_clock_mono_ms() - t0 > 1200000)
            die("the producer did not emit every dossier within 20 minutes");
        if (waitpid(producer.pid, NULL, WNOHANG) == producer.pid)
            die("the producer stopped (its log is in the test directory)");
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
    json_decref(d2g_testenv_grist_admin(&env, "POST", "/stats/reset", NULL));
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
    json_t *st = NULL;
    long long last_rows = -1;
    int64_t last_change = t1, first_request = 0;
    for (;;) {
        json_decref(st);
        st = d2g_testenv_grist_admin(&env, "GET", "/stats", NULL);
        if (!st)
            die("cannot read the Grist emulator's stats");
        long long have = 0, rows = 0, in_flight = 0, reqs = 0;
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
            reqs += jint(o, "requests") + jint(o, "inFlight");
        }
        int64_t now = d2g_clock_mono_ms();
        if (!first_request && reqs > 0)
            first_request = now;
        if (rows != last_rows) {
            last_rows = rows;
            last_change = now;
        }
        /* Done: every dossier there, and the repetition rows settled. */
        if (have >= dossiers && in_flight == 0 && now - last_change >= 1000)
            break;
        if (now - t1 > 1200000)
            die("the workers did not write every dossier within 20 minutes");
        d2g_test_sleep_ms(documents > 16 ? 500 : 50);
    }
    /* The clock: from the first Grist request (the workers have joined the group and
     * fetched) to the last row written; the start-up is printed apart. */
    if (!first_request)
        first_request = t1;
    double elapsed = (double)(last_change - first_request) / 1000.0;
    double startup = (double)(first_request - t1) / 1000.0;
    long rss = 0;
    double cpu = 0;
    for (int i = 0; i < workers; i++) {
        long kb = peak_rss_kb(w[i].pid);
        rss = kb > rss ? kb : rss;
        cpu += cpu_seconds(w[i].pid);
    }

    /* 3. Figures. */
    json_t *settings = json_object_get(st, "settings");
    double fixed = jnum(settings, "writeFixedMs");
    double limit = jnum(settings, "bodyLimitBytes");
    if (limit <= 0)
        limit = 1048576;
    long long rows = 0, writes = 0, requests = 0, sent429 = 0, cells = 0, max_in_flight = 0;
    long long schema_requests = 0, schema_reads = 0;
    double schema_ms = 0, schema_ms_max = 0, ideal_max = 0, busy_total = 0;
    put_totals_t dtab = {0}, ctab = {0}; /* Dossiers tables, child tables */
    for (int d = 0; d < documents; d++) {
        char doc[16], dtable[16];
        snprintf(doc, sizeof(doc), "doc%d", d);
        snprintf(dtable, sizeof(dtable), "D%d", 9001 + d);
        json_t *o = json_object_get(json_object_get(st, "docs"), doc), *n;
        const char *key;
        json_object_foreach(json_object_get(o, "tables"), key, n)
            rows += json_integer_value(n);
        double ideal_fixed = 0, doc_schema = 0;
        json_object_foreach(json_object_get(o, "paths"), key, n) {
            char table[256];
            if (put_records_table(key, table, sizeof(table))) {
                put_totals_t *t = strcmp(table, dtable) ? &ctab : &dtab;
                t->requests += jint(n, "requests");
                t->bytes += jint(n, "bytes");
                t->busy_ms += jnum(n, "busyMs");
                ideal_fixed += fixed * ceil((double)jint(n, "bytes") / limit);
            } else if (!strcmp(key, "POST /tables") ||
                       (strstr(key, "/columns") && strncmp(key, "GET ", 4))) {
                schema_requests += jint(n, "requests");
                doc_schema += jnum(n, "busyMs");
            } else if (!strncmp(key, "GET ", 4) && (!strcmp(key, "GET /tables") || strstr(key, "/columns"))) {
                schema_reads += jint(n, "requests");
            }
        }
        double busy = jnum(o, "busyMs");
        double ideal = busy - fixed * (double)jint(o, "writes") + ideal_fixed;
        ideal_max = ideal > ideal_max ? ideal : ideal_max;
        busy_total += busy;
        schema_ms += doc_schema;
        schema_ms_max = doc_schema > schema_ms_max ? doc_schema : schema_ms_max;
        writes += jint(o, "writes");
        requests += jint(o, "requests");
        sent429 += jint(o, "sent429");
        cells += jint(o, "cellsAdded") + jint(o, "cellsUpdated") + jint(o, "cellsUnchanged");
        max_in_flight = jint(o, "maxInFlight") > max_in_flight ? jint(o, "maxInFlight") : max_in_flight;
        if (documents <= 4)
            printf("#   %s: %lld requests (%lld writes), highest in flight %lld, %lld x 429, Grist busy "
                   "%.2f s (%.0f%% of the run), the model's floor for these rows %.2f s\n",
                   doc, (long long)jint(o, "requests"), (long long)jint(o, "writes"),
                   (long long)jint(o, "maxInFlight"), (long long)jint(o, "sent429"), busy / 1000.0,
                   100.0 * busy / (elapsed * 1000.0), ideal / 1000.0);
    }
    double max_rows_s = ideal_max > 0 ? (double)rows / (ideal_max / 1000.0) : 0;
    double rows_s = (double)rows / elapsed;
    printf("# workers: first Grist request %.2f s after their start; then %d dossiers, %lld rows (%lld "
           "cells) in %.2f s: %.0f rows/s; the model's maximum %.0f rows/s (%.2f s); ratio %.2f\n",
           startup, dossiers, rows, cells, elapsed, rows_s, max_rows_s, ideal_max / 1000.0,
           max_rows_s > 0 ? rows_s / max_rows_s : 0);
    printf("# requests: %lld (%lld writes), %lld x 429, highest in flight on a document %lld\n", requests,
           writes, sent429, max_in_flight);
    printf("# Dossiers tables: %lld PUTs, mean body %.1f kB; child tables: %lld PUTs, mean body %.1f kB\n",
           dtab.requests, dtab.requests ? (double)dtab.bytes / (double)dtab.requests / 1000.0 : 0.0,
           ctab.requests, ctab.requests ? (double)ctab.bytes / (double)ctab.requests / 1000.0 : 0.0);
    printf("# schema: %lld writes (POST tables, POST/PATCH/PUT columns) and %lld reads (GET tables, "
           "columns); per document %.1f writes, %.1f reads and %.1f ms of Grist time (max %.1f ms), %.1f%% "
           "of Grist's time\n",
           schema_requests, schema_reads, (double)schema_requests / documents,
           (double)schema_reads / documents, schema_ms / documents, schema_ms_max,
           busy_total > 0 ? 100.0 * schema_ms / busy_total : 0.0);
    printf("# workers: peak memory %.1f MB (the largest), CPU %.1f s in all (%.3f ms per dossier)\n",
           (double)rss / 1024.0, cpu, 1000.0 * cpu / dossiers);
    /* One line for scripts/bench.sh's table. */
    printf("RESULT shape=%s documents=%d workers=%d dossiers=%d rows=%lld startup_s=%.2f seconds=%.2f rows_s=%.0f "
           "max_rows_s=%.0f ratio=%.2f requests=%lld dossiers_body_kB=%.1f child_body_kB=%.1f "
           "r429=%lld rss_MB=%.1f cpu_ms_per_dossier=%.3f schema_ms_per_doc=%.1f "
           "schema_requests_per_doc=%.1f schema_reads_per_doc=%.1f many=%d\n",
           shape, documents, workers, dossiers, rows, startup, elapsed, rows_s, max_rows_s,
           max_rows_s > 0 ? rows_s / max_rows_s : 0, requests,
           dtab.requests ? (double)dtab.bytes / (double)dtab.requests / 1000.0 : 0.0,
           ctab.requests ? (double)ctab.bytes / (double)ctab.requests / 1000.0 : 0.0, sent429,
           (double)rss / 1024.0, 1000.0 * cpu / dossiers, schema_ms / documents,
           (double)schema_requests / documents, (double)schema_reads / documents, many);
    json_decref(st);
    for (int i = 0; i < workers; i++)
        d2g_test_proc_stop(&w[i]);
    d2g_testenv_stop(&env);
    return 0;
}
