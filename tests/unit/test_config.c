/* test_config.c - configuration loading: good files load, bad ones name the key at fault. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ds2grist/config.h"
#include "ds2grist/err.h"

#define GOOD_HEAD                                                                              \
    "{\"kafka\": {\"properties\": {\"bootstrap.servers\": \"127.0.0.1:9092\"}},"              \
    " \"redis\": {\"url\": \"redis://127.0.0.1:6379/0\"},"                                    \
    " \"ds\": {\"endpoint\": \"http://127.0.0.1:1/api/v2/graphql\","                          \
    "          \"tokens\": {\"min-a\": {\"secret\": {\"env\": \"D2G_TEST_DS_TOKEN\"}}}},"      \
    " \"grist\": {\"servers\": {\"main\": {\"url\": \"http://127.0.0.1:2/\","                  \
    "          \"api_key\": {\"env\": \"D2G_TEST_GRIST_KEY\"},"                                \
    "          \"documents\": {\"docB\": {\"permits\": 3}}}}},"

static int setup_env(void **state) {
    (void)state;
    setenv("D2G_TEST_DS_TOKEN", "ds-secret-value", 1);
    setenv("D2G_TEST_GRIST_KEY", "grist-secret-value", 1);
    unsetenv("DS2GRIST_REDIS_URL");
    unsetenv("DS2GRIST_KAFKA_BOOTSTRAP_SERVERS");
    return 0;
}

/* Loads text expecting failure; checks the message contains want and no secret. */
static void expect_error(const char *text, const char *want) {
    d2g_config_t *cfg = (d2g_config_t *)1;
    char err[D2G_ERRLEN] = "";
    assert_int_equal(d2g_config_load_string(text, &cfg, err, sizeof(err)), -1);
    assert_null(cfg);
    if (!strstr(err, want))
        fail_msg("error \"%s\" does not contain \"%s\"", err, want);
    assert_null(strstr(err, "secret-value"));
}

static void test_good_config(void **state) {
    (void)state;
    const char *text = GOOD_HEAD
        " \"defaults\": {\"poll_interval_s\": 30},"
        " \"procedures\": ["
        "  {\"number\": 300, \"ds_token\": \"min-a\", \"grist_server\": \"main\", \"document\": \"docA\"},"
        "  {\"number\": 100, \"ds_token\": \"min-a\", \"grist_server\": \"main\", \"document\": \"docB\","
        "   \"table_prefix\": \"Subventions\", \"options\": {\"deleted\": \"remove\", \"poll_interval_s\": 5}}]}";
    d2g_config_t *cfg;
    char err[D2G_ERRLEN];
    assert_int_equal(d2g_config_load_string(text, &cfg, err, sizeof(err)), 0);
    assert_string_equal(cfg->kafka.topic, "ds2grist.dossiers");
    assert_string_equal(cfg->kafka.dlq_topic, "ds2grist.dlq");
    assert_string_equal(cfg->redis.namespace, "ds2grist");
    assert_string_equal(cfg->ds.tokens[0].secret, "ds-secret-value");
    assert_int_equal(cfg->ds.tokens[0].requests_per_minute, 400);
    assert_string_equal(cfg->grist.servers[0].url, "http://127.0.0.1:2"); /* slash dropped */
    assert_int_equal(cfg->grist.servers[0].permits_per_document, 8);
    assert_int_equal(d2g_config_doc_permits(&cfg->grist.servers[0], "docB"), 3);
    assert_int_equal(d2g_config_doc_permits(&cfg->grist.servers[0], "docA"), 8);
    assert_int_equal(cfg->n_procedures, 2);
    assert_int_equal(cfg->procedures[0].number, 100); /* sorted */
    const d2g_procedure_t *p = d2g_config_find_procedure(cfg, 300);
    assert_non_null(p);
    assert_string_equal(p->table_prefix, "D300");
    assert_int_equal(p->poll_interval_s, 30);
    assert_int_equal(p->deleted_mode, D2G_DELETED_MARK);
    p = d2g_config_find_procedure(cfg, 100);
    assert_string_equal(p->table_prefix, "Subventions");
    assert_int_equal(p->poll_interval_s, 5);
    assert_int_equal(p->deleted_mode, D2G_DELETED_REMOVE);
    assert_ptr_equal(p->ds_token, &cfg->ds.tokens[0]);
    assert_null(d2g_config_find_procedure(cfg, 200));
    size_t n_secrets = 0;
    const char *const *secrets = d2g_config_secrets(cfg, &n_secrets);
    assert_int_equal(n_secrets, 2);
    int seen_ds = 0, seen_grist = 0;
    for (size_t i = 0; i < n_secrets; i++) {
        seen_ds |= strcmp(secrets[i], "ds-secret-value") == 0;
        seen_grist |= strcmp(secrets[i], "grist-secret-value") == 0;
    }
    assert_true(seen_ds && seen_grist);
    d2g_config_free(cfg);
}

