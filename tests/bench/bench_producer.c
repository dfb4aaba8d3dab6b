/*
 * bench_producer.c - the producer at national scale: many procedures over a
 * few DS tokens, most of them quiet, a few changing, two replicas, one of
 * them killed. Against the DS emulator (procedures generated lazily), a real
 * redis-server and the Kafka mock broker.
 *
 * The procedures start in steady state: their cursors are seeded in Redis as
 * if a first run had just ended (the initial backfill is test_producer's
 * subject), so what is measured is the cost of keeping them fresh, label
 * passes included (the last ones spread over the past labels_interval_s, the
 * default 900 s). Phases:
 *
 *   idle       every procedure quiet for 2 intervals: DS requests per
 *              procedure per interval, per token per minute; each replica's
 *              CPU and resident memory; Redis commands per second
 *   changes    for 2 intervals, a dossier created every 300 ms in a random
 *              procedure: freshness (its message's fetched_at minus its
 *              creation), p50 and p99
 *   take-over  one replica SIGKILLed: the time until every procedure has been
 *              checked again (cursor last_poll_ms after the kill)
 *
 * Prints figures; asserts nothing (exit 1 only when the run itself breaks).
 *
 *   bench_producer [--procedures N] [--tokens T] [--replicas R] [--interval S]
 *                  [--lease S] [--batch B]
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ds2grist/clock.h"
#include "ds2grist/envelope.h"
#include "ds2grist/err.h"
#include "ds2grist/redis.h"
#include "testenv.h"

#define MAX_REPLICAS 8
#define MAX_TOKENS 200
#define FIRST 100001

static d2g_testenv_t *running_env;
static d2g_test_proc_t replicas[MAX_REPLICAS];
static int n_replicas;

static void die(const char *what) {
    fprintf(stderr, "bench_producer: %s\n", what);
    for (int i = 0; i < n_replicas; i++)
        if (replicas[i].pid)
            d2g_test_proc_kill(&replicas[i]);
    if (running_env)
        d2g_testenv_stop(running_env);
    exit(1);
}

static long status_kb(pid_t pid, const char *field) {
    char path[64], line[256];
    long kb = -1;
    size_t flen = strlen(field);
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f))
        if (!strncmp(line, field, flen) && line[flen] == ':') {
            kb = atol(line + flen + 1);
            break;
        }
    fclose(f);
    return kb;
}

static double cpu_seconds(pid_t pid) {
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')');
    unsigned long ut = 0, st = 0;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static json_t *ds_json(d2g_testenv_t *env, const char *method, const char *path, const char *body) {
    char url[256], *resp = NULL;
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", env->ds_port, path);
    int st = d2g_test_http(method, url, NULL, body, &resp);
    if (st < 200 || st >= 300) {
        free(resp);
        die("DS emulator admin request failed");
    }
    json_t *j = json_loads(resp, 0, NULL);
    free(resp);
    if (!j)
        die("DS emulator admin answer is not JSON");
    return j;
}

static long long redis_commands(d2g_redis_t *r) {
    char err[D2G_ERRLEN];
    redisReply *rep = d2g_redis_cmd(r, err, sizeof(err), "INFO stats");
    if (!rep)
        die(err);
    long long n = -1;
    const char *at = rep->type == REDIS_REPLY_STRING ? strstr(rep->str, "total_commands_processed:") : NULL;
    if (at)
        n = atoll(at + strlen("total_commands_processed:"));
    freeReplyObject(rep);
    return n;
}

/* Cursors as a first run leaves them: nothing after "now"; the last label passes spread
 * over the past 15 minutes (labels_interval_s), so that they fall due all along the run. */
