/* table.c - how the operator CLI prints: aligned tables, times, ages, JSON. See operator.h. */
#include "operator.h"

#include "ds2grist/alloc.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

void d2g_op_table_init(d2g_op_table_t *t, size_t ncols, const char *const *headers) {
    memset(t, 0, sizeof(*t));
    t->ncols = ncols;
    d2g_op_table_add(t, headers);
}

void d2g_op_table_add(d2g_op_table_t *t, const char *const *cells) {
    if (t->nrows == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 16;
        char **grown = d2g_realloc(t->cells, t->cap * t->ncols * sizeof(char *));
        t->cells = grown;
    }
    for (size_t i = 0; i < t->ncols; i++)
        t->cells[t->nrows * t->ncols + i] = d2g_strdup(cells[i] ? cells[i] : "-");
    t->nrows++;
}

/* Display width of a UTF-8 string (code points; good enough for names and dates). */
static size_t width(const char *s) {
    size_t n = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80)
            n++;
    return n;
}

void d2g_op_table_print(const d2g_op_table_t *t, FILE *out) {
    size_t *w = d2g_calloc(t->ncols, sizeof(size_t));
    for (size_t r = 0; r < t->nrows; r++)
        for (size_t c = 0; c < t->ncols; c++) {
            size_t cw = width(t->cells[r * t->ncols + c]);
            if (cw > w[c])
                w[c] = cw;
        }
    for (size_t r = 0; r < t->nrows; r++) {
        for (size_t c = 0; c < t->ncols; c++) {
            const char *s = t->cells[r * t->ncols + c];
            if (c + 1 == t->ncols)
                fprintf(out, "%s", s);
            else
                fprintf(out, "%s%*s  ", s, (int)(w[c] - width(s)), "");
        }
        fputc('\n', out);
    }
    free(w);
}

void d2g_op_table_free(d2g_op_table_t *t) {
    for (size_t i = 0; i < t->nrows * t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
    memset(t, 0, sizeof(*t));
}

void d2g_op_format_time(int64_t ms, char *buf, size_t buflen) {
    if (ms <= 0) {
        snprintf(buf, buflen, "-");
        return;
    }
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    strftime(buf, buflen, "%Y-%m-%d %H:%M:%SZ", &tm);
}

void d2g_op_format_age(int64_t ms, char *buf, size_t buflen) {
    if (ms < 0) {
        snprintf(buf, buflen, "-");
        return;
    }
    long long s = (long long)(ms / 1000);
    if (s < 60)
        snprintf(buf, buflen, "%llds", s);
    else if (s < 3600)
        snprintf(buf, buflen, "%lldm%02llds", s / 60, s % 60);
    else if (s < 86400)
        snprintf(buf, buflen, "%lldh%02lldm", s / 3600, (s % 3600) / 60);
    else
        snprintf(buf, buflen, "%lldd%02lldh", s / 86400, (s % 86400) / 3600);
}

void d2g_op_shorten(const char *s, size_t max, char *buf, size_t buflen) {
    if (!s) {
        snprintf(buf, buflen, "-");
        return;
    }
    size_t i = 0, cps = 0;
    /* Copy whole code points, flattening newlines, until max of them. */
    while (s[i] && i + 4 < buflen) {
        if (((unsigned char)s[i] & 0xC0) != 0x80 && cps++ == max)
            break;
        buf[i] = (s[i] == '\n' || s[i] == '\r' || s[i] == '\t') ? ' ' : s[i];
        i++;
    }
    buf[i] = '\0';
    if (s[i] && i + 4 <= buflen) {
        while (i > 0 && ((unsigned char)s[i] & 0xC0) == 0x80)
            i--; /* never cut inside a code point */
        memcpy(buf + i, "...", 4);
    }
}

void d2g_op_print_json(json_t *j) {
    if (!j) { /* a value could not be encoded: still print valid JSON */
        puts("{\"error\": \"the output could not be encoded as JSON\"}");
        return;
    }
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (s) {
        puts(s);
        free(s);
    }
    json_decref(j);
}

void d2g_op_redis_url_public(const char *url, char *buf, size_t buflen) {
    const char *scheme = strstr(url, "://");
    const char *rest = scheme ? scheme + 3 : url;
    const char *slash = rest + strcspn(rest, "/");
    const char *at = NULL;
    for (const char *p = rest; p < slash; p++)
        if (*p == '@')
            at = p;
    if (!at) {
        snprintf(buf, buflen, "%s", url);
        return;
    }
    snprintf(buf, buflen, "%.*s%s", (int)(rest - url), url, at + 1);
}

int d2g_op_parse_count(const char *s, long long *out) {
    char *end;
    if (!s || !*s || *s == '-')
        return -1;
    long long v = strtoll(s, &end, 10);
    if (*end)
        return -1;
    *out = v;
    return 0;
}
