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

#endif
