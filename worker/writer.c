/* writer.c - the lanes of a worker: items in, batches out, answers back; see writer.h. */
#include "writer.h"
#include "colmap_store.h"
#include "flush.h"
#include "lane.h"
#include "syncstat.h"
#include "writer_int.h"
#include "attach.h"

#include "ds2grist/alloc.h"
#include "ds2grist/clock.h"
#include "ds2grist/err.h"
#include "ds2grist/grist.h"
#include "ds2grist/log.h"
#include "ds2grist/permits.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- items out ----------------------------------------------------------------- */

void d2g_writer_finish(d2g_writer_t *w, d2g_item_t **items, size_t n, const char *failure) {
    for (size_t i = 0; i < n; i++) {
        if (!items[i])
            continue;
        if (failure) {
            w->stats.failed_items++;
            w->hooks.failed(w->hooks.ud, items[i], failure);
        } else {
            char proc[24];
            snprintf(proc, sizeof(proc), "%" PRId64, items[i]->proc->number);
            const char *lv[] = {proc};
            d2g_metric_inc(w->m_written, lv, 1);
            w->hooks.written(w->hooks.ud, items[i]);
        }
        d2g_item_free(items[i]);
        items[i] = NULL;
    }
}

void d2g_writer_shed_items(d2g_writer_t *w, d2g_lane_t *l, d2g_item_t **items, size_t n) {
    int64_t until = d2g_clock_wall_ms();
    d2g_lane_parked(l, d2g_clock_mono_ms(), &until);
    for (size_t i = 0; i < n; i++) {
        if (!items[i])
            continue;
        w->stats.shed_items++;
        w->hooks.shed(w->hooks.ud, items[i], until, l->reason ? l->reason : D2G_LANE_UNAVAILABLE);
        d2g_item_free(items[i]);
        items[i] = NULL;
    }
}

/* --- lanes ------------------------------------------------------------------------ */

static d2g_lane_t *lane_find(const d2g_writer_t *w, const d2g_procedure_t *proc) {
    char key[600];
    snprintf(key, sizeof(key), "%s/%s", proc->grist_server->name, proc->document);
    json_t *slot = json_object_get(w->lane_index, key);
    return slot ? w->lanes[json_integer_value(slot)] : NULL;
}

static d2g_lane_t *lane_for(d2g_writer_t *w, const d2g_procedure_t *proc, const d2g_config_t *held) {
    d2g_lane_t *l = lane_find(w, proc);
    if (l)
        return l;
    char err[D2G_ERRLEN];
    if (!(l = d2g_lane_new(w->redis, proc->grist_server, proc->document, err, sizeof(err)))) {
        /* The configuration's validation bounds every name: cannot happen. */
        d2g_log(D2G_LOG_ERROR, "lane_unusable", proc->number, proc->document, "[queue] %s", err);
        abort();
    }
    l->held = d2g_config_ref(held);
    /* Its first status write after one period (then every period). */
    l->status_last = d2g_clock_mono_ms();
    l->status_due = l->status_last + (int64_t)w->cfg->worker.status_interval_s * 1000;
    if (w->n_lanes == w->cap_lanes) {
        w->cap_lanes = w->cap_lanes ? w->cap_lanes * 2 : 16;
        w->lanes = d2g_realloc(w->lanes, w->cap_lanes * sizeof(*w->lanes));
    }
    json_object_set_new(w->lane_index, l->doc.label, json_integer((json_int_t)w->n_lanes));
    w->lanes[w->n_lanes++] = l;
    return l;
}

/* The lane of a procedure's document, to write to: the first use loads the
 * column map (a lane kept for its status table alone holds none). */
static d2g_lane_t *lane_used(d2g_writer_t *w, const d2g_procedure_t *proc, const d2g_config_t *held) {
    char err[D2G_ERRLEN];
    d2g_lane_t *l = lane_for(w, proc, held ? held : w->cfg);
    if (!l->used) {
        /* Start from the column map the fleet persisted: ids stay the same everywhere. */
        if (d2g_colmap_store_load(w->redis, l->colmap_key, l->colmap, err, sizeof(err)))
            d2g_lane_log(l, D2G_LOG_WARN, "queue", "redis_error", err, "column map not read; merged later");
        l->colmap_synced = d2g_colmap_generation(l->colmap);
        l->used = 1;
    }
    return l;
}

