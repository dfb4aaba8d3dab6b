/* lane.c - one document's queue, state and backoff, see lane.h. */
#include "lane.h"
#include "flush.h"
#include "schema.h"

#include "ds2grist/alloc.h"
#include "ds2grist/backoff.h"
#include "ds2grist/clock.h"
#include "ds2grist/err.h"
#include "ds2grist/text.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BACKOFF_BASE_MS 200
#define BACKOFF_MAX_MS 30000
/* Consecutive failures after which a lane stops holding dossiers. */
#define PARK_AFTER 5
/* A Retry-After longer than this is not believed. */
#define RETRY_AFTER_MAX_MS 300000
/* Identical errors are logged once per this. */
#define LOG_REPEAT_MS 60000
/* A published state outlives a worker that died by this much. */
#define PUBLISH_TTL_MS 86400000

void d2g_item_free(d2g_item_t *item) {
    if (!item)
        return;
    d2g_envelope_clear(&item->env);
    d2g_config_free(item->held);
    free(item->msgs);
    free(item);
}

d2g_lane_t *d2g_lane_new(d2g_redis_t *r, const d2g_grist_server_t *srv, const char *document,
                         char *err, size_t errlen) {
    d2g_lane_t *l = d2g_calloc(1, sizeof(*l));
    if (d2g_grist_doc_init(&l->doc, r, srv, document, err, errlen)) {
        free(l);
        return NULL;
    }
    const char *ns = d2g_redis_namespace(r);
    if (d2g_keys_doc(ns, l->lock_key, sizeof(l->lock_key), srv->name, document, "schemalock") ||
        d2g_keys_doc(ns, l->colmap_key, sizeof(l->colmap_key), srv->name, document, "colmap") ||
        d2g_keys_doc(ns, l->versions_key, sizeof(l->versions_key), srv->name, document, "versions") ||
        d2g_keys_doc(ns, l->lane_key, sizeof(l->lane_key), srv->name, document, "lane") ||
        d2g_keys_doc(ns, l->recent429_key, sizeof(l->recent429_key), srv->name, document,
                     "recent429") ||
        d2g_keys_doc(ns, l->syncturn_key, sizeof(l->syncturn_key), srv->name, document, "syncturn") ||
        d2g_keys_doc(ns, l->syncerr_key, sizeof(l->syncerr_key), srv->name, document, "syncerr")) {
        free(l);
        d2g_err_set(err, errlen, "redis keys too long for document %s", document);
        return NULL;
    }
    l->index = json_object();
    l->schema = d2g_schema_new();
    l->colmap = d2g_colmap_new();
    return l;
}

static void free_items(d2g_item_t **items, size_t n) {
    for (size_t i = 0; i < n; i++)
        d2g_item_free(items[i]);
}

void d2g_lane_free(d2g_lane_t *l) {
    if (!l)
        return;
    for (d2g_item_t *it = l->head, *next; it; it = next) {
        next = it->next;
        d2g_item_free(it);
    }
    while (l->groups) {
        d2g_group_t *g = l->groups;
        l->groups = g->next;
        free_items(g->items, g->n);
        free(g->items);
        free(g);
    }
    for (size_t i = 0; i < l->n_flights; i++)
        d2g_flush_free(l->flights[i], 1);
    d2g_flush_free(l->status, 1);
    json_decref(l->refused);
    d2g_schema_free(l->schema);
    d2g_colmap_free(l->colmap);
    json_decref(l->index);
    d2g_config_free(l->held);
    free(l);
}

/* --- the queue ------------------------------------------------------------- */

static void take_msgs(d2g_item_t *to, d2g_item_t *from) {
    if (to->n_msgs + from->n_msgs > to->cap_msgs) {
        to->cap_msgs = to->n_msgs + from->n_msgs + 4;
        to->msgs = d2g_realloc(to->msgs, to->cap_msgs * sizeof(d2g_msgref_t));
    }
    memcpy(to->msgs + to->n_msgs, from->msgs, from->n_msgs * sizeof(d2g_msgref_t));
    to->n_msgs += from->n_msgs;
    from->n_msgs = 0;
}

