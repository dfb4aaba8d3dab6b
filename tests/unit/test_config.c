/* test_config.c - configuration loading: good files load, bad ones name the key at fault;
 * the registry's options (mapping, filter) are refused by the same parser with the same words. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
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
    setenv("D2G_TEST_BAD_KEY", "secret-value-not-hex", 1);
    setenv("D2G_TEST_ENC_KEY", "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff", 1);
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
    assert_int_equal(p->poll_interval_max_s, 150); /* 5 x the minimum by default */
    assert_int_equal(p->deleted_mode, D2G_DELETED_MARK);
    p = d2g_config_find_procedure(cfg, 100);
    assert_string_equal(p->table_prefix, "Subventions");
    assert_int_equal(p->poll_interval_s, 5);
    assert_int_equal(p->poll_interval_max_s, 25);
    assert_int_equal(cfg->producer.check_batch_size, 50);
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

/* procedures[].mapping over defaults.mapping, and a filter read whole. */
static void test_mapping_and_filter(void **state) {
    (void)state;
    const char *text = GOOD_HEAD
        " \"defaults\": {\"mapping\": {\"avis\": true}},"
        " \"procedures\": ["
        "  {\"number\": 1, \"ds_token\": \"min-a\", \"grist_server\": \"main\", \"document\": \"docA\"},"
        "  {\"number\": 2, \"ds_token\": \"min-a\", \"grist_server\": \"main\", \"document\": \"docA\","
        "   \"mapping\": {\"ref_links\": true, \"geo_areas\": true, \"avis\": false, \"messages\": true},"
        "   \"filter\": {\"states\": [\"en_instruction\", \"accepte\"], \"instruction_groups\": [7, 2],"
        "              \"deposited_from\": \"2024-02-29\", \"deposited_to\": \"2026-12-31\"}}]}";
    d2g_config_t *cfg;
    char err[D2G_ERRLEN];
    assert_int_equal(d2g_config_load_string(text, &cfg, err, sizeof(err)), 0);
    const d2g_procedure_t *a = d2g_config_find_procedure(cfg, 1), *b = d2g_config_find_procedure(cfg, 2);
    assert_int_equal(a->mapping.avis, 1); /* from defaults */
    assert_int_equal(a->mapping.ref_links + a->mapping.geo_areas + a->mapping.messages, 0);
    assert_true(d2g_proc_filter_empty(&a->filter));
    assert_int_equal(b->mapping.ref_links, 1);
    assert_int_equal(b->mapping.geo_areas, 1);
    assert_int_equal(b->mapping.avis, 0); /* the procedure's own value wins */
    assert_int_equal(b->mapping.messages, 1);
    assert_int_equal(b->filter.states, D2G_STATE_EN_INSTRUCTION | D2G_STATE_ACCEPTE);
    assert_int_equal(b->filter.n_groups, 2);
    assert_int_equal(b->filter.groups[0], 2); /* sorted */
    assert_int_equal(b->filter.groups[1], 7);
    assert_string_equal(b->filter.deposited_from, "2024-02-29");
    assert_string_equal(b->filter.deposited_to, "2026-12-31");
    assert_false(d2g_proc_data_equal(a, b));
    assert_true(d2g_proc_data_equal(b, b));
    d2g_config_free(cfg);
    expect_error(GOOD_HEAD " \"procedures\": [{\"number\": 1, \"ds_token\": \"min-a\","
                 " \"grist_server\": \"main\", \"document\": \"docA\", \"filter\":"
                 " {\"deposited_from\": \"2026-03-01\", \"deposited_to\": \"2026-02-28\"}}]}",
                 "procedures[0].filter.deposited_to: must not be before deposited_from (2026-03-01)");
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
                 "kafka.properties.sasl.password: a credential; put it in kafka.secret_properties.sasl.password");
    expect_error("{\"kafka\": {}, \"redis\": {\"url\": \"redis://user:pw@h:1\"}, \"ds\": "
                 "{\"tokens\": {}}, \"grist\": {\"servers\": {\"m\": {\"url\": \"http://g\","
                 " \"api_key\": {\"env\": \"D2G_TEST_GRIST_KEY\"}}}}, \"procedures\": []}",
                 "kafka.properties.bootstrap.servers: is required");
    expect_error(GOOD_HEAD " \"procedures\": [], \"log_level\": \"loud\"}", "log_level");
}

