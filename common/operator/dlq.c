/*
 * dlq.c - `ds2grist dlq list` and `ds2grist dlq replay`: the dead letters
 * the workers set aside (topic kafka.dlq_topic, headers d2g-error,
 * d2g-source-topic, d2g-source-partition, d2g-source-offset, d2g-failed-at;
 * see docs/architecture.md), and copying them back to the dossier topic once
 * the cause is fixed.
 *
 * Reading assigns one partition at a time from its start up to the high
 * watermark seen when the command began, with no group membership, so it
 * never disturbs anyone and always ends.
 *
 * What was replayed is remembered in Kafka, as the committed offsets of the
 * consumer group "<kafka.consumer_group>-dlq-replay" (never joined): per
 * partition, the first dead letter not replayed yet, and in the commit's
 * metadata ("d2g-replayed:12,15") those past it that a --key replay already
 * sent. A replay commits only after every copy it sent was acknowledged
 * (idempotent producer, acks=all); a copy that failed stays to be replayed.
 * Copies use the producer's partitioner (murmur2_random unless the operator's
 * kafka.properties say otherwise), so a dossier's messages stay in one
 * partition, in order. See operator.h.
 */
#include "operator.h"

#include "ds2grist/text.h"
#include "ds2grist/alloc.h"
#include "ds2grist/clock.h"
#include "ds2grist/envelope.h"
#include "ds2grist/err.h"
#include "ds2grist/kafka.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define META_PREFIX "d2g-replayed:"
/* Kafka refuses commit metadata over offset.metadata.max.bytes (4096 by default). */
#define META_MAX 3800

/* --- what was replayed, per partition -------------------------------------- */

typedef struct replayed {
    int64_t next;   /* first offset not replayed; -1: none ever */
    int64_t *extra; /* replayed offsets > next, sorted */
    size_t n_extra;
} replayed_t;

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static void replayed_parse(replayed_t *r, const rd_kafka_topic_partition_t *tp) {
    memset(r, 0, sizeof(*r));
    r->next = tp->offset >= 0 ? tp->offset : -1;
    size_t plen = strlen(META_PREFIX);
    if (!tp->metadata || tp->metadata_size <= plen ||
        memcmp(tp->metadata, META_PREFIX, plen))
        return;
    char *s = d2g_strndup((const char *)tp->metadata + plen, tp->metadata_size - plen);
    r->extra = d2g_calloc(tp->metadata_size, sizeof(int64_t));
    for (char *p = s, *end; *p; p = *end ? end + 1 : end) {
        long long o = strtoll(p, &end, 10);
        if (end == p)
            break;
        if (o > r->next)
            r->extra[r->n_extra++] = o;
    }
    qsort(r->extra, r->n_extra, sizeof(int64_t), cmp_i64);
    free(s);
}

static int replayed_has(const replayed_t *r, int64_t offset) {
    if (r->next >= 0 && offset < r->next)
        return 1;
    return r->n_extra && bsearch(&offset, r->extra, r->n_extra, sizeof(int64_t), cmp_i64) != NULL;
}

static size_t digits_len(int64_t v) {
    char buf[24];
    return (size_t)snprintf(buf, sizeof(buf), "%" PRId64, v);
}

/* --- one dead letter ---------------------------------------------------------- */

typedef struct entry {
    int32_t partition;
    int64_t offset;
    char *key;
    char *error, *src_topic, *src_partition, *src_offset, *failed_at;
    size_t size;
    int replayed;
    const char *shown; /* what the REPLAYED column says, if not yes/no */
    char *reason;      /* why a replay did not send it (superseded), or NULL */
} entry_t;

static char *header(rd_kafka_headers_t *h, const char *name) {
    const void *v;
    size_t len;
    if (!h || rd_kafka_header_get_last(h, name, &v, &len))
        return NULL;
    return v ? d2g_strndup(v, len) : d2g_strdup("");
}

