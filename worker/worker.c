/* worker.c - consume, write, store offsets; see worker.h. */
#include "worker.h"
#include "offsets.h"
#include "writer.h"

#include "ds2grist/alloc.h"
#include "ds2grist/clock.h"
#include "ds2grist/envelope.h"
#include "ds2grist/err.h"
#include "ds2grist/kafka.h"
#include "ds2grist/log.h"
#include "ds2grist/redis.h"
#include "ds2grist/reload.h"

#include <errno.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Messages taken from the consumer per loop turn, between writer steps. */
#define POLL_BATCH 500
#define CONSUME_SLICE_MS 5 /* the most time spent taking messages in before the writer runs */
/* How often congestion (pause/resume) is re-evaluated. */
#define CONGESTION_EVERY_MS 100
/* A copy Kafka refused is produced again after 1 s, doubling up to 30 s. */
#define RESEND_FIRST_MS 1000
#define RESEND_MAX_MS 30000

#define T_MAIN 0  /* kafka.topic */
#define T_RETRY 1 /* kafka.retry_topic */
#define N_TOPICS 2

/* A message of the retry topic received before its not-before time. */
typedef struct held {
    rd_kafka_message_t *m;
    int64_t not_before; /* wall ms */
    struct held *next;
} held_t;

typedef struct partition {
    d2g_offsets_t *offsets;
    int assigned;
    int congested;     /* a document it feeds is behind (backpressure) */
    int paused;        /* as librdkafka was told */
    held_t *held, *held_tail; /* retry topic: waiting for their time, in offset order */
    size_t n_held;
} partition_t;

typedef enum { OUT_DLQ = 0, OUT_RETRY = 1 } out_kind_t;

/* A copy the worker produces (a dead letter or a retry copy), and the
 * messages it stands for: they are done once Kafka acknowledged the copy. */
typedef struct outmsg {
    out_kind_t kind;
    /* Held only while waiting to be produced again. */
    char *key;
    size_t key_len;
    char *value;
    size_t len;
    rd_kafka_headers_t *headers;
    int tries;
    int64_t next_try; /* mono */
    struct outmsg *next;
    size_t n;
    d2g_msgref_t msgs[];
} outmsg_t;

struct d2g_worker {
    d2g_reload_t *live;
    d2g_worker_unknown_cb unknown_cb; /* NULL: unknown procedures are dead-lettered */
    void *unknown_ud;
    const d2g_config_t *cfg; /* the configuration applied last (cfg_held) */
    d2g_config_t *cfg_held;
    d2g_config_t *boot;      /* the one it started with: Kafka's topics and group, Redis */
    rd_kafka_t *consumer;
    rd_kafka_t *producer; /* dead letters and retry copies */
    d2g_redis_t *redis;
    d2g_writer_t *writer;
    const char *topics[N_TOPICS];
    partition_t *parts[N_TOPICS];
    int n_parts[N_TOPICS];
    char id[128];
    int stopping;
    int64_t stop_deadline; /* mono, once stopping */
    int64_t last_congestion_check;
    int full; /* more than worker.max_buffered_total waiting: limits shrink to fair shares */
    uint64_t consumed, written, dead_lettered, forwarded;
    outmsg_t *resend, *resend_tail; /* copies refused, to produce again */
    size_t n_resend;
    int freeing; /* purged copies are only freed */
    d2g_service_t *svc;
    d2g_metric_t *m_consumed, *m_dead, *m_lag, *m_buffered, *m_paused;
    d2g_metric_t *m_forwarded, *m_retry_consumed;
    int64_t last_sample_ms;
};

static partition_t *part(d2g_worker_t *w, int t, int32_t p) {
    if (p < 0 || t < 0 || t >= N_TOPICS)
        return NULL;
    if (p >= w->n_parts[t]) {
        int n = p + 16;
        partition_t *v = d2g_realloc(w->parts[t], (size_t)n * sizeof(partition_t));
        memset(v + w->n_parts[t], 0, (size_t)(n - w->n_parts[t]) * sizeof(partition_t));
        w->parts[t] = v;
        w->n_parts[t] = n;
    }
    partition_t *pt = &w->parts[t][p];
    if (!pt->offsets)
        pt->offsets = d2g_offsets_new();
    return pt;
}

static int topic_of(const d2g_worker_t *w, const rd_kafka_topic_partition_t *tp) {
    return strcmp(tp->topic, w->topics[T_RETRY]) == 0 ? T_RETRY : T_MAIN;
}

/* A message is done (written, dead-lettered or in the retry topic): store the
 * offset if the partition's low-water mark moved. */
static void msg_done(d2g_worker_t *w, const d2g_msgref_t *m) {
    partition_t *pt = part(w, m->topic, m->partition);
    if (!pt || !pt->assigned)
        return;
    int64_t store = d2g_offsets_done(pt->offsets, m->epoch, m->offset);
    if (store < 0)
        return;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, w->topics[m->topic], m->partition)->offset = store;
    rd_kafka_resp_err_t err = rd_kafka_offsets_store(w->consumer, l);
    if (err)
        d2g_log(D2G_LOG_WARN, "offset_store_failed", 0, NULL, "%s [%d] offset %" PRId64 ": %s",
                w->topics[m->topic], (int)m->partition, store, rd_kafka_err2str(err));
    rd_kafka_topic_partition_list_destroy(l);
}

/* --- copies: dead letters and retry copies ----------------------------------- */

static const char *out_topic(const d2g_worker_t *w, const outmsg_t *o) {
    return o->kind == OUT_RETRY ? w->boot->kafka.retry_topic : w->boot->kafka.dlq_topic;
}

static void out_free(outmsg_t *o) {
    free(o->key);
    free(o->value);
    if (o->headers)
        rd_kafka_headers_destroy(o->headers);
    free(o);
}

/* Readiness: not ready while some copy waits to be produced again. */
static void out_readiness(d2g_worker_t *w) {
    d2g_service_kafka_produce(w->svc, w->n_resend == 0);
}

