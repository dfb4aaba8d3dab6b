/*
 * lease.h - exclusive, expiring ownership of a named thing (a procedure being
 * polled by one producer replica).
 *
 * A key holding the owner's id with a TTL. Acquire succeeds if the key is
 * free or already ours (and then renews it); release deletes it only if it is
 * ours. A replica that dies loses its leases when they expire.
 */
#ifndef D2G_LEASE_H
#define D2G_LEASE_H

#include <stdint.h>

#include "ds2grist/redis.h"

/* *acquired = 1 if we own it now (for ttl_ms), 0 if someone else does. */
int d2g_lease_acquire(d2g_redis_t *r, const char *key, const char *owner, int64_t ttl_ms,
                      int *acquired, char *err, size_t errlen);
int d2g_lease_release(d2g_redis_t *r, const char *key, const char *owner, char *err,
                      size_t errlen);

#endif