static void entry_from(entry_t *e, const rd_kafka_message_t *m) {
    rd_kafka_headers_t *h = NULL;
    memset(e, 0, sizeof(*e));
    e->partition = m->partition;
    e->offset = m->offset;
    e->key = m->key ? d2g_strndup(m->key, m->key_len) : NULL;
    e->size = m->len;
    if (rd_kafka_message_headers(m, &h))
        h = NULL;
    e->error = header(h, "d2g-error");
    e->src_topic = header(h, "d2g-source-topic");
    e->src_partition = header(h, "d2g-source-partition");
    e->src_offset = header(h, "d2g-source-offset");
    e->failed_at = header(h, "d2g-failed-at");
}

static void entry_clear(entry_t *e) {
    free(e->key);
    free(e->reason);
    free(e->error);
    free(e->src_topic);
    free(e->src_partition);
    free(e->src_offset);
    free(e->failed_at);
}

static json_t *js(const char *s) { return d2g_text_json(s); }

static json_t *entry_json(const entry_t *e) {
    return json_pack("{s:i, s:I, s:o, s:o, s:o, s:o, s:o, s:o, s:I, s:b}", "partition",
                     (int)e->partition, "offset", (json_int_t)e->offset, "key", js(e->key),
                     "error", js(e->error), "source_topic", js(e->src_topic), "source_partition",
                     e->src_partition ? json_integer(strtoll(e->src_partition, NULL, 10)) : json_null(),
                     "source_offset",
                     e->src_offset ? json_integer(strtoll(e->src_offset, NULL, 10)) : json_null(),
                     "failed_at", js(e->failed_at), "size", (json_int_t)e->size, "replayed",
                     e->replayed);
}

/* --- reading a partition ------------------------------------------------------- */

/* Called per message in offset order; returns 1 to stop reading. */
typedef int (*visit_fn)(void *ud, const rd_kafka_message_t *m);

/* Messages [from, high) of one partition; 1 if visit stopped, 0 at the end, -1 on error. */
static int scan_partition(rd_kafka_t *rk, const char *topic, int partition, int64_t from,
                          int64_t high, visit_fn visit, void *ud, char *err, size_t errlen) {
    if (from >= high)
        return 0;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, partition)->offset = from;
    rd_kafka_resp_err_t e = rd_kafka_assign(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (e)
        return d2g_err_set(err, errlen, "kafka: assign %s [%d]: %s", topic, partition,
                           rd_kafka_err2str(e));
    int rc = 0;
    int64_t last = from - 1, idle_since = d2g_clock_mono_ms();
    while (last < high - 1) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (!m) {
            if (d2g_clock_mono_ms() - idle_since > D2G_OP_TIMEOUT_MS) {
                rc = d2g_err_set(err, errlen, "kafka: %s [%d]: no message for %d s at offset %" PRId64,
                                 topic, partition, D2G_OP_TIMEOUT_MS / 1000, last + 1);
                break;
            }
            continue;
        }
        idle_since = d2g_clock_mono_ms();
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                rc = d2g_err_set(err, errlen, "kafka: reading %s [%d]: %s", topic, partition,
                                 rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            if (rc)
                break;
            continue;
        }
        if (m->partition != partition || m->offset < from || m->offset >= high) {
            last = m->offset >= high ? high : last;
            rd_kafka_message_destroy(m);
            continue;
        }
        last = m->offset;
        int stop = visit(ud, m);
        rd_kafka_message_destroy(m);
        idle_since = d2g_clock_mono_ms(); /* a visit may take long (dlq replay reads Grist) */
        if (stop) {
            rc = 1;
            break;
        }
    }
    rd_kafka_assign(rk, NULL);
    return rc;
}

/* What both commands start with: a reader in the replay group, the topic's
 * partitions and what the group says was replayed. */
typedef struct dlq {
    const d2g_config_t *cfg;
    rd_kafka_t *rk;
    int n_parts;
    replayed_t *done;  /* [n_parts] */
    int64_t *low, *high; /* [n_parts] */
    rd_kafka_topic_partition_list_t *committed;
} dlq_t;

