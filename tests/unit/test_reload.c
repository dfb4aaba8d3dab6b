/* test_reload.c - the live configuration (reload.h): a ConfigMap's symlink swap,
 * an editor's rename-replace, a refused file, procedure sources, references. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ds2grist/clock.h"
#include "ds2grist/config.h"
#include "ds2grist/err.h"
#include "ds2grist/metrics.h"
#include "ds2grist/reload.h"
#include "ds2grist/service.h"

#define HEAD                                                                                   \
    "{\"kafka\": {\"properties\": {\"bootstrap.servers\": \"127.0.0.1:9092\"}},"              \
    " \"redis\": {\"url\": \"redis://127.0.0.1:6379/0\"},"                                    \
    " \"ds\": {\"tokens\": {\"t1\": {\"secret\": {\"env\": \"D2G_TEST_DS_TOKEN\"}},"           \
    "                     \"t2\": {\"secret\": {\"env\": \"D2G_TEST_DS_TOKEN\"},"              \
    "                            \"endpoint\": \"http://127.0.0.1:7/api/v2/graphql\"}}},"      \
    " \"grist\": {\"servers\": {\"main\": {\"url\": \"http://127.0.0.1:2/\","                  \
    "          \"api_key\": {\"env\": \"D2G_TEST_GRIST_KEY\"}}}},"

#define PROC(n, doc) "{\"number\": " #n ", \"ds_token\": \"t1\", \"grist_server\": \"main\", \"document\": \"" doc "\"}"

typedef struct {
    char dir[256];
    char path[300];
    int version;
    d2g_service_t svc;
} fixture_t;

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* A Kubernetes ConfigMap volume: dir/config.json -> ..data/config.json, ..data -> ..vN. */
static void configmap_publish(fixture_t *fx, const char *text) {
    char vdir[400], file[500], tmp[400], data[400], target[64];
    fx->version++;
    snprintf(vdir, sizeof(vdir), "%s/..v%d", fx->dir, fx->version);
    assert_int_equal(mkdir(vdir, 0700), 0);
    snprintf(file, sizeof(file), "%s/config.json", vdir);
    write_file(file, text);
    snprintf(target, sizeof(target), "..v%d", fx->version);
    snprintf(tmp, sizeof(tmp), "%s/..data_tmp", fx->dir);
    snprintf(data, sizeof(data), "%s/..data", fx->dir);
    unlink(tmp);
    assert_int_equal(symlink(target, tmp), 0);
    assert_int_equal(rename(tmp, data), 0); /* the atomic swap kubelet does */
}

static int setup(void **state) {
    fixture_t *fx = calloc(1, sizeof(*fx));
    setenv("D2G_TEST_DS_TOKEN", "ds-secret-value", 1);
    setenv("D2G_TEST_GRIST_KEY", "grist-secret-value", 1);
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/d2g-reload-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    snprintf(fx->path, sizeof(fx->path), "%s/config.json", fx->dir);
    char err[D2G_ERRLEN];
    d2g_config_t tmp = {.http.port = 0};
    assert_int_equal(d2g_service_start(&fx->svc, &tmp, err, sizeof(err)), 0);
    *state = fx;
    return 0;
}

static int teardown(void **state) {
    fixture_t *fx = *state;
    char cmd[400];
    d2g_service_stop(&fx->svc);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", fx->dir);
    free(fx);
    return 0;
}

/* Ticks until a new configuration is current, or 3 s. */
static int tick_until_new(d2g_reload_t *r) {
    int64_t end = d2g_clock_mono_ms() + 3000;
    while (d2g_clock_mono_ms() < end) {
        if (d2g_reload_tick(r, d2g_clock_mono_ms()))
            return 1;
        usleep(20000);
    }
    return 0;
}

static d2g_reload_t *start(fixture_t *fx, const char *text) {
    char err[D2G_ERRLEN];
    d2g_config_t *cfg;
    configmap_publish(fx, text);
    char link[400];
    snprintf(link, sizeof(link), "%s/config.json", fx->dir);
    if (access(link, F_OK) != 0)
        assert_int_equal(symlink("..data/config.json", link), 0);
    assert_int_equal(d2g_config_load(fx->path, &cfg, err, sizeof(err)), 0);
    d2g_reload_t *r = d2g_reload_new(fx->path, cfg, &fx->svc, NULL, err, sizeof(err));
    assert_non_null(r);
    return r;
}

