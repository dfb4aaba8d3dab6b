/* redis.c - connection, namespace and scripts, see redis.h. */
#include "ds2grist/redis.h"
#include "ds2grist/alloc.h"
#include "ds2grist/err.h"
#include "ds2grist/keys.h"
#include "ds2grist/secret.h"

#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct d2g_redis {
    redisContext *c;
    char *host;       /* NULL for a unix socket */
    char *unix_path;
    int port;
    int db;
    char *username;
    char *password;
    char *namespace;
    int timeout_ms;
    int unknown; /* the last failure left a command's outcome unknown */
    char run_id[48]; /* the server's run_id when last connected ("" = never) */
    /* SHA1 of each script this connection has loaded (scripts are few). */
    struct {
        const d2g_redis_script_t *script;
        char sha[41];
    } shas[16];
    int n_shas;
};

/* The cached SHA slot of a script (empty sha if not loaded yet). */
static char *sha_slot(d2g_redis_t *r, const d2g_redis_script_t *script) {
    for (int i = 0; i < r->n_shas; i++)
        if (r->shas[i].script == script)
            return r->shas[i].sha;
    if (r->n_shas == (int)(sizeof(r->shas) / sizeof(r->shas[0])))
        return NULL;
    r->shas[r->n_shas].script = script;
    r->shas[r->n_shas].sha[0] = '\0';
    return r->shas[r->n_shas++].sha;
}

static int parse_url(d2g_redis_t *r, const char *url, char *err, size_t errlen) {
    if (strncmp(url, "unix://", 7) == 0) {
        r->unix_path = d2g_strdup(url + 7);
        return r->unix_path && *r->unix_path ? 0
               : d2g_err_set(err, errlen, "redis url: empty unix socket path");
    }
    if (strncmp(url, "redis://", 8) != 0)
        return d2g_err_set(err, errlen, "redis url: must start with redis:// or unix://");
    const char *h = url + 8, *end = h + strcspn(h, ":/");
    r->host = d2g_strndup(h, (size_t)(end - h));
    r->port = 6379;
    if (*end == ':') {
        char *e;
        long p = strtol(end + 1, &e, 10);
        if (p <= 0 || p > 65535 || (*e && *e != '/'))
            return d2g_err_set(err, errlen, "redis url: bad port");
        r->port = (int)p;
        end = e;
    }
    if (*end == '/' && end[1]) {
        char *e;
        long db = strtol(end + 1, &e, 10);
        if (db < 0 || *e)
            return d2g_err_set(err, errlen, "redis url: bad database number");
        r->db = (int)db;
    }
    return r->host && *r->host ? 0 : d2g_err_set(err, errlen, "redis url: no host");
}

/* Remembers the server's run_id; when it changed since the last connection
 * (the server restarted, maybe empty), leaves a mark in the new server,
 * "<ns>:redis_restarted_ms" (Redis TIME, kept an hour), that tells every
 * process that state held in Redis may have been lost (permits.h). */
static void note_run_id(d2g_redis_t *r) {
    redisReply *rep = redisCommand(r->c, "INFO server");
    if (!rep || rep->type != REDIS_REPLY_STRING) {
        if (rep)
            freeReplyObject(rep);
        return;
    }
    const char *p = strstr(rep->str, "run_id:");
    char id[48] = "";
    if (p) {
        p += 7;
        size_t n = strcspn(p, "\r\n");
        snprintf(id, sizeof(id), "%.*s", (int)(n < sizeof(id) - 1 ? n : sizeof(id) - 1), p);
    }
    freeReplyObject(rep);
    if (r->run_id[0] && id[0] && strcmp(r->run_id, id) != 0) {
        char key[300];
        snprintf(key, sizeof(key), "%s:redis_restarted_ms", r->namespace);
        rep = redisCommand(r->c,
                           "EVAL %s 1 %s",
                           "local t = redis.call('TIME') "
                           "redis.call('SET', KEYS[1], t[1] * 1000 + math.floor(t[2] / 1000), "
                           "'NX', 'PX', 3600000) return 1",
                           key);
        if (rep)
            freeReplyObject(rep);
    }
    if (id[0])
        snprintf(r->run_id, sizeof(r->run_id), "%s", id);
}

