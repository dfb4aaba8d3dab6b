/*
 * permits.h - a counting semaphore with leases, shared by every worker: at
 * most `limit` holders at once (the Grist per-document cap of requests in
 * flight).
 *
 * One sorted set per document in Redis: holder ids scored by lease expiry
 * (ms, Redis TIME). Acquire, in one script: drop expired holders; if fewer
 * than limit remain, add this one; else answer how long until the earliest
 * lease ends. Release is ZREM. A crashed worker's permits come back when their
 * leases expire, so a lease must outlive the request's hard timeout: a lease
 * that ended while its request was still running would let the cap be
 * exceeded.
 */
#ifndef D2G_PERMITS_H
#define D2G_PERMITS_H

#include <stdint.h>

#include "ds2grist/redis.h"

/* 0 and *wait_ms = 0 when granted; *wait_ms > 0: not granted, retry after
 * at most that long (a release may come sooner). -1 on Redis failure. */
int d2g_permits_acquire(d2g_redis_t *r, const char *key, int limit, int64_t lease_ms,
                        const char *holder, int64_t *wait_ms, char *err, size_t errlen);
int d2g_permits_release(d2g_redis_t *r, const char *key, const char *holder, char *err,
                        size_t errlen);
/* Holders whose lease has not expired (Redis TIME); -1 on failure. */
int d2g_permits_in_use(d2g_redis_t *r, const char *key, char *err, size_t errlen);

#endif
