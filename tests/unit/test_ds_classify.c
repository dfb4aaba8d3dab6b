/* test_ds_classify.c - how the producer reads each kind of DS answer (pure logic). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <string.h>

#include "ds_client.h"
#include "ds2grist/http.h"
#include "ds2grist/text.h"

static d2g_ds_status_t classify(int curl_code, long status, const char *retry_after,
                                const char *body, d2g_ds_result_t *r) {
    d2g_ds_classify(curl_code, status, retry_after, body, body ? strlen(body) : 0, r);
    return r->status;
}

static void test_answers(void **state) {
    (void)state;
    d2g_ds_result_t r;
    assert_int_equal(classify(0, 200, "", "{\"data\":{\"demarche\":{\"number\":1}}}", &r), D2G_DS_OK);
    assert_non_null(json_object_get(r.data, "demarche"));
    json_decref(r.data);

    /* 429: Retry-After in seconds, plain-text body. */
    assert_int_equal(classify(0, 429, "17", "Retry later\n", &r), D2G_DS_RATE_LIMITED);
    assert_int_equal(r.retry_after_ms, 17000);
    assert_int_equal(classify(0, 429, "", "Retry later\n", &r), D2G_DS_RATE_LIMITED);
    assert_int_equal(r.retry_after_ms, 60000); /* no header: a minute */
    /* Bounded: huge values, far dates and garbage never pause a token for long. */
    assert_int_equal(classify(0, 429, "99999999999999999999999", "", &r), D2G_DS_RATE_LIMITED);
    assert_int_equal(r.retry_after_ms, 15 * 60 * 1000);
    assert_int_equal(classify(0, 429, "31536000", "", &r), D2G_DS_RATE_LIMITED);
    assert_int_equal(r.retry_after_ms, 15 * 60 * 1000);
    assert_non_null(strstr(r.error, "900 s"));
    assert_int_equal(classify(0, 429, "-5", "", &r), D2G_DS_RATE_LIMITED);
    assert_int_equal(r.retry_after_ms, 60000);
    assert_non_null(strstr(r.error, "not understood"));
    assert_int_equal(classify(0, 429, "0", "", &r), D2G_DS_RATE_LIMITED);
    assert_int_equal(r.retry_after_ms, 1000);
    assert_int_equal(classify(0, 429, "Fri, 31 Dec 9999 23:59:59 GMT", "", &r), D2G_DS_RATE_LIMITED);
    assert_int_equal(r.retry_after_ms, 15 * 60 * 1000);
    /* An HTTP date, against a fixed clock. */
    int parsed = 0;
    /* 1994-11-06T08:49:37Z = 784111777 s */
    assert_int_equal(d2g_http_retry_after_ms("Sun, 06 Nov 1994 08:49:37 GMT", 784111777000LL - 42000,
                                             60000, 900000, &parsed), 42000);
    assert_int_equal(parsed, 1);
    assert_int_equal(d2g_http_retry_after_ms("Sun, 06 Nov 1994 08:49:37 GMT", 784111777000LL + 5000,
                                             60000, 900000, &parsed), 0); /* already past */
    assert_int_equal(d2g_http_retry_after_ms("Sun, 06 Xyz 1994 08:49:37 GMT", 0, 60000, 900000,
                                             &parsed), 60000);
    assert_int_equal(parsed, 0);
    assert_int_equal(d2g_http_retry_after_ms(" 17 ", 0, 60000, 900000, &parsed), 17000);
    assert_int_equal(d2g_http_retry_after_ms("1.5", 0, 60000, 900000, &parsed), 60000);

    /* A long GraphQL message cut in the middle of a character: the error stays valid UTF-8. */
    {
        char body[2048] = "{\"errors\":[{\"message\":\"x";
        for (int i = 0; i < 300; i++)
            strcat(body, "é");
        strcat(body, "\"}],\"data\":null}");
        classify(0, 200, "", body, &r);
        assert_true(d2g_text_valid_utf8(r.error, strlen(r.error)));
        d2g_ds_result_clear(&r);
    }
    assert_int_equal(classify(0, 401, "", "{\"errors\":[{\"message\":\"Token expired\"}],\"data\":null}", &r), D2G_DS_AUTH);
    assert_non_null(strstr(r.error, "Token expired"));
    assert_int_equal(classify(0, 403, "", "", &r), D2G_DS_AUTH);

    /* Root-level errors fail the request even next to partial data. */
    assert_int_equal(classify(0, 200, "", "{\"data\":{\"demarche\":{\"number\":1}},\"errors\":"
                                         "[{\"message\":\"boom\",\"extensions\":{\"code\":\"internal_server_error\"}}]}", &r),
                     D2G_DS_GRAPHQL);
    assert_non_null(strstr(r.error, "internal_server_error"));
    assert_null(r.data);
    /* ... but what came is kept for a batched check to sort out (checker.h). */
    assert_non_null(json_object_get(r.partial, "demarche"));
    assert_int_equal(json_array_size(r.errors), 1);
    d2g_ds_result_clear(&r);

    /* What a smaller page fixes: timeouts (three forms) and complexity. */
    assert_int_equal(classify(0, 200, "", "{\"data\":null,\"errors\":[{\"message\":\"Timeout on Demarche.dossiers\","
                                         "\"extensions\":{\"code\":\"timeout\"}}]}", &r), D2G_DS_TOO_BIG);
    assert_int_equal(classify(0, 504, "", "Gateway Timeout\n", &r), D2G_DS_TOO_BIG);
    assert_int_equal(classify(CURLE_OPERATION_TIMEDOUT, 0, "", NULL, &r), D2G_DS_TOO_BIG);
    assert_int_equal(classify(0, 200, "", "{\"errors\":[{\"message\":\"Query has complexity of 75000, which exceeds "
                                         "max complexity of 60000\"}]}", &r), D2G_DS_TOO_BIG);

    /* Transient. */
    assert_int_equal(classify(0, 500, "", "{\"errors\":[{\"message\":\"Internal Server Error\"}]}", &r), D2G_DS_RETRY);
    assert_int_equal(classify(0, 502, "", "<html>bad gateway</html>", &r), D2G_DS_RETRY);
    assert_int_equal(classify(CURLE_COULDNT_CONNECT, 0, "", NULL, &r), D2G_DS_RETRY);

    assert_int_equal(classify(0, 200, "", "<html>maintenance</html>", &r), D2G_DS_BAD_RESPONSE);
    assert_int_equal(classify(0, 200, "", "{\"data\":null}", &r), D2G_DS_BAD_RESPONSE);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_answers)};
    return cmocka_run_group_tests_name("ds_classify", tests, NULL, NULL);
}
