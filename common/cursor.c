/* cursor.c - poll positions and status in Redis, see cursor.h. */
#include "ds2grist/keys.h"
#include "ds2grist/cursor.h"
#include "ds2grist/alloc.h"
#include "ds2grist/err.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void key(d2g_redis_t *r, char *buf, size_t len, int64_t proc, const char *what) {
    d2g_keys_proc(d2g_redis_namespace(r), buf, len, proc, what);
}

void d2g_cursor_clear(d2g_cursor_t *c) {
    free(c->updated_since);
    free(c->after);
    free(c->deleted_since);
    free(c->deleted_after);
    free(c->max_modified);
    memset(c, 0, sizeof(*c));
}

int d2g_cursor_load(d2g_redis_t *r, int64_t procedure, d2g_cursor_t *c, char *err,
                    size_t errlen) {
    char k[256];
    memset(c, 0, sizeof(*c));
    key(r, k, sizeof(k), procedure, "cursor");
    const char *argv[] = {"HMGET", k, "updated_since", "after", "deleted_since",
                          "deleted_after", "max_modified", "last_poll_ms", "labels_at_ms",
                          "resync_started_ms", "resync_done_ms"};
    redisReply *rep = d2g_redis_argv(r, 11, argv, NULL, err, errlen);
    if (!rep)
        return -1;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 9) {
        freeReplyObject(rep);
        return d2g_err_set(err, errlen, "redis: unexpected HMGET reply for %s", k);
    }
    char **dst[] = {&c->updated_since, &c->after, &c->deleted_since, &c->deleted_after,
                    &c->max_modified};
    for (int i = 0; i < 5; i++)
        if (rep->element[i]->type == REDIS_REPLY_STRING && rep->element[i]->len > 0)
            *dst[i] = d2g_strdup(rep->element[i]->str);
    if (rep->element[5]->type == REDIS_REPLY_STRING)
        c->last_poll_ms = strtoll(rep->element[5]->str, NULL, 10);
    if (rep->element[6]->type == REDIS_REPLY_STRING)
        c->labels_at_ms = strtoll(rep->element[6]->str, NULL, 10);
    if (rep->element[7]->type == REDIS_REPLY_STRING)
        c->resync_started_ms = strtoll(rep->element[7]->str, NULL, 10);
    if (rep->element[8]->type == REDIS_REPLY_STRING)
        c->resync_done_ms = strtoll(rep->element[8]->str, NULL, 10);
    /* Found: a position is there (a hash holding only last_poll_ms, written by a
     * check racing a Redis loss, is no cursor). */
    for (size_t i = 0; i < 4; i++)
        if (rep->element[i]->type == REDIS_REPLY_STRING)
            c->found = 1;
    freeReplyObject(rep);
    if (!c->updated_since)
        c->updated_since = d2g_strdup(D2G_CURSOR_EPOCH);
    return 0;
}

int d2g_cursor_set(d2g_redis_t *r, int64_t procedure, const char *const *pairs, char *err,
                   size_t errlen) {
    char k[256];
    const char *argv[32];
    int argc = 0;
    key(r, k, sizeof(k), procedure, "cursor");
    argv[argc++] = "HSET";
    argv[argc++] = k;
    for (int i = 0; pairs[i] && argc < 30; i += 2) {
        argv[argc++] = pairs[i];
        argv[argc++] = pairs[i + 1];
    }
    redisReply *rep = d2g_redis_argv(r, argc, argv, NULL, err, errlen);
    if (!rep)
        return -1;
    freeReplyObject(rep);
    return 0;
}

/* KEYS cursor, lease, fence; ARGV token, ttl_ms, field, value, ... 1 written, 0 refused. */
static const d2g_redis_script_t fenced_set_script = {
    "cursor_set_fenced",
    "if redis.call('GET', KEYS[3]) ~= ARGV[1] then return 0 end\n"
    "local v = redis.call('GET', KEYS[2])\n"
    "if v == false then redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])\n"
    "elseif v ~= ARGV[1] then return 0 end\n"
    "redis.call('HSET', KEYS[1], unpack(ARGV, 3))\n"
    "return 1\n",
};

