/* permits.c - a counting semaphore with leases in Redis, see permits.h. */
#include "ds2grist/permits.h"
#include "ds2grist/err.h"

#include <stdio.h>

/* KEYS[1] holders; ARGV limit, lease_ms, holder. 0 = granted (or renewed), else ms to wait. */
static const d2g_redis_script_t acquire_script = {
    "permits_acquire",
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local limit, lease = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
    "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)\n"
    "if redis.call('ZSCORE', KEYS[1], ARGV[3]) or redis.call('ZCARD', KEYS[1]) < limit then\n"
    "  redis.call('ZADD', KEYS[1], now + lease, ARGV[3])\n"
    "  if redis.call('PTTL', KEYS[1]) < lease then redis.call('PEXPIRE', KEYS[1], lease) end\n"
    "  return 0\n"
    "end\n"
    "local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')\n"
    "return math.max(1, tonumber(first[2]) - now)\n",
};

/* KEYS[1] holders. Live holders now. */
static const d2g_redis_script_t in_use_script = {
    "permits_in_use",
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "return redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')\n",
};

int d2g_permits_acquire(d2g_redis_t *r, const char *key, int limit, int64_t lease_ms,
                        const char *holder, int64_t *wait_ms, char *err, size_t errlen) {
    char lim[16], lease[24];
    snprintf(lim, sizeof(lim), "%d", limit);
    snprintf(lease, sizeof(lease), "%lld", (long long)lease_ms);
    const char *args[] = {lim, lease, holder};
    redisReply *rep = d2g_redis_eval_idempotent(r, &acquire_script, 1, &key, 3, args, err, errlen);
    if (!rep)
        return -1;
    int rc = 0;
    if (rep->type == REDIS_REPLY_INTEGER)
        *wait_ms = rep->integer;
    else
        rc = d2g_err_set(err, errlen, "redis script permits_acquire: unexpected reply");
    freeReplyObject(rep);
    return rc;
}

int d2g_permits_release(d2g_redis_t *r, const char *key, const char *holder, char *err,
                        size_t errlen) {
    const char *argv[] = {"ZREM", key, holder};
    redisReply *rep = d2g_redis_argv(r, 3, argv, NULL, err, errlen);
    if (!rep)
        return -1;
    freeReplyObject(rep);
    return 0;
}

int d2g_permits_in_use(d2g_redis_t *r, const char *key, char *err, size_t errlen) {
    redisReply *rep = d2g_redis_eval_idempotent(r, &in_use_script, 1, &key, 0, NULL, err, errlen);
    if (!rep)
        return -1;
    int n = rep->type == REDIS_REPLY_INTEGER ? (int)rep->integer : -1;
    freeReplyObject(rep);
    return n;
}
