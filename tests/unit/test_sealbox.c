/*
 * test_sealbox.c - DS tokens sealed at rest (sealbox.h) and registry entries
 * (registry.h) as JSON: round trip, a value altered or opened with another
 * key refused, nonces fresh, tags stable and secret-free, the token never in
 * clear in what is stored.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "ds2grist/registry.h"
#include "ds2grist/sealbox.h"
#include "ds2grist/secret.h"

#define KEY1 "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
#define KEY2 "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100"
#define TOKEN "ds-token-4f1e2d3c"

static void test_round_trip(void **state) {
    (void)state;
    char err[256];
    d2g_sealbox_t *a = d2g_sealbox_new(KEY1, err, sizeof(err));
    d2g_sealbox_t *b = d2g_sealbox_new(KEY2, err, sizeof(err));
    assert_non_null(a);
    assert_non_null(b);
    char *s1 = d2g_sealbox_seal(a, TOKEN, err, sizeof(err));
    char *s2 = d2g_sealbox_seal(a, TOKEN, err, sizeof(err));
    assert_non_null(s1);
    assert_int_equal(strncmp(s1, "sb1:", 4), 0);
    assert_null(strstr(s1, TOKEN));
    assert_string_not_equal(s1, s2); /* a fresh nonce each time */
    char *p = d2g_sealbox_open(a, s1, err, sizeof(err));
    assert_string_equal(p, TOKEN);
    d2g_secret_free(p);
    /* Another key, an altered value, not a sealed value: refused. */
    assert_null(d2g_sealbox_open(b, s1, err, sizeof(err)));
    assert_string_equal(err, "wrong key or altered value");
    size_t n = strlen(s1);
    s1[n - 3] = s1[n - 3] == 'A' ? 'B' : 'A';
    assert_null(d2g_sealbox_open(a, s1, err, sizeof(err)));
    assert_null(d2g_sealbox_open(a, TOKEN, err, sizeof(err)));
    assert_null(d2g_sealbox_open(a, "sb1:", err, sizeof(err)));
    /* Tags: the same token, the same name; another key or token, another name. */
    char t1[40], t2[40], t3[40], t4[40];
    d2g_sealbox_tag(a, "reg-", TOKEN, t1, sizeof(t1));
    d2g_sealbox_tag(a, "reg-", TOKEN, t2, sizeof(t2));
    d2g_sealbox_tag(b, "reg-", TOKEN, t3, sizeof(t3));
    d2g_sealbox_tag(a, "reg-", "another", t4, sizeof(t4));
    assert_string_equal(t1, t2);
    assert_string_not_equal(t1, t3);
    assert_string_not_equal(t1, t4);
    assert_int_equal(strlen(t1), 4 + 16);
    free(s1);
    free(s2);
    d2g_sealbox_free(a);
    d2g_sealbox_free(b);
}

static void test_bad_keys(void **state) {
    (void)state;
    char err[256];
    assert_null(d2g_sealbox_new("0011", err, sizeof(err)));
    assert_null(d2g_sealbox_new(KEY1 "00", err, sizeof(err)));
    char bad[] = KEY1;
    bad[10] = 'g';
    assert_null(d2g_sealbox_new(bad, err, sizeof(err)));
    assert_null(strstr(err, "0011")); /* never the key */
}

static void test_entry_json(void **state) {
    (void)state;
    char err[256];
    d2g_reg_entry_t e = {.procedure = 41235, .document = "docA", .grist_server = "main",
                         .ds_endpoint = "https://ds/api/v2/graphql", .ds_token_sealed = "sb1:xyz",
                         .table_prefix = "D41235", .state = D2G_REG_PAUSED, .created_ms = 1000,
                         .updated_ms = 2000, .created_by = "doc:main/docA"};
    char *json = d2g_reg_entry_to_json(&e);
    d2g_reg_entry_t back;
    assert_int_equal(d2g_reg_entry_from_json(json, strlen(json), &back, err, sizeof(err)), 0);
    assert_int_equal(back.procedure, 41235);
    assert_string_equal(back.document, "docA");
    assert_string_equal(back.ds_token_sealed, "sb1:xyz");
    assert_int_equal(back.state, D2G_REG_PAUSED);
    assert_int_equal(back.created_ms, 1000);
    assert_string_equal(back.created_by, "doc:main/docA");
    d2g_reg_entry_clear(&back);
    assert_int_equal(d2g_reg_entry_from_json("{\"procedure\": 1}", 16, &back, err, sizeof(err)), -1);
    /* Written before options existed: none, and none written back. */
    assert_null(strstr(json, "mapping"));
    assert_int_equal(d2g_reg_entry_from_json(json, strlen(json), &back, err, sizeof(err)), 0);
    assert_null(back.mapping);
    assert_null(back.filter);
    d2g_reg_entry_clear(&back);
    free(json);
}

