/*
 * mapping_cells.c - reading DS values into Grist cells of the right type, see mapping_int.h.
 *
 * Every cell already has its column's type (the writer sends noparse=1): dates are
 * epoch seconds, numbers JSON numbers. A value that cannot be read is kept as its
 * text (Grist shows an invalid cell), never silently lost; no value is null.
 */
#include "mapping_int.h"
#include "ds2grist/alloc.h"
#include "ds2grist/clock.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h> /* isfinite (a macro: no libm needed) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* --- dates --------------------------------------------------------------- */

/* Sunday = 0. */
static int weekday(int64_t days) { return (int)(days >= -4 ? (days + 4) % 7 : (days + 5) % 7 + 6); }

static int64_t last_sunday(int y, int m) {
    int64_t last = d2g_clock_days_from_civil(y, m, d2g_clock_days_in_month(y, m));
    return last - weekday(last);
}

/* Europe/Paris local time -> UTC: CET (+1), CEST (+2) from the last Sunday of
 * March 01:00 UTC to the last Sunday of October 01:00 UTC (EU rule since 1996). */
static int64_t paris_to_utc(int y, int64_t local) {
    int64_t start = last_sunday(y, 3) * 86400 + 3600, end = last_sunday(y, 10) * 86400 + 3600;
    int64_t guess = local - 3600;
    return (guess >= start && guess < end) ? local - 7200 : guess;
}

static const char *const months_fr[] = {"janvier", "fevrier", "mars", "avril", "mai",
                                        "juin", "juillet", "aout", "septembre", "octobre",
                                        "novembre", "decembre"};

/*
 * The French texts DS puts in stringValue: "14 mars 2026", "1er mars 2026",
 * "14/03/2026", optionally followed by " 15:06", " à 15h06". Sets *has_time.
 * Returns 0 with the local date and time.
 */
static int parse_french(const char *s, int *y, int *mo, int *d, int *h, int *mi, int *has_time) {
    char word[32], id[D2G_COLID_BUFLEN];
    const char *p = s;
    size_t n = 0;

    *h = *mi = *has_time = 0;
    for (*d = 0; isdigit((unsigned char)*p) && n < 2; p++, n++)
        *d = *d * 10 + (*p - '0');
    if (n == 0)
        return -1;
    if (*p == '/') {
        p++;
        if (d2g_clock_scan_digits(&p, 2, mo) || *p++ != '/' || d2g_clock_scan_digits(&p, 4, y))
            return -1;
    } else {
        if (p[0] == 'e' && p[1] == 'r')
            p += 2;
        if (*p != ' ')
            return -1;
        while (*p == ' ')
            p++;
        for (n = 0; *p && *p != ' ' && n < sizeof(word) - 1; p++)
            word[n++] = *p;
        word[n] = 0;
        d2g_colid_from_label(word, id, sizeof(id));
        *mo = 0;
        size_t wl = strlen(id);
        for (int i = 0; i < 12 && !*mo; i++)
            if (wl >= 3 && strncmp(months_fr[i], id, wl) == 0)
                *mo = i + 1;
        while (*p == ' ')
            p++;
        if (!*mo || d2g_clock_scan_digits(&p, 4, y))
            return -1;
    }
    while (*p == ' ')
        p++;
    if (strncmp(p, "\xc3\xa0", 2) == 0 || *p == 'a') { /* "à" */
        p += *p == 'a' ? 1 : 2;
        while (*p == ' ')
            p++;
    }
    if (*p) {
        size_t k = 0;
        for (*h = 0; isdigit((unsigned char)*p) && k < 2; p++, k++)
            *h = *h * 10 + (*p - '0');
        if (k == 0 || (*p != ':' && *p != 'h'))
            return -1;
        p++;
        if (d2g_clock_scan_digits(&p, 2, mi) || *h > 23 || *mi > 59)
            return -1;
        *has_time = 1;
        if (*p)
            return -1;
    }
    return d2g_clock_valid_date(*y, *mo, *d) ? 0 : -1;
}

/*
 * A date or date-time cell: epoch seconds (UTC midnight for a date); the
 * text itself if it cannot be read (Grist shows it as an invalid cell: never
 * silently lost); null for no value.
 */
json_t *d2g_cell_date(const char *s, int datetime) {
    double e;
    int is_int, y, mo, d, h, mi, has_time;
    if (!s || !*s)
        return json_null();
    if (!datetime && strlen(s) >= 10) {
        char day[11];
        memcpy(day, s, 10);
        day[10] = 0;
        if (d2g_clock_parse_iso(day, &e, &is_int) == 0 && (s[10] == 0 || s[10] == 'T'))
            return json_integer((json_int_t)e);
    }
    if (datetime && d2g_clock_parse_iso(s, &e, &is_int) == 0)
        return is_int ? json_integer((json_int_t)e) : json_real(e);
    if (parse_french(s, &y, &mo, &d, &h, &mi, &has_time) == 0) {
        int64_t day = d2g_clock_days_from_civil(y, mo, d) * 86400;
        if (!datetime)
            return json_integer(day);
        return json_integer(paris_to_utc(y, day + h * 3600 + mi * 60));
    }
    return json_string(s);
}

