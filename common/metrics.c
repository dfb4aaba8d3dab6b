/*
 * metrics.c - the Prometheus registry, see include/ds2grist/metrics.h.
 *
 * One mutex per registry guards everything in it. Each family keeps its
 * series in a chained hash table keyed by the label values (joined, each
 * followed by '\0'); rendering sorts a copy of the series pointers, so the
 * output is deterministic whatever the update order.
 */
#include "ds2grist/metrics.h"
#include "ds2grist/alloc.h"
#include "ds2grist/log.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REFUSED_NAME "ds2grist_metrics_series_refused_total"

typedef enum { KIND_COUNTER, KIND_GAUGE, KIND_HISTOGRAM } kind_t;

static const char *const kind_names[] = {"counter", "gauge", "histogram"};

typedef struct series {
    struct series *next; /* hash chain */
    uint64_t hash;
    size_t keylen;       /* bytes of key, separators included */
    char *key;           /* label values, each followed by '\0' (points into this block) */
    double value;        /* counter, gauge */
    double sum;          /* histogram */
    uint64_t count;      /* histogram: every observation */
    uint64_t buckets[];  /* histogram: per bucket, not cumulative; key follows */
} series_t;

struct d2g_metric {
    d2g_metrics_t *reg;
    kind_t kind;
    char *name;
    char *help;
    int n_labels;
    char *labels[D2G_METRICS_MAX_LABELS];
    int n_buckets;
    double *bounds;
    series_t **table; /* table_size chains, table_size a power of two */
    size_t table_size;
    size_t n_series;
    uint64_t refused;
    int uncapped; /* the refusal counter itself: one series per family at most */
};

struct d2g_metrics {
    pthread_mutex_t lock;
    size_t series_cap;
    d2g_metric_t **families; /* sorted by name */
    size_t n_families, families_cap;
    d2g_metric_t *refused; /* REFUSED_NAME{metric} */
};

/* --- names ---------------------------------------------------------------- */

/* Scaled units: metric names use base units (seconds, bytes, ratios). */
static const char *const scaled_units[] = {
    "ms", "millis", "millisecond", "milliseconds", "us", "micros", "microsecond",
    "microseconds", "ns", "nanos", "nanosecond", "nanoseconds", "minute", "minutes",
    "hour", "hours", "day", "days", "kb", "kib", "kilobyte", "kilobytes", "mb", "mib",
    "megabyte", "megabytes", "gb", "gib", "gigabyte", "gigabytes", "percent", NULL};

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static int valid_metric_name(const char *name, kind_t kind) {
    static const char prefix[] = "ds2grist_";
    size_t n = name ? strlen(name) : 0;

    if (n <= sizeof(prefix) - 1 || strncmp(name, prefix, sizeof(prefix) - 1) != 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return 0;
        if (c == '_' && name[i + 1] == '_')
            return 0;
    }
    if (name[n - 1] == '_')
        return 0;
    /* Every word after the prefix must not be a scaled unit. */
    for (const char *w = name + sizeof(prefix) - 1; *w;) {
        size_t len = strcspn(w, "_");
        for (const char *const *u = scaled_units; *u; u++)
            if (strlen(*u) == len && strncmp(w, *u, len) == 0)
                return 0;
        w += len;
        if (*w == '_')
            w++;
    }
    if (kind == KIND_COUNTER)
        return ends_with(name, "_total");
    if (ends_with(name, "_total"))
        return 0;
    if (kind == KIND_HISTOGRAM &&
        (ends_with(name, "_bucket") || ends_with(name, "_sum") || ends_with(name, "_count")))
        return 0;
    return 1;
}

static int valid_label_name(const char *name) {
    if (!name || !*name || strncmp(name, "__", 2) == 0)
        return 0;
    for (const char *p = name; *p; p++) {
        char c = *p;
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                 (p != name && c >= '0' && c <= '9');
        if (!ok)
            return 0;
    }
    return 1;
}

/* --- families and series ------------------------------------------------- */

static void series_free_all(d2g_metric_t *f) {
    for (size_t i = 0; i < f->table_size; i++) {
        series_t *s = f->table[i];
        while (s) {
            series_t *next = s->next;
            free(s);
            s = next;
        }
    }
    free(f->table);
}

