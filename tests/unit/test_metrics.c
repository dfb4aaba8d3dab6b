/* test_metrics.c - the Prometheus registry: exact exposition text, naming rules, threads, cap. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ds2grist/metrics.h"

static void assert_render(d2g_metrics_t *m, const char *expected) {
    char *text = d2g_metrics_render(m);
    assert_non_null(text);
    if (strcmp(text, expected) != 0)
        fprintf(stderr, "--- expected\n%s--- got\n%s---\n", expected, text);
    assert_string_equal(text, expected);
    free(text);
}

static void test_counter_with_labels(void **state) {
    (void)state;
    d2g_metrics_t *m = d2g_metrics_new();
    assert_non_null(m);
    const char *labels[] = {"procedure", "status"};
    d2g_metric_t *c = d2g_metrics_counter(m, "ds2grist_dossiers_total",
                                          "Dossiers written to Grist.", 2, labels);
    assert_non_null(c);
    /* A labelled family with no series yet is not exported. */
    assert_render(m, "");

    d2g_metric_inc(c, (const char *[]){"42", "ok"}, 1);
    d2g_metric_inc(c, (const char *[]){"7", "error"}, 1);
    d2g_metric_inc(c, (const char *[]){"42", "ok"}, 2);
    d2g_metric_inc(c, (const char *[]){"42", "error"}, 0.5);
    /* Ignored: negative or NaN increments, set/observe on a counter, missing values. */
    d2g_metric_inc(c, (const char *[]){"42", "ok"}, -1);
    d2g_metric_inc(c, (const char *[]){"42", "ok"}, NAN);
    d2g_metric_set(c, (const char *[]){"42", "ok"}, 100);
    d2g_metric_observe(c, (const char *[]){"42", "ok"}, 100);
    d2g_metric_inc(c, NULL, 1);
    d2g_metric_inc(c, (const char *[]){"42", NULL}, 1);
    d2g_metric_inc(NULL, NULL, 1);

    assert_render(m, "# HELP ds2grist_dossiers_total Dossiers written to Grist.\n"
                     "# TYPE ds2grist_dossiers_total counter\n"
                     "ds2grist_dossiers_total{procedure=\"42\",status=\"error\"} 0.5\n"
                     "ds2grist_dossiers_total{procedure=\"42\",status=\"ok\"} 3\n"
                     "ds2grist_dossiers_total{procedure=\"7\",status=\"error\"} 1\n");
    d2g_metrics_free(m);
}

static void test_gauge(void **state) {
    (void)state;
    d2g_metrics_t *m = d2g_metrics_new();
    d2g_metric_t *g = d2g_metrics_gauge(m, "ds2grist_consumer_lag", "Messages behind.", 0, NULL);
    assert_non_null(g);
    /* Without labels, the series exists from registration. */
    assert_render(m, "# HELP ds2grist_consumer_lag Messages behind.\n"
                     "# TYPE ds2grist_consumer_lag gauge\n"
                     "ds2grist_consumer_lag 0\n");
    d2g_metric_set(g, NULL, 12);
    d2g_metric_inc(g, NULL, -2.5);
    d2g_metric_observe(g, NULL, 1000); /* ignored */
    assert_render(m, "# HELP ds2grist_consumer_lag Messages behind.\n"
                     "# TYPE ds2grist_consumer_lag gauge\n"
                     "ds2grist_consumer_lag 9.5\n");
    d2g_metric_set(g, NULL, 1234567890123.0);
    assert_render(m, "# HELP ds2grist_consumer_lag Messages behind.\n"
                     "# TYPE ds2grist_consumer_lag gauge\n"
                     "ds2grist_consumer_lag 1234567890123\n");
    d2g_metric_set(g, NULL, -3);
    assert_render(m, "# HELP ds2grist_consumer_lag Messages behind.\n"
                     "# TYPE ds2grist_consumer_lag gauge\n"
                     "ds2grist_consumer_lag -3\n");
    d2g_metrics_free(m);
}

