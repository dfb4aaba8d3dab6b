/*
 * test_live.c - the configuration changed while dossiers flow (reload.h), and
 * several DS instances in one deployment; real producers and workers against
 * the DS and Grist emulators, a real redis-server and the Kafka mock broker.
 *
 *   reload         two producer replicas; procedures added, changed and removed
 *                  by replacing the file: the new ones are emitted, the removed
 *                  one stops, the replicas' shares cover every procedure once;
 *                  an invalid file is refused (metric, /readyz detail, log with
 *                  the key) while the old configuration keeps running; the
 *                  removed procedure, added back, resumes from its cursor;
 *                  every dossier emitted, none twice
 *   worker         a procedure added to a second document, its permits changed:
 *                  Grist holds what DS has, each dossier once
 *   two DS         two DS emulators as two endpoints, one token each: every
 *                  request goes to its token's instance, each token's budget kept
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
#include <unistd.h>

#include "ds2grist/clock.h"
#include "ds2grist/envelope.h"
#include "ds2grist/err.h"
#include "stack.h"

#define TOKEN D2G_STACK_DS_TOKEN
#define GKEY D2G_STACK_GRIST_KEY
#define TOKEN_B "ds-second-instance-token-7f3a"

static int setup(void **state) {
    d2g_testenv_t *env = calloc(1, sizeof(*env));
    *state = env;
    setenv("D2G_TEST_DS_TOKEN", TOKEN, 1);
    setenv("D2G_TEST_DS_TOKEN_B", TOKEN_B, 1);
    setenv("D2G_TEST_GRIST_KEY", GKEY, 1);
    unsetenv("DS2GRIST_HTTP_PORT");
    if (d2g_testenv_init(env) || d2g_testenv_start_redis(env) || d2g_testenv_start_kafka(env, 8))
        return -1;
    return 0;
}

static int teardown(void **state) {
    d2g_testenv_stop(*state);
    free(*state);
    unsetenv("DS2GRIST_HTTP_PORT");
    return 0;
}

/* The configuration: procedures (JSON array), with a DS and Grist part. */
static void write_cfg(d2g_testenv_t *env, const char *path, const char *ds_json,
                      const char *grist_docs_json, const char *procedures_json) {
    char tmp[600], text[16384];
    snprintf(text, sizeof(text),
             "{\"kafka\": {\"properties\": {\"bootstrap.servers\": \"%s\", \"session.timeout.ms\": \"6000\"}},"
             " \"redis\": {\"url\": \"redis://127.0.0.1:%d\"},"
             " \"ds\": %s,"
             " \"grist\": {\"timeout_s\": 20, \"servers\": {\"g\": {\"url\": \"%s\","
             "   \"api_key\": {\"env\": \"D2G_TEST_GRIST_KEY\"}, \"permits_per_document\": 4,"
             "   \"documents\": %s}}},"
             " \"defaults\": {\"poll_interval_s\": 1},"
             " \"producer\": {\"lease_s\": 15, \"removed_cursor_ttl_s\": 3600},"
             " \"worker\": {\"linger_ms\": 50},"
             " \"procedures\": %s}",
             env->kafka_bootstrap, env->redis_port, ds_json,
             env->grist_url[0] ? env->grist_url : "http://127.0.0.1:1",
             grist_docs_json ? grist_docs_json : "{}", procedures_json);
    /* As an editor does: a new file renamed over the old one. */
    snprintf(tmp, sizeof(tmp), "%s.new", path);
    FILE *f = fopen(tmp, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    assert_int_equal(rename(tmp, path), 0);
}

static void one_ds(d2g_testenv_t *env, char *out, size_t len) {
    snprintf(out, len, "{\"endpoint\": \"%s\", \"timeout_s\": 10, \"tokens\": {\"main\":"
             " {\"secret\": {\"env\": \"D2G_TEST_DS_TOKEN\"}, \"requests_per_minute\": 400}}}",
             env->ds_url);
}

/* procedures (numbers, documents) as a configuration array. */
static void procs_json(const int *numbers, const char *const *docs, int n, const char *opts102,
                       char *out, size_t len) {
    size_t l = (size_t)snprintf(out, len, "[");
    for (int i = 0; i < n; i++)
        l += (size_t)snprintf(out + l, len - l,
                              "%s{\"number\": %d, \"ds_token\": \"main\", \"grist_server\": \"g\","
                              " \"document\": \"%s\"%s%s}", i ? "," : "", numbers[i],
                              docs ? docs[i] : "doc", numbers[i] == 102 && opts102 ? ", " : "",
                              numbers[i] == 102 && opts102 ? opts102 : "");
    snprintf(out + l, len - l, "]");
}

static void spawn(d2g_testenv_t *env, d2g_test_proc_t *p, const char *bin, const char *name,
                  const char *cfg, int http_port) {
    char port[16];
    snprintf(port, sizeof(port), "%d", http_port);
    setenv("DS2GRIST_HTTP_PORT", port, 1); /* inherited by the child only */
    char *argv[] = {(char *)bin, "--config", (char *)cfg, NULL};
    assert_int_equal(d2g_test_proc_spawn(env, p, name, argv), 0);
    unsetenv("DS2GRIST_HTTP_PORT");
}

/* GET http://127.0.0.1:port<path>: the body (caller frees), *status the HTTP status. */
static char *http_get(int port, const char *path, int *status) {
    char url[128], *resp = NULL;
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    int st = d2g_test_http("GET", url, NULL, NULL, &resp);
    if (status)
        *status = st;
    return resp ? resp : strdup("");
}

/* The value of a metric line (exact name and labels), -1 if absent or unreachable. */
static double metric(int port, const char *series) {
    char *text = http_get(port, "/metrics", NULL);
    double v = -1;
    size_t n = strlen(series);
    for (char *l = text; l && *l;) {
        if (!strncmp(l, series, n) && l[n] == ' ') {
            v = atof(l + n + 1);
            break;
        }
        l = strchr(l, '\n');
        if (l)
            l++;
    }
    free(text);
    return v;
}

/* Waits until metric(port, series) == want (up to timeout_s). */
static int wait_metric(int port, const char *series, double want, int timeout_s) {
    int64_t end = d2g_clock_mono_ms() + timeout_s * 1000LL;
    while (d2g_clock_mono_ms() < end) {
        if (metric(port, series) == want)
            return 1;
        d2g_test_sleep_ms(200);
    }
    fprintf(stderr, "metric %s on :%d is %g, not %g\n", series, port, metric(port, series), want);
    return 0;
}

/* What landed in the dossier topic. */
typedef struct {
    long long procedure, number;
    char modified[40];
    int kind;
} msg_t;

static size_t read_msgs(d2g_testenv_t *env, msg_t **out) {
    d2g_test_msgs_t msgs = {0};
    assert_int_equal(d2g_test_kafka_read_all(env, "ds2grist.dossiers", &msgs), 0);
    msg_t *m = calloc(msgs.n + 1, sizeof(*m));
    for (size_t i = 0; i < msgs.n; i++) {
        d2g_envelope_t e;
        char err[D2G_ERRLEN];
        assert_null(strstr(msgs.v[i].value, TOKEN));
        assert_null(strstr(msgs.v[i].value, TOKEN_B));
        if (d2g_envelope_decode(msgs.v[i].value, strlen(msgs.v[i].value), &e, err, sizeof(err)))
            fail_msg("message %zu does not decode: %s", i, err);
        m[i].procedure = e.procedure;
        m[i].number = e.number;
        m[i].kind = e.kind;
        snprintf(m[i].modified, sizeof(m[i].modified), "%s", e.modified);
        d2g_envelope_clear(&e);
    }
    size_t n = msgs.n;
    d2g_test_msgs_free(&msgs);
    *out = m;
    return n;
}

static size_t count_proc(const msg_t *m, size_t n, long long procedure) {
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += m[i].procedure == procedure;
    return c;
}

/* Messages that repeat another (same dossier, same version, same kind). */
static size_t duplicates(const msg_t *m, size_t n) {
    size_t d = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < i; j++)
            if (m[i].procedure == m[j].procedure && m[i].number == m[j].number &&
                m[i].kind == m[j].kind && !strcmp(m[i].modified, m[j].modified)) {
                d++;
                break;
            }
    return d;
}