static void dlq_close(dlq_t *d) {
    for (int i = 0; d->done && i < d->n_parts; i++)
        free(d->done[i].extra);
    free(d->done);
    free(d->low);
    free(d->high);
    if (d->committed)
        rd_kafka_topic_partition_list_destroy(d->committed);
    d2g_op_consumer_close(d->rk);
    memset(d, 0, sizeof(*d));
}

static int dlq_open(dlq_t *d, const d2g_config_t *cfg, char *err, size_t errlen) {
    char group[256];
    memset(d, 0, sizeof(*d));
    d->cfg = cfg;
    d2g_op_replay_group(cfg, group, sizeof(group));
    if (!(d->rk = d2g_op_consumer_new(cfg, group, err, errlen)))
        return -1;
    const char *topic = cfg->kafka.dlq_topic;
    if ((d->n_parts = d2g_op_partition_count(d->rk, topic, err, errlen)) < 0 ||
        !(d->committed = d2g_op_committed(d->rk, topic, d->n_parts, err, errlen)))
        goto fail;
    d->done = d2g_calloc((size_t)d->n_parts, sizeof(replayed_t));
    d->low = d2g_calloc((size_t)d->n_parts, sizeof(int64_t));
    d->high = d2g_calloc((size_t)d->n_parts, sizeof(int64_t));
    for (int p = 0; p < d->n_parts; p++) {
        replayed_parse(&d->done[p], &d->committed->elems[p]);
        if (d2g_op_watermarks(d->rk, topic, p, &d->low[p], &d->high[p], err, errlen))
            goto fail;
    }
    return 0;
fail:
    dlq_close(d);
    return -1;
}

static void print_entries(const entry_t *v, size_t n) {
    d2g_op_table_t t;
    const char *h[] = {"PARTITION/OFFSET", "KEY", "FAILED AT", "SOURCE", "SIZE", "REPLAYED", "ERROR"};
    d2g_op_table_init(&t, 7, h);
    for (size_t i = 0; i < n; i++) {
        char po[48], src[64], size[24], error[200];
        snprintf(po, sizeof(po), "%d/%" PRId64, (int)v[i].partition, v[i].offset);
        snprintf(src, sizeof(src), "%s/%s", v[i].src_partition ? v[i].src_partition : "?",
                 v[i].src_offset ? v[i].src_offset : "?");
        snprintf(size, sizeof(size), "%zu", v[i].size);
        d2g_op_shorten(v[i].error, 80, error, sizeof(error));
        const char *shown = v[i].shown ? v[i].shown : v[i].replayed ? "yes" : "no";
        if (v[i].reason)
            d2g_op_shorten(v[i].reason, 80, error, sizeof(error));
        const char *row[] = {po, v[i].key, v[i].failed_at, src, size, shown, error};
        d2g_op_table_add(&t, row);
    }
    d2g_op_table_print(&t, stdout);
    d2g_op_table_free(&t);
}

/* --- dlq list ------------------------------------------------------------------ */

typedef struct list_ctx {
    const replayed_t *done;
    entry_t *v;
    size_t n, cap;
    long long limit; /* -1: none */
} list_ctx_t;

static int list_visit(void *ud, const rd_kafka_message_t *m) {
    list_ctx_t *c = ud;
    if (c->limit >= 0 && (long long)c->n >= c->limit)
        return 1;
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 64;
        c->v = d2g_realloc(c->v, c->cap * sizeof(entry_t));
    }
    entry_t *e = &c->v[c->n++];
    entry_from(e, m);
    e->replayed = replayed_has(&c->done[m->partition], m->offset);
    return 0;
}