static d2g_lane_t *lane_get(d2g_writer_t *w, const d2g_item_t *item) {
    return lane_used(w, item->proc, item->held);
}

d2g_lane_t *d2g_writer_find_lane(const d2g_writer_t *w, const d2g_procedure_t *proc) {
    return lane_find(w, proc);
}

d2g_lane_t *d2g_writer_lane(d2g_writer_t *w, const d2g_procedure_t *proc) {
    return lane_used(w, proc, NULL);
}

/* With a sync-status table, every configured document has a lane, so that
 * the documents nothing is written to show their status too. */
static void lanes_for_all(d2g_writer_t *w) {
    if (w->cfg->worker.status_interval_s <= 0)
        return;
    for (size_t i = 0; i < w->cfg->n_procedures; i++)
        lane_for(w, &w->cfg->procedures[i], w->cfg);
}

static void publish(d2g_writer_t *w, d2g_lane_t *l) {
    if (l->pub_state == l->state && l->pub_reason == l->reason)
        return;
    if (l->state != l->pub_state)
        d2g_lane_log(l, l->state == D2G_LANE_ACTIVE ? D2G_LOG_INFO : D2G_LOG_WARN, "queue",
                     "lane_state", l->state == D2G_LANE_ACTIVE ? NULL : l->error, "%s -> %s%s%s",
                     d2g_lane_state_name(l->pub_state), d2g_lane_state_name(l->state),
                     l->reason ? ": " : "", l->reason ? l->reason : "");
    d2g_lane_publish(l, w->redis, w->worker_id);
    if (l->state != l->pub_state && w->cfg->worker.status_interval_s > 0) {
        /* The agents see it change with the next write, never sooner than a
         * period after the last one: a lane flapping on a failing document
         * adds no requests. */
        int64_t next = l->status_last + (int64_t)w->cfg->worker.status_interval_s * 1000;
        int64_t now = d2g_clock_mono_ms();
        l->status_due = next > now ? next : now;
        l->status_now = 1;
    }
    l->pub_state = l->state;
    l->pub_reason = l->reason;
}

void d2g_writer_add(d2g_writer_t *w, d2g_item_t *item) {
    d2g_lane_t *l = lane_get(w, item);
    if (l->state == D2G_LANE_PARKED && w->hooks.shed) {
        d2g_writer_shed_items(w, l, &item, 1);
        return;
    }
    d2g_lane_add(l, item);
}

int d2g_writer_parked(d2g_writer_t *w, const d2g_procedure_t *proc, int64_t *not_before_wall_ms,
                      const char **reason) {
    d2g_lane_t *l = lane_find(w, proc);
    if (!l || !w->hooks.shed || !d2g_lane_parked(l, d2g_clock_mono_ms(), not_before_wall_ms))
        return 0;
    if (reason)
        *reason = l->reason ? l->reason : D2G_LANE_UNAVAILABLE;
    return 1;
}

static void remove_flight(d2g_lane_t *l, size_t k) {
    memmove(l->flights + k, l->flights + k + 1, (l->n_flights - k - 1) * sizeof(l->flights[0]));
    l->n_flights--;
}

/* A parked lane holds nothing: its batches (unless a request of theirs is in
 * flight) and its queue go to the retry topic; a probe stands in. */
static void shed_lane(d2g_writer_t *w, d2g_lane_t *l) {
    for (size_t k = 0; k < l->n_flights;) {
        d2g_flush_t *f = l->flights[k];
        if (d2g_flush_waiting(f) || !d2g_flush_items(f)) {
            k++;
            continue;
        }
        size_t n = 0;
        d2g_item_t **items = d2g_flush_take_items(f, &n);
        d2g_writer_shed_items(w, l, items, n);
        free(items);
        d2g_flush_free(f, 1);
        remove_flight(l, k);
    }
    size_t n = 0;
    d2g_item_t **items = d2g_lane_take_all(l, &n);
    if (n)
        d2g_lane_log(l, D2G_LOG_WARN, "queue", "lane_shed", l->reason, "%zu dossiers to the retry topic", n);
    d2g_writer_shed_items(w, l, items, n);
    free(items);
}