static void test_env_overrides(void **state) {
    (void)state;
    const char *text = GOOD_HEAD " \"procedures\": []}";
    d2g_config_t *cfg;
    char err[D2G_ERRLEN];
    setenv("DS2GRIST_REDIS_URL", "redis://10.0.0.1:6380", 1);
    setenv("DS2GRIST_KAFKA_BOOTSTRAP_SERVERS", "kafka:9093", 1);
    assert_int_equal(d2g_config_load_string(text, &cfg, err, sizeof(err)), 0);
    assert_string_equal(cfg->redis.url, "redis://10.0.0.1:6380");
    assert_string_equal(cfg->kafka.properties[0].value, "kafka:9093");
    d2g_config_free(cfg);
    unsetenv("DS2GRIST_REDIS_URL");
    unsetenv("DS2GRIST_KAFKA_BOOTSTRAP_SERVERS");
}

static void test_errors_name_the_key(void **state) {
    (void)state;
    expect_error("{", "invalid JSON at line");
    expect_error(GOOD_HEAD " \"procedures\": [{\"number\": 1, \"ds_token\": \"nope\","
                 " \"grist_server\": \"main\", \"document\": \"d\"}]}",
                 "procedures[0].ds_token: unknown token \"nope\"");
    expect_error(GOOD_HEAD " \"procedures\": [{\"number\": 1, \"ds_token\": \"min-a\","
                 " \"grist_server\": \"main\", \"document\": \"d\"}, {\"number\": \"2\"}]}",
                 "procedures[1].number: must be an integer");
    expect_error(GOOD_HEAD " \"procedures\": [{\"number\": 1, \"ds_token\": \"min-a\","
                 " \"grist_server\": \"main\", \"documnet\": \"d\"}]}",
                 "procedures[0].documnet: unknown key");
    expect_error(GOOD_HEAD " \"procedures\": [{\"number\": 1, \"ds_token\": \"min-a\","
                 " \"grist_server\": \"main\", \"document\": \"d\", \"table_prefix\": \"lower\"}]}",
                 "procedures[0].table_prefix");
    expect_error(GOOD_HEAD " \"procedures\": [{\"number\": 7, \"ds_token\": \"min-a\","
                 " \"grist_server\": \"main\", \"document\": \"d\"}, {\"number\": 7,"
                 " \"ds_token\": \"min-a\", \"grist_server\": \"main\", \"document\": \"e\"}]}",
                 "procedure 7 is configured twice");
    expect_error(GOOD_HEAD " \"procedures\": [], \"defaults\": {\"deleted\": \"purge\"}}",
                 "defaults.deleted: must be \"mark\" or \"remove\"");
    /* Secrets: literal values are refused, unset variables are named. */
    expect_error("{\"kafka\": {\"properties\": {\"bootstrap.servers\": \"x:1\"}},"
                 " \"redis\": {\"url\": \"redis://h:1\"}, \"ds\": {\"tokens\": {\"t\":"
                 " {\"secret\": \"literal-secret-value\"}}}}",
                 "ds.tokens.t.secret: secrets cannot be written in the configuration");
    expect_error("{\"kafka\": {\"properties\": {\"bootstrap.servers\": \"x:1\"}},"
                 " \"redis\": {\"url\": \"redis://h:1\"}, \"ds\": {\"tokens\": {\"t\":"
                 " {\"secret\": {\"env\": \"D2G_TEST_UNSET_VAR\"}}}}}",
                 "ds.tokens.t.secret: environment variable D2G_TEST_UNSET_VAR is not set");
    expect_error("{\"kafka\": {\"properties\": {\"sasl.password\": \"p\"}}}",
                 "kafka.properties.sasl.password: put credentials in kafka.secret_properties");
    expect_error("{\"kafka\": {}, \"redis\": {\"url\": \"redis://user:pw@h:1\"}, \"ds\": "
                 "{\"tokens\": {}}, \"grist\": {\"servers\": {\"m\": {\"url\": \"http://g\","
                 " \"api_key\": {\"env\": \"D2G_TEST_GRIST_KEY\"}}}}, \"procedures\": []}",
                 "kafka.properties.bootstrap.servers: is required");
    expect_error(GOOD_HEAD " \"procedures\": [], \"log_level\": \"loud\"}", "log_level");
}

