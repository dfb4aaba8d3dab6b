/*
 * test_producer.c - ds2grist-producer end to end, as its users would check
 * it: the real producer binary against the DS emulator, a real redis-server
 * and the Kafka mock broker, reading back what landed in Kafka.
 *
 *   backfill       5,000 dossiers: each emitted, one DS request per page
 *   incremental    changes, creations, deletions made through the emulator arrive
 *   labels         a label-only change (no dateDerniereModification move) arrives
 *   replicas       two producers, 20 procedures, one killed: the other takes
 *                  over; the token's budget is never exceeded in any minute;
 *                  no procedure is polled by two replicas at once
 *   crash          SIGKILL in the middle of pages, twice between "written to
 *                  Kafka" and "acknowledged" (slow acks): the unacknowledged
 *                  pages are sent again, nothing skipped
 *   shrink         timeouts and complexity errors shrink the page; the run completes
 *   redis loss     deletions made while Redis is down, then back empty (with the
 *                  producer running, and with the producer restarted too), all
 *                  reach Kafka as delete messages
 *   fencing        a replica paused (SIGSTOP) past its lease while its page waits
 *                  for Kafka, then resumed after another replica moved on: the
 *                  cursor never goes back
 *   checks         60 quiet procedures cost one batched check request per 25 of them
 *                  per interval and no page; the changed ones alone are fetched
 *   check fallback DS refuses a batch as too complex: smaller batches, checks go on; a
 *                  procedure the token may no longer see fails alone
 *   labels in checks the label pass of small quiet procedures rides on their checks (no
 *                  label request); a label change still arrives
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ds2grist/clock.h"
#include "ds2grist/cursor.h"
#include "ds2grist/redis.h"
#include "ds2grist/envelope.h"
#include "ds2grist/err.h"
#include "stack.h"

#define TOKEN D2G_STACK_DS_TOKEN

/* The emulator with the given procedures ({number, dossiers}...) and one token. */
static void start_ds(d2g_testenv_t *env, const char *procedures_json, int rate_per_minute) {
    char cfg[8192];
    snprintf(cfg, sizeof(cfg),
             "{\"seed\": 11, \"procedures\": %s, \"rateLimitPerMinute\": %d,"
             " \"tokens\": [{\"name\": \"main\", \"secret\": \"" TOKEN "\", \"procedures\": \"*\"}]}",
             procedures_json, rate_per_minute);
    assert_int_equal(d2g_testenv_start_ds(env, cfg), 0);
}

/* A producer configuration for procedures numbers[0..n), with these defaults (JSON object). */
static void write_config_defaults(d2g_testenv_t *env, const char *name, const int *numbers, int n,
                                  const char *defaults_json, int budget, const char *producer_json,
                                  char *path, size_t pathlen) {
    size_t cap = 64 + (size_t)n * 128, len = 0;
    char *procs = malloc(cap), extra[512];
    len += (size_t)snprintf(procs + len, cap - len, "[");
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(procs + len, cap - len,
                                "%s{\"number\": %d, \"ds_token\": \"main\", \"grist_server\": \"g\","
                                " \"document\": \"doc\"}", i ? "," : "", numbers[i]);
    snprintf(procs + len, cap - len, "]");
    snprintf(extra, sizeof(extra), "\"producer\": %s, \"defaults\": %s",
             producer_json ? producer_json : "{}", defaults_json);
    assert_int_equal(d2g_test_write_config(env, name, procs, budget, 8, extra, path, pathlen), 0);
    free(procs);
}

/* The same with every procedure's poll_interval_s = poll_s. */
static void write_config(d2g_testenv_t *env, const char *name, const int *numbers, int n,
                         int poll_s, int budget, const char *producer_json, char *path,
                         size_t pathlen) {
    char defaults[64];
    snprintf(defaults, sizeof(defaults), "{\"poll_interval_s\": %d}", poll_s);
    write_config_defaults(env, name, numbers, n, defaults, budget, producer_json, path, pathlen);
}

static void spawn_producer(d2g_testenv_t *env, d2g_test_proc_t *proc, const char *name,
                           const char *cfgpath) {
    char *argv[] = {D2G_PRODUCER_BIN, "--config", (char *)cfgpath, NULL};
    assert_int_equal(d2g_test_proc_spawn(env, proc, name, argv), 0);
}

/* GET/POST on the emulator's admin API; returns the parsed body. */
static json_t *ds_admin(d2g_testenv_t *env, const char *method, const char *path, const char *body) {
    char url[256], *resp = NULL;
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", env->ds_port, path);
    int st = d2g_test_http(method, url, NULL, body, &resp);
    if (st < 200 || st >= 300)
        fail_msg("%s %s -> %d %s", method, path, st, resp ? resp : "");
    json_t *j = json_loads(resp, 0, NULL);
    free(resp);
    assert_non_null(j);
    return j;
}

/* The numbers of the dossiers DS has now for a procedure (sorted). */
static int ds_numbers(d2g_testenv_t *env, int procedure, int64_t *out, int max) {
    char path[128];
    snprintf(path, sizeof(path), "/admin/procedures/%d/dossiers", procedure);
    json_t *j = ds_admin(env, "GET", path, NULL);
    json_t *list = json_object_get(j, "dossiers");
    int n = 0;
    for (size_t i = 0; i < json_array_size(list) && n < max; i++)
        out[n++] = json_integer_value(json_object_get(json_array_get(list, i), "number"));
    json_decref(j);
    return n;
}

static int64_t ds_counter(d2g_testenv_t *env, const char *group, const char *name) {
    json_t *j = ds_admin(env, "GET", "/admin/counters", NULL);
    int64_t v = json_integer_value(json_object_get(json_object_get(j, group), name));
    json_decref(j);
    return v;
}

/* What Kafka holds, decoded. A message that does not decode fails the test. */
typedef struct seen {
    int64_t procedure, number;
    int kind, partial;
    char modified[40];
    char fetched_at[40]; /* RFC 3339 UTC with ms: sorts as text */
    json_t *labels;
} seen_t;

