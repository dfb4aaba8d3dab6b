/*
 * redis.h - one Redis connection, its key namespace, and scripts run by SHA.
 *
 * Redis is the fleet's shared memory. Every key a ds2grist process touches is
 * "<namespace>:<name>" so that several deployments can share one server, and
 * keys that one script touches together share a hash tag ("{proc:12}") so
 * that Redis Cluster keeps them in one slot.
 *
 * A d2g_redis_t is used by one thread. Commands that fail on a broken
 * connection reconnect once and try again; a second failure is reported to
 * the caller, who decides (retry later, or not ready). Scripts are sent with
 * EVALSHA and loaded on NOSCRIPT, so a Redis restart costs one round trip.
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
/* printf-style convenience for commands without binary data. */
redisReply *d2g_redis_cmd(d2g_redis_t *r, char *err, size_t errlen, const char *fmt, ...);

/* EVALSHA script with keys then args (NUL-terminated strings). */
redisReply *d2g_redis_eval(d2g_redis_t *r, const d2g_redis_script_t *script, int nkeys,
                           const char **keys, int nargs, const char **args, char *err,
                           size_t errlen);

#endif
