/* versions.c - the per-dossier version guard in Redis, see versions.h. */
#include "versions.h"

#include "ds2grist/alloc.h"
#include "ds2grist/clock.h"
#include "ds2grist/err.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int64_t d2g_versions_of(const d2g_envelope_t *env) {
    double epoch;
    int is_int;
    if (!env->modified || d2g_clock_parse_iso(env->modified, &epoch, &is_int))
        return -1;
    return (int64_t)(epoch * 1000.0 + (epoch >= 0 ? 0.5 : -0.5));
}

int d2g_versions_check(d2g_redis_t *r, const char *key, d2g_item_t *const *items, size_t n,
                       d2g_version_t *out, char *err, size_t errlen) {
    size_t argc = 2;
    const char **argv = d2g_malloc((n + 2) * sizeof(char *));
    size_t *which = d2g_malloc((n + 1) * sizeof(size_t));
    argv[0] = "HMGET";
    argv[1] = key;
    for (size_t i = 0; i < n; i++) {
        memset(&out[i], 0, sizeof(out[i]));
        if (items[i]) {
            which[argc - 2] = i;
            argv[argc++] = items[i]->key;
        }
    }
    int rc = 0;
    if (argc > 2) {
        redisReply *rep = d2g_redis_argv(r, (int)argc, argv, NULL, err, errlen);
        if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != argc - 2) {
            if (rep)
                d2g_err_set(err, errlen, "HMGET %s: unexpected answer", key);
            rc = -1;
        } else {
            for (size_t k = 0; k < rep->elements; k++) {
                redisReply *e = rep->element[k];
                if (e->type != REDIS_REPLY_STRING || e->len < 2)
                    continue;
                d2g_version_t *v = &out[which[k]];
                char *end = NULL;
                int64_t have = strtoll(e->str + 1, &end, 10);
                int64_t mine = d2g_versions_of(&items[which[k]]->env);
                v->known = 1;
                v->stale = mine >= 0 && have > mine;
                if (end && *end == ':')
                    v->digest = strtoull(end + 1, NULL, 16);
            }
        }
        if (rep)
            freeReplyObject(rep);
    }
    free(argv);
    free(which);
    return rc;
}

int d2g_versions_record(d2g_redis_t *r, const char *key, d2g_item_t *const *items, size_t n,
                        const uint64_t *digests, char *err, size_t errlen) {
    const char **argv = d2g_malloc((2 * n + 2) * sizeof(char *));
    char (*vals)[48] = d2g_malloc((n + 1) * sizeof(*vals));
    size_t argc = 2;
    argv[0] = "HSET";
    argv[1] = key;
    for (size_t i = 0; i < n; i++) {
        if (!items[i])
            continue;
        int64_t v = d2g_versions_of(&items[i]->env);
        if (v < 0)
            continue;
        snprintf(vals[i], sizeof(vals[i]), "%c%" PRId64 ":%" PRIx64,
                 items[i]->env.kind == D2G_ENVELOPE_DELETE ? 'd' : 'u', v, digests ? digests[i] : 0);
        argv[argc++] = items[i]->key;
        argv[argc++] = vals[i];
    }
    int rc = 0;
    if (argc > 2) {
        redisReply *rep = d2g_redis_argv(r, (int)argc, argv, NULL, err, errlen);
        if (!rep)
            rc = -1;
        else
            freeReplyObject(rep);
    }
    free(argv);
    free(vals);
    return rc;
}

static char *table_field(const char *table) {
    size_t len = strlen(table) + 3;
    char *f = d2g_malloc(len);
    snprintf(f, len, "t:%s", table);
    return f;
}

int d2g_versions_fresh_tables(d2g_redis_t *r, const char *key, const char *const *tables, size_t n,
                              int *fresh, char *err, size_t errlen) {
    const char **argv = d2g_malloc((n + 2) * sizeof(char *));
    char **fields = d2g_calloc(n + 1, sizeof(char *));
    argv[0] = "HMGET";
    argv[1] = key;
    for (size_t i = 0; i < n; i++)
        argv[2 + i] = fields[i] = table_field(tables[i]);
    int rc = 0;
    for (size_t i = 0; i < n; i++)
        fresh[i] = 0;
    if (n) {
        redisReply *rep = d2g_redis_argv(r, (int)(n + 2), argv, NULL, err, errlen);
        if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != n)
            rc = -1;
        else
            for (size_t i = 0; i < n; i++)
                fresh[i] = rep->element[i]->type == REDIS_REPLY_STRING;
        if (rep)
            freeReplyObject(rep);
    }
    for (size_t i = 0; i < n; i++)
        free(fields[i]);
    free(fields);
    free(argv);
    return rc;
}

int d2g_versions_mark_tables(d2g_redis_t *r, const char *key, const char *const *tables, size_t n,
                             char *err, size_t errlen) {
    const char **argv = d2g_malloc((2 * n + 2) * sizeof(char *));
    char **fields = d2g_calloc(n + 1, sizeof(char *));
    argv[0] = "HSET";
    argv[1] = key;
    for (size_t i = 0; i < n; i++) {
        argv[2 + 2 * i] = fields[i] = table_field(tables[i]);
        argv[3 + 2 * i] = "1";
    }
    int rc = 0;
    if (n) {
        redisReply *rep = d2g_redis_argv(r, (int)(2 * n + 2), argv, NULL, err, errlen);
        if (!rep)
            rc = -1;
        else
            freeReplyObject(rep);
    }
    for (size_t i = 0; i < n; i++)
        free(fields[i]);
    free(fields);
    free(argv);
    return rc;
}