static int lane_due(const d2g_writer_t *w, const d2g_lane_t *l, int64_t now) {
    if (w->flush_all || l->groups || !l->head)
        return 1;
    if (l->head->enqueued_ms + w->cfg->worker.linger_ms <= now)
        return 1;
    /* Fill the batch a little longer, unless it is already full. */
    size_t bytes = 0, target = d2g_lane_batch_target(l, (size_t)w->cfg->worker.batch_bytes);
    for (const d2g_item_t *it = l->head; it && bytes < target; it = it->next)
        bytes += it->bytes;
    return bytes >= target;
}

/* How many batches the lane may have in flight: two when its document's
 * limit allows (Grist parses the next while it applies one), one while it is
 * not healthy. */
static size_t max_flights(const d2g_lane_t *l) {
    if (l->state != D2G_LANE_ACTIVE || l->doc.permits < 2)
        return 1;
    return D2G_LANE_FLIGHTS;
}

/* Starts a batch if the lane has room for one and something due. */
static int lane_start(d2g_writer_t *w, d2g_lane_t *l, int64_t now) {
    if (l->n_flights >= max_flights(l) || (!l->head && !l->groups) || l->next_try > now ||
        !lane_due(w, l, now))
        return 0;
    const json_t *busy[D2G_LANE_FLIGHTS];
    for (size_t k = 0; k < l->n_flights; k++)
        busy[k] = d2g_flush_keys(l->flights[k]);
    size_t n = 0;
    d2g_item_t **items = d2g_lane_take(l, (size_t)w->cfg->worker.batch_bytes, busy, l->n_flights, &n);
    if (!n) {
        free(items);
        return 0;
    }
    l->flights[l->n_flights++] = d2g_flush_new(l, items, n);
    return 1;
}

/* The document's sync-status table (syncstat.h): one write per period, by
 * the worker whose turn it is, beside the dossiers' batches; none while the
 * lane is parked. */
static void status_step(d2g_writer_t *w, d2g_lane_t *l, int64_t now) {
    char err[D2G_ERRLEN];
    int64_t interval = (int64_t)w->cfg->worker.status_interval_s * 1000;
    if (l->status) {
        if (d2g_flush_waiting(l->status))
            return;
        if (l->state == D2G_LANE_PARKED)
            d2g_flush_drop(w, l->status); /* its lock, if it holds it, goes back */
        else if (d2g_flush_step(w, l->status, now))
            d2g_flush_free(l->status, 1);
        else
            return;
        l->status = NULL;
        return;
    }
    if (interval <= 0 || l->state == D2G_LANE_PARKED || now < l->status_due)
        return;
    l->status_due = now + interval;
    l->status_last = now;
    /* A change of this lane's state is this worker's to show: no turn. */
    int turn = l->status_now ? 1 : d2g_syncstat_turn(w->redis, l, w->worker_id, interval, err, sizeof(err));
    l->status_now = 0;
    if (turn < 0)
        d2g_lane_log(l, D2G_LOG_WARN, "status", "redis_error", err, "status table not written this period");
    if (turn <= 0)
        return;
    d2g_mapped_t rows;
    if (d2g_syncstat_collect(w->redis, w->cfg, l, w->secrets, w->n_secrets, &rows, &l->status_sent, err,
                             sizeof(err))) {
        d2g_lane_log(l, D2G_LOG_WARN, "status", "redis_error", err, "status table not written this period");
        return;
    }
    if (!rows.n_records) { /* no procedure of this configuration writes here any more */
        d2g_mapped_clear(&rows);
        return;
    }
    l->status = d2g_flush_new_status(l, &rows);
    if (d2g_flush_step(w, l->status, now)) {
        d2g_flush_free(l->status, 1);
        l->status = NULL;
    }
}