int d2g_op_dlq_list(const d2g_config_t *cfg, int argc, char **argv) {
    char err[D2G_ERRLEN];
    int json = 0;
    list_ctx_t c = {NULL, NULL, 0, 0, -1};
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--json"))
            json = 1;
        else if (!strcmp(argv[i], "--limit") && i + 1 < argc && !d2g_op_parse_count(argv[i + 1], &c.limit))
            i++;
        else {
            fprintf(stderr, "ds2grist dlq list: unexpected argument %s (--json, --limit N)\n", argv[i]);
            return D2G_OP_USAGE;
        }
    }
    dlq_t d;
    if (dlq_open(&d, cfg, err, sizeof(err))) {
        fprintf(stderr, "ds2grist dlq list: %s\n", err);
        return D2G_OP_FAIL;
    }
    c.done = d.done;
    int rc = D2G_OP_OK;
    int64_t total = 0;
    for (int p = 0; p < d.n_parts; p++)
        total += d.high[p] - d.low[p];
    for (int p = 0; p < d.n_parts; p++) {
        int s = scan_partition(d.rk, cfg->kafka.dlq_topic, p, d.low[p], d.high[p], list_visit, &c,
                               err, sizeof(err));
        if (s < 0) {
            fprintf(stderr, "ds2grist dlq list: %s\n", err);
            rc = D2G_OP_FAIL;
            break;
        }
        if (s > 0)
            break;
    }
    if (rc == D2G_OP_OK) {
        size_t replayed = 0;
        for (size_t i = 0; i < c.n; i++)
            replayed += c.v[i].replayed != 0;
        if (json) {
            json_t *arr = json_array();
            for (size_t i = 0; i < c.n; i++)
                json_array_append_new(arr, entry_json(&c.v[i]));
            d2g_op_print_json(json_pack("{s:s, s:I, s:I, s:o}", "topic", cfg->kafka.dlq_topic,
                                        "total", (json_int_t)total, "listed", (json_int_t)c.n,
                                        "messages", arr));
        } else {
            printf("%s: %" PRId64 " dead letters (%zu listed, %zu of them replayed already)\n",
                   cfg->kafka.dlq_topic, total, c.n, replayed);
            if (c.n)
                print_entries(c.v, c.n);
        }
    }
    for (size_t i = 0; i < c.n; i++)
        entry_clear(&c.v[i]);
    free(c.v);
    dlq_close(&d);
    return rc;
}

/* --- dlq replay ------------------------------------------------------------------ */

enum { ST_SKIP_DONE, ST_NOT_DONE, ST_PENDING, ST_SENT, ST_FAILED, ST_DRY, ST_SUPERSEDED };

/* Handled for good: recorded as replayed in the group's commit. */
static int st_handled(int st) { return st == ST_SKIP_DONE || st == ST_SENT || st == ST_SUPERSEDED; }

typedef struct scanned {
    int32_t partition;
    int64_t offset;
    int state;
    entry_t *e; /* what was (or would be) replayed, else NULL */
} scanned_t;

typedef struct replay_ctx {
    dlq_t *d;
    rd_kafka_t *producer; /* NULL: dry run */
    d2g_op_grist_t *grist; /* opened at the first dead letter to check, else NULL */
    char grist_error[D2G_ERRLEN]; /* why it could not be opened */
    int force;            /* --force: send even what Grist holds a newer version of */
    const char *key;      /* only this key, or NULL */
    long long limit;      /* -1: none */
    scanned_t *v;
    size_t n, cap;
    size_t n_replay, n_already, n_other, n_superseded, n_check_failed;
    /* Commit metadata budget: per partition, has a message been left behind? */
    int *gap;
    size_t meta_len;
    int stopped_meta;
    char error[D2G_ERRLEN];
} replay_ctx_t;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    replay_ctx_t *c = opaque;
    size_t i = (size_t)(uintptr_t)m->_private;
    if (i < c->n) {
        c->v[i].state = m->err ? ST_FAILED : ST_SENT;
        if (m->err && !c->error[0])
            snprintf(c->error, sizeof(c->error), "%s", rd_kafka_err2str(m->err));
    }
}

static scanned_t *push(replay_ctx_t *c, const rd_kafka_message_t *m, int state) {
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 256;
        c->v = d2g_realloc(c->v, c->cap * sizeof(scanned_t));
    }
    scanned_t *s = &c->v[c->n++];
    *s = (scanned_t){m->partition, m->offset, state, NULL};
    return s;
}

/*
 * Does Grist hold a newer version of the dead letter's dossier? A dead letter
 * is the dossier as it was when it failed; if the dossier changed since, its
 * newer version has normally been written, and sending the old one would
 * write older data over it. 1: superseded (why says by what); 0: send it
 * (not an upsert of a configured procedure, no row, an older or the same
 * version); -1: Grist could not tell (err).
 */
