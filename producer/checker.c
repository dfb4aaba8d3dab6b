/* checker.c - the batched multi-procedure check, see checker.h. */
#include "checker.h"

#include "ds2grist/alloc.h"
#include "ds2grist/err.h"
#include "ds2grist/keys.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One alias; %zu is the procedure's index in the batch. */
#define ALIAS_FMT                                                                              \
    "  p%zu: demarche(number: $n%zu) {\n"                                                      \
    "    number\n"                                                                             \
    "    activeRevision { id }\n"                                                              \
    "    dossiers(first: 1, after: $a%zu, updatedSince: $u%zu) { nodes { number } }\n"       \
    "    deletedDossiers(first: 1, after: $b%zu, deletedSince: $d%zu) { nodes { number } }\n"
#define VARS_FMT "$n%zu: Int!, $a%zu: String, $u%zu: ISO8601DateTime, $b%zu: String, " \
                 "$d%zu: ISO8601DateTime"

/* The label page, for a procedure whose label pass is due. */
#define LABELS_FIELD \
    "    labels: dossiers(first: 100) { pageInfo { hasNextPage } nodes { number labels { id } } }\n"

char *d2g_checker_query(const int *with_labels, size_t n) {
    size_t cap = 64 + n * (sizeof(ALIAS_FMT) + sizeof(VARS_FMT) + sizeof(LABELS_FIELD) + 64), len = 0;
    char *q = d2g_malloc(cap);
    len += (size_t)snprintf(q + len, cap - len, "query " D2G_CHECK_OPERATION "(");
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(q + len, cap - len, "%s" VARS_FMT, i ? ", " : "", i, i, i, i, i);
    len += (size_t)snprintf(q + len, cap - len, ") {\n");
    for (size_t i = 0; i < n; i++) {
        len += (size_t)snprintf(q + len, cap - len, ALIAS_FMT, i, i, i, i, i, i);
        if (with_labels && with_labels[i])
            len += (size_t)snprintf(q + len, cap - len, LABELS_FIELD);
        len += (size_t)snprintf(q + len, cap - len, "  }\n");
    }
    snprintf(q + len, cap - len, "}\n");
    return q;
}

static json_t *str_or_null(const char *s) { return s && *s ? json_string(s) : json_null(); }

json_t *d2g_checker_variables(const d2g_check_item_t *items, size_t n) {
    json_t *v = json_object();
    char k[32];
    for (size_t i = 0; i < n; i++) {
        snprintf(k, sizeof(k), "n%zu", i);
        json_object_set_new(v, k, json_integer((json_int_t)items[i].number));
        snprintf(k, sizeof(k), "a%zu", i);
        json_object_set_new(v, k, str_or_null(items[i].after));
        snprintf(k, sizeof(k), "u%zu", i);
        json_object_set_new(v, k, str_or_null(items[i].updated_since));
        snprintf(k, sizeof(k), "b%zu", i);
        json_object_set_new(v, k, str_or_null(items[i].deleted_after));
        snprintf(k, sizeof(k), "d%zu", i);
        json_object_set_new(v, k, str_or_null(items[i].deleted_since));
    }
    return v;
}

/* The batch index of an alias "p<i>", or -1. */
static long alias_index(const char *s, size_t n) {
    if (!s || s[0] != 'p' || s[1] < '0' || s[1] > '9')
        return -1;
    char *end;
    long i = strtol(s + 1, &end, 10);
    return *end || i < 0 || (size_t)i >= n ? -1 : i;
}

static int has_nodes(json_t *demarche, const char *field, int *ok) {
    json_t *nodes = json_object_get(json_object_get(demarche, field), "nodes");
    if (!json_is_array(nodes))
        *ok = 0;
    return json_array_size(nodes) > 0;
}