/* --- the table of bad configurations ---------------------------------------
 * Each row changes one value of a good configuration (a JSON path, set to a
 * JSON value, or removed with NULL) and names what the error must say: the
 * exact key (or environment variable) at fault, and often the allowed range. */
#define BASE                                                                                   \
    "{\"kafka\": {\"properties\": {\"bootstrap.servers\": \"127.0.0.1:9092\"}},"              \
    " \"redis\": {\"url\": \"redis://127.0.0.1:6379/0\"},"                                    \
    " \"ds\": {\"endpoint\": \"http://127.0.0.1:1/api/v2/graphql\","                          \
    "          \"tokens\": {\"min-a\": {\"secret\": {\"env\": \"D2G_TEST_DS_TOKEN\"}}}},"      \
    " \"grist\": {\"servers\": {\"main\": {\"url\": \"http://127.0.0.1:2/\","                  \
    "          \"api_key\": {\"env\": \"D2G_TEST_GRIST_KEY\"},"                                \
    "          \"documents\": {\"docB\": {\"permits\": 3}}}}},"                                \
    " \"procedures\": [{\"number\": 1, \"ds_token\": \"min-a\", \"grist_server\": \"main\","  \
    "                   \"document\": \"docA\"}]}"

typedef struct bad {
    const char *path;  /* "a.b.c" or "procedures[0].x"; NULL: value is the whole text */
    const char *value; /* JSON; NULL: remove the key */
    const char *want;  /* substring of the error */
} bad_t;