static void test_histogram(void **state) {
    (void)state;
    d2g_metrics_t *m = d2g_metrics_new();
    const double buckets[] = {0.1, 0.5, 1};
    const char *labels[] = {"server"};
    d2g_metric_t *h = d2g_metrics_histogram(m, "ds2grist_grist_request_duration_seconds",
                                            "Grist request latency.", 1, labels, 3, buckets);
    assert_non_null(h);
    const char *main_server[] = {"main"};
    d2g_metric_observe(h, main_server, 0.0625);
    d2g_metric_observe(h, main_server, 0.25);
    d2g_metric_observe(h, main_server, 0.5); /* on a bound: counted in that bucket */
    d2g_metric_observe(h, main_server, 2);
    d2g_metric_observe(h, main_server, NAN); /* ignored */
    d2g_metric_inc(h, main_server, 1);       /* ignored */
    d2g_metric_observe(h, (const char *[]){"backup"}, 0.75);
    assert_render(m,
                  "# HELP ds2grist_grist_request_duration_seconds Grist request latency.\n"
                  "# TYPE ds2grist_grist_request_duration_seconds histogram\n"
                  "ds2grist_grist_request_duration_seconds_bucket{server=\"backup\",le=\"0.1\"} 0\n"
                  "ds2grist_grist_request_duration_seconds_bucket{server=\"backup\",le=\"0.5\"} 0\n"
                  "ds2grist_grist_request_duration_seconds_bucket{server=\"backup\",le=\"1\"} 1\n"
                  "ds2grist_grist_request_duration_seconds_bucket{server=\"backup\",le=\"+Inf\"} 1\n"
                  "ds2grist_grist_request_duration_seconds_sum{server=\"backup\"} 0.75\n"
                  "ds2grist_grist_request_duration_seconds_count{server=\"backup\"} 1\n"
                  "ds2grist_grist_request_duration_seconds_bucket{server=\"main\",le=\"0.1\"} 1\n"
                  "ds2grist_grist_request_duration_seconds_bucket{server=\"main\",le=\"0.5\"} 3\n"
                  "ds2grist_grist_request_duration_seconds_bucket{server=\"main\",le=\"1\"} 3\n"
                  "ds2grist_grist_request_duration_seconds_bucket{server=\"main\",le=\"+Inf\"} 4\n"
                  "ds2grist_grist_request_duration_seconds_sum{server=\"main\"} 2.8125\n"
                  "ds2grist_grist_request_duration_seconds_count{server=\"main\"} 4\n");
    d2g_metrics_free(m);
}

/* Several families: sorted by name, whatever the registration order. */
static void test_registry_order(void **state) {
    (void)state;
    d2g_metrics_t *m = d2g_metrics_new();
    const double buckets[] = {1024, 1048576};
    d2g_metric_t *h = d2g_metrics_histogram(m, "ds2grist_batch_size_bytes", "Batch sizes.", 0,
                                            NULL, 2, buckets);
    d2g_metric_t *g = d2g_metrics_gauge(m, "ds2grist_up", "1 while running.", 0, NULL);
    d2g_metric_t *c = d2g_metrics_counter(m, "ds2grist_messages_total", "Messages.", 0, NULL);
    assert_non_null(h);
    assert_non_null(g);
    assert_non_null(c);
    d2g_metric_observe(h, NULL, 2048);
    d2g_metric_set(g, NULL, 1);
    d2g_metric_inc(c, NULL, 5);
    assert_render(m, "# HELP ds2grist_batch_size_bytes Batch sizes.\n"
                     "# TYPE ds2grist_batch_size_bytes histogram\n"
                     "ds2grist_batch_size_bytes_bucket{le=\"1024\"} 0\n"
                     "ds2grist_batch_size_bytes_bucket{le=\"1048576\"} 1\n"
                     "ds2grist_batch_size_bytes_bucket{le=\"+Inf\"} 1\n"
                     "ds2grist_batch_size_bytes_sum 2048\n"
                     "ds2grist_batch_size_bytes_count 1\n"
                     "# HELP ds2grist_messages_total Messages.\n"
                     "# TYPE ds2grist_messages_total counter\n"
                     "ds2grist_messages_total 5\n"
                     "# HELP ds2grist_up 1 while running.\n"
                     "# TYPE ds2grist_up gauge\n"
                     "ds2grist_up 1\n");
    d2g_metrics_free(m);
}