/* Keeps o (key, value and headers held) to produce it again after a backoff. */
static void out_later(d2g_worker_t *w, outmsg_t *o, const char *cause) {
    int64_t delay = RESEND_FIRST_MS;
    for (int i = 0; i < o->tries && delay < RESEND_MAX_MS; i++)
        delay *= 2;
    if (delay > RESEND_MAX_MS)
        delay = RESEND_MAX_MS;
    o->tries++;
    o->next_try = d2g_clock_mono_ms() + delay;
    o->next = NULL;
    if (w->resend_tail)
        w->resend_tail->next = o;
    else
        w->resend = o;
    w->resend_tail = o;
    w->n_resend++;
    d2g_log(D2G_LOG_ERROR, o->kind == OUT_RETRY ? "retry_produce_failed" : "dlq_produce_failed", 0,
            NULL, "%s (try %d): producing it again in %" PRId64 " ms; the offsets of its %zu "
            "messages stay behind it meanwhile", cause, o->tries, delay, o->n);
    out_readiness(w);
}

/* Produces o from its held key, value and headers (consumed on success). */
static void out_produce(d2g_worker_t *w, outmsg_t *o) {
    rd_kafka_resp_err_t err = rd_kafka_producev(
        w->producer, RD_KAFKA_V_TOPIC(out_topic(w, o)), RD_KAFKA_V_KEY(o->key, o->key_len),
        RD_KAFKA_V_VALUE(o->value, o->len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_HEADERS(o->headers), RD_KAFKA_V_OPAQUE(o), RD_KAFKA_V_END);
    if (err) {
        out_later(w, o, rd_kafka_err2str(err));
        return;
    }
    o->headers = NULL; /* librdkafka's now */
    free(o->key);
    free(o->value);
    o->key = o->value = NULL;
}

/* Copies of what was refused, whose time has come. */
static void out_resend_due(d2g_worker_t *w, int64_t now) {
    size_t n = w->n_resend;
    for (size_t i = 0; i < n && w->resend && w->resend->next_try <= now; i++) {
        outmsg_t *o = w->resend;
        w->resend = o->next;
        if (!w->resend)
            w->resend_tail = NULL;
        w->n_resend--;
        out_produce(w, o);
    }
    out_readiness(w);
}

static void *memdup(const void *p, size_t n) {
    char *c = d2g_malloc(n + 1);
    if (n)
        memcpy(c, p, n);
    c[n] = 0;
    return c;
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *ud) {
    (void)rk;
    d2g_worker_t *w = ud;
    outmsg_t *o = m->_private;
    if (m->err && w->freeing) {
        out_free(o);
        return;
    }
    if (m->err) {
        /* librdkafka has already retried for message.timeout.ms: keep it and
         * produce it again later; its offsets stay behind it until then. */
        rd_kafka_headers_t *h = NULL;
        o->key = memdup(m->key, m->key_len);
        o->key_len = m->key_len;
        o->value = memdup(m->payload, m->len);
        o->len = m->len;
        o->headers = rd_kafka_message_headers(m, &h) == RD_KAFKA_RESP_ERR_NO_ERROR
                         ? rd_kafka_headers_copy(h) : NULL;
        out_later(w, o, rd_kafka_err2str(m->err));
        return;
    }
    if (o->kind == OUT_RETRY) {
        w->forwarded++;
        d2g_metric_inc(w->m_forwarded, NULL, 1);
    } else {
        w->dead_lettered++;
        d2g_metric_inc(w->m_dead, NULL, 1);
    }
    for (size_t i = 0; i < o->n; i++)
        msg_done(w, &o->msgs[i]);
    out_free(o);
}

/* Copies key/value to the dead-letter or the retry topic with headers h
 * (taken); refs are done once that topic has it. */
static void out_send(d2g_worker_t *w, out_kind_t kind, const char *key, size_t key_len,
                     const void *value, size_t len, rd_kafka_headers_t *h,
                     const d2g_msgref_t *refs, size_t n_refs) {
    outmsg_t *o = d2g_calloc(1, sizeof(outmsg_t) + n_refs * sizeof(d2g_msgref_t));
    o->kind = kind;
    o->n = n_refs;
    memcpy(o->msgs, refs, n_refs * sizeof(d2g_msgref_t));
    o->key = memdup(key ? key : "", key ? key_len : 0);
    o->key_len = key ? key_len : 0;
    o->value = memdup(value, len);
    o->len = len;
    o->headers = h;
    out_produce(w, o);
}

static void add_source_headers(d2g_worker_t *w, rd_kafka_headers_t *h, int src_topic,
                               int32_t src_partition, int64_t src_offset) {
    char part_s[16], off_s[24];
    snprintf(part_s, sizeof(part_s), "%d", (int)src_partition);
    snprintf(off_s, sizeof(off_s), "%" PRId64, src_offset);
    rd_kafka_header_add(h, "d2g-source-topic", -1, w->topics[src_topic], -1);
    rd_kafka_header_add(h, "d2g-source-partition", -1, part_s, -1);
    rd_kafka_header_add(h, "d2g-source-offset", -1, off_s, -1);
}

/* Copies a message to the dead-letter topic with the reason in headers; its
 * offsets (refs) are stored once the dead-letter topic has it. */
static void dead_letter(d2g_worker_t *w, const char *key, size_t key_len, const void *value,
                        size_t len, const d2g_msgref_t *src, const d2g_msgref_t *refs,
                        size_t n_refs, const char *reason) {
    char at[D2G_TIME_BUFLEN];
    d2g_clock_format_ms(d2g_clock_wall_ms(), at);
    rd_kafka_headers_t *h = rd_kafka_headers_new(5);
    rd_kafka_header_add(h, "d2g-error", -1, reason, -1);
    add_source_headers(w, h, src->topic, src->partition, src->offset);
    rd_kafka_header_add(h, "d2g-failed-at", -1, at, -1);
    d2g_log(D2G_LOG_WARN, "dead_lettered", 0, NULL, "%s [%d] offset %" PRId64 ": %s",
            w->topics[src->topic], (int)src->partition, src->offset, reason);
    out_send(w, OUT_DLQ, key, key_len, value, len, h, refs, n_refs);
}

/* When a copy for attempt n may come back: worker.retry_delay_s * 2^(n-1),
 * at most worker.retry_max_delay_s, and not before the lane's own next try
 * (hint) when that is sooner than the maximum. */
static int64_t retry_not_before(const d2g_worker_t *w, int attempt, int64_t hint) {
    int64_t max = (int64_t)w->cfg->worker.retry_max_delay_s * 1000;
    int64_t d = (int64_t)w->cfg->worker.retry_delay_s * 1000;
    for (int i = 1; i < attempt && d < max; i++)
        d *= 2;
    if (d > max)
        d = max;
    int64_t now = d2g_clock_wall_ms(), nb = now + d;
    if (hint > nb)
        nb = hint < now + max ? hint : now + max;
    return nb;
}

/* Copies a message of a parked document to the retry topic. */
static void retry_copy(d2g_worker_t *w, const char *key, size_t key_len, const void *value,
                       size_t len, const d2g_msgref_t *src, const d2g_msgref_t *refs,
                       size_t n_refs, int attempt, int64_t hint, const char *reason) {
    char nb_s[24], att_s[16];
    snprintf(nb_s, sizeof(nb_s), "%" PRId64, retry_not_before(w, attempt, hint));
    snprintf(att_s, sizeof(att_s), "%d", attempt);
    rd_kafka_headers_t *h = rd_kafka_headers_new(6);
    rd_kafka_header_add(h, "d2g-not-before", -1, nb_s, -1);
    rd_kafka_header_add(h, "d2g-attempt", -1, att_s, -1);
    rd_kafka_header_add(h, "d2g-reason", -1, reason ? reason : "parked", -1);
    add_source_headers(w, h, src->topic, src->partition, src->offset);
    out_send(w, OUT_RETRY, key, key_len, value, len, h, refs, n_refs);
}

/* --- writer hooks ------------------------------------------------------------- */

static void on_written(void *ud, d2g_item_t *item) {
    d2g_worker_t *w = ud;
    w->written++;
    for (size_t i = 0; i < item->n_msgs; i++)
        msg_done(w, &item->msgs[i]);
}

static void on_failed(void *ud, d2g_item_t *item, const char *reason) {
    d2g_worker_t *w = ud;
    /* The latest version of the dossier stands for the collapsed ones. */
    char *value = json_dumps(item->env.root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    dead_letter(w, item->key, strlen(item->key), value ? value : "", value ? strlen(value) : 0,
                &item->msgs[item->n_msgs - 1], item->msgs, item->n_msgs, reason);
    free(value);
}

static void on_shed(void *ud, d2g_item_t *item, int64_t not_before_wall_ms, const char *reason) {
    d2g_worker_t *w = ud;
    char *value = json_dumps(item->env.root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    retry_copy(w, item->key, strlen(item->key), value ? value : "", value ? strlen(value) : 0,
               &item->msgs[item->n_msgs - 1], item->msgs, item->n_msgs, item->attempt + 1,
               not_before_wall_ms, reason);
    free(value);
}

/* --- consuming ------------------------------------------------------------------ */

/* A header's value as a number (0 if absent or not a number). */
static int64_t header_int(const rd_kafka_message_t *m, const char *name) {
    rd_kafka_headers_t *h = NULL;
    const void *v = NULL;
    size_t n = 0;
    char buf[32];
    if (rd_kafka_message_headers(m, &h) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        rd_kafka_header_get_last(h, name, &v, &n) != RD_KAFKA_RESP_ERR_NO_ERROR || !v ||
        n == 0 || n >= sizeof(buf))
        return 0;
    memcpy(buf, v, n);
    buf[n] = 0;
    char *end;
    errno = 0;
    long long x = strtoll(buf, &end, 10);
    return errno || *end ? 0 : (int64_t)x;
}

/* The procedure a message's key "<procedure>:<number>" names (both 64-bit),
 * without decoding the message; NULL if the key is not of that form or the
 * procedure is not configured. */
static const d2g_procedure_t *key_procedure(const d2g_worker_t *w, const rd_kafka_message_t *m) {
    char buf[48];
    if (!m->key || m->key_len == 0 || m->key_len >= sizeof(buf))
        return NULL;
    memcpy(buf, m->key, m->key_len);
    buf[m->key_len] = 0;
    char *end;
    errno = 0;
    long long proc = strtoll(buf, &end, 10);
    if (errno || end == buf || *end != ':')
        return NULL;
    return d2g_config_find_procedure(w->cfg, (int64_t)proc);
}

/* A message in turn (its offset recorded): to the retry topic if its
 * document is parked, else decoded and handed to the writer. */
static void process_message(d2g_worker_t *w, rd_kafka_message_t *m, int t, partition_t *pt) {
    char err[D2G_ERRLEN];
    w->consumed++;
    d2g_msgref_t ref = {m->partition, m->offset, d2g_offsets_epoch(pt->offsets), (uint8_t)t};
    int attempt = 0;
    if (t == T_RETRY) {
        d2g_metric_inc(w->m_retry_consumed, NULL, 1);
        int64_t a = header_int(m, "d2g-attempt");
        attempt = a > 0 && a < 1000000 ? (int)a : 1;
    }
    const char *key = m->key ? m->key : "";
    size_t key_len = m->key ? m->key_len : 0;
    /* A parked document's messages go on to the retry topic as they are. */
    const d2g_procedure_t *kp = key_procedure(w, m);
    int64_t until = 0;
    const char *why = NULL;
    if (kp && d2g_writer_parked(w->writer, kp, &until, &why)) {
        retry_copy(w, key, key_len, m->payload, m->len, &ref, &ref, 1, attempt + 1, until, why);
        return;
    }
    d2g_item_t *it = d2g_calloc(1, sizeof(*it));
    if (d2g_envelope_decode(m->payload, m->len, &it->env, err, sizeof(err))) {
        dead_letter(w, key, key_len, m->payload, m->len, &ref, &ref, 1, err);
        free(it);
        return;
    }
    it->proc = d2g_config_find_procedure(w->cfg, it->env.procedure);
    it->held = d2g_config_ref(w->cfg); /* kept alive for the item by a reload */
    if (!it->proc && w->unknown_cb && w->unknown_cb(w->unknown_ud, it->env.procedure)) {
        /* Added live (the registry): this worker's reload has not brought it yet. */
        retry_copy(w, key, key_len, m->payload, m->len, &ref, &ref, 1, attempt + 1, 0,
                   "procedure not loaded yet");
        d2g_item_free(it);
        return;
    }
    if (!it->proc) {
        snprintf(err, sizeof(err), "procedure %" PRId64 " is not configured in this worker",
                 it->env.procedure);
        dead_letter(w, key, key_len, m->payload, m->len, &ref, &ref, 1, err);
        d2g_item_free(it);
        return;
    }
    char proc[24];
    snprintf(proc, sizeof(proc), "%" PRId64, it->proc->number);
    const char *lv[] = {proc};
    d2g_metric_inc(w->m_consumed, lv, 1);
    it->msgs = d2g_malloc(sizeof(d2g_msgref_t));
    it->msgs[0] = ref;
    it->n_msgs = it->cap_msgs = 1;
    it->bytes = m->len;
    it->attempt = attempt;
    it->enqueued_ms = d2g_clock_mono_ms();
    d2g_envelope_key(it->env.procedure, it->env.number, it->key, sizeof(it->key));
    d2g_writer_add(w->writer, it);
}

/* Tells librdkafka to pause or resume (t, p) if that changed: paused while a
 * document it feeds is behind, while retry messages wait for their time, and
 * once stopping. */
static void apply_pause(d2g_worker_t *w, int t, int32_t p) {
    partition_t *pt = part(w, t, p);
    if (!pt || !pt->assigned)
        return;
    int want = pt->congested || pt->n_held > 0 || w->stopping;
    if (want == pt->paused)
        return;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, w->topics[t], p);
    if (want)
        rd_kafka_pause_partitions(w->consumer, l);
    else
        rd_kafka_resume_partitions(w->consumer, l);
    rd_kafka_topic_partition_list_destroy(l);
    pt->paused = want;
}

/* Returns 1 if m was kept (held for later), 0 if the caller destroys it. */
static int handle_message(d2g_worker_t *w, rd_kafka_message_t *m) {
    int t = strcmp(rd_kafka_topic_name(m->rkt), w->topics[T_RETRY]) == 0 ? T_RETRY : T_MAIN;
    partition_t *pt = part(w, t, m->partition);
    if (!pt || !pt->assigned)
        return 0;
    if (d2g_offsets_add(pt->offsets, m->offset)) /* already seen (a re-delivery) */
        return 0;
    d2g_service_kafka(w->svc, 1);
    if (t == T_RETRY) {
        /* Not yet: keep it, and what follows it on the partition, and pause
         * the partition until then (pausing drops only what is prefetched). */
        int64_t nb = header_int(m, "d2g-not-before");
        if (pt->n_held > 0 || nb > d2g_clock_wall_ms()) {
            held_t *h = d2g_calloc(1, sizeof(*h));
            h->m = m;
            h->not_before = nb;
            if (pt->held_tail)
                pt->held_tail->next = h;
            else
                pt->held = h;
            pt->held_tail = h;
            pt->n_held++;
            apply_pause(w, t, m->partition);
            return 1;
        }
    }
    process_message(w, m, t, pt);
    return 0;
}

/* Retry messages whose time has come, in order; a partition with none left
 * held resumes. */
static void release_held(d2g_worker_t *w) {
    int64_t now = d2g_clock_wall_ms();
    for (int p = 0; p < w->n_parts[T_RETRY]; p++) {
        partition_t *pt = &w->parts[T_RETRY][p];
        if (!pt->assigned || !pt->held)
            continue;
        while (pt->held && pt->held->not_before <= now) {
            held_t *h = pt->held;
            pt->held = h->next;
            if (!pt->held)
                pt->held_tail = NULL;
            pt->n_held--;
            process_message(w, h->m, T_RETRY, pt);
            rd_kafka_message_destroy(h->m);
            free(h);
        }
        apply_pause(w, T_RETRY, p);
    }
}

static void drop_held(partition_t *pt) {
    while (pt->held) {
        held_t *h = pt->held;
        pt->held = h->next;
        rd_kafka_message_destroy(h->m);
        free(h);
    }
    pt->held_tail = NULL;
    pt->n_held = 0;
}

/* One turn of waiting inside a revocation or the shutdown: the writer and the
 * copies go on (up to ms for Grist answers), the heartbeat beats. */
static void serve(d2g_worker_t *w, int ms) {
    d2g_writer_step(w->writer, d2g_clock_mono_ms());
    d2g_writer_poll(w->writer, ms);
    rd_kafka_poll(w->producer, 0);
    out_resend_due(w, d2g_clock_mono_ms());
    d2g_service_heartbeat(w->svc);
}

/* Commits the stored offsets, waiting at most timeout_ms (a synchronous
 * commit would wait as long as the brokers are unreachable), the heartbeat
 * beating meanwhile. */
static void commit_bounded(d2g_worker_t *w, int timeout_ms) {
    rd_kafka_queue_t *q = rd_kafka_queue_new(w->consumer);
    rd_kafka_resp_err_t err = rd_kafka_commit_queue(w->consumer, NULL, q, NULL, NULL);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        rd_kafka_event_t *ev = NULL;
        int64_t end = d2g_clock_mono_ms() + timeout_ms;
        while (!ev && d2g_clock_mono_ms() < end) {
            ev = rd_kafka_queue_poll(q, 100);
            d2g_service_heartbeat(w->svc);
        }
        if (!ev)
            d2g_log(D2G_LOG_WARN, "commit_timeout", 0, NULL, "offsets not committed in %d ms; "
                    "the next owner re-reads from the last commit", timeout_ms);
        else if (rd_kafka_event_error(ev) && rd_kafka_event_error(ev) != RD_KAFKA_RESP_ERR__NO_OFFSET)
            d2g_log(D2G_LOG_WARN, "commit_failed", 0, NULL, "%s", rd_kafka_event_error_string(ev));
        if (ev)
            rd_kafka_event_destroy(ev);
    } else if (err != RD_KAFKA_RESP_ERR__NO_OFFSET) {
        d2g_log(D2G_LOG_WARN, "commit_failed", 0, NULL, "%s", rd_kafka_err2str(err));
    }
    rd_kafka_queue_destroy(q);
}

/* Leaves the group, waiting at most timeout_ms: rd_kafka_consumer_close()
 * would wait as long as the brokers are unreachable. */
static void close_bounded(d2g_worker_t *w, int timeout_ms) {
    rd_kafka_queue_t *q = rd_kafka_queue_new(w->consumer);
    rd_kafka_error_t *e = rd_kafka_consumer_close_queue(w->consumer, q);
    if (e) {
        d2g_log(D2G_LOG_WARN, "close_failed", 0, NULL, "%s", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
    } else {
        /* Serving the queue runs the rebalance callback for the final revocation. */
        int64_t end = d2g_clock_mono_ms() + timeout_ms;
        while (!rd_kafka_consumer_closed(w->consumer) && d2g_clock_mono_ms() < end) {
            rd_kafka_queue_poll_callback(q, 100);
            d2g_service_heartbeat(w->svc);
        }
        if (!rd_kafka_consumer_closed(w->consumer))
            d2g_log(D2G_LOG_WARN, "close_timeout", 0, NULL, "left without leaving the group cleanly "
                    "(brokers unreachable); the group rebalances after session.timeout.ms");
    }
    rd_kafka_queue_destroy(q);
}

/* Before partitions go, within worker.revoke_deadline_s (and the shutdown
 * deadline when stopping), the heartbeat beating all along: drop what was
 * only queued or held for them (the new owner reads it again), let the
 * batches already being written finish, and when the deadline comes take
 * their items out of those batches (abandoned to the new owner: their
 * offsets are not stored) so that no later request of ours carries them past
 * the new owner's writes. Then wait, within the same deadline, for the copies
 * in flight (dead letters, retry copies) so their offsets can be committed. */
static int64_t drain_partitions(d2g_worker_t *w, const rd_kafka_topic_partition_list_t *parts) {
    int64_t start = d2g_clock_mono_ms();
    int64_t deadline = start + (int64_t)w->cfg->worker.revoke_deadline_s * 1000;
    if (w->stopping && w->stop_deadline < deadline)
        deadline = w->stop_deadline;
    /* Keep a quarter (at most 3 s) of it to commit. */
    int64_t reserve = (deadline - start) / 4 < 3000 ? (deadline - start) / 4 : 3000;
    int64_t work_end = deadline - reserve;
    for (int i = 0; i < parts->cnt; i++) {
        int t = topic_of(w, &parts->elems[i]);
        d2g_writer_partition(w->writer, (uint8_t)t, parts->elems[i].partition, 1, NULL);
        partition_t *pt = part(w, t, parts->elems[i].partition);
        if (pt)
            drop_held(pt);
    }
    for (;;) {
        size_t busy = 0, in_flight;
        for (int i = 0; i < parts->cnt; i++) {
            d2g_writer_partition(w->writer, (uint8_t)topic_of(w, &parts->elems[i]),
                                 parts->elems[i].partition, 0, &in_flight);
            busy += in_flight;
        }
        if (busy == 0)
            break;
        if (d2g_clock_mono_ms() >= work_end) {
            d2g_log(D2G_LOG_WARN, "revoke_abandon", 0, NULL,
                    "%zu dossiers of revoked partitions still being written after %" PRId64
                    " ms: left to their new owner", busy, d2g_clock_mono_ms() - start);
            for (int i = 0; i < parts->cnt; i++)
                d2g_writer_abandon_partition(w->writer, (uint8_t)topic_of(w, &parts->elems[i]),
                                             parts->elems[i].partition);
            break;
        }
        serve(w, 10);
    }
    /* Copies of these partitions must be acknowledged before the commit. */
    while ((rd_kafka_outq_len(w->producer) > 0 || w->n_resend > 0) &&
           d2g_clock_mono_ms() < work_end)
        serve(w, 10);
    return deadline;
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque) {
    d2g_worker_t *w = opaque;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        for (int i = 0; i < parts->cnt; i++) {
            partition_t *pt = part(w, topic_of(w, &parts->elems[i]), parts->elems[i].partition);
            d2g_offsets_reset(pt->offsets);
            drop_held(pt);
            pt->assigned = 1;
            pt->paused = pt->congested = 0;
        }
        rd_kafka_error_t *e = rd_kafka_incremental_assign(rk, parts);
        /* librdkafka keeps an application pause across revoke and re-assign:
         * a partition paused before it was revoked must not stay paused. */
        rd_kafka_resume_partitions(rk, parts);
        if (w->stopping)
            for (int i = 0; i < parts->cnt; i++)
                apply_pause(w, topic_of(w, &parts->elems[i]), parts->elems[i].partition);
        d2g_log(D2G_LOG_INFO, "partitions_assigned", 0, NULL, "%d partitions%s%s", parts->cnt,
                e ? ": " : "", e ? rd_kafka_error_string(e) : "");
        if (e)
            rd_kafka_error_destroy(e);
        return;
    }
    int64_t start = d2g_clock_mono_ms();
    int lost = rd_kafka_assignment_lost(rk);
    int64_t deadline = drain_partitions(w, parts);
    if (!lost) { /* offsets stored for what was done, committed before the partitions go */
        int64_t left = deadline - d2g_clock_mono_ms();
        commit_bounded(w, left < 1000 ? 1000 : (int)left);
    }
    for (int i = 0; i < parts->cnt; i++) {
        partition_t *pt = part(w, topic_of(w, &parts->elems[i]), parts->elems[i].partition);
        d2g_offsets_reset(pt->offsets);
        drop_held(pt);
        pt->assigned = 0;
        pt->paused = pt->congested = 0;
    }
    rd_kafka_error_t *e = rd_kafka_incremental_unassign(rk, parts);
    d2g_log(D2G_LOG_INFO, lost ? "partitions_lost" : "partitions_revoked", 0, NULL,
            "%d partitions in %" PRId64 " ms%s%s", parts->cnt, d2g_clock_mono_ms() - start,
            e ? ": " : "", e ? rd_kafka_error_string(e) : "");
    if (e)
        rd_kafka_error_destroy(e);
}

/* Pauses the partitions feeding a document that is too far behind
 * (worker.max_buffered dossiers waiting on it); each resumes at half the
 * limit. While the worker as a whole holds too many (worker.max_buffered_total,
 * or worker.max_buffered_bytes of messages: a parsed dossier takes about 8
 * times its message, and one worker may serve many documents),
 * the limit of every document is also its fair share of that total, so the
 * documents holding the most pause and those with little waiting (a healthy
 * document beside a failing one) go on. What was fetched stays queued in the
 * writer. A parked document holds nothing (its messages go to the retry
 * topic), so it never pauses anything. */
static void check_congestion(d2g_worker_t *w, int64_t now) {
    if (now - w->last_congestion_check < CONGESTION_EVERY_MS || w->stopping)
        return;
    w->last_congestion_check = now;
    size_t limit = (size_t)w->cfg->worker.max_buffered;
    size_t docs = 0, bytes = 0, total = (size_t)w->cfg->worker.max_buffered_total;
    size_t pending = d2g_writer_pending(w->writer, &docs, &bytes);
    /* The bytes bound as a count: as many dossiers as fit in it at the size of
     * those held now, so large dossiers pause the partitions sooner. */
    size_t max_bytes = (size_t)w->cfg->worker.max_buffered_bytes;
    if (pending && bytes / pending > 0 && max_bytes / (bytes / pending) < total)
        total = max_bytes / (bytes / pending) > 10 ? max_bytes / (bytes / pending) : 10;
    int full = pending > (w->full ? total / 2 : total);
    if (full != w->full)
        d2g_log(D2G_LOG_INFO, full ? "worker_full" : "worker_not_full", 0, NULL,
                "%zu dossiers (%zu kB of messages) waiting in this worker on %zu documents "
                "(limit %zu dossiers at that size)", pending, bytes / 1024, docs, total);
    w->full = full;
    d2g_metric_set(w->m_buffered, NULL, (double)pending);
    if (full && docs > 0 && total / docs < limit)
        limit = total / docs > 0 ? total / docs : 1; /* each document's fair share */
    int paused = 0;
    for (int t = 0; t < N_TOPICS; t++)
        for (int p = 0; p < w->n_parts[t]; p++) {
            partition_t *pt = &w->parts[t][p];
            if (!pt->assigned)
                continue;
            int congested = d2g_writer_partition_congested(w->writer, (uint8_t)t, p,
                                                           pt->congested ? limit / 2 : limit);
            if (congested != pt->congested) {
                pt->congested = congested;
                apply_pause(w, t, p);
                d2g_log(D2G_LOG_INFO, congested ? "partition_paused" : "partition_resumed", 0, NULL,
                        "%s [%d]: a document it feeds has %s than %zu dossiers waiting%s",
                        w->topics[t], p, congested ? "more" : "fewer",
                        congested ? limit : limit / 2,
                        full ? " (the worker is full: the limit is each document's share)" : "");
            }
            paused += pt->congested;
        }
    d2g_metric_set(w->m_paused, NULL, paused);
}

/* Every 5 s: consumer lag per partition, permits in use, whether Redis answers. */
static void sample(d2g_worker_t *w, int64_t now) {
    char err[D2G_ERRLEN], label[16];
    if (now - w->last_sample_ms < 5000)
        return;
    w->last_sample_ms = now;
    for (int p = 0; p < w->n_parts[T_MAIN]; p++) {
        if (!w->parts[T_MAIN][p].assigned)
            continue;
        int64_t lo = 0, hi = 0;
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(l, w->boot->kafka.topic, p);
        if (rd_kafka_position(w->consumer, l) == RD_KAFKA_RESP_ERR_NO_ERROR &&
            rd_kafka_get_watermark_offsets(w->consumer, w->boot->kafka.topic, p, &lo, &hi) ==
                RD_KAFKA_RESP_ERR_NO_ERROR) {
            int64_t pos = l->elems[0].offset;
            snprintf(label, sizeof(label), "%d", p);
            const char *lv[] = {label};
            d2g_metric_set(w->m_lag, lv, (double)(pos >= 0 ? hi - pos : hi - lo));
        }
        rd_kafka_topic_partition_list_destroy(l);
    }
    d2g_writer_sample(w->writer);
    redisReply *rep = d2g_redis_cmd(w->redis, err, sizeof(err), "PING");
    d2g_service_redis(w->svc, rep != NULL, err);
    if (rep)
        freeReplyObject(rep);
}

static void on_kafka_error(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
    d2g_worker_t *w = opaque;
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN && rk == w->consumer)
        d2g_service_kafka(w->svc, 0);
    d2g_log(D2G_LOG_WARN, "kafka_error", 0, NULL, "%s", reason);
}

