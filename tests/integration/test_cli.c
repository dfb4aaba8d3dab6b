/*
 * test_cli.c - the `ds2grist` operator CLI, run as an operator would run it
 * (fork/exec of the binary, stdout captured) against a real redis-server and
 * the Kafka mock broker, with Redis state written the way the producer and
 * the workers write it.
 *
 *   config check   a valid configuration is summarised without any secret;
 *                  a broken one exits 2 naming the bad key
 *   status         --json reports cursors, last errors, leases, permits in
 *                  use and the consumer lag; unknown procedure: 2; Redis
 *                  down: 1
 *   resync         resets the cursor hash like the producer's resync; unknown
 *                  procedure or bad date: 2
 *   dlq            list shows the dead letters and their headers; replay puts
 *                  them back (same key and value) exactly once, --key too;
 *                  it does not send one whose dossier Grist holds in a newer
 *                  version or marks deleted (superseded), unless --force, and
 *                  sends nothing it could not check
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ds2grist/keys.h"
#include "ds2grist/clock.h"
#include "ds2grist/cursor.h"
#include "ds2grist/envelope.h"
#include "ds2grist/err.h"
#include "ds2grist/permits.h"
#include "ds2grist/redis.h"
#include "testenv.h"

#define DS_SECRET "ds-SECRET-7f3a9c51"
#define GRIST_SECRET "grist-SECRET-1b2c3d4e"

#define PROCEDURES                                                                          \
    "[{\"number\": 1201, \"ds_token\": \"main\", \"grist_server\": \"g\", \"document\": \"docA\"}," \
    " {\"number\": 1202, \"ds_token\": \"main\", \"grist_server\": \"g\", \"document\": \"docA\"}," \
    " {\"number\": 1203, \"ds_token\": \"main\", \"grist_server\": \"g\", \"document\": \"docB\"}]"

typedef struct fixture {
    d2g_testenv_t env;
    char config[600];
} fixture_t;

static int setup(void **state) {
    fixture_t *f = calloc(1, sizeof(*f));
    *state = f;
    setenv("D2G_TEST_DS_TOKEN", DS_SECRET, 1);
    setenv("D2G_TEST_GRIST_KEY", GRIST_SECRET, 1);
    unsetenv("DS2GRIST_CONFIG");
    if (d2g_testenv_init(&f->env) || d2g_testenv_start_redis(&f->env) ||
        d2g_testenv_start_kafka(&f->env, 4))
        return -1;
    return d2g_test_write_config(&f->env, "config.json", PROCEDURES, 400, 8, "", f->config,
                                 sizeof(f->config));
}

static int teardown(void **state) {
    fixture_t *f = *state;
    d2g_testenv_stop(&f->env);
    free(f);
    return 0;
}

/* Reads fd to the end into a malloc'ed string. */
static char *slurp(int fd) {
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    ssize_t n;
    while ((n = read(fd, buf + len, cap - len - 1)) > 0) {
        len += (size_t)n;
        if (cap - len < 2)
            buf = realloc(buf, cap *= 2);
    }
    buf[len] = '\0';
    return buf;
}

/*
 * Runs `ds2grist --config CONFIG args...` (config NULL: no --config), with
 * env_kv ("NAME=value" or NULL) added to its environment. Returns the exit
 * code; *out gets stdout, *err_out stderr (both malloc'ed).
 */
