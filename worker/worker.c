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

#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Messages taken from the consumer per loop turn, between writer steps. */
#define POLL_BATCH 500
/* How often congestion (pause/resume) is re-evaluated. */
#define CONGESTION_EVERY_MS 100

typedef struct partition {
    d2g_offsets_t *offsets;
    int assigned;
    int paused;
} partition_t;

/* What a dead-letter message stands for, until its delivery report. */
typedef struct dlq_ref {
    size_t n;
    d2g_msgref_t msgs[];
} dlq_ref_t;

struct d2g_worker {
    const d2g_config_t *cfg;
    rd_kafka_t *consumer;
    rd_kafka_t *dlq;
    d2g_redis_t *redis;
    d2g_writer_t *writer;
    partition_t *parts;
    int n_parts;
    char id[128];
    int stopping;
    int64_t last_congestion_check;
    int full; /* more than worker.max_buffered_total waiting: limits shrink to fair shares */
    uint64_t consumed, written, dead_lettered;
    d2g_service_t *svc;
    d2g_metric_t *m_consumed, *m_dead, *m_lag, *m_buffered, *m_paused;
    int64_t last_sample_ms;
};

static partition_t *part(d2g_worker_t *w, int32_t p) {
    if (p < 0)
        return NULL;
    if (p >= w->n_parts) {
        int n = p + 16;
        partition_t *v = d2g_realloc(w->parts, (size_t)n * sizeof(partition_t));
        memset(v + w->n_parts, 0, (size_t)(n - w->n_parts) * sizeof(partition_t));
        w->parts = v;
        w->n_parts = n;
    }
    partition_t *pt = &w->parts[p];
    if (!pt->offsets)
        pt->offsets = d2g_offsets_new();
    return pt;
}

/* A message is done (written or dead-lettered): store the offset if the
 * partition's low-water mark moved. */
static void msg_done(d2g_worker_t *w, const d2g_msgref_t *m) {
    partition_t *pt = part(w, m->partition);
    if (!pt || !pt->assigned)
        return;
    int64_t store = d2g_offsets_done(pt->offsets, m->epoch, m->offset);
    if (store < 0)
        return;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, w->cfg->kafka.topic, m->partition)->offset = store;
    rd_kafka_resp_err_t err = rd_kafka_offsets_store(w->consumer, l);
    if (err)
        d2g_log(D2G_LOG_WARN, "offset_store_failed", 0, NULL, "partition %d offset %" PRId64 ": %s",
                (int)m->partition, store, rd_kafka_err2str(err));
    rd_kafka_topic_partition_list_destroy(l);
}

/* --- dead-letter topic ------------------------------------------------------ */