static int superseded(replay_ctx_t *c, const rd_kafka_message_t *m, char *why, size_t whylen,
                      char *err, size_t errlen) {
    d2g_envelope_t env;
    char derr[D2G_ERRLEN];
    if (d2g_envelope_decode(m->payload, m->len, &env, derr, sizeof(derr)))
        return 0; /* malformed: the worker will dead-letter it again, saying why */
    int rc = 0, is_int;
    double modified;
    d2g_op_current_t cur;
    const d2g_procedure_t *p = d2g_config_find_procedure(c->d->cfg, env.procedure);
    if (env.kind != D2G_ENVELOPE_UPSERT || !p || d2g_clock_parse_iso(env.modified, &modified, &is_int))
        goto out;
    if (c->grist_error[0]) { /* Redis was not there for the first one: not for the others */
        rc = d2g_err_set(err, errlen, "%s", c->grist_error);
        goto out;
    }
    if (!c->grist && !(c->grist = d2g_op_grist_new(c->d->cfg, err, errlen))) {
        snprintf(c->grist_error, sizeof(c->grist_error), "%s", err);
        rc = -1;
        goto out;
    }
    if (d2g_op_grist_current(c->grist, p, env.number, &cur, err, errlen)) {
        rc = -1;
        goto out;
    }
    if (cur.found && cur.deleted && !(cur.deleted_at < modified)) {
        /* Deleted at or after this version (a dossier restored later is newer). */
        snprintf(why, whylen, "superseded: Grist marks dossier %" PRId64 " deleted", env.number);
        rc = 1;
    } else if (cur.found && !isnan(cur.modified) && cur.modified > modified) {
        char t[64];
        d2g_op_format_time((int64_t)(cur.modified * 1000), t, sizeof(t));
        snprintf(why, whylen, "superseded: Grist holds a newer version (modified %s, this one %s)",
                 t, env.modified);
        rc = 1;
    }
out:
    d2g_envelope_clear(&env);
    return rc;
}

static int replay_visit(void *ud, const rd_kafka_message_t *m) {
    replay_ctx_t *c = ud;
    int p = m->partition;
    if (replayed_has(&c->d->done[p], m->offset)) {
        push(c, m, ST_SKIP_DONE);
        c->n_already++;
        return 0;
    }
    if (c->key && (m->key_len != strlen(c->key) || memcmp(m->key, c->key, m->key_len))) {
        push(c, m, ST_NOT_DONE);
        c->gap[p] = 1;
        c->n_other++;
        return 0;
    }
    if (c->limit >= 0 && (long long)(c->n_replay + c->n_superseded + c->n_check_failed) >= c->limit)
        return 1;
    if (c->gap[p]) { /* it will have to be remembered in the commit's metadata */
        if (c->meta_len + digits_len(m->offset) + 1 > META_MAX) {
            c->stopped_meta = 1;
            return 1;
        }
        c->meta_len += digits_len(m->offset) + 1;
    }
    char why[D2G_ERRLEN] = "", cerr[D2G_ERRLEN] = "";
    int sup = c->force ? 0 : superseded(c, m, why, sizeof(why), cerr, sizeof(cerr));
    scanned_t *s = push(c, m, sup > 0 ? ST_SUPERSEDED : sup < 0 ? ST_FAILED
                              : c->producer ? ST_PENDING : ST_DRY);
    s->e = d2g_malloc(sizeof(entry_t));
    entry_from(s->e, m);
    if (sup > 0) {
        s->e->reason = d2g_strdup(why);
        c->n_superseded++;
        return 0;
    }
    if (sup < 0) {
        s->e->reason = d2g_strdup(cerr);
        c->n_check_failed++;
        c->gap[p] = 1; /* left behind: what follows goes in the commit's metadata */
        if (!c->error[0])
            snprintf(c->error, sizeof(c->error), "%s", cerr);
        return 0;
    }
    c->n_replay++;
    if (!c->producer)
        return 0;
    char from[300];
    snprintf(from, sizeof(from), "%s/%d/%" PRId64, c->d->cfg->kafka.dlq_topic, p, m->offset);
    rd_kafka_headers_t *h = rd_kafka_headers_new(1);
    rd_kafka_header_add(h, "d2g-replay-of", -1, from, -1);
    rd_kafka_resp_err_t e;
    for (;;) {
        e = rd_kafka_producev(c->producer, RD_KAFKA_V_TOPIC(c->d->cfg->kafka.topic),
                              RD_KAFKA_V_KEY(m->key, m->key_len),
                              RD_KAFKA_V_VALUE(m->payload, m->len),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(h),
                              RD_KAFKA_V_OPAQUE((void *)(uintptr_t)(c->n - 1)), RD_KAFKA_V_END);
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
            break;
        rd_kafka_poll(c->producer, 100);
    }
    if (e) {
        rd_kafka_headers_destroy(h);
        c->v[c->n - 1].state = ST_FAILED;
        c->gap[p] = 1;
        if (!c->error[0])
            snprintf(c->error, sizeof(c->error), "%s", rd_kafka_err2str(e));
    }
    rd_kafka_poll(c->producer, 0);
    return 0;
}