/* Connects, authenticates and selects the database. */
static int do_connect(d2g_redis_t *r, char *err, size_t errlen) {
    struct timeval tv = {r->timeout_ms / 1000, (r->timeout_ms % 1000) * 1000};
    if (r->c)
        redisFree(r->c);
    r->c = r->unix_path ? redisConnectUnixWithTimeout(r->unix_path, tv)
                        : redisConnectWithTimeout(r->host, r->port, tv);
    if (!r->c || r->c->err) {
        d2g_err_set(err, errlen, "redis %s:%d: %s", r->host ? r->host : r->unix_path, r->port,
                    r->c ? r->c->errstr : "cannot allocate a context");
        goto fail;
    }
    redisSetTimeout(r->c, tv);
    redisReply *rep = NULL;
    if (r->password) {
        rep = r->username ? redisCommand(r->c, "AUTH %s %s", r->username, r->password)
                          : redisCommand(r->c, "AUTH %s", r->password);
        /* Never echo the server's answer to AUTH verbatim: keep it generic. */
        if (!rep || rep->type == REDIS_REPLY_ERROR) {
            d2g_err_set(err, errlen, "redis: authentication failed");
            goto fail_reply;
        }
        freeReplyObject(rep);
    }
    note_run_id(r);
    if (r->db) {
        rep = redisCommand(r->c, "SELECT %d", r->db);
        if (!rep || rep->type == REDIS_REPLY_ERROR) {
            d2g_err_set(err, errlen, "redis: SELECT %d failed", r->db);
            goto fail_reply;
        }
        freeReplyObject(rep);
    }
    return 0;
fail_reply:
    if (rep)
        freeReplyObject(rep);
fail:
    if (r->c)
        redisFree(r->c);
    r->c = NULL;
    return -1;
}

int d2g_redis_connect(const char *url, const char *username, const char *password,
                      const char *namespace, int timeout_ms, d2g_redis_t **out, char *err,
                      size_t errlen) {
    d2g_redis_t *r = d2g_calloc(1, sizeof(*r));
    *out = NULL;
    r->timeout_ms = timeout_ms > 0 ? timeout_ms : 5000;
    r->namespace = d2g_strdup(namespace ? namespace : "ds2grist");
    r->username = username ? d2g_strdup(username) : NULL;
    r->password = password ? d2g_strdup(password) : NULL;
    if (parse_url(r, url, err, errlen) || do_connect(r, err, errlen)) {
        d2g_redis_free(r);
        return -1;
    }
    *out = r;
    return 0;
}

void d2g_redis_free(d2g_redis_t *r) {
    if (!r)
        return;
    if (r->c)
        redisFree(r->c);
    free(r->host);
    free(r->unix_path);
    free(r->username);
    d2g_secret_free(r->password);
    free(r->namespace);
    free(r);
}

redisContext *d2g_redis_context(d2g_redis_t *r) {
    char err[D2G_ERRLEN];
    if (!r->c && do_connect(r, err, sizeof(err)))
        return NULL;
    return r->c;
}

void d2g_redis_key(const d2g_redis_t *r, char *buf, size_t buflen, const char *fmt, ...) {
    int n = snprintf(buf, buflen, "%s:", r->namespace);
    va_list ap;
    va_start(ap, fmt);
    if (n >= 0 && (size_t)n < buflen)
        vsnprintf(buf + n, buflen - (size_t)n, fmt, ap);
    va_end(ap);
}

/* A reply, or NULL with err set; error replies become NULL too. */
static redisReply *check(redisReply *rep, d2g_redis_t *r, char *err, size_t errlen) {
    if (!rep) {
        d2g_err_set(err, errlen, "redis: %s", r->c && r->c->err ? r->c->errstr : "no reply");
        return NULL;
    }
    if (rep->type == REDIS_REPLY_ERROR) {
        d2g_err_set(err, errlen, "redis: %s", rep->str);
        freeReplyObject(rep);
        return NULL;
    }
    return rep;
}

