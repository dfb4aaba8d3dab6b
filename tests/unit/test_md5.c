/* test_md5.c - md5.h against known digests, fed whole and in uneven pieces. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "ds2grist/md5.h"

static void check(const char *data, size_t len, size_t piece, const char *want) {
    d2g_md5_t m;
    char out[25];
    d2g_md5_init(&m);
    for (size_t o = 0; o < len; o += piece)
        d2g_md5_update(&m, data + o, len - o < piece ? len - o : piece);
    d2g_md5_base64(&m, out);
    assert_string_equal(out, want);
}

static void test_vectors(void **state) {
    (void)state;
    check("", 0, 1, "1B2M2Y8AsgTpgAmY7PhCfg==");
    check("abc", 3, 1, "kAFQmDzST7DWlj99KOF/cg==");
    check("le devis de A", 13, 5, "E5AfwmVPGADe8INOctkv1Q=="); /* the DS emulator's checksum */
    char *a = malloc(1000000);
    memset(a, 'a', 1000000);
    check(a, 1000000, 1000000, "dwfWrk4CfHDuoqk1wilvIQ==");
    check(a, 1000000, 63, "dwfWrk4CfHDuoqk1wilvIQ==");
    check(a, 1000000, 4097, "dwfWrk4CfHDuoqk1wilvIQ==");
    free(a);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_vectors)};
    return cmocka_run_group_tests_name("md5", tests, NULL, NULL);
}