int d2g_checker_parse(json_t *data, json_t *errors, size_t n, d2g_check_outcome_t *out,
                      char *err, size_t errlen) {
    size_t i;
    json_t *e;
    /* Errors first: one without one of our aliases at the head of its path fails it all. */
    json_array_foreach(errors, i, e) {
        json_t *path = json_object_get(e, "path");
        if (alias_index(json_string_value(json_array_get(path, 0)), n) < 0) {
            const char *msg = json_string_value(json_object_get(e, "message"));
            return d2g_err_set(err, errlen, "check failed: %s", msg ? msg : "(no message)");
        }
    }
    if (!json_is_object(data)) {
        if (json_array_size(errors) == 0)
            return d2g_err_set(err, errlen, "check answer without data");
        for (i = 0; i < n; i++)
            out[i] = D2G_CHECK_UNKNOWN;
    }
    for (i = 0; json_is_object(data) && i < n; i++) {
        char k[24];
        snprintf(k, sizeof(k), "p%zu", i);
        json_t *d = json_object_get(data, k);
        int ok = json_is_object(d);
        int changed = ok && has_nodes(d, "dossiers", &ok);
        int deleted = ok && has_nodes(d, "deletedDossiers", &ok);
        out[i] = !ok ? D2G_CHECK_FAILED : changed ? D2G_CHECK_CHANGED
               : deleted ? D2G_CHECK_DELETED : D2G_CHECK_QUIET;
    }
    json_array_foreach(errors, i, e) {
        long at = alias_index(json_string_value(json_array_get(json_object_get(e, "path"), 0)), n);
        out[at] = D2G_CHECK_FAILED; /* at >= 0: checked above */
    }
    return 0;
}

json_t *d2g_checker_label_page(json_t *data, size_t i) {
    char k[24];
    snprintf(k, sizeof(k), "p%zu", i);
    json_t *conn = json_object_get(json_object_get(data, k), "labels");
    json_t *nodes = json_object_get(conn, "nodes");
    json_t *info = json_object_get(conn, "pageInfo");
    if (!json_is_array(nodes) || !json_is_false(json_object_get(info, "hasNextPage")))
        return NULL;
    return nodes;
}

char *d2g_checker_label_digest(json_t *labels) {
    size_t n = json_array_size(labels), len = 1;
    const char **ids = d2g_calloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        ids[i] = json_string_value(json_object_get(json_array_get(labels, i), "id"));
        if (!ids[i])
            ids[i] = "?";
        len += strlen(ids[i]) + 1;
    }
    for (size_t i = 1; i < n; i++) /* insertion sort: a dossier has few labels */
        for (size_t j = i; j > 0 && strcmp(ids[j - 1], ids[j]) > 0; j--) {
            const char *t = ids[j];
            ids[j] = ids[j - 1];
            ids[j - 1] = t;
        }
    char *s = d2g_malloc(len);
    s[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (i)
            strcat(s, ",");
        strcat(s, ids[i]);
    }
    free(ids);
    return s;
}

int d2g_checker_labels_same(d2g_redis_t *r, const int64_t *numbers, json_t *const *pages, size_t n,
                            int *same, char *err, size_t errlen) {
    redisContext *c = d2g_redis_context(r);
    char k[D2G_KEYLEN];
    if (!c)
        return d2g_err_set(err, errlen, "redis: not connected");
    size_t sent = 0;
    for (size_t i = 0; i < n; i++) {
        size_t m = json_array_size(pages[i]);
        same[i] = 1;
        if (m == 0)
            continue; /* no dossier: nothing to compare */
        const char **argv = d2g_calloc(m + 2, sizeof(char *));
        char (*nums)[24] = d2g_calloc(m, 24);
        d2g_keys_proc(d2g_redis_namespace(r), k, sizeof(k), numbers[i], "labels");
        argv[0] = "HMGET";
        argv[1] = k;
        for (size_t j = 0; j < m; j++) {
            snprintf(nums[j], 24, "%" JSON_INTEGER_FORMAT,
                     json_integer_value(json_object_get(json_array_get(pages[i], j), "number")));
            argv[j + 2] = nums[j];
        }
        redisAppendCommandArgv(c, (int)m + 2, argv, NULL);
        sent++;
        free(argv);
        free(nums);
    }
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        size_t m = json_array_size(pages[i]);
        if (m == 0)
            continue;
        void *v = NULL;
        if (redisGetReply(c, &v) != REDIS_OK)
            return d2g_err_set(err, errlen, "redis: %s", c->errstr[0] ? c->errstr : "no reply");
        redisReply *rep = v;
        if (rep->type != REDIS_REPLY_ARRAY || rep->elements != m) {
            same[i] = 0; /* unreadable: the full label pass decides */
            if (rep->type == REDIS_REPLY_ERROR && !rc)
                rc = d2g_err_set(err, errlen, "redis: %s", rep->str);
        } else {
            for (size_t j = 0; j < m && same[i]; j++) {
                char *d = d2g_checker_label_digest(
                    json_object_get(json_array_get(pages[i], j), "labels"));
                redisReply *old = rep->element[j];
                same[i] = old->type == REDIS_REPLY_STRING && strcmp(old->str, d) == 0;
                free(d);
            }
        }
        freeReplyObject(rep);
    }
    (void)sent;
    return rc;
}

