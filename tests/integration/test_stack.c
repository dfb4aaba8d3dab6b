/*
 * test_stack.c - the one-machine stack answers: a real redis-server, the Kafka
 * mock broker in its own process, the DS and Grist emulators over HTTP.
 *
 * This is what every integration test stands on, so it checks each server the
 * way the services use it: Redis scripts with the server's clock, a Kafka
 * round trip through an idempotent producer and a consumer group, a DS page of
 * dossiers, a Grist upsert read back.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testenv.h"

static int setup(void **state) {
    d2g_testenv_t *env = calloc(1, sizeof(*env));
    *state = env;
    return d2g_testenv_init(env);
}

static int teardown(void **state) {
    d2g_testenv_stop(*state);
    free(*state);
    return 0;
}

static void test_redis(void **state) {
    d2g_testenv_t *env = *state;
    assert_int_equal(d2g_testenv_start_redis(env), 0);
    redisContext *c = redisConnect("127.0.0.1", env->redis_port);
    assert_non_null(c);
    assert_int_equal(c->err, 0);
    redisReply *r = redisCommand(c, "EVAL %s 1 %s", "redis.call('SET', KEYS[1], 'v') "
                                 "return redis.call('TIME')[1]", "d2g:test");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING); /* the server's clock, seconds */
    assert_true(atoll(r->str) > 1700000000LL);
    freeReplyObject(r);
    r = redisCommand(c, "GET d2g:test");
    assert_string_equal(r->str, "v");
    freeReplyObject(r);
    redisFree(c);
}

static rd_kafka_t *kafka_client(rd_kafka_type_t type, const char *bootstrap, const char *group) {
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    assert_int_equal(rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, errstr, sizeof(errstr)), 0);
    if (type == RD_KAFKA_PRODUCER) {
        assert_int_equal(rd_kafka_conf_set(conf, "enable.idempotence", "true", errstr, sizeof(errstr)), 0);
    } else {
        assert_int_equal(rd_kafka_conf_set(conf, "group.id", group, errstr, sizeof(errstr)), 0);
        assert_int_equal(rd_kafka_conf_set(conf, "auto.offset.reset", "earliest", errstr, sizeof(errstr)), 0);
        assert_int_equal(rd_kafka_conf_set(conf, "session.timeout.ms", "6000", errstr, sizeof(errstr)), 0);
        assert_int_equal(rd_kafka_conf_set(conf, "partition.assignment.strategy", "cooperative-sticky",
                                           errstr, sizeof(errstr)), 0);
    }
    rd_kafka_t *rk = rd_kafka_new(type, conf, errstr, sizeof(errstr));
    if (!rk)
        fail_msg("rd_kafka_new: %s", errstr);
    return rk;
}

static void test_kafka_round_trip(void **state) {
    d2g_testenv_t *env = *state;
    enum { N = 50 };
    assert_int_equal(d2g_testenv_start_kafka(env, 4), 0);

    rd_kafka_t *p = kafka_client(RD_KAFKA_PRODUCER, env->kafka_bootstrap, NULL);
    for (int i = 0; i < N; i++) {
        char key[32], val[32];
        snprintf(key, sizeof(key), "1001:%d", i);
        snprintf(val, sizeof(val), "{\"n\":%d}", i);
        assert_int_equal(rd_kafka_producev(p, RD_KAFKA_V_TOPIC("ds2grist.dossiers"),
                                           RD_KAFKA_V_KEY(key, strlen(key)),
                                           RD_KAFKA_V_VALUE(val, strlen(val)),
                                           RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
                         0);
    }
    assert_int_equal(rd_kafka_flush(p, 10000), 0);
    rd_kafka_destroy(p);

    rd_kafka_t *c = kafka_client(RD_KAFKA_CONSUMER, env->kafka_bootstrap, "d2g-test");
    rd_kafka_poll_set_consumer(c);
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, "ds2grist.dossiers", RD_KAFKA_PARTITION_UA);
    assert_int_equal(rd_kafka_subscribe(c, topics), 0);
    rd_kafka_topic_partition_list_destroy(topics);

    int seen[N] = {0}, got = 0;
    for (int polls = 0; got < N && polls < 300; polls++) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 100);
        if (!m)
            continue;
        if (!m->err) {
            int n = -1;
            sscanf((const char *)m->payload, "{\"n\":%d}", &n);
            assert_true(n >= 0 && n < N);
            seen[n]++;
            got++;
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
    for (int i = 0; i < N; i++)
        assert_int_equal(seen[i], 1); /* every message once, none doubled */
}