static void family_free(d2g_metric_t *f) {
    if (!f)
        return;
    series_free_all(f);
    free(f->name);
    free(f->help);
    for (int i = 0; i < f->n_labels; i++)
        free(f->labels[i]);
    free(f->bounds);
    free(f);
}

/* FNV-1a over the values, each followed by '\0'; sets *keylen. */
static uint64_t key_hash(const d2g_metric_t *f, const char *const *values, size_t *keylen) {
    uint64_t h = 1469598103934665603ULL;
    size_t len = 0;
    for (int i = 0; i < f->n_labels; i++) {
        const unsigned char *p = (const unsigned char *)values[i];
        do {
            h ^= *p;
            h *= 1099511628211ULL;
            len++;
        } while (*p++);
    }
    *keylen = len;
    return h;
}

static int key_equal(const d2g_metric_t *f, const series_t *s, const char *const *values) {
    const char *k = s->key;
    for (int i = 0; i < f->n_labels; i++) {
        size_t l = strlen(values[i]) + 1;
        if (memcmp(k, values[i], l) != 0)
            return 0;
        k += l;
    }
    return 1;
}

static void table_grow(d2g_metric_t *f) {
    size_t size = f->table_size ? f->table_size * 2 : 8;
    series_t **t = d2g_calloc(size, sizeof(*t));
    for (size_t i = 0; i < f->table_size; i++) {
        series_t *s = f->table[i];
        while (s) {
            series_t *next = s->next;
            size_t j = (size_t)(s->hash & (size - 1));
            s->next = t[j];
            t[j] = s;
            s = next;
        }
    }
    free(f->table);
    f->table = t;
    f->table_size = size;
}

typedef enum { GET_FOUND, GET_REFUSED } get_result_t;

/* The series for values, created if new. Registry locked. */
static series_t *series_get(d2g_metric_t *f, const char *const *values, get_result_t *why) {
    size_t keylen;
    uint64_t h = key_hash(f, values, &keylen);

    *why = GET_FOUND;
    if (f->table_size) {
        for (series_t *s = f->table[h & (f->table_size - 1)]; s; s = s->next)
            if (s->hash == h && s->keylen == keylen && key_equal(f, s, values))
                return s;
    }
    if (!f->uncapped && f->n_series >= f->reg->series_cap) {
        f->refused++;
        *why = GET_REFUSED;
        return NULL;
    }
    if (f->n_series >= f->table_size)
        table_grow(f);
    size_t nb = f->kind == KIND_HISTOGRAM ? (size_t)f->n_buckets : 0;
    series_t *s = d2g_calloc(1, sizeof(*s) + nb * sizeof(uint64_t) + keylen + 1);
    s->hash = h;
    s->keylen = keylen;
    s->key = (char *)(s->buckets + nb);
    char *k = s->key;
    for (int i = 0; i < f->n_labels; i++) {
        size_t l = strlen(values[i]) + 1;
        memcpy(k, values[i], l);
        k += l;
    }
    size_t j = (size_t)(h & (f->table_size - 1));
    s->next = f->table[j];
    f->table[j] = s;
    f->n_series++;
    return s;
}