static void test_escaping(void **state) {
    (void)state;
    d2g_metrics_t *m = d2g_metrics_new();
    const char *labels[] = {"document"};
    d2g_metric_t *c = d2g_metrics_counter(m, "ds2grist_writes_total",
                                          "Help with \\ and \"quotes\"\nsecond line.", 1, labels);
    assert_non_null(c);
    d2g_metric_inc(c, (const char *[]){"a\\b\"c\nd"}, 1);
    d2g_metric_inc(c, (const char *[]){"École"}, 2); /* UTF-8 passes through */
    d2g_metric_inc(c, (const char *[]){""}, 3);      /* the empty value is a value */
    assert_render(m, "# HELP ds2grist_writes_total Help with \\\\ and \"quotes\"\\nsecond line.\n"
                     "# TYPE ds2grist_writes_total counter\n"
                     "ds2grist_writes_total{document=\"\"} 3\n"
                     "ds2grist_writes_total{document=\"a\\\\b\\\"c\\nd\"} 1\n"
                     "ds2grist_writes_total{document=\"École\"} 2\n");
    d2g_metrics_free(m);
}

static void test_format_value(void **state) {
    (void)state;
    static const struct {
        double v;
        const char *text;
    } cases[] = {
        {0, "0"},
        {-0.0, "0"},
        {42, "42"},
        {-3, "-3"},
        {1e6, "1000000"},
        {1e15, "1000000000000000"},
        {9007199254740993.0, "9007199254740992"},
        {0.5, "0.5"},
        {0.005, "0.005"},
        {0.1, "0.1"},
        {1.5e-9, "1.5e-09"},
        {1.0 / 3, "0.3333333333333333"},
        {2.0 / 3, "0.6666666666666666"},
        {0.1 + 0.2, "0.30000000000000004"},
        {1e20, "1e+20"},
        {-1e20, "-1e+20"},
        {NAN, "NaN"},
        {INFINITY, "+Inf"},
        {-INFINITY, "-Inf"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char buf[D2G_METRICS_NUMLEN];
        d2g_metrics_format_value(cases[i].v, buf);
        assert_string_equal(buf, cases[i].text);
    }
}

static void test_naming_rules(void **state) {
    (void)state;
    d2g_metrics_t *m = d2g_metrics_new();
    const char *one[] = {"procedure"};
    const double b[] = {0.1, 1};

    /* Metric names. */
    static const char *const bad_counters[] = {
        "dossiers_total",              /* no prefix */
        "ds2grist_total_",             /* trailing underscore */
        "ds2grist_",                   /* prefix only */
        "ds2grist_dossiers",           /* counter without _total */
        "ds2grist_Dossiers_total",     /* uppercase */
        "ds2grist_dossiers__total",    /* double underscore */
        "ds2grist_dossiers-ok_total",  /* bad character */
        "ds2grist_dossiers:ok_total",  /* colons are for recording rules */
        "ds2grist_sent_kilobytes_total", /* scaled unit */
        "ds2grist_wait_ms_total",
        "ds2grist_wait_milliseconds_total",
        "ds2grist_uptime_minutes_total",
        "",
        NULL,
    };
    for (size_t i = 0; i < sizeof(bad_counters) / sizeof(bad_counters[0]); i++)
        assert_null(d2g_metrics_counter(m, bad_counters[i], "x", 0, NULL));
    assert_null(d2g_metrics_gauge(m, "ds2grist_dossiers_total", "x", 0, NULL));
    assert_null(d2g_metrics_gauge(m, "ds2grist_request_duration_ms", "x", 0, NULL));
    assert_null(d2g_metrics_gauge(m, "ds2grist_payload_mb", "x", 0, NULL));
    assert_null(d2g_metrics_gauge(m, "ds2grist_disk_used_percent", "x", 0, NULL));
    assert_null(d2g_metrics_histogram(m, "ds2grist_latency_count", "x", 0, NULL, 2, b));
    assert_null(d2g_metrics_histogram(m, "ds2grist_latency_bucket", "x", 0, NULL, 2, b));
    assert_null(d2g_metrics_histogram(m, "ds2grist_latency_sum", "x", 0, NULL, 2, b));
    assert_null(d2g_metrics_histogram(m, "ds2grist_latency_total", "x", 0, NULL, 2, b));
    assert_null(d2g_metrics_histogram(m, "ds2grist_latency_milliseconds", "x", 0, NULL, 2, b));
    assert_null(d2g_metrics_counter(m, "ds2grist_ok_total", NULL, 0, NULL)); /* no help */

    /* Label names. */
    static const char *const bad_labels[] = {"1abc", "a-b", "__reserved", "", "é", NULL};
    for (size_t i = 0; i < sizeof(bad_labels) / sizeof(bad_labels[0]); i++)
        assert_null(d2g_metrics_counter(m, "ds2grist_ok_total", "x", 1, &bad_labels[i]));
    assert_null(d2g_metrics_counter(m, "ds2grist_ok_total", "x", 2,
                                    (const char *[]){"procedure", "procedure"}));
    assert_null(d2g_metrics_counter(m, "ds2grist_ok_total", "x", 1, NULL));
    assert_null(d2g_metrics_counter(m, "ds2grist_ok_total", "x", -1, NULL));
    const char *nine[] = {"a", "b", "c", "d", "e", "f", "g", "h", "i"};
    assert_null(d2g_metrics_counter(m, "ds2grist_ok_total", "x", 9, nine));
    assert_null(d2g_metrics_histogram(m, "ds2grist_latency_seconds", "x", 1,
                                      (const char *[]){"le"}, 2, b));

    /* Buckets. */
    assert_null(d2g_metrics_histogram(m, "ds2grist_latency_seconds", "x", 0, NULL, 0, b));
    assert_null(d2g_metrics_histogram(m, "ds2grist_latency_seconds", "x", 0, NULL, 2, NULL));
    assert_null(d2g_metrics_histogram(m, "ds2grist_latency_seconds", "x", 0, NULL, 2,
                                      (const double[]){1, 1}));
    assert_null(d2g_metrics_histogram(m, "ds2grist_latency_seconds", "x", 0, NULL, 2,
                                      (const double[]){2, 1}));
    assert_null(d2g_metrics_histogram(m, "ds2grist_latency_seconds", "x", 0, NULL, 2,
                                      (const double[]){1, INFINITY}));
    assert_null(d2g_metrics_histogram(m, "ds2grist_latency_seconds", "x", 0, NULL, 1,
                                      (const double[]){NAN}));

    /* Nothing above was registered: the registry renders empty. */
    assert_render(m, "");

    /* Good names, and a name registered once only. */
    assert_non_null(d2g_metrics_counter(m, "ds2grist_ok_total", "x", 1, one));
    assert_null(d2g_metrics_counter(m, "ds2grist_ok_total", "x", 1, one));
    assert_null(d2g_metrics_gauge(m, "ds2grist_metrics_series_refused_total", "x", 0, NULL));
    assert_non_null(d2g_metrics_counter(m, "ds2grist_sent_bytes_total", "x", 2,
                                        (const char *[]){"HTTP_code2", "_token"}));
    assert_non_null(d2g_metrics_gauge(m, "ds2grist_build_info", "x", 0, NULL));
    assert_non_null(d2g_metrics_histogram(m, "ds2grist_latency_seconds", "x", 1, one, 2, b));
    assert_non_null(d2g_metrics_gauge(m, "ds2grist_cache_hit_ratio", "x", 0, NULL));
    d2g_metrics_free(m);
}

/* --- threads -------------------------------------------------------------- */

#define N_THREADS 4
#define N_INCS 50000

typedef struct {
    d2g_metric_t *shared, *per_thread, *hist;
    int id;
} worker_arg_t;

static void *worker(void *p) {
    worker_arg_t *a = p;
    char id[8];
    snprintf(id, sizeof(id), "t%d", a->id);
    const char *values[] = {id};
    for (int i = 0; i < N_INCS; i++) {
        d2g_metric_inc(a->shared, NULL, 1);
        d2g_metric_inc(a->per_thread, values, 1);
        d2g_metric_observe(a->hist, NULL, (double)(i % 4));
    }
    return NULL;
}

static _Atomic int renders_stop, renders_failed, renders_done;

/* Renders while the workers update (cmocka's asserts stay on the main thread). */
static void *renderer(void *p) {
    d2g_metrics_t *m = p;
    while (!renders_stop) {
        char *text = d2g_metrics_render(m);
        if (!text)
            renders_failed++;
        free(text);
        renders_done++;
    }
    return NULL;
}

static void test_threads(void **state) {
    (void)state;
    d2g_metrics_t *m = d2g_metrics_new();
    const double b[] = {0.5, 1.5, 2.5};
    worker_arg_t args[N_THREADS];
    pthread_t th[N_THREADS], r;
    d2g_metric_t *shared = d2g_metrics_counter(m, "ds2grist_events_total", "Events.", 0, NULL);
    d2g_metric_t *per = d2g_metrics_counter(m, "ds2grist_thread_events_total", "Per thread.", 1,
                                            (const char *[]){"thread"});
    d2g_metric_t *hist = d2g_metrics_histogram(m, "ds2grist_values", "Values.", 0, NULL, 3, b);
    assert_non_null(shared);
    assert_non_null(per);
    assert_non_null(hist);

    renders_stop = 0;
    assert_int_equal(pthread_create(&r, NULL, renderer, m), 0);
    for (int i = 0; i < N_THREADS; i++) {
        args[i] = (worker_arg_t){shared, per, hist, i};
        assert_int_equal(pthread_create(&th[i], NULL, worker, &args[i]), 0);
    }
    for (int i = 0; i < N_THREADS; i++)
        pthread_join(th[i], NULL);
    renders_stop = 1;
    pthread_join(r, NULL);
    assert_int_equal(renders_failed, 0);
    assert_true(renders_done > 0);

    /* Each thread observed 0,1,2,3 N_INCS/4 times each: sum 6 * N_INCS/4. */
    char expected[4096];
    snprintf(expected, sizeof(expected),
             "# HELP ds2grist_events_total Events.\n"
             "# TYPE ds2grist_events_total counter\n"
             "ds2grist_events_total %d\n"
             "# HELP ds2grist_thread_events_total Per thread.\n"
             "# TYPE ds2grist_thread_events_total counter\n"
             "ds2grist_thread_events_total{thread=\"t0\"} %d\n"
             "ds2grist_thread_events_total{thread=\"t1\"} %d\n"
             "ds2grist_thread_events_total{thread=\"t2\"} %d\n"
             "ds2grist_thread_events_total{thread=\"t3\"} %d\n"
             "# HELP ds2grist_values Values.\n"
             "# TYPE ds2grist_values histogram\n"
             "ds2grist_values_bucket{le=\"0.5\"} %d\n"
             "ds2grist_values_bucket{le=\"1.5\"} %d\n"
             "ds2grist_values_bucket{le=\"2.5\"} %d\n"
             "ds2grist_values_bucket{le=\"+Inf\"} %d\n"
             "ds2grist_values_sum %d\n"
             "ds2grist_values_count %d\n",
             N_THREADS * N_INCS, N_INCS, N_INCS, N_INCS, N_INCS, N_THREADS * N_INCS / 4,
             N_THREADS * N_INCS / 2, N_THREADS * N_INCS * 3 / 4, N_THREADS * N_INCS,
             N_THREADS * N_INCS / 4 * 6, N_THREADS * N_INCS);
    assert_render(m, expected);
    d2g_metrics_free(m);
}

/* --- series cap ----------------------------------------------------------- */

static void test_series_cap(void **state) {
    (void)state;
    d2g_metrics_t *m = d2g_metrics_new();
    d2g_metrics_set_series_cap(m, 3);
    d2g_metric_t *c = d2g_metrics_counter(m, "ds2grist_doc_writes_total", "Writes.", 1,
                                          (const char *[]){"document"});
    d2g_metric_t *g = d2g_metrics_gauge(m, "ds2grist_doc_rows", "Rows.", 1,
                                        (const char *[]){"document"});
    assert_non_null(c);
    assert_non_null(g);
    const char *docs[] = {"d1", "d2", "d3", "d4", "d5"};
    for (int i = 0; i < 5; i++)
        d2g_metric_inc(c, &docs[i], 1);
    d2g_metric_inc(c, &docs[4], 1); /* still refused */
    d2g_metric_inc(c, &docs[0], 1); /* existing series keep updating */
    d2g_metric_set(g, &docs[4], 7); /* the cap is per family */
    assert_int_equal(d2g_metric_refused(c), 3);
    assert_int_equal(d2g_metric_refused(g), 0);
    assert_render(m, "# HELP ds2grist_doc_rows Rows.\n"
                     "# TYPE ds2grist_doc_rows gauge\n"
                     "ds2grist_doc_rows{document=\"d5\"} 7\n"
                     "# HELP ds2grist_doc_writes_total Writes.\n"
                     "# TYPE ds2grist_doc_writes_total counter\n"
                     "ds2grist_doc_writes_total{document=\"d1\"} 2\n"
                     "ds2grist_doc_writes_total{document=\"d2\"} 1\n"
                     "ds2grist_doc_writes_total{document=\"d3\"} 1\n"
                     "# HELP ds2grist_metrics_series_refused_total Updates dropped because the "
                     "metric had reached its cap of series (label value combinations).\n"
                     "# TYPE ds2grist_metrics_series_refused_total counter\n"
                     "ds2grist_metrics_series_refused_total{metric=\"ds2grist_doc_writes_total\"} 3\n");
    d2g_metrics_free(m);
}

/* The default cap, with enough series to grow the hash table many times. */
static void test_default_cap(void **state) {
    (void)state;
    d2g_metrics_t *m = d2g_metrics_new();
    d2g_metric_t *c = d2g_metrics_counter(m, "ds2grist_dossier_writes_total", "Writes.", 2,
                                          (const char *[]){"procedure", "dossier"});
    char proc[16], dossier[16];
    const char *values[] = {proc, dossier};
    for (int i = 0; i < D2G_METRICS_DEFAULT_SERIES_CAP + 500; i++) {
        snprintf(proc, sizeof(proc), "%d", i % 7);
        snprintf(dossier, sizeof(dossier), "%d", i);
        d2g_metric_inc(c, values, 1);
    }
    for (int i = 0; i < D2G_METRICS_DEFAULT_SERIES_CAP; i += 997) { /* found again, not new */
        snprintf(proc, sizeof(proc), "%d", i % 7);
        snprintf(dossier, sizeof(dossier), "%d", i);
        d2g_metric_inc(c, values, 1);
    }
    assert_int_equal(d2g_metric_refused(c), 500);
    char *text = d2g_metrics_render(m);
    assert_non_null(text);
    size_t lines = 0;
    for (const char *p = text; *p; p++)
        lines += *p == '\n';
    /* 2 + cap series lines, then the refusal family (3 lines). */
    assert_int_equal(lines, 2 + D2G_METRICS_DEFAULT_SERIES_CAP + 3);
    assert_non_null(strstr(text, "ds2grist_dossier_writes_total{procedure=\"0\",dossier=\"0\"} 2\n"));
    assert_non_null(strstr(text, "ds2grist_dossier_writes_total{procedure=\"3\",dossier=\"9999\"} 1\n"));
    assert_null(strstr(text, "dossier=\"10000\""));
    /* Sorted: procedure "0" before "1", and within it dossier "0" < "1001" < "14". */
    const char *a = strstr(text, "{procedure=\"0\",dossier=\"0\"}");
    const char *b = strstr(text, "{procedure=\"0\",dossier=\"1001\"}");
    const char *d = strstr(text, "{procedure=\"0\",dossier=\"14\"}");
    const char *e = strstr(text, "{procedure=\"1\",dossier=\"1\"}");
    assert_true(a && b && d && e && a < b && b < d && d < e);
    free(text);
    d2g_metrics_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counter_with_labels),
        cmocka_unit_test(test_gauge),
        cmocka_unit_test(test_histogram),
        cmocka_unit_test(test_registry_order),
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_format_value),
        cmocka_unit_test(test_naming_rules),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_series_cap),
        cmocka_unit_test(test_default_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
