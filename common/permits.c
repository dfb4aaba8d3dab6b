/* permits.c - a counting semaphore with leases in Redis, see permits.h. */
#include "ds2grist/permits.h"
#include "ds2grist/err.h"
#include "ds2grist/keys.h"

#include <stdio.h>
#include <string.h>

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

/* KEYS set, gen, restarted; ARGV limit, lease_ms, holder, held. 0 granted, else ms to wait. */
static const d2g_redis_script_t take_script = {
    "permits_take",
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local limit, lease = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
    "local quiet = redis.call('GET', KEYS[2])\n"
    "if not quiet then\n"
    "  quiet = 0\n"
    "  local lost = redis.call('GET', KEYS[3])\n"
    "  if lost and redis.call('EXISTS', KEYS[1]) == 0 then quiet = tonumber(lost) + lease end\n"
    "  redis.call('SET', KEYS[2], quiet)\n"
    "end\n"
    "quiet = tonumber(quiet)\n"
    "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)\n"
    "local function grant()\n"
    "  redis.call('ZADD', KEYS[1], now + lease, ARGV[3])\n"
    "  if redis.call('PTTL', KEYS[1]) < lease then redis.call('PEXPIRE', KEYS[1], lease) end\n"
    "  return 0\n"
    "end\n"
    "if redis.call('ZSCORE', KEYS[1], ARGV[3]) or ARGV[4] == '1' then return grant() end\n"
    "if now < quiet then return quiet - now end\n"
    "if redis.call('ZCARD', KEYS[1]) < limit then return grant() end\n"
    "local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')\n"
    "return math.max(1, tonumber(first[2]) - now)\n",
};

int d2g_permits_take(d2g_redis_t *r, const char *key, int limit, int64_t lease_ms,
                     const char *holder, int held, int64_t *wait_ms, char *err, size_t errlen) {
    char lim[16], lease[24], gen[D2G_KEYLEN], lost[D2G_KEYLEN];
    size_t kl = strlen(key), sl = strlen(":permits");
    if (kl <= sl || strcmp(key + kl - sl, ":permits") != 0 || kl + 4 >= sizeof(gen))
        return d2g_err_set(err, errlen, "permits: key must end with :permits");
    snprintf(gen, sizeof(gen), "%.*s:permitgen", (int)(kl - sl), key);
    snprintf(lost, sizeof(lost), "%s:redis_restarted_ms", d2g_redis_namespace(r));
    snprintf(lim, sizeof(lim), "%d", limit);
    snprintf(lease, sizeof(lease), "%lld", (long long)lease_ms);
    const char *keys[] = {key, gen, lost};
    const char *args[] = {lim, lease, holder, held ? "1" : "0"};
    redisReply *rep = d2g_redis_eval_idempotent(r, &take_script, 3, keys, 4, args, err, errlen);
    if (!rep)
        return -1;
    int rc = 0;
    if (rep->type == REDIS_REPLY_INTEGER)
        *wait_ms = rep->integer;
    else
        rc = d2g_err_set(err, errlen, "redis script permits_take: unexpected reply");
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