static void seed_cursors(d2g_redis_t *r, int n) {
    char err[D2G_ERRLEN], k[128], since[D2G_TIME_BUFLEN], now[24], labels_at[24];
    int64_t wall = d2g_clock_wall_ms();
    unsigned seed = 11;
    d2g_clock_format_ms(wall, since);
    snprintf(now, sizeof(now), "%lld", (long long)wall);
    redisContext *c = d2g_redis_context(r);
    if (!c)
        die("redis not connected");
    for (int i = 0; i < n; i++) {
        d2g_redis_key(r, k, sizeof(k), "{proc:%d}:cursor", FIRST + i);
        snprintf(labels_at, sizeof(labels_at), "%lld", (long long)(wall - rand_r(&seed) % 900000));
        const char *argv[] = {"HSET", k, "updated_since", since, "deleted_since", since,
                              "labels_at_ms", labels_at, "last_poll_ms", now};
        redisAppendCommandArgv(c, 10, argv, NULL);
    }
    for (int i = 0; i < n; i++) {
        void *v;
        if (redisGetReply(c, &v) != REDIS_OK)
            die("redis: seeding the cursors failed");
        freeReplyObject(v);
    }
    (void)err;
}

/* How many procedures were checked (last_poll_ms) at or after since_ms. */
static int checked_since(d2g_redis_t *r, int n, int64_t since_ms) {
    char k[128];
    redisContext *c = d2g_redis_context(r);
    if (!c)
        die("redis not connected");
    for (int i = 0; i < n; i++) {
        d2g_redis_key(r, k, sizeof(k), "{proc:%d}:cursor", FIRST + i);
        const char *argv[] = {"HGET", k, "last_poll_ms"};
        redisAppendCommandArgv(c, 3, argv, NULL);
    }
    int ok = 0;
    for (int i = 0; i < n; i++) {
        void *v;
        if (redisGetReply(c, &v) != REDIS_OK)
            die("redis: reading the cursors failed");
        redisReply *rep = v;
        ok += rep->type == REDIS_REPLY_STRING && atoll(rep->str) >= since_ms;
        freeReplyObject(rep);
    }
    return ok;
}

/* The procedures a replica checks, from the last "replicas_changed" line of its log, or -1;
 * *at_ms (if not NULL) gets that line's time (wall ms), 0 if none. */
static long owned_from_log(const d2g_testenv_t *env, int i, int64_t *at_ms) {
    char path[512], line[4096];
    snprintf(path, sizeof(path), "%s/producer-%d.log", env->dir, i);
    FILE *f = fopen(path, "r");
    long owned = -1;
    if (at_ms)
        *at_ms = 0;
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f)) {
        const char *at = strstr(line, "this one checks ");
        if (strstr(line, "replicas_changed") && at) {
            owned = atol(at + strlen("this one checks "));
            json_t *j = json_loads(line, 0, NULL);
            double t;
            int is_int;
            if (at_ms && j && d2g_clock_parse_iso(json_string_value(json_object_get(j, "time")), &t, &is_int) == 0)
                *at_ms = (int64_t)(t * 1000);
            json_decref(j);
        }
    }
    fclose(f);
    return owned;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Requests per token since the last reset: min, mean, max. */
static void per_token(json_t *counters, int tokens, double *mn, double *mean, double *mx) {
    json_t *bt = json_object_get(counters, "byToken");
    *mn = 1e18, *mx = 0, *mean = 0;
    for (int t = 0; t < tokens; t++) {
        char name[32];
        snprintf(name, sizeof(name), "tok%d", t);
        double v = (double)json_integer_value(json_object_get(bt, name));
        *mn = v < *mn ? v : *mn;
        *mx = v > *mx ? v : *mx;
        *mean += v / tokens;
    }
}