static size_t read_messages(d2g_testenv_t *env, seen_t **out) {
    d2g_test_msgs_t msgs = {0};
    assert_int_equal(d2g_test_kafka_read_all(env, "ds2grist.dossiers", &msgs), 0);
    seen_t *s = calloc(msgs.n + 1, sizeof(seen_t));
    for (size_t i = 0; i < msgs.n; i++) {
        d2g_envelope_t e;
        char err[D2G_ERRLEN], key[64];
        if (d2g_envelope_decode(msgs.v[i].value, strlen(msgs.v[i].value), &e, err, sizeof(err)))
            fail_msg("message %zu does not decode: %s", i, err);
        d2g_envelope_key(e.procedure, e.number, key, sizeof(key));
        assert_string_equal(key, msgs.v[i].key); /* key = procedure:number */
        assert_null(strstr(msgs.v[i].value, TOKEN)); /* no secret in messages */
        s[i].procedure = e.procedure;
        s[i].number = e.number;
        s[i].kind = e.kind;
        s[i].partial = e.partial;
        snprintf(s[i].modified, sizeof(s[i].modified), "%s", e.modified);
        snprintf(s[i].fetched_at, sizeof(s[i].fetched_at), "%s", e.fetched_at);
        s[i].labels = json_incref(json_object_get(e.dossier, "labels"));
        d2g_envelope_clear(&e);
    }
    size_t n = msgs.n;
    d2g_test_msgs_free(&msgs);
    *out = s;
    return n;
}

static void free_seen(seen_t *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        json_decref(s[i].labels);
    free(s);
}

/* How many of numbers[0..n) have at least one message of kind for procedure. */
static int count_covered(const seen_t *s, size_t ns, int procedure, const int64_t *numbers, int n,
                         int kind) {
    int covered = 0;
    for (int i = 0; i < n; i++)
        for (size_t j = 0; j < ns; j++)
            if (s[j].procedure == procedure && s[j].number == numbers[i] && s[j].kind == kind) {
                covered++;
                break;
            }
    return covered;
}

/* Waits (up to timeout_s) until every number has a message of kind. */
static int wait_covered(d2g_testenv_t *env, int procedure, const int64_t *numbers, int n, int kind,
                        int timeout_s) {
    int64_t end = d2g_clock_mono_ms() + timeout_s * 1000LL;
    int covered = 0;
    while (d2g_clock_mono_ms() < end) {
        seen_t *s;
        size_t ns = read_messages(env, &s);
        covered = count_covered(s, ns, procedure, numbers, n, kind);
        free_seen(s, ns);
        if (covered == n)
            return n;
        d2g_test_sleep_ms(300);
    }
    return covered;
}

static void test_backfill(void **state) {
    d2g_testenv_t *env = *state;
    enum { N = 5000 };
    static int64_t numbers[N];
    char cfg[512];
    int proc = 2001;
    d2g_test_proc_t producer;

    start_ds(env, "[{\"number\": 2001, \"dossiers\": 5000}]", 400);
    assert_int_equal(ds_numbers(env, proc, numbers, N), N);
    write_config(env, "producer.json", &proc, 1, 3600, 400, NULL, cfg, sizeof(cfg));
    int64_t t0 = d2g_clock_mono_ms();
    spawn_producer(env, &producer, "producer", cfg);
    int covered = wait_covered(env, proc, numbers, N, D2G_ENVELOPE_UPSERT, 120);
    int64_t elapsed = d2g_clock_mono_ms() - t0;
    assert_int_equal(d2g_test_proc_stop(&producer), 0); /* SIGTERM: clean exit 0 */

    seen_t *s;
    size_t ns = read_messages(env, &s);
    int64_t pages = ds_counter(env, "byOperation", "getDossiers");
    int64_t page_bytes = ds_counter(env, "bytesByOperation", "getDossiers");
    int64_t page_ms = ds_counter(env, "msByOperation", "getDossiers");
    printf("# backfill: %d dossiers in %lld ms (%.0f dossiers/s), %zu messages, %lld DS page requests\n",
           covered, (long long)elapsed, covered * 1000.0 / (double)elapsed, ns, (long long)pages);
    printf("# backfill: a page of the producer's query is %.0f kB (%.1f kB per dossier) and takes the"
           " emulator %.0f ms on average\n", pages ? (double)page_bytes / 1024.0 / (double)pages : 0.0,
           (double)page_bytes / 1024.0 / (double)N, pages ? (double)page_ms / (double)pages : 0.0);
    assert_true(page_bytes > 0);
    assert_int_equal(covered, N);
    assert_int_equal(pages, N / 100); /* one DS request per 100 dossiers */
    free_seen(s, ns);
}

static void test_incremental_and_labels(void **state) {
    d2g_testenv_t *env = *state;
    int64_t numbers[300];
    char cfg[512], path[128], body[256];
    int proc = 3001;
    d2g_test_proc_t producer;

    start_ds(env, "[{\"number\": 3001, \"dossiers\": 150}]", 400);
    int n = ds_numbers(env, proc, numbers, 300);
    assert_int_equal(n, 150);
    write_config(env, "producer.json", &proc, 1, 1, 400, "{\"labels_interval_s\": 2}", cfg, sizeof(cfg));
    spawn_producer(env, &producer, "producer", cfg);
    assert_int_equal(wait_covered(env, proc, numbers, n, D2G_ENVELOPE_UPSERT, 60), n);

    /* A change, a creation, a deletion. */
    seen_t *s;
    snprintf(path, sizeof(path), "/admin/procedures/%d/dossiers/%lld", proc, (long long)numbers[10]);
    json_decref(ds_admin(env, "PATCH", path, "{\"state\": \"accepte\", \"motivation\": \"Dossier complet\"}"));
    snprintf(path, sizeof(path), "/admin/procedures/%d/dossiers", proc);
    json_t *created = ds_admin(env, "POST", path, "{}");
    int64_t new_number = json_integer_value(json_object_get(created, "number"));
    json_decref(created);
    snprintf(path, sizeof(path), "/admin/procedures/%d/dossiers/%lld?reason=user_request", proc,
             (long long)numbers[20]);
    json_decref(ds_admin(env, "DELETE", path, NULL));
    /* A label-only change: DS does not move dateDerniereModification for it. */
    snprintf(path, sizeof(path), "/admin/procedures/%d/dossiers/%lld", proc, (long long)numbers[30]);
    snprintf(body, sizeof(body), "{\"labels\": [\"Urgent\"]}");
    json_t *lab = ds_admin(env, "PATCH", path, body);
    json_decref(lab);

    int64_t changed[] = {numbers[10], new_number};
    assert_int_equal(wait_covered(env, proc, changed, 2, D2G_ENVELOPE_UPSERT, 30), 2);
    assert_int_equal(wait_covered(env, proc, &numbers[20], 1, D2G_ENVELOPE_DELETE, 30), 1);

    /* The label change arrives as a partial upsert carrying the new label. */
    int64_t end = d2g_clock_mono_ms() + 30000;
    int found = 0;
    while (!found && d2g_clock_mono_ms() < end) {
        /* All of the topic (its partitions are read one after the other, so
         * arrival order is not index order); only label passes emit partial upserts. */
        size_t ns = read_messages(env, &s);
        for (size_t i = 0; i < ns; i++)
            if (s[i].number == numbers[30] && s[i].partial && json_array_size(s[i].labels) == 1 &&
                !strcmp(json_string_value(json_object_get(json_array_get(s[i].labels, 0), "name")), "Urgent"))
                found = 1;
        free_seen(s, ns);
        if (!found)
            d2g_test_sleep_ms(300);
    }
    assert_true(found);

    /* Label passes emit only what changed: no flood of partial upserts. */
    size_t ns = read_messages(env, &s);
    int partials = 0;
    for (size_t i = 0; i < ns; i++)
        partials += s[i].partial;
    printf("# incremental: %zu messages in all, %d label-only\n", ns, partials);
    assert_true(partials >= 1 && partials <= 3);
    free_seen(s, ns);
    assert_int_equal(d2g_test_proc_stop(&producer), 0);
}

