/*
 * test_redis_budgets.c - the shared budgets against a real redis-server, with
 * several processes competing as replicas do: a rate limit never lets more
 * than N requests through in any window, a semaphore never has more than its
 * limit of holders, a crashed holder's permit comes back, a lease has one
 * owner at a time, a command whose answer was lost is never counted twice,
 * and a fenced lease refuses a run that lost it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ds2grist/clock.h"
#include "ds2grist/cursor.h"
#include "ds2grist/err.h"
#include "ds2grist/lease.h"
#include "ds2grist/permits.h"
#include "ds2grist/ratelimit.h"
#include "ds2grist/redis.h"
#include "stack.h"

static d2g_redis_t *connect_env(d2g_testenv_t *env) {
    char url[64], err[D2G_ERRLEN];
    d2g_redis_t *r;
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", env->redis_port);
    if (d2g_redis_connect(url, NULL, NULL, "t", 2000, &r, err, sizeof(err)))
        fail_msg("connect: %s", err);
    return r;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* 4 processes hammer a budget of 20 per second for 2.5 s. */
static void test_ratelimit_across_processes(void **state) {
    d2g_testenv_t *env = *state;
    enum { PROCS = 4, LIMIT = 20, WINDOW = 1000, RUN_MS = 2500 };
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    for (int p = 0; p < PROCS; p++) {
        if (fork() == 0) {
            d2g_redis_t *r = connect_env(env);
            char holder[64], err[D2G_ERRLEN];
            int64_t end = d2g_clock_mono_ms() + RUN_MS, wait;
            for (int i = 0; d2g_clock_mono_ms() < end; i++) {
                snprintf(holder, sizeof(holder), "p%d:%d", p, i);
                if (d2g_ratelimit_take(r, "t:{rl}:budget", LIMIT, WINDOW, holder, &wait, err, sizeof(err)))
                    _exit(2);
                if (wait == 0) {
                    int64_t now = d2g_clock_wall_ms();
                    if (write(fds[1], &now, sizeof(now)) != sizeof(now))
                        _exit(3);
                } else {
                    d2g_test_sleep_ms(wait < 5 ? wait : 5);
                }
            }
            d2g_redis_free(r);
            _exit(0);
        }
    }
    close(fds[1]);
    int64_t grants[1000];
    size_t n = 0;
    while (n < 1000 && read(fds[0], &grants[n], sizeof(int64_t)) == sizeof(int64_t))
        n++;
    close(fds[0]);
    for (int p = 0; p < PROCS; p++) {
        int status;
        wait(&status);
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    qsort(grants, n, sizeof(int64_t), cmp_i64);
    /* In any window slightly shorter than W (client clocks read just after the
     * grant), at most LIMIT grants. */
    size_t worst = 0;
    for (size_t i = 0, j = 0; i < n; i++) {
        while (grants[i] - grants[j] >= WINDOW - 10)
            j++;
        if (i - j + 1 > worst)
            worst = i - j + 1;
    }
    printf("# rate limit: %zu grants in %d ms, at most %zu in any %d ms window (limit %d)\n", n,
           RUN_MS, worst, WINDOW, LIMIT);
    assert_true(worst <= LIMIT);
    assert_true(n >= 2 * LIMIT); /* the budget is used, not just respected */
}

/* 8 processes share 3 permits; a Redis counter tracks how many hold one. */
static void test_permits_cap(void **state) {
    d2g_testenv_t *env = *state;
    enum { PROCS = 8, LIMIT = 3, ROUNDS = 15 };
    for (int p = 0; p < PROCS; p++) {
        if (fork() == 0) {
            d2g_redis_t *r = connect_env(env);
            char holder[64], err[D2G_ERRLEN];
            for (int i = 0; i < ROUNDS; i++) {
                int64_t wait;
                snprintf(holder, sizeof(holder), "w%d:%d", p, i);
                for (;;) {
                    if (d2g_permits_acquire(r, "t:{doc:a}:permits", LIMIT, 10000, holder, &wait, err,
                                            sizeof(err)))
                        _exit(2);
                    if (wait == 0)
                        break;
                    d2g_test_sleep_ms(wait < 3 ? wait : 3);
                }
                redisReply *rep = d2g_redis_cmd(r, err, sizeof(err),
                    "EVAL %s 2 t:inflight t:maxinflight",
                    "local n = redis.call('INCR', KEYS[1]) "
                    "if n > tonumber(redis.call('GET', KEYS[2]) or '0') then redis.call('SET', KEYS[2], n) end "
                    "return n");
                freeReplyObject(rep);
                d2g_test_sleep_ms(5);
                rep = d2g_redis_cmd(r, err, sizeof(err), "DECR t:inflight");
                freeReplyObject(rep);
                if (d2g_permits_release(r, "t:{doc:a}:permits", holder, err, sizeof(err)))
                    _exit(3);
            }
            d2g_redis_free(r);
            _exit(0);
        }
    }
    for (int p = 0; p < PROCS; p++) {
        int status;
        wait(&status);
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    d2g_redis_t *r = connect_env(env);
    char err[D2G_ERRLEN];
    redisReply *rep = d2g_redis_cmd(r, err, sizeof(err), "GET t:maxinflight");
    printf("# permits: highest number of holders %s (limit %d)\n", rep->str, LIMIT);
    assert_int_equal(atoi(rep->str), LIMIT); /* reached, never exceeded */
    freeReplyObject(rep);
    assert_int_equal(d2g_permits_in_use(r, "t:{doc:a}:permits", err, sizeof(err)), 0);
    d2g_redis_free(r);
}

static void test_permit_of_crashed_holder_expires(void **state) {
    d2g_redis_t *r = connect_env(*state);
    char err[D2G_ERRLEN];
    int64_t wait;
    assert_int_equal(d2g_permits_acquire(r, "t:{doc:b}:permits", 1, 200, "crashed", &wait, err, sizeof(err)), 0);
    assert_int_equal(wait, 0);
    assert_int_equal(d2g_permits_acquire(r, "t:{doc:b}:permits", 1, 200, "other", &wait, err, sizeof(err)), 0);
    assert_true(wait > 0 && wait <= 200);
    d2g_test_sleep_ms(wait + 5);
    assert_int_equal(d2g_permits_acquire(r, "t:{doc:b}:permits", 1, 200, "other", &wait, err, sizeof(err)), 0);
    assert_int_equal(wait, 0);
    d2g_redis_free(r);
}

static void test_lease(void **state) {
    d2g_redis_t *r = connect_env(*state);
    char err[D2G_ERRLEN];
    int got;
    assert_int_equal(d2g_lease_acquire(r, "t:{proc:1}:lease", "A", 300, &got, err, sizeof(err)), 0);
    assert_true(got);
    assert_int_equal(d2g_lease_acquire(r, "t:{proc:1}:lease", "B", 300, &got, err, sizeof(err)), 0);
    assert_false(got);
    assert_int_equal(d2g_lease_acquire(r, "t:{proc:1}:lease", "A", 300, &got, err, sizeof(err)), 0);
    assert_true(got); /* renewal */
    assert_int_equal(d2g_lease_release(r, "t:{proc:1}:lease", "B", err, sizeof(err)), 0);
    assert_int_equal(d2g_lease_acquire(r, "t:{proc:1}:lease", "B", 300, &got, err, sizeof(err)), 0);
    assert_false(got); /* B cannot release A's lease */
    d2g_test_sleep_ms(350);     /* A "dies": its lease expires */
    assert_int_equal(d2g_lease_acquire(r, "t:{proc:1}:lease", "B", 300, &got, err, sizeof(err)), 0);
    assert_true(got);
    d2g_redis_free(r);
}

static void test_script_reloaded_after_flush(void **state) {
    d2g_redis_t *r = connect_env(*state);
    char err[D2G_ERRLEN];
    int got;
    assert_int_equal(d2g_lease_acquire(r, "t:{proc:2}:lease", "A", 1000, &got, err, sizeof(err)), 0);
    redisReply *rep = d2g_redis_cmd(r, err, sizeof(err), "SCRIPT FLUSH");
    freeReplyObject(rep);
    assert_int_equal(d2g_lease_acquire(r, "t:{proc:2}:lease", "A", 1000, &got, err, sizeof(err)), 0);
    assert_true(got);
    d2g_redis_free(r);
}

/* A per-second rate as the pair every process sharing a key uses. */
static void test_rate_per_second(void **state) {
    (void)state;
    int limit;
    int64_t window;
    d2g_ratelimit_per_second(10, &limit, &window);
    assert_int_equal(limit, 10);
    assert_int_equal(window, 1000);
    d2g_ratelimit_per_second(2.5, &limit, &window);
    assert_int_equal(limit, 2);
    assert_int_equal(window, 800);
    d2g_ratelimit_per_second(0.5, &limit, &window);
    assert_int_equal(limit, 1);
    assert_int_equal(window, 2000);
}

/* The server is busy (a long script) when HINCRBY is sent: the client times
 * out with the command in Redis's socket. It must not be sent again, or it
 * runs twice once the server is back; the caller hears "unknown". */
static void test_no_resend_after_timeout(void **state) {
    d2g_testenv_t *env = *state;
    char url[64], err[D2G_ERRLEN];
    d2g_redis_t *r;
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", env->redis_port);
    assert_int_equal(d2g_redis_connect(url, NULL, NULL, "t", 300, &r, err, sizeof(err)), 0);
    const char *ping[] = {"PING"};
    redisReply *rep = d2g_redis_argv(r, 1, ping, NULL, err, sizeof(err));
    assert_non_null(rep);
    freeReplyObject(rep);
    pid_t busy = fork();
    if (busy == 0) { /* blocks the server for about 1.5 s */
        d2g_redis_t *b = connect_env(env);
        const char *lua[] = {"EVAL",
                             "local t = redis.call('TIME') local s = tonumber(t[1]) * 1000000 + "
                             "tonumber(t[2]) while true do t = redis.call('TIME') if "
                             "tonumber(t[1]) * 1000000 + tonumber(t[2]) - s > 1500000 then "
                             "return 1 end end",
                             "0"};
        redisReply *x = d2g_redis_argv(b, 3, lua, NULL, err, sizeof(err));
        _exit(x ? 0 : 1);
    }
    d2g_test_sleep_ms(200);
    const char *incr[] = {"HINCRBY", "t:counter", "n", "1"};
    rep = d2g_redis_argv(r, 4, incr, NULL, err, sizeof(err));
    assert_null(rep);
    assert_int_equal(d2g_redis_outcome_unknown(r), 1);
    assert_non_null(strstr(err, "unknown"));
    int status;
    waitpid(busy, &status, 0);
    d2g_test_sleep_ms(300);
    const char *get[] = {"HGET", "t:counter", "n"};
    rep = d2g_redis_argv(r, 3, get, NULL, err, sizeof(err)); /* a read: reconnects and goes */
    assert_non_null(rep);
    assert_int_equal(d2g_redis_outcome_unknown(r), 0);
    printf("# no resend: HINCRBY sent once into a busy server, counted %s time(s)\n",
           rep->type == REDIS_REPLY_STRING ? rep->str : "0");
    assert_int_equal(rep->type, REDIS_REPLY_STRING);
    assert_string_equal(rep->str, "1");
    freeReplyObject(rep);
    d2g_redis_free(r);
}

/* 8 processes share 3 permits of one document while Redis restarts empty in
 * the middle: requests granted before the restart are still running when the
 * set is lost; the highest number in flight (counted in shared memory, not in
 * Redis) never exceeds the limit, and permits are granted again afterwards. */
static void test_permits_cap_across_redis_restart(void **state) {
    d2g_testenv_t *env = *state;
    enum { PROCS = 8, LIMIT = 3, RUN_MS = 5000, REQUEST_MS = 300, LEASE_MS = 1500 };
    struct shared {
        atomic_int in_flight, highest, restarted, grants_after, grants_before;
    } *sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(sh != MAP_FAILED);
    memset(sh, 0, sizeof(*sh));
    pid_t kids[PROCS];
    for (int p = 0; p < PROCS; p++) {
        if ((kids[p] = fork()) == 0) {
            d2g_redis_t *r = connect_env(env);
            char holder[64], err[D2G_ERRLEN];
            int64_t end = d2g_clock_mono_ms() + RUN_MS;
            for (int i = 0; d2g_clock_mono_ms() < end; i++) {
                int64_t wait = 0;
                snprintf(holder, sizeof(holder), "w%d:%d", p, i);
                if (d2g_permits_take(r, "t:{doc:a}:permits", LIMIT, LEASE_MS, holder, 0, &wait, err,
                                     sizeof(err)) || wait > 0) {
                    d2g_test_sleep_ms(wait > 0 && wait < 20 ? wait : 20);
                    continue;
                }
                int now_in = atomic_fetch_add(&sh->in_flight, 1) + 1;
                for (int h = atomic_load(&sh->highest); now_in > h;)
                    if (atomic_compare_exchange_weak(&sh->highest, &h, now_in))
                        break;
                atomic_fetch_add(atomic_load(&sh->restarted) ? &sh->grants_after : &sh->grants_before, 1);
                d2g_test_sleep_ms(REQUEST_MS); /* the request runs, Redis or not */
                atomic_fetch_sub(&sh->in_flight, 1);
                d2g_permits_release(r, "t:{doc:a}:permits", holder, err, sizeof(err));
            }
            d2g_redis_free(r);
            _exit(0);
        }
    }
    d2g_test_sleep_ms(1500);
    assert_int_equal(d2g_testenv_redis_restart_empty(env), 0);
    atomic_store(&sh->restarted, 1);
    for (int p = 0; p < PROCS; p++) {
        int status;
        waitpid(kids[p], &status, 0);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    printf("# permits across a Redis restart: highest in flight %d (limit %d), %d grants before, "
           "%d after the restart\n", atomic_load(&sh->highest), LIMIT, atomic_load(&sh->grants_before),
           atomic_load(&sh->grants_after));
    assert_true(atomic_load(&sh->highest) <= LIMIT);
    assert_true(atomic_load(&sh->grants_after) > 0);
    munmap(sh, sizeof(*sh));
}

/* A fenced lease: a run that lost its lease gets neither the lease nor a cursor write back. */
static void test_fenced_lease(void **state) {
    d2g_testenv_t *env = *state;
    d2g_redis_t *r = connect_env(env);
    char err[D2G_ERRLEN];
    d2g_lease_state_t st;
    const char *lk = "t:{proc:9}:lease", *fk = "t:{proc:9}:fence";
    assert_int_equal(d2g_lease_take(r, lk, fk, "A#1", 200, 0, &st, err, sizeof(err)), 0);
    assert_int_equal(st, D2G_LEASE_NEW);
    assert_int_equal(d2g_lease_take(r, lk, fk, "A#1", 200, 1, &st, err, sizeof(err)), 0);
    assert_int_equal(st, D2G_LEASE_KEPT);
    assert_int_equal(d2g_lease_take(r, lk, fk, "B#1", 200, 0, &st, err, sizeof(err)), 0);
    assert_int_equal(st, D2G_LEASE_OTHER);
    d2g_test_sleep_ms(300); /* A paused past its lease; B takes it, then ends */
    assert_int_equal(d2g_lease_take(r, lk, fk, "B#1", 200, 0, &st, err, sizeof(err)), 0);
    assert_int_equal(st, D2G_LEASE_NEW);
    assert_int_equal(d2g_lease_release(r, lk, "B#1", err, sizeof(err)), 0);
    /* A wakes up: the lease is free, but it moved on: no renewal, no write. */
    assert_int_equal(d2g_lease_take(r, lk, fk, "A#1", 200, 1, &st, err, sizeof(err)), 0);
    assert_int_equal(st, D2G_LEASE_OTHER);
    const char *pairs[] = {"after", "old", NULL};
    int written = 1;
    assert_int_equal(d2g_cursor_set_fenced(r, 9, "A#1", 200, pairs, &written, err, sizeof(err)), 0);
    assert_int_equal(written, 0);
    /* The run holding the fence writes, and takes the lease back if it had lapsed. */
    assert_int_equal(d2g_cursor_set_fenced(r, 9, "B#1", 200, pairs, &written, err, sizeof(err)), 0);
    assert_int_equal(written, 1);
    redisReply *rep = d2g_redis_cmd(r, err, sizeof(err), "GET %s", lk);
    assert_non_null(rep);
    assert_string_equal(rep->str, "B#1");
    freeReplyObject(rep);
    d2g_redis_free(r);
}

int main(void) {
    d2g_test_filter_from_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ratelimit_across_processes, d2g_stack_setup_redis, d2g_stack_teardown),
        cmocka_unit_test_setup_teardown(test_permits_cap, d2g_stack_setup_redis, d2g_stack_teardown),
        cmocka_unit_test_setup_teardown(test_permit_of_crashed_holder_expires, d2g_stack_setup_redis, d2g_stack_teardown),
        cmocka_unit_test_setup_teardown(test_lease, d2g_stack_setup_redis, d2g_stack_teardown),
        cmocka_unit_test_setup_teardown(test_script_reloaded_after_flush, d2g_stack_setup_redis, d2g_stack_teardown),
        cmocka_unit_test(test_rate_per_second),
        cmocka_unit_test_setup_teardown(test_no_resend_after_timeout, d2g_stack_setup_redis, d2g_stack_teardown),
        cmocka_unit_test_setup_teardown(test_fenced_lease, d2g_stack_setup_redis, d2g_stack_teardown),
        cmocka_unit_test_setup_teardown(test_permits_cap_across_redis_restart, d2g_stack_setup_redis, d2g_stack_teardown),
    };
    return cmocka_run_group_tests_name("redis_budgets", tests, NULL, NULL);
}