/* Every dossier DS has for procedure has an upsert of its current version. */
static int covered(d2g_testenv_t *env, const msg_t *m, size_t n, long long procedure) {
    json_t *list = d2g_stack_ds_get(env, procedure, 0);
    json_t *ds = json_object_get(list, "dossiers");
    int all = 1;
    for (size_t k = 0; k < json_array_size(ds) && all; k++) {
        json_t *d = json_array_get(ds, k);
        long long num = json_integer_value(json_object_get(d, "number"));
        int found = 0;
        for (size_t i = 0; i < n && !found; i++)
            found = m[i].procedure == procedure && m[i].number == num &&
                    m[i].kind == D2G_ENVELOPE_UPSERT;
        all = found;
    }
    json_decref(list);
    return all;
}

static int wait_covered(d2g_testenv_t *env, const long long *procs, int np, int timeout_s) {
    int64_t end = d2g_clock_mono_ms() + timeout_s * 1000LL;
    for (;;) {
        msg_t *m;
        size_t n = read_msgs(env, &m);
        int all = 1;
        for (int i = 0; i < np && all; i++)
            all = covered(env, m, n, procs[i]);
        free(m);
        if (all)
            return 1;
        if (d2g_clock_mono_ms() > end)
            return 0;
        d2g_test_sleep_ms(300);
    }
}

