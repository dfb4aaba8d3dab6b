/* clock.c - wall and monotonic time, see clock.h. */
#include "ds2grist/clock.h"

#include <ctype.h>
#include <stdio.h>
#include <time.h>

int64_t d2g_clock_wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t d2g_clock_mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void d2g_clock_format_ms(int64_t ms, char buf[D2G_TIME_BUFLEN]) {
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    size_t n = strftime(buf, D2G_TIME_BUFLEN, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, D2G_TIME_BUFLEN - n, ".%03dZ", (int)(ms % 1000));
}

/* --- ISO 8601 ------------------------------------------------------------ */

int64_t d2g_clock_days_from_civil(int64_t y, int m, int d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

int d2g_clock_days_in_month(int y, int m) {
    static const int dim[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return 29;
    return dim[m - 1];
}

int d2g_clock_valid_date(int y, int m, int d) {
    return y >= 1 && y <= 9999 && m >= 1 && m <= 12 && d >= 1 && d <= d2g_clock_days_in_month(y, m);
}

int d2g_clock_scan_digits(const char **s, int n, int *v) {
    *v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*s)[i]))
            return -1;
        *v = *v * 10 + ((*s)[i] - '0');
    }
    *s += n;
    return 0;
}

int d2g_clock_parse_iso(const char *s, double *epoch, int *is_int) {
    int y, mo, d, h = 0, mi = 0, se = 0, oh = 0, om = 0, sign = 0;
    double frac = 0;
    if (!s || d2g_clock_scan_digits(&s, 4, &y) || *s++ != '-' ||
        d2g_clock_scan_digits(&s, 2, &mo) || *s++ != '-' || d2g_clock_scan_digits(&s, 2, &d) ||
        !d2g_clock_valid_date(y, mo, d))
        return -1;
    if (*s == 'T' || *s == 't' || *s == ' ') {
        s++;
        if (d2g_clock_scan_digits(&s, 2, &h) || *s++ != ':' || d2g_clock_scan_digits(&s, 2, &mi) ||
            h > 23 || mi > 59)
            return -1;
        if (*s == ':') {
            s++;
            if (d2g_clock_scan_digits(&s, 2, &se) || se > 60)
                return -1;
            if (*s == '.' || *s == ',') {
                double scale = 0.1;
                s++;
                if (!isdigit((unsigned char)*s))
                    return -1;
                for (; isdigit((unsigned char)*s); s++, scale /= 10)
                    frac += (*s - '0') * scale;
            }
        }
        if (*s == 'Z' || *s == 'z') {
            s++;
        } else if (*s == '+' || *s == '-') {
            sign = *s++ == '-' ? -1 : 1;
            if (d2g_clock_scan_digits(&s, 2, &oh))
                return -1;
            if (*s == ':')
                s++;
            if (*s && d2g_clock_scan_digits(&s, 2, &om))
                return -1;
            if (oh > 23 || om > 59)
                return -1;
        }
    }
    if (*s)
        return -1;
    double e = (double)(d2g_clock_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se) -
               sign * (oh * 3600 + om * 60) + frac;
    *epoch = e;
    *is_int = frac == 0;
    return 0;
}