/* --- small strings -------------------------------------------------------- */

void d2g_sb_add(d2g_sbuf_t *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 128;
        while (cap < b->len + n + 1)
            cap *= 2;
        b->s = d2g_realloc(b->s, cap);
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
}

void d2g_sb_str(d2g_sbuf_t *b, const char *s) { d2g_sb_add(b, s, strlen(s)); }

/* s with every line break as one space. */
void d2g_sb_oneline(d2g_sbuf_t *b, const char *s) {
    while (*s) {
        size_t n = strcspn(s, "\r\n");
        d2g_sb_add(b, s, n);
        s += n;
        if (*s) {
            d2g_sb_add(b, " ", 1);
            s += strspn(s, "\r\n");
        }
    }
}

/* The text as a JSON string (NULL text or empty buffer: null); frees it. */
json_t *d2g_sb_take(d2g_sbuf_t *b) {
    json_t *v = b->len ? json_string(b->s) : json_null();
    free(b->s);
    memset(b, 0, sizeof(*b));
    return v;
}

char *d2g_map_concat(const char *a, const char *b) {
    size_t na = strlen(a), nb = strlen(b);
    char *s = d2g_malloc(na + nb + 1);
    memcpy(s, a, na);
    memcpy(s + na, b, nb + 1);
    return s;
}

const char *d2g_map_jstr(json_t *obj, const char *key) {
    return json_string_value(json_object_get(obj, key));
}

json_t *d2g_map_str_or_null(const char *s) { return s ? json_string(s) : json_null(); }

/* --- numbers and booleans ------------------------------------------------- */

/* s without the spaces people and DS put in numbers (incl. U+00A0, U+202F). */
static int compact_number(const char *s, char *out, size_t outlen, int comma_is_dot) {
    size_t n = 0;
    for (; *s; s++) {
        if (*s == ' ')
            continue;
        if (strncmp(s, "\xc2\xa0", 2) == 0 || strncmp(s, "\xe2\x80\xaf", 3) == 0) {
            s += s[0] == '\xc2' ? 1 : 2;
            continue;
        }
        if (n + 1 >= outlen)
            return -1;
        out[n++] = (comma_is_dot && *s == ',') ? '.' : *s;
    }
    out[n] = 0;
    return n ? 0 : -1;
}

/* Grist's Int holds 32-bit values; larger ones are kept as their text (an
 * invalid cell in Grist, but no digit is lost). */
#define GRIST_INT_MIN (-2147483647LL - 1)
#define GRIST_INT_MAX 2147483647LL

json_t *d2g_cell_int(json_t *typed, const char *sv) {
    char buf[64], *end;
    if (json_is_integer(typed)) {
        json_int_t v = json_integer_value(typed);
        if (v >= GRIST_INT_MIN && v <= GRIST_INT_MAX)
            return json_integer(v);
        snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, v);
        return json_string(buf);
    }
    if (json_is_real(typed)) {
        double v = json_real_value(typed);
        if (v >= (double)GRIST_INT_MIN && v <= (double)GRIST_INT_MAX && v == (double)(long long)v)
            return json_integer((json_int_t)v);
        return json_real(v);
    }
    const char *s = json_string_value(typed) ? json_string_value(typed) : sv;
    if (!s || !*s)
        return json_null();
    if (compact_number(s, buf, sizeof(buf), 0) == 0) {
        errno = 0;
        long long v = strtoll(buf, &end, 10);
        if (!errno && !*end && v >= GRIST_INT_MIN && v <= GRIST_INT_MAX)
            return json_integer(v);
    }
    return json_string(s);
}

json_t *d2g_mapping_number_cell(int64_t number) {
    char buf[24];
    if (number >= GRIST_INT_MIN && number <= GRIST_INT_MAX)
        return json_integer((json_int_t)number);
    snprintf(buf, sizeof(buf), "%" PRId64, number);
    return json_string(buf);
}

int64_t d2g_mapping_number_of(json_t *cell) {
    if (json_is_integer(cell))
        return (int64_t)json_integer_value(cell);
    const char *s = json_string_value(cell);
    char *end;
    if (!s || !*s)
        return -1;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    return errno || *end ? -1 : (int64_t)v;
}

json_t *d2g_cell_numeric(json_t *typed, const char *sv) {
    char buf[128], *end;
    if (json_is_number(typed))
        return json_real(json_number_value(typed));
    const char *s = json_string_value(typed) ? json_string_value(typed) : sv;
    if (!s || !*s)
        return json_null();
    if (compact_number(s, buf, sizeof(buf), 1) == 0) {
        errno = 0;
        double v = strtod(buf, &end);
        if (!errno && !*end && isfinite(v))
            return json_real(v);
    }
    return json_string(s);
}

