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

/* "c:<item key>" */
typedef char cells_field_t[sizeof(((d2g_item_t *)0)->key) + 2];

static const char *cells_field(cells_field_t f, const d2g_item_t *it) {
    snprintf(f, sizeof(cells_field_t), "c:%s", it->key);
    return f;
}

void d2g_version_clear(d2g_version_t *v) {
    d2g_cells_clear(&v->cells);
    memset(v, 0, sizeof(*v));
}

int d2g_versions_check(d2g_redis_t *r, const char *key, d2g_item_t *const *items, size_t n,
                       d2g_version_t *out, char *err, size_t errlen) {
    size_t argc = 2;
    const char **argv = d2g_malloc((2 * n + 2) * sizeof(char *));
    size_t *which = d2g_malloc((n + 1) * sizeof(size_t));
    cells_field_t *fields = d2g_malloc((n + 1) * sizeof(cells_field_t));
    argv[0] = "HMGET";
    argv[1] = key;
    for (size_t i = 0; i < n; i++) {
        d2g_version_clear(&out[i]);
        if (items[i]) {
            which[(argc - 2) / 2] = i;
            argv[argc++] = items[i]->key;
            argv[argc++] = cells_field(fields[i], items[i]);
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
            for (size_t k = 0; k + 1 < rep->elements; k += 2) {
                redisReply *e = rep->element[k], *c = rep->element[k + 1];
                if (e->type != REDIS_REPLY_STRING || e->len < 2)
                    continue;
                d2g_version_t *v = &out[which[k / 2]];
                /* Digests that do not decode are no digests: the rows are written in full. */
                if (c->type == REDIS_REPLY_STRING)
                    d2g_cells_decode(c->str, c->len, &v->cells);
                char *end = NULL;
                int64_t have = strtoll(e->str + 1, &end, 10);
                int64_t mine = d2g_versions_of(&items[which[k / 2]]->env);
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
    free(fields);
    return rc;
}

int d2g_versions_record(d2g_redis_t *r, const char *key, d2g_item_t *const *items, size_t n,
                        const uint64_t *digests, const d2g_cells_t *cells, char *err, size_t errlen) {
    const char **argv = d2g_malloc((4 * n + 2) * sizeof(char *));
    size_t *lens = d2g_malloc((4 * n + 2) * sizeof(size_t));
    char (*vals)[48] = d2g_malloc((n + 1) * sizeof(*vals));
    cells_field_t *fields = d2g_malloc((n + 1) * sizeof(cells_field_t));
    char **blobs = d2g_calloc(n + 1, sizeof(char *));
    size_t argc = 2;
    argv[0] = "HSET";
    argv[1] = key;
    lens[0] = 4;
    lens[1] = strlen(key);
    for (size_t i = 0; i < n; i++) {
        if (!items[i])
            continue;
        int64_t v = d2g_versions_of(&items[i]->env);
        if (v < 0)
            continue;
        snprintf(vals[i], sizeof(vals[i]), "%c%" PRId64 ":%" PRIx64,
                 items[i]->env.kind == D2G_ENVELOPE_DELETE ? 'd' : 'u', v, digests ? digests[i] : 0);
        argv[argc] = items[i]->key;
        lens[argc] = strlen(items[i]->key);
        argc++;
        argv[argc] = vals[i];
        lens[argc] = strlen(vals[i]);
        argc++;
        argv[argc] = cells_field(fields[i], items[i]);
        lens[argc] = strlen(fields[i]);
        argc++;
        size_t blen = 0;
        static const d2g_cells_t none = {0};
        blobs[i] = d2g_cells_encode(cells ? &cells[i] : &none, &blen);
        argv[argc] = blobs[i];
        lens[argc] = blen;
        argc++;
    }
    int rc = 0;
    if (argc > 2) {
        redisReply *rep = d2g_redis_argv(r, (int)argc, argv, lens, err, errlen);
        if (!rep)
            rc = -1;
        else
            freeReplyObject(rep);
    }
    for (size_t i = 0; i < n; i++)
        free(blobs[i]);
    free(blobs);
    free(fields);
    free(lens);
    free(argv);
    free(vals);
    return rc;
}

int d2g_versions_forget_cells(d2g_redis_t *r, const char *key, d2g_item_t *const *items, size_t n,
                              const int *forget, char *err, size_t errlen) {
    const char **argv = d2g_malloc((n + 2) * sizeof(char *));
    cells_field_t *fields = d2g_malloc((n + 1) * sizeof(cells_field_t));
    size_t argc = 2;
    argv[0] = "HDEL";
    argv[1] = key;
    for (size_t i = 0; i < n; i++)
        if (items[i] && forget[i])
            argv[argc++] = cells_field(fields[i], items[i]);
    int rc = 0;
    if (argc > 2) {
        redisReply *rep = d2g_redis_argv(r, (int)argc, argv, NULL, err, errlen);
        if (!rep)
            rc = -1;
        else
            freeReplyObject(rep);
    }
    free(fields);
    free(argv);
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