static long long ds_create(d2g_testenv_t *env, int procedure) {
    char path[96];
    snprintf(path, sizeof(path), "/admin/procedures/%d/dossiers", procedure);
    json_t *j = d2g_stack_ds_do(env, "POST", path, "{}");
    long long n = json_integer_value(json_object_get(j, "number"));
    json_decref(j);
    return n;
}

static int log_has(d2g_testenv_t *env, const char *name, const char *a, const char *b) {
    char path[400], line[8192];
    snprintf(path, sizeof(path), "%s/%s.log", env->dir, name);
    FILE *f = fopen(path, "r");
    int found = 0;
    while (f && !found && fgets(line, sizeof(line), f))
        found = strstr(line, a) && (!b || strstr(line, b));
    if (f)
        fclose(f);
    return found;
}

static void test_reload_two_replicas(void **state) {
    d2g_testenv_t *env = *state;
    char ds[1024], procs[4096], cfg[400], body[64];
    d2g_test_proc_t a, b;
    int pa = env->redis_port + 11, pb = env->redis_port + 12;

    assert_int_equal(d2g_testenv_start_ds(env,
        "{\"seed\": 3, \"procedures\": [{\"number\": 101, \"dossiers\": 120}, {\"number\": 102, \"dossiers\": 120},"
        " {\"number\": 103, \"dossiers\": 120}, {\"number\": 104, \"dossiers\": 120},"
        " {\"number\": 105, \"dossiers\": 120}, {\"number\": 106, \"dossiers\": 120}],"
        " \"tokens\": [{\"name\": \"main\", \"secret\": \"" TOKEN "\", \"procedures\": \"*\"}]}"), 0);
    one_ds(env, ds, sizeof(ds));
    snprintf(cfg, sizeof(cfg), "%s/config.json", env->dir);
    const int first[] = {101, 102, 103, 104};
    procs_json(first, NULL, 4, NULL, procs, sizeof(procs));
    write_cfg(env, cfg, ds, NULL, procs);
    spawn(env, &a, D2G_PRODUCER_BIN, "producer-a", cfg, pa);
    spawn(env, &b, D2G_PRODUCER_BIN, "producer-b", cfg, pb);
    const long long c4[] = {101, 102, 103, 104};
    assert_true(wait_covered(env, c4, 4, 90));
    assert_true(wait_metric(pa, "ds2grist_config_generation", 1, 5));
    msg_t *m;
    size_t n = read_msgs(env, &m);
    size_t n103 = count_proc(m, n, 103);
    free(m);

    /* Reload 1: 105 and 106 added, 103 removed, 102's interval changed. */
    const int second[] = {101, 102, 104, 105, 106};
    procs_json(second, NULL, 5, "\"options\": {\"poll_interval_s\": 2}", procs, sizeof(procs));
    int64_t t0 = d2g_clock_mono_ms();
    write_cfg(env, cfg, ds, NULL, procs);
    long long new101 = ds_create(env, 101);
    assert_true(wait_metric(pa, "ds2grist_config_generation", 2, 20));
    assert_true(wait_metric(pb, "ds2grist_config_generation", 2, 20));
    int64_t applied_ms = d2g_clock_mono_ms() - t0;
    /* 103 is no longer polled: dossiers created there now stay out, for the time being. */
    long long in103[2] = {ds_create(env, 103), ds_create(env, 103)};
    const long long c5[] = {101, 102, 104, 105, 106};
    assert_true(wait_covered(env, c5, 5, 90));
    int64_t covered_ms = d2g_clock_mono_ms() - t0;
    /* The shares: every configured procedure is checked by exactly one replica. */
    int64_t end = d2g_clock_mono_ms() + 20000;
    while (metric(pa, "ds2grist_procedures_owned") + metric(pb, "ds2grist_procedures_owned") != 5 &&
           d2g_clock_mono_ms() < end)
        d2g_test_sleep_ms(200);
    double oa = metric(pa, "ds2grist_procedures_owned"), ob = metric(pb, "ds2grist_procedures_owned");
    printf("# reload: applied by both replicas %lld ms after the file changed; 2 new procedures "
           "(240 dossiers) emitted %lld ms after; shares %g + %g of 5\n", (long long)applied_ms,
           (long long)covered_ms, oa, ob);
    assert_int_equal((int)(oa + ob), 5);
    n = read_msgs(env, &m);
    assert_int_equal(count_proc(m, n, 103), n103);
    int saw101 = 0;
    for (size_t i = 0; i < n; i++)
        saw101 |= m[i].procedure == 101 && m[i].number == new101;
    assert_true(saw101);
    free(m);
    assert_true(log_has(env, "producer-a", "\"procedure_stopped\"", "\"procedure\":103"));

    /* An invalid file: refused, reported, the running configuration goes on. */
    const int bad[] = {101, 102, 104, 105, 106, 107};
    procs_json(bad, NULL, 6, NULL, procs, sizeof(procs));
    char *p107 = strstr(procs, "{\"number\": 107, \"ds_token\": \"main\"");
    assert_non_null(p107);
    memcpy(p107 + strlen("{\"number\": 107, \"ds_token\": \""), "mian", 4); /* a typo */
    write_cfg(env, cfg, ds, NULL, procs);
    assert_true(wait_metric(pa, "ds2grist_config_reload_total{result=\"failed\"}", 1, 20));
    assert_true(wait_metric(pb, "ds2grist_config_reload_total{result=\"failed\"}", 1, 20));
    assert_int_equal((int)metric(pa, "ds2grist_config_generation"), 2);
    int st = 0;
    char *ready = http_get(pa, "/readyz", &st);
    printf("# invalid file: /readyz %d %s", st, ready);
    assert_int_equal(st, 200);
    assert_non_null(strstr(ready, "ready; config reload failed"));
    assert_non_null(strstr(ready, "procedures[5].ds_token"));
    free(ready);
    assert_true(log_has(env, "producer-b", "\"config_reload_failed\"", "procedures[5].ds_token: unknown token \\\"mian\\\""));
    long long new104 = ds_create(env, 104);
    const long long c104[] = {104};
    assert_true(wait_covered(env, c104, 1, 30));
    (void)new104;

    /* 103 added back: it resumes from its cursor (only what changed meanwhile). */
    const int third[] = {101, 102, 103, 104, 105, 106};
    procs_json(third, NULL, 6, NULL, procs, sizeof(procs));
    write_cfg(env, cfg, ds, NULL, procs);
    assert_true(wait_metric(pa, "ds2grist_config_generation", 3, 20));
    assert_true(wait_metric(pb, "ds2grist_config_generation", 3, 20));
    ready = http_get(pb, "/readyz", &st);
    assert_string_equal(ready, "ready\n"); /* the failure's detail is gone */
    free(ready);
    const long long c6[] = {101, 102, 103, 104, 105, 106};
    assert_true(wait_covered(env, c6, 6, 60));
    end = d2g_clock_mono_ms() + 20000;
    while (metric(pa, "ds2grist_procedures_owned") + metric(pb, "ds2grist_procedures_owned") != 6 &&
           d2g_clock_mono_ms() < end)
        d2g_test_sleep_ms(200);
    assert_int_equal((int)(metric(pa, "ds2grist_procedures_owned") + metric(pb, "ds2grist_procedures_owned")), 6);
    d2g_test_sleep_ms(3000); /* let anything re-read arrive */
    n = read_msgs(env, &m);
    size_t after103 = count_proc(m, n, 103), dups = duplicates(m, n);
    int got[2] = {0, 0};
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < 2; k++)
            got[k] |= m[i].procedure == 103 && m[i].number == in103[k];
    printf("# re-added: procedure 103 emitted %zu messages after coming back (%zu before; 2 dossiers "
           "created while it was removed); %zu messages in all, %zu duplicates\n",
           after103 - n103, n103, n, dups);
    assert_true(got[0] && got[1]);
    assert_true(after103 - n103 < 120); /* not a whole re-sync */
    assert_int_equal(dups, 0);
    free(m);
    snprintf(body, sizeof(body), "%d", 0);
    assert_int_equal(d2g_test_proc_stop(&a), 0);
    assert_int_equal(d2g_test_proc_stop(&b), 0);
}

int main(void) {
    d2g_test_filter_from_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_reload_two_replicas, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