/* DS procedures [first, first+n) with `dossiers` each, as emulator JSON. */
static void procedures_json(int first, int n, int dossiers, int *numbers, char *buf, size_t len) {
    size_t off = (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < n; i++) {
        numbers[i] = first + i;
        off += (size_t)snprintf(buf + off, len - off, "%s{\"number\": %d, \"dossiers\": %d}",
                                i ? "," : "", numbers[i], dossiers);
    }
    snprintf(buf + off, len - off, "]");
}

static int64_t counter_of(json_t *counters, const char *group, int key) {
    char k[16];
    snprintf(k, sizeof(k), "%d", key);
    return json_integer_value(json_object_get(json_object_get(counters, group), k));
}

static void test_two_replicas_share_procedures(void **state) {
    d2g_testenv_t *env = *state;
    enum { P = 20 };
    int procs[P];
    int64_t before[P], numbers[200];
    char cfg[512], list[2048];
    d2g_test_proc_t a, b;

    procedures_json(4001, P, 120, procs, list, sizeof(list));
    start_ds(env, list, 400);
    /* Slow answers make overlapping polls of one procedure visible if they happened. */
    json_decref(ds_admin(env, "POST", "/admin/faults", "{\"kind\": \"latency\", \"latencyMs\": 150, \"count\": -1}"));
    /* A fixed interval (no adaptive slow-down of quiet procedures: their dossiers
     * are days old, which would stretch it to 50 s), so that within the window
     * below every procedure the survivor owns is looked at, whatever the timing. */
    write_config_defaults(env, "producer.json", procs, P,
                          "{\"poll_interval_s\": 10, \"poll_interval_max_s\": 10}", 400,
                          "{\"lease_s\": 12, \"concurrency\": 4}", cfg, sizeof(cfg));
    spawn_producer(env, &a, "producer-a", cfg);
    spawn_producer(env, &b, "producer-b", cfg);
    d2g_test_sleep_ms(6000);
    d2g_test_proc_kill(&a); /* SIGKILL: its leases expire, b takes its procedures */

    /* Every procedure fully emitted, whoever polled it. */
    for (int i = 0; i < P; i++) {
        int n = ds_numbers(env, procs[i], numbers, 200);
        assert_int_equal(wait_covered(env, procs[i], numbers, n, D2G_ENVELOPE_UPSERT, 90), n);
    }
    /* Once a's leases have expired, b alone polls every procedure, a's included. */
    d2g_test_sleep_ms(13000);
    json_t *c = ds_admin(env, "GET", "/admin/counters", NULL);
    for (int i = 0; i < P; i++)
        before[i] = counter_of(c, "byProcedure", procs[i]);
    json_decref(c);
    int polled = 0;
    for (int64_t end = d2g_clock_mono_ms() + 30000; polled < P && d2g_clock_mono_ms() < end;) {
        d2g_test_sleep_ms(1000);
        c = ds_admin(env, "GET", "/admin/counters", NULL);
        polled = 0;
        for (int i = 0; i < P; i++)
            polled += counter_of(c, "byProcedure", procs[i]) > before[i];
        json_decref(c);
    }
    assert_int_equal(d2g_test_proc_stop(&b), 0);
    int64_t overlap = ds_counter(env, "maxConcurrentPerProcedure", "max");
    int64_t total = ds_counter(env, "byToken", "main");
    printf("# replicas: %d/%d procedures polled by the survivor after the kill; %lld DS requests;"
           " at most %lld concurrent requests per procedure\n",
           polled, P, (long long)total, (long long)overlap);
    assert_int_equal(polled, P);
    assert_int_equal(overlap, 1); /* never polled by two replicas at once */
}

static void test_two_replicas_share_the_budget(void **state) {
    d2g_testenv_t *env = *state;
    enum { P = 10, BUDGET = 30 };
    int procs[P];
    char cfg[512], list[2048];
    d2g_test_proc_t a, b;

    procedures_json(4101, P, 20, procs, list, sizeof(list));
    start_ds(env, list, 400);
    /* Both replicas want far more than the budget: each procedure every second. */
    write_config(env, "producer.json", procs, P, 1, BUDGET, "{\"lease_s\": 12}", cfg, sizeof(cfg));
    spawn_producer(env, &a, "producer-a", cfg);
    spawn_producer(env, &b, "producer-b", cfg);
    d2g_test_sleep_ms(25000);
    assert_int_equal(d2g_test_proc_stop(&a), 0);
    assert_int_equal(d2g_test_proc_stop(&b), 0);
    int64_t max_minute = ds_counter(env, "maxPerTokenPerMinute", "main");
    int64_t rejected = ds_counter(env, "byStatus", "429");
    printf("# budget: two replicas, %d procedures polled every second: at most %lld requests in any"
           " minute (budget %d), %lld rate-limited by DS\n",
           P, (long long)max_minute, BUDGET, (long long)rejected);
    assert_true(max_minute <= BUDGET);
    assert_true(max_minute >= BUDGET - 2); /* the budget is used, not just respected */
    assert_int_equal(rejected, 0);
}