/* The commit recording what is replayed now: for each partition whose state
 * moved, its first not-replayed offset and the replayed ones past it. */
static rd_kafka_topic_partition_list_t *replay_commit_list(replay_ctx_t *c) {
    dlq_t *d = c->d;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(d->n_parts);
    size_t i = 0;
    for (int p = 0; p < d->n_parts; p++) {
        size_t first = i;
        while (i < c->n && c->v[i].partition == p)
            i++;
        /* [first, i): this partition's scanned messages, in offset order. */
        int moved = 0;
        int64_t next = -1, scan_end = first < i ? c->v[i - 1].offset + 1 : -1;
        size_t k;
        for (k = first; k < i; k++)
            moved |= c->v[k].state == ST_SENT || c->v[k].state == ST_SUPERSEDED;
        for (k = first; k < i; k++) {
            if (!st_handled(c->v[k].state)) {
                next = c->v[k].offset;
                break;
            }
        }
        if (!moved)
            continue;
        if (next < 0)
            next = scan_end;
        size_t cap = 64, len = 0;
        char *meta = d2g_malloc(cap);
        len = (size_t)snprintf(meta, cap, "%s", META_PREFIX);
        for (; k < i; k++)
            if (c->v[k].offset > next && st_handled(c->v[k].state)) {
                if (len + 24 > cap)
                    meta = d2g_realloc(meta, cap *= 2);
                len += (size_t)snprintf(meta + len, cap - len, "%s%" PRId64,
                                        len > strlen(META_PREFIX) ? "," : "", c->v[k].offset);
            }
        /* Replayed offsets past where this scan stopped (earlier --key runs). */
        for (size_t x = 0; x < d->done[p].n_extra; x++)
            if (d->done[p].extra[x] >= scan_end) {
                if (len + 24 > cap)
                    meta = d2g_realloc(meta, cap *= 2);
                len += (size_t)snprintf(meta + len, cap - len, "%s%" PRId64,
                                        len > strlen(META_PREFIX) ? "," : "", d->done[p].extra[x]);
            }
        rd_kafka_topic_partition_t *tp = rd_kafka_topic_partition_list_add(l, d->cfg->kafka.dlq_topic, p);
        tp->offset = next;
        if (len > strlen(META_PREFIX)) {
            tp->metadata = meta;
            tp->metadata_size = len;
        } else {
            free(meta);
        }
    }
    return l;
}

/* Commits l for the replay group, synchronously, through the reader's handle
 * (a member of no group: an explicit list is sent as it is, metadata
 * included, even when an offset did not move). A partition's own error fails
 * the commit like a request error. */