/* SIGTERM: stop fetching, write what is in hand, have the copies
 * acknowledged, commit and leave the group, all within
 * worker.shutdown_grace_s: writing may take the first 60% of it, the
 * remaining copies the next 10%, the commit and the final revocation the
 * rest. */
static void shut_down(d2g_worker_t *w) {
    int64_t now = d2g_clock_mono_ms();
    size_t left = d2g_writer_pending(w->writer, NULL, NULL);
    if (left)
        d2g_log(D2G_LOG_WARN, "stop_deadline", 0, NULL,
                "%zu dossiers not written; their messages will be read again", left);
    int64_t grace = w->stop_deadline - now;
    int64_t copies_end = now + grace / 4;
    while ((rd_kafka_outq_len(w->producer) > 0 || w->n_resend > 0) &&
           d2g_clock_mono_ms() < copies_end)
        serve(w, 10);
    int64_t rest = w->stop_deadline - d2g_clock_mono_ms();
    commit_bounded(w, rest / 3 < 1000 ? 1000 : (int)(rest / 3));
    rest = w->stop_deadline - d2g_clock_mono_ms();
    close_bounded(w, rest < 1000 ? 1000 : (int)rest);
}

/* A reload (SIGHUP, the file, the fleet's generation), between steps: new
 * messages are read with the new configuration (a procedure removed: its
 * messages are dead letters, replayable; one added: written), and the
 * writer's lanes take its servers, keys and limits (d2g_writer_apply). */
