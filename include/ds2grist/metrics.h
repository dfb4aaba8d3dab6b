/*
 * metrics.h - a small Prometheus registry: counters, gauges and histograms.
 *
 * Each service owns one registry (d2g_metrics_new), registers its metric
 * families once at start-up, updates them from the service loop, and lets the
 * HTTP server (httpd.h) render them from its own thread in the Prometheus
 * text exposition format 0.0.4. docs/metrics.md lists the naming rules.
 *
 * Registration checks the names and returns NULL on a bad one: that is a
 * programming error, and the caller checks at start-up. The rules:
 *   - metric names match ds2grist_[a-z0-9_]*[a-z0-9] (lowercase snake case,
 *     no "__"); counters end with _total, gauges and histograms must not;
 *     histograms must not end with _bucket, _sum or _count;
 *   - units are base units (_seconds, _bytes): a name containing a scaled
 *     unit (_ms, _milliseconds, _minutes, _kb, _megabytes, ...) is refused;
 *   - label names match [a-zA-Z_][a-zA-Z0-9_]*, do not start with "__",
 *     are distinct, at most D2G_METRICS_MAX_LABELS; "le" is refused on
 *     histograms (it is the bucket label);
 *   - a name is registered once per registry.
 *
 * Series (one per tuple of label values) are created on first update. A
 * family holds at most the registry's series cap (default
 * D2G_METRICS_DEFAULT_SERIES_CAP); updates that would create one more series
 * are dropped and counted in ds2grist_metrics_series_refused_total{metric=...}
 * (and logged once per family), so unbounded label values cannot exhaust
 * memory. A family without labels has its single series from registration,
 * at 0, so it is exported before its first update.
 *
 * Thread safety: every update and the rendering take the registry's mutex.
 * Registration and d2g_metrics_set_series_cap are start-up calls, made before
 * other threads use the registry. d2g_metric_t handles stay valid until
 * d2g_metrics_free, which must run after every user (the HTTP server
 * included) has stopped.
 */
#ifndef D2G_METRICS_H
#define D2G_METRICS_H

#include <stddef.h>
#include <stdint.h>

#define D2G_METRICS_MAX_LABELS 8
#define D2G_METRICS_DEFAULT_SERIES_CAP 10000

typedef struct d2g_metrics d2g_metrics_t;
typedef struct d2g_metric d2g_metric_t;

/* NULL only if its mutex cannot be made. */
d2g_metrics_t *d2g_metrics_new(void);
/* Frees the registry and every family in it; NULL is a no-op. */
void d2g_metrics_free(d2g_metrics_t *m);
/* Maximum number of series per family (cap >= 1). Start-up only. */
void d2g_metrics_set_series_cap(d2g_metrics_t *m, size_t cap);

/*
 * Register a family. name and help are copied, as are the n_labels label
 * names (label_names may be NULL when n_labels is 0). Returns a handle owned
 * by the registry, or NULL if a name breaks the rules above, the name is
 * already registered, or memory runs out.
 */
d2g_metric_t *d2g_metrics_counter(d2g_metrics_t *m, const char *name, const char *help,
                                  int n_labels, const char *const *label_names);
d2g_metric_t *d2g_metrics_gauge(d2g_metrics_t *m, const char *name, const char *help,
                                int n_labels, const char *const *label_names);
/* buckets: n_buckets >= 1 finite upper bounds, strictly increasing, copied;
 * the +Inf bucket is implicit. */
d2g_metric_t *d2g_metrics_histogram(d2g_metrics_t *m, const char *name, const char *help,
                                    int n_labels, const char *const *label_names,
                                    int n_buckets, const double *buckets);

/*
 * Updates. label_values holds one string per label name, in registration
 * order (NULL when the family has no labels); the strings are copied when a
 * series is created. Updates that do not fit are ignored: a NULL metric or
 * label value, the wrong metric type, a NaN, a negative counter increment, a
 * new series over the cap (counted, see above).
 */
/* Counters and gauges: add v (gauges accept negative v). */
void d2g_metric_inc(d2g_metric_t *metric, const char *const *label_values, double v);
/* Gauges: set to v. */
void d2g_metric_set(d2g_metric_t *metric, const char *const *label_values, double v);
/* Histograms: count v in the first bucket whose bound is >= v (and +Inf). */
void d2g_metric_observe(d2g_metric_t *metric, const char *const *label_values, double v);

/* How many updates this family dropped because of the series cap. */
uint64_t d2g_metric_refused(d2g_metric_t *metric);

/*
 * The whole registry in the text exposition format 0.0.4 (Content-Type
 * "text/plain; version=0.0.4; charset=utf-8"): families sorted by name, each
 * with # HELP and # TYPE, series sorted by label values; families with
 * labels and no series yet are left out. Returns malloc'ed text (the caller
 * frees it); NULL only for a NULL registry.
 */
char *d2g_metrics_render(d2g_metrics_t *m);

/*
 * A sample value as the exposition format writes it: integers (below 1e18
 * in magnitude) without an exponent ("42", "-3", "1000000"), other values in
 * the shortest %g form that reads back exactly ("0.005", "1.5e-09",
 * "1e+20"), "NaN", "+Inf", "-Inf".
 */
#define D2G_METRICS_NUMLEN 32
void d2g_metrics_format_value(double v, char buf[D2G_METRICS_NUMLEN]);

#endif
