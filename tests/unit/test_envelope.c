/* test_envelope.c - the producer-to-worker message: round trip, rejection of bad messages,
 * and which of two versions of a dossier stands. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "ds2grist/envelope.h"
#include "ds2grist/err.h"

static void test_round_trip(void **state) {
    (void)state;
    json_t *d = json_pack("{s:s, s:i, s:s, s:s, s:[{s:s, s:s}]}", "id", "RG9zc2llci0xMg==",
                          "number", 12, "state", "en_instruction", "dateDerniereModification",
                          "2026-03-14T15:06:26+01:00", "champs", "label", "Nom de l'école",
                          "stringValue", "École élémentaire");
    char err[D2G_ERRLEN], key[64];
    size_t len;
    char *msg = d2g_envelope_encode(D2G_ENVELOPE_UPSERT, 0, 4242, d, 1773497186123LL, &len, err,
                                    sizeof(err));
    assert_non_null(msg);
    assert_int_equal(strlen(msg), len);
    d2g_envelope_t env;
    assert_int_equal(d2g_envelope_decode(msg, len, &env, err, sizeof(err)), 0);
    assert_int_equal(env.kind, D2G_ENVELOPE_UPSERT);
    assert_int_equal(env.partial, 0);
    assert_int_equal(env.procedure, 4242);
    assert_int_equal(env.number, 12);
    assert_string_equal(env.modified, "2026-03-14T15:06:26+01:00");
    assert_string_equal(env.fetched_at, "2026-03-14T14:06:26.123Z");
    assert_true(json_equal(env.dossier, d)); /* the dossier exactly as DS returned it */
    assert_int_equal(d2g_envelope_key(env.procedure, env.number, key, sizeof(key)), 7);
    assert_string_equal(key, "4242:12");
    d2g_envelope_clear(&env);
    free(msg);
    json_decref(d);
}

static void test_delete(void **state) {
    (void)state;
    json_t *d = json_pack("{s:s, s:i, s:s, s:s, s:s}", "id", "x", "number", 5, "dateSupression",
                          "2026-03-15T09:00:00+01:00", "state", "refuse", "reason", "user_request");
    char err[D2G_ERRLEN];
    size_t len;
    char *msg = d2g_envelope_encode(D2G_ENVELOPE_DELETE, D2G_ENVELOPE_PARTIAL, 1, d, 0, &len, err, sizeof(err));
    d2g_envelope_t env;
    assert_int_equal(d2g_envelope_decode(msg, len, &env, err, sizeof(err)), 0);
    assert_int_equal(env.kind, D2G_ENVELOPE_DELETE);
    assert_int_equal(env.partial, 1);
    assert_string_equal(env.modified, "2026-03-15T09:00:00+01:00");
    d2g_envelope_clear(&env);
    free(msg);
    /* An upsert needs dateDerniereModification. */
    assert_null(d2g_envelope_encode(D2G_ENVELOPE_UPSERT, 0, 1, d, 0, &len, err, sizeof(err)));
    assert_non_null(strstr(err, "dateDerniereModification"));
    json_decref(d);
}

static void expect_bad(const char *msg, const char *want) {
    d2g_envelope_t env;
    char err[D2G_ERRLEN];
    assert_int_equal(d2g_envelope_decode(msg, strlen(msg), &env, err, sizeof(err)), -1);
    if (!strstr(err, want))
        fail_msg("error \"%s\" does not contain \"%s\"", err, want);
    assert_null(env.root);
}

