/*
 * redis.h - one Redis connection, its key namespace, and scripts run by SHA.
 *
 * Redis is the fleet's shared memory. Every key a ds2grist process touches is
 * "<namespace>:<name>" so that several deployments can share one server
 * (names: keys.h). Keys one script touches together share a hash tag
 * ("{proc:12}"), but Redis Cluster is not supported: a single primary (with
 * replicas or Sentinel behind one address), Redis 7.0 or later.
 *
 * A d2g_redis_t is used by one thread. Before a command, a connection the
 * server closed (a restart) is noticed and replaced: nothing was sent on it.
 * A connection lost after a command was sent (a timeout, a reset) leaves its
 * outcome unknown: Redis may have run it. Only idempotent commands (reads,
 * SET, HSET, DEL, ZREM, ..., and scripts run with d2g_redis_eval_idempotent) are then sent
 * again; the others (HINCRBY, INCR, a budget take) fail with "outcome
 * unknown" and d2g_redis_outcome_unknown() = 1, and the caller decides (a
 * budget take counts as taken, a counter may be off by one). Scripts are sent
 * with EVALSHA and loaded on NOSCRIPT, so a Redis restart costs one round trip.
 */
#ifndef D2G_REDIS_H
#define D2G_REDIS_H

#include <hiredis/hiredis.h>
#include <stddef.h>

typedef struct d2g_redis d2g_redis_t;

/* A Lua script; constant. Its SHA is cached per connection. */
typedef struct d2g_redis_script {
    const char *name;   /* for error messages */
    const char *source; /* Lua */
} d2g_redis_script_t;

/*
 * url: redis://host[:port][/db] or unix:///path. username/password may be NULL.
 * timeout_ms bounds connect and each command. *out is owned by the caller
 * (d2g_redis_free). The password is kept for reconnections only.
 */
int d2g_redis_connect(const char *url, const char *username, const char *password,
                      const char *namespace, int timeout_ms, d2g_redis_t **out, char *err,
                      size_t errlen);
void d2g_redis_free(d2g_redis_t *r);

/* The connected hiredis context, for pipelining many reads in few round
 * trips (redisAppendCommand / redisGetReply); NULL if the connection broke.
 * Borrowed: valid until the next command or d2g_redis_free. */
redisContext *d2g_redis_context(d2g_redis_t *r);

/* "<namespace>:" + printf(fmt, ...) into buf. */
void d2g_redis_key(const d2g_redis_t *r, char *buf, size_t buflen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* A command (hiredis argv form). Returns the reply (caller frees with
 * freeReplyObject) or NULL with err set; an error reply is turned into NULL
 * with its text in err. */
redisReply *d2g_redis_argv(d2g_redis_t *r, int argc, const char **argv, const size_t *argvlen,
                           char *err, size_t errlen);
/* 1 if the last failed command may have been run by Redis (see above). */
int d2g_redis_outcome_unknown(const d2g_redis_t *r);
/* printf-style convenience for commands without binary data. */
redisReply *d2g_redis_cmd(d2g_redis_t *r, char *err, size_t errlen, const char *fmt, ...);

/* EVALSHA script with keys then args (NUL-terminated strings). */
redisReply *d2g_redis_eval(d2g_redis_t *r, const d2g_redis_script_t *script, int nkeys,
                           const char **keys, int nargs, const char **args, char *err,
                           size_t errlen);
/* The same for a script that gives the same result when run twice (it may be
 * re-sent after a lost connection). */
redisReply *d2g_redis_eval_idempotent(d2g_redis_t *r, const d2g_redis_script_t *script, int nkeys,
                                      const char **keys, int nargs, const char **args, char *err,
                                      size_t errlen);

#endif