void d2g_lane_add(d2g_lane_t *l, d2g_item_t *item) {
    json_t *slot = json_object_get(l->index, item->key);
    if (slot) {
        d2g_item_t *old = (d2g_item_t *)(intptr_t)json_integer_value(slot);
        /* A full resync's "write whole" survives the collapse. */
        int full = old->env.full || item->env.full;
        if (d2g_envelope_older(&item->env, &old->env)) {
            /* An older version arriving later: the queued newer one stands. */
            take_msgs(old, item);
        } else if (item->env.partial && !old->env.partial) {
            /* Labels only: merged into the full version queued. */
            json_object_set(old->env.dossier, "labels", json_object_get(item->env.dossier, "labels"));
            take_msgs(old, item);
        } else {
            /* The newer version replaces the queued one in place. */
            take_msgs(old, item);
            d2g_envelope_t e = old->env;
            old->env = item->env;
            item->env = e;
            old->bytes = item->bytes;
            old->attempt = item->attempt;
        }
        old->env.full = full;
        d2g_item_free(item);
        return;
    }
    item->next = NULL;
    if (l->tail)
        l->tail->next = item;
    else
        l->head = item;
    l->tail = item;
    l->n_queued++;
    json_object_set_new(l->index, item->key, json_integer((json_int_t)(intptr_t)item));
}

static d2g_item_t *pop(d2g_lane_t *l) {
    d2g_item_t *it = l->head;
    l->head = it->next;
    if (!l->head)
        l->tail = NULL;
    l->n_queued--;
    json_object_del(l->index, it->key);
    it->next = NULL;
    return it;
}

size_t d2g_lane_batch_target(const d2g_lane_t *l, size_t batch_bytes) {
    if (l->body_ratio <= 0)
        return batch_bytes;
    /* Aimed a little under the limit: a batch whose body came out a few per
     * cent over it would be sent as a full body and a tiny one (two fixed
     * costs for one body's rows, and a mean body near 60% of the limit). */
    double t = D2G_LANE_BODY_FILL * (double)batch_bytes / l->body_ratio;
    /* Bounded: a batch never holds more than 16 full bodies' worth of messages. */
    if (t > 16.0 * (double)batch_bytes)
        t = 16.0 * (double)batch_bytes;
    return t < (double)batch_bytes / 4 ? batch_bytes / 4 : (size_t)t;
}

void d2g_lane_measured(d2g_lane_t *l, size_t message_bytes, size_t largest_table_bytes) {
    if (!message_bytes || !largest_table_bytes)
        return;
    double r = (double)largest_table_bytes / (double)message_bytes;
    l->body_ratio = l->body_ratio > 0 ? 0.5 * l->body_ratio + 0.5 * r : r;
}

/* 1 if key is in one of the n sets. */
static int in_any(const json_t *const *sets, size_t n, const char *key) {
    for (size_t i = 0; i < n; i++)
        if (sets[i] && json_object_get(sets[i], key))
            return 1;
    return 0;
}

d2g_item_t **d2g_lane_take(d2g_lane_t *l, size_t batch_bytes, const json_t *const *busy, size_t n_busy,
                           size_t *n) {
    *n = 0;
    if (l->groups) {
        d2g_group_t *g = l->groups;
        l->groups = g->next;
        d2g_item_t **items = g->items;
        *n = g->n;
        free(g);
        return items;
    }
    if (!l->head)
        return NULL;
    size_t cap = 64, bytes = 0, target = d2g_lane_batch_target(l, batch_bytes);
    d2g_item_t **items = d2g_malloc(cap * sizeof(*items));
    d2g_item_t **pp = &l->head, *prev = NULL;
    while (*pp && (*n == 0 || bytes + (*pp)->bytes <= target)) {
        d2g_item_t *it = *pp;
        if (in_any(busy, n_busy, it->key)) {
            /* An older version is being written: this one waits for it. */
            prev = it;
            pp = &it->next;
            continue;
        }
        *pp = it->next;
        if (l->tail == it)
            l->tail = prev;
        l->n_queued--;
        json_object_del(l->index, it->key);
        it->next = NULL;
        if (*n == cap)
            items = d2g_realloc(items, (cap *= 2) * sizeof(*items));
        bytes += it->bytes;
        items[(*n)++] = it;
    }
    return items;
}