static void lane_step(d2g_writer_t *w, d2g_lane_t *l, int64_t now) {
    for (int guard = 0; guard < 16; guard++) {
        int progressed = 0;
        /* Without a retry topic (no shed hook) a parked lane keeps what it
         * holds and its batches retry themselves at the lane's backoff. */
        if (l->state == D2G_LANE_PARKED && w->hooks.shed) {
            shed_lane(w, l);
            if (!l->n_flights && l->next_try <= now)
                l->flights[l->n_flights++] = d2g_flush_new(l, NULL, 0); /* a probe */
        }
        for (size_t k = 0; k < l->n_flights;) {
            d2g_flush_t *f = l->flights[k];
            if (d2g_flush_waiting(f) || !d2g_flush_step(w, f, now)) {
                k++;
                continue;
            }
            d2g_flush_free(f, 1);
            remove_flight(l, k);
            progressed = 1;
        }
        if (l->state == D2G_LANE_PARKED && w->hooks.shed) {
            int held = 0;
            for (size_t k = 0; k < l->n_flights; k++)
                held |= !d2g_flush_waiting(l->flights[k]) && d2g_flush_items(l->flights[k]);
            if (held)
                continue; /* shed what they hold */
        }
        if (l->state == D2G_LANE_ACTIVE && !l->n_flights && !l->head && !l->groups && l->next_try <= now) {
            /* the schema of a form, before any dossier (formschema.h), on an idle lane */
            d2g_form_job_t *job = d2g_formschema_take(w->formschema, l);
            if (job) {
                l->flights[l->n_flights++] = d2g_flush_new_form(l, job);
                progressed = 1;
            }
        }
        if (l->state != D2G_LANE_PARKED || !w->hooks.shed)
            progressed |= lane_start(w, l, now);
        publish(w, l);
        status_step(w, l, now);
        if (!progressed)
            break;
    }
}

void d2g_writer_step(d2g_writer_t *w, int64_t now) {
    if (!w->all_lanes) {
        lanes_for_all(w);
        w->all_lanes = 1;
    }
    d2g_formschema_step(w, now);
    for (size_t i = 0; i < w->n_lanes; i++)
        lane_step(w, w->lanes[i], now);
}

/* --- answers ------------------------------------------------------------------------ */

/* A 429 means someone else uses the document: counted, and kept an hour in
 * Redis so that `ds2grist status` shows it for the whole fleet. */
static void note_429(d2g_writer_t *w, d2g_lane_t *l, const char *holder) {
    char err[D2G_ERRLEN], score[24], hour_ago[24];
    const char *dl[] = {l->doc.label};
    int64_t now = d2g_clock_wall_ms();
    w->stats.status_429++;
    d2g_metric_inc(w->m_429, dl, 1);
    snprintf(score, sizeof(score), "%" PRId64, now);
    snprintf(hour_ago, sizeof(hour_ago), "%" PRId64, now - 3600000);
    const char *add[] = {"ZADD", l->recent429_key, score, holder};
    const char *trim[] = {"ZREMRANGEBYSCORE", l->recent429_key, "-inf", hour_ago};
    const char *ttl[] = {"PEXPIRE", l->recent429_key, "3600000"};
    redisReply *rep;
    if ((rep = d2g_redis_argv(w->redis, 4, add, NULL, err, sizeof(err))))
        freeReplyObject(rep);
    if ((rep = d2g_redis_argv(w->redis, 4, trim, NULL, err, sizeof(err))))
        freeReplyObject(rep);
    if ((rep = d2g_redis_argv(w->redis, 3, ttl, NULL, err, sizeof(err))))
        freeReplyObject(rep);
}

static void on_answer(void *opaque, const d2g_http_response_t *resp, void *ud) {
    d2g_writer_t *w = ud;
    d2g_flush_t *f = opaque;
    d2g_lane_t *l = d2g_flush_lane(f);
    const char *holder = d2g_flush_holder(f);
    d2g_grist_end(w->redis, &l->doc, holder, resp);
    w->stats.requests++;
    char status[16];
    snprintf(status, sizeof(status), "%ld", resp->curl_code ? 0L : resp->status);
    const char *rl[] = {l->doc.label, resp->curl_code ? "transport" : status};
    d2g_metric_inc(w->m_requests, rl, 1);
    d2g_grist_outcome_t o = d2g_grist_classify(resp);
    if (resp->curl_code)
        w->stats.transport_errors++;
    else if (resp->status == 429)
        note_429(w, l, holder);
    else if (resp->status >= 500)
        w->stats.status_5xx++;
    else if (resp->status >= 400)
        w->stats.status_4xx++;
    else
        w->stats.status_2xx++;
    if (o == D2G_GRIST_RETRY) {
        const char *dl[] = {l->doc.label};
        w->stats.retries++;
        d2g_metric_inc(w->m_retries, dl, 1);
    }
    d2g_flush_answer(w, f, resp);
}