/* 1, 0, or -1 for a text that is not a yes/no. */
static int parse_bool(const char *s) {
    static const char *const yes[] = {"true", "oui", "on", "1", "yes", NULL};
    static const char *const no[] = {"false", "non", "off", "0", "no", NULL};
    for (int i = 0; yes[i]; i++) {
        if (strcasecmp(s, yes[i]) == 0)
            return 1;
        if (strcasecmp(s, no[i]) == 0)
            return 0;
    }
    return -1;
}

json_t *d2g_cell_bool(json_t *typed, const char *sv, int checkbox) {
    if (json_is_boolean(typed))
        return json_boolean(json_is_true(typed));
    const char *s = json_string_value(typed) ? json_string_value(typed) : sv;
    if (!s || !*s)
        return checkbox ? json_false() : json_null();
    int v = parse_bool(s);
    return v < 0 ? json_string(s) : json_boolean(v);
}


json_t *d2g_cell_int64(json_t *typed, const char *sv) {
    char buf[64], *end;
    if (json_is_integer(typed))
        return json_integer(json_integer_value(typed));
    const char *s = json_string_value(typed) ? json_string_value(typed) : sv;
    if (!s || !*s)
        return json_null();
    if (compact_number(s, buf, sizeof(buf), 0) == 0) {
        errno = 0;
        long long v = strtoll(buf, &end, 10);
        if (!errno && !*end)
            return json_integer((json_int_t)v);
    }
    return json_string(s);
}

json_t *d2g_cell_text(json_t *v) {
    char buf[64];
    if (json_is_string(v))
        return json_string_length(v) ? json_incref(v) : json_null();
    if (json_is_integer(v)) {
        snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return json_string(buf);
    }
    if (json_is_real(v)) {
        snprintf(buf, sizeof(buf), "%.17g", json_real_value(v));
        return json_string(buf);
    }
    if (json_is_boolean(v))
        return json_string(json_is_true(v) ? "true" : "false");
    return json_null();
}

json_t *d2g_cell_json(json_t *v) {
    if (!v || json_is_null(v))
        return json_null();
    if (json_is_string(v))
        return json_incref(v);
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(15));
    json_t *cell = s ? json_string(s) : json_null();
    free(s);
    return cell;
}

/* "2,4 Mo": French units, one decimal under 10. */
static void human_size(const char *text, d2g_sbuf_t *sb) {
    char buf[32];
    char *end;
    errno = 0;
    unsigned long long n = text ? strtoull(text, &end, 10) : 0;
    if (!text || errno || *end || !*text)
        return;
    static const char *const units[] = {"o", "Ko", "Mo", "Go", "To"};
    double v = (double)n;
    int u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(buf, sizeof(buf), "%llu o", n);
    else if (v < 10)
        snprintf(buf, sizeof(buf), "%.1f %s", v, units[u]);
    else
        snprintf(buf, sizeof(buf), "%.0f %s", v, units[u]);
    for (char *p = buf; *p; p++)
        if (*p == '.')
            *p = ',';
    d2g_sb_str(sb, buf);
}

json_t *d2g_cell_files(json_t *files, const char *page) {
    d2g_sbuf_t sb = {0};
    size_t i;
    json_t *f;
    json_array_foreach(files, i, f) {
        const char *name = d2g_map_jstr(f, "filename"), *type = d2g_map_jstr(f, "contentType");
        const char *size = d2g_map_jstr(f, "byteSizeBigInt");
        char num[32];
        if (!size && json_is_integer(json_object_get(f, "byteSize"))) {
            snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT,
                     json_integer_value(json_object_get(f, "byteSize")));
            size = num;
        }
        if (!name)
            continue;
        if (sb.len)
            d2g_sb_str(&sb, "\n");
        d2g_sb_oneline(&sb, name);
        if (type || size) {
            size_t before = sb.len;
            d2g_sb_str(&sb, " (");
            if (type)
                d2g_sb_str(&sb, type);
            if (size) {
                size_t mark = sb.len;
                if (type)
                    d2g_sb_str(&sb, ", ");
                size_t at = sb.len;
                human_size(size, &sb);
                if (sb.len == at) /* not a number: nothing added */
                    sb.len = mark, sb.s[mark] = 0;
            }
            if (sb.len == before + 2)
                sb.len = before, sb.s[before] = 0;
            else
                d2g_sb_str(&sb, ")");
        }
    }
    if (sb.len && page && *page) {
        d2g_sb_str(&sb, "\n");
        d2g_sb_str(&sb, page);
    }
    return d2g_sb_take(&sb);
}
