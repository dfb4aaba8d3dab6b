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

/*
 * Fenced leases. The lease key holds the token of one run (unique per
 * acquisition: "<replica>#<seq>"); the fence key (same hash tag, see keys.h)
 * holds the token of the last run that took the lease. A run that lost its
 * lease can therefore never write again (d2g_cursor_set_fenced), even after
 * a pause (SIGSTOP, GC, a frozen VM) longer than the lease, or a Redis restart.
 */
typedef enum {
    D2G_LEASE_OTHER = 0, /* another run holds it */
    D2G_LEASE_KEPT = 1,  /* ours, and nobody took it since we did */
    D2G_LEASE_NEW = 2,   /* ours now, newly: whatever we knew may be stale */
} d2g_lease_state_t;

/* Takes or renews the lease for token; *state says which. renew_only = 1:
 * only renew (D2G_LEASE_KEPT), never take it anew; a run in progress renews
 * this way, since once another run took the lease what it knows is stale. */
int d2g_lease_take(d2g_redis_t *r, const char *lease_key, const char *fence_key, const char *token,
                   int64_t ttl_ms, int renew_only, d2g_lease_state_t *state, char *err,
                   size_t errlen);

#endif