static void on_dlq_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *ud) {
    (void)rk;
    d2g_worker_t *w = ud;
    dlq_ref_t *ref = m->_private;
    if (m->err) {
        /* Send it again (librdkafka has already retried for message.timeout.ms):
         * the offset stays behind it until the dead-letter topic has it. */
        d2g_log(D2G_LOG_ERROR, "dlq_delivery_failed", 0, NULL, "%s; sending it again",
                rd_kafka_err2str(m->err));
        rd_kafka_headers_t *h = NULL, *copy = NULL;
        if (rd_kafka_message_headers(m, &h) == RD_KAFKA_RESP_ERR_NO_ERROR)
            copy = rd_kafka_headers_copy(h);
        rd_kafka_resp_err_t e = rd_kafka_producev(
            w->dlq, RD_KAFKA_V_TOPIC(w->cfg->kafka.dlq_topic), RD_KAFKA_V_KEY(m->key, m->key_len),
            RD_KAFKA_V_VALUE(m->payload, m->len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_HEADERS(copy), RD_KAFKA_V_OPAQUE(ref), RD_KAFKA_V_END);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
            return; /* ref travels with the new message */
        if (copy)
            rd_kafka_headers_destroy(copy);
        d2g_log(D2G_LOG_ERROR, "dlq_produce_failed", 0, NULL, "%s: the partition's offset stays"
                " behind this message until a restart", rd_kafka_err2str(e));
    } else {
        const char *none[] = {NULL};
        w->dead_lettered++;
        d2g_metric_inc(w->m_dead, none, 1);
        for (size_t i = 0; i < ref->n; i++)
            msg_done(w, &ref->msgs[i]);
    }
    free(ref);
}

/* Copies a message to the dead-letter topic with the reason in headers; its
 * offsets (refs) are stored once the dead-letter topic has it. */
static void dead_letter(d2g_worker_t *w, const char *key, size_t key_len, const void *value,
                        size_t len, int32_t src_partition, int64_t src_offset,
                        const d2g_msgref_t *refs, size_t n_refs, const char *reason) {
    char part_s[16], off_s[24], at[D2G_TIME_BUFLEN];
    snprintf(part_s, sizeof(part_s), "%d", (int)src_partition);
    snprintf(off_s, sizeof(off_s), "%" PRId64, src_offset);
    d2g_clock_format_ms(d2g_clock_wall_ms(), at);
    dlq_ref_t *ref = d2g_malloc(sizeof(dlq_ref_t) + n_refs * sizeof(d2g_msgref_t));
    ref->n = n_refs;
    memcpy(ref->msgs, refs, n_refs * sizeof(d2g_msgref_t));
    rd_kafka_headers_t *h = rd_kafka_headers_new(5);
    rd_kafka_header_add(h, "d2g-error", -1, reason, -1);
    rd_kafka_header_add(h, "d2g-source-topic", -1, w->cfg->kafka.topic, -1);
    rd_kafka_header_add(h, "d2g-source-partition", -1, part_s, -1);
    rd_kafka_header_add(h, "d2g-source-offset", -1, off_s, -1);
    rd_kafka_header_add(h, "d2g-failed-at", -1, at, -1);
    rd_kafka_resp_err_t err;
    for (;;) {
        err = rd_kafka_producev(w->dlq, RD_KAFKA_V_TOPIC(w->cfg->kafka.dlq_topic),
                                RD_KAFKA_V_KEY(key, key_len), RD_KAFKA_V_VALUE((void *)value, len),
                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(h),
                                RD_KAFKA_V_OPAQUE(ref), RD_KAFKA_V_END);
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
            break;
        rd_kafka_poll(w->dlq, 100);
    }
    if (err) {
        d2g_log(D2G_LOG_ERROR, "dlq_produce_failed", 0, NULL, "%s", rd_kafka_err2str(err));
        rd_kafka_headers_destroy(h);
        free(ref);
        return;
    }
    d2g_log(D2G_LOG_WARN, "dead_lettered", 0, NULL, "partition %d offset %" PRId64 ": %s",
            (int)src_partition, src_offset, reason);
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
    const d2g_msgref_t *last = &item->msgs[item->n_msgs - 1];
    dead_letter(w, item->key, strlen(item->key), value ? value : "", value ? strlen(value) : 0,
                last->partition, last->offset, item->msgs, item->n_msgs, reason);
    free(value);
}

/* --- consuming ------------------------------------------------------------------ */

static void handle_message(d2g_worker_t *w, rd_kafka_message_t *m) {
    char err[D2G_ERRLEN];
    partition_t *pt = part(w, m->partition);
    if (!pt || !pt->assigned)
        return;
    if (d2g_offsets_add(pt->offsets, m->offset)) /* already seen (a re-delivery) */
        return;
    w->consumed++;
    d2g_service_kafka(w->svc, 1);
    d2g_msgref_t ref = {m->partition, m->offset, d2g_offsets_epoch(pt->offsets), 0};
    d2g_item_t *it = d2g_calloc(1, sizeof(*it));
    if (d2g_envelope_decode(m->payload, m->len, &it->env, err, sizeof(err))) {
        dead_letter(w, m->key ? m->key : "", m->key_len, m->payload, m->len, m->partition,
                    m->offset, &ref, 1, err);
        free(it);
        return;
    }
    it->proc = d2g_config_find_procedure(w->cfg, it->env.procedure);
    if (!it->proc) {
        snprintf(err, sizeof(err), "procedure %" PRId64 " is not configured in this worker",
                 it->env.procedure);
        dead_letter(w, m->key ? m->key : "", m->key_len, m->payload, m->len, m->partition,
                    m->offset, &ref, 1, err);
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
    it->enqueued_ms = d2g_clock_mono_ms();
    d2g_envelope_key(it->env.procedure, it->env.number, it->key, sizeof(it->key));
    d2g_writer_add(w->writer, it);
}

/* Commits the stored offsets, waiting at most timeout_ms (a synchronous
 * commit would wait as long as the brokers are unreachable). */
static void commit_bounded(d2g_worker_t *w, int timeout_ms) {
    rd_kafka_queue_t *q = rd_kafka_queue_new(w->consumer);
    rd_kafka_resp_err_t err = rd_kafka_commit_queue(w->consumer, NULL, q, NULL, NULL);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        rd_kafka_event_t *ev = rd_kafka_queue_poll(q, timeout_ms);
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
        while (!rd_kafka_consumer_closed(w->consumer) && d2g_clock_mono_ms() < end)
            rd_kafka_queue_poll_callback(q, 100);
        if (!rd_kafka_consumer_closed(w->consumer))
            d2g_log(D2G_LOG_WARN, "close_timeout", 0, NULL, "left without leaving the group cleanly "
                    "(brokers unreachable); the group rebalances after session.timeout.ms");
    }
    rd_kafka_queue_destroy(q);
}

/* Before partitions go: drop what was only queued for them (the new owner
 * reads it again), let the batches already being written finish, and if that
 * takes longer than any request can, take their items out of those batches so
 * that no later request of ours carries them past the new owner's writes. */
static void drain_partitions(d2g_worker_t *w, const rd_kafka_topic_partition_list_t *parts) {
    int64_t deadline = d2g_clock_mono_ms() + 2 * (int64_t)w->cfg->grist.timeout_s * 1000 + 30000;
    for (int i = 0; i < parts->cnt; i++)
        d2g_writer_partition(w->writer, 0, parts->elems[i].partition, 1, NULL);
    for (;;) {
        size_t busy = 0, in_flight;
        for (int i = 0; i < parts->cnt; i++) {
            d2g_writer_partition(w->writer, 0, parts->elems[i].partition, 0, &in_flight);
            busy += in_flight;
        }
        if (busy == 0)
            break;
        if (d2g_clock_mono_ms() > deadline) {
            d2g_log(D2G_LOG_WARN, "revoke_abandon", 0, NULL,
                    "%zu dossiers of revoked partitions still being written: left to their new owner", busy);
            for (int i = 0; i < parts->cnt; i++)
                d2g_writer_abandon_partition(w->writer, 0, parts->elems[i].partition);
            break;
        }
        d2g_writer_step(w->writer, d2g_clock_mono_ms());
        d2g_writer_poll(w->writer, 10);
        rd_kafka_poll(w->dlq, 0);
    }
    /* Dead letters of these partitions must be acknowledged before the commit. */
    rd_kafka_flush(w->dlq, 10000);
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque) {
    d2g_worker_t *w = opaque;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        for (int i = 0; i < parts->cnt; i++) {
            partition_t *pt = part(w, parts->elems[i].partition);
            d2g_offsets_reset(pt->offsets);
            pt->assigned = 1;
            pt->paused = 0;
        }
        rd_kafka_error_t *e = rd_kafka_incremental_assign(rk, parts);
        /* librdkafka keeps an application pause across revoke and re-assign:
         * a partition paused before it was revoked must not stay paused. */
        rd_kafka_resume_partitions(rk, parts);
        d2g_log(D2G_LOG_INFO, "partitions_assigned", 0, NULL, "%d partitions%s%s", parts->cnt,
                e ? ": " : "", e ? rd_kafka_error_string(e) : "");
        if (e)
            rd_kafka_error_destroy(e);
        return;
    }
    int lost = rd_kafka_assignment_lost(rk);
    drain_partitions(w, parts);
    if (!lost) /* offsets stored for what was done, committed before the partitions go */
        commit_bounded(w, 10000);
    for (int i = 0; i < parts->cnt; i++) {
        partition_t *pt = part(w, parts->elems[i].partition);
        d2g_offsets_reset(pt->offsets);
        pt->assigned = 0;
        pt->paused = 0;
    }
    rd_kafka_error_t *e = rd_kafka_incremental_unassign(rk, parts);
    d2g_log(D2G_LOG_INFO, lost ? "partitions_lost" : "partitions_revoked", 0, NULL,
            "%d partitions%s%s", parts->cnt, e ? ": " : "", e ? rd_kafka_error_string(e) : "");
    if (e)
        rd_kafka_error_destroy(e);
}