static void test_configmap_swap(void **state) {
    fixture_t *fx = *state;
    d2g_reload_t *r = start(fx, HEAD "\"procedures\": [" PROC(1, "docA") "]}");
    const d2g_config_t *first = d2g_reload_current(r);
    assert_int_equal(first->generation, 1);
    /* A request in flight keeps the configuration it started with. */
    d2g_config_t *held = d2g_config_ref(first);
    /* Nothing changed: no reload. */
    assert_int_equal(d2g_reload_tick(r, d2g_clock_mono_ms() + D2G_RELOAD_POLL_MS + 1), 0);

    configmap_publish(fx, HEAD "\"procedures\": [" PROC(1, "docA") "," PROC(2, "docB") "]}");
    assert_int_equal(tick_until_new(r), 1);
    const d2g_config_t *now = d2g_reload_current(r);
    assert_int_equal(now->generation, 2);
    assert_int_equal(now->n_procedures, 2);
    /* The old object is still whole for its holder. */
    assert_int_equal(held->n_procedures, 1);
    assert_string_equal(held->procedures[0].document, "docA");
    d2g_config_free(held);

    /* Endpoints: the token's own, else ds.endpoint's default. */
    assert_string_equal(d2g_config_find_token(now, "t1")->endpoint,
                        "https://www.demarches-simplifiees.fr/api/v2/graphql");
    assert_string_equal(d2g_config_find_token(now, "t2")->endpoint,
                        "http://127.0.0.1:7/api/v2/graphql");
    d2g_reload_stats_t st;
    d2g_reload_stats(r, &st);
    assert_int_equal(st.ok, 1);
    assert_int_equal(st.failed, 0);
    d2g_reload_free(r);
}

static void test_invalid_file_keeps_running(void **state) {
    fixture_t *fx = *state;
    d2g_reload_t *r = start(fx, HEAD "\"procedures\": [" PROC(1, "docA") "]}");
    /* An editor's rename-replace of a regular file, with a mistake in procedures[1]. */
    char tmp[400];
    snprintf(tmp, sizeof(tmp), "%s/..v%d/config.json.swp", fx->dir, fx->version);
    write_file(tmp, HEAD "\"procedures\": [" PROC(1, "docA") ","
                    "{\"number\": 2, \"ds_token\": \"t1\", \"grist_server\": \"main2\", \"document\": \"d\"}]}");
    char real[400];
    snprintf(real, sizeof(real), "%s/..v%d/config.json", fx->dir, fx->version);
    assert_int_equal(rename(tmp, real), 0);
    assert_int_equal(tick_until_new(r), 0);
    d2g_reload_stats_t st;
    d2g_reload_stats(r, &st);
    assert_int_equal(st.failed, 1);
    assert_int_equal(st.generation, 1);
    assert_non_null(strstr(st.last_error, "procedures[1].grist_server"));
    assert_int_equal(d2g_reload_current(r)->n_procedures, 1);
    /* Reported: the metric, and /readyz's detail (still ready). */
    char *text = d2g_metrics_render(fx->svc.metrics);
    assert_non_null(strstr(text, "ds2grist_config_reload_total{result=\"failed\"} 1"));
    assert_non_null(strstr(text, "ds2grist_config_generation 1"));
    free(text);
    assert_non_null(strstr(fx->svc.detail, "config reload failed"));
    assert_non_null(strstr(fx->svc.detail, "procedures[1].grist_server"));
    /* The same bad content is not tried again... */
    assert_int_equal(d2g_reload_tick(r, d2g_clock_mono_ms() + D2G_RELOAD_POLL_MS + 1), 0);
    d2g_reload_stats(r, &st);
    assert_int_equal(st.failed, 1);
    /* ...a fixed one applies, and clears the detail. */
    write_file(tmp, HEAD "\"procedures\": [" PROC(1, "docA") "," PROC(2, "docB") "]}");
    assert_int_equal(rename(tmp, real), 0);
    assert_int_equal(tick_until_new(r), 1);
    assert_int_equal(d2g_reload_current(r)->n_procedures, 2);
    assert_string_equal(fx->svc.detail, "");
    d2g_reload_free(r);
}

/* A procedure source, as the registry plugs in. */
typedef struct {
    const char *json; /* the overlay, or NULL to fail */
    int calls;
} source_t;

static int source_fn(void *ud, json_t **overlay, char *err, size_t errlen) {
    source_t *s = ud;
    s->calls++;
    if (!s->json)
        return d2g_err_set(err, errlen, "registry unavailable");
    *overlay = json_loads(s->json, 0, NULL);
    return 0;
}

