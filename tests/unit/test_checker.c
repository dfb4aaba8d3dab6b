/* test_checker.c - the batched check query and the reading of its answers (pure logic).
 *
 *   test_checker                  the unit tests
 *   test_checker --print N FILE   writes the check query for N procedures to FILE, for the
 *                                 validation against the DS schema (producer_check_query_valid)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checker.h"
#include "ds2grist/err.h"

static void test_query_and_variables(void **state) {
    (void)state;
    int with_labels[] = {0, 1, 0};
    char *q = d2g_checker_query(with_labels, 3);
    assert_non_null(strstr(q, "query checkProcedures("));
    assert_non_null(strstr(q, "p0: demarche(number: $n0)"));
    assert_non_null(strstr(q, "p2: demarche(number: $n2)"));
    assert_null(strstr(q, "p3:"));
    /* The label page, for p1 alone. */
    const char *l = strstr(q, "labels: dossiers(first: 100)");
    assert_non_null(l);
    assert_true(l > strstr(q, "p1:") && l < strstr(q, "p2:"));
    assert_null(strstr(l + 1, "labels: dossiers"));
    assert_non_null(strstr(q, "dossiers(first: 1, after: $a1, updatedSince: $u1)"));
    assert_non_null(strstr(q, "deletedDossiers(first: 1, after: $b2, deletedSince: $d2)"));
    /* each procedure's published form id: a new form is stored without a dossier changing */
    const char *r = strstr(q, "activeRevision { id }");
    assert_non_null(r);
    assert_true(r > strstr(q, "p0:") && r < strstr(q, "p1:"));
    free(q);
    json_t *data = json_loads("{\"p0\": {\"number\": 1, \"activeRevision\": {\"id\": \"UmV2LTE=\"}},"
                              " \"p1\": {\"number\": 2, \"activeRevision\": null}}", 0, NULL);
    assert_string_equal(d2g_checker_revision(data, 0), "UmV2LTE=");
    assert_null(d2g_checker_revision(data, 1));
    assert_null(d2g_checker_revision(data, 2));
    json_decref(data);

    d2g_check_item_t items[] = {
        {1001, "2000-01-01T00:00:00Z", NULL, "2026-01-01T00:00:00.000Z", NULL},
        {1002, "2026-02-01T00:00:00Z", "Y3Vyc29y", "2026-01-02T00:00:00.000Z", "ZGVs"},
    };
    json_t *v = d2g_checker_variables(items, 2);
    assert_int_equal(json_object_size(v), 10);
    assert_int_equal(json_integer_value(json_object_get(v, "n1")), 1002);
    assert_true(json_is_null(json_object_get(v, "a0")));
    assert_string_equal(json_string_value(json_object_get(v, "a1")), "Y3Vyc29y");
    assert_string_equal(json_string_value(json_object_get(v, "u1")), "2026-02-01T00:00:00Z");
    assert_string_equal(json_string_value(json_object_get(v, "b1")), "ZGVs");
    assert_string_equal(json_string_value(json_object_get(v, "d0")), "2026-01-01T00:00:00.000Z");
    json_decref(v);
}