static void test_crash_mid_page_skips_nothing(void **state) {
    d2g_testenv_t *env = *state;
    enum { N = 1500 };
    static int64_t numbers[N];
    char cfg[512];
    int proc = 5001;
    d2g_test_proc_t producer;

    start_ds(env, "[{\"number\": 5001, \"dossiers\": 1500}]", 400);
    assert_int_equal(ds_numbers(env, proc, numbers, N), N);
    json_decref(ds_admin(env, "POST", "/admin/faults", "{\"kind\": \"latency\", \"latencyMs\": 300, \"count\": -1}"));
    write_config(env, "producer.json", &proc, 1, 3600, 400, "{\"lease_s\": 11}", cfg, sizeof(cfg));
    /* Killed three times in the middle of its work, restarted each time. First
     * anywhere (once 250 more messages are out: most likely during a DS request).
     * Then twice while Kafka acknowledges late (3 s), as soon as new messages
     * appear in the topic: the kill lands between "written" and "acknowledged",
     * so that page's cursor must not have moved and the page is sent again. */
    size_t n0 = 0, unacked = 0;
    for (int round = 0; round < 3; round++) {
        if (round > 0)
            assert_int_equal(d2g_testenv_kafka_slow_acks(env), 0);
        spawn_producer(env, &producer, "producer", cfg);
        size_t target = round == 0 ? n0 + 250 : n0 + 1, ns = n0;
        for (int64_t end = d2g_clock_mono_ms() + 30000; d2g_clock_mono_ms() < end;) {
            seen_t *s;
            ns = read_messages(env, &s);
            free_seen(s, ns);
            if (ns >= target)
                break;
            d2g_test_sleep_ms(20);
        }
        d2g_test_proc_kill(&producer);
        /* What the killed producer had in flight may still land: count after it. */
        d2g_test_sleep_ms(12000); /* the dead replica's lease expires */
        seen_t *s;
        size_t before = n0;
        n0 = read_messages(env, &s);
        free_seen(s, n0);
        assert_true(n0 > before); /* it was killed at work */
        if (round > 0)            /* written, none acknowledged: each must be sent again */
            unacked += n0 - before;
    }
    json_decref(ds_admin(env, "DELETE", "/admin/faults", NULL));
    spawn_producer(env, &producer, "producer", cfg);
    int covered = wait_covered(env, proc, numbers, N, D2G_ENVELOPE_UPSERT, 120);
    assert_int_equal(d2g_test_proc_stop(&producer), 0);
    seen_t *s;
    size_t ns = read_messages(env, &s);
    printf("# crash: %d/%d dossiers emitted after 3 SIGKILLs (2 between write and acknowledgement, "
           "%zu messages unacknowledged), %zu messages (%zu re-emitted)\n", covered, N, unacked, ns,
           ns - (size_t)covered);
    free_seen(s, ns);
    assert_int_equal(covered, N);
    /* Every message written but not acknowledged when its producer died was sent again. */
    assert_true(ns - (size_t)covered >= unacked);
}

static void test_page_shrinks_on_timeouts_and_complexity(void **state) {
    d2g_testenv_t *env = *state;
    enum { N = 600 };
    static int64_t numbers[N];
    char cfg[512];
    int procs[] = {6001, 6002};
    d2g_test_proc_t producer;

    start_ds(env, "[{\"number\": 6001, \"dossiers\": 600}, {\"number\": 6002, \"dossiers\": 600}]", 400);
    /* 6001: a page over ~30 dossiers takes longer than the server's timeout. 6002: too complex
     * over ~40 dossiers. */
    json_decref(ds_admin(env, "POST", "/admin/config",
                         "{\"serverTimeoutMs\": 1500, \"maxComplexity\": 15000,"
                         " \"latency\": {\"perDossierMs\": 40}}"));
    write_config(env, "producer.json", procs, 2, 3600, 400, "{\"page_size_min\": 5}", cfg, sizeof(cfg));
    spawn_producer(env, &producer, "producer", cfg);
    for (int i = 0; i < 2; i++) {
        int n = ds_numbers(env, procs[i], numbers, N);
        assert_int_equal(wait_covered(env, procs[i], numbers, n, D2G_ENVELOPE_UPSERT, 120), n);
    }
    assert_int_equal(d2g_test_proc_stop(&producer), 0);
    json_t *c = ds_admin(env, "GET", "/admin/counters", NULL);
    char *dump = json_dumps(json_object_get(c, "byStatus"), JSON_COMPACT);
    printf("# shrink: both runs complete; DS answers by status %s, %lld page requests\n", dump,
           (long long)json_integer_value(json_object_get(json_object_get(c, "byOperation"), "getDossiers")));
    free(dump);
    json_decref(c);
}

/* Deletes dossiers numbers[from..to) of a procedure in the emulator. */
static void ds_delete(d2g_testenv_t *env, int proc, const int64_t *numbers, int from, int to) {
    char path[160];
    for (int i = from; i < to; i++) {
        snprintf(path, sizeof(path), "/admin/procedures/%d/dossiers/%lld?reason=user_request", proc,
                 (long long)numbers[i]);
        json_decref(ds_admin(env, "DELETE", path, NULL));
    }
}

static void test_fault_redis_loss_keeps_deletions(void **state) {
    d2g_testenv_t *env = *state;
    enum { N = 300 };
    static int64_t numbers[N];
    char cfg[512];
    int proc = 8001;
    d2g_test_proc_t producer;

    start_ds(env, "[{\"number\": 8001, \"dossiers\": 300}]", 400);
    assert_int_equal(ds_numbers(env, proc, numbers, N), N);
    write_config(env, "producer.json", &proc, 1, 1, 400, NULL, cfg, sizeof(cfg));
    spawn_producer(env, &producer, "producer", cfg);
    assert_int_equal(wait_covered(env, proc, numbers, N, D2G_ENVELOPE_UPSERT, 60), N);
    d2g_test_sleep_ms(3000); /* a few complete runs: the deleted pass has a position */

    /* 1. Redis lost while the producer runs: 10 deletions during the outage,
     *    5 just after Redis came back empty. */
    d2g_testenv_redis_kill(env);
    ds_delete(env, proc, numbers, 0, 10);
    d2g_test_sleep_ms(2000);
    assert_int_equal(d2g_testenv_redis_restart_empty(env), 0);
    ds_delete(env, proc, numbers, 10, 15);
    int got1 = wait_covered(env, proc, numbers, 15, D2G_ENVELOPE_DELETE, 60);

    /* 2. Redis and the producer lost together: nothing remembers the cursor. */
    d2g_test_proc_kill(&producer);
    d2g_testenv_redis_kill(env);
    ds_delete(env, proc, numbers, 15, 25);
    d2g_test_sleep_ms(1500);
    assert_int_equal(d2g_testenv_redis_restart_empty(env), 0);
    spawn_producer(env, &producer, "producer2", cfg);
    ds_delete(env, proc, numbers, 25, 30);
    int got2 = wait_covered(env, proc, numbers + 15, 15, D2G_ENVELOPE_DELETE, 60);
    assert_int_equal(d2g_test_proc_stop(&producer), 0);
    printf("# redis loss: %d/15 deletions reached Kafka with the producer running, %d/15 with the "
           "producer restarted too\n", got1, got2);
    assert_int_equal(got1, 15);
    assert_int_equal(got2, 15);
}