int main(int argc, char **argv) {
    int procedures = 10000, tokens = 20, nrep = 2, interval = 30, lease = 30, batch = 50;
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int *dst = !strcmp(argv[i], "--procedures") ? &procedures : !strcmp(argv[i], "--tokens") ? &tokens
                   : !strcmp(argv[i], "--replicas") ? &nrep : !strcmp(argv[i], "--interval") ? &interval
                   : !strcmp(argv[i], "--lease") ? &lease : !strcmp(argv[i], "--batch") ? &batch : NULL;
        if (!dst || !v) {
            fprintf(stderr, "usage: bench_producer [--procedures N] [--tokens T] [--replicas R]"
                            " [--interval S] [--lease S] [--batch B]\n");
            return 2;
        }
        *dst = atoi(v);
        i++;
    }
    if (tokens < 1 || tokens > MAX_TOKENS || nrep < 1 || nrep > MAX_REPLICAS || procedures < tokens)
        die("bad arguments");

    d2g_testenv_t env;
    running_env = &env;
    if (d2g_testenv_init(&env) || d2g_testenv_start_redis(&env) || d2g_testenv_start_kafka(&env, 8))
        die("cannot start Redis and Kafka");
    /* The emulator: every procedure exists, generated when first named; one token per name. */
    size_t cap = 256 + (size_t)tokens * 96, len = 0;
    char *emu = malloc(cap);
    len += (size_t)snprintf(emu + len, cap - len,
                            "{\"seed\": 3, \"rateLimitPerMinute\": 400, \"lazyProcedures\":"
                            " {\"first\": %d, \"count\": %d, \"dossiers\": 0}, \"tokens\": [",
                            FIRST, procedures);
    for (int t = 0; t < tokens; t++)
        len += (size_t)snprintf(emu + len, cap - len,
                                "%s{\"name\": \"tok%d\", \"secret\": \"bench-ds-token-%d\", \"procedures\": \"*\"}",
                                t ? "," : "", t, t);
    snprintf(emu + len, cap - len, "]}");
    if (d2g_testenv_start_ds(&env, emu))
        die("cannot start the DS emulator");
    free(emu);

    /* The producers' configuration: procedure i on token i % tokens. */
    size_t pcap = 1024 + (size_t)procedures * 110 + (size_t)tokens * 120;
    char *cfg = malloc(pcap);
    len = 0;
    len += (size_t)snprintf(cfg + len, pcap - len,
                            "{\"kafka\": {\"properties\": {\"bootstrap.servers\": \"%s\"}},"
                            " \"redis\": {\"url\": \"redis://127.0.0.1:%d\"},"
                            " \"ds\": {\"endpoint\": \"%s\", \"timeout_s\": %d, \"tokens\": {",
                            env.kafka_bootstrap, env.redis_port, env.ds_url, lease / 2);
    for (int t = 0; t < tokens; t++) {
        char name[40], val[40];
        snprintf(name, sizeof(name), "BENCH_DS_TOKEN_%d", t);
        snprintf(val, sizeof(val), "bench-ds-token-%d", t);
        setenv(name, val, 1);
        len += (size_t)snprintf(cfg + len, pcap - len, "%s\"tok%d\": {\"secret\": {\"env\": \"%s\"}}",
                                t ? ", " : "", t, name);
    }
    setenv("BENCH_GRIST_KEY", "unused", 1);
    len += (size_t)snprintf(cfg + len, pcap - len,
                            "}}, \"grist\": {\"servers\": {\"g\": {\"url\": \"http://127.0.0.1:1\","
                            " \"api_key\": {\"env\": \"BENCH_GRIST_KEY\"}}}},"
                            " \"producer\": {\"lease_s\": %d, \"check_batch_size\": %d},"
                            " \"defaults\": {\"poll_interval_s\": %d, \"poll_interval_max_s\": %d},"
                            " \"log_level\": \"info\", \"procedures\": [",
                            lease, batch, interval, interval);
    for (int i = 0; i < procedures; i++)
        len += (size_t)snprintf(cfg + len, pcap - len,
                                "%s{\"number\": %d, \"ds_token\": \"tok%d\", \"grist_server\": \"g\","
                                " \"document\": \"doc%d\"}", i ? "," : "", FIRST + i, i % tokens, i % 50);
    snprintf(cfg + len, pcap - len, "]}");
    char cfgpath[512];
    if (d2g_testenv_write_file(&env, "producer.json", cfg, cfgpath, sizeof(cfgpath)))
        die("cannot write the configuration");
    free(cfg);

    char err[D2G_ERRLEN], url[64];
    d2g_redis_t *r;
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", env.redis_port);
    if (d2g_redis_connect(url, NULL, NULL, "ds2grist", 10000, &r, err, sizeof(err)))
        die(err);
    seed_cursors(r, procedures);

    printf("== %d procedures over %d tokens (400 requests/min each), %d replicas, interval %d s,"
           " lease %d s, batches of %d\n", procedures, tokens, nrep, interval, lease, batch);
    fflush(stdout);
    for (int i = 0; i < nrep; i++) {
        char name[32];
        snprintf(name, sizeof(name), "producer-%d", i);
        char *pargv[] = {D2G_PRODUCER_BIN, "--config", cfgpath, NULL};
        if (d2g_test_proc_spawn(&env, &replicas[i], name, pargv))
            die("cannot start a producer");
        n_replicas++;
    }
    /* Settle: every replica sees the others, every procedure checked once. */
    d2g_test_sleep_ms((interval + 8) * 1000L);

    for (int i = 0; i < nrep; i++) {
        long o = owned_from_log(&env, i, NULL);
        printf("share: replica %d checks %ld procedures (%.1f%% of an even share)\n", i, o,
               100.0 * (double)o * nrep / procedures);
    }

    /* ---- idle ---- */
    json_decref(ds_json(&env, "POST", "/admin/counters/reset", NULL));
    double cpu0[MAX_REPLICAS];
    for (int i = 0; i < nrep; i++)
        cpu0[i] = cpu_seconds(replicas[i].pid);
    long long rc0 = redis_commands(r);
    int64_t t0 = d2g_clock_mono_ms();
    d2g_test_sleep_ms(2L * interval * 1000);
    double secs = (double)(d2g_clock_mono_ms() - t0) / 1000.0;
    long long rc1 = redis_commands(r);
    json_t *c = ds_json(&env, "GET", "/admin/counters", NULL);
    double total = (double)json_integer_value(json_object_get(c, "total"));
    double mn, mean, mx;
    per_token(c, tokens, &mn, &mean, &mx);
    char *ops = json_dumps(json_object_get(c, "byOperation"), JSON_COMPACT);
    printf("idle: %.0f s, %.0f DS requests %s\n", secs, total, ops);
    printf("idle: %.4f DS requests per procedure per interval (one request per %.0f procedures)\n",
           total / procedures / (secs / interval), total > 0 ? procedures * (secs / interval) / total : 0);
    printf("idle: DS requests per minute per token: mean %.1f, min %.1f, max %.1f (budget 400)\n",
           mean * 60 / secs, mn * 60 / secs, mx * 60 / secs);
    printf("idle: Redis %.0f commands/s\n", (double)(rc1 - rc0) / secs);
    for (int i = 0; i < nrep; i++)
        printf("idle: replica %d: CPU %.1f%% of a core, RSS %ld kB (peak %ld kB)\n", i,
               100.0 * (cpu_seconds(replicas[i].pid) - cpu0[i]) / secs,
               status_kb(replicas[i].pid, "VmRSS"), status_kb(replicas[i].pid, "VmHWM"));
    free(ops);
    json_decref(c);
    fflush(stdout);

    /* ---- changes ---- */
    json_decref(ds_json(&env, "POST", "/admin/counters/reset", NULL));
    int nchanges = 2 * interval * 1000 / 300, made = 0;
    int64_t *numbers = calloc((size_t)nchanges + 1, sizeof(int64_t));
    int64_t *created = calloc((size_t)nchanges + 1, sizeof(int64_t));
    unsigned seed = 7;
    t0 = d2g_clock_mono_ms();
    for (; made < nchanges; made++) {
        char path[96];
        snprintf(path, sizeof(path), "/admin/procedures/%d/dossiers", FIRST + (int)(rand_r(&seed) % procedures));
        created[made] = d2g_clock_wall_ms();
        json_t *d = ds_json(&env, "POST", path, "{}");
        numbers[made] = json_integer_value(json_object_get(d, "number"));
        json_decref(d);
        d2g_test_sleep_ms(300);
    }
    d2g_test_sleep_ms((interval + 10) * 1000L);
    secs = (double)(d2g_clock_mono_ms() - t0) / 1000.0;
    c = ds_json(&env, "GET", "/admin/counters", NULL);
    per_token(c, tokens, &mn, &mean, &mx);
    ops = json_dumps(json_object_get(c, "byOperation"), JSON_COMPACT);
    printf("changes: %d dossiers created in random procedures over %d s; DS requests %s\n", made,
           2 * interval, ops);
    long long highest = 0;
    const char *tn;
    json_t *tv;
    json_object_foreach(json_object_get(c, "maxPerTokenPerMinute"), tn, tv)
        if (json_integer_value(tv) > highest)
            highest = json_integer_value(tv);
    printf("changes: DS requests per minute per token: mean %.1f, max %.1f; highest in any 60 s"
           " window %lld; HTTP 429 %lld\n", mean * 60 / secs, mx * 60 / secs, highest,
           (long long)json_integer_value(json_object_get(json_object_get(c, "byStatus"), "429")));
    free(ops);
    json_decref(c);
    d2g_test_msgs_t msgs = {0};
    if (d2g_test_kafka_read_all(&env, "ds2grist.dossiers", &msgs))
        die("cannot read Kafka");
    double *fresh = calloc((size_t)made + 1, sizeof(double));
    int nf = 0;
    for (int i = 0; i < made; i++) {
        double best = -1;
        for (size_t m = 0; m < msgs.n; m++) {
            d2g_envelope_t e;
            if (d2g_envelope_decode(msgs.v[m].value, strlen(msgs.v[m].value), &e, err, sizeof(err)))
                continue;
            double at;
            int is_int;
            if (e.number == numbers[i] && d2g_clock_parse_iso(e.fetched_at, &at, &is_int) == 0) {
                double f = at - (double)created[i] / 1000.0;
                if (best < 0 || f < best)
                    best = f;
            }
            d2g_envelope_clear(&e);
        }
        if (best >= 0)
            fresh[nf++] = best;
    }
    d2g_test_msgs_free(&msgs);
    qsort(fresh, (size_t)nf, sizeof(double), cmp_double);
    printf("changes: %d/%d emitted; freshness p50 %.1f s, p99 %.1f s, max %.1f s (interval %d s)\n", nf,
           made, nf ? fresh[nf / 2] : -1, nf ? fresh[(nf * 99) / 100 < nf ? (nf * 99) / 100 : nf - 1] : -1,
           nf ? fresh[nf - 1] : -1, interval);
    free(fresh);
    free(numbers);
    free(created);
    fflush(stdout);

    /* ---- take-over ---- */
    if (nrep > 1) {
        int64_t killed = d2g_clock_wall_ms();
        t0 = d2g_clock_mono_ms();
        d2g_test_proc_kill(&replicas[0]);
        int done = 0;
        while (d2g_clock_mono_ms() - t0 < (int64_t)(lease + 3 * interval) * 1000) {
            if ((done = checked_since(r, procedures, killed)) == procedures)
                break;
            d2g_test_sleep_ms(500);
        }
        int64_t moved = 0;
        long owned = owned_from_log(&env, 1, &moved);
        printf("take-over: replica 0 SIGKILLed; replica 1 took its procedures over after %.1f s"
               " (now checks %ld); %d/%d procedures checked again within %.1f s (lease %d s,"
               " interval %d s)\n", moved > killed ? (double)(moved - killed) / 1000.0 : -1.0, owned,
               done, procedures, (double)(d2g_clock_mono_ms() - t0) / 1000.0, lease, interval);
    }
    for (int i = 0; i < nrep; i++)
        if (replicas[i].pid && d2g_test_proc_stop(&replicas[i]) != 0)
            printf("replica %d did not stop cleanly\n", i);
    d2g_redis_free(r);
    d2g_testenv_stop(&env);
    return 0;
}