static int run_cli(const char *config, const char *env_kv, char **out, char **err_out, ...) {
    const char *argv[32];
    int argc = 0;
    argv[argc++] = D2G_CLI_BIN;
    if (config) {
        argv[argc++] = "--config";
        argv[argc++] = config;
    }
    va_list ap;
    va_start(ap, err_out);
    const char *a;
    while ((a = va_arg(ap, const char *)) && argc < 31)
        argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;

    char errpath[] = "/tmp/d2g-test-cli-stderr-XXXXXX";
    int errfd = mkstemp(errpath);
    int pipefd[2];
    if (errfd < 0 || pipe(pipefd))
        fail_msg("cannot set up the child's output");
    pid_t pid = fork();
    if (pid == 0) {
        dup2(pipefd[1], 1);
        dup2(errfd, 2);
        close(pipefd[0]);
        close(pipefd[1]);
        close(errfd);
        if (env_kv)
            putenv((char *)env_kv);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(pipefd[1]);
    *out = slurp(pipefd[0]);
    close(pipefd[0]);
    int status;
    waitpid(pid, &status, 0);
    lseek(errfd, 0, SEEK_SET);
    *err_out = slurp(errfd);
    close(errfd);
    unlink(errpath);
    int rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
    if (getenv("D2G_TEST_VERBOSE"))
        fprintf(stderr, "$ ds2grist %s ... -> %d\n%s%s", argc > 3 ? argv[3] : "", rc, *out, *err_out);
    return rc;
}

static json_t *parse(const char *text) {
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    if (!j)
        fail_msg("not JSON (%s): %s", e.text, text);
    return j;
}

static d2g_redis_t *redis(fixture_t *f) {
    char url[64], err[D2G_ERRLEN];
    d2g_redis_t *r;
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", f->env.redis_port);
    assert_int_equal(d2g_redis_connect(url, NULL, NULL, "ds2grist", 2000, &r, err, sizeof(err)), 0);
    return r;
}

/* --- config check ---------------------------------------------------------------- */

static void test_config_check(void **state) {
    fixture_t *f = *state;
    char *out, *err;
    assert_int_equal(run_cli(f->config, NULL, &out, &err, "config", "check", NULL), 0);
    assert_non_null(strstr(out, "valid"));
    assert_non_null(strstr(out, "1203"));
    assert_non_null(strstr(out, "docB"));
    assert_non_null(strstr(out, "ds2grist.dlq"));
    assert_null(strstr(out, DS_SECRET));
    assert_null(strstr(out, GRIST_SECRET));
    assert_null(strstr(err, DS_SECRET));
    free(out);
    free(err);

    assert_int_equal(run_cli(f->config, NULL, &out, &err, "config", "check", "--json", NULL), 0);
    assert_null(strstr(out, DS_SECRET));
    assert_null(strstr(out, GRIST_SECRET));
    json_t *j = parse(out);
    assert_true(json_is_true(json_object_get(j, "valid")));
    assert_int_equal(json_array_size(json_object_get(j, "procedures")), 3);
    json_t *docs = json_object_get(j, "documents");
    assert_int_equal(json_array_size(docs), 2);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(docs, 0), "permits")), 8);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(docs, 0), "procedures")), 2);
    json_decref(j);
    free(out);
    free(err);

    /* A procedure's mapping options and filter are shown as configured. */
    char opts[600];
    assert_int_equal(d2g_test_write_config(&f->env, "opts.json",
                                           "[{\"number\": 7, \"ds_token\": \"main\", \"grist_server\": \"g\","
                                           " \"document\": \"d\", \"mapping\": {\"ref_links\": true, \"avis\": true},"
                                           " \"filter\": {\"states\": [\"refuse\", \"accepte\"], \"deposited_to\": \"2026-06-30\"}}]",
                                           400, 8, "", opts, sizeof(opts)),
                     0);
    assert_int_equal(run_cli(opts, NULL, &out, &err, "config", "check", NULL), 0);
    assert_non_null(strstr(out, "MAPPING"));
    assert_non_null(strstr(out, "ref_links,avis"));
    assert_non_null(strstr(out, "2 states, ..2026-06-30"));
    free(out);
    free(err);
    assert_int_equal(run_cli(opts, NULL, &out, &err, "config", "check", "--json", NULL), 0);
    j = parse(out);
    json_t *p0 = json_array_get(json_object_get(j, "procedures"), 0);
    json_t *both = json_pack("{s:O, s:O}", "mapping", json_object_get(p0, "mapping"), "filter",
                             json_object_get(p0, "filter"));
    char *shown = json_dumps(both, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(both);
    assert_string_equal(shown, "{\"filter\":{\"deposited_from\":null,\"deposited_to\":\"2026-06-30\","
                               "\"instruction_groups\":[],\"states\":[\"accepte\",\"refuse\"]},"
                               "\"mapping\":{\"attachments\":false,\"avis\":true,\"geo_areas\":false,\"messages\":false,\"ref_links\":true}}");
    free(shown);
    json_decref(j);
    free(out);
    free(err);

    /* A procedure naming a server that does not exist. */
    char bad[600];
    assert_int_equal(d2g_test_write_config(&f->env, "bad.json",
                                           "[{\"number\": 1, \"ds_token\": \"main\", \"grist_server\": "
                                           "\"g2\", \"document\": \"d\"}]",
                                           400, 8, "", bad, sizeof(bad)),
                     0);
    assert_int_equal(run_cli(bad, NULL, &out, &err, "config", "check", NULL), 2);
    assert_non_null(strstr(out, "INVALID"));
    assert_non_null(strstr(out, "procedures[0].grist_server"));
    free(out);
    free(err);
    assert_int_equal(run_cli(bad, NULL, &out, &err, "config", "check", "--json", NULL), 2);
    j = parse(out);
    assert_true(json_is_false(json_object_get(j, "valid")));
    assert_non_null(strstr(json_string_value(json_object_get(j, "error")), "procedures[0].grist_server"));
    json_decref(j);
    free(out);
    free(err);

    /* A secret that does not resolve is named by its variable, never by a value. */
    assert_int_equal(run_cli(f->config, "D2G_TEST_DS_TOKEN=", &out, &err, "config", "check", NULL), 2);
    assert_non_null(strstr(out, "D2G_TEST_DS_TOKEN"));
    free(out);
    free(err);

    /* Usage errors and help. */
    assert_int_equal(run_cli(f->config, NULL, &out, &err, "frobnicate", NULL), 2);
    free(out);
    free(err);
    assert_int_equal(run_cli(NULL, NULL, &out, &err, "status", "--help", NULL), 0);
    assert_non_null(strstr(out, "usage: ds2grist"));
    free(out);
    free(err);
}