/* The emulator's endCursor is base64("<ISO date>;<id>"): its position, comparable. */
static void cursor_position(const char *after, char *out, size_t outlen) {
    static const char *b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    unsigned int acc = 0;
    int bits = 0;
    size_t o = 0;
    for (const char *c = after; *c && *c != '=' && o + 1 < outlen; c++) {
        const char *q = strchr(b64, *c);
        if (!q)
            break;
        acc = (acc << 6) | (unsigned int)(q - b64);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (char)((acc >> bits) & 0xFF);
        }
    }
    out[o] = '\0';
    /* "<date>;<id>": pad the id so that positions compare as text. */
    char *semi = strchr(out, ';');
    if (semi) {
        long long id = atoll(semi + 1);
        snprintf(semi + 1, outlen - (size_t)(semi + 1 - out), "%012lld", id);
    }
}

static void read_position(d2g_redis_t *r, int proc, char *out, size_t outlen) {
    d2g_cursor_t c;
    char err[D2G_ERRLEN];
    out[0] = '\0';
    if (d2g_cursor_load(r, proc, &c, err, sizeof(err)) == 0 && c.after)
        cursor_position(c.after, out, outlen);
    d2g_cursor_clear(&c);
}

static int log_has(d2g_testenv_t *env, const char *name, const char *needle) {
    char path[400], line[4096];
    snprintf(path, sizeof(path), "%s/%s.log", env->dir, name);
    FILE *f = fopen(path, "r");
    int found = 0;
    while (f && !found && fgets(line, sizeof(line), f))
        found = strstr(line, needle) != NULL;
    if (f)
        fclose(f);
    return found;
}

static void test_fault_paused_replica_never_writes_older_cursor(void **state) {
    d2g_testenv_t *env = *state;
    enum { N = 3000 };
    char cfg[512], pos_b[128], pos[128], err[D2G_ERRLEN];
    int proc = 8101;
    d2g_test_proc_t a, b;
    d2g_redis_t *r;

    start_ds(env, "[{\"number\": 8101, \"dossiers\": 3000}]", 400);
    json_decref(ds_admin(env, "POST", "/admin/faults", "{\"kind\": \"latency\", \"latencyMs\": 300, \"count\": -1}"));
    write_config(env, "producer.json", &proc, 1, 3600, 400, "{\"lease_s\": 11}", cfg, sizeof(cfg));
    char url[64];
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", env->redis_port);
    assert_int_equal(d2g_redis_connect(url, NULL, NULL, "ds2grist", 2000, &r, err, sizeof(err)), 0);

    spawn_producer(env, &a, "producer-a", cfg);
    size_t ns = 0;
    for (int64_t end = d2g_clock_mono_ms() + 30000; ns < 300 && d2g_clock_mono_ms() < end;) {
        seen_t *s;
        ns = read_messages(env, &s);
        free_seen(s, ns);
        d2g_test_sleep_ms(50);
    }
    /* A's next page waits for late acknowledgements (3 s): pause A as soon as it is
     * written. Pages acknowledged before the slow acks began are counted first. */
    for (int i = 0; i < 3; i++)
        assert_int_equal(d2g_testenv_kafka_slow_acks(env), 0);
    d2g_test_sleep_ms(500);
    {
        seen_t *s;
        ns = read_messages(env, &s);
        free_seen(s, ns);
    }
    for (int64_t end = d2g_clock_mono_ms() + 30000; d2g_clock_mono_ms() < end;) {
        seen_t *s;
        size_t now_n = read_messages(env, &s);
        free_seen(s, now_n);
        if (now_n > ns)
            break;
        d2g_test_sleep_ms(5);
    }
    kill(a.pid, SIGSTOP);
    char pos_a[128];
    read_position(r, proc, pos_a, sizeof(pos_a));

    /* B takes over once A's lease expired, and moves well past A. */
    spawn_producer(env, &b, "producer-b", cfg);
    pos_b[0] = '\0';
    for (int64_t end = d2g_clock_mono_ms() + 60000; d2g_clock_mono_ms() < end;) {
        read_position(r, proc, pos_b, sizeof(pos_b));
        if (log_has(env, "producer-b", "page_emitted") && strcmp(pos_b, pos_a) > 0 &&
            d2g_clock_mono_ms() > end - 60000 + 16000)
            break;
        d2g_test_sleep_ms(100);
    }
    assert_int_equal(d2g_test_proc_stop(&b), 0);
    read_position(r, proc, pos_b, sizeof(pos_b));
    assert_true(strcmp(pos_b, pos_a) > 0);

    /* A wakes up with its old page acknowledged: it must not write it. */
    kill(a.pid, SIGCONT);
    int went_back = 0;
    for (int64_t end = d2g_clock_mono_ms() + 6000; d2g_clock_mono_ms() < end;) {
        read_position(r, proc, pos, sizeof(pos));
        if (strcmp(pos, pos_b) < 0) {
            went_back = 1;
            break;
        }
        d2g_test_sleep_ms(20);
    }
    int refused = log_has(env, "producer-a", "cursor_write_refused");
    assert_int_equal(d2g_test_proc_stop(&a), 0);
    d2g_redis_free(r);
    printf("# fencing: paused replica at %s, the other moved to %s; after SIGCONT the cursor %s, "
           "the paused replica's write %s\n", pos_a, pos_b, went_back ? "WENT BACK" : "never went back",
           refused ? "was refused" : "was not refused");
    assert_false(went_back);
    assert_true(refused);
}