static const bad_t bad_configs[] = {
    /* the registry and the onboarding service */
    {"registry.encryption_key", "\"0011\"", "registry.encryption_key: secrets cannot be written"},
    {"registry.encryption_key", "{\"env\": \"D2G_TEST_BAD_KEY\"}", "registry.encryption_key: must be 64 hexadecimal digits"},
    {"registry.topic", "\"ds2grist.dossiers\"", "registry.topic: 1 to 249 of A-Za-z0-9._-, different from the kafka topics"},
    {"registry.bogus", "1", "registry.bogus: unknown key"},
    {"onboarding.listen", "\"127.0.0.1:8090\"", "onboarding.listen: needs registry.encryption_key"},
    {"onboarding.listen", "\"nope\"", "onboarding.listen: must be host:port"},
    {"onboarding.listen", "8090", "onboarding.listen: must be host:port"},
    {"onboarding.self_service", "1", "onboarding.self_service: must be true or false"},
    {"onboarding.grist_servers", "[\"other\"]", "onboarding.grist_servers[0]: not a server of grist.servers"},
    {"onboarding.grist_servers", "\"main\"", "onboarding.grist_servers: must be an array"},
    {"onboarding.per_document_per_minute", "0", "onboarding.per_document_per_minute: must be an integer from 1 to 100000"},
    {"onboarding.per_address_per_minute", "100001", "onboarding.per_address_per_minute: must be an integer from 1 to 100000"},
    {"onboarding.typo", "1", "onboarding.typo: unknown key"},
    /* producer: every number with its range */
    {"producer.concurrency", "0", "producer.concurrency: must be an integer from 1 to 256"},
    {"producer.concurrency", "257", "producer.concurrency: must be an integer from 1 to 256"},
    {"producer.concurrency", "\"4\"", "producer.concurrency: must be an integer"},
    {"producer.concurrency", "4.5", "producer.concurrency: must be an integer"},
    {"producer.lease_s", "4", "producer.lease_s: must be an integer from 5 to 3600"},
    {"producer.lease_s", "30", "producer.lease_s: must exceed ds.timeout_s (60)"},
    {"producer.labels_interval_s", "-1", "producer.labels_interval_s: must be an integer from 0 to 604800"},
    {"producer.page_size", "101", "producer.page_size: must be an integer from 1 to 100"},
    {"producer.page_size", "0", "producer.page_size: must be an integer from 1 to 100"},
    {"producer.page_size_min", "0", "producer.page_size_min: must be an integer from 1 to 100"},
    {"producer.page_size", "4", "producer.page_size_min: must not exceed producer.page_size (4)"},
    {"producer.shutdown_grace_s", "0", "producer.shutdown_grace_s: must be an integer from 1 to 3600"},
    {"producer.deleted_lookback_s", "31622401", "producer.deleted_lookback_s: must be an integer from 0 to 31622400"},
    {"producer.deleted_lookback_s", "1e300", "producer.deleted_lookback_s: must be an integer"},
    {"producer.pagesize", "10", "producer.pagesize: unknown key"},
    {"producer", "[]", "producer: must be an object"},
    /* worker */
    {"worker.linger_ms", "60001", "worker.linger_ms: must be an integer from 0 to 60000"},
    {"worker.batch_bytes", "999", "worker.batch_bytes: must be an integer from 1000 to 1000000"},
    {"worker.batch_bytes", "1000001", "worker.batch_bytes: must be an integer from 1000 to 1000000"},
    {"worker.max_buffered", "9", "worker.max_buffered: must be an integer from 10 to 1000000"},
    {"worker.max_buffered_total", "9", "worker.max_buffered_total: must be an integer from 10 to 10000000"},
    {"worker.max_buffered_bytes", "1000", "worker.max_buffered_bytes: must be an integer from 1048576 to 2147483647"},
    {"worker.shutdown_grace_s", "3601", "worker.shutdown_grace_s: must be an integer from 1 to 3600"},
    {"worker.ds_base_url", "\"ftp://x\"", "worker.ds_base_url: must start with http:// or https://"},
    {"worker.ds_base_url", "\"http://\"", "worker.ds_base_url: needs a valid host"},
    {"worker.ds_base_url", "\"\"", "worker.ds_base_url: must be a non-empty string"},
    /* ds */
    {"ds.timeout_s", "0", "ds.timeout_s: must be an integer from 1 to 600"},
    {"ds.timeout_s", "601", "ds.timeout_s: must be an integer from 1 to 600"},
    {"ds.endpoint", "\"http://\"", "ds.endpoint: needs a valid host"},
    {"ds.endpoint", "\"http:///api\"", "ds.endpoint: needs a valid host"},
    {"ds.endpoint", "\"https://ds.example:0/api\"", "ds.endpoint: needs a valid host (and port 1-65535"},
    {"ds.endpoint", "\"https://ds.example:65536/api\"", "ds.endpoint: needs a valid host (and port 1-65535"},
    {"ds.endpoint", "\"https://ds.example/api?token=abcd\"", "ds.endpoint: must not have a query string"},
    {"ds.endpoint", "\"https://u:p@ds.example/api\"", "ds.endpoint: must not hold credentials"},
    {"ds.endpoint", "\"https://ds example/api\"", "ds.endpoint: needs a valid host"},
    {"ds.endpoint", "\"graphql\"", "ds.endpoint: must start with http:// or https://"},
    {"ds.tokens.min-a.requests_per_minute", "0", "ds.tokens.min-a.requests_per_minute: must be an integer from 1 to 1000000"},
    {"ds.tokens.min-a.secret", "\"literal\"", "ds.tokens.min-a.secret: secrets cannot be written in the configuration"},
    {"ds.tokens.min-a.secret", "{\"env\": \"A\", \"file\": \"/b\"}", "ds.tokens.min-a.secret: needs exactly one of"},
    {"ds.tokens.min-a.secret", "{\"vault\": \"x\"}", "ds.tokens.min-a.secret.vault: unknown key"},
    {"ds.tokens.min-a.secret", "{\"env\": \"\"}", "ds.tokens.min-a.secret.env: must be a non-empty string"},
    {"ds.tokens.min-a.secret", NULL, "ds.tokens.min-a.secret: is required"},
    {"ds.tokens", NULL, "ds.tokens: is required"},
    {"ds.tokens.bad name", "{\"secret\": {\"env\": \"D2G_TEST_DS_TOKEN\"}}", "ds.tokens.bad name: a token name is 1 to 64"},
    /* grist */
    {"grist.timeout_s", "0", "grist.timeout_s: must be an integer from 1 to 600"},
    {"grist.servers", "{}", "grist.servers: must be an object naming at least one server"},
    {"grist.servers.main.url", "\"https://user:pass@grist.example\"", "grist.servers.main.url: must not hold credentials (user:password@); the API key goes in grist.servers.main.api_key"},
    {"grist.servers.main.url", "\"https://grist.example/?auth=abcd\"", "grist.servers.main.url: must not have a query string"},
    {"grist.servers.main.url", "\"http://\"", "grist.servers.main.url: needs a valid host"},
    {"grist.servers.main.url", "\"grist.example\"", "grist.servers.main.url: must start with http:// or https://"},
    {"grist.servers.main.api_key", "\"key\"", "grist.servers.main.api_key: secrets cannot be written"},
    {"grist.servers.main.permits_per_document", "0", "grist.servers.main.permits_per_document: must be an integer from 1 to 1000"},
    {"grist.servers.main.permits_per_document", "1001", "grist.servers.main.permits_per_document: must be an integer from 1 to 1000"},
    {"grist.servers.main.requests_per_second", "1e300", "grist.servers.main.requests_per_second: must be 0 (no limit) or a number from 0.01 to 10000"},
    {"grist.servers.main.requests_per_second", "1e-300", "grist.servers.main.requests_per_second: must be 0 (no limit) or a number from 0.01 to 10000"},
    {"grist.servers.main.requests_per_second", "-1", "grist.servers.main.requests_per_second: must be 0"},
    {"grist.servers.main.requests_per_second", "\"5\"", "grist.servers.main.requests_per_second: must be 0"},
    {"grist.servers.main.documents.docB.permits", "0", "grist.servers.main.documents.docB.permits: must be an integer from 1 to 1000"},
    {"grist.servers.main.documents.docB", "{}", "grist.servers.main.documents.docB.permits: is required"},
    {"grist.servers.main.documents.d/b", "{\"permits\": 2}", "grist.servers.main.documents.d/b: a document id is 1 to 200"},
    {"grist.servers.main.extra", "1", "grist.servers.main.extra: unknown key"},
    /* redis */
    {"redis.url", "\"redis://::::\"", "redis.url: needs a valid host"},
    {"redis.url", "\"redis://\"", "redis.url: needs a valid host"},
    {"redis.url", "\"redis://h:99999\"", "redis.url: needs a valid host (and port 1-65535"},
    {"redis.url", "\"redis://h:6379/x\"", "redis.url: the database must be a number from 0 to 9999"},
    {"redis.url", "\"redis://user:pw@h:6379\"", "redis.url: must not hold credentials; use redis.username and redis.password"},
    {"redis.url", "\"http://h\"", "redis.url: must start with redis:// or unix://"},
    {"redis.url", "\"unix://relative\"", "redis.url: unix:// needs an absolute socket path"},
    {"redis.url", NULL, "redis.url: is required"},
    {"redis.namespace", "\"a:b\"", "redis.namespace: 1 to 64 letters"},
    {"redis.namespace", "\"{x}\"", "redis.namespace: 1 to 64 letters"},
    {"redis.password", "\"pw\"", "redis.password: secrets cannot be written in the configuration"},
    /* kafka */
    {"kafka.properties.bootstrap.servers", NULL, "kafka.properties.bootstrap.servers: is required"},
    {"kafka.properties.bootstrap.servers", "\"u:p@k:9092\"", "kafka.properties.bootstrap.servers: must not hold credentials"},
    {"kafka.properties.bootstrap.servers", "\"k:9092,:1\"", "kafka.properties.bootstrap.servers: must be host:port"},
    {"kafka.properties.ssl.key.pem", "\"-----BEGIN PRIVATE KEY-----\"", "kafka.properties.ssl.key.pem: a credential; put it in kafka.secret_properties.ssl.key.pem"},
    {"kafka.properties.sasl.password", "\"pw\"", "kafka.properties.sasl.password: a credential"},
    {"kafka.properties.sasl.oauthbearer.config", "\"secret=x\"", "kafka.properties.sasl.oauthbearer.config: a credential"},
    {"kafka.properties.linger.ms", "5", "kafka.properties.linger.ms: must be a string"},
    {"kafka.properties.linger.ms", "\"\"", "kafka.properties.linger.ms: must not be empty"},
    {"kafka.secret_properties.sasl.password", "\"pw\"", "kafka.secret_properties.sasl.password: secrets cannot be written"},
    {"kafka.topic", "\"a topic\"", "kafka.topic: 1 to 249 letters"},
    {"kafka.dlq_topic", "\"ds2grist.dossiers\"", "kafka.dlq_topic: must differ from kafka.topic"},
    {"kafka.consumer_group", "\"\"", "kafka.consumer_group: must be a non-empty string"},
    /* procedures */
    {"procedures[0].number", "0", "procedures[0].number: must be an integer from 1 to 2147483647"},
    {"procedures[0].number", "2147483648", "procedures[0].number: must be an integer from 1 to 2147483647"},
    {"procedures[0].number", "99999999999999999999", "invalid JSON"},
    {"procedures[0].document", "\"\"", "procedures[0].document: must be a non-empty string"},
    {"procedures[0].document", "\"a b\"", "procedures[0].document: a Grist document id is 1 to 200"},
    {"procedures[0].table_prefix", "\"Aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"", "procedures[0].table_prefix: must start with an upper-case letter, hold only letters, digits and underscores, and have at most 64 characters"},
    {"procedures[0].table_prefix", "\"D-1\"", "procedures[0].table_prefix"},
    {"procedures[0].grist_server", "\"main2\"", "procedures[0].grist_server: unknown server \"main2\""},
    {"procedures[0].options.poll_interval_s", "0", "procedures[0].options.poll_interval_s: must be an integer from 1 to 86400"},
    {"procedures[0].options.poll_interval_s", "86401", "procedures[0].options.poll_interval_s: must be an integer from 1 to 86400"},
    {"procedures[0].options.deleted", "\"purge\"", "procedures[0].options.deleted: must be \"mark\" or \"remove\""},
    {"procedures", "{}", "procedures: must be an array"},
    /* per-procedure mapping options and filters */
    {"procedures[0].mapping", "true", "procedures[0].mapping: must be an object"},
    {"procedures[0].mapping.ref_links", "1", "procedures[0].mapping.ref_links: must be true or false"},
    {"procedures[0].mapping.geo_areas", "\"yes\"", "procedures[0].mapping.geo_areas: must be true or false"},
    {"procedures[0].mapping.avis", "null", "procedures[0].mapping.avis: must be true or false"},
    {"procedures[0].mapping.messages", "0", "procedures[0].mapping.messages: must be true or false"},
    {"procedures[0].mapping.zones", "true", "procedures[0].mapping.zones: unknown key"},
    {"defaults.mapping.messages", "\"true\"", "defaults.mapping.messages: must be true or false"},
    {"defaults.mapping.refs", "true", "defaults.mapping.refs: unknown key"},
    {"procedures[0].options.mapping", "{}", "procedures[0].options.mapping: unknown key"},
    {"procedures[0].filter", "[]", "procedures[0].filter: must be an object"},
    {"procedures[0].filter.state", "[\"accepte\"]", "procedures[0].filter.state: unknown key"},
    {"procedures[0].filter.states", "\"accepte\"", "procedures[0].filter.states: must be a non-empty array of DS states"},
    {"procedures[0].filter.states", "[]", "procedures[0].filter.states: must be a non-empty array of DS states"},
    {"procedures[0].filter.states", "[\"accepte\", \"brouillon\"]", "procedures[0].filter.states[1]: not a DS state"},
    {"procedures[0].filter.states", "[\"accepte\", \"accepte\"]", "procedures[0].filter.states[1]: given twice"},
    {"procedures[0].filter.instruction_groups", "[]", "procedures[0].filter.instruction_groups: must be a non-empty array"},
    {"procedures[0].filter.instruction_groups", "[1, \"2\"]", "procedures[0].filter.instruction_groups[1]: must be an integer from 1 to 2147483647"},
    {"procedures[0].filter.instruction_groups", "[0]", "procedures[0].filter.instruction_groups[0]: must be an integer from 1 to 2147483647"},
    {"procedures[0].filter.instruction_groups", "[3, 3]", "procedures[0].filter.instruction_groups[1]: given twice"},
    {"procedures[0].filter.deposited_from", "\"2026-02-30\"", "procedures[0].filter.deposited_from: must be a date \"YYYY-MM-DD\""},
    {"procedures[0].filter.deposited_from", "\"2025-02-29\"", "procedures[0].filter.deposited_from: must be a date"},
    {"procedures[0].filter.deposited_to", "\"2026-1-5\"", "procedures[0].filter.deposited_to: must be a date"},
    {"procedures[0].filter.deposited_to", "20260105", "procedures[0].filter.deposited_to: must be a date"},
    {"procedures[0].filter.deposited_to", "\"2026-01-05T00:00:00Z\"", "procedures[0].filter.deposited_to: must be a date"},
    {"defaults.poll_interval_s", "-5", "defaults.poll_interval_s: must be an integer from 1 to 86400"},
    {"defaults.poll_interval_max_s", "10", "defaults.poll_interval_max_s: must be at least poll_interval_s (60)"},
    {"defaults.poll_interval_max_s", "86401", "defaults.poll_interval_max_s: must be an integer from 1 to 86400"},
    {"procedures[0].options.poll_interval_max_s", "0", "procedures[0].options.poll_interval_max_s: must be an integer from 1 to 86400"},
    {"procedures[0].options.poll_interval_max_s", "4", "procedures[0].options.poll_interval_max_s: must be at least poll_interval_s (60)"},
    {"producer.check_batch_size", "0", "producer.check_batch_size: must be an integer from 1 to 500"},
    {"producer.check_batch_size", "501", "producer.check_batch_size: must be an integer from 1 to 500"},
    /* top level */
    {"log_level", "\"verbose\"", "log_level: must be debug, info, warn or error"},
    {"http.port", "65536", "http.port: must be an integer from 0 to 65535"},
    {"http.port", "-1", "http.port: must be an integer from 0 to 65535"},
    {"extra", "1", "extra: unknown key"},
    {NULL, "[]", "(top level): must be an object"},
    {NULL, "{\"kafka\": {}, \"kafka\": {}}", "invalid JSON"},
};

/* Sets (or removes) the value at a dotted path with [i] indices, creating the
 * objects on the way; a component is the longest prefix naming an existing key. */
static void set_path(json_t *root, const char *path, const char *value) {
    json_t *cur = root;
    const char *p = path;
    for (;;) {
        char key[256];
        size_t n = strcspn(p, ".[");
        /* Longest prefix that names an existing object member (keys with dots). */
        if (json_is_object(cur)) {
            size_t best = 0, len = strlen(p);
            for (size_t k = n; k <= len; k++)
                if ((p[k] == '.' || p[k] == '[' || p[k] == '\0') && k < sizeof(key)) {
                    memcpy(key, p, k);
                    key[k] = '\0';
                    if (json_object_get(cur, key))
                        best = k;
                }
            if (best)
                n = best;
        }
        memcpy(key, p, n);
        key[n] = '\0';
        const char *next = p + n;
        if (json_is_object(cur) && !json_object_get(cur, key) && *next == '.') {
            /* Not there: is the rest a new dotted key (kafka.properties.ssl.key.pem)? */
            json_t *sub = json_object();
            json_object_set_new(cur, key, sub);
        }
        if (*next == '\0') {
            if (!value)
                json_object_del(cur, key);
            else {
                json_error_t e;
                json_t *v = json_loads(value, JSON_DECODE_ANY, &e);
                if (!v) { /* numbers beyond jansson's range: splice as text later */
                    json_object_set_new(cur, key, json_string("\001RAW"));
                    return;
                }
                json_object_set_new(cur, key, v);
            }
            return;
        }
        cur = *key ? json_object_get(cur, key) : cur;
        if (*next == '[') {
            size_t idx = strtoul(next + 1, NULL, 10);
            cur = json_array_get(cur, idx);
            next = strchr(next, ']') + 1;
        }
        p = *next == '.' ? next + 1 : next;
    }
}

/* registry and onboarding: defaults, values, the key among the secrets. */
static void test_registry_onboarding(void **state) {
    (void)state;
    d2g_config_t *cfg;
    char err[D2G_ERRLEN];
    assert_int_equal(d2g_config_load_string(BASE, &cfg, err, sizeof(err)), 0);
    assert_null(cfg->registry.encryption_key);
    assert_string_equal(cfg->registry.topic, "ds2grist.registry");
    assert_null(cfg->onboarding.listen);
    assert_int_equal(cfg->onboarding.self_service, 1);
    assert_int_equal(cfg->onboarding.per_document_per_minute, 20);
    assert_int_equal(cfg->onboarding.per_address_per_minute, 60);
    d2g_config_free(cfg);
    char text[4096];
    snprintf(text, sizeof(text), "%.*s, \"registry\": {\"encryption_key\": {\"env\": \"D2G_TEST_ENC_KEY\"},"
             " \"topic\": \"reg\"}, \"onboarding\": {\"listen\": \"[::]:0\", \"self_service\": false,"
             " \"grist_servers\": [\"main\"], \"static_dir\": \"/srv/w\", \"platform_account\": \"a@b.fr\"}}",
             (int)strlen(BASE) - 1, BASE);
    assert_int_equal(d2g_config_load_string(text, &cfg, err, sizeof(err)), 0);
    assert_string_equal(cfg->onboarding.listen, "[::]:0");
    assert_int_equal(cfg->onboarding.self_service, 0);
    assert_int_equal(cfg->onboarding.n_grist_servers, 1);
    assert_string_equal(cfg->onboarding.static_dir, "/srv/w");
    assert_string_equal(cfg->registry.topic, "reg");
    size_t n = 0;
    const char *const *sec = d2g_config_secrets(cfg, &n);
    int found = 0;
    for (size_t i = 0; i < n; i++)
        found |= !strcmp(sec[i], getenv("D2G_TEST_ENC_KEY"));
    assert_true(found); /* scrubbed from logs like every secret */
    d2g_config_free(cfg);
}

static void test_bad_config_table(void **state) {
    (void)state;
    size_t n = sizeof(bad_configs) / sizeof(bad_configs[0]);
    for (size_t i = 0; i < n; i++) {
        const bad_t *b = &bad_configs[i];
        char *text;
        if (!b->path) {
            text = strdup(b->value);
        } else {
            json_t *root = json_loads(BASE, 0, NULL);
            assert_non_null(root);
            /* kafka.properties keys hold dots: set them directly. */
            const char *kp = "kafka.properties.", *ks = "kafka.secret_properties.";
            if (!strncmp(b->path, kp, strlen(kp)) || !strncmp(b->path, ks, strlen(ks))) {
                int secret = !strncmp(b->path, ks, strlen(ks));
                json_t *k = json_object_get(root, "kafka");
                json_t *props = json_object_get(k, secret ? "secret_properties" : "properties");
                if (!props) {
                    props = json_object();
                    json_object_set_new(k, secret ? "secret_properties" : "properties", props);
                }
                const char *key = b->path + strlen(secret ? ks : kp);
                if (b->value)
                    json_object_set_new(props, key, json_loads(b->value, JSON_DECODE_ANY, NULL));
                else
                    json_object_del(props, key);
            } else {
                set_path(root, b->path, b->value);
            }
            text = json_dumps(root, JSON_COMPACT);
            json_decref(root);
            char *raw = strstr(text, "\"\\u0001RAW\"");
            if (raw) { /* splice the literal the JSON library cannot hold */
                size_t need = strlen(text) + strlen(b->value) + 1;
                char *t2 = malloc(need);
                size_t pre = (size_t)(raw - text);
                memcpy(t2, text, pre);
                strcpy(t2 + pre, b->value);
                strcat(t2, raw + strlen("\"\\u0001RAW\""));
                free(text);
                text = t2;
            }
        }
        d2g_config_t *cfg = (d2g_config_t *)1;
        char err[D2G_ERRLEN] = "";
        int rc = d2g_config_load_string(text, &cfg, err, sizeof(err));
        if (rc != -1 || !strstr(err, b->want))
            fail_msg("bad config %zu (%s = %s): rc %d, error \"%s\", want \"%s\"\n  %s", i,
                     b->path ? b->path : "(text)", b->value ? b->value : "(removed)", rc, err,
                     b->want, text);
        assert_null(cfg);
        assert_null(strstr(err, "secret-value"));
        free(text);
    }
    printf("# config: %zu bad configurations, each refused with its key\n", n);
}

/* Environment overrides are validated like the file, and their errors name the variable. */
static void test_env_errors_name_the_variable(void **state) {
    (void)state;
    static const struct {
        const char *var, *value, *want;
    } rows[] = {
        {"DS2GRIST_REDIS_URL", "redis://::::", "DS2GRIST_REDIS_URL: needs a valid host"},
        {"DS2GRIST_REDIS_URL", "redis://u:p@h", "DS2GRIST_REDIS_URL: must not hold credentials"},
        {"DS2GRIST_REDIS_NAMESPACE", "a:b", "DS2GRIST_REDIS_NAMESPACE: 1 to 64"},
        {"DS2GRIST_DS_ENDPOINT", "http://", "DS2GRIST_DS_ENDPOINT: needs a valid host"},
        {"DS2GRIST_DS_ENDPOINT", "https://h/api?token=x", "DS2GRIST_DS_ENDPOINT: must not have a query"},
        {"DS2GRIST_LOG_LEVEL", "loud", "DS2GRIST_LOG_LEVEL: must be debug, info, warn or error"},
        {"DS2GRIST_HTTP_PORT", "70000", "DS2GRIST_HTTP_PORT: must be a port number"},
        {"DS2GRIST_KAFKA_BOOTSTRAP_SERVERS", "u:p@k:1", "DS2GRIST_KAFKA_BOOTSTRAP_SERVERS: must not hold credentials"},
        {"DS2GRIST_KAFKA_BOOTSTRAP_SERVERS", ":1", "DS2GRIST_KAFKA_BOOTSTRAP_SERVERS: must be host:port"},
        {"DS2GRIST_REDIS_URL", "redis://h\xff:1", "DS2GRIST_REDIS_URL: must be valid UTF-8"},
        {"DS2GRIST_DS_ENDPOINT", "https://h/\napi", "DS2GRIST_DS_ENDPOINT: must not contain control characters"},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        setenv(rows[i].var, rows[i].value, 1);
        expect_error(BASE, rows[i].want);
        unsetenv(rows[i].var);
    }
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

/* The registry's options go through the file's parser: every row of the table
 * about procedures[0].mapping or .filter, given as a registry entry's option,
 * is refused with the same words, the path starting at the option. */
static void test_options_parser(void **state) {
    (void)state;
    const char *const prefixes[] = {"procedures[0].mapping", "procedures[0].filter"};
    size_t tried = 0;
    char err[D2G_ERRLEN];
    for (size_t i = 0; i < sizeof(bad_configs) / sizeof(bad_configs[0]); i++) {
        const bad_t *b = &bad_configs[i];
        for (int k = 0; k < 2 && b->path; k++) {
            size_t pl = strlen(prefixes[k]);
            if (strncmp(b->path, prefixes[k], pl) || (b->path[pl] && b->path[pl] != '.'))
                continue;
            json_t *v = json_loads(b->value, JSON_DECODE_ANY, NULL), *opt = v;
            if (b->path[pl] == '.')
                opt = json_pack("{so}", b->path + pl + 1, v);
            err[0] = '\0';
            assert_int_equal(d2g_config_check_proc_data(k ? NULL : opt, k ? opt : NULL, err,
                                                        sizeof(err)), -1);
            const char *want = b->want + strlen("procedures[0].");
            if (strncmp(err, want, strlen(want)))
                fail_msg("%s = %s: \"%s\" does not start with \"%s\"", b->path, b->value, err,
                         want);
            json_decref(opt);
            tried++;
        }
    }
    assert_true(tried >= 20);
    /* What the file accepts, as the test's end-to-end run uses it. */
    json_t *m = json_pack("{sb}", "avis", 1), *f = json_pack("{s[s]}", "states", "accepte");
    assert_int_equal(d2g_config_check_proc_data(m, f, err, sizeof(err)), 0);
    assert_int_equal(d2g_config_check_proc_data(NULL, NULL, err, sizeof(err)), 0);
    d2g_proc_mapping_t pm = {0};
    d2g_proc_filter_t pf = {0};
    assert_int_equal(d2g_config_parse_mapping(m, "mapping", &pm, err, sizeof(err)), 0);
    assert_int_equal(d2g_config_parse_filter(f, "filter", &pf, err, sizeof(err)), 0);
    assert_int_equal(pm.avis, 1);
    assert_int_equal(pm.messages, 0);
    assert_int_equal(pf.states, D2G_STATE_ACCEPTE);
    d2g_proc_filter_clear(&pf);
    json_decref(m);
    json_decref(f);
    /* A failure after the groups were allocated: cleared by the caller, nothing leaks. */
    f = json_loads("{\"instruction_groups\": [3, 3]}", 0, NULL);
    assert_int_equal(d2g_config_parse_filter(f, "filter", &pf, err, sizeof(err)), -1);
    assert_string_equal(err, "filter.instruction_groups[1]: given twice");
    d2g_proc_filter_clear(&pf);
    json_decref(f);
    printf("# %zu bad mapping and filter values refused alike by the file and the registry\n", tried);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_good_config, setup_env),
        cmocka_unit_test_setup(test_env_overrides, setup_env),
        cmocka_unit_test_setup(test_mapping_and_filter, setup_env),
        cmocka_unit_test_setup(test_errors_name_the_key, setup_env),
        cmocka_unit_test_setup(test_secret_from_file, setup_env),
        cmocka_unit_test_setup(test_many_procedures, setup_env),
        cmocka_unit_test_setup(test_bad_config_table, setup_env),
        cmocka_unit_test_setup(test_options_parser, setup_env),
        cmocka_unit_test_setup(test_registry_onboarding, setup_env),
        cmocka_unit_test_setup(test_env_errors_name_the_variable, setup_env),
    };
    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