/* --- status ------------------------------------------------------------------------ */

static void produce(fixture_t *f, const char *topic, int partition, const char *key, const char *value,
                    rd_kafka_headers_t *headers) {
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", f->env.kafka_bootstrap, errstr, sizeof(errstr));
    rd_kafka_t *p = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    assert_non_null(p);
    if (!headers)
        headers = rd_kafka_headers_new(0);
    assert_int_equal(rd_kafka_producev(p, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
                                       RD_KAFKA_V_KEY(key, strlen(key)),
                                       RD_KAFKA_V_VALUE((void *)value, strlen(value)),
                                       RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                       RD_KAFKA_V_HEADERS(headers), RD_KAFKA_V_END),
                     0);
    assert_int_equal(rd_kafka_flush(p, 10000), 0);
    rd_kafka_destroy(p);
}

static json_t *find_number(json_t *arr, json_int_t number) {
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) if (json_integer_value(json_object_get(v, "number")) == number) return v;
    fail_msg("procedure %lld not in the output", (long long)number);
    return NULL;
}

static void test_status(void **state) {
    fixture_t *f = *state;
    char err[D2G_ERRLEN], now_s[24], lease_key[D2G_KEYLEN], permits_key[D2G_KEYLEN];
    d2g_redis_t *r = redis(f);
    int64_t now = d2g_clock_wall_ms();
    snprintf(now_s, sizeof(now_s), "%lld", (long long)(now - 5000));
    const char *pairs[] = {"updated_since", "2026-02-01T00:00:00Z", "after", "Y3Vyc29yLTQy",
                           "last_poll_ms", now_s, NULL};
    assert_int_equal(d2g_cursor_set(r, 1201, pairs, err, sizeof(err)), 0);
    assert_int_equal(d2g_cursor_status_ok(r, 1201, now - 5000, 7, err, sizeof(err)), 0);
    assert_int_equal(d2g_cursor_status_ok(r, 1202, now - 60000, 2, err, sizeof(err)), 0);
    /* The reason ends in half a UTF-8 character (a cut made elsewhere): status --json still
     * lists the procedure, with the bad byte replaced. */
    assert_int_equal(d2g_cursor_status_error(r, 1202, now - 1000, 1, "DS answered 403: token revoked \xc3",
                                             err, sizeof(err)), 0);
    d2g_keys_proc(d2g_redis_namespace(r), lease_key, sizeof(lease_key), 1201, "lease");
    redisReply *rep = d2g_redis_cmd(r, err, sizeof(err), "SET %s %s PX 60000", lease_key,
                                    "producer-7d9f:1:0a1b2c3d");
    assert_non_null(rep);
    freeReplyObject(rep);
    d2g_keys_doc(d2g_redis_namespace(r), permits_key, sizeof(permits_key), "g", "docA", "permits");
    int64_t wait = -1;
    assert_int_equal(d2g_permits_acquire(r, permits_key, 8, 60000, "worker-1:1:abc", &wait, err,
                                         sizeof(err)), 0);
    assert_int_equal(wait, 0);
    /* Two 429s a worker received on docA (recorded as the writer does), one of them old. */
    char recent_key[256];
    d2g_keys_doc(d2g_redis_namespace(r), recent_key, sizeof(recent_key), "g", "docA", "recent429");
    rep = d2g_redis_cmd(r, err, sizeof(err), "ZADD %s %lld a %lld b", recent_key,
                        (long long)d2g_clock_wall_ms() - 60000, (long long)d2g_clock_wall_ms() - 7200000);
    assert_non_null(rep);
    freeReplyObject(rep);
    d2g_redis_free(r);
    /* Five messages waiting for the workers (their group committed nothing yet). */
    for (int i = 0; i < 5; i++)
        produce(f, "ds2grist.dossiers", i % 4, "1201:1", "{}", NULL);

    char *out, *errout;
    assert_int_equal(run_cli(f->config, NULL, &out, &errout, "status", "--json", NULL), 0);
    json_t *j = parse(out);
    json_t *procs = json_object_get(j, "procedures");
    assert_int_equal(json_array_size(procs), 3);
    json_t *p1 = find_number(procs, 1201), *p2 = find_number(procs, 1202), *p3 = find_number(procs, 1203);
    json_t *c1 = json_object_get(p1, "cursor");
    assert_string_equal(json_string_value(json_object_get(c1, "updated_since")), "2026-02-01T00:00:00Z");
    assert_true(json_is_true(json_object_get(c1, "after_set")));
    assert_int_equal(json_integer_value(json_object_get(c1, "last_poll_ms")), now - 5000);
    assert_int_equal(json_integer_value(json_object_get(p1, "last_success_ms")), now - 5000);
    assert_int_equal(json_integer_value(json_object_get(p1, "emitted")), 7);
    assert_true(json_is_false(json_object_get(p1, "failed")));
    assert_true(json_is_null(json_object_get(p1, "last_error")));
    assert_string_equal(json_string_value(json_object_get(json_object_get(p1, "lease"), "holder")),
                        "producer-7d9f:1:0a1b2c3d");
    assert_true(json_integer_value(json_object_get(json_object_get(p1, "lease"), "ttl_ms")) > 0);
    assert_string_equal(json_string_value(json_object_get(p2, "last_error")),
                        "DS answered 403: token revoked ?");
    assert_int_equal(json_integer_value(json_object_get(p2, "last_error_ms")), now - 1000);
    assert_true(json_is_true(json_object_get(p2, "failed")));
    assert_true(json_is_null(json_object_get(p2, "lease")));
    assert_string_equal(json_string_value(json_object_get(p2, "document")), "docA");
    assert_string_equal(json_string_value(json_object_get(p2, "ds_token")), "main");
    assert_true(json_is_null(json_object_get(p3, "last_success_ms")));
    assert_true(json_is_null(json_object_get(json_object_get(p3, "cursor"), "updated_since")));
    json_t *docs = json_object_get(j, "documents");
    assert_int_equal(json_array_size(docs), 2);
    json_t *docA = json_array_get(docs, 0), *docB = json_array_get(docs, 1);
    assert_string_equal(json_string_value(json_object_get(docA, "document")), "docA");
    assert_int_equal(json_integer_value(json_object_get(docA, "permits_in_use")), 1);
    assert_int_equal(json_integer_value(json_object_get(docA, "permits")), 8);
    assert_int_equal(json_integer_value(json_object_get(docB, "permits_in_use")), 0);
    assert_int_equal(json_integer_value(json_object_get(docA, "recent_429s")), 1); /* the last hour's */
    assert_int_equal(json_integer_value(json_object_get(docB, "recent_429s")), 0);
    json_t *lag = json_object_get(j, "lag");
    assert_int_equal(json_integer_value(json_object_get(lag, "total")), 5);
    assert_int_equal(json_array_size(json_object_get(lag, "partitions")), 4);
    json_decref(j);
    free(out);
    free(errout);

    /* The human table says the same. */
    assert_int_equal(run_cli(f->config, NULL, &out, &errout, "status", NULL), 0);
    assert_non_null(strstr(out, "producer-7d9f:1:0a1b2c3d"));
    assert_non_null(strstr(out, "FAILED"));
    assert_non_null(strstr(out, "token revoked"));
    assert_non_null(strstr(out, "Messages waiting: 5"));
    free(out);
    free(errout);

    /* One procedure: only its document. */
    assert_int_equal(run_cli(f->config, NULL, &out, &errout, "status", "--json", "--no-lag", "1203", NULL), 0);
    j = parse(out);
    assert_int_equal(json_array_size(json_object_get(j, "procedures")), 1);
    assert_int_equal(json_array_size(json_object_get(j, "documents")), 1);
    assert_null(json_object_get(j, "lag"));
    json_decref(j);
    free(out);
    free(errout);

    assert_int_equal(run_cli(f->config, NULL, &out, &errout, "status", "9999", NULL), 2);
    assert_non_null(strstr(errout, "9999"));
    free(out);
    free(errout);

    /* Redis unreachable: a clear message and 1. */
    assert_int_equal(run_cli(f->config, "DS2GRIST_REDIS_URL=redis://127.0.0.1:1", &out, &errout,
                             "status", "--no-lag", NULL), 1);
    assert_non_null(strstr(errout, "Redis"));
    free(out);
    free(errout);
}