/* Pauses the partitions feeding a document that is too far behind
 * (worker.max_buffered dossiers waiting on it); each resumes at half the
 * limit. While the worker as a whole holds too many (worker.max_buffered_total:
 * a parsed dossier takes tens of kB, and one worker may serve many documents),
 * the limit of every document is also its fair share of that total, so the
 * documents holding the most pause and those with little waiting (a healthy
 * document beside a failing one) go on. What was fetched stays queued in the
 * writer. */
static void check_congestion(d2g_worker_t *w, int64_t now) {
    if (now - w->last_congestion_check < CONGESTION_EVERY_MS || w->stopping)
        return;
    w->last_congestion_check = now;
    size_t limit = (size_t)w->cfg->worker.max_buffered;
    size_t docs = 0, total = (size_t)w->cfg->worker.max_buffered_total;
    size_t pending = d2g_writer_pending(w->writer, &docs);
    int full = pending > (w->full ? total / 2 : total);
    if (full != w->full)
        d2g_log(D2G_LOG_INFO, full ? "worker_full" : "worker_not_full", 0, NULL,
                "%zu dossiers waiting in this worker on %zu documents (limit %zu)", pending, docs,
                total);
    w->full = full;
    d2g_metric_set(w->m_buffered, NULL, (double)pending);
    if (full && docs > 0 && total / docs < limit)
        limit = total / docs > 0 ? total / docs : 1; /* each document's fair share */
    for (int p = 0; p < w->n_parts; p++) {
        partition_t *pt = &w->parts[p];
        if (!pt->assigned)
            continue;
        int congested = d2g_writer_partition_congested(w->writer, 0, p, pt->paused ? limit / 2 : limit);
        if (congested == pt->paused)
            continue;
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(l, w->cfg->kafka.topic, p);
        if (congested)
            rd_kafka_pause_partitions(w->consumer, l);
        else
            rd_kafka_resume_partitions(w->consumer, l);
        rd_kafka_topic_partition_list_destroy(l);
        pt->paused = congested;
        d2g_log(D2G_LOG_INFO, congested ? "partition_paused" : "partition_resumed", 0, NULL,
                "partition %d: a document it feeds has %s than %zu dossiers waiting%s", p,
                congested ? "more" : "fewer", congested ? limit : limit / 2,
                full ? " (the worker is full: the limit is each document's share)" : "");
    }
    int paused = 0;
    for (int p = 0; p < w->n_parts; p++)
        paused += w->parts[p].assigned && w->parts[p].paused;
    d2g_metric_set(w->m_paused, NULL, paused);
}

