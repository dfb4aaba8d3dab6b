/* test_filter.c - per-procedure dossier filters (worker/filter.h): in, out, undecidable. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "filter.h"

static json_t *dossier(const char *state, int group, const char *depot) {
    json_t *d = json_pack("{s:s, s:i, s:s, s:s}", "id", "RG9zc2llci0x", "number", 1234,
                          "dateDerniereModification", "2026-03-14T15:06:26+01:00", "state", state);
    if (group > 0)
        json_object_set_new(d, "groupeInstructeur", json_pack("{s:i, s:s}", "number", group, "label", "G"));
    else if (group == 0)
        json_object_set_new(d, "groupeInstructeur", json_null());
    if (depot)
        json_object_set_new(d, "dateDepot", json_string(depot));
    return d;
}

static void test_empty_filter_keeps_everything(void **state) {
    (void)state;
    d2g_proc_filter_t f = {0};
    json_t *d = dossier("refuse", 3, NULL);
    assert_int_equal(d2g_filter_check(&f, d, NULL, 0), D2G_FILTER_IN);
    assert_int_equal(d2g_filter_check(NULL, d, NULL, 0), D2G_FILTER_IN);
    json_decref(d);
}

static void test_states(void **state) {
    (void)state;
    char why[128];
    d2g_proc_filter_t f = {.states = D2G_STATE_EN_INSTRUCTION | D2G_STATE_ACCEPTE};
    json_t *in = dossier("accepte", 1, NULL), *out = dossier("refuse", 1, NULL);
    assert_int_equal(d2g_filter_check(&f, in, why, sizeof(why)), D2G_FILTER_IN);
    assert_string_equal(why, "");
    assert_int_equal(d2g_filter_check(&f, out, why, sizeof(why)), D2G_FILTER_OUT);
    assert_string_equal(why, "state refuse not in filter.states");
    json_object_del(out, "state");
    assert_int_equal(d2g_filter_check(&f, out, why, sizeof(why)), D2G_FILTER_UNKNOWN);
    assert_non_null(strstr(why, "no state"));
    json_object_set_new(out, "state", json_string("brouillon"));
    assert_int_equal(d2g_filter_check(&f, out, why, sizeof(why)), D2G_FILTER_OUT);
    json_decref(in);
    json_decref(out);
}

static void test_groups(void **state) {
    (void)state;
    char why[128];
    int64_t groups[] = {2, 7, 40};
    d2g_proc_filter_t f = {.groups = groups, .n_groups = 3};
    for (int g = 1; g <= 41; g++) {
        json_t *d = dossier("en_construction", g, NULL);
        int want = (g == 2 || g == 7 || g == 40) ? D2G_FILTER_IN : D2G_FILTER_OUT;
        assert_int_equal(d2g_filter_check(&f, d, why, sizeof(why)), want);
        json_decref(d);
    }
    json_t *d = dossier("en_construction", 5, NULL);
    d2g_filter_check(&f, d, why, sizeof(why));
    assert_string_equal(why, "groupe instructeur 5 not in filter.instruction_groups");
    json_decref(d);
    d = dossier("en_construction", 0, NULL); /* null group: out */
    assert_int_equal(d2g_filter_check(&f, d, why, sizeof(why)), D2G_FILTER_OUT);
    json_decref(d);
    d = dossier("en_construction", -1, NULL); /* no key: a partial dossier */
    assert_int_equal(d2g_filter_check(&f, d, why, sizeof(why)), D2G_FILTER_UNKNOWN);
    json_decref(d);
}

static void test_deposit_dates(void **state) {
    (void)state;
    char why[128];
    d2g_proc_filter_t f = {0};
    strcpy(f.deposited_from, "2026-01-01");
    strcpy(f.deposited_to, "2026-03-31");
    static const struct {
        const char *depot;
        int want;
    } rows[] = {
        {"2025-12-31T23:59:59+01:00", D2G_FILTER_OUT}, /* Paris local date: the day before */
        {"2026-01-01T00:00:00+01:00", D2G_FILTER_IN},  /* from is inclusive */
        {"2026-03-31T23:59:59+02:00", D2G_FILTER_IN},  /* to is inclusive */
        {"2026-04-01T00:00:00+02:00", D2G_FILTER_OUT},
        {"2026-02-15", D2G_FILTER_IN},
        {"bientôt", D2G_FILTER_OUT},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        json_t *d = dossier("en_construction", 1, rows[i].depot);
        if (d2g_filter_check(&f, d, why, sizeof(why)) != (d2g_filter_result_t)rows[i].want)
            fail_msg("dateDepot %s: want %d (%s)", rows[i].depot, rows[i].want, why);
        json_decref(d);
    }
    json_t *d = dossier("en_construction", 1, "2026-04-02T10:00:00+02:00");
    d2g_filter_check(&f, d, why, sizeof(why));
    assert_string_equal(why, "deposited 2026-04-02, after filter.deposited_to 2026-03-31");
    json_object_set_new(d, "dateDepot", json_null());
    assert_int_equal(d2g_filter_check(&f, d, why, sizeof(why)), D2G_FILTER_OUT);
    json_object_del(d, "dateDepot");
    assert_int_equal(d2g_filter_check(&f, d, why, sizeof(why)), D2G_FILTER_UNKNOWN);
    f.deposited_to[0] = '\0'; /* open end */
    json_object_set_new(d, "dateDepot", json_string("2030-01-01T00:00:00+01:00"));
    assert_int_equal(d2g_filter_check(&f, d, why, sizeof(why)), D2G_FILTER_IN);
    json_decref(d);
}

/* Every part must hold: the first that does not decides. */
static void test_all_parts(void **state) {
    (void)state;
    int64_t groups[] = {1};
    d2g_proc_filter_t f = {.states = D2G_STATE_ACCEPTE, .groups = groups, .n_groups = 1};
    strcpy(f.deposited_from, "2026-01-01");
    json_t *d = dossier("accepte", 1, "2026-02-01T10:00:00+01:00");
    assert_int_equal(d2g_filter_check(&f, d, NULL, 0), D2G_FILTER_IN);
    json_object_set_new(d, "groupeInstructeur", json_pack("{s:i}", "number", 2));
    assert_int_equal(d2g_filter_check(&f, d, NULL, 0), D2G_FILTER_OUT);
    json_decref(d);
}

static void test_deleted_node(void **state) {
    (void)state;
    json_t *d = dossier("refuse", 1, "2026-02-01T10:00:00+01:00");
    json_t *n = d2g_filter_deleted_node(d);
    char *text = json_dumps(n, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(text, "{\"dateSupression\":\"2026-03-14T15:06:26+01:00\",\"id\":\"RG9zc2llci0x\","
                              "\"number\":1234,\"reason\":\"hors_filtre\",\"state\":\"refuse\"}");
    free(text);
    json_decref(n);
    json_decref(d);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_filter_keeps_everything),
        cmocka_unit_test(test_states),
        cmocka_unit_test(test_groups),
        cmocka_unit_test(test_deposit_dates),
        cmocka_unit_test(test_all_parts),
        cmocka_unit_test(test_deleted_node),
    };
    return cmocka_run_group_tests_name("filter", tests, NULL, NULL);
}