static void test_secret_from_file(void **state) {
    (void)state;
    char path[] = "/tmp/d2g-secret-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs("file-secret-value\n", f);
    fclose(f);
    char text[2048];
    snprintf(text, sizeof(text),
             "{\"kafka\": {\"properties\": {\"bootstrap.servers\": \"x:1\"},"
             " \"secret_properties\": {\"sasl.password\": {\"file\": \"%s\"}}},"
             " \"redis\": {\"url\": \"redis://h:1\", \"password\": {\"file\": \"%s\"}},"
             " \"ds\": {\"tokens\": {}}, \"grist\": {\"servers\": {\"m\": {\"url\": \"http://g\","
             " \"api_key\": {\"file\": \"%s\"}}}}, \"procedures\": []}",
             path, path, path);
    d2g_config_t *cfg;
    char err[D2G_ERRLEN];
    assert_int_equal(d2g_config_load_string(text, &cfg, err, sizeof(err)), 0);
    assert_string_equal(cfg->redis.password, "file-secret-value"); /* newline dropped */
    assert_string_equal(cfg->grist.servers[0].api_key, "file-secret-value");
    assert_true(cfg->kafka.properties[1].secret);
    d2g_config_free(cfg);
    unlink(path);
    expect_error(text, "cannot open secret file");
}

/* Ten thousand procedures: loaded and indexed (the figure is printed, not asserted). */
static void test_many_procedures(void **state) {
    (void)state;
    size_t cap = 10000 * 128 + 4096, len = 0;
    char *text = malloc(cap);
    len += (size_t)snprintf(text + len, cap - len, "%s \"procedures\": [", GOOD_HEAD);
    for (int i = 0; i < 10000; i++)
        len += (size_t)snprintf(text + len, cap - len,
                                "%s{\"number\": %d, \"ds_token\": \"min-a\", \"grist_server\": "
                                "\"main\", \"document\": \"doc%d\"}",
                                i ? "," : "", 100000 - i, i % 50);
    snprintf(text + len, cap - len, "]}");
    struct timespec t0, t1;
    d2g_config_t *cfg;
    char err[D2G_ERRLEN];
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(d2g_config_load_string(text, &cfg, err, sizeof(err)), 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("# loaded 10000 procedures in %.1f ms\n",
           (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
    assert_int_equal(cfg->n_procedures, 10000);
    for (int i = 0; i < 10000; i++)
        assert_non_null(d2g_config_find_procedure(cfg, 100000 - i));
    d2g_config_free(cfg);
    free(text);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_good_config, setup_env),
        cmocka_unit_test_setup(test_env_overrides, setup_env),
        cmocka_unit_test_setup(test_errors_name_the_key, setup_env),
        cmocka_unit_test_setup(test_secret_from_file, setup_env),
        cmocka_unit_test_setup(test_many_procedures, setup_env),
    };
    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