/* Commands that give the same result when run twice: only these are sent
 * again after a connection lost with the command possibly executed. */
static int idempotent_command(const char *name, size_t len) {
    static const char *const names[] = {
        "GET",   "MGET",    "HGET",  "HMGET", "HGETALL", "HEXISTS", "HLEN",   "EXISTS", "TTL",
        "PTTL",  "TYPE",    "ZCARD", "ZCOUNT", "ZSCORE", "ZRANGE",  "SCAN",   "HSCAN",  "ZSCAN",
        "PING",  "TIME",    "INFO",  "SET",   "HSET",    "HMSET",   "HDEL",   "DEL",    "UNLINK",
        "ZREM",  "PEXPIRE", "EXPIRE", "SCRIPT", "SELECT", "AUTH",   "XRANGE", NULL};
    for (int i = 0; names[i]; i++)
        if (strlen(names[i]) == len && strncasecmp(names[i], name, len) == 0)
            return 1;
    return 0;
}

/* An idle connection has nothing to read (no pub/sub here): if the socket is
 * readable or hung up, the server closed it (a restart, a timeout), and a
 * command sent on it would be lost. Reconnect first: nothing was sent yet. */
static void drop_if_dead(d2g_redis_t *r) {
    if (!r->c || r->c->fd < 0)
        return;
    struct pollfd pfd = {.fd = r->c->fd, .events = POLLIN};
    if (poll(&pfd, 1, 0) > 0 && (pfd.revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL))) {
        redisFree(r->c);
        r->c = NULL;
    }
}

/* Sends one command; a connection lost after sending it is retried once
 * only if may_resend (an idempotent command), else reported as unknown. */
static redisReply *run_argv(d2g_redis_t *r, int argc, const char **argv, const size_t *argvlen,
                            int may_resend, char *err, size_t errlen) {
    r->unknown = 0;
    for (int attempt = 0; attempt < 2; attempt++) {
        drop_if_dead(r);
        if (!r->c && do_connect(r, err, errlen))
            return NULL; /* nothing sent */
        redisReply *rep = redisCommandArgv(r->c, argc, argv, argvlen);
        if (rep)
            return check(rep, r, err, errlen);
        char cause[128];
        snprintf(cause, sizeof(cause), "%s", r->c->err ? r->c->errstr : "no reply");
        redisFree(r->c);
        r->c = NULL;
        if (!may_resend || attempt == 1) {
            r->unknown = 1;
            size_t nl = argvlen ? argvlen[0] : strlen(argv[0]);
            return d2g_err_set(err, errlen, "redis: outcome unknown, %.*s not sent again (%s)",
                               (int)(nl > 32 ? 32 : nl), argv[0], cause),
                   NULL;
        }
    }
    return NULL;
}

redisReply *d2g_redis_argv(d2g_redis_t *r, int argc, const char **argv, const size_t *argvlen,
                           char *err, size_t errlen) {
    size_t nl = argvlen ? argvlen[0] : strlen(argv[0]);
    return run_argv(r, argc, argv, argvlen, idempotent_command(argv[0], nl), err, errlen);
}

int d2g_redis_outcome_unknown(const d2g_redis_t *r) { return r->unknown; }

