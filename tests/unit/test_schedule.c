/* test_schedule.c - adaptive intervals, batch selection and size, replica shares (pure logic). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "schedule.h"

static void test_interval_follows_activity(void **state) {
    (void)state;
    const int64_t min = 60000, max = 600000;
    assert_int_equal(d2g_sched_interval_ms(min, max, 60000), min);        /* changed a minute ago */
    assert_int_equal(d2g_sched_interval_ms(min, max, 3600000), 360000);   /* an hour: 6 min */
    assert_int_equal(d2g_sched_interval_ms(min, max, 30LL * 86400000), max); /* a month */
    assert_int_equal(d2g_sched_interval_ms(min, max, -1), max);           /* unknown: quiet */
    assert_int_equal(d2g_sched_interval_ms(min, 1000, 1LL << 40), min);   /* max below min */
    /* Monotonic in the quiet time. */
    int64_t last = 0;
    for (int64_t q = 0; q < 20000000; q += 100000) {
        int64_t v = d2g_sched_interval_ms(min, max, q);
        assert_true(v >= last && v >= min && v <= max);
        last = v;
    }
}

static void test_spread_never_late(void **state) {
    (void)state;
    unsigned rng = 42;
    int64_t lo = INT64_MAX, hi = 0;
    for (int i = 0; i < 10000; i++) {
        int64_t v = d2g_sched_spread(&rng, 60000);
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    assert_true(lo >= 54000 && hi <= 60000); /* within 10% before, never after */
    assert_true(hi - lo > 5000);             /* and spread */
    assert_int_equal(d2g_sched_spread(&rng, 5), 5);
}

static void test_pick_earliest_first(void **state) {
    (void)state;
    d2g_sched_item_t items[] = {{50, 0}, {10, 1}, {99, 2}, {10, 3}, {5, 4}, {200, 5}, {30, 6}};
    size_t out[8];
    size_t n = d2g_sched_pick(items, 7, 100, 3, out);
    assert_int_equal(n, 3);
    assert_int_equal(out[0], 4);
    assert_int_equal(out[1], 1); /* tie on due: lower index first */
    assert_int_equal(out[2], 3);
    d2g_sched_item_t again[] = {{50, 0}, {10, 1}, {99, 2}, {10, 3}, {5, 4}, {200, 5}, {30, 6}};
    n = d2g_sched_pick(again, 7, 100, 10, out);
    assert_int_equal(n, 6); /* 200 is not due */
    size_t want[] = {4, 1, 3, 6, 0, 2};
    for (size_t i = 0; i < n; i++)
        assert_int_equal(out[i], want[i]);
    assert_int_equal(d2g_sched_pick(again, 7, 1, 10, out), 0);
}

/* Nobody starves: with a batch of 10 over 95 always-due items, every item is
 * picked within ceil(95/10) rounds when a picked item goes to the back. */
static void test_pick_rotates(void **state) {
    (void)state;
    enum { N = 95, B = 10 };
    int64_t due[N];
    int rounds_since[N];
    for (int i = 0; i < N; i++)
        due[i] = i, rounds_since[i] = 0;
    d2g_sched_item_t items[N];
    size_t out[B];
    for (int round = 1; round <= 100; round++) {
        for (int i = 0; i < N; i++)
            items[i] = (d2g_sched_item_t){due[i], (size_t)i};
        size_t n = d2g_sched_pick(items, N, 1000000, B, out);
        assert_int_equal(n, B);
        for (int i = 0; i < N; i++)
            rounds_since[i]++;
        for (size_t k = 0; k < n; k++) {
            due[out[k]] = 1000 + round; /* checked: due again later than the rest */
            rounds_since[out[k]] = 0;
        }
        for (int i = 0; i < N; i++)
            assert_true(rounds_since[i] <= (N + B - 1) / B);
    }
}

static void test_batch_size(void **state) {
    (void)state;
    int streak = 0, b = 50;
    b = d2g_sched_batch_after(b, 50, 1, &streak);
    assert_int_equal(b, 25);
    b = d2g_sched_batch_after(b, 50, 1, &streak);
    b = d2g_sched_batch_after(b, 50, 1, &streak);
    b = d2g_sched_batch_after(b, 50, 1, &streak);
    b = d2g_sched_batch_after(b, 50, 1, &streak);
    assert_int_equal(b, 1);
    assert_int_equal(d2g_sched_batch_after(1, 50, 1, &streak), 1); /* never 0 */
    b = d2g_sched_batch_after(b, 50, 0, &streak);
    b = d2g_sched_batch_after(b, 50, 0, &streak);
    assert_int_equal(b, 1);
    b = d2g_sched_batch_after(b, 50, 0, &streak); /* third good answer */
    assert_int_equal(b, 2);
    for (int i = 0; i < 30; i++)
        b = d2g_sched_batch_after(b, 50, 0, &streak);
    assert_int_equal(b, 50);
}

/* 10,000 procedures over 2 and 3 replicas: each share within 10% of even; when
 * one replica goes, only its procedures move. */
static void test_owner_even_and_stable(void **state) {
    (void)state;
    const char *ids3[] = {"host-a:1:0badcafe", "host-b:1:12345678", "host-c:7:deadbeef"};
    for (size_t n = 2; n <= 3; n++) {
        int count[3] = {0};
        for (int64_t p = 1001; p < 11001; p++)
            count[d2g_sched_owner(ids3, n, p)]++;
        for (size_t i = 0; i < n; i++) {
            double share = count[i] * (double)n / 10000.0;
            printf("# %zu replicas: replica %zu owns %d procedures (%.1f%% of even)\n", n, i, count[i],
                   share * 100);
            assert_true(share > 0.9 && share < 1.1);
        }
    }
    for (int64_t p = 1001; p < 11001; p++) {
        size_t with3 = d2g_sched_owner(ids3, 3, p), with2 = d2g_sched_owner(ids3, 2, p);
        if (with3 != 2)
            assert_int_equal(with2, with3); /* c's leaving moves only c's procedures */
    }
    assert_int_equal(d2g_sched_owner(ids3, 1, 42), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_interval_follows_activity),
        cmocka_unit_test(test_spread_never_late),
        cmocka_unit_test(test_pick_earliest_first),
        cmocka_unit_test(test_pick_rotates),
        cmocka_unit_test(test_batch_size),
        cmocka_unit_test(test_owner_even_and_stable),
    };
    return cmocka_run_group_tests_name("schedule", tests, NULL, NULL);
}
