/* ratelimit.c - a sliding-window request budget in Redis, see ratelimit.h. */
#include "ds2grist/ratelimit.h"
#include "ds2grist/err.h"

#include <stdio.h>

/* KEYS[1] budget; ARGV limit, window_ms, holder. Returns 0 (granted) or ms to wait. */
static const d2g_redis_script_t take_script = {
    "ratelimit_take",
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local limit, window = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
    "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)\n"
    "if redis.call('ZCARD', KEYS[1]) < limit then\n"
    "  redis.call('ZADD', KEYS[1], now, ARGV[3])\n"
    "  redis.call('PEXPIRE', KEYS[1], window)\n"
    "  return 0\n"
    "end\n"
    "local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')\n"
    "return math.max(1, tonumber(oldest[2]) + window - now)\n",
};

int d2g_ratelimit_take(d2g_redis_t *r, const char *key, int limit, int64_t window_ms,
                       const char *holder, int64_t *wait_ms, char *err, size_t errlen) {
    char lim[16], win[24];
    snprintf(lim, sizeof(lim), "%d", limit);
    snprintf(win, sizeof(win), "%lld", (long long)window_ms);
    const char *args[] = {lim, win, holder};
    redisReply *rep = d2g_redis_eval(r, &take_script, 1, &key, 3, args, err, errlen);
    if (!rep)
        return -1;
    int rc = 0;
    if (rep->type == REDIS_REPLY_INTEGER)
        *wait_ms = rep->integer;
    else
        rc = d2g_err_set(err, errlen, "redis script ratelimit_take: unexpected reply");
    freeReplyObject(rep);
    return rc;
}

void d2g_ratelimit_per_second(double rps, int *limit, int64_t *window_ms) {
    *limit = rps >= 1 ? (int)rps : 1;
    *window_ms = (int64_t)(1000.0 * *limit / rps + 0.5);
}