/* Every 5 s: consumer lag per partition, permits in use, whether Redis answers. */
static void sample(d2g_worker_t *w, int64_t now) {
    char err[D2G_ERRLEN], label[16];
    if (now - w->last_sample_ms < 5000)
        return;
    w->last_sample_ms = now;
    for (int p = 0; p < w->n_parts; p++) {
        if (!w->parts[p].assigned)
            continue;
        int64_t lo = 0, hi = 0;
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(l, w->cfg->kafka.topic, p);
        if (rd_kafka_position(w->consumer, l) == RD_KAFKA_RESP_ERR_NO_ERROR &&
            rd_kafka_get_watermark_offsets(w->consumer, w->cfg->kafka.topic, p, &lo, &hi) ==
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
    (void)rk;
    d2g_worker_t *w = opaque;
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
        d2g_service_kafka(w->svc, 0);
    d2g_log(D2G_LOG_WARN, "kafka_error", 0, NULL, "%s", reason);
}

static void pause_all(d2g_worker_t *w) {
    rd_kafka_topic_partition_list_t *l = NULL;
    if (rd_kafka_assignment(w->consumer, &l) == RD_KAFKA_RESP_ERR_NO_ERROR && l) {
        rd_kafka_pause_partitions(w->consumer, l);
        rd_kafka_topic_partition_list_destroy(l);
    }
}

int d2g_worker_run(d2g_worker_t *w, volatile sig_atomic_t *stop) {
    int64_t deadline = 0;
    for (;;) {
        int64_t now = d2g_clock_mono_ms();
        if (*stop && !w->stopping) {
            w->stopping = 1;
            deadline = now + (int64_t)w->cfg->worker.shutdown_grace_s * 1000;
            d2g_writer_flush_all(w->writer, 1);
            pause_all(w);
            d2g_log(D2G_LOG_INFO, "stopping", 0, NULL, "writing the %zu dossiers in hand",
                    d2g_writer_pending(w->writer, NULL));
        }
        if (w->stopping && (d2g_writer_pending(w->writer, NULL) == 0 || now >= deadline))
            break;

        /* Messages in (the consumer also serves rebalances here). */
        for (int i = 0; i < POLL_BATCH; i++) {
            rd_kafka_message_t *m = rd_kafka_consumer_poll(w->consumer, 0);
            if (!m)
                break;
            if (!m->err)
                handle_message(w, m);
            else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                d2g_log(D2G_LOG_WARN, "kafka_error", 0, NULL, "%s", rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
        }
        rd_kafka_poll(w->dlq, 0);
        check_congestion(w, now);
        d2g_service_heartbeat(w->svc);
        sample(w, now);

        /* Grist writes out. */
        d2g_writer_step(w->writer, now);
        int64_t due = d2g_writer_next_due(w->writer) - d2g_clock_mono_ms();
        int wait = due < 0 ? 0 : due > 20 ? 20 : (int)due;
        d2g_writer_poll(w->writer, wait);
    }
    size_t left = d2g_writer_pending(w->writer, NULL);
    if (left)
        d2g_log(D2G_LOG_WARN, "stop_deadline", 0, NULL,
                "%zu dossiers not written; their messages will be read again", left);
    rd_kafka_flush(w->dlq, 10000);
    commit_bounded(w, 5000);
    close_bounded(w, 10000);
    d2g_log(D2G_LOG_INFO, "stopped", 0, NULL, "%" PRIu64 " consumed, %" PRIu64 " written, %" PRIu64
            " dead-lettered", w->consumed, w->written, w->dead_lettered);
    return 0;
}

d2g_worker_t *d2g_worker_new(const d2g_config_t *cfg, d2g_service_t *svc, char *err,
                             size_t errlen) {
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
    /* A dead letter is a copy of a message the brokers already accepted: let it be
     * as large (librdkafka's own default would refuse copies over 1 MB). */
    static const char *const dlq_defaults[] = {"message.max.bytes", "104857600", NULL};
    static const char *const dlq_overrides[] = {"enable.idempotence", "true", "acks", "all", NULL};
    char cause[512], host[64] = "host";
    d2g_worker_t *w = d2g_calloc(1, sizeof(*w));
    w->cfg = cfg;
    w->svc = svc;
    static const char *const by_proc[] = {"procedure"};
    static const char *const by_part[] = {"partition"};
    w->m_consumed = d2g_metrics_counter(svc->metrics, "ds2grist_dossiers_consumed_total",
                                        "Dossier messages consumed, by configured procedure", 1, by_proc);
    w->m_dead = d2g_metrics_counter(svc->metrics, "ds2grist_dead_lettered_total",
                                    "Messages copied to the dead-letter topic", 0, NULL);
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
    d2g_writer_hooks_t hooks = {on_written, on_failed, NULL, w}; /* shed: the retry topic (to come) */
    if (!(w->writer = d2g_writer_new(cfg, w->redis, w->id, svc->metrics, hooks, err, errlen)))
        goto fail;

    rd_kafka_conf_t *dconf = d2g_kafka_conf_new(cfg, dlq_defaults, dlq_overrides, err, errlen);
    if (!dconf)
        goto fail;
    rd_kafka_conf_set_dr_msg_cb(dconf, on_dlq_delivery);
    rd_kafka_conf_set_error_cb(dconf, on_kafka_error);
    rd_kafka_conf_set_opaque(dconf, w);
    if (!(w->dlq = rd_kafka_new(RD_KAFKA_PRODUCER, dconf, cause, sizeof(cause)))) {
        rd_kafka_conf_destroy(dconf);
        d2g_err_set(err, errlen, "kafka dead-letter producer: %s", cause);
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
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, cfg->kafka.topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(w->consumer, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (e) {
        d2g_err_set(err, errlen, "kafka subscribe %s: %s", cfg->kafka.topic, rd_kafka_err2str(e));
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
    if (w->consumer)
        rd_kafka_destroy_flags(w->consumer, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    if (w->dlq)
        rd_kafka_destroy(w->dlq);
    d2g_writer_free(w->writer);
    d2g_redis_free(w->redis);
    for (int i = 0; i < w->n_parts; i++)
        d2g_offsets_free(w->parts[i].offsets);
    free(w->parts);
    free(w);
}