int d2g_checker_load_cursors(d2g_redis_t *r, const int64_t *numbers, size_t n,
                             d2g_cursor_t *cursors, char *err, size_t errlen) {
    redisContext *c = d2g_redis_context(r);
    char k[D2G_KEYLEN];
    if (!c) { /* broken: the next plain command reconnects */
        redisReply *rep = d2g_redis_cmd(r, err, errlen, "PING");
        if (!rep)
            return -1;
        freeReplyObject(rep);
        if (!(c = d2g_redis_context(r)))
            return d2g_err_set(err, errlen, "redis: not connected");
    }
    for (size_t i = 0; i < n; i++) {
        d2g_keys_proc(d2g_redis_namespace(r), k, sizeof(k), numbers[i], "cursor");
        const char *argv[] = {"HMGET", k, "updated_since", "after", "deleted_since",
                              "deleted_after", "max_modified", "last_poll_ms", "labels_at_ms",
                              "resync_started_ms", "resync_done_ms"};
        redisAppendCommandArgv(c, 11, argv, NULL);
    }
    int rc = 0;
    memset(cursors, 0, n * sizeof(*cursors));
    for (size_t i = 0; i < n; i++) {
        void *v = NULL;
        if (redisGetReply(c, &v) != REDIS_OK) {
            /* The connection is broken: the replies still owed are lost with it. */
            for (size_t j = 0; j < i; j++)
                d2g_cursor_clear(&cursors[j]);
            return d2g_err_set(err, errlen, "redis: %s", c->errstr[0] ? c->errstr : "no reply");
        }
        redisReply *rep = v;
        if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 9) {
            if (!rc)
                rc = d2g_err_set(err, errlen, "redis: unexpected HMGET reply for a cursor%s%s",
                                 rep->type == REDIS_REPLY_ERROR ? ": " : "",
                                 rep->type == REDIS_REPLY_ERROR ? rep->str : "");
            freeReplyObject(rep);
            continue;
        }
        d2g_cursor_t *cu = &cursors[i];
        char **dst[] = {&cu->updated_since, &cu->after, &cu->deleted_since, &cu->deleted_after,
                        &cu->max_modified};
        for (int f = 0; f < 5; f++)
            if (rep->element[f]->type == REDIS_REPLY_STRING && rep->element[f]->len > 0)
                *dst[f] = d2g_strdup(rep->element[f]->str);
        if (rep->element[5]->type == REDIS_REPLY_STRING)
            cu->last_poll_ms = strtoll(rep->element[5]->str, NULL, 10);
        if (rep->element[6]->type == REDIS_REPLY_STRING)
            cu->labels_at_ms = strtoll(rep->element[6]->str, NULL, 10);
        if (rep->element[7]->type == REDIS_REPLY_STRING)
            cu->resync_started_ms = strtoll(rep->element[7]->str, NULL, 10);
        if (rep->element[8]->type == REDIS_REPLY_STRING)
            cu->resync_done_ms = strtoll(rep->element[8]->str, NULL, 10);
        if (!cu->updated_since)
            cu->updated_since = d2g_strdup(D2G_CURSOR_EPOCH);
        freeReplyObject(rep);
    }
    if (rc)
        for (size_t i = 0; i < n; i++)
            d2g_cursor_clear(&cursors[i]);
    return rc;
}