static void test_answers(void **state) {
    (void)state;
    char err[D2G_ERRLEN];
    d2g_check_outcome_t out[4];
    json_t *data = json_loads(
        "{\"p0\": {\"number\": 1, \"dossiers\": {\"nodes\": []}, \"deletedDossiers\": {\"nodes\": []}},"
        " \"p1\": {\"number\": 2, \"dossiers\": {\"nodes\": [{\"number\": 7}]}, \"deletedDossiers\": {\"nodes\": []}},"
        " \"p2\": {\"number\": 3, \"dossiers\": {\"nodes\": []}, \"deletedDossiers\": {\"nodes\": [{\"number\": 8}]}},"
        " \"p3\": null}", 0, NULL);
    json_t *errors = json_loads("[{\"message\": \"Demarche not found\", \"path\": [\"p3\"],"
                                " \"extensions\": {\"code\": \"not_found\"}}]", 0, NULL);
    assert_int_equal(d2g_checker_parse(data, errors, 4, out, err, sizeof(err)), 0);
    assert_int_equal(out[0], D2G_CHECK_QUIET);
    assert_int_equal(out[1], D2G_CHECK_CHANGED);
    assert_int_equal(out[2], D2G_CHECK_DELETED);
    assert_int_equal(out[3], D2G_CHECK_FAILED);
    /* Without errors, a missing alias or connection fails that procedure alone. */
    json_object_del(data, "p3");
    json_object_del(json_object_get(data, "p2"), "deletedDossiers");
    assert_int_equal(d2g_checker_parse(data, NULL, 4, out, err, sizeof(err)), 0);
    assert_int_equal(out[1], D2G_CHECK_CHANGED);
    assert_int_equal(out[2], D2G_CHECK_FAILED);
    assert_int_equal(out[3], D2G_CHECK_FAILED);
    json_decref(errors);

    /* An error about the whole request (no alias in its path) fails the request. */
    errors = json_loads("[{\"message\": \"Query has depth of 16\"}]", 0, NULL);
    out[0] = D2G_CHECK_CHANGED;
    assert_int_equal(d2g_checker_parse(data, errors, 4, out, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "depth"));
    assert_int_equal(out[0], D2G_CHECK_CHANGED); /* untouched */
    json_decref(errors);
    /* An alias that is not ours (p9 of 4) is not one procedure's error either. */
    errors = json_loads("[{\"message\": \"x\", \"path\": [\"p9\"]}]", 0, NULL);
    assert_int_equal(d2g_checker_parse(data, errors, 4, out, err, sizeof(err)), -1);
    json_decref(errors);
    assert_int_equal(d2g_checker_parse(NULL, NULL, 1, out, err, sizeof(err)), -1);
    /* Label pages: complete (no next page) or not. */
    json_t *lab = json_loads(
        "{\"p0\": {\"labels\": {\"pageInfo\": {\"hasNextPage\": true}, \"nodes\": []}},"
        " \"p1\": {\"labels\": {\"pageInfo\": {\"hasNextPage\": false}, \"nodes\":"
        "   [{\"number\": 7, \"labels\": [{\"id\": \"TGFiZWwtMg\"}, {\"id\": \"TGFiZWwtMQ\"}]}]}},"
        " \"p2\": {\"dossiers\": {\"nodes\": []}}}", 0, NULL);
    assert_null(d2g_checker_label_page(lab, 0));
    json_t *page = d2g_checker_label_page(lab, 1);
    assert_int_equal(json_array_size(page), 1);
    char *digest = d2g_checker_label_digest(json_object_get(json_array_get(page, 0), "labels"));
    assert_string_equal(digest, "TGFiZWwtMQ,TGFiZWwtMg"); /* sorted ids */
    free(digest);
    assert_null(d2g_checker_label_page(lab, 2));
    json_decref(lab);
    /* demarche is non-null in DS's schema: one hidden procedure nulls all the data. Only it
     * failed; the others were not answered. */
    errors = json_loads("[{\"message\": \"An object of type Demarche was hidden due to permissions\","
                        " \"path\": [\"p2\"], \"extensions\": {\"code\": \"unauthorized\"}}]", 0, NULL);
    assert_int_equal(d2g_checker_parse(json_null(), errors, 4, out, err, sizeof(err)), 0);
    assert_int_equal(out[0], D2G_CHECK_UNKNOWN);
    assert_int_equal(out[2], D2G_CHECK_FAILED);
    assert_int_equal(out[3], D2G_CHECK_UNKNOWN);
    json_decref(errors);
    json_decref(data);
}

int main(int argc, char **argv) {
    if (argc == 4 && !strcmp(argv[1], "--print")) {
        FILE *f = fopen(argv[3], "w");
        size_t n = (size_t)atoi(argv[2]);
        int *with_labels = calloc(n + 1, sizeof(int));
        for (size_t i = 0; i < n; i += 2)
            with_labels[i] = 1; /* both shapes of an alias */
        char *q = d2g_checker_query(with_labels, n);
        free(with_labels);
        int ok = f && fputs(q, f) >= 0;
        free(q);
        if (f)
            ok &= fclose(f) == 0;
        return ok ? 0 : 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_query_and_variables),
        cmocka_unit_test(test_answers),
    };
    return cmocka_run_group_tests_name("checker", tests, NULL, NULL);
}