/* --- resync ------------------------------------------------------------------------- */

static void test_resync(void **state) {
    fixture_t *f = *state;
    char err[D2G_ERRLEN], *out, *errout;
    d2g_redis_t *r = redis(f);
    const char *pairs[] = {"updated_since", "2026-02-01T00:00:00Z", "after", "Y3Vyc29yLTQy",
                           "last_poll_ms", "1767225600000", "deleted_since", "2026-02-01T00:00:00Z",
                           NULL};
    assert_int_equal(d2g_cursor_set(r, 1201, pairs, err, sizeof(err)), 0);

    assert_int_equal(run_cli(f->config, NULL, &out, &errout, "resync", "1201", "--since",
                             "2026-01-01T00:00:00Z", NULL), 0);
    assert_non_null(strstr(out, "1201"));
    assert_non_null(strstr(out, "2026-01-01T00:00:00Z"));
    free(out);
    free(errout);
    char k[128];
    d2g_keys_proc(d2g_redis_namespace(r), k, sizeof(k), 1201, "cursor");
    redisReply *rep = d2g_redis_cmd(r, err, sizeof(err), "HGETALL %s", k);
    assert_non_null(rep);
    json_t *h = json_object();
    for (size_t i = 0; i + 1 < rep->elements; i += 2)
        json_object_set_new(h, rep->element[i]->str, json_string(rep->element[i + 1]->str));
    freeReplyObject(rep);
    assert_string_equal(json_string_value(json_object_get(h, "updated_since")), "2026-01-01T00:00:00Z");
    assert_null(json_object_get(h, "after"));
    assert_null(json_object_get(h, "last_poll_ms"));
    /* Deletions are kept, as with the producer's resync. */
    assert_string_equal(json_string_value(json_object_get(h, "deleted_since")), "2026-02-01T00:00:00Z");
    json_decref(h);

    /* Without --since: everything, like d2g_cursor_reset(NULL). */
    assert_int_equal(run_cli(f->config, NULL, &out, &errout, "resync", "1202", "--json", NULL), 0);
    json_t *j = parse(out);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "now"), "updated_since")),
                        D2G_CURSOR_EPOCH);
    json_decref(j);
    free(out);
    free(errout);
    d2g_cursor_t c;
    assert_int_equal(d2g_cursor_load(r, 1202, &c, err, sizeof(err)), 0);
    assert_string_equal(c.updated_since, D2G_CURSOR_EPOCH);
    assert_null(c.after);
    d2g_cursor_clear(&c);

    assert_int_equal(run_cli(f->config, NULL, &out, &errout, "resync", "9999", NULL), 2);
    assert_non_null(strstr(errout, "not a configured procedure"));
    free(out);
    free(errout);
    assert_int_equal(run_cli(f->config, NULL, &out, &errout, "resync", "1201", "--since", "yesterday", NULL), 2);
    free(out);
    free(errout);
    assert_int_equal(run_cli(f->config, NULL, &out, &errout, "resync", NULL), 2);
    free(out);
    free(errout);
    d2g_redis_free(r);
}