int d2g_cursor_set_fenced(d2g_redis_t *r, int64_t procedure, const char *token, int64_t ttl_ms,
                          const char *const *pairs, int *written, char *err, size_t errlen) {
    char kc[256], kl[256], kf[256], ttl[24];
    const char *args[26];
    int nargs = 0;
    *written = 0;
    key(r, kc, sizeof(kc), procedure, "cursor");
    key(r, kl, sizeof(kl), procedure, "lease");
    key(r, kf, sizeof(kf), procedure, "fence");
    snprintf(ttl, sizeof(ttl), "%lld", (long long)ttl_ms);
    args[nargs++] = token;
    args[nargs++] = ttl;
    for (int i = 0; pairs[i] && nargs < 24; i += 2) {
        args[nargs++] = pairs[i];
        args[nargs++] = pairs[i + 1];
    }
    if (nargs == 2)
        return d2g_err_set(err, errlen, "cursor_set_fenced: nothing to write");
    const char *keys[] = {kc, kl, kf};
    redisReply *rep = d2g_redis_eval_idempotent(r, &fenced_set_script, 3, keys, nargs, args, err, errlen);
    if (!rep)
        return -1;
    *written = rep->type == REDIS_REPLY_INTEGER && rep->integer == 1;
    freeReplyObject(rep);
    return 0;
}

static char *dup_or_null(const char *s) { return s ? d2g_strdup(s) : NULL; }

void d2g_cursor_copy(d2g_cursor_t *dst, const d2g_cursor_t *src) {
    d2g_cursor_clear(dst);
    dst->updated_since = dup_or_null(src->updated_since);
    dst->after = dup_or_null(src->after);
    dst->deleted_since = dup_or_null(src->deleted_since);
    dst->deleted_after = dup_or_null(src->deleted_after);
    dst->max_modified = dup_or_null(src->max_modified);
    dst->last_poll_ms = src->last_poll_ms;
    dst->labels_at_ms = src->labels_at_ms;
    dst->resync_started_ms = src->resync_started_ms;
    dst->resync_done_ms = src->resync_done_ms;
    dst->found = src->found;
}

int d2g_cursor_reset(d2g_redis_t *r, int64_t procedure, const char *since, char *err,
                     size_t errlen) {
    char k[256];
    key(r, k, sizeof(k), procedure, "cursor");
    const char *del[] = {"HDEL", k, "after", "last_poll_ms"};
    redisReply *rep = d2g_redis_argv(r, 4, del, NULL, err, errlen);
    if (!rep)
        return -1;
    freeReplyObject(rep);
    const char *pairs[] = {"updated_since", since ? since : D2G_CURSOR_EPOCH, NULL};
    return d2g_cursor_set(r, procedure, pairs, err, errlen);
}

int d2g_cursor_status_ok(d2g_redis_t *r, int64_t procedure, int64_t now_ms, int emitted,
                         char *err, size_t errlen) {
    char k[256], now[24], n[16];
    key(r, k, sizeof(k), procedure, "status");
    snprintf(now, sizeof(now), "%" PRId64, now_ms);
    snprintf(n, sizeof(n), "%d", emitted);
    const char *hset[] = {"HSET", k, "last_success_ms", now, "failed", "0"};
    const char *incr[] = {"HINCRBY", k, "emitted", n};
    redisReply *rep = d2g_redis_argv(r, 6, hset, NULL, err, errlen);
    if (!rep)
        return -1;
    freeReplyObject(rep);
    if (emitted > 0) {
        if (!(rep = d2g_redis_argv(r, 4, incr, NULL, err, errlen)))
            return -1;
        freeReplyObject(rep);
    }
    return 0;
}

int d2g_cursor_status_error(d2g_redis_t *r, int64_t procedure, int64_t now_ms, int failed,
                            const char *reason, char *err, size_t errlen) {
    char k[256], now[24];
    key(r, k, sizeof(k), procedure, "status");
    snprintf(now, sizeof(now), "%" PRId64, now_ms);
    const char *argv[] = {"HSET", k, "last_error", reason, "last_error_ms", now,
                          "failed", failed ? "1" : "0"};
    redisReply *rep = d2g_redis_argv(r, 8, argv, NULL, err, errlen);
    if (!rep)
        return -1;
    freeReplyObject(rep);
    return 0;
}