static d2g_metric_t *family_register(d2g_metrics_t *m, kind_t kind, const char *name,
                                     const char *help, int n_labels,
                                     const char *const *label_names, int n_buckets,
                                     const double *buckets) {
    if (!m || !help || !valid_metric_name(name, kind) || n_labels < 0 ||
        n_labels > D2G_METRICS_MAX_LABELS || (n_labels > 0 && !label_names))
        return NULL;
    for (int i = 0; i < n_labels; i++) {
        if (!valid_label_name(label_names[i]))
            return NULL;
        if (kind == KIND_HISTOGRAM && strcmp(label_names[i], "le") == 0)
            return NULL;
        for (int j = 0; j < i; j++)
            if (strcmp(label_names[i], label_names[j]) == 0)
                return NULL;
    }
    if (kind == KIND_HISTOGRAM) {
        if (n_buckets < 1 || !buckets)
            return NULL;
        for (int i = 0; i < n_buckets; i++)
            if (!isfinite(buckets[i]) || (i > 0 && !(buckets[i] > buckets[i - 1])))
                return NULL;
    }

    d2g_metric_t *f = d2g_calloc(1, sizeof(*f));
    f->reg = m;
    f->kind = kind;
    f->n_labels = n_labels;
    f->name = d2g_strdup(name);
    f->help = d2g_strdup(help);
    for (int i = 0; i < n_labels; i++)
        f->labels[i] = d2g_strdup(label_names[i]);
    if (kind == KIND_HISTOGRAM) {
        f->n_buckets = n_buckets;
        f->bounds = d2g_malloc((size_t)n_buckets * sizeof(double));
        memcpy(f->bounds, buckets, (size_t)n_buckets * sizeof(double));
    }
    get_result_t why;
    /* Without labels, the single series exists from the start, at 0. */
    if (n_labels == 0 && !series_get(f, NULL, &why)) {
        family_free(f);
        return NULL;
    }

    pthread_mutex_lock(&m->lock);
    size_t pos = 0;
    int dup = 0;
    while (pos < m->n_families) {
        int c = strcmp(m->families[pos]->name, name);
        if (c == 0)
            dup = 1;
        if (c >= 0)
            break;
        pos++;
    }
    if (!dup && m->n_families == m->families_cap) {
        size_t cap = m->families_cap ? m->families_cap * 2 : 16;
        m->families = d2g_realloc(m->families, cap * sizeof(*m->families));
        m->families_cap = cap;
    }
    if (!dup) {
        memmove(m->families + pos + 1, m->families + pos,
                (m->n_families - pos) * sizeof(*m->families));
        m->families[pos] = f;
        m->n_families++;
    }
    pthread_mutex_unlock(&m->lock);
    if (dup) {
        family_free(f);
        return NULL;
    }
    return f;
}

d2g_metrics_t *d2g_metrics_new(void) {
    d2g_metrics_t *m = d2g_calloc(1, sizeof(*m));
    if (pthread_mutex_init(&m->lock, NULL) != 0) {
        free(m);
        return NULL;
    }
    m->series_cap = D2G_METRICS_DEFAULT_SERIES_CAP;
    static const char *const refused_labels[] = {"metric"};
    m->refused = family_register(m, KIND_COUNTER, REFUSED_NAME,
                                 "Updates dropped because the metric had reached its "
                                 "cap of series (label value combinations).",
                                 1, refused_labels, 0, NULL);
    if (!m->refused) {
        d2g_metrics_free(m);
        return NULL;
    }
    m->refused->uncapped = 1;
    return m;
}