void d2g_writer_poll(d2g_writer_t *w, int timeout_ms) {
    /* files being copied are moved on between polls of the Grist requests */
    if (d2g_attach_busy(w->attach) && timeout_ms > 5)
        timeout_ms = 5;
    d2g_http_poll(w->http, timeout_ms, on_answer, w);
    d2g_attach_poll(w->attach);
}

int64_t d2g_writer_next_due(const d2g_writer_t *w) {
    int64_t due = d2g_formschema_next_due(w->formschema);
    for (size_t i = 0; i < w->n_lanes; i++) {
        const d2g_lane_t *l = w->lanes[i];
        int64_t t = INT64_MAX;
        for (size_t k = 0; k < l->n_flights; k++)
            if (!d2g_flush_waiting(l->flights[k]))
                t = l->next_try; /* a retry, a permit, the lock, a probe */
        if (l->state == D2G_LANE_PARKED && !l->n_flights) {
            t = l->next_try;
        } else if (l->n_flights < max_flights(l) && (l->groups || l->head)) {
            int64_t ready = l->groups || w->flush_all ? l->next_try : l->head->enqueued_ms + w->cfg->worker.linger_ms;
            if (ready < l->next_try)
                ready = l->next_try;
            if (ready < t)
                t = ready;
        }
        if (w->cfg->worker.status_interval_s > 0) {
            int64_t s = l->status ? (d2g_flush_waiting(l->status) ? INT64_MAX : d2g_flush_next_try(l->status))
                        : l->state == D2G_LANE_PARKED ? INT64_MAX : l->status_due;
            if (s < t)
                t = s;
        }
        if (t < due)
            due = t;
    }
    return due;
}

void d2g_writer_flush_all(d2g_writer_t *w, int on) { w->flush_all = on; }

size_t d2g_writer_pending(const d2g_writer_t *w, size_t *documents, size_t *bytes) {
    size_t n = 0, docs = 0, b = 0;
    for (size_t i = 0; i < w->n_lanes; i++) {
        size_t hb = 0, h = d2g_lane_held_bytes(w->lanes[i], &hb);
        n += h;
        b += hb;
        docs += h > 0;
    }
    if (documents)
        *documents = docs;
    if (bytes)
        *bytes = b;
    return n;
}

size_t d2g_writer_partition(d2g_writer_t *w, uint8_t topic, int32_t partition, int drop,
                            size_t *in_flight) {
    size_t n = 0, busy = 0;
    for (size_t i = 0; i < w->n_lanes; i++) {
        d2g_lane_t *l = w->lanes[i];
        n += d2g_lane_drop_partition(l, topic, partition, drop);
        for (size_t k = 0; k < l->n_flights; k++)
            if (d2g_flush_has_partition(l->flights[k], topic, partition)) {
                n++;
                busy++;
            }
    }
    if (in_flight)
        *in_flight = busy;
    return n;
}

void d2g_writer_abandon_partition(d2g_writer_t *w, uint8_t topic, int32_t partition) {
    for (size_t i = 0; i < w->n_lanes; i++)
        for (size_t k = 0; k < w->lanes[i]->n_flights; k++)
            d2g_flush_abandon(w->lanes[i]->flights[k], topic, partition);
}

size_t d2g_writer_max_queued(const d2g_writer_t *w) {
    size_t m = 0;
    for (size_t i = 0; i < w->n_lanes; i++)
        if (w->lanes[i]->n_queued > m)
            m = w->lanes[i]->n_queued;
    return m;
}

