/*
 * members.h - the live producer replicas, as Redis sees them.
 *
 * One sorted set "<ns>:{fleet}:producers" (keys.h): member = replica id, score = the time
 * (Redis's clock, ms) its registration expires. Each replica renews its own
 * entry every few seconds and reads the whole set in the same script, which
 * also drops the expired entries; a replica that died disappears from
 * everyone's view when its entry expires (ttl), one that stops cleanly at
 * once (leave). The poller splits the procedures between the ids it gets
 * (d2g_sched_owner).
 */
#ifndef D2G_MEMBERS_H
#define D2G_MEMBERS_H

#include <stddef.h>
#include <stdint.h>

#include "ds2grist/redis.h"

typedef struct d2g_members {
    char **ids; /* sorted, owned */
    size_t n;
} d2g_members_t;

/* Renews self for ttl_ms and reads the live replicas into out (cleared first;
 * self is always among them). -1 with err on a Redis failure (out kept). */
int d2g_members_beat(d2g_redis_t *r, const char *self, int64_t ttl_ms, d2g_members_t *out,
                     char *err, size_t errlen);
/* Removes self: the others take its procedures over at their next beat. */
int d2g_members_leave(d2g_redis_t *r, const char *self, char *err, size_t errlen);
void d2g_members_clear(d2g_members_t *m);
/* 1 if both lists hold the same ids. */
int d2g_members_equal(const d2g_members_t *a, const d2g_members_t *b);

#endif
