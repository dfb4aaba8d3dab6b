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
/*
 * Permits that survive a Redis restart. When Redis comes back empty, the
 * holders of permits granted before are still running their requests, and
 * the set that counted them is gone. Detected with two keys:
 *   "<ns>:{doc:X}:permitgen"   created with the set, kept without expiry: its
 *                              absence means the set is new or was lost;
 *   "<ns>:redis_restarted_ms"  left by the first process that reconnects to
 *                              a restarted server (redis.c, by run_id).
 * If the set is new after a restart, no new permit is granted until
 * restarted_ms + lease_ms: every permit of before has ended by then (a lease
 * outlives its request). Holders still running re-register meanwhile by
 * renewing with held = 1, which is always accepted (they are in flight
 * anyway). On a fresh Redis (no restart seen) nothing waits.
 *
 * d2g_permits_take: as d2g_permits_acquire (same key, limit, lease, holder,
 * *wait_ms), plus held: 1 when the caller already holds this holder's permit
 * and renews it (it is re-registered if Redis lost it), 0 for a new grant.
 * key must end with ":permits" (keys.h); d2g_permits_release releases.
 */
int d2g_permits_take(d2g_redis_t *r, const char *key, int limit, int64_t lease_ms,
                     const char *holder, int held, int64_t *wait_ms, char *err, size_t errlen);

/* Holders whose lease has not expired (Redis TIME); -1 on failure. */
int d2g_permits_in_use(d2g_redis_t *r, const char *key, char *err, size_t errlen);

#endif
