/*
 * status.c - `ds2grist status`: where every procedure stands (cursor, last
 * polls, last error, lease), how busy every Grist document is (permits in
 * use) and how many messages wait for the workers (consumer lag).
 *
 * Redis is read in three round trips whatever the number of procedures
 * (TIME, then one pipelined batch per 1,000 commands: HMGET of the cursor
 * and status hashes, GET and PTTL of the lease, ZCOUNT of the live permits,
 * which is what d2g_permits_in_use counts). The lag comes from a consumer
 * handle with the workers' group.id that never subscribes. See operator.h.
 */
#include "operator.h"

#include "ds2grist/text.h"
#include "ds2grist/keys.h"
#include "ds2grist/alloc.h"
#include "ds2grist/redis.h"

#include "ds2grist/clock.h"
#include "ds2grist/err.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* Commands per procedure in the batch, in this order. */
enum { Q_CURSOR, Q_STATUS, Q_LEASE, Q_LEASE_TTL, Q_PER_PROC };

static const char *const cursor_fields[] = {"updated_since", "after", "deleted_since",
                                            "max_modified", "last_poll_ms"};
static const char *const status_fields[] = {"last_success_ms", "last_error", "last_error_ms",
                                            "failed", "emitted"};

/* Element i of an HMGET reply as a string, or NULL. */
static const char *field(const redisReply *rep, size_t i) {
    if (!rep || rep->type != REDIS_REPLY_ARRAY || i >= rep->elements)
        return NULL;
    const redisReply *e = rep->element[i];
    return e->type == REDIS_REPLY_STRING && e->len > 0 ? e->str : NULL;
}

static int64_t field_ms(const redisReply *rep, size_t i) {
    const char *s = field(rep, i);
    return s ? strtoll(s, NULL, 10) : 0;
}

/* Time and age, "2026-03-14 14:06:26Z (3m12s ago)", into buf. */
static void when(int64_t ms, int64_t now, char *buf, size_t buflen) {
    char t[40], age[32];
    if (ms <= 0) {
        snprintf(buf, buflen, "never");
        return;
    }
    d2g_op_format_time(ms, t, sizeof(t));
    d2g_op_format_age(now - ms >= 0 ? now - ms : 0, age, sizeof(age));
    snprintf(buf, buflen, "%s (%s ago)", t, age);
}

static json_t *json_time(int64_t ms) {
    char buf[D2G_TIME_BUFLEN];
    if (ms <= 0)
        return json_null();
    d2g_clock_format_ms(ms, buf);
    return json_string(buf);
}

static json_t *json_str(const char *s) { return d2g_text_json(s); }

/* The workers' lag on the dossier topic: {"topic", "group", "total",
 * "partitions": [...]}, or NULL with err. */
static json_t *consumer_lag(const d2g_config_t *cfg, char *err, size_t errlen) {
    rd_kafka_t *rk = d2g_op_consumer_new(cfg, cfg->kafka.consumer_group, err, errlen);
    if (!rk)
        return NULL;
    json_t *out = NULL;
    rd_kafka_topic_partition_list_t *committed = NULL;
    int n = d2g_op_partition_count(rk, cfg->kafka.topic, err, errlen);
    if (n < 0 || !(committed = d2g_op_committed(rk, cfg->kafka.topic, n, err, errlen)))
        goto done;
    json_t *parts = json_array();
    int64_t total = 0;
    for (int i = 0; i < committed->cnt; i++) {
        const rd_kafka_topic_partition_t *tp = &committed->elems[i];
        int64_t low, high;
        if (d2g_op_watermarks(rk, cfg->kafka.topic, (int)tp->partition, &low, &high, err, errlen)) {
            json_decref(parts);
            goto done;
        }
        /* No commit yet: the group starts from the beginning (auto.offset.reset earliest). */
        int64_t from = tp->offset >= 0 ? (tp->offset > low ? tp->offset : low) : low;
        int64_t lag = high > from ? high - from : 0;
        total += lag;
        json_array_append_new(parts, json_pack("{s:i, s:o, s:I, s:I, s:I}", "partition",
                                               (int)tp->partition, "committed",
                                               tp->offset >= 0 ? json_integer(tp->offset)
                                                               : json_null(),
                                               "low", (json_int_t)low, "high", (json_int_t)high,
                                               "lag", (json_int_t)lag));
    }
    out = json_pack("{s:s, s:s, s:I, s:o}", "topic", cfg->kafka.topic, "group",
                    cfg->kafka.consumer_group, "total", (json_int_t)total, "partitions", parts);
done:
    if (committed)
        rd_kafka_topic_partition_list_destroy(committed);
    d2g_op_consumer_close(rk);
    return out;
}

