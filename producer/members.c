/* members.c - live producer replicas in Redis, see members.h. */
#include "members.h"

#include "ds2grist/alloc.h"
#include "ds2grist/err.h"
#include "ds2grist/keys.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* KEYS[1] set; ARGV self, ttl_ms. Returns the live ids. */
static const d2g_redis_script_t beat_script = {
    "members_beat",
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local ttl = tonumber(ARGV[2])\n"
    "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)\n"
    "redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])\n"
    "redis.call('PEXPIRE', KEYS[1], ttl * 2)\n"
    "return redis.call('ZRANGE', KEYS[1], 0, -1)\n",
};

void d2g_members_clear(d2g_members_t *m) {
    for (size_t i = 0; i < m->n; i++)
        free(m->ids[i]);
    free(m->ids);
    m->ids = NULL;
    m->n = 0;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int d2g_members_beat(d2g_redis_t *r, const char *self, int64_t ttl_ms, d2g_members_t *out,
                     char *err, size_t errlen) {
    char k[D2G_KEYLEN], ttl[24];
    d2g_keys_fleet(d2g_redis_namespace(r), k, sizeof(k), "producers");
    snprintf(ttl, sizeof(ttl), "%lld", (long long)ttl_ms);
    const char *keys[] = {k}, *args[] = {self, ttl};
    redisReply *rep = d2g_redis_eval(r, &beat_script, 1, keys, 2, args, err, errlen);
    if (!rep)
        return -1;
    if (rep->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(rep);
        return d2g_err_set(err, errlen, "redis script members_beat: unexpected reply");
    }
    d2g_members_clear(out);
    out->ids = d2g_calloc(rep->elements + 1, sizeof(char *));
    for (size_t i = 0; i < rep->elements; i++)
        if (rep->element[i]->type == REDIS_REPLY_STRING)
            out->ids[out->n++] = d2g_strdup(rep->element[i]->str);
    freeReplyObject(rep);
    qsort(out->ids, out->n, sizeof(char *), cmp_str);
    return 0;
}

int d2g_members_leave(d2g_redis_t *r, const char *self, char *err, size_t errlen) {
    char k[D2G_KEYLEN];
    d2g_keys_fleet(d2g_redis_namespace(r), k, sizeof(k), "producers");
    const char *argv[] = {"ZREM", k, self};
    redisReply *rep = d2g_redis_argv(r, 3, argv, NULL, err, errlen);
    if (!rep)
        return -1;
    freeReplyObject(rep);
    return 0;
}

int d2g_members_equal(const d2g_members_t *a, const d2g_members_t *b) {
    if (a->n != b->n)
        return 0;
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->ids[i], b->ids[i]))
            return 0;
    return 1;
}