static void reload_tick(d2g_worker_t *w, int64_t now) {
    if (!w->live || !(d2g_reload_tick(w->live, now) || d2g_reload_current(w->live) != w->cfg))
        return;
    const d2g_config_t *cfg = d2g_reload_current(w->live);
    d2g_config_t *old = w->cfg_held;
    w->cfg_held = d2g_config_ref(cfg);
    w->cfg = cfg;
    d2g_writer_apply(w->writer, cfg);
    d2g_config_free(old);
}

void d2g_worker_set_unknown_hook(d2g_worker_t *w, d2g_worker_unknown_cb cb, void *ud) {
    w->unknown_cb = cb;
    w->unknown_ud = ud;
}

int d2g_worker_run(d2g_worker_t *w, volatile sig_atomic_t *stop) {
    int64_t write_end = 0;
    for (;;) {
        int64_t now = d2g_clock_mono_ms();
        if (*stop && !w->stopping) {
            int64_t grace = (int64_t)w->cfg->worker.shutdown_grace_s * 1000;
            w->stopping = 1;
            w->stop_deadline = now + grace;
            write_end = now + grace * 6 / 10;
            d2g_writer_flush_all(w->writer, 1);
            for (int t = 0; t < N_TOPICS; t++)
                for (int p = 0; p < w->n_parts[t]; p++)
                    apply_pause(w, t, p);
            d2g_log(D2G_LOG_INFO, "stopping", 0, NULL, "writing the %zu dossiers in hand",
                    d2g_writer_pending(w->writer, NULL, NULL));
        }
        if (w->stopping && (d2g_writer_pending(w->writer, NULL, NULL) == 0 || now >= write_end))
            break;

        /* Messages in (the consumer also serves rebalances here), for at most
         * CONSUME_SLICE_MS: decoding is most of a worker's CPU, and Grist's
         * answers must not wait behind it, or the document idles between
         * batches. more: messages may be waiting still (then no wait below). */
        int more = 0;
        for (int i = 0; i < POLL_BATCH; i++) {
            if (i > 0 && d2g_clock_mono_ms() - now >= CONSUME_SLICE_MS) {
                more = 1;
                break;
            }
            rd_kafka_message_t *m = rd_kafka_consumer_poll(w->consumer, 0);
            if (!m)
                break;
            more = i == POLL_BATCH - 1;
            int kept = 0;
            if (!m->err)
                kept = handle_message(w, m);
            else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                d2g_log(D2G_LOG_WARN, "kafka_error", 0, NULL, "%s", rd_kafka_message_errstr(m));
            if (!kept)
                rd_kafka_message_destroy(m);
        }
        release_held(w);
        rd_kafka_poll(w->producer, 0);
        out_resend_due(w, now);
        check_congestion(w, now);
        /* The services' readiness rule (service.h): while the brokers are
         * down, a metadata request now and then tells when one is back, for
         * an idle worker consumes nothing that would say so. */
        d2g_service_kafka_recheck(w->svc, w->consumer, now);
        d2g_service_heartbeat(w->svc);
        sample(w, now);
        if (!w->stopping)
            reload_tick(w, now);

        /* Grist writes out. */
        d2g_writer_step(w->writer, now);
        int64_t due = d2g_writer_next_due(w->writer) - d2g_clock_mono_ms();
        int wait = more || due < 0 ? 0 : due > 20 ? 20 : (int)due;
        d2g_writer_poll(w->writer, wait);
    }
    shut_down(w);
    d2g_log(D2G_LOG_INFO, "stopped", 0, NULL, "%" PRIu64 " consumed, %" PRIu64 " written, %" PRIu64
            " dead-lettered, %" PRIu64 " to the retry topic", w->consumed, w->written,
            w->dead_lettered, w->forwarded);
    return 0;
}