/* --- dead letters ---------------------------------------------------------------------- */

static void dead_letter(fixture_t *f, int partition, const char *key, const char *value,
                        const char *error, const char *src_offset) {
    rd_kafka_headers_t *h = rd_kafka_headers_new(5);
    rd_kafka_header_add(h, "d2g-error", -1, error, -1);
    rd_kafka_header_add(h, "d2g-source-topic", -1, "ds2grist.dossiers", -1);
    rd_kafka_header_add(h, "d2g-source-partition", -1, "2", -1);
    rd_kafka_header_add(h, "d2g-source-offset", -1, src_offset, -1);
    rd_kafka_header_add(h, "d2g-failed-at", -1, "2026-03-14T14:07:00.123Z", -1);
    produce(f, "ds2grist.dlq", partition, key, value, h); /* h now belongs to the message */
}

/* The dossier topic's messages with key. */
static size_t count_key(const d2g_test_msgs_t *m, const char *key, const char *value) {
    size_t n = 0;
    for (size_t i = 0; i < m->n; i++)
        if (!strcmp(m->v[i].key, key) && (!value || !strcmp(m->v[i].value, value)))
            n++;
    return n;
}

static void test_dlq(void **state) {
    fixture_t *f = *state;
    char *out, *errout;
    static const char *keys[] = {"1201:11", "1201:12", "1203:5"};
    static const char *values[] = {"{\"v\": 1, \"kind\": \"upsert\", \"procedure\": 1201, \"number\": 11}",
                                   "{\"v\": 1, \"kind\": \"upsert\", \"procedure\": 1201, \"number\": 12}",
                                   "not json at all"};
    static const char *errors[] = {"grist 400: Invalid column \"champ_Q2hhbXAtMQ\"",
                                   "grist 413: record larger than 1 MB",
                                   "malformed message: not JSON"};
    for (int i = 0; i < 3; i++)
        dead_letter(f, i, keys[i], values[i], errors[i], i == 0 ? "17" : "18");

    assert_int_equal(run_cli(f->config, NULL, &out, &errout, "dlq", "list", "--json", NULL), 0);
    json_t *j = parse(out);
    json_t *msgs = json_object_get(j, "messages");
    assert_int_equal(json_array_size(msgs), 3);
    for (int i = 0; i < 3; i++) {
        json_t *m = json_array_get(msgs, (size_t)i);
        assert_int_equal(json_integer_value(json_object_get(m, "partition")), i);
        assert_int_equal(json_integer_value(json_object_get(m, "offset")), 0);
        assert_string_equal(json_string_value(json_object_get(m, "key")), keys[i]);
        assert_string_equal(json_string_value(json_object_get(m, "error")), errors[i]);
        assert_int_equal(json_integer_value(json_object_get(m, "source_partition")), 2);
        assert_int_equal(json_integer_value(json_object_get(m, "source_offset")), i == 0 ? 17 : 18);
        assert_string_equal(json_string_value(json_object_get(m, "failed_at")), "2026-03-14T14:07:00.123Z");
        assert_int_equal(json_integer_value(json_object_get(m, "size")), strlen(values[i]));
        assert_true(json_is_false(json_object_get(m, "replayed")));
    }
    json_decref(j);
    free(out);
    free(errout);
    assert_int_equal(run_cli(f->config, NULL, &out, &errout, "dlq", "list", "--limit", "2", NULL), 0);
    assert_non_null(strstr(out, "Invalid column"));
    assert_null(strstr(out, "not JSON"));
    free(out);
    free(errout);

    /* A dry run sends nothing and records nothing. */
    assert_int_equal(run_cli(f->config, NULL, &out, &errout, "dlq", "replay", "--dry-run", NULL), 0);
    assert_non_null(strstr(out, "3 dead letters would be replayed"));
    free(out);
    free(errout);
    d2g_test_msgs_t m = {0};
    assert_int_equal(d2g_test_kafka_read_all(&f->env, "ds2grist.dossiers", &m), 0);
    assert_int_equal(m.n, 0);
    d2g_test_msgs_free(&m);

    assert_int_equal(run_cli(f->config, NULL, &out, &errout, "dlq", "replay", NULL), 0);
    assert_non_null(strstr(out, "replayed 3 dead letters"));
    free(out);
    free(errout);
    memset(&m, 0, sizeof(m));
    assert_int_equal(d2g_test_kafka_read_all(&f->env, "ds2grist.dossiers", &m), 0);
    assert_int_equal(m.n, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(count_key(&m, keys[i], values[i]), 1);
    d2g_test_msgs_free(&m);

    /* Once only. */
    assert_int_equal(run_cli(f->config, NULL, &out, &errout, "dlq", "replay", "--json", NULL), 0);
    j = parse(out);
    assert_int_equal(json_integer_value(json_object_get(j, "replayed")), 0);
    assert_int_equal(json_integer_value(json_object_get(j, "already_replayed")), 3);
    json_decref(j);
    free(out);
    free(errout);
    assert_int_equal(run_cli(f->config, NULL, &out, &errout, "dlq", "list", "--json", NULL), 0);
    j = parse(out);
    for (int i = 0; i < 3; i++)
        assert_true(json_is_true(json_object_get(json_array_get(json_object_get(j, "messages"), (size_t)i),
                                                 "replayed")));
    json_decref(j);
    free(out);
    free(errout);

    /* --key picks one dossier, past one that is left; each is still sent once. */
    dead_letter(f, 0, "1202:9", "{\"number\": 9}", "grist 400: nine", "30");
    dead_letter(f, 0, "1202:10", "{\"number\": 10}", "grist 400: ten", "31");
    dead_letter(f, 0, "1202:11", "{\"number\": 11}", "grist 400: eleven", "32");
    assert_int_equal(run_cli(f->config, NULL, &out, &errout, "dlq", "replay", "--key", "1202:10", "--json", NULL), 0);
    j = parse(out);
    assert_int_equal(json_integer_value(json_object_get(j, "replayed")), 1);
    assert_int_equal(json_integer_value(json_object_get(j, "other_keys")), 2);
    json_decref(j);
    free(out);
    free(errout);
    assert_int_equal(run_cli(f->config, NULL, &out, &errout, "dlq", "replay", "--key", "1202:10", "--json", NULL), 0);
    j = parse(out);
    assert_int_equal(json_integer_value(json_object_get(j, "replayed")), 0);
    json_decref(j);
    free(out);
    free(errout);
    /* Another dossier past the same gap: only the commit's metadata moves. */
    assert_int_equal(run_cli(f->config, NULL, &out, &errout, "dlq", "replay", "--key", "1202:11", NULL), 0);
    assert_non_null(strstr(out, "replayed 1 dead letters"));
    free(out);
    free(errout);
    assert_int_equal(run_cli(f->config, NULL, &out, &errout, "dlq", "replay", "--limit", "1", "--json", NULL), 0);
    j = parse(out);
    assert_int_equal(json_integer_value(json_object_get(j, "replayed")), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(j, "messages"), 0),
                                                          "key")), "1202:9");
    json_decref(j);
    free(out);
    free(errout);
    assert_int_equal(run_cli(f->config, NULL, &out, &errout, "dlq", "replay", NULL), 0);
    assert_non_null(strstr(out, "replayed 0 dead letters"));
    assert_non_null(strstr(out, "6 replayed before"));
    free(out);
    free(errout);
    memset(&m, 0, sizeof(m));
    assert_int_equal(d2g_test_kafka_read_all(&f->env, "ds2grist.dossiers", &m), 0);
    assert_int_equal(m.n, 6);
    assert_int_equal(count_key(&m, "1202:9", "{\"number\": 9}"), 1);
    assert_int_equal(count_key(&m, "1202:10", "{\"number\": 10}"), 1);
    assert_int_equal(count_key(&m, "1202:11", "{\"number\": 11}"), 1);
    d2g_test_msgs_free(&m);
}