static void test_sources(void **state) {
    fixture_t *fx = *state;
    char err[D2G_ERRLEN];
    volatile sig_atomic_t hup = 0;
    configmap_publish(fx, HEAD "\"procedures\": [" PROC(1, "docA") "]}");
    char link[400];
    snprintf(link, sizeof(link), "%s/config.json", fx->dir);
    assert_int_equal(symlink("..data/config.json", link), 0);
    d2g_config_t *cfg;
    assert_int_equal(d2g_config_load(fx->path, &cfg, err, sizeof(err)), 0);
    d2g_reload_t *r = d2g_reload_new(fx->path, cfg, &fx->svc, &hup, err, sizeof(err));
    source_t src = {
        "{\"ds\": {\"tokens\": {\"reg-1\": {\"secret\": {\"value\": \"registry-secret\"},"
        "                                \"endpoint\": \"http://127.0.0.1:9/api/v2/graphql\"},"
        "                      \"t1\": {\"secret\": {\"value\": \"must-not-win\"}}}},"
        " \"procedures\": [{\"number\": 1, \"ds_token\": \"reg-1\", \"grist_server\": \"main\", \"document\": \"stolen\"},"
        "                {\"number\": 7, \"ds_token\": \"reg-1\", \"grist_server\": \"main\", \"document\": \"docR\"}]}",
        0};
    d2g_config_source_t s = {"registry", source_fn, &src};
    assert_int_equal(d2g_reload_add_source(r, &s, err, sizeof(err)), 0);
    const d2g_config_t *c = d2g_reload_current(r);
    assert_int_equal(c->n_procedures, 2);
    /* The file wins: procedure 1 and token t1 are the file's. */
    assert_string_equal(d2g_config_find_procedure(c, 1)->document, "docA");
    assert_null(d2g_config_find_procedure(c, 1)->source);
    assert_string_equal(d2g_config_find_token(c, "t1")->secret, "ds-secret-value");
    assert_int_equal(c->n_shadowed, 1);
    const d2g_procedure_t *p7 = d2g_config_find_procedure(c, 7);
    assert_non_null(p7);
    assert_string_equal(p7->source, "registry");
    assert_string_equal(p7->ds_token->secret, "registry-secret");
    assert_string_equal(p7->ds_token->endpoint, "http://127.0.0.1:9/api/v2/graphql");

    /* A bad entry of the source is refused with its name and key. */
    src.json = "{\"procedures\": [{\"number\": 8, \"ds_token\": \"nope\", \"grist_server\": \"main\", \"document\": \"d\"}]}";
    hup = 1;
    assert_int_equal(d2g_reload_tick(r, d2g_clock_mono_ms()), 0);
    d2g_reload_stats_t st;
    d2g_reload_stats(r, &st);
    assert_non_null(strstr(st.last_error, "registry:procedures[number=8].ds_token"));
    /* A source that cannot answer keeps the running configuration (its procedures too). */
    src.json = NULL;
    d2g_reload_request(r);
    assert_int_equal(d2g_reload_tick(r, d2g_clock_mono_ms()), 0);
    assert_non_null(d2g_config_find_procedure(d2g_reload_current(r), 7));
    d2g_reload_stats(r, &st);
    assert_non_null(strstr(st.last_error, "registry unavailable"));
    d2g_reload_free(r);
}

/* The file may not write a secret inline, even as {"value": ...}. */
static void test_file_cannot_inline(void **state) {
    (void)state;
    d2g_config_t *cfg = NULL;
    char err[D2G_ERRLEN];
    const char *text =
        "{\"kafka\": {\"properties\": {\"bootstrap.servers\": \"127.0.0.1:9092\"}},"
        " \"redis\": {\"url\": \"redis://127.0.0.1:6379/0\"},"
        " \"ds\": {\"tokens\": {\"t1\": {\"secret\": {\"value\": \"x\"}}}},"
        " \"grist\": {\"servers\": {\"main\": {\"url\": \"http://127.0.0.1:2/\","
        "          \"api_key\": {\"env\": \"D2G_TEST_GRIST_KEY\"}}}}, \"procedures\": []}";
    assert_int_equal(d2g_config_load_string(text, &cfg, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "ds.tokens.t1.secret.value: unknown key"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_configmap_swap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_file_keeps_running, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sources, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_cannot_inline, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