int d2g_writer_partition_congested(const d2g_writer_t *w, uint8_t topic, int32_t partition,
                                   size_t limit) {
    for (size_t i = 0; i < w->n_lanes; i++) {
        const d2g_lane_t *l = w->lanes[i];
        /* A parked lane holds nothing and never holds a partition back. */
        if (l->state != D2G_LANE_PARKED && l->n_queued > limit && d2g_lane_feeds(l, topic, partition))
            return 1;
    }
    return 0;
}

void d2g_writer_lane_counts(const d2g_writer_t *w, size_t counts[3]) {
    counts[0] = counts[1] = counts[2] = 0;
    for (size_t i = 0; i < w->n_lanes; i++)
        counts[w->lanes[i]->state]++;
}

const d2g_writer_stats_t *d2g_writer_stats(const d2g_writer_t *w) { return &w->stats; }

void d2g_writer_sample(d2g_writer_t *w) {
    char err[D2G_ERRLEN];
    for (size_t i = 0; i < w->n_lanes; i++) {
        d2g_lane_t *l = w->lanes[i];
        if (!l->used && !l->status)
            continue; /* a lane kept for its status table alone: nothing to sample */
        /* Requests in flight keep their permits registered (Redis may have
         * restarted empty meanwhile). */
        for (size_t k = 0; k < l->n_flights; k++)
            if (d2g_flush_waiting(l->flights[k]) &&
                d2g_grist_renew(w->redis, &l->doc, d2g_flush_holder(l->flights[k]), w->cfg->grist.timeout_s,
                                err, sizeof(err)))
                d2g_lane_log(l, D2G_LOG_WARN, "flush", "redis_error", err, "permit of a request in flight not renewed");
        if (l->status && d2g_flush_waiting(l->status) &&
            d2g_grist_renew(w->redis, &l->doc, d2g_flush_holder(l->status), w->cfg->grist.timeout_s, err,
                            sizeof(err)))
            d2g_lane_log(l, D2G_LOG_WARN, "status", "redis_error", err, "permit of a request in flight not renewed");
        int n = d2g_permits_in_use(w->redis, l->doc.permit_key, err, sizeof(err));
        const char *lv[] = {l->doc.label};
        if (n >= 0)
            d2g_metric_set(w->m_permits, lv, n);
    }
    size_t counts[3];
    d2g_writer_lane_counts(w, counts);
    for (int s = 0; s < D2G_LANE_STATES; s++) {
        const char *lv[] = {d2g_lane_state_name((d2g_lane_state_t)s)};
        d2g_metric_set(w->m_lanes, lv, (double)counts[s]);
    }
}

/* --- life ------------------------------------------------------------------------------ */