static void print_text(const d2g_procedure_t *const *procs, size_t n, const d2g_op_batch_t *b,
                       const d2g_op_doc_t *docs, size_t n_docs, const int64_t *in_use,
                       const int64_t *recent429, json_t *const *lanes, const json_t *lag,
                       const char *lag_err, int64_t now) {
    d2g_op_table_t t;
    char num[24], cursor[96], poll[80], success[80], emitted[24], lease[160], error[200], a[80],
        b1[24], b2[24];
    const char *ph[] = {"PROCEDURE", "TOKEN", "DOCUMENT", "CURSOR", "LAST POLL", "LAST SUCCESS",
                        "EMITTED", "STATE", "LEASE", "LAST ERROR"};
    d2g_op_table_init(&t, 10, ph);
    size_t failed = 0;
    for (size_t i = 0; i < n; i++) {
        const redisReply *cur = b->replies[1 + i * Q_PER_PROC + Q_CURSOR];
        const redisReply *st = b->replies[1 + i * Q_PER_PROC + Q_STATUS];
        const redisReply *le = b->replies[1 + i * Q_PER_PROC + Q_LEASE];
        const redisReply *ttl = b->replies[1 + i * Q_PER_PROC + Q_LEASE_TTL];
        char doc[300];
        snprintf(num, sizeof(num), "%" PRId64, procs[i]->number);
        snprintf(doc, sizeof(doc), "%s/%s", procs[i]->grist_server->name, procs[i]->document);
        const char *since = field(cur, 0);
        snprintf(cursor, sizeof(cursor), "%s%s", since ? since : "(new)",
                 field(cur, 1) ? " +after" : "");
        when(field_ms(cur, 4), now, poll, sizeof(poll));
        when(field_ms(st, 0), now, success, sizeof(success));
        snprintf(emitted, sizeof(emitted), "%s", field(st, 4) ? field(st, 4) : "0");
        int is_failed = field(st, 3) && !strcmp(field(st, 3), "1");
        failed += is_failed;
        if (le && le->type == REDIS_REPLY_STRING) {
            d2g_op_format_age(ttl && ttl->type == REDIS_REPLY_INTEGER ? ttl->integer : -1, a,
                              sizeof(a));
            snprintf(lease, sizeof(lease), "%s (%s left)", le->str, a);
        } else {
            snprintf(lease, sizeof(lease), "-");
        }
        if (field(st, 1)) {
            char msg[120], age[32];
            d2g_op_shorten(field(st, 1), 60, msg, sizeof(msg));
            int64_t at = field_ms(st, 2);
            d2g_op_format_age(at > 0 ? now - at : -1, age, sizeof(age));
            snprintf(error, sizeof(error), "%s ago: %s", age, msg);
        } else {
            snprintf(error, sizeof(error), "-");
        }
        const char *row[] = {num, procs[i]->ds_token->name, doc, cursor, poll, success, emitted,
                             is_failed ? "FAILED" : field(st, 0) ? "ok" : "not polled yet",
                             lease, error};
        d2g_op_table_add(&t, row);
    }
    printf("Procedures (%zu, %zu failed)\n", n, failed);
    d2g_op_table_print(&t, stdout);
    d2g_op_table_free(&t);

    const char *dh[] = {"SERVER", "DOCUMENT", "PERMITS IN USE", "LIMIT", "429s (1 h)", "PROCEDURES"};
    d2g_op_table_init(&t, 6, dh);
    for (size_t i = 0; i < n_docs; i++) {
        char b3[24];
        snprintf(b1, sizeof(b1), "%" PRId64, in_use[i]);
        snprintf(b2, sizeof(b2), "%d", docs[i].permits);
        snprintf(b3, sizeof(b3), "%" PRId64, recent429[i]);
        snprintf(num, sizeof(num), "%zu", docs[i].n_procedures);
        const char *row[] = {docs[i].srv->name, docs[i].document, in_use[i] >= 0 ? b1 : "?", b2,
                             recent429[i] >= 0 ? b3 : "?", num};
        d2g_op_table_add(&t, row);
    }
    printf("\nDocuments (%zu)\n", n_docs);
    d2g_op_table_print(&t, stdout);
    d2g_op_table_free(&t);

    /* Documents whose lane is not active in some worker: why, since when. */
    const char *lh[] = {"SERVER", "DOCUMENT", "WORKER", "STATE", "REASON", "SINCE", "FAILURES", "LAST ERROR"};
    d2g_op_table_init(&t, 8, lh);
    size_t troubled = 0;
    for (size_t i = 0; i < n_docs; i++) {
        size_t k;
        json_t *l;
        json_array_foreach(lanes[i], k, l) {
            char fails[24];
            snprintf(fails, sizeof(fails), "%" JSON_INTEGER_FORMAT, json_integer_value(json_object_get(l, "failures")));
            const char *row[] = {docs[i].srv->name, docs[i].document,
                                 json_string_value(json_object_get(l, "worker")),
                                 json_string_value(json_object_get(l, "state")),
                                 json_string_value(json_object_get(l, "reason")),
                                 json_string_value(json_object_get(l, "since")), fails,
                                 json_string_value(json_object_get(l, "error"))};
            for (int c = 0; c < 8; c++)
                if (!row[c])
                    row[c] = "";
            d2g_op_table_add(&t, row);
            troubled++;
        }
    }
    if (troubled) {
        printf("\nDocuments in trouble (%zu lanes not active)\n", troubled);
        d2g_op_table_print(&t, stdout);
    }
    d2g_op_table_free(&t);

    if (lag)
        printf("\nMessages waiting: %" JSON_INTEGER_FORMAT " (group %s on %s, %zu partitions)\n",
               json_integer_value(json_object_get(lag, "total")),
               json_string_value(json_object_get(lag, "group")),
               json_string_value(json_object_get(lag, "topic")),
               json_array_size(json_object_get(lag, "partitions")));
    else if (lag_err)
        printf("\nMessages waiting: unknown (%s)\n", lag_err);
}