/* The broker fences the idempotent producer (a fatal error for librdkafka):
 * the producer ends (exit 3, a clear log line) without moving the cursor of
 * what was not acknowledged; a new one then emits everything. */
static void test_fault_kafka_fatal_error_ends_cleanly(void **state) {
    d2g_testenv_t *env = *state;
    enum { N = 1500 };
    static int64_t numbers[N];
    char cfg[512];
    int proc = 8201;
    d2g_test_proc_t producer;

    start_ds(env, "[{\"number\": 8201, \"dossiers\": 1500}]", 400);
    assert_int_equal(ds_numbers(env, proc, numbers, N), N);
    json_decref(ds_admin(env, "POST", "/admin/faults", "{\"kind\": \"latency\", \"latencyMs\": 200, \"count\": -1}"));
    /* With the gapless guarantee, a sequence error is fatal for librdkafka. */
    write_config(env, "producer.json", &proc, 1, 3600, 400, NULL, cfg, sizeof(cfg));
    {
        char *text = NULL;
        FILE *f = fopen(cfg, "r");
        assert_non_null(f);
        fseek(f, 0, SEEK_END);
        long len = ftell(f);
        rewind(f);
        text = calloc(1, (size_t)len + 64);
        assert_int_equal(fread(text, 1, (size_t)len, f), (size_t)len);
        fclose(f);
        char *at = strstr(text, "\"session.timeout.ms\"");
        assert_non_null(at);
        memmove(at + 36, at, strlen(at) + 1);
        memcpy(at, "\"enable.gapless.guarantee\": \"true\", ", 36);
        f = fopen(cfg, "w");
        fputs(text, f);
        fclose(f);
        free(text);
    }
    spawn_producer(env, &producer, "producer", cfg);
    size_t ns = 0;
    for (int64_t end = d2g_clock_mono_ms() + 30000; ns < 300 && d2g_clock_mono_ms() < end;) {
        seen_t *s;
        ns = read_messages(env, &s);
        free_seen(s, ns);
        d2g_test_sleep_ms(50);
    }
    kill(env->kafka.pid, SIGUSR2);
    int status = -1;
    pid_t got = 0;
    int64_t t0 = d2g_clock_mono_ms();
    while ((got = waitpid(producer.pid, &status, WNOHANG)) == 0 && d2g_clock_mono_ms() - t0 < 30000)
        d2g_test_sleep_ms(50);
    int exited = got == producer.pid;
    if (exited)
        producer.pid = 0;
    else
        d2g_test_proc_kill(&producer);
    int fatal_logged = log_has(env, "producer", "stopping_on_kafka_fatal");
    if (!fatal_logged) { /* show what the producer heard from Kafka */
        char path[400], line[2048];
        snprintf(path, sizeof(path), "%s/producer.log", env->dir);
        FILE *f = fopen(path, "r");
        int shown = 0;
        while (f && shown < 20 && fgets(line, sizeof(line), f))
            if (strstr(line, "kafka") || strstr(line, "page_not_delivered"))
                fputs(line, stdout), shown++;
        if (f)
            fclose(f);
    }
    printf("# kafka fatal: producer %s (status %d) %lld ms after the broker fenced it, log %s\n",
           exited ? "exited" : "DID NOT EXIT", exited && WIFEXITED(status) ? WEXITSTATUS(status) : -1,
           (long long)(d2g_clock_mono_ms() - t0), fatal_logged ? "says so" : "is silent");
    assert_true(exited);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 3);
    assert_true(fatal_logged);

    json_decref(ds_admin(env, "DELETE", "/admin/faults", NULL));
    spawn_producer(env, &producer, "producer2", cfg);
    assert_int_equal(wait_covered(env, proc, numbers, N, D2G_ENVELOPE_UPSERT, 120), N);
    assert_int_equal(d2g_test_proc_stop(&producer), 0);
}

/* A big backfill does not starve small procedures: each gets a page per turn. */
static void test_fairness(void **state) {
    d2g_testenv_t *env = *state;
    enum { SMALL = 5 };
    int procs[1 + SMALL] = {7001, 7002, 7003, 7004, 7005, 7006};
    int64_t numbers[4000];
    char cfg[512];
    d2g_test_proc_t producer;

    start_ds(env, "[{\"number\": 7001, \"dossiers\": 4000}, {\"number\": 7002, \"dossiers\": 150},"
                  " {\"number\": 7003, \"dossiers\": 150}, {\"number\": 7004, \"dossiers\": 150},"
                  " {\"number\": 7005, \"dossiers\": 150}, {\"number\": 7006, \"dossiers\": 150}]", 400);
    /* One request at a time: the order of service is the scheduler's alone. */
    write_config(env, "producer.json", procs, 1 + SMALL, 3600, 400, "{\"concurrency\": 1}", cfg, sizeof(cfg));
    spawn_producer(env, &producer, "producer", cfg);
    for (int i = 0; i <= SMALL; i++) {
        int n = ds_numbers(env, procs[i], numbers, 4000);
        assert_int_equal(wait_covered(env, procs[i], numbers, n, D2G_ENVELOPE_UPSERT, 120), n);
    }
    assert_int_equal(d2g_test_proc_stop(&producer), 0);
    /* When was each procedure's last dossier fetched, and the big one's first? */
    seen_t *s;
    size_t ns = read_messages(env, &s);
    char last_small[40] = "", first_big[40] = "~", last_big[40] = "";
    size_t big_before = 0;
    for (size_t i = 0; i < ns; i++) {
        if (s[i].procedure == procs[0]) {
            if (strcmp(s[i].fetched_at, first_big) < 0)
                snprintf(first_big, sizeof(first_big), "%s", s[i].fetched_at);
            if (strcmp(s[i].fetched_at, last_big) > 0)
                snprintf(last_big, sizeof(last_big), "%s", s[i].fetched_at);
        } else if (strcmp(s[i].fetched_at, last_small) > 0) {
            snprintf(last_small, sizeof(last_small), "%s", s[i].fetched_at);
        }
    }
    for (size_t i = 0; i < ns; i++)
        big_before += s[i].procedure == procs[0] && strcmp(s[i].fetched_at, last_small) <= 0;
    free_seen(s, ns);
    printf("# fairness: the 5 small procedures were complete at %s, when the 4000-dossier backfill"
           " (%s to %s) had %zu dossiers out\n", last_small, first_big, last_big, big_before);
    /* The small ones did not wait for the big backfill: they were served between its pages. */
    assert_true(strcmp(last_small, last_big) < 0);
    assert_true(big_before <= 2000); /* before half of the big backfill */
}


