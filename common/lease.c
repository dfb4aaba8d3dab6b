/* lease.c - exclusive expiring ownership in Redis, see lease.h. */
#include "ds2grist/lease.h"
#include "ds2grist/err.h"

#include <stdio.h>

/* KEYS[1] lease; ARGV owner, ttl_ms. 1 = ours now. */
static const d2g_redis_script_t acquire_script = {
    "lease_acquire",
    "local v = redis.call('GET', KEYS[1])\n"
    "if v == false or v == ARGV[1] then\n"
    "  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])\n"
    "  return 1\n"
    "end\n"
    "return 0\n",
};

/* KEYS[1] lease; ARGV owner. Deletes only our own lease. */
static const d2g_redis_script_t release_script = {
    "lease_release",
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end\n"
    "return 0\n",
};

/* KEYS lease, fence; ARGV token, ttl_ms, renew_only. 0 other, 1 kept, 2 new.
 * renew_only: never take the fence (a run that lost it must not get it back). */
static const d2g_redis_script_t take_script = {
    "lease_take",
    "local v = redis.call('GET', KEYS[1])\n"
    "if v ~= false and v ~= ARGV[1] then return 0 end\n"
    "local kept = redis.call('GET', KEYS[2]) == ARGV[1]\n"
    "if not kept and ARGV[3] == '1' then return 0 end\n"
    "redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])\n"
    "if kept then return 1 end\n"
    "redis.call('SET', KEYS[2], ARGV[1])\n"
    "return 2\n",
};

int d2g_lease_take(d2g_redis_t *r, const char *lease_key, const char *fence_key, const char *token,
                   int64_t ttl_ms, int renew_only, d2g_lease_state_t *state, char *err,
                   size_t errlen) {
    char ttl[24];
    snprintf(ttl, sizeof(ttl), "%lld", (long long)ttl_ms);
    const char *keys[] = {lease_key, fence_key};
    const char *args[] = {token, ttl, renew_only ? "1" : "0"};
    redisReply *rep = d2g_redis_eval_idempotent(r, &take_script, 2, keys, 3, args, err, errlen);
    if (!rep)
        return -1;
    *state = rep->type == REDIS_REPLY_INTEGER && rep->integer >= 0 && rep->integer <= 2
                 ? (d2g_lease_state_t)rep->integer : D2G_LEASE_OTHER;
    freeReplyObject(rep);
    return 0;
}

int d2g_lease_acquire(d2g_redis_t *r, const char *key, const char *owner, int64_t ttl_ms,
                      int *acquired, char *err, size_t errlen) {
    char ttl[24];
    snprintf(ttl, sizeof(ttl), "%lld", (long long)ttl_ms);
    const char *args[] = {owner, ttl};
    redisReply *rep = d2g_redis_eval_idempotent(r, &acquire_script, 1, &key, 2, args, err, errlen);
    if (!rep)
        return -1;
    *acquired = rep->type == REDIS_REPLY_INTEGER && rep->integer == 1;
    freeReplyObject(rep);
    return 0;
}

int d2g_lease_release(d2g_redis_t *r, const char *key, const char *owner, char *err,
                      size_t errlen) {
    const char *args[] = {owner};
    redisReply *rep = d2g_redis_eval_idempotent(r, &release_script, 1, &key, 1, args, err, errlen);
    if (!rep)
        return -1;
    freeReplyObject(rep);
    return 0;
}