int d2g_checker_mark_polled(d2g_redis_t *r, const int64_t *numbers, const int *labels_done,
                            const int64_t *next_ms, size_t n, int64_t now_ms, char *err,
                            size_t errlen) {
    redisContext *c = d2g_redis_context(r);
    char k[D2G_KEYLEN], now[24], next[24];
    if (!c)
        return d2g_err_set(err, errlen, "redis: not connected");
    snprintf(now, sizeof(now), "%" PRId64, now_ms);
    for (size_t i = 0; i < n; i++) {
        d2g_keys_proc(d2g_redis_namespace(r), k, sizeof(k), numbers[i], "cursor");
        const char *argv[8] = {"HSET", k, "last_poll_ms", now};
        int argc = 4;
        if (next_ms) {
            snprintf(next, sizeof(next), "%" PRId64, next_ms[i]);
            argv[argc++] = "next_poll_ms";
            argv[argc++] = next;
        }
        if (labels_done && labels_done[i]) {
            argv[argc++] = "labels_at_ms";
            argv[argc++] = now;
        }
        redisAppendCommandArgv(c, argc, argv, NULL); /* copies its arguments */
    }
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        void *v = NULL;
        if (redisGetReply(c, &v) != REDIS_OK)
            return d2g_err_set(err, errlen, "redis: %s", c->errstr[0] ? c->errstr : "no reply");
        redisReply *rep = v;
        if (rep->type == REDIS_REPLY_ERROR && !rc)
            rc = d2g_err_set(err, errlen, "redis: %s", rep->str);
        freeReplyObject(rep);
    }
    return rc;
}

int d2g_checker_set_ttl(d2g_redis_t *r, const int64_t *numbers, size_t n, int ttl_s, char *err,
                        size_t errlen) {
    static const char *const names[] = {"cursor", "status", "labels", "revision", "fence"};
    const size_t per = sizeof(names) / sizeof(names[0]);
    redisContext *c = d2g_redis_context(r);
    char k[D2G_KEYLEN], ttl[24];
    if (!c)
        return d2g_err_set(err, errlen, "redis: not connected");
    snprintf(ttl, sizeof(ttl), "%d", ttl_s);
    int rc = 0;
    /* Pipelined, a thousand procedures per round trip. */
    for (size_t from = 0; from < n && !rc; from += 1000) {
        size_t to = from + 1000 < n ? from + 1000 : n;
        for (size_t i = from; i < to; i++)
            for (size_t j = 0; j < per; j++) {
                d2g_keys_proc(d2g_redis_namespace(r), k, sizeof(k), numbers[i], names[j]);
                const char *argv[] = {ttl_s > 0 ? "EXPIRE" : "PERSIST", k, ttl};
                redisAppendCommandArgv(c, ttl_s > 0 ? 3 : 2, argv, NULL);
            }
        for (size_t i = from; i < to; i++)
            for (size_t j = 0; j < per; j++) {
                void *v = NULL;
                if (redisGetReply(c, &v) != REDIS_OK)
                    return d2g_err_set(err, errlen, "redis: %s",
                                       c->errstr[0] ? c->errstr : "no reply");
                redisReply *rep = v;
                if (rep->type == REDIS_REPLY_ERROR && !rc)
                    rc = d2g_err_set(err, errlen, "redis: %s", rep->str);
                freeReplyObject(rep);
            }
    }
    return rc;
}

const char *d2g_checker_revision(json_t *data, size_t i) {
    char k[24];
    snprintf(k, sizeof(k), "p%zu", i);
    return json_string_value(json_object_get(json_object_get(json_object_get(data, k), "activeRevision"), "id"));
}
