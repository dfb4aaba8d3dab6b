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

int d2g_lease_acquire(d2g_redis_t *r, const char *key, const char *owner, int64_t ttl_ms,
                      int *acquired, char *err, size_t errlen) {
    char ttl[24];
    snprintf(ttl, sizeof(ttl), "%lld", (long long)ttl_ms);
    const char *args[] = {owner, ttl};
    redisReply *rep = d2g_redis_eval(r, &acquire_script, 1, &key, 2, args, err, errlen);
    if (!rep)
        return -1;
    *acquired = rep->type == REDIS_REPLY_INTEGER && rep->integer == 1;
    freeReplyObject(rep);
    return 0;
}

int d2g_lease_release(d2g_redis_t *r, const char *key, const char *owner, char *err,
                      size_t errlen) {
    const char *args[] = {owner};
    redisReply *rep = d2g_redis_eval(r, &release_script, 1, &key, 1, args, err, errlen);
    if (!rep)
        return -1;
    freeReplyObject(rep);
    return 0;
}
