/* test_text.c - UTF-8-safe copies and secret scrubbing (common/text.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ds2grist/keys.h"
#include "ds2grist/text.h"

/* Valid for jansson (which accepts only valid UTF-8) and dumpable, no controls but \t. */
static void assert_clean(const char *s) {
    json_t *j = json_string(s);
    if (!j)
        fail_msg("not valid UTF-8: \"%s\"", s);
    char *dump = json_dumps(j, JSON_ENCODE_ANY);
    assert_non_null(dump);
    free(dump);
    json_decref(j);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if ((*p < 0x20 && *p != '\t') || *p == 0x7F)
            fail_msg("control character 0x%02x in \"%s\"", *p, s);
}

static void test_cut_at_boundary(void **state) {
    (void)state;
    char dst[6];
    /* "é" is 2 bytes, "€" 3, "😀" 4: none may be cut. */
    assert_int_equal(d2g_text_copy(dst, sizeof(dst), "abcdé", (size_t)-1), 4);
    assert_string_equal(dst, "abcd");
    assert_int_equal(d2g_text_copy(dst, sizeof(dst), "ab€x", (size_t)-1), 5);
    assert_string_equal(dst, "ab€");
    assert_int_equal(d2g_text_copy(dst, sizeof(dst), "a😀", (size_t)-1), 5);
    assert_string_equal(dst, "a😀");
    assert_int_equal(d2g_text_copy(dst, sizeof(dst), "ab😀", (size_t)-1), 2);
    assert_string_equal(dst, "ab");
    /* srclen bounds the source and may itself cut a character: the half is invalid. */
    assert_int_equal(d2g_text_copy(dst, sizeof(dst), "aé", 2), 2);
    assert_string_equal(dst, "a?");
    assert_int_equal(d2g_text_copy(dst, 1, "abc", (size_t)-1), 0);
    assert_string_equal(dst, "");
    assert_int_equal(d2g_text_copy(dst, sizeof(dst), NULL, 3), 0);
    assert_string_equal(dst, "");
}

static void test_invalid_and_controls(void **state) {
    (void)state;
    char dst[64];
    d2g_text_copy(dst, sizeof(dst), "a\xff" "b\xc3(c\xed\xa0\x80" "d\xc0\xafz", (size_t)-1);
    assert_string_equal(dst, "a?b?(c???d??z"); /* bad byte, bad tail, surrogate, overlong */
    d2g_text_copy(dst, sizeof(dst), "l1\nl2\r\tx\x1b[0m\x7f", (size_t)-1);
    assert_string_equal(dst, "l1 l2 \tx [0m ");
    d2g_text_copy(dst, sizeof(dst), "\xf4\x90\x80\x80" "ok", (size_t)-1); /* > U+10FFFF */
    assert_string_equal(dst, "????ok");
    /* In place. */
    char buf[16] = "x\xffy\n";
    d2g_text_copy(buf, sizeof(buf), buf, (size_t)-1);
    assert_string_equal(buf, "x?y ");
}

/* Random bytes biased towards UTF-8 lead and continuation bytes, every length. */
static void test_random_input(void **state) {
    (void)state;
    unsigned seed = 12345;
    unsigned char src[200];
    char dst[128];
    static const unsigned char pool[] = {0x00, 0x09, 0x0a, 0x1f, 'a',  0x7f, 0x80, 0xbf, 0xc0,
                                         0xc2, 0xdf, 0xe0, 0xed, 0xef, 0xf0, 0xf4, 0xf5, 0xff,
                                         0xa0, 0x9f, 0x90, 0x8f};
    for (int iter = 0; iter < 200000; iter++) {
        size_t n = (size_t)(rand_r(&seed) % sizeof(src));
        for (size_t i = 0; i < n; i++)
            src[i] = rand_r(&seed) % 3 ? pool[rand_r(&seed) % sizeof(pool)]
                                        : (unsigned char)rand_r(&seed);
        size_t dl = 1 + (size_t)(rand_r(&seed) % sizeof(dst));
        size_t w = d2g_text_copy(dst, dl, (const char *)src, n);
        assert_true(w < dl);
        assert_int_equal(strlen(dst), w);
        assert_true(d2g_text_valid_utf8(dst, w));
        assert_clean(dst);
    }
}

/* Valid multi-byte input keeps every character it has room for. */
static void test_valid_kept(void **state) {
    (void)state;
    const char *s = "Dossier n°12 — déposé à 10h ✓ 😀 fin";
    char dst[128];
    assert_int_equal(d2g_text_copy(dst, sizeof(dst), s, (size_t)-1), strlen(s));
    assert_string_equal(dst, s);
    for (size_t dl = 1; dl <= strlen(s) + 1; dl++) {
        size_t w = d2g_text_copy(dst, dl, s, (size_t)-1);
        assert_int_equal(w, d2g_text_prefix(s, dl - 1));
        assert_memory_equal(dst, s, w);
        assert_clean(dst);
    }
}

static void test_scrub(void **state) {
    (void)state;
    char s[128] = "Bearer tok-12345 and tok-12345x, key=abcd; ab stays";
    const char *secrets[] = {"tok-12345", NULL, "ab", "abcd"};
    d2g_text_scrub(s, secrets, 4);
    assert_string_equal(s, "Bearer *** and ***x, key=***; ab stays");
    char t[32] = "aaaaaaaa";
    const char *one[] = {"aaaa"};
    d2g_text_scrub(t, one, 1);
    assert_string_equal(t, "******");
}

static void test_keys(void **state) {
    (void)state;
    char k[D2G_KEYLEN];
    assert_int_equal(d2g_keys_proc("ns", k, sizeof(k), 12, "cursor"), 0);
    assert_string_equal(k, "ns:{proc:12}:cursor");
    assert_int_equal(d2g_keys_doc("ns", k, sizeof(k), "g", "docA", "permits"), 0);
    assert_string_equal(k, "ns:{doc:g/docA}:permits");
    assert_int_equal(d2g_keys_dstoken("ns", k, sizeof(k), "min-a", "budget"), 0);
    assert_string_equal(k, "ns:{dstoken:min-a}:budget");
    assert_int_equal(d2g_keys_proc("ns", k, sizeof(k), 12, "cursr"), -1);
    assert_int_equal(d2g_keys_doc("ns", k, 10, "g", "docA", "permits"), -1);
    assert_string_equal(k, "");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cut_at_boundary),  cmocka_unit_test(test_invalid_and_controls),
        cmocka_unit_test(test_random_input),     cmocka_unit_test(test_valid_kept),
        cmocka_unit_test(test_scrub),            cmocka_unit_test(test_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