/* The requests of one operation since the last counter reset. */
static int64_t ds_op(d2g_testenv_t *env, const char *operation) {
    return ds_counter(env, "byOperation", operation);
}

/* Waits until every procedure of numbers[0..n) had its first run (dossiers then deletions). */
static void wait_first_runs(d2g_testenv_t *env, int n, int timeout_s) {
    int64_t end = d2g_clock_mono_ms() + timeout_s * 1000LL;
    while (ds_op(env, "getDeletedDossiers") < n && d2g_clock_mono_ms() < end)
        d2g_test_sleep_ms(300);
    assert_true(ds_op(env, "getDeletedDossiers") >= n);
}

/* Creates a dossier in procedure; returns its number. */
static int64_t ds_create(d2g_testenv_t *env, int procedure) {
    char path[128];
    snprintf(path, sizeof(path), "/admin/procedures/%d/dossiers", procedure);
    json_t *created = ds_admin(env, "POST", path, "{}");
    int64_t n = json_integer_value(json_object_get(created, "number"));
    json_decref(created);
    return n;
}

static void test_checks_cost_little_and_find_changes(void **state) {
    d2g_testenv_t *env = *state;
    enum { P = 60, BATCH = 25, POLL_S = 2 };
    int procs[P];
    char cfg[512], list[4096];
    d2g_test_proc_t producer;

    procedures_json(8001, P, 3, procs, list, sizeof(list));
    start_ds(env, list, 400);
    /* Intervals fixed at 2 s (max = min) so that checks per interval can be counted. */
    write_config_defaults(env, "producer.json", procs, P,
                          "{\"poll_interval_s\": 2, \"poll_interval_max_s\": 2}", 400,
                          "{\"check_batch_size\": 25}", cfg, sizeof(cfg));
    spawn_producer(env, &producer, "producer", cfg);
    wait_first_runs(env, P, 90);
    d2g_test_sleep_ms(3000); /* the last first runs end */

    /* Quiet: only checks, one request per 25 procedures per interval. */
    json_decref(ds_admin(env, "POST", "/admin/counters/reset", NULL));
    int64_t t0 = d2g_clock_mono_ms();
    d2g_test_sleep_ms(10000);
    double secs = (double)(d2g_clock_mono_ms() - t0) / 1000.0;
    int64_t checks = ds_op(env, "checkProcedures"), pages = ds_op(env, "getDossiers"),
            deleted = ds_op(env, "getDeletedDossiers");
    double per_proc = (double)checks / P / (secs / POLL_S);
    printf("# checks: %d quiet procedures, batches of %d, %.1f s: %lld check requests, %lld pages,"
           " %.3f requests per procedure per interval\n", P, BATCH, secs, (long long)checks,
           (long long)(pages + deleted), per_proc);
    assert_int_equal(pages + deleted, 0);
    assert_true(checks > 0);
    assert_true(per_proc <= 1.5 / BATCH); /* ceil(60/25) = 3 requests per interval, jitter aside */

    /* Two procedures change: those two alone are fetched. */
    json_decref(ds_admin(env, "POST", "/admin/counters/reset", NULL));
    int64_t a = ds_create(env, procs[7]), b = ds_create(env, procs[42]);
    assert_int_equal(wait_covered(env, procs[7], &a, 1, D2G_ENVELOPE_UPSERT, 30), 1);
    assert_int_equal(wait_covered(env, procs[42], &b, 1, D2G_ENVELOPE_UPSERT, 30), 1);
    d2g_test_sleep_ms(1000);
    json_t *c = ds_admin(env, "GET", "/admin/counters", NULL);
    json_t *ops = json_object_get(json_object_get(c, "byTokenOperation"), "main");
    char *dump = json_dumps(ops, JSON_COMPACT);
    printf("# checks: after 2 changes, requests by operation %s\n", dump);
    free(dump);
    assert_int_equal(json_integer_value(json_object_get(ops, "getDossiers")), 2);
    assert_int_equal(json_integer_value(json_object_get(ops, "getDeletedDossiers")), 2);
    json_decref(c);
    assert_int_equal(d2g_test_proc_stop(&producer), 0);
}

static void test_check_falls_back_to_smaller_batches(void **state) {
    d2g_testenv_t *env = *state;
    enum { P = 40 };
    int procs[P];
    char cfg[512], list[4096];
    d2g_test_proc_t producer;

    procedures_json(8101, P, 2, procs, list, sizeof(list));
    start_ds(env, list, 400);
    write_config(env, "producer.json", procs, P, 2, 400, "{\"check_batch_size\": 40}", cfg, sizeof(cfg));
    spawn_producer(env, &producer, "producer", cfg);
    wait_first_runs(env, P, 90);
    /* DS refuses the next two checks as too complex (as it answers over 60,000). */
    json_decref(ds_admin(env, "POST", "/admin/faults",
                         "{\"kind\": \"complexity\", \"match\": {\"operationName\": \"checkProcedures\"},"
                         " \"count\": 2}"));
    d2g_test_sleep_ms(3000);
    json_decref(ds_admin(env, "POST", "/admin/counters/reset", NULL));
    int64_t a = ds_create(env, procs[3]), b = ds_create(env, procs[38]);
    assert_int_equal(wait_covered(env, procs[3], &a, 1, D2G_ENVELOPE_UPSERT, 30), 1);
    assert_int_equal(wait_covered(env, procs[38], &b, 1, D2G_ENVELOPE_UPSERT, 30), 1);
    /* The token loses one procedure: DS nulls the whole data of a check naming it (demarche is
     * non-null). The other procedures are checked again without it; their changes still arrive. */
    char tok[2048];
    size_t off = (size_t)snprintf(tok, sizeof(tok), "{\"name\": \"main\", \"secret\": \"" TOKEN "\", \"procedures\": [");
    for (int i = 0; i < P; i++)
        if (i != 10)
            off += (size_t)snprintf(tok + off, sizeof(tok) - off, "%s%d", off && tok[off - 1] != '[' ? "," : "", procs[i]);
    snprintf(tok + off, sizeof(tok) - off, "]}");
    json_decref(ds_admin(env, "POST", "/admin/tokens", tok));
    d2g_test_sleep_ms(3000);
    int64_t c1 = ds_create(env, procs[20]);
    assert_int_equal(wait_covered(env, procs[20], &c1, 1, D2G_ENVELOPE_UPSERT, 30), 1);
    d2g_test_sleep_ms(6000);
    int64_t ok_before = ds_counter(env, "byStatus", "200");
    json_t *c = ds_admin(env, "GET", "/admin/counters", NULL);
    char *dump = json_dumps(json_object_get(c, "byOperation"), JSON_COMPACT);
    printf("# check fallback: two check batches refused as too complex; requests %s,"
           " %lld answered 200\n", dump, (long long)ok_before);
    free(dump);
    json_decref(c);
    assert_int_equal(d2g_test_proc_stop(&producer), 0);
    /* The producer said so, and went on with smaller batches. */
    char logpath[512], line[2048];
    snprintf(logpath, sizeof(logpath), "%s/producer.log", env->dir);
    FILE *f = fopen(logpath, "r");
    assert_non_null(f);
    int shrunk = 0, failed_hidden = 0, failed_other = 0;
    char hidden[32];
    snprintf(hidden, sizeof(hidden), "\"procedure\":%d", procs[10]);
    while (fgets(line, sizeof(line), f)) {
        shrunk += strstr(line, "ds_check_shrunk") != NULL;
        if (strstr(line, "procedure_failed")) {
            if (strstr(line, hidden))
                failed_hidden++;
            else
                failed_other++;
        }
    }
    fclose(f);
    printf("# check fallback: %d shrinks; the hidden procedure failed %d times, the others %d\n", shrunk,
           failed_hidden, failed_other);
    assert_true(shrunk >= 1);
    /* The hidden procedure alone is reported failed. */
    assert_true(failed_hidden >= 1);
    assert_int_equal(failed_other, 0);
    /* Quiet procedures are still checked (every procedure by a successful check). */
    assert_true(ds_op(env, "checkProcedures") > 0);
}