d2g_writer_t *d2g_writer_new(const d2g_config_t *cfg, d2g_redis_t *redis, const char *worker_id,
                             d2g_metrics_t *metrics, d2g_writer_hooks_t hooks, char *err,
                             size_t errlen) {
    d2g_writer_t *w = d2g_calloc(1, sizeof(*w));
    if (!(w->http = d2g_http_new("ds2grist-worker"))) {
        free(w);
        d2g_err_set(err, errlen, "cannot start an HTTP client");
        return NULL;
    }
    w->cfg = cfg;
    w->redis = redis;
    w->hooks = hooks;
    w->forms = d2g_forms_new(cfg, redis);
    w->formschema = d2g_formschema_new(cfg);
    w->attach = d2g_attach_new(redis, worker_id, metrics);
    w->secrets = d2g_config_secrets(cfg, &w->n_secrets);
    snprintf(w->worker_id, sizeof(w->worker_id), "%s", worker_id);
    w->rng = (unsigned)d2g_clock_wall_ms();
    w->lane_index = json_object();
    if (metrics) {
        static const char *const by_doc_status[] = {"document", "status"};
        static const char *const by_doc[] = {"document"};
        static const char *const by_proc[] = {"procedure"};
        static const char *const by_state[] = {"state"};
        static const char *const by_outcome[] = {"outcome"};
        static const double rows[] = {1, 10, 50, 100, 250, 500, 1000, 2500, 5000};
        static const double secs[] = {0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30};
        w->m_requests = d2g_metrics_counter(metrics, "ds2grist_grist_requests_total",
                                            "Grist API requests by document and HTTP status (0: no answer)", 2, by_doc_status);
        w->m_429 = d2g_metrics_counter(metrics, "ds2grist_grist_429_total",
                                       "429 answers: the document was at its cap (someone else uses it)", 1, by_doc);
        w->m_retries = d2g_metrics_counter(metrics, "ds2grist_grist_retries_total",
                                           "Grist requests retried after a 429, 5xx or timeout", 1, by_doc);
        w->m_written = d2g_metrics_counter(metrics, "ds2grist_dossiers_written_total",
                                           "Dossier updates written to Grist", 1, by_proc);
        w->m_batch_rows = d2g_metrics_histogram(metrics, "ds2grist_grist_batch_rows",
                                                "Records per PUT request", 0, NULL, 9, rows);
        w->m_permit_wait = d2g_metrics_histogram(metrics, "ds2grist_grist_permit_wait_seconds",
                                                 "Time a request waited for a permit of its document", 0, NULL, 10, secs);
        w->m_permits = d2g_metrics_gauge(metrics, "ds2grist_grist_permits_in_use",
                                         "Permits of the document held by all workers (sampled)", 1, by_doc);
        w->m_lanes = d2g_metrics_gauge(metrics, "ds2grist_worker_lanes",
                                       "Document lanes of this worker by state (active, backoff, parked)", 1, by_state);
        w->m_errors = d2g_metrics_counter(metrics, "ds2grist_grist_errors_total",
                                          "Failed Grist requests by outcome (retry, document, missing, refused)", 1, by_outcome);
        w->m_superseded = d2g_metrics_counter(metrics, "ds2grist_dossiers_superseded_total",
                                              "Dossier updates not written: Grist held a newer version", 0, NULL);
    }
    return w;
}

void d2g_writer_apply(d2g_writer_t *w, const d2g_config_t *cfg) {
    char err[D2G_ERRLEN];
    w->cfg = cfg;
    w->secrets = d2g_config_secrets(cfg, &w->n_secrets);
    d2g_forms_apply(w->forms, cfg);
    d2g_formschema_apply(w->formschema, cfg);
    size_t moved = 0, kept = 0;
    for (size_t i = 0; i < w->n_lanes; i++) {
        d2g_lane_t *l = w->lanes[i];
        const d2g_grist_server_t *srv = d2g_config_find_server(cfg, l->doc.srv->name);
        if (!srv) {
            /* Its server is gone: what the lane holds is written with the
             * configuration it came with (held), and nothing new comes. */
            kept++;
            continue;
        }
        /* The server's URL, key and the document's limits, from the next request on
         * (the permit and rate keys are the same: they name server and document). */
        d2g_grist_doc_t doc;
        if (d2g_grist_doc_init(&doc, w->redis, srv, l->doc.id, err, sizeof(err))) {
            d2g_lane_log(l, D2G_LOG_WARN, "queue", "config_not_applied", err, "kept as it was");
            continue;
        }
        if (doc.permits != l->doc.permits)
            d2g_lane_log(l, D2G_LOG_INFO, "queue", "permits_changed", NULL, "%d -> %d permits",
                         l->doc.permits, doc.permits);
        l->doc = doc;
        d2g_config_free(l->held);
        l->held = d2g_config_ref(cfg);
        moved++;
    }
    lanes_for_all(w); /* documents added: their status tables */
    d2g_log(D2G_LOG_INFO, "config_applied", 0, NULL,
            "generation %" PRIu64 ": %zu lanes on the new configuration, %zu draining on their "
            "old server", cfg->generation, moved, kept);
}

void d2g_writer_free(d2g_writer_t *w) {
    if (!w)
        return;
    d2g_http_free(w->http); /* no answer comes any more */
    for (size_t i = 0; i < w->n_lanes; i++)
        d2g_lane_free(w->lanes[i]);
    d2g_attach_free(w->attach); /* after the batches that used it */
    free(w->lanes);
    d2g_forms_free(w->forms);
    d2g_formschema_free(w->formschema);
    json_decref(w->lane_index);
    free(w);
}
