/* test_offsets.c - the stored offset is the contiguous low-water mark of done messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>

#include "offsets.h"

static void test_out_of_order(void **state) {
    (void)state;
    d2g_offsets_t *t = d2g_offsets_new();
    uint32_t e = d2g_offsets_reset(t);
    for (int64_t o = 10; o < 15; o++)
        assert_int_equal(d2g_offsets_add(t, o), 0);
    assert_int_equal(d2g_offsets_add(t, 12), -1); /* offsets only increase */
    assert_int_equal(d2g_offsets_done(t, e, 12), -1); /* 10 and 11 not done */
    assert_int_equal(d2g_offsets_done(t, e, 11), -1);
    assert_int_equal(d2g_offsets_done(t, e, 10), 13); /* 10, 11, 12 done: store 13 */
    assert_int_equal(d2g_offsets_pending(t), 2);
    assert_int_equal(d2g_offsets_done(t, e, 99), -1); /* unknown */
    assert_int_equal(d2g_offsets_done(t, e + 7, 13), -1); /* another assignment's */
    assert_int_equal(d2g_offsets_done(t, e, 14), -1);
    assert_int_equal(d2g_offsets_done(t, e, 13), 15);
    assert_int_equal(d2g_offsets_pending(t), 0);
    d2g_offsets_free(t);
}

/* Many messages done in a scrambled order, with the ring wrapping and growing. */
static void test_ring(void **state) {
    (void)state;
    enum { N = 5000 };
    d2g_offsets_t *t = d2g_offsets_new();
    uint32_t e = d2g_offsets_reset(t);
    int64_t stored = 0, next = 0;
    unsigned seed = 7;
    for (int round = 0; round < 10; round++) {
        int64_t first = next;
        for (int i = 0; i < N / 10; i++)
            assert_int_equal(d2g_offsets_add(t, next++), 0);
        int64_t order[N / 10];
        for (int i = 0; i < N / 10; i++)
            order[i] = first + i;
        for (int i = N / 10 - 1; i > 0; i--) {
            int j = rand_r(&seed) % (i + 1);
            int64_t x = order[i];
            order[i] = order[j];
            order[j] = x;
        }
        for (int i = 0; i < N / 10; i++) {
            int64_t s = d2g_offsets_done(t, e, order[i]);
            if (s >= 0) {
                assert_true(s > stored);
                stored = s;
            }
        }
        assert_int_equal(stored, next);
    }
    assert_int_equal(d2g_offsets_pending(t), 0);
    d2g_offsets_free(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_out_of_order),
        cmocka_unit_test(test_ring),
    };
    return cmocka_run_group_tests_name("offsets", tests, NULL, NULL);
}