static void test_label_pass_rides_on_checks(void **state) {
    d2g_testenv_t *env = *state;
    enum { P = 30 };
    int procs[P];
    int64_t numbers[10];
    char cfg[512], list[4096], path[128];
    d2g_test_proc_t producer;

    procedures_json(8201, P, 3, procs, list, sizeof(list));
    start_ds(env, list, 400);
    write_config_defaults(env, "producer.json", procs, P,
                          "{\"poll_interval_s\": 2, \"poll_interval_max_s\": 2}", 400,
                          "{\"check_batch_size\": 30, \"labels_interval_s\": 3}", cfg, sizeof(cfg));
    spawn_producer(env, &producer, "producer", cfg);
    wait_first_runs(env, P, 90);
    d2g_test_sleep_ms(3000);
    json_decref(ds_admin(env, "POST", "/admin/counters/reset", NULL));
    d2g_test_sleep_ms(10000); /* three label periods */
    int64_t labels = ds_op(env, "getLabels"), pages = ds_op(env, "getDossiers"),
            checks = ds_op(env, "checkProcedures");
    printf("# labels in checks: %d procedures, label pass every 3 s, 10 s: %lld checks, %lld label"
           " requests, %lld pages\n", P, (long long)checks, (long long)labels, (long long)pages);
    assert_int_equal(labels, 0);
    assert_int_equal(pages, 0);
    /* A label-only change: seen by the next check that carries the label page. */
    assert_int_equal(ds_numbers(env, procs[5], numbers, 10), 3);
    snprintf(path, sizeof(path), "/admin/procedures/%d/dossiers/%lld", procs[5], (long long)numbers[1]);
    json_decref(ds_admin(env, "PATCH", path, "{\"labels\": [\"Urgent\", \"Pièces manquantes\"]}"));
    int found = 0;
    for (int64_t end = d2g_clock_mono_ms() + 30000; !found && d2g_clock_mono_ms() < end;) {
        seen_t *s;
        size_t ns = read_messages(env, &s);
        for (size_t i = 0; i < ns; i++)
            found |= s[i].number == numbers[1] && s[i].partial && json_array_size(s[i].labels) == 2;
        free_seen(s, ns);
        if (!found)
            d2g_test_sleep_ms(300);
    }
    assert_true(found);
    assert_true(ds_op(env, "getLabels") >= 1); /* that procedure's own label pass emitted it */
    assert_int_equal(d2g_test_proc_stop(&producer), 0);
}

int main(void) {
    d2g_test_filter_from_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_backfill, d2g_stack_setup_kafka, d2g_stack_teardown),
        cmocka_unit_test_setup_teardown(test_incremental_and_labels, d2g_stack_setup_kafka, d2g_stack_teardown),
        cmocka_unit_test_setup_teardown(test_two_replicas_share_procedures, d2g_stack_setup_kafka, d2g_stack_teardown),
        cmocka_unit_test_setup_teardown(test_two_replicas_share_the_budget, d2g_stack_setup_kafka, d2g_stack_teardown),
        cmocka_unit_test_setup_teardown(test_crash_mid_page_skips_nothing, d2g_stack_setup_kafka, d2g_stack_teardown),
        cmocka_unit_test_setup_teardown(test_page_shrinks_on_timeouts_and_complexity, d2g_stack_setup_kafka, d2g_stack_teardown),
        cmocka_unit_test_setup_teardown(test_fairness, d2g_stack_setup_kafka, d2g_stack_teardown),
        cmocka_unit_test_setup_teardown(test_fault_redis_loss_keeps_deletions, d2g_stack_setup_kafka, d2g_stack_teardown),
        cmocka_unit_test_setup_teardown(test_fault_paused_replica_never_writes_older_cursor, d2g_stack_setup_kafka, d2g_stack_teardown),
        cmocka_unit_test_setup_teardown(test_fault_kafka_fatal_error_ends_cleanly, d2g_stack_setup_kafka, d2g_stack_teardown),
        cmocka_unit_test_setup_teardown(test_checks_cost_little_and_find_changes, d2g_stack_setup_kafka, d2g_stack_teardown),
        cmocka_unit_test_setup_teardown(test_check_falls_back_to_smaller_batches, d2g_stack_setup_kafka, d2g_stack_teardown),
        cmocka_unit_test_setup_teardown(test_label_pass_rides_on_checks, d2g_stack_setup_kafka, d2g_stack_teardown),
    };
    return cmocka_run_group_tests_name("producer", tests, NULL, NULL);
}