/* A dead letter of procedure 1201 (docA), modified at `modified`. */
static void dead_upsert(fixture_t *f, int64_t number, const char *modified) {
    char key[64], err[D2G_ERRLEN];
    size_t len;
    json_t *dossier = json_pack("{s:s, s:I, s:s, s:s}", "id", "RG9zc2llci0x", "number",
                                (json_int_t)number, "dateDerniereModification", modified, "state",
                                "en_instruction");
    char *value = d2g_envelope_encode(D2G_ENVELOPE_UPSERT, 0, 1201, dossier,
                                      1773497220123LL, &len, err, sizeof(err));
    assert_non_null(value);
    json_decref(dossier);
    d2g_envelope_key(1201, number, key, sizeof(key));
    dead_letter(f, 0, key, value, "grist 400: Invalid column", "40");
    free(value);
}

static const char *status_of(json_t *j, const char *key) {
    json_t *msgs = json_object_get(j, "messages"), *m;
    size_t i;
    json_array_foreach(msgs, i, m)
        if (!strcmp(json_string_value(json_object_get(m, "key")), key))
            return json_string_value(json_object_get(m, "status"));
    return "(absent)";
}

/* A replay does not write an old version over a newer one Grist holds. */
static void test_dlq_superseded(void **state) {
    fixture_t *f = *state;
    char *out, *errout, url[300], config[600], offline[600];
    assert_int_equal(d2g_testenv_start_grist(&f->env,
        "{\"docs\": [{\"id\": \"docA\", \"keys\": [\"" GRIST_SECRET "\"]}], \"writeFixedMs\": 1}"), 0);
    assert_int_equal(d2g_test_write_config(&f->env, "config-grist.json", PROCEDURES, 400, 8, "",
                                           config, sizeof(config)), 0);
    /* The same, with a Grist that does not answer. */
    char grist_url[sizeof(f->env.grist_url)];
    memcpy(grist_url, f->env.grist_url, sizeof(grist_url));
    snprintf(f->env.grist_url, sizeof(f->env.grist_url), "http://127.0.0.1:1");
    assert_int_equal(d2g_test_write_config(&f->env, "config-offline.json", PROCEDURES, 400, 8, "",
                                           offline, sizeof(offline)), 0);
    memcpy(f->env.grist_url, grist_url, sizeof(grist_url));

    /* Procedure 1201's table as the worker writes it: 20 at 15:06 (newer than
     * its dead letter), 21 at 09:00 (older), 23 deleted, 24 deleted at 09:00
     * (its dead letter, at 12:00, is a later restore); 22 has no row. */
    snprintf(url, sizeof(url), "%s/api/docs/docA/tables", f->env.grist_url);
    assert_int_equal(d2g_test_http("POST", url, GRIST_SECRET,
        "{\"tables\": [{\"id\": \"D1201\", \"columns\": ["
        "{\"id\": \"numero\", \"fields\": {\"type\": \"Int\"}},"
        "{\"id\": \"date_derniere_modification\", \"fields\": {\"type\": \"DateTime:Europe/Paris\"}},"
        "{\"id\": \"supprime\", \"fields\": {\"type\": \"Bool\"}},"
        "{\"id\": \"date_suppression\", \"fields\": {\"type\": \"DateTime:Europe/Paris\"}}]}]}", NULL), 200);
    double t1506, t0900;
    int is_int;
    assert_int_equal(d2g_clock_parse_iso("2026-03-14T15:06:00+01:00", &t1506, &is_int), 0);
    assert_int_equal(d2g_clock_parse_iso("2026-03-14T09:00:00+01:00", &t0900, &is_int), 0);
    char body[600];
    snprintf(body, sizeof(body),
             "{\"records\": [{\"fields\": {\"numero\": 20, \"date_derniere_modification\": %.0f}},"
             " {\"fields\": {\"numero\": 21, \"date_derniere_modification\": %.0f}},"
             " {\"fields\": {\"numero\": 23, \"date_derniere_modification\": %.0f, \"supprime\": true}},"
             " {\"fields\": {\"numero\": 24, \"date_derniere_modification\": %.0f, \"supprime\": true,"
             " \"date_suppression\": %.0f}}]}",
             t1506, t0900, t0900, t0900, t0900);
    snprintf(url, sizeof(url), "%s/api/docs/docA/tables/D1201/records", f->env.grist_url);
    assert_int_equal(d2g_test_http("POST", url, GRIST_SECRET, body, NULL), 200);

    for (int64_t n = 20; n <= 24; n++)
        dead_upsert(f, n, "2026-03-14T12:00:00+01:00");
    /* Procedure 1203 writes to docB, which this Grist does not have: no row, sent. */
    dead_letter(f, 1, "1203:5",
                "{\"v\": 1, \"kind\": \"upsert\", \"procedure\": 1203, \"number\": 5,"
                " \"modified\": \"2026-03-14T12:00:00+01:00\", \"fetched_at\": \"2026-03-14T11:07:00.123Z\","
                " \"dossier\": {\"id\": \"x\", \"number\": 5, \"dateDerniereModification\": \"2026-03-14T12:00:00+01:00\"}}",
                "grist 400: x", "41");

    /* Grist unreachable: nothing is sent, nothing recorded, exit 1. */
    assert_int_equal(run_cli(offline, NULL, &out, &errout, "dlq", "replay", "--json", NULL), 1);
    json_t *j = parse(out);
    assert_int_equal(json_integer_value(json_object_get(j, "replayed")), 0);
    assert_int_equal(json_integer_value(json_object_get(j, "failed")), 6);
    assert_string_equal(status_of(j, "1201:21"), "failed");
    free(out);
    free(errout);
    json_decref(j);
    d2g_test_msgs_t m = {0};
    assert_int_equal(d2g_test_kafka_read_all(&f->env, "ds2grist.dossiers", &m), 0);
    assert_int_equal(m.n, 0);
    d2g_test_msgs_free(&m);

    assert_int_equal(run_cli(config, NULL, &out, &errout, "dlq", "replay", "--dry-run", "--json", NULL), 0);
    j = parse(out);
    assert_string_equal(status_of(j, "1201:20"), "superseded");
    assert_string_equal(status_of(j, "1201:21"), "would replay");
    assert_string_equal(status_of(j, "1201:22"), "would replay");
    assert_string_equal(status_of(j, "1201:23"), "superseded");
    assert_string_equal(status_of(j, "1201:24"), "would replay");
    json_decref(j);
    free(out);
    free(errout);

    assert_int_equal(run_cli(config, NULL, &out, &errout, "dlq", "replay", "--json", NULL), 0);
    j = parse(out);
    assert_int_equal(json_integer_value(json_object_get(j, "replayed")), 4);
    assert_int_equal(json_integer_value(json_object_get(j, "superseded")), 2);
    assert_string_equal(status_of(j, "1201:20"), "superseded");
    assert_string_equal(status_of(j, "1201:21"), "replayed");
    assert_string_equal(status_of(j, "1201:22"), "replayed");
    assert_string_equal(status_of(j, "1201:23"), "superseded");
    json_t *m20 = NULL, *mm;
    size_t i;
    json_array_foreach(json_object_get(j, "messages"), i, mm)
        if (!strcmp(json_string_value(json_object_get(mm, "key")), "1201:20"))
            m20 = mm;
    assert_non_null(strstr(json_string_value(json_object_get(m20, "reason")), "newer version"));
    json_decref(j);
    free(out);
    free(errout);
    memset(&m, 0, sizeof(m));
    assert_int_equal(d2g_test_kafka_read_all(&f->env, "ds2grist.dossiers", &m), 0);
    assert_int_equal(m.n, 4);
    assert_int_equal(count_key(&m, "1201:24", NULL), 1);
    assert_int_equal(count_key(&m, "1201:20", NULL), 0);
    assert_int_equal(count_key(&m, "1201:21", NULL), 1);
    assert_int_equal(count_key(&m, "1201:22", NULL), 1);
    assert_int_equal(count_key(&m, "1201:23", NULL), 0);
    assert_int_equal(count_key(&m, "1203:5", NULL), 1);
    d2g_test_msgs_free(&m);

    /* Superseded ones are settled: a second replay has nothing to do. */
    assert_int_equal(run_cli(config, NULL, &out, &errout, "dlq", "replay", "--json", NULL), 0);
    j = parse(out);
    assert_int_equal(json_integer_value(json_object_get(j, "replayed")), 0);
    assert_int_equal(json_integer_value(json_object_get(j, "already_replayed")), 6);
    json_decref(j);
    free(out);
    free(errout);

    /* --force sends an old version all the same. */
    dead_upsert(f, 20, "2026-03-14T12:00:00+01:00");
    assert_int_equal(run_cli(config, NULL, &out, &errout, "dlq", "replay", "--force", NULL), 0);
    assert_non_null(strstr(out, "replayed 1 dead letters"));
    free(out);
    free(errout);
    memset(&m, 0, sizeof(m));
    assert_int_equal(d2g_test_kafka_read_all(&f->env, "ds2grist.dossiers", &m), 0);
    assert_int_equal(count_key(&m, "1201:20", NULL), 1);
    d2g_test_msgs_free(&m);

    /* Every read gave its permit back. */
    char err[D2G_ERRLEN];
    d2g_redis_t *r = redis(f);
    assert_int_equal(d2g_permits_in_use(r, "ds2grist:{doc:g/docA}:permits", err, sizeof(err)), 0);
    d2g_redis_free(r);
}

int main(void) {
    d2g_test_filter_from_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_config_check, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resync, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dlq, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dlq_superseded, setup, teardown),
    };
    return cmocka_run_group_tests_name("cli", tests, NULL, NULL);
}
