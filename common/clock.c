/* clock.c - wall and monotonic time, see clock.h. */
#include "ds2grist/clock.h"

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
