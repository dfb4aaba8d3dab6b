/* stack.c - reading a running stack back, see stack.h. */
#include "stack.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ds2grist/clock.h"

int d2g_stack_setup_redis(void **state) {
    d2g_testenv_t *env = calloc(1, sizeof(*env));
    *state = env;
    if (!env)
        return -1;
    setenv("D2G_TEST_DS_TOKEN", D2G_STACK_DS_TOKEN, 1);
    setenv("D2G_TEST_GRIST_KEY", D2G_STACK_GRIST_KEY, 1);
    return d2g_testenv_init(env) || d2g_testenv_start_redis(env) ? -1 : 0;
}

int d2g_stack_setup_kafka(void **state) {
    if (d2g_stack_setup_redis(state))
        return -1;
    return d2g_testenv_start_kafka(*state, 8) ? -1 : 0;
}

int d2g_stack_teardown(void **state) {
    if (*state)
        d2g_testenv_stop(*state);
    free(*state);
    *state = NULL;
    return 0;
}

void d2g_stack_spawn(d2g_testenv_t *env, d2g_test_proc_t *p, const char *bin, const char *name,
                     const char *cfg) {
    char *argv[] = {(char *)bin, "--config", (char *)cfg, NULL};
    assert_int_equal(d2g_test_proc_spawn(env, p, name, argv), 0);
}

json_t *d2g_stack_ds_get(d2g_testenv_t *env, long long procedure, long long number) {
    char url[320];
    if (number)
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/admin/procedures/%lld/dossiers/%lld",
                 env->ds_port, procedure, number);
    else
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/admin/procedures/%lld/dossiers",
                 env->ds_port, procedure);
    json_t *j = d2g_test_json("GET", url, NULL);
    assert_non_null(j);
    return j;
}

json_t *d2g_stack_ds_do(d2g_testenv_t *env, const char *method, const char *path, const char *body) {
    char url[512];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", env->ds_port, path);
    json_t *j = d2g_test_json(method, url, body);
    assert_non_null(j);
    return j;
}

json_t *d2g_stack_grist_do(d2g_testenv_t *env, const char *method, const char *path, const char *body) {
    char url[512];
    snprintf(url, sizeof(url), "%s%s", env->grist_url, path);
    json_t *j = d2g_test_json(method, url, body);
    assert_non_null(j);
    return j;
}

json_t *d2g_stack_grist_rows(d2g_testenv_t *env, const char *doc, const char *table) {
    char url[320], *resp = NULL;
    snprintf(url, sizeof(url), "%s/admin/docs/%s/tables/%s/dump?format=json", env->grist_url, doc, table);
    int st = d2g_test_http("GET", url, NULL, NULL, &resp);
    json_t *j = st == 200 ? json_loads(resp, 0, NULL) : NULL;
    free(resp);
    if (json_is_object(j)) {
        json_t *r = json_object_get(j, "records");
        if (!r)
            r = json_object_get(j, "rows");
        json_incref(r);
        json_decref(j);
        j = r;
    }
    return j;
}

json_t *d2g_stack_field(json_t *row, const char *name) {
    json_t *f = json_object_get(row, "fields");
    return json_object_get(f ? f : row, name);
}

size_t d2g_stack_wait_synced(d2g_testenv_t *env, const char *doc, const char *table,
                             long long procedure, int timeout_s) {
    int64_t end = d2g_clock_mono_ms() + timeout_s * 1000LL;
    for (;;) {
        json_t *ds = d2g_stack_ds_get(env, procedure, 0);
        json_t *want = json_object_get(ds, "dossiers");
        json_t *rows = d2g_stack_grist_rows(env, doc, table);
        size_t have = json_array_size(rows);
        int same = have == json_array_size(want);
        json_t *count = json_object();
        size_t i;
        json_t *r;
        json_array_foreach(rows, i, r) {
            char k[32];
            snprintf(k, sizeof(k), "%lld", (long long)json_integer_value(d2g_stack_field(r, "numero")));
            json_object_set_new(count, k, json_integer(json_integer_value(json_object_get(count, k)) + 1));
        }
        for (i = 0; same && i < json_array_size(want); i++) {
            char k[32];
            snprintf(k, sizeof(k), "%lld", (long long)json_integer_value(json_object_get(json_array_get(want, i), "number")));
            same = json_integer_value(json_object_get(count, k)) == 1;
        }
        json_decref(count);
        json_decref(rows);
        json_decref(ds);
        if (same)
            return have;
        if (d2g_clock_mono_ms() > end)
            return (size_t)-1;
        d2g_test_sleep_ms(500);
    }
}

size_t d2g_stack_count(d2g_testenv_t *env, const char *doc, const char *table, const char *column,
                       long long value) {
    json_t *rows = d2g_stack_grist_rows(env, doc, table);
    size_t n = 0, i;
    json_t *r;
    json_array_foreach(rows, i, r) {
        /* An Int cell is 32 bits in Grist: a larger value is kept as text (AltText). */
        json_t *v = d2g_stack_field(r, column);
        char text[32];
        snprintf(text, sizeof(text), "%lld", value);
        n += json_is_number(v) ? json_number_value(v) == (double)value
                               : json_is_string(v) && !strcmp(json_string_value(v), text);
    }
    json_decref(rows);
    return n;
}