static int replay_commit(dlq_t *d, rd_kafka_topic_partition_list_t *l, char *err, size_t errlen) {
    char group[256];
    d2g_op_replay_group(d->cfg, group, sizeof(group));
    rd_kafka_t *rk = d->rk;
    rd_kafka_resp_err_t e = rd_kafka_commit(rk, l, 0);
    for (int i = 0; !e && i < l->cnt; i++)
        e = l->elems[i].err;
    if (e)
        return d2g_err_set(err, errlen, "kafka: commit for group %s: %s", group, rd_kafka_err2str(e));
    return 0;
}

int d2g_op_dlq_replay(const d2g_config_t *cfg, int argc, char **argv) {
    char err[D2G_ERRLEN];
    int json = 0, dry = 0, rc = D2G_OP_OK;
    replay_ctx_t c;
    memset(&c, 0, sizeof(c));
    c.limit = -1;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--json"))
            json = 1;
        else if (!strcmp(argv[i], "--dry-run"))
            dry = 1;
        else if (!strcmp(argv[i], "--force"))
            c.force = 1;
        else if (!strcmp(argv[i], "--key") && i + 1 < argc && argv[i + 1][0])
            c.key = argv[++i];
        else if (!strcmp(argv[i], "--limit") && i + 1 < argc && !d2g_op_parse_count(argv[i + 1], &c.limit))
            i++;
        else {
            fprintf(stderr, "ds2grist dlq replay: unexpected argument %s "
                            "(--dry-run, --force, --key KEY, --limit N, --json)\n", argv[i]);
            return D2G_OP_USAGE;
        }
    }
    dlq_t d;
    if (dlq_open(&d, cfg, err, sizeof(err))) {
        fprintf(stderr, "ds2grist dlq replay: %s\n", err);
        return D2G_OP_FAIL;
    }
    c.d = &d;
    c.gap = d2g_calloc((size_t)d.n_parts, sizeof(int));
    /* Those before each partition's committed offset were replayed by earlier runs
     * (the ones past it, from --key runs, are counted as the scan meets them). */
    for (int p = 0; p < d.n_parts; p++) {
        int64_t upto = d.done[p].next < d.high[p] ? d.done[p].next : d.high[p];
        if (upto > d.low[p])
            c.n_already += (size_t)(upto - d.low[p]);
    }
    for (int p = 0; p < d.n_parts; p++)
        for (size_t x = 0; x < d.done[p].n_extra; x++)
            c.meta_len += digits_len(d.done[p].extra[x]) + 1;
    if (!dry) {
        static const char *const defaults[] = {
            "partitioner", "murmur2_random", /* as the producer: a dossier stays in its partition */
            "message.max.bytes", "104857600", /* as large as the dead letter was */
            NULL,
        };
        static const char *const overrides[] = {"enable.idempotence", "true", "acks", "all", NULL};
        char cause[512];
        rd_kafka_conf_t *conf = d2g_kafka_conf_new(cfg, defaults, overrides, err, sizeof(err));
        if (conf) {
            rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
            rd_kafka_conf_set_opaque(conf, &c);
            if (!(c.producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, cause, sizeof(cause)))) {
                rd_kafka_conf_destroy(conf);
                d2g_err_set(err, sizeof(err), "kafka producer: %s", cause);
            }
        }
        if (!c.producer) {
            fprintf(stderr, "ds2grist dlq replay: %s\n", err);
            rc = D2G_OP_FAIL;
            goto done;
        }
    }

    for (int p = 0; p < d.n_parts; p++) {
        int64_t from = d.done[p].next > d.low[p] ? d.done[p].next : d.low[p];
        int s = scan_partition(d.rk, cfg->kafka.dlq_topic, p, from, d.high[p], replay_visit, &c,
                               err, sizeof(err));
        if (s < 0) {
            fprintf(stderr, "ds2grist dlq replay: %s (what was sent is waited for, and recorded)\n", err);
            rc = D2G_OP_FAIL;
            break;
        }
        if (s > 0)
            break;
    }

    size_t sent = 0, failed = 0;
    if (c.producer) /* Every copy acknowledged (or failed) before anything is recorded. */
        rd_kafka_flush(c.producer, 60000);
    for (size_t i = 0; i < c.n; i++) {
        if (c.v[i].state == ST_PENDING) {
            c.v[i].state = ST_FAILED;
            if (!c.error[0])
                snprintf(c.error, sizeof(c.error), "no acknowledgement within 60 s");
        }
        sent += c.v[i].state == ST_SENT;
        failed += c.v[i].state == ST_FAILED;
    }
    if (failed) {
        fprintf(stderr, "ds2grist dlq replay: %zu dead letters failed (%s); they stay to be replayed%s\n",
                failed, c.error, c.n_check_failed ? " (--force sends them without reading Grist)" : "");
        rc = D2G_OP_FAIL;
    }
    if (c.producer && (sent || c.n_superseded)) {
        rd_kafka_topic_partition_list_t *l = replay_commit_list(&c);
        if (replay_commit(&d, l, err, sizeof(err))) {
            fprintf(stderr, "ds2grist dlq replay: %zu dead letters were replayed (%zu superseded) but "
                            "could not be recorded as such (%s): a second replay would send them again\n",
                    sent, c.n_superseded, err);
            rc = D2G_OP_FAIL;
        }
        rd_kafka_topic_partition_list_destroy(l);
    }
    if (c.stopped_meta)
        fprintf(stderr, "ds2grist dlq replay: stopped early: too many dead letters replayed past "
                        "others that were not; replay those (without --key) first\n");

    if (json) {
        json_t *arr = json_array();
        for (size_t i = 0; i < c.n; i++) {
            if (!c.v[i].e)
                continue;
            json_t *j = entry_json(c.v[i].e);
            int st = c.v[i].state;
            json_object_set_new(j, "status", json_string(st == ST_SENT         ? "replayed"
                                                         : st == ST_DRY        ? "would replay"
                                                         : st == ST_SUPERSEDED ? "superseded"
                                                                               : "failed"));
            if (c.v[i].e->reason)
                json_object_set_new(j, "reason", js(c.v[i].e->reason));
            json_object_del(j, "replayed");
            json_array_append_new(arr, j);
        }
        d2g_op_print_json(json_pack("{s:s, s:s, s:b, s:b, s:o, s:I, s:I, s:I, s:I, s:I, s:o}",
                                    "from", cfg->kafka.dlq_topic, "to", cfg->kafka.topic, "dry_run",
                                    dry, "force", c.force, "key",
                                    js(c.key), "replayed",
                                    (json_int_t)(dry ? 0 : sent), "superseded",
                                    (json_int_t)c.n_superseded, "failed", (json_int_t)failed,
                                    "already_replayed", (json_int_t)c.n_already, "other_keys",
                                    (json_int_t)c.n_other, "messages", arr));
    } else {
        size_t n = 0;
        entry_t *v = d2g_calloc(c.n + 1, sizeof(entry_t));
        for (size_t i = 0; i < c.n; i++)
            if (c.v[i].e) {
                int st = c.v[i].state;
                v[n] = *c.v[i].e;
                v[n].replayed = st == ST_SENT;
                v[n++].shown = st == ST_SUPERSEDED ? "superseded" : st == ST_FAILED ? "failed"
                               : st == ST_DRY      ? "would be"
                                                   : NULL;
            }
        if (n)
            print_entries(v, n);
        free(v);
        if (dry)
            printf("dry run: %zu dead letters would be replayed from %s to %s", c.n_replay,
                   cfg->kafka.dlq_topic, cfg->kafka.topic);
        else
            printf("replayed %zu dead letters from %s to %s", sent, cfg->kafka.dlq_topic,
                   cfg->kafka.topic);
        printf(" (%zu superseded, %zu failed, %zu replayed before", c.n_superseded, failed,
               c.n_already);
        if (c.key)
            printf(", %zu with other keys", c.n_other);
        printf(")\n");
    }

done:
    if (c.producer)
        rd_kafka_destroy(c.producer);
    d2g_op_grist_free(c.grist);
    for (size_t i = 0; i < c.n; i++)
        if (c.v[i].e) {
            entry_clear(c.v[i].e);
            free(c.v[i].e);
        }
    free(c.v);
    free(c.gap);
    dlq_close(&d);
    return rc;
}