static json_t *build_json(const d2g_procedure_t *const *procs, size_t n, const d2g_op_batch_t *b,
                          const d2g_op_doc_t *docs, size_t n_docs, const int64_t *in_use,
                          const int64_t *recent429, json_t *const *lanes, json_t *lag,
                          const char *lag_err, int64_t now) {
    json_t *jp = json_array(), *jd = json_array();
    for (size_t i = 0; i < n; i++) {
        const redisReply *cur = b->replies[1 + i * Q_PER_PROC + Q_CURSOR];
        const redisReply *st = b->replies[1 + i * Q_PER_PROC + Q_STATUS];
        const redisReply *le = b->replies[1 + i * Q_PER_PROC + Q_LEASE];
        const redisReply *ttl = b->replies[1 + i * Q_PER_PROC + Q_LEASE_TTL];
        int64_t poll_ms = field_ms(cur, 4), ok_ms = field_ms(st, 0), err_ms = field_ms(st, 2);
        json_t *lease = json_null();
        if (le && le->type == REDIS_REPLY_STRING)
            lease = json_pack("{s:o, s:I}", "holder", json_str(le->str), "ttl_ms",
                              (json_int_t)(ttl && ttl->type == REDIS_REPLY_INTEGER ? ttl->integer : -1));
        json_t *cursor = json_pack("{s:o, s:b, s:o, s:o, s:o, s:o}",
                                   "updated_since", json_str(field(cur, 0)),
                                   "after_set", field(cur, 1) != NULL,
                                   "deleted_since", json_str(field(cur, 2)),
                                   "max_modified", json_str(field(cur, 3)),
                                   "last_poll_ms", poll_ms > 0 ? json_integer(poll_ms) : json_null(),
                                   "last_poll", json_time(poll_ms));
        json_array_append_new(
            jp, json_pack("{s:I, s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:b, s:I, s:o}",
                          "number", (json_int_t)procs[i]->number,
                          "ds_token", procs[i]->ds_token->name,
                          "grist_server", procs[i]->grist_server->name,
                          "document", procs[i]->document,
                          "cursor", cursor,
                          "last_success_ms", ok_ms > 0 ? json_integer(ok_ms) : json_null(),
                          "last_success", json_time(ok_ms),
                          "last_success_age_s", ok_ms > 0 ? json_integer((now - ok_ms) / 1000) : json_null(),
                          "last_error", json_str(field(st, 1)),
                          "last_error_ms", err_ms > 0 ? json_integer(err_ms) : json_null(),
                          "last_error_at", json_time(err_ms),
                          "failed", field(st, 3) && !strcmp(field(st, 3), "1"),
                          "emitted", (json_int_t)field_ms(st, 4),
                          "lease", lease));
    }
    for (size_t i = 0; i < n_docs; i++)
        json_array_append_new(jd, json_pack("{s:s, s:s, s:o, s:i, s:o, s:I, s:O}", "server",
                                            docs[i].srv->name, "document", docs[i].document,
                                            "permits_in_use",
                                            in_use[i] >= 0 ? json_integer(in_use[i]) : json_null(),
                                            "permits", docs[i].permits,
                                            "recent_429s",
                                            recent429[i] >= 0 ? json_integer(recent429[i]) : json_null(),
                                            "procedures", (json_int_t)docs[i].n_procedures,
                                            "lanes", lanes[i]));
    json_t *out = json_pack("{s:I, s:o, s:o}", "now_ms", (json_int_t)now, "procedures", jp,
                            "documents", jd);
    if (lag)
        json_object_set(out, "lag", lag);
    else if (lag_err)
        json_object_set_new(out, "lag", json_pack("{s:s}", "error", lag_err));
    return out;
}