d2g_item_t **d2g_lane_take_all(d2g_lane_t *l, size_t *n) {
    size_t cap = l->n_queued + 1;
    for (d2g_group_t *g = l->groups; g; g = g->next)
        cap += g->n;
    d2g_item_t **items = d2g_malloc(cap * sizeof(*items));
    *n = 0;
    while (l->groups) {
        d2g_group_t *g = l->groups;
        l->groups = g->next;
        memcpy(items + *n, g->items, g->n * sizeof(*items));
        *n += g->n;
        free(g->items);
        free(g);
    }
    while (l->head)
        items[(*n)++] = pop(l);
    return items;
}

size_t d2g_lane_held(const d2g_lane_t *l) {
    size_t n = l->n_queued;
    for (const d2g_group_t *g = l->groups; g; g = g->next)
        n += g->n;
    for (size_t i = 0; i < l->n_flights; i++)
        n += d2g_flush_items(l->flights[i]);
    return n;
}

size_t d2g_lane_held_bytes(const d2g_lane_t *l, size_t *bytes) {
    size_t n = l->n_queued, b = 0;
    for (const d2g_item_t *it = l->head; it; it = it->next)
        b += it->bytes;
    for (const d2g_group_t *g = l->groups; g; g = g->next) {
        n += g->n;
        for (size_t i = 0; i < g->n; i++)
            b += g->items[i]->bytes;
    }
    for (size_t i = 0; i < l->n_flights; i++) {
        n += d2g_flush_items(l->flights[i]);
        b += d2g_flush_bytes(l->flights[i]);
    }
    *bytes = b;
    return n;
}

int d2g_item_in_partition(const d2g_item_t *it, uint8_t topic, int32_t partition) {
    for (size_t i = 0; i < it->n_msgs; i++)
        if (it->msgs[i].partition == partition && it->msgs[i].topic == topic)
            return 1;
    return 0;
}

size_t d2g_lane_drop_partition(d2g_lane_t *l, uint8_t topic, int32_t partition, int drop) {
    size_t n = 0;
    d2g_item_t **pp = &l->head, *prev = NULL;
    while (*pp) {
        d2g_item_t *it = *pp;
        if (d2g_item_in_partition(it, topic, partition)) {
            n++;
            if (drop) {
                *pp = it->next;
                if (l->tail == it)
                    l->tail = prev;
                l->n_queued--;
                json_object_del(l->index, it->key);
                d2g_item_free(it);
                continue;
            }
        }
        prev = it;
        pp = &it->next;
    }
    for (d2g_group_t *g = l->groups; g; g = g->next) {
        size_t k = 0;
        for (size_t i = 0; i < g->n; i++) {
            if (d2g_item_in_partition(g->items[i], topic, partition)) {
                n++;
                if (drop) {
                    d2g_item_free(g->items[i]);
                    continue;
                }
            }
            g->items[k++] = g->items[i];
        }
        g->n = k;
    }
    return n;
}

int d2g_lane_feeds(const d2g_lane_t *l, uint8_t topic, int32_t partition) {
    for (const d2g_item_t *it = l->head; it; it = it->next)
        if (d2g_item_in_partition(it, topic, partition))
            return 1;
    return 0;
}

/* --- state ------------------------------------------------------------------ */

const char *d2g_lane_state_name(d2g_lane_state_t s) {
    switch (s) {
    case D2G_LANE_ACTIVE: return "active";
    case D2G_LANE_BACKOFF: return "backoff";
    case D2G_LANE_PARKED: return "parked";
    default: return "?";
    }
}

static void set_state(d2g_lane_t *l, d2g_lane_state_t s, const char *reason) {
    if (l->state != s || l->reason != reason) {
        if (l->state != s)
            l->since_wall_ms = d2g_clock_wall_ms();
        l->state = s;
        l->reason = reason;
    }
}