/* Options: checked by the configuration's parser, stored, read back; a
 * refusal names the key and leaves the entry as it was. */
static void test_entry_options(void **state) {
    (void)state;
    char err[256];
    d2g_reg_entry_t e = {0};
    json_t *m = json_loads("{\"avis\": true}", 0, NULL);
    json_t *f = json_loads("{\"states\": [\"accepte\"]}", 0, NULL);
    json_t *bad = json_loads("{\"messages\": 1}", 0, NULL);
    int changed = 0;
    assert_int_equal(d2g_reg_entry_set_options(&e, m, f, &changed, err, sizeof(err)), 0);
    assert_true(changed);
    assert_int_equal(d2g_reg_entry_set_options(&e, bad, NULL, &changed, err, sizeof(err)), -1);
    assert_string_equal(err, "mapping.messages: must be true or false");
    assert_true(json_equal(e.mapping, m)); /* unchanged */
    json_t *bad_f = json_loads("{\"states\": [\"brouillon\"]}", 0, NULL);
    assert_int_equal(d2g_reg_entry_set_options(&e, NULL, bad_f, &changed, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "filter.states[0]: not a DS state"));
    json_decref(bad_f);
    /* The same filter again: not a change; the mapping alone changes. */
    json_t *m2 = json_loads("{\"avis\": true, \"geo_areas\": true}", 0, NULL);
    assert_int_equal(d2g_reg_entry_set_options(&e, m2, f, &changed, err, sizeof(err)), 0);
    assert_false(changed);
    e.procedure = 7;
    e.document = strdup("docA");
    e.grist_server = strdup("main");
    e.ds_endpoint = strdup("https://ds");
    e.ds_token_sealed = strdup("sb1:xyz");
    e.table_prefix = strdup("D7");
    e.created_by = strdup("cli");
    char *json = d2g_reg_entry_to_json(&e);
    d2g_reg_entry_t back;
    assert_int_equal(d2g_reg_entry_from_json(json, strlen(json), &back, err, sizeof(err)), 0);
    assert_true(json_equal(back.mapping, m2));
    assert_true(json_equal(back.filter, f));
    json_t *shown = d2g_reg_entry_options(&back);
    assert_true(json_equal(json_object_get(shown, "filter"), f));
    json_decref(shown);
    /* null or {} removes. */
    json_t *null = json_null(), *empty = json_object();
    assert_int_equal(d2g_reg_entry_set_options(&back, empty, null, &changed, err, sizeof(err)), 0);
    assert_true(changed);
    assert_null(back.mapping);
    assert_null(back.filter);
    d2g_reg_entry_clear(&back);
    d2g_reg_entry_clear(&e);
    free(json);
    /* A stored option that is not an object: the entry is refused. */
    const char *odd = "{\"procedure\": 1, \"document\": \"d\", \"grist_server\": \"g\","
                      " \"ds_endpoint\": \"e\", \"ds_token\": \"sb1:x\", \"table_prefix\": \"D1\","
                      " \"state\": \"active\", \"filter\": [1]}";
    assert_int_equal(d2g_reg_entry_from_json(odd, strlen(odd), &back, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "filter: must be an object"));
    json_decref(null);
    json_decref(empty);
    json_decref(m);
    json_decref(m2);
    json_decref(f);
    json_decref(bad);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_bad_keys),
        cmocka_unit_test(test_entry_json),
        cmocka_unit_test(test_entry_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