redisReply *d2g_redis_cmd(d2g_redis_t *r, char *err, size_t errlen, const char *fmt, ...) {
    /* Formatted by hiredis, then sent like d2g_redis_argv (same resend rule). */
    char *cmd = NULL;
    va_list ap;
    va_start(ap, fmt);
    int len = redisvFormatCommand(&cmd, fmt, ap);
    va_end(ap);
    if (len < 0)
        return d2g_err_set(err, errlen, "redis: bad command format"), NULL;
    /* The command name is the first bulk string: "*N\r\n$L\r\nNAME\r\n". */
    const char *p = strchr(cmd, '$'), *name = p ? strstr(p, "\r\n") : NULL;
    size_t nl = 0;
    if (name) {
        name += 2;
        nl = strcspn(name, "\r");
    }
    int may_resend = name && idempotent_command(name, nl);
    redisReply *rep = NULL;
    r->unknown = 0;
    for (int attempt = 0; attempt < 2; attempt++) {
        drop_if_dead(r);
        if (!r->c && do_connect(r, err, errlen))
            break;
        void *raw = NULL;
        if (redisAppendFormattedCommand(r->c, cmd, (size_t)len) == REDIS_OK &&
            redisGetReply(r->c, &raw) == REDIS_OK) {
            rep = check(raw, r, err, errlen);
            break;
        }
        char cause[128];
        snprintf(cause, sizeof(cause), "%s", r->c->err ? r->c->errstr : "no reply");
        redisFree(r->c);
        r->c = NULL;
        if (!may_resend || attempt == 1) {
            r->unknown = 1;
            d2g_err_set(err, errlen, "redis: outcome unknown, %.*s not sent again (%s)",
                        (int)(nl > 32 ? 32 : nl), name ? name : "?", cause);
            break;
        }
    }
    redisFreeCommand(cmd);
    return rep;
}

static redisReply *eval(d2g_redis_t *r, const d2g_redis_script_t *script, int idempotent,
                        int nkeys, const char **keys, int nargs, const char **args, char *err,
                        size_t errlen) {
    enum { MAXARGS = 32 };
    const char *argv[MAXARGS];
    char nk[16];
    int argc = 0;
    if (nkeys + nargs + 3 > MAXARGS) {
        d2g_err_set(err, errlen, "redis script %s: too many arguments", script->name);
        return NULL;
    }
    snprintf(nk, sizeof(nk), "%d", nkeys);
    char *sha = sha_slot(r, script);
    if (!sha) {
        d2g_err_set(err, errlen, "redis script %s: too many distinct scripts", script->name);
        return NULL;
    }
    for (int attempt = 0; attempt < 2; attempt++) {
        if (!sha[0]) {
            const char *load[] = {"SCRIPT", "LOAD", script->source};
            redisReply *rep = d2g_redis_argv(r, 3, load, NULL, err, errlen);
            if (!rep)
                return NULL;
            if (rep->type != REDIS_REPLY_STRING || rep->len != 40) {
                freeReplyObject(rep);
                d2g_err_set(err, errlen, "redis script %s: bad SCRIPT LOAD reply", script->name);
                return NULL;
            }
            memcpy(sha, rep->str, 41);
            freeReplyObject(rep);
        }
        argc = 0;
        argv[argc++] = "EVALSHA";
        argv[argc++] = sha;
        argv[argc++] = nk;
        for (int i = 0; i < nkeys; i++)
            argv[argc++] = keys[i];
        for (int i = 0; i < nargs; i++)
            argv[argc++] = args[i];
        char cause[D2G_ERRLEN];
        redisReply *rep = run_argv(r, argc, argv, NULL, idempotent, cause, sizeof(cause));
        if (rep)
            return rep;
        if (strstr(cause, "NOSCRIPT") && attempt == 0) {
            sha[0] = '\0'; /* Redis restarted or flushed its scripts */
            continue;
        }
        d2g_err_set(err, errlen, "redis script %s: %s", script->name, cause);
        return NULL;
    }
    return NULL;
}

const char *d2g_redis_namespace(const d2g_redis_t *r) { return r->namespace; }

redisReply *d2g_redis_eval(d2g_redis_t *r, const d2g_redis_script_t *script, int nkeys,
                           const char **keys, int nargs, const char **args, char *err,
                           size_t errlen) {
    return eval(r, script, 0, nkeys, keys, nargs, args, err, errlen);
}

redisReply *d2g_redis_eval_idempotent(d2g_redis_t *r, const d2g_redis_script_t *script, int nkeys,
                                      const char **keys, int nargs, const char **args, char *err,
                                      size_t errlen) {
    return eval(r, script, 1, nkeys, keys, nargs, args, err, errlen);
}