static void test_ds_emulator(void **state) {
    d2g_testenv_t *env = *state;
    assert_int_equal(d2g_testenv_start_ds(env,
        "{\"seed\": 7, \"procedures\": [{\"number\": 1001, \"dossiers\": 30}],"
        " \"tokens\": [{\"name\": \"t\", \"secret\": \"s3cret\", \"procedures\": \"*\"}]}"), 0);
    char *resp = NULL;
    int st = d2g_test_http("POST", env->ds_url, "s3cret",
        "{\"query\": \"query($n: Int!) { demarche(number: $n) { dossiers(first: 20) {"
        " pageInfo { hasNextPage endCursor } nodes { number state } } } }\","
        " \"variables\": {\"n\": 1001}}", &resp);
    assert_int_equal(st, 200);
    json_t *j = json_loads(resp, 0, NULL);
    assert_non_null(j);
    json_t *conn = json_object_get(json_object_get(json_object_get(j, "data"), "demarche"), "dossiers");
    assert_int_equal(json_array_size(json_object_get(conn, "nodes")), 20);
    assert_true(json_is_true(json_object_get(json_object_get(conn, "pageInfo"), "hasNextPage")));
    json_decref(j);
    free(resp);
    /* Without a valid token: 401. */
    st = d2g_test_http("POST", env->ds_url, "wrong", "{\"query\": \"{ demarche(number: 1001) { id } }\"}", NULL);
    assert_int_equal(st, 401);
}

static void test_grist_emulator(void **state) {
    d2g_testenv_t *env = *state;
    char url[256], *resp = NULL;
    assert_int_equal(d2g_testenv_start_grist(env,
        "{\"docs\": [{\"id\": \"docA\", \"keys\": [\"keyA\"]}], \"writeFixedMs\": 1}"), 0);
    snprintf(url, sizeof(url), "%s/api/docs/docA/tables", env->grist_url);
    assert_int_equal(d2g_test_http("POST", url, "keyA",
        "{\"tables\": [{\"id\": \"Dossiers\", \"columns\": [{\"id\": \"numero\", \"fields\":"
        " {\"type\": \"Int\"}}, {\"id\": \"etat\", \"fields\": {\"type\": \"Text\"}}]}]}", NULL), 200);
    snprintf(url, sizeof(url), "%s/api/docs/docA/tables/Dossiers/records", env->grist_url);
    const char *upsert = "{\"records\": [{\"require\": {\"numero\": 1}, \"fields\": {\"etat\": \"accepte\"}},"
                         " {\"require\": {\"numero\": 2}, \"fields\": {\"etat\": \"refuse\"}}]}";
    assert_int_equal(d2g_test_http("PUT", url, "keyA", upsert, NULL), 200);
    assert_int_equal(d2g_test_http("PUT", url, "keyA", upsert, NULL), 200); /* idempotent */
    assert_int_equal(d2g_test_http("GET", url, "keyA", NULL, &resp), 200);
    json_t *j = json_loads(resp, 0, NULL);
    assert_int_equal(json_array_size(json_object_get(j, "records")), 2);
    json_decref(j);
    free(resp);
    assert_int_equal(d2g_test_http("GET", url, "wrong-key", NULL, NULL), 401);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_redis, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kafka_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ds_emulator, setup, teardown),
        cmocka_unit_test_setup_teardown(test_grist_emulator, setup, teardown),
    };
    return cmocka_run_group_tests_name("stack", tests, NULL, NULL);
}