void d2g_metrics_free(d2g_metrics_t *m) {
    if (!m)
        return;
    for (size_t i = 0; i < m->n_families; i++)
        family_free(m->families[i]);
    free(m->families);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

void d2g_metrics_set_series_cap(d2g_metrics_t *m, size_t cap) {
    if (!m || cap < 1)
        return;
    pthread_mutex_lock(&m->lock);
    m->series_cap = cap;
    pthread_mutex_unlock(&m->lock);
}

d2g_metric_t *d2g_metrics_counter(d2g_metrics_t *m, const char *name, const char *help,
                                  int n_labels, const char *const *label_names) {
    return family_register(m, KIND_COUNTER, name, help, n_labels, label_names, 0, NULL);
}

d2g_metric_t *d2g_metrics_gauge(d2g_metrics_t *m, const char *name, const char *help,
                                int n_labels, const char *const *label_names) {
    return family_register(m, KIND_GAUGE, name, help, n_labels, label_names, 0, NULL);
}

d2g_metric_t *d2g_metrics_histogram(d2g_metrics_t *m, const char *name, const char *help,
                                    int n_labels, const char *const *label_names,
                                    int n_buckets, const double *buckets) {
    return family_register(m, KIND_HISTOGRAM, name, help, n_labels, label_names, n_buckets,
                           buckets);
}

/* --- updates -------------------------------------------------------------- */

typedef enum { OP_INC, OP_SET, OP_OBSERVE } op_t;

static void update(d2g_metric_t *f, const char *const *values, op_t op, double v) {
    if (!f || isnan(v))
        return;
    if ((op == OP_INC && f->kind == KIND_HISTOGRAM) || (op == OP_SET && f->kind != KIND_GAUGE) ||
        (op == OP_OBSERVE && f->kind != KIND_HISTOGRAM) ||
        (op == OP_INC && f->kind == KIND_COUNTER && v < 0))
        return;
    if (f->n_labels > 0) {
        if (!values)
            return;
        for (int i = 0; i < f->n_labels; i++)
            if (!values[i])
                return;
    }

    d2g_metrics_t *m = f->reg;
    get_result_t why;
    uint64_t refused = 0;
    pthread_mutex_lock(&m->lock);
    series_t *s = series_get(f, values, &why);
    if (s) {
        switch (op) {
        case OP_INC:
            s->value += v;
            break;
        case OP_SET:
            s->value = v;
            break;
        case OP_OBSERVE:
            for (int i = 0; i < f->n_buckets; i++) {
                if (v <= f->bounds[i]) {
                    s->buckets[i]++;
                    break;
                }
            }
            s->count++;
            s->sum += v;
            break;
        }
    } else if (why == GET_REFUSED) {
        refused = f->refused;
        const char *name[] = {f->name};
        series_t *r = series_get(m->refused, name, &why);
        if (r)
            r->value += 1;
    }
    pthread_mutex_unlock(&m->lock);
    if (refused == 1)
        d2g_log(D2G_LOG_WARN, "metrics_series_cap", 0, NULL,
                "metric %s has reached its cap of series; updates with new label values "
                "are dropped (see " REFUSED_NAME ")",
                f->name);
}

void d2g_metric_inc(d2g_metric_t *metric, const char *const *label_values, double v) {
    update(metric, label_values, OP_INC, v);
}

void d2g_metric_set(d2g_metric_t *metric, const char *const *label_values, double v) {
    update(metric, label_values, OP_SET, v);
}

void d2g_metric_observe(d2g_metric_t *metric, const char *const *label_values, double v) {
    update(metric, label_values, OP_OBSERVE, v);
}

uint64_t d2g_metric_refused(d2g_metric_t *metric) {
    if (!metric)
        return 0;
    pthread_mutex_lock(&metric->reg->lock);
    uint64_t n = metric->refused;
    pthread_mutex_unlock(&metric->reg->lock);
    return n;
}

/* --- rendering ------------------------------------------------------------ */

void d2g_metrics_format_value(double v, char buf[D2G_METRICS_NUMLEN]) {
    if (isnan(v)) {
        snprintf(buf, D2G_METRICS_NUMLEN, "NaN");
    } else if (isinf(v)) {
        snprintf(buf, D2G_METRICS_NUMLEN, "%s", v > 0 ? "+Inf" : "-Inf");
    } else if (v > -1e18 && v < 1e18 && v == (double)(int64_t)v) {
        snprintf(buf, D2G_METRICS_NUMLEN, "%lld", (long long)(int64_t)v);
    } else {
        /* The shortest of 15, 16, 17 significant digits that reads back as v. */
        for (int prec = 15; prec <= 17; prec++) {
            snprintf(buf, D2G_METRICS_NUMLEN, "%.*g", prec, v);
            if (strtod(buf, NULL) == v)
                break;
        }
    }
}

typedef struct {
    char *p;
    size_t len, cap;
} buf_t;

static void buf_add(buf_t *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (b->len + n + 1 > cap)
            cap *= 2;
        b->p = d2g_realloc(b->p, cap);
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void buf_str(buf_t *b, const char *s) { buf_add(b, s, strlen(s)); }

static void buf_num(buf_t *b, double v) {
    char num[D2G_METRICS_NUMLEN];
    d2g_metrics_format_value(v, num);
    buf_str(b, num);
}

/* Escapes backslash and newline, and double quote when quote is set. */
static void buf_escaped(buf_t *b, const char *s, int quote) {
    const char *run = s;
    for (; *s; s++) {
        const char *esc = NULL;
        if (*s == '\\')
            esc = "\\\\";
        else if (*s == '\n')
            esc = "\\n";
        else if (quote && *s == '"')
            esc = "\\\"";
        if (esc) {
            buf_add(b, run, (size_t)(s - run));
            buf_str(b, esc);
            run = s + 1;
        }
    }
    buf_add(b, run, (size_t)(s - run));
}

/* {a="x",b="y"[,le="..."]}, or nothing without labels. */
static void buf_labels(buf_t *b, const d2g_metric_t *f, const series_t *s, const char *le) {
    if (f->n_labels == 0 && !le)
        return;
    buf_str(b, "{");
    const char *v = s->key;
    for (int i = 0; i < f->n_labels; i++) {
        if (i > 0)
            buf_str(b, ",");
        buf_str(b, f->labels[i]);
        buf_str(b, "=\"");
        buf_escaped(b, v, 1);
        buf_str(b, "\"");
        v += strlen(v) + 1;
    }
    if (le) {
        if (f->n_labels > 0)
            buf_str(b, ",");
        buf_str(b, "le=\"");
        buf_str(b, le);
        buf_str(b, "\"");
    }
    buf_str(b, "}");
}

static int series_cmp(const void *a, const void *b) {
    const series_t *x = *(const series_t *const *)a, *y = *(const series_t *const *)b;
    const char *p = x->key, *q = y->key;
    const char *pend = p + x->keylen;
    /* Same number of values on both sides: compare them one by one. */
    while (p < pend) {
        int c = strcmp(p, q);
        if (c)
            return c;
        p += strlen(p) + 1;
        q += strlen(q) + 1;
    }
    return 0;
}

static void render_family(buf_t *b, const d2g_metric_t *f, series_t **sorted) {
    size_t n = 0;
    for (size_t i = 0; i < f->table_size; i++)
        for (series_t *s = f->table[i]; s; s = s->next)
            sorted[n++] = s;
    qsort(sorted, n, sizeof(*sorted), series_cmp);

    buf_str(b, "# HELP ");
    buf_str(b, f->name);
    buf_str(b, " ");
    buf_escaped(b, f->help, 0);
    buf_str(b, "\n# TYPE ");
    buf_str(b, f->name);
    buf_str(b, " ");
    buf_str(b, kind_names[f->kind]);
    buf_str(b, "\n");
    for (size_t i = 0; i < n; i++) {
        const series_t *s = sorted[i];
        if (f->kind != KIND_HISTOGRAM) {
            buf_str(b, f->name);
            buf_labels(b, f, s, NULL);
            buf_str(b, " ");
            buf_num(b, s->value);
            buf_str(b, "\n");
            continue;
        }
        uint64_t acc = 0;
        char le[D2G_METRICS_NUMLEN];
        for (int j = 0; j <= f->n_buckets; j++) {
            if (j < f->n_buckets) {
                acc += s->buckets[j];
                d2g_metrics_format_value(f->bounds[j], le);
            } else {
                acc = s->count;
                snprintf(le, sizeof(le), "+Inf");
            }
            buf_str(b, f->name);
            buf_str(b, "_bucket");
            buf_labels(b, f, s, le);
            buf_str(b, " ");
            buf_num(b, (double)acc);
            buf_str(b, "\n");
        }
        buf_str(b, f->name);
        buf_str(b, "_sum");
        buf_labels(b, f, s, NULL);
        buf_str(b, " ");
        buf_num(b, s->sum);
        buf_str(b, "\n");
        buf_str(b, f->name);
        buf_str(b, "_count");
        buf_labels(b, f, s, NULL);
        buf_str(b, " ");
        buf_num(b, (double)s->count);
        buf_str(b, "\n");
    }
}

char *d2g_metrics_render(d2g_metrics_t *m) {
    buf_t b = {0};
    series_t **sorted = NULL;
    size_t sorted_cap = 0;

    if (!m)
        return NULL;
    buf_add(&b, "", 0); /* an empty registry renders as "" */
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < m->n_families; i++) {
        const d2g_metric_t *f = m->families[i];
        if (f->n_series == 0)
            continue;
        if (f->n_series > sorted_cap) {
            free(sorted);
            sorted_cap = f->n_series;
            sorted = d2g_malloc(sorted_cap * sizeof(*sorted));
        }
        render_family(&b, f, sorted);
    }
    pthread_mutex_unlock(&m->lock);
    free(sorted);
    return b.p;
}