int d2g_op_status(const d2g_config_t *cfg, int argc, char **argv) {
    char err[D2G_ERRLEN], lag_err[D2G_ERRLEN] = "";
    int json = 0, no_lag = 0, rc = D2G_OP_OK;
    const d2g_procedure_t **procs = d2g_calloc((size_t)argc + cfg->n_procedures + 1, sizeof(*procs));
    size_t n = 0;
    for (int i = 0; i < argc; i++) {
        long long num;
        if (!strcmp(argv[i], "--json"))
            json = 1;
        else if (!strcmp(argv[i], "--no-lag"))
            no_lag = 1;
        else if (d2g_op_parse_count(argv[i], &num) == 0) {
            const d2g_procedure_t *p = d2g_config_find_procedure(cfg, num);
            if (!p) {
                fprintf(stderr, "ds2grist status: %s is not a configured procedure\n", argv[i]);
                free(procs);
                return D2G_OP_USAGE;
            }
            procs[n++] = p;
        } else {
            fprintf(stderr, "ds2grist status: unexpected argument %s\n", argv[i]);
            free(procs);
            return D2G_OP_USAGE;
        }
    }
    if (n == 0)
        for (size_t i = 0; i < cfg->n_procedures; i++)
            procs[n++] = &cfg->procedures[i];
    size_t n_docs;
    d2g_op_doc_t *docs = d2g_op_documents(procs, n, &n_docs);
    int64_t *in_use = d2g_calloc(n_docs + 1, sizeof(int64_t));
    int64_t *recent429 = d2g_calloc(n_docs + 1, sizeof(int64_t));
    json_t **lanes = d2g_calloc(n_docs + 1, sizeof(json_t *));
    d2g_op_batch_t b, pb;
    memset(&b, 0, sizeof(b));
    memset(&pb, 0, sizeof(pb));
    json_t *lag = NULL;
    redisContext *c = NULL;
    d2g_redis_t *redis = NULL;

    if (d2g_redis_connect(cfg->redis.url, cfg->redis.username, cfg->redis.password,
                          cfg->redis.namespace, D2G_OP_TIMEOUT_MS, &redis, err, sizeof(err)))
        goto redis_fail;
    if (!(c = d2g_redis_context(redis))) {
        d2g_err_set(err, sizeof(err), "redis: connection lost");
        goto redis_fail;
    }
    /* Round trip 1: Redis's clock, which permit leases are scored in. */
    const char *time_cmd[] = {"TIME"};
    d2g_op_batch_add(&pb, 1, time_cmd);
    if (d2g_op_batch_run(&pb, c, err, sizeof(err)))
        goto redis_fail;
    const redisReply *tr = pb.replies[0];
    if (tr->type != REDIS_REPLY_ARRAY || tr->elements != 2) {
        d2g_err_set(err, sizeof(err), "redis: unexpected TIME reply");
        goto redis_fail;
    }
    char since[32], hour_ago[32];
    long long redis_now = strtoll(tr->element[0]->str, NULL, 10) * 1000 +
                          strtoll(tr->element[1]->str, NULL, 10) / 1000;
    snprintf(since, sizeof(since), "(%lld", redis_now);
    snprintf(hour_ago, sizeof(hour_ago), "%lld", redis_now - 3600000);

    /* Round trips 2...: everything else, pipelined. */
    const char *ping[] = {"PING"};
    d2g_op_batch_add(&b, 1, ping);
    for (size_t i = 0; i < n; i++) {
        char k[300];
        const char *ns = cfg->redis.namespace;
        const char *argvv[8];
        d2g_keys_proc(ns, k, sizeof(k), procs[i]->number, "cursor");
        argvv[0] = "HMGET";
        argvv[1] = k;
        for (int f = 0; f < 5; f++)
            argvv[2 + f] = cursor_fields[f];
        d2g_op_batch_add(&b, 7, argvv);
        d2g_keys_proc(ns, k, sizeof(k), procs[i]->number, "status");
        for (int f = 0; f < 5; f++)
            argvv[2 + f] = status_fields[f];
        d2g_op_batch_add(&b, 7, argvv);
        d2g_keys_proc(ns, k, sizeof(k), procs[i]->number, "lease");
        const char *get[] = {"GET", k}, *pttl[] = {"PTTL", k};
        d2g_op_batch_add(&b, 2, get);
        d2g_op_batch_add(&b, 2, pttl);
    }
    for (size_t i = 0; i < n_docs; i++) {
        char k[600];
        d2g_keys_doc(cfg->redis.namespace, k, sizeof(k), docs[i].srv->name, docs[i].document,
                     "permits");
        const char *zc[] = {"ZCOUNT", k, since, "+inf"};
        d2g_op_batch_add(&b, 4, zc);
    }
    /* 429s the workers received in the last hour (the writer records them). */
    for (size_t i = 0; i < n_docs; i++) {
        char k[600];
        d2g_keys_doc(cfg->redis.namespace, k, sizeof(k), docs[i].srv->name, docs[i].document,
                     "recent429");
        const char *zc[] = {"ZCOUNT", k, hour_ago, "+inf"};
        d2g_op_batch_add(&b, 4, zc);
    }
    /* Lanes of workers that are not active (backing off or parked), with why and since when. */
    for (size_t i = 0; i < n_docs; i++) {
        char k[600];
        d2g_keys_doc(cfg->redis.namespace, k, sizeof(k), docs[i].srv->name, docs[i].document, "lane");
        const char *hg[] = {"HGETALL", k};
        d2g_op_batch_add(&b, 2, hg);
    }
    if (d2g_op_batch_run(&b, c, err, sizeof(err)))
        goto redis_fail;
    for (size_t i = 0; i < b.n; i++)
        if (b.replies[i]->type == REDIS_REPLY_ERROR) {
            d2g_err_set(err, sizeof(err), "redis: %s", b.replies[i]->str);
            goto redis_fail;
        }
    for (size_t i = 0; i < n_docs; i++) {
        const redisReply *r = b.replies[1 + n * Q_PER_PROC + i];
        const redisReply *r429 = b.replies[1 + n * Q_PER_PROC + n_docs + i];
        in_use[i] = r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
        recent429[i] = r429->type == REDIS_REPLY_INTEGER ? r429->integer : -1;
        const redisReply *hl = b.replies[1 + n * Q_PER_PROC + 2 * n_docs + i];
        lanes[i] = json_array();
        for (size_t k = 0; hl->type == REDIS_REPLY_ARRAY && k + 1 < hl->elements; k += 2) {
            json_t *one = json_loads(hl->element[k + 1]->str, 0, NULL);
            if (!json_is_object(one)) {
                json_decref(one);
                continue;
            }
            json_object_set_new(one, "worker", json_str(hl->element[k]->str));
            json_array_append_new(lanes[i], one);
        }
    }

    if (!no_lag && !(lag = consumer_lag(cfg, lag_err, sizeof(lag_err)))) {
        fprintf(stderr, "ds2grist status: messages waiting unknown: %s\n", lag_err);
        rc = D2G_OP_FAIL;
    }
    int64_t now = d2g_clock_wall_ms();
    if (json)
        d2g_op_print_json(build_json(procs, n, &b, docs, n_docs, in_use, recent429, lanes, lag, lag_err[0] ? lag_err : NULL, now));
    else
        print_text(procs, n, &b, docs, n_docs, in_use, recent429, lanes, lag, lag_err[0] ? lag_err : NULL, now);
    goto done;

redis_fail: {
    char url[512];
    d2g_op_redis_url_public(cfg->redis.url, url, sizeof(url));
    fprintf(stderr, "ds2grist status: cannot read the state in Redis (%s): %s\n", url, err);
    rc = D2G_OP_FAIL;
}
done:
    json_decref(lag);
    d2g_redis_free(redis);
    d2g_op_batch_free(&b);
    d2g_op_batch_free(&pb);
    free(in_use);
    free(recent429);
    for (size_t i = 0; i < n_docs; i++)
        json_decref(lanes[i]);
    free(lanes);
    free(docs);
    free(procs);
    return rc;
}