d2g_lane_state_t d2g_lane_failed(d2g_lane_t *l, int64_t now, int outcome, const char *reason,
                                 int64_t retry_after_ms, const char *text, unsigned *rng) {
    l->failures++;
    if (text)
        d2g_text_copy(l->error, sizeof(l->error), text, (size_t)-1);
    int64_t delay = d2g_backoff_delay(rng, BACKOFF_BASE_MS, BACKOFF_MAX_MS, l->failures);
    if (retry_after_ms > RETRY_AFTER_MAX_MS)
        retry_after_ms = RETRY_AFTER_MAX_MS;
    if (retry_after_ms > delay)
        delay = retry_after_ms;
    l->next_try = now + delay;
    /* The document itself refuses us: holding its dossiers helps nobody. */
    int document = outcome == D2G_GRIST_DOCUMENT || outcome == D2G_GRIST_REFUSED;
    if (document || l->failures >= PARK_AFTER || l->state == D2G_LANE_PARKED)
        set_state(l, D2G_LANE_PARKED, reason);
    else
        set_state(l, D2G_LANE_BACKOFF, reason);
    return l->state;
}

void d2g_lane_succeeded(d2g_lane_t *l, int clean) {
    if (clean)
        l->failures = 0;
    l->error[0] = '\0';
    set_state(l, D2G_LANE_ACTIVE, NULL);
}

int d2g_lane_parked(const d2g_lane_t *l, int64_t now_mono, int64_t *until_wall) {
    if (l->state != D2G_LANE_PARKED)
        return 0;
    if (until_wall) {
        int64_t left = l->next_try - now_mono;
        *until_wall = d2g_clock_wall_ms() + (left > 0 ? left : 0);
    }
    return 1;
}

/* --- what operators see ------------------------------------------------------ */

void d2g_lane_log(d2g_lane_t *l, d2g_log_level_t level, const char *stage, const char *event,
                  const char *text, const char *fmt, ...) {
    int64_t now = d2g_clock_mono_ms();
    const char *t = text ? text : "";
    if (!strcmp(l->last_event, event) && !strncmp(l->last_text, t, sizeof(l->last_text) - 1) &&
        now - l->last_logged_ms < LOG_REPEAT_MS) {
        l->repeats++;
        return;
    }
    char msg[512], full[640];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    int same = !strcmp(l->last_event, event) && !strncmp(l->last_text, t, sizeof(l->last_text) - 1);
    if (same && l->repeats)
        snprintf(full, sizeof(full), "[%s] %s (and %" PRIu64 " times more since the last line)", stage,
                 msg, l->repeats);
    else
        snprintf(full, sizeof(full), "[%s] %s", stage, msg);
    char clean[640];
    d2g_text_copy(clean, sizeof(clean), full, (size_t)-1);
    if (text)
        d2g_log_err(level, event, 0, l->doc.label, text, "%s", clean);
    else
        d2g_log(level, event, 0, l->doc.label, "%s", clean);
    snprintf(l->last_event, sizeof(l->last_event), "%s", event);
    d2g_text_copy(l->last_text, sizeof(l->last_text), t, (size_t)-1);
    l->repeats = 0;
    l->last_logged_ms = now;
}

void d2g_lane_publish(d2g_lane_t *l, d2g_redis_t *r, const char *worker_id) {
    char err[D2G_ERRLEN];
    redisReply *rep;
    if (l->state == D2G_LANE_ACTIVE) {
        const char *argv[] = {"HDEL", l->lane_key, worker_id};
        rep = d2g_redis_argv(r, 3, argv, NULL, err, sizeof(err));
    } else {
        char since[D2G_TIME_BUFLEN];
        d2g_clock_format_ms(l->since_wall_ms, since);
        json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:I}", "state", d2g_lane_state_name(l->state),
                              "reason", l->reason ? l->reason : "", "since", since, "error",
                              l->error, "failures", (json_int_t)l->failures);
        char *text = json_dumps(j, JSON_COMPACT);
        json_decref(j);
        const char *argv[] = {"HSET", l->lane_key, worker_id, text};
        rep = d2g_redis_argv(r, 4, argv, NULL, err, sizeof(err));
        free(text);
        if (rep) {
            freeReplyObject(rep);
            char ttl[24];
            snprintf(ttl, sizeof(ttl), "%d", PUBLISH_TTL_MS);
            const char *exp[] = {"PEXPIRE", l->lane_key, ttl};
            rep = d2g_redis_argv(r, 3, exp, NULL, err, sizeof(err));
        }
    }
    if (rep)
        freeReplyObject(rep);
}
