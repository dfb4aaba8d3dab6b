/*
 * clock.h - time as ds2grist reads and writes it.
 *
 * Wall-clock milliseconds for timestamps that leave the process (logs,
 * messages); monotonic milliseconds for timeouts and intervals. Shared
 * budgets (permits, rate limits) use Redis's clock instead, never these.
 */
#ifndef D2G_CLOCK_H
#define D2G_CLOCK_H

#include <stddef.h>
#include <stdint.h>

#define D2G_TIME_BUFLEN 32

int64_t d2g_clock_wall_ms(void);
int64_t d2g_clock_mono_ms(void);
/* RFC 3339 UTC with milliseconds ("2026-03-14T14:06:26.123Z") into buf. */
void d2g_clock_format_ms(int64_t ms, char buf[D2G_TIME_BUFLEN]);

/* Days from 1970-01-01 to a date of the proleptic Gregorian calendar. */
int64_t d2g_clock_days_from_civil(int64_t y, int m, int d);
int d2g_clock_days_in_month(int y, int m);
/* 1 if y-m-d is a date of years 1 to 9999. */
int d2g_clock_valid_date(int y, int m, int d);
/* Reads exactly n decimal digits at *s into *v and advances *s; -1 if one is
 * not a digit. The fixed-width reader of the date parsers. */
int d2g_clock_scan_digits(const char **s, int n, int *v);

/*
 * Epoch seconds of an ISO 8601 date ("2026-03-14": UTC midnight) or date-time
 * ("2026-03-14T15:06:26+01:00", "...Z", "...26.5+01:00"; without an offset,
 * UTC). *is_int is 1 when there is no fractional part. -1 if s is not one.
 */
int d2g_clock_parse_iso(const char *s, double *epoch, int *is_int);

#endif