static void test_malformed(void **state) {
    (void)state;
    expect_bad("not json", "not JSON");
    expect_bad("{\"v\": 2}", "version");
    expect_bad("{\"v\": 1, \"kind\": \"merge\"}", "kind");
    expect_bad("{\"v\": 1, \"kind\": \"upsert\", \"procedure\": -1}", "procedure");
    expect_bad("{\"v\": 1, \"kind\": \"upsert\", \"procedure\": 1, \"number\": 2,"
               " \"modified\": \"x\", \"fetched_at\": \"y\", \"dossier\": {\"number\": 3}}",
               "differs");
    expect_bad("{\"v\": 1, \"kind\": \"upsert\", \"procedure\": 1, \"number\": 2,"
               " \"modified\": \"x\", \"fetched_at\": \"y\", \"dossier\": []}",
               "\"dossier\" must be an object");
    /* Two "procedure" fields: refused, not read as the last one. */
    expect_bad("{\"v\": 1, \"kind\": \"upsert\", \"procedure\": 1, \"procedure\": 2, \"number\": 2,"
               " \"modified\": \"x\", \"fetched_at\": \"y\", \"dossier\": {\"number\": 2}}",
               "duplicate key");
    expect_bad("{\"v\": 1, \"kind\": \"upsert\", \"procedure\": 1, \"number\": 2,"
               " \"modified\": \"x\", \"fetched_at\": \"y\", \"dossier\": {\"number\": 2, \"a\": 1, \"a\": 2}}",
               "duplicate key");
    /* Beyond 64 bits: refused with that reason, never wrapped or rounded. */
    expect_bad("{\"v\": 1, \"kind\": \"upsert\", \"procedure\": 1, \"number\": 18446744073709551617,"
               " \"modified\": \"x\", \"fetched_at\": \"y\", \"dossier\": {\"number\": 2}}",
               "64 bits");
}

/* A decoded message of dossier 7 of kind, at date (partial: labels only). */
static d2g_envelope_t message(d2g_envelope_kind_t kind, int partial, const char *date) {
    json_t *d = json_pack("{s:s, s:i, s:s}", "id", "x", "number", 7,
                          kind == D2G_ENVELOPE_UPSERT ? "dateDerniereModification" : "dateSupression",
                          date);
    char err[D2G_ERRLEN];
    size_t len;
    char *msg = d2g_envelope_encode(kind, partial ? D2G_ENVELOPE_PARTIAL : 0, 1, d, 0, &len, err,
                                    sizeof(err));
    assert_non_null(msg);
    d2g_envelope_t env;
    assert_int_equal(d2g_envelope_decode(msg, len, &env, err, sizeof(err)), 0);
    free(msg);
    json_decref(d);
    return env;
}

/* Which of two updates of one dossier stands when the older arrives last. */
static void test_older(void **state) {
    (void)state;
    d2g_envelope_t v10 = message(D2G_ENVELOPE_UPSERT, 0, "2026-03-14T10:00:00+01:00");
    d2g_envelope_t v12 = message(D2G_ENVELOPE_UPSERT, 0, "2026-03-14T12:00:00+01:00");
    d2g_envelope_t v12z = message(D2G_ENVELOPE_UPSERT, 0, "2026-03-14T11:00:00Z"); /* = v12 */
    d2g_envelope_t p10 = message(D2G_ENVELOPE_UPSERT, 1, "2026-03-14T10:00:00+01:00");
    d2g_envelope_t del9 = message(D2G_ENVELOPE_DELETE, 0, "2026-03-14T09:00:00+01:00");
    d2g_envelope_t del13 = message(D2G_ENVELOPE_DELETE, 0, "2026-03-14T13:00:00+01:00");

    assert_true(d2g_envelope_older(&v10, &v12));   /* a replayed old version: v12 stays */
    assert_false(d2g_envelope_older(&v12, &v10));  /* the usual case: the newer replaces */
    assert_false(d2g_envelope_older(&v12z, &v12)); /* the same instant in another offset */
    assert_false(d2g_envelope_older(&v12, &v12z));
    assert_true(d2g_envelope_older(&p10, &v12));   /* old labels do not go over newer ones */
    assert_false(d2g_envelope_older(&v12, &p10));
    /* A delete and an upsert are not compared: the later message wins. */
    assert_false(d2g_envelope_older(&del9, &v12)); /* deleted after a skewed upsert date */
    assert_false(d2g_envelope_older(&v10, &del13));
    assert_false(d2g_envelope_older(&del9, &del13));

    d2g_envelope_t *all[] = {&v10, &v12, &v12z, &p10, &del9, &del13};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        d2g_envelope_clear(all[i]);
}


int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_delete),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_older),
    };
    return cmocka_run_group_tests_name("envelope", tests, NULL, NULL);
}
