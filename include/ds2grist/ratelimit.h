/*
 * ratelimit.h - a request budget shared by every process: at most N requests
 * in any window of W milliseconds (a DS token's 400 per minute, a hosted Grist
 * document's 5 per second).
 *
 * The state is one sorted set in Redis (request ids scored by the time they
 * were granted) updated by one script that reads Redis's clock, so every
 * replica counts against the same budget with the same clock. A sliding log
 * rather than GCRA: it guarantees "never more than N in any window of W",
 * exactly what a service's limiter counts, where GCRA's burst allowance would
 * let N + burst through in some windows unless the rate is derated. Memory is
 * N entries per budget: 400 per DS token.
 */
#ifndef D2G_RATELIMIT_H
#define D2G_RATELIMIT_H

#include <stdint.h>

#include "ds2grist/redis.h"

/*
 * Takes one request from the budget at key (a full key, namespace included).
 * Returns 0 and sets *wait_ms: 0 if granted, else how long until a request
 * may be granted (nothing was taken). holder must be unique per call site
 * (e.g. "<host>:<pid>:<counter>"). -1 with err on a Redis failure.
 */
int d2g_ratelimit_take(d2g_redis_t *r, const char *key, int limit, int64_t window_ms,
                       const char *holder, int64_t *wait_ms, char *err, size_t errlen);

/* A rate in requests per second (> 0) as limit requests per window of whole
 * milliseconds (at least one request): 2.5/s is 2 per 800 ms, 0.5/s 1 per
 * 2000 ms. Everyone sharing a key must use the same pair. */
void d2g_ratelimit_per_second(double rps, int *limit, int64_t *window_ms);

#endif