d2g_worker_t *d2g_worker_new(d2g_reload_t *live, d2g_service_t *svc, char *err, size_t errlen) {
    const d2g_config_t *cfg = d2g_reload_current(live);
    static const char *const consumer_defaults[] = {
        "auto.offset.reset", "earliest",
        "auto.commit.interval.ms", "1000",
        /* Prefetch at most 16 MB (librdkafka's default is 64 MB): what is parsed
         * and waiting is bounded by worker.max_buffered_total anyway. */
        "queued.max.messages.kbytes", "16384",
        NULL,
    };
    char group_override[] = "group.id";
    const char *consumer_overrides[] = {
        group_override, cfg->kafka.consumer_group,
        "partition.assignment.strategy", "cooperative-sticky",
        "enable.auto.offset.store", "false", /* stored by us, when done */
        "enable.auto.commit", "true",
        "enable.partition.eof", "false",
        NULL,
    };
    /* A copy is of a message the brokers already accepted: let it be as large
     * (librdkafka's own default would refuse copies over 1 MB). A retry copy
     * goes to the partition its key names, as the producer's messages do. */
    static const char *const out_defaults[] = {"message.max.bytes", "104857600",
                                               "partitioner", "murmur2_random", NULL};
    static const char *const out_overrides[] = {"enable.idempotence", "true", "acks", "all", NULL};
    char cause[512], host[64] = "host";
    d2g_worker_t *w = d2g_calloc(1, sizeof(*w));
    w->live = live;
    w->boot = d2g_config_ref(cfg);
    w->cfg_held = d2g_config_ref(cfg);
    w->cfg = cfg;
    w->svc = svc;
    w->topics[T_MAIN] = w->boot->kafka.topic;
    w->topics[T_RETRY] = w->boot->kafka.retry_topic;
    static const char *const by_proc[] = {"procedure"};
    static const char *const by_part[] = {"partition"};
    w->m_consumed = d2g_metrics_counter(svc->metrics, "ds2grist_dossiers_consumed_total",
                                        "Dossier messages consumed, by configured procedure", 1, by_proc);
    w->m_dead = d2g_metrics_counter(svc->metrics, "ds2grist_dead_lettered_total",
                                    "Messages copied to the dead-letter topic", 0, NULL);
    w->m_forwarded = d2g_metrics_counter(svc->metrics, "ds2grist_retry_forwarded_total",
                                         "Messages of parked documents copied to the retry topic",
                                         0, NULL);
    w->m_retry_consumed = d2g_metrics_counter(svc->metrics, "ds2grist_retry_consumed_total",
                                              "Messages of the retry topic taken in, once due",
                                              0, NULL);
    w->m_lag = d2g_metrics_gauge(svc->metrics, "ds2grist_consumer_lag",
                                 "Messages not yet consumed, per assigned partition", 1, by_part);
    w->m_buffered = d2g_metrics_gauge(svc->metrics, "ds2grist_worker_dossiers_buffered",
                                      "Dossiers held by this worker, queued or being written", 0, NULL);
    w->m_paused = d2g_metrics_gauge(svc->metrics, "ds2grist_worker_partitions_paused",
                                    "Assigned partitions paused because documents they feed are behind",
                                    0, NULL);
    gethostname(host, sizeof(host) - 1);
    unsigned seed = (unsigned)(d2g_clock_wall_ms() ^ getpid());
    snprintf(w->id, sizeof(w->id), "%s:%d:%08x", host, (int)getpid(), rand_r(&seed));

    if (d2g_redis_connect(cfg->redis.url, cfg->redis.username, cfg->redis.password,
                          cfg->redis.namespace, 5000, &w->redis, err, errlen))
        goto fail;
    d2g_reload_watch_redis(live, w->redis);
    d2g_writer_hooks_t hooks = {.written = on_written, .failed = on_failed, .shed = on_shed, .ud = w};
    if (!(w->writer = d2g_writer_new(cfg, w->redis, w->id, svc->metrics, hooks, err, errlen)))
        goto fail;

    rd_kafka_conf_t *dconf = d2g_kafka_conf_new(cfg, out_defaults, out_overrides, err, errlen);
    if (!dconf)
        goto fail;
    rd_kafka_conf_set_dr_msg_cb(dconf, on_delivery);
    rd_kafka_conf_set_error_cb(dconf, on_kafka_error);
    rd_kafka_conf_set_opaque(dconf, w);
    if (!(w->producer = rd_kafka_new(RD_KAFKA_PRODUCER, dconf, cause, sizeof(cause)))) {
        rd_kafka_conf_destroy(dconf);
        d2g_err_set(err, errlen, "kafka producer (dead letters, retry copies): %s", cause);
        goto fail;
    }

    rd_kafka_conf_t *conf = d2g_kafka_conf_new(cfg, consumer_defaults, consumer_overrides, err, errlen);
    if (!conf)
        goto fail;
    rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    rd_kafka_conf_set_error_cb(conf, on_kafka_error);
    rd_kafka_conf_set_opaque(conf, w);
    if (!(w->consumer = rd_kafka_new(RD_KAFKA_CONSUMER, conf, cause, sizeof(cause)))) {
        rd_kafka_conf_destroy(conf);
        d2g_err_set(err, errlen, "kafka consumer: %s", cause);
        goto fail;
    }
    rd_kafka_poll_set_consumer(w->consumer);
    /* One group for both topics: a worker takes parked documents' messages
     * back from the retry topic when they are due. */
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(2);
    rd_kafka_topic_partition_list_add(topics, cfg->kafka.topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_topic_partition_list_add(topics, cfg->kafka.retry_topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(w->consumer, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (e) {
        d2g_err_set(err, errlen, "kafka subscribe %s, %s: %s", cfg->kafka.topic,
                    cfg->kafka.retry_topic, rd_kafka_err2str(e));
        goto fail;
    }
    return w;
fail:
    d2g_worker_free(w);
    return NULL;
}

void d2g_worker_free(d2g_worker_t *w) {
    if (!w)
        return;
    /* Closed (or given up on) by d2g_worker_run; never block on it again here. */
    for (int t = 0; t < N_TOPICS; t++)
        for (int p = 0; p < w->n_parts[t]; p++)
            drop_held(&w->parts[t][p]);
    if (w->consumer)
        rd_kafka_destroy_flags(w->consumer, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    if (w->producer) {
        /* Copies still in flight: their delivery reports free them (failed, they
         * go to the resend list, freed below); their offsets were not stored. */
        w->freeing = 1;
        rd_kafka_purge(w->producer, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        for (int i = 0; i < 20 && rd_kafka_outq_len(w->producer) > 0; i++)
            rd_kafka_poll(w->producer, 50);
        rd_kafka_destroy(w->producer);
    }
    while (w->resend) {
        outmsg_t *o = w->resend;
        w->resend = o->next;
        out_free(o);
    }
    d2g_writer_free(w->writer);
    d2g_redis_free(w->redis);
    for (int t = 0; t < N_TOPICS; t++) {
        for (int p = 0; p < w->n_parts[t]; p++)
            d2g_offsets_free(w->parts[t][p].offsets);
        free(w->parts[t]);
    }
    d2g_config_free(w->cfg_held);
    d2g_config_free(w->boot);
    free(w);
}
