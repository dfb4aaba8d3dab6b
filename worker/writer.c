/* writer.c - batches of dossiers into Grist documents under the cap, see writer.h. */
#include "writer.h"
#include "mapping.h"

#include "ds2grist/alloc.h"
#include "ds2grist/backoff.h"
#include "ds2grist/clock.h"
#include "ds2grist/err.h"
#include "ds2grist/http.h"
#include "ds2grist/lease.h"
#include "ds2grist/log.h"
#include "ds2grist/permits.h"
#include "ds2grist/ratelimit.h"

#include <curl/curl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BACKOFF_BASE_MS 200
#define BACKOFF_MAX_MS 30000
/* How often a waiting request asks again for a permit: a release comes any time. */
#define PERMIT_RETRY_MS 15
/* The schema lock outlives every request made while holding it. */
#define SCHEMA_LOCK_MS 120000
/* A procedure's form (activeRevision, written by the producer) is re-read this often. */
#define REVISION_TTL_MS 30000
/* Marks, among a FIND stage's requests, the deletes its answers planned. */
#define DELETE_MARK "\001delete"

typedef enum {
    ST_MAP = 0,      /* map the items (sync) */
    ST_LOAD_TABLES,  /* GET /tables (schema unknown) */
    ST_LOAD_COLUMNS, /* GET /tables/T/columns for needed tables */
    ST_PLAN_SCHEMA,  /* compare, lock if something is missing (sync) */
    ST_CHANGE,       /* POST tables, POST columns, PATCH choices (locked) */
    ST_PUT,          /* PUT /records per table and chunk */
    ST_FIND,         /* GET rows to delete */
    ST_DELETE,       /* POST data/delete */
    ST_DONE,
} stage_t;

/* One HTTP request of a flush. */
typedef struct op {
    char method[8];
    char *path;   /* after /api/docs/<doc> */
    char *body;   /* JSON, owned until sent */
    size_t rows;  /* records carried (PUT) */
    char *table;  /* FIND: the table whose rows are searched */
    json_t *keep; /* FIND of child rows: {dossier: [ds_row_id...]} to keep; NULL for removals */
} op_t;

typedef struct flush {
    d2g_item_t **items;
    size_t n_items;
    d2g_mapped_t *mapped; /* per item */
    json_t *need;         /* table -> {col -> fields} wanted by the batch */
    stage_t stage;
    op_t *ops; /* the current stage's requests */
    size_t n_ops, cur;
    size_t n_finds; /* FIND stage: its GETs come first; deletes they plan follow */
    int replan;     /* items were abandoned (partition revoked): plan the PUTs again */
    int locked; /* holding the schema lock */
    int waiting; /* a request of this flush is in flight */
} flush_t;

typedef struct doc doc_t;

typedef struct group { /* a batch split after a 4xx, to flush before the queue */
    d2g_item_t **items;
    size_t n;
    struct group *next;
} group_t;

struct doc {
    const d2g_grist_server_t *srv;
    char *id;
    char base[600]; /* <url>/api/docs/<id> */
    char permit_key[300], rate_key[300], lock_key[300], colmap_key[300], recent429_key[300];
    int permits;
    int rate_limit;
    int64_t rate_window_ms;
    d2g_colmap_t *colmap;
    uint64_t colmap_synced; /* generation last merged with Redis */
    json_t *schema;         /* table -> (null | {col -> fields}); NULL = not loaded */
    d2g_item_t *head, *tail;
    size_t n_queued;
    json_t *index;          /* key -> item pointer (as integer) for queued items */
    group_t *groups;
    flush_t *flush;
    int64_t next_try;
    int backoff;
    char holder[200];       /* permit holder id of the request in flight */
    char label[600];        /* "<server>/<doc>", the metric label */
    int64_t permit_wait_start;
};

typedef struct proc_ctx {
    d2g_mapping_ctx_t *ctx;
    int64_t loaded_ms;
    char *revision_id;
} proc_ctx_t;

struct d2g_writer {
    const d2g_config_t *cfg;
    d2g_redis_t *redis;
    d2g_http_t *http;
    d2g_writer_hooks_t hooks;
    char worker_id[128];
    uint64_t seq;
    unsigned rng;
    doc_t **docs;
    size_t n_docs, cap_docs;
    json_t *doc_index;   /* "<server>/<doc>" -> index */
    json_t *proc_index;  /* "<procedure>" -> proc_ctx_t pointer */
    int flush_all;
    d2g_writer_stats_t stats;
    d2g_metric_t *m_requests, *m_429, *m_retries, *m_written, *m_batch_rows, *m_permit_wait,
        *m_permits;
};

/* --- small helpers ------------------------------------------------------- */

static int64_t jitter(d2g_writer_t *w, int64_t ms) { return d2g_backoff_jitter(&w->rng, ms); }

static int64_t backoff_ms(d2g_writer_t *w, int n) {
    return d2g_backoff_delay(&w->rng, BACKOFF_BASE_MS, BACKOFF_MAX_MS, n);
}

static char *url_escape(const char *s) {
    char *e = curl_easy_escape(NULL, s, 0);
    char *r = e ? d2g_strdup(e) : NULL;
    curl_free(e);
    return r;
}

void d2g_item_free(d2g_item_t *item) {
    if (!item)
        return;
    d2g_envelope_clear(&item->env);
    free(item->msgs);
    free(item);
}

static void ops_clear(flush_t *f) {
    for (size_t i = 0; i < f->n_ops; i++) {
        free(f->ops[i].path);
        free(f->ops[i].body);
        free(f->ops[i].table);
        json_decref(f->ops[i].keep);
    }
    free(f->ops);
    f->ops = NULL;
    f->n_ops = f->cur = 0;
}

static op_t *op_add(flush_t *f, const char *method, char *path, char *body) {
    f->ops = d2g_realloc(f->ops, (f->n_ops + 1) * sizeof(op_t));
    op_t *o = &f->ops[f->n_ops++];
    memset(o, 0, sizeof(*o));
    snprintf(o->method, sizeof(o->method), "%s", method);
    o->path = path;
    o->body = body;
    return o;
}

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...) {
    va_list ap, ap2;
    va_start(ap, f);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, f, ap);
    char *s = n >= 0 ? d2g_malloc((size_t)n + 1) : NULL;
    if (s)
        vsnprintf(s, (size_t)n + 1, f, ap2);
    va_end(ap2);
    va_end(ap);
    return s;
}

static void flush_free(flush_t *f) {
    if (!f)
        return;
    ops_clear(f);
    for (size_t i = 0; f->mapped && i < f->n_items; i++)
        d2g_mapped_clear(&f->mapped[i]);
    free(f->mapped);
    free(f->items);
    json_decref(f->need);
    free(f);
}

/* --- procedures: mapping contexts with the form from Redis ---------------- */

static const d2g_mapping_ctx_t *proc_ctx(d2g_writer_t *w, const d2g_procedure_t *proc,
                                         char *err, size_t errlen) {
    char key[32], rkey[256];
    int64_t now = d2g_clock_mono_ms();
    snprintf(key, sizeof(key), "%" PRId64, proc->number);
    json_t *slot = json_object_get(w->proc_index, key);
    proc_ctx_t *pc = slot ? (proc_ctx_t *)(intptr_t)json_integer_value(slot) : NULL;
    if (pc && now - pc->loaded_ms < REVISION_TTL_MS)
        return pc->ctx;
    if (!pc) {
        pc = d2g_calloc(1, sizeof(*pc));
        json_object_set_new(w->proc_index, key, json_integer((json_int_t)(intptr_t)pc));
    }
    /* The producer stores the procedure's activeRevision with each run. */
    d2g_redis_key(w->redis, rkey, sizeof(rkey), "{proc:%" PRId64 "}:revision", proc->number);
    json_t *rev = NULL;
    char cause[D2G_ERRLEN];
    redisReply *rep = d2g_redis_cmd(w->redis, cause, sizeof(cause), "GET %s", rkey);
    if (rep && rep->type == REDIS_REPLY_STRING)
        rev = json_loads(rep->str, 0, NULL);
    if (rep)
        freeReplyObject(rep);
    const char *rev_id = json_string_value(json_object_get(rev, "id"));
    pc->loaded_ms = now;
    if (pc->ctx && ((!rev_id && !pc->revision_id) ||
                    (rev_id && pc->revision_id && !strcmp(rev_id, pc->revision_id)))) {
        json_decref(rev);
        return pc->ctx;
    }
    d2g_mapping_ctx_t *ctx = NULL;
    if (d2g_mapping_ctx_new(proc->number, proc->table_prefix, w->cfg->worker.ds_base_url, rev,
                            &ctx, cause, sizeof(cause))) {
        /* A form we cannot read: map from the dossiers alone. */
        d2g_log_err(D2G_LOG_WARN, "revision_unusable", proc->number, NULL, cause,
                    "mapping without the form");
        json_decref(rev);
        rev = NULL;
        rev_id = NULL;
        if (d2g_mapping_ctx_new(proc->number, proc->table_prefix, w->cfg->worker.ds_base_url,
                                NULL, &ctx, err, errlen)) {
            json_decref(rev);
            return pc->ctx;
        }
    }
    d2g_mapping_ctx_free(pc->ctx);
    free(pc->revision_id);
    pc->ctx = ctx;
    pc->revision_id = rev_id ? d2g_strdup(rev_id) : NULL;
    json_decref(rev);
    return pc->ctx;
}

/* --- documents ------------------------------------------------------------ */

static doc_t *doc_get(d2g_writer_t *w, const d2g_procedure_t *proc) {
    char key[512];
    snprintf(key, sizeof(key), "%s/%s", proc->grist_server->name, proc->document);
    json_t *slot = json_object_get(w->doc_index, key);
    if (slot)
        return w->docs[json_integer_value(slot)];
    doc_t *d = d2g_calloc(1, sizeof(*d));
    if (w->n_docs == w->cap_docs) {
        w->cap_docs = w->cap_docs ? w->cap_docs * 2 : 16;
        w->docs = d2g_realloc(w->docs, w->cap_docs * sizeof(doc_t *));
    }
    d->srv = proc->grist_server;
    d->id = d2g_strdup(proc->document);
    snprintf(d->label, sizeof(d->label), "%s", key);
    char *esc = url_escape(proc->document);
    snprintf(d->base, sizeof(d->base), "%s/api/docs/%s", d->srv->url, esc ? esc : "");
    free(esc);
    d2g_redis_key(w->redis, d->permit_key, sizeof(d->permit_key), "{doc:%s}:permits", key);
    d2g_redis_key(w->redis, d->rate_key, sizeof(d->rate_key), "{doc:%s}:rate", key);
    d2g_redis_key(w->redis, d->lock_key, sizeof(d->lock_key), "{doc:%s}:schemalock", key);
    d2g_redis_key(w->redis, d->colmap_key, sizeof(d->colmap_key), "{doc:%s}:colmap", key);
    d2g_redis_key(w->redis, d->recent429_key, sizeof(d->recent429_key), "{doc:%s}:recent429", key);
    d->permits = d2g_config_doc_permits(d->srv, d->id);
    if (d->srv->requests_per_second > 0)
        d2g_ratelimit_per_second(d->srv->requests_per_second, &d->rate_limit, &d->rate_window_ms);
    d->colmap = d2g_colmap_new();
    d->index = json_object();
    /* Start from the column map the fleet persisted: ids stay the same everywhere. */
    char err[D2G_ERRLEN];
    redisReply *rep = d2g_redis_cmd(w->redis, err, sizeof(err), "GET %s", d->colmap_key);
    if (rep && rep->type == REDIS_REPLY_STRING) {
        json_t *j = json_loads(rep->str, 0, NULL);
        if (j)
            d2g_colmap_merge_json(d->colmap, j, NULL, err, sizeof(err));
        json_decref(j);
    }
    if (rep)
        freeReplyObject(rep);
    d->colmap_synced = d2g_colmap_generation(d->colmap);
    json_object_set_new(w->doc_index, key, json_integer((json_int_t)w->n_docs));
    w->docs[w->n_docs++] = d;
    return d;
}

static void doc_free(doc_t *d) {
    d2g_item_t *it = d->head;
    while (it) {
        d2g_item_t *next = it->next;
        d2g_item_free(it);
        it = next;
    }
    while (d->groups) {
        group_t *g = d->groups;
        d->groups = g->next;
        for (size_t i = 0; i < g->n; i++)
            d2g_item_free(g->items[i]);
        free(g->items);
        free(g);
    }
    if (d->flush) {
        for (size_t i = 0; i < d->flush->n_items; i++)
            d2g_item_free(d->flush->items[i]);
        flush_free(d->flush);
    }
    d2g_colmap_free(d->colmap);
    json_decref(d->schema);
    json_decref(d->index);
    free(d->id);
    free(d);
}

/* --- adding items ---------------------------------------------------------- */

static void item_take_msgs(d2g_item_t *to, d2g_item_t *from) {
    if (to->n_msgs + from->n_msgs > to->cap_msgs) {
        size_t cap = to->n_msgs + from->n_msgs + 4;
        to->msgs = d2g_realloc(to->msgs, cap * sizeof(d2g_msgref_t));
        to->cap_msgs = cap;
    }
    memcpy(to->msgs + to->n_msgs, from->msgs, from->n_msgs * sizeof(d2g_msgref_t));
    to->n_msgs += from->n_msgs;
    from->n_msgs = 0;
}

void d2g_writer_add(d2g_writer_t *w, d2g_item_t *item) {
    doc_t *d = doc_get(w, item->proc);
    json_t *slot = json_object_get(d->index, item->key);
    if (slot) {
        /* A queued update of the same dossier: the newer one replaces it in
         * place (keeping the queue position), carrying both messages. A
         * partial update (labels only) is merged into a full one instead. */
        d2g_item_t *old = (d2g_item_t *)(intptr_t)json_integer_value(slot);
        if (d2g_envelope_older(&item->env, &old->env)) {
            /* An older version arriving later (a dead letter replayed after the
             * dossier changed again): the queued newer one stays as it is. */
            item_take_msgs(old, item);
            d2g_item_free(item);
            return;
        } else if (item->env.partial && !old->env.partial) {
            json_object_set(old->env.dossier, "labels", json_object_get(item->env.dossier, "labels"));
            item_take_msgs(old, item);
            d2g_item_free(item);
            return;
        } else {
            item_take_msgs(item, old);
            d2g_envelope_t e = old->env;
            old->env = item->env;
            item->env = e;
            size_t b = old->bytes;
            old->bytes = item->bytes;
            item->bytes = b;
            /* old now holds the new envelope and every message. */
            d2g_msgref_t *m = old->msgs;
            size_t n = old->n_msgs, c = old->cap_msgs;
            old->msgs = item->msgs;
            old->n_msgs = item->n_msgs;
            old->cap_msgs = item->cap_msgs;
            item->msgs = m;
            item->n_msgs = n;
            item->cap_msgs = c;
            d2g_item_free(item);
            return;
        }
    }
    item->next = NULL;
    if (d->tail)
        d->tail->next = item;
    else
        d->head = item;
    d->tail = item;
    d->n_queued++;
    json_object_set_new(d->index, item->key, json_integer((json_int_t)(intptr_t)item));
}

/* --- flush building ---------------------------------------------------------- */

/* Takes the next batch: a split group first, else queued items up to batch_bytes. */
static flush_t *take_batch(d2g_writer_t *w, doc_t *d) {
    flush_t *f = d2g_calloc(1, sizeof(*f));
    if (d->groups) {
        group_t *g = d->groups;
        d->groups = g->next;
        f->items = g->items;
        f->n_items = g->n;
        free(g);
    } else {
        size_t cap = 64, bytes = 0;
        f->items = d2g_malloc(cap * sizeof(d2g_item_t *));
        while (d->head && (f->n_items == 0 || bytes + d->head->bytes <= (size_t)w->cfg->worker.batch_bytes)) {
            d2g_item_t *it = d->head;
            d->head = it->next;
            if (!d->head)
                d->tail = NULL;
            d->n_queued--;
            json_object_del(d->index, it->key);
            if (f->n_items == cap)
                f->items = d2g_realloc(f->items, (cap *= 2) * sizeof(d2g_item_t *));
            f->items[f->n_items++] = it;
            bytes += it->bytes;
        }
    }
    f->mapped = d2g_calloc(f->n_items, sizeof(d2g_mapped_t));
    f->stage = ST_MAP;
    return f;
}

/* Hands items back to the worker and frees them. */
static void finish_items(d2g_writer_t *w, d2g_item_t **items, size_t n, const char *failure) {
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

/* Maps every item; an item that cannot be mapped fails alone. Builds `need`. */
static void map_items(d2g_writer_t *w, doc_t *d, flush_t *f) {
    char err[D2G_ERRLEN];
    json_decref(f->need);
    f->need = json_object();
    for (size_t i = 0; i < f->n_items; i++) {
        d2g_item_t *it = f->items[i];
        if (!it)
            continue;
        d2g_mapped_clear(&f->mapped[i]);
        const d2g_mapping_ctx_t *ctx = proc_ctx(w, it->proc, err, sizeof(err));
        int rc = -1;
        if (ctx)
            rc = it->env.kind == D2G_ENVELOPE_UPSERT
                     ? d2g_mapping_map_dossier(ctx, it->env.dossier,
                                               it->env.partial ? D2G_MAPPING_PARTIAL : 0, d->colmap,
                                               &f->mapped[i], err, sizeof(err))
                     : d2g_mapping_map_deleted(ctx, it->env.dossier, it->proc->deleted_mode,
                                               d->colmap, &f->mapped[i], err, sizeof(err));
        if (rc) {
            char reason[D2G_ERRLEN + 32];
            snprintf(reason, sizeof(reason), "mapping: %s", err);
            d2g_log_err(D2G_LOG_ERROR, "dossier_unmappable", it->proc->number, d->id, err,
                        "dossier %" PRId64 " goes to the dead-letter topic", it->env.number);
            finish_items(w, &f->items[i], 1, reason);
            continue;
        }
        d2g_mapped_t *m = &f->mapped[i];
        for (size_t t = 0; t < m->n_tables; t++) {
            json_t *cols = json_object_get(f->need, m->tables[t].id);
            if (!cols) {
                cols = json_object();
                json_object_set_new(f->need, m->tables[t].id, cols);
            }
            for (size_t c = 0; c < m->tables[t].n_columns; c++) {
                d2g_column_t *col = &m->tables[t].columns[c];
                json_t *have = json_object_get(cols, col->id);
                if (!have) {
                    json_object_set_new(cols, col->id, json_deep_copy(col->fields));
                } else if (col->widget_options) {
                    /* Union of the choices every item knows. */
                    json_t *a = json_loads(json_string_value(json_object_get(have, "widgetOptions")), 0, NULL);
                    json_t *b = json_loads(col->widget_options, 0, NULL);
                    json_t *ca = json_object_get(a, "choices"), *cb = json_object_get(b, "choices");
                    size_t k;
                    json_t *v;
                    if (json_is_array(ca) && json_is_array(cb)) {
                        json_array_foreach(cb, k, v) {
                            int found = 0;
                            for (size_t x = 0; x < json_array_size(ca) && !found; x++)
                                found = json_equal(json_array_get(ca, x), v);
                            if (!found)
                                json_array_append(ca, v);
                        }
                        char *s = json_dumps(a, JSON_COMPACT);
                        json_object_set_new(have, "widgetOptions", json_string(s));
                        free(s);
                    }
                    json_decref(a);
                    json_decref(b);
                }
            }
        }
        /* Values of choice columns not yet among the choices join them. */
        for (size_t r = 0; r < m->n_records; r++) {
            json_t *cols = json_object_get(f->need, m->records[r].table);
            const char *cid;
            json_t *val;
            json_object_foreach(m->records[r].fields, cid, val) {
                json_t *fields = json_object_get(cols, cid);
                const char *type = json_string_value(json_object_get(fields, "type"));
                if (!type || (strcmp(type, "Choice") && strcmp(type, "ChoiceList")))
                    continue;
                json_t *wo = json_loads(json_string_value(json_object_get(fields, "widgetOptions")) ?
                                        json_string_value(json_object_get(fields, "widgetOptions")) : "{}", 0, NULL);
                if (!wo)
                    wo = json_object();
                json_t *choices = json_object_get(wo, "choices");
                if (!json_is_array(choices)) {
                    choices = json_array();
                    json_object_set_new(wo, "choices", choices);
                }
                int changed = 0;
                size_t k;
                json_t *v;
                json_t *values = json_is_array(val) ? val : NULL;
                json_array_foreach(values ? values : json_null(), k, v) {
                    if (k == 0 && json_is_string(v) && !strcmp(json_string_value(v), "L"))
                        continue;
                    int found = 0;
                    for (size_t x = 0; x < json_array_size(choices) && !found; x++)
                        found = json_equal(json_array_get(choices, x), v);
                    if (!found && json_is_string(v)) {
                        json_array_append(choices, v);
                        changed = 1;
                    }
                }
                if (!values && json_is_string(val)) {
                    int found = 0;
                    for (size_t x = 0; x < json_array_size(choices) && !found; x++)
                        found = json_equal(json_array_get(choices, x), val);
                    if (!found) {
                        json_array_append(choices, val);
                        changed = 1;
                    }
                }
                if (changed) {
                    char *s = json_dumps(wo, JSON_COMPACT);
                    json_object_set_new(fields, "widgetOptions", json_string(s));
                    free(s);
                }
                json_decref(wo);
            }
        }
    }
}

/* Choices of a column's fields (from its widgetOptions JSON text). */
static json_t *choices_of(json_t *fields) {
    const char *wo = json_string_value(json_object_get(fields, "widgetOptions"));
    json_t *j = wo && *wo ? json_loads(wo, 0, NULL) : NULL;
    json_t *c = json_incref(json_object_get(j, "choices"));
    json_decref(j);
    return c;
}

/*
 * What the batch needs that the document lacks: tables to create, columns to
 * add, choices to extend. Returns the number of requests planned (0: nothing
 * is missing); with plan = 0 only counts.
 */
static size_t plan_schema(doc_t *d, flush_t *f, int plan) {
    size_t n = 0;
    const char *table;
    json_t *cols;
    json_t *create = json_array();
    json_object_foreach(f->need, table, cols) {
        json_t *have = json_object_get(d->schema, table);
        if (!have) {
            json_t *cl = json_array();
            const char *cid;
            json_t *fields;
            json_object_foreach(cols, cid, fields)
                json_array_append_new(cl, json_pack("{s:s, s:O}", "id", cid, "fields", fields));
            json_array_append_new(create, json_pack("{s:s, s:o}", "id", table, "columns", cl));
            continue;
        }
        json_t *add = json_array(), *patch = json_array();
        const char *cid;
        json_t *fields;
        json_object_foreach(cols, cid, fields) {
            json_t *existing = json_object_get(have, cid);
            if (!existing) {
                json_array_append_new(add, json_pack("{s:s, s:O}", "id", cid, "fields", fields));
                continue;
            }
            json_t *want = choices_of(fields), *got = choices_of(existing);
            if (json_is_array(want)) {
                json_t *merged = json_is_array(got) ? json_deep_copy(got) : json_array();
                size_t k, before = json_array_size(merged);
                json_t *v;
                json_array_foreach(want, k, v) {
                    int found = 0;
                    for (size_t x = 0; x < json_array_size(merged) && !found; x++)
                        found = json_equal(json_array_get(merged, x), v);
                    if (!found)
                        json_array_append(merged, v);
                }
                if (json_array_size(merged) > before) {
                    /* Keep the column's other options; only choices grow. */
                    const char *wo = json_string_value(json_object_get(existing, "widgetOptions"));
                    json_t *opts = wo && *wo ? json_loads(wo, 0, NULL) : NULL;
                    if (!json_is_object(opts)) {
                        json_decref(opts);
                        opts = json_object();
                    }
                    json_object_set(opts, "choices", merged);
                    char *s = json_dumps(opts, JSON_COMPACT);
                    json_array_append_new(patch, json_pack("{s:s, s:{s:s}}", "id", cid, "fields",
                                                           "widgetOptions", s));
                    free(s);
                    json_decref(opts);
                }
                json_decref(merged);
            }
            json_decref(want);
            json_decref(got);
        }
        char *esc = url_escape(table);
        if (json_array_size(add)) {
            n++;
            if (plan) {
                json_t *b = json_pack("{s:O}", "columns", add);
                op_add(f, "POST", fmt("/tables/%s/columns", esc), json_dumps(b, JSON_COMPACT));
                json_decref(b);
            }
        }
        if (json_array_size(patch)) {
            n++;
            if (plan) {
                json_t *b = json_pack("{s:O}", "columns", patch);
                op_add(f, "PATCH", fmt("/tables/%s/columns", esc), json_dumps(b, JSON_COMPACT));
                json_decref(b);
            }
        }
        free(esc);
        json_decref(add);
        json_decref(patch);
    }
    if (json_array_size(create)) {
        n++;
        if (plan) {
            /* Tables first: insert the POST /tables before the column changes. */
            json_t *b = json_pack("{s:O}", "tables", create);
            op_add(f, "POST", d2g_strdup("/tables"), json_dumps(b, JSON_COMPACT));
            json_decref(b);
            op_t t = f->ops[f->n_ops - 1];
            memmove(f->ops + 1, f->ops, (f->n_ops - 1) * sizeof(op_t));
            f->ops[0] = t;
        }
    }
    json_decref(create);
    return n;
}

/* PUT requests: per table, records chunked under batch_bytes. */
static void plan_puts(d2g_writer_t *w, flush_t *f) {
    json_t *by_table = json_object();
    for (size_t i = 0; i < f->n_items; i++) {
        if (!f->items[i])
            continue;
        d2g_mapped_t *m = &f->mapped[i];
        for (size_t r = 0; r < m->n_records; r++) {
            json_t *list = json_object_get(by_table, m->records[r].table);
            if (!list) {
                list = json_array();
                json_object_set_new(by_table, m->records[r].table, list);
            }
            json_array_append_new(list, json_pack("{s:O, s:O}", "require", m->records[r].require,
                                                  "fields", m->records[r].fields));
        }
    }
    /* Each record is serialised once: its text sizes the chunk and goes into
     * the body as it is ({"records":[r1,r2,...]}, what json_dumps would give). */
    const char *table;
    json_t *list;
    size_t cap = 1024;
    char *body = d2g_malloc(cap);
    json_object_foreach(by_table, table, list) {
        char *esc = url_escape(table);
        size_t len = 0, rows = 0, k;
        json_t *rec;
        json_array_foreach(list, k, rec) {
            char *one = json_dumps(rec, JSON_COMPACT);
            if (!one) /* only for values JSON cannot hold (NaN): the mapping makes none */
                continue;
            size_t n = strlen(one);
            if (rows > 0 && len + n + 16 > (size_t)w->cfg->worker.batch_bytes) {
                memcpy(body + len, "]}", 3);
                op_t *o = op_add(f, "PUT", fmt("/tables/%s/records?noparse=1", esc), d2g_strdup(body));
                o->rows = rows;
                len = 0;
                rows = 0;
            }
            if (len + n + 16 > cap) {
                cap = (len + n + 16) * 2;
                body = d2g_realloc(body, cap);
            }
            if (rows == 0) {
                memcpy(body, "{\"records\":[", 12);
                len = 12;
            } else {
                body[len++] = ',';
            }
            memcpy(body + len, one, n);
            len += n;
            rows++;
            free(one);
        }
        if (rows > 0) {
            memcpy(body + len, "]}", 3);
            op_t *o = op_add(f, "PUT", fmt("/tables/%s/records?noparse=1", esc), d2g_strdup(body));
            o->rows = rows;
        }
        free(esc);
    }
    free(body);
    json_decref(by_table);
}

/* GETs finding rows to delete: stale repetition rows, and removed dossiers. */
static void plan_finds(flush_t *f) {
    json_t *child = json_object();   /* table -> {col, keep: {dossier: [ids]}} */
    json_t *removal = json_object(); /* "table\ncol" -> [values] */
    for (size_t i = 0; i < f->n_items; i++) {
        if (!f->items[i])
            continue;
        d2g_mapped_t *m = &f->mapped[i];
        for (size_t r = 0; r < m->n_rowsets; r++) {
            d2g_rowset_t *rs = &m->rowsets[r];
            json_t *keep = json_object_get(child, rs->table);
            if (!keep) {
                keep = json_object();
                json_object_set_new(child, rs->table, keep);
            }
            char num[24];
            snprintf(num, sizeof(num), "%" PRId64, rs->dossier);
            json_object_set(keep, num, rs->row_ids);
        }
        for (size_t r = 0; r < m->n_removals; r++) {
            char *k = fmt("%s\n%s", m->removals[r].table, m->removals[r].column);
            json_t *vals = json_object_get(removal, k);
            if (!vals) {
                vals = json_array();
                json_object_set_new(removal, k, vals);
            }
            json_array_append_new(vals, json_integer(m->removals[r].value));
            free(k);
        }
    }
    const char *table;
    json_t *keep;
    json_object_foreach(child, table, keep) {
        json_t *nums = json_array();
        const char *num;
        json_t *ids;
        json_object_foreach(keep, num, ids)
            json_array_append_new(nums, json_integer(strtoll(num, NULL, 10)));
        json_t *filter = json_pack("{s:o}", "dossier", nums);
        char *fs = json_dumps(filter, JSON_COMPACT), *esc = url_escape(table), *fesc = url_escape(fs);
        op_t *o = op_add(f, "GET", fmt("/tables/%s/records?filter=%s", esc, fesc), NULL);
        o->table = d2g_strdup(table);
        o->keep = json_incref(keep);
        free(fs);
        free(esc);
        free(fesc);
        json_decref(filter);
    }
    const char *k;
    json_t *vals;
    json_object_foreach(removal, k, vals) {
        const char *nl = strchr(k, '\n');
        char *tbl = d2g_strndup(k, (size_t)(nl - k));
        json_t *filter = json_pack("{s:O}", nl + 1, vals);
        char *fs = json_dumps(filter, JSON_COMPACT), *esc = url_escape(tbl), *fesc = url_escape(fs);
        op_t *o = op_add(f, "GET", fmt("/tables/%s/records?filter=%s", esc, fesc), NULL);
        o->table = tbl;
        free(fs);
        free(esc);
        free(fesc);
        json_decref(filter);
    }
    json_decref(child);
    json_decref(removal);
}

/* --- the flush state machine --------------------------------------------------- */

static void release_lock(d2g_writer_t *w, doc_t *d, flush_t *f) {
    char err[D2G_ERRLEN];
    if (f->locked && d2g_lease_release(w->redis, d->lock_key, w->worker_id, err, sizeof(err)))
        d2g_log_err(D2G_LOG_WARN, "redis_error", 0, d->id, err, "schema lock not released; it expires");
    f->locked = 0;
}

/* Merges the column map with the fleet's under the lock, re-maps if ids moved. */
static int sync_colmap(d2g_writer_t *w, doc_t *d, flush_t *f) {
    char err[D2G_ERRLEN];
    if (d2g_colmap_generation(d->colmap) == d->colmap_synced)
        return 0;
    redisReply *rep = d2g_redis_cmd(w->redis, err, sizeof(err), "GET %s", d->colmap_key);
    if (!rep)
        return -1;
    d2g_colmap_t *fresh = d2g_colmap_new();
    if (rep->type == REDIS_REPLY_STRING) {
        json_t *j = json_loads(rep->str, 0, NULL);
        if (j)
            d2g_colmap_merge_json(fresh, j, NULL, err, sizeof(err));
        json_decref(j);
    }
    freeReplyObject(rep);
    /* The persisted assignments win; ours are added after them. */
    json_t *mine = d2g_colmap_to_json(d->colmap);
    size_t moved = 0;
    d2g_colmap_merge_json(fresh, mine, &moved, err, sizeof(err));
    json_decref(mine);
    json_t *all = d2g_colmap_to_json(fresh);
    char *text = json_dumps(all, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(all);
    const char *argv[] = {"SET", d->colmap_key, text};
    rep = d2g_redis_argv(w->redis, 3, argv, NULL, err, sizeof(err));
    free(text);
    if (!rep) {
        d2g_colmap_free(fresh);
        return -1;
    }
    freeReplyObject(rep);
    d2g_colmap_free(d->colmap);
    d->colmap = fresh;
    d->colmap_synced = d2g_colmap_generation(fresh);
    /* Ids may have moved: map again with the merged map (pure, cheap). */
    map_items(w, d, f);
    d->colmap_synced = d2g_colmap_generation(d->colmap);
    return 0;
}

/* Prepares the current stage's requests; sync stages run here. Returns 1 if
 * the flush must wait (lock held elsewhere), 0 otherwise. */
static int enter_stage(d2g_writer_t *w, doc_t *d, flush_t *f, int64_t now) {
    char err[D2G_ERRLEN];
    for (;;) {
        ops_clear(f);
        switch (f->stage) {
        case ST_MAP:
            map_items(w, d, f);
            f->stage = ST_LOAD_TABLES;
            continue;
        case ST_LOAD_TABLES:
            if (d->schema && !f->locked) {
                f->stage = ST_LOAD_COLUMNS;
                continue;
            }
            op_add(f, "GET", d2g_strdup("/tables"), NULL);
            return 0;
        case ST_LOAD_COLUMNS: {
            const char *table;
            json_t *cols;
            json_object_foreach(f->need, table, cols) {
                json_t *have = json_object_get(d->schema, table);
                if (have && json_is_null(have)) {
                    char *esc = url_escape(table);
                    op_t *o = op_add(f, "GET", fmt("/tables/%s/columns", esc), NULL);
                    o->table = d2g_strdup(table);
                    free(esc);
                }
            }
            if (f->n_ops)
                return 0;
            f->stage = ST_PLAN_SCHEMA;
            continue;
        }
        case ST_PLAN_SCHEMA: {
            int colmap_dirty = d2g_colmap_generation(d->colmap) != d->colmap_synced;
            if (!f->locked && (colmap_dirty || plan_schema(d, f, 0) > 0)) {
                /* Something new: take the document's schema lock, then reload
                 * under it (another worker may have just created it). */
                int got = 0;
                if (d2g_lease_acquire(w->redis, d->lock_key, w->worker_id, SCHEMA_LOCK_MS, &got, err,
                                      sizeof(err)) || !got) {
                    d->next_try = now + jitter(w, 100);
                    return 1;
                }
                f->locked = 1;
                if (sync_colmap(w, d, f)) {
                    release_lock(w, d, f);
                    d->next_try = now + backoff_ms(w, 3);
                    return 1;
                }
                f->stage = ST_LOAD_TABLES;
                continue;
            }
            f->stage = ST_CHANGE;
            continue;
        }
        case ST_CHANGE:
            if (f->locked && plan_schema(d, f, 1) > 0)
                return 0;
            release_lock(w, d, f);
            f->stage = ST_PUT;
            continue;
        case ST_PUT:
            plan_puts(w, f);
            if (f->n_ops)
                return 0;
            f->stage = ST_FIND;
            continue;
        case ST_FIND:
            plan_finds(f);
            f->n_finds = f->n_ops;
            if (f->n_ops)
                return 0;
            f->stage = ST_DONE;
            continue;
        case ST_DELETE: /* planned by the FIND answers */
            if (f->n_ops)
                return 0;
            f->stage = ST_DONE;
            continue;
        case ST_DONE:
            return 0;
        }
    }
}

/* Starts the flush's current request, if a permit (and the rate) allows. */
static void send_op(d2g_writer_t *w, doc_t *d, flush_t *f, int64_t now) {
    char err[D2G_ERRLEN];
    int64_t wait = 0;
    op_t *o = &f->ops[f->cur];

    snprintf(d->holder, sizeof(d->holder), "%s:%" PRIu64, w->worker_id, ++w->seq);
    /* The permit's lease outlives the request's hard timeout (grist.timeout_s). */
    int64_t lease = (int64_t)w->cfg->grist.timeout_s * 1000 + 10000;
    if (d2g_permits_acquire(w->redis, d->permit_key, d->permits, lease, d->holder, &wait, err,
                            sizeof(err))) {
        d2g_log_err(D2G_LOG_WARN, "redis_error", 0, d->id, err, "permit unavailable");
        d->next_try = now + backoff_ms(w, 3);
        return;
    }
    if (wait > 0) {
        if (!d->permit_wait_start) {
            d->permit_wait_start = now;
            w->stats.permit_waits++;
        }
        d->next_try = now + (wait < PERMIT_RETRY_MS ? wait : jitter(w, PERMIT_RETRY_MS));
        return;
    }
    /* Then the document's request rate (hosted plans), with the permit in hand:
     * a request that waits for a permit spends none of the rate. */
    if (d->rate_limit > 0) {
        int rc = d2g_ratelimit_take(w->redis, d->rate_key, d->rate_limit, d->rate_window_ms,
                                    d->holder, &wait, err, sizeof(err));
        if (rc || wait > 0) {
            if (rc)
                d2g_log_err(D2G_LOG_WARN, "redis_error", 0, d->id, err, "rate limit unavailable");
            d2g_permits_release(w->redis, d->permit_key, d->holder, err, sizeof(err));
            d->next_try = now + (rc ? backoff_ms(w, 3) : wait);
            return;
        }
    }
    /* Keep the schema lock while the changes it covers are being made. */
    if (f->locked) {
        int got = 0;
        d2g_lease_acquire(w->redis, d->lock_key, w->worker_id, SCHEMA_LOCK_MS, &got, err, sizeof(err));
    }
    const char *none[] = {NULL};
    if (d->permit_wait_start) {
        w->stats.permit_wait_ms += (uint64_t)(now - d->permit_wait_start);
        d2g_metric_observe(w->m_permit_wait, none, (double)(now - d->permit_wait_start) / 1000.0);
        d->permit_wait_start = 0;
    } else {
        d2g_metric_observe(w->m_permit_wait, none, 0);
    }
    char *url = fmt("%s%s", d->base, o->path);
    char *body = o->body ? d2g_strdup(o->body) : NULL; /* kept for a retry */
    if (d2g_http_start(w->http, o->method, url, d->srv->api_key, body, body ? strlen(body) : 0,
                       w->cfg->grist.timeout_s, d, err, sizeof(err))) {
        d2g_permits_release(w->redis, d->permit_key, d->holder, err, sizeof(err));
        d->next_try = now + backoff_ms(w, 3);
    } else {
        f->waiting = 1;
    }
    free(url);
}

/* Splits a batch after a 4xx: halves go first in the queue; one item fails. */
static void split_or_fail(d2g_writer_t *w, doc_t *d, flush_t *f, const char *reason) {
    size_t n = 0;
    for (size_t i = 0; i < f->n_items; i++)
        if (f->items[i])
            f->items[n++] = f->items[i];
    release_lock(w, d, f);
    if (n <= 1) {
        if (n == 1)
            d2g_log_err(D2G_LOG_ERROR, "dossier_rejected", f->items[0]->proc->number, d->id, reason,
                        "dossier %" PRId64 " goes to the dead-letter topic", f->items[0]->env.number);
        finish_items(w, f->items, n, reason);
    } else {
        group_t *a = d2g_calloc(1, sizeof(*a)), *b = d2g_calloc(1, sizeof(*b));
        a->n = n / 2;
        b->n = n - a->n;
        a->items = d2g_malloc(a->n * sizeof(d2g_item_t *));
        b->items = d2g_malloc(b->n * sizeof(d2g_item_t *));
        memcpy(a->items, f->items, a->n * sizeof(d2g_item_t *));
        memcpy(b->items, f->items + a->n, b->n * sizeof(d2g_item_t *));
        a->next = b;
        b->next = d->groups;
        d->groups = a;
        d2g_log_err(D2G_LOG_WARN, "batch_split", 0, d->id, reason, "%zu dossiers in halves", n);
    }
    f->n_items = 0;
    flush_free(f);
    d->flush = NULL;
    /* The schema may be what was wrong: read it again. */
    json_decref(d->schema);
    d->schema = NULL;
}

/* Handles the answer to a successful request of the flush. */
static int apply_answer(d2g_writer_t *w, doc_t *d, flush_t *f, op_t *o, json_t *body) {
    switch (f->stage) {
    case ST_LOAD_TABLES: {
        json_t *tables = json_object_get(body, "tables");
        if (!json_is_array(tables))
            return -1;
        json_decref(d->schema);
        d->schema = json_object();
        size_t i;
        json_t *t;
        json_array_foreach(tables, i, t) {
            const char *id = json_string_value(json_object_get(t, "id"));
            if (id)
                json_object_set_new(d->schema, id, json_null());
        }
        break;
    }
    case ST_LOAD_COLUMNS: {
        json_t *cols = json_object_get(body, "columns");
        if (!json_is_array(cols))
            return -1;
        json_t *have = json_object();
        size_t i;
        json_t *c;
        json_array_foreach(cols, i, c) {
            const char *id = json_string_value(json_object_get(c, "id"));
            if (id)
                json_object_set(have, id, json_object_get(c, "fields"));
        }
        json_object_set_new(d->schema, o->table, have);
        break;
    }
    case ST_CHANGE:
        /* What we asked for now exists: record it in the cache. */
        if (!strcmp(o->method, "POST") && !strcmp(o->path, "/tables")) {
            json_t *created = json_object_get(body, "tables");
            json_t *req = json_loads(o->body, 0, NULL);
            size_t i;
            json_t *t;
            json_array_foreach(json_object_get(req, "tables"), i, t) {
                const char *want = json_string_value(json_object_get(t, "id"));
                const char *got = json_string_value(json_object_get(json_array_get(created, i), "id"));
                if (got && want && strcmp(got, want))
                    d2g_log(D2G_LOG_ERROR, "table_renamed_by_grist", 0, d->id,
                            "asked for table %s, Grist created %s", want, got);
                json_t *have = json_object();
                size_t k;
                json_t *c;
                json_array_foreach(json_object_get(t, "columns"), k, c)
                    json_object_set(have, json_string_value(json_object_get(c, "id")),
                                    json_object_get(c, "fields"));
                json_object_set_new(d->schema, want, have);
            }
            json_decref(req);
        } else {
            /* columns added or patched: reload that table's columns next time */
            const char *p = o->path + strlen("/tables/");
            char *table = d2g_strndup(p, strcspn(p, "/"));
            char *plain = curl_easy_unescape(NULL, table, 0, NULL);
            json_object_set_new(d->schema, plain ? plain : table, json_null());
            curl_free(plain);
            free(table);
        }
        break;
    case ST_PUT: {
        const char *none[] = {NULL};
        w->stats.rows_written += o->rows;
        d2g_metric_observe(w->m_batch_rows, none, (double)o->rows);
        break;
    }
    case ST_FIND: {
        /* Rows of these dossiers that DS no longer has (or all of them, for removals). */
        json_t *ids = json_array();
        size_t i;
        json_t *rec;
        json_array_foreach(json_object_get(body, "records"), i, rec) {
            json_t *fields = json_object_get(rec, "fields");
            int drop = 1;
            if (o->keep) {
                char num[24];
                snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT,
                         json_integer_value(json_object_get(fields, "dossier")));
                json_t *keep = json_object_get(o->keep, num);
                json_t *rid = json_object_get(fields, "ds_row_id");
                size_t k;
                json_t *v;
                json_array_foreach(keep, k, v) {
                    if (json_equal(v, rid))
                        drop = 0;
                }
                if (!keep)
                    drop = 0;
            }
            if (drop)
                json_array_append(ids, json_object_get(rec, "id"));
        }
        if (json_array_size(ids)) {
            /* Queued for the DELETE stage, which follows the FINDs. */
            char *esc = url_escape(o->table);
            char *path = fmt("/tables/%s/data/delete", esc);
            free(esc);
            /* Append after the remaining FINDs; the stage moves on once all are done. */
            op_t *n = op_add(f, "POST", path, json_dumps(ids, JSON_COMPACT));
            n->table = d2g_strdup(DELETE_MARK); /* marks a delete among FINDs */
            /* op_add may have moved the ops array: o is not used past this point. */
        }
        json_decref(ids);
        break;
    }
    default:
        break;
    }
    return 0;
}

/* A 429 means someone else uses the document: counted for metrics, and kept
 * an hour in Redis so that `ds2grist status` shows it for the whole fleet. */
static void note_429(d2g_writer_t *w, doc_t *d) {
    char err[D2G_ERRLEN], score[24], hour_ago[24];
    const char *dl[] = {d->label};
    int64_t now = d2g_clock_wall_ms();
    w->stats.status_429++;
    d2g_metric_inc(w->m_429, dl, 1);
    snprintf(score, sizeof(score), "%" PRId64, now);
    snprintf(hour_ago, sizeof(hour_ago), "%" PRId64, now - 3600000);
    const char *add[] = {"ZADD", d->recent429_key, score, d->holder};
    const char *trim[] = {"ZREMRANGEBYSCORE", d->recent429_key, "-inf", hour_ago};
    const char *ttl[] = {"PEXPIRE", d->recent429_key, "3600000"};
    redisReply *rep;
    if ((rep = d2g_redis_argv(w->redis, 4, add, NULL, err, sizeof(err))))
        freeReplyObject(rep);
    if ((rep = d2g_redis_argv(w->redis, 4, trim, NULL, err, sizeof(err))))
        freeReplyObject(rep);
    if ((rep = d2g_redis_argv(w->redis, 3, ttl, NULL, err, sizeof(err))))
        freeReplyObject(rep);
}

/* A Grist answer for document d. */
static void on_answer(void *opaque, const d2g_http_response_t *resp, void *ud) {
    d2g_writer_t *w = ud;
    doc_t *d = opaque;
    flush_t *f = d->flush;
    char err[D2G_ERRLEN];
    int64_t now = d2g_clock_mono_ms();

    /* A request we gave up on may still run at Grist: its permit is left to
     * expire with its lease (which outlives the timeout), so the cap holds. */
    if (resp->curl_code != CURLE_OPERATION_TIMEDOUT)
        d2g_permits_release(w->redis, d->permit_key, d->holder, err, sizeof(err));
    w->stats.requests++;
    char status[16];
    snprintf(status, sizeof(status), "%ld", resp->curl_code ? 0L : resp->status);
    const char *rl[] = {d->label, resp->curl_code ? "transport" : status};
    const char *dl[] = {d->label};
    d2g_metric_inc(w->m_requests, rl, 1);
    if (!f) /* cannot happen: one request per document at a time */
        return;
    f->waiting = 0;
    op_t *o = &f->ops[f->cur];
    long st = resp->status;
    if (resp->curl_code != 0 || st == 429 || st >= 500 || st == 0) {
        if (resp->curl_code != 0)
            w->stats.transport_errors++;
        else if (st == 429)
            note_429(w, d);
        else
            w->stats.status_5xx++;
        w->stats.retries++;
        d2g_metric_inc(w->m_retries, dl, 1);
        d->backoff++;
        /* A 429 means someone else is using the document: back off too. */
        d2g_log(d->backoff > 3 ? D2G_LOG_WARN : D2G_LOG_DEBUG, "grist_retry", 0, d->id,
                "%s %s: %s; retry %d", o->method, o->path,
                resp->curl_code ? resp->error : st == 429 ? "429 too many requests" : "server error",
                d->backoff);
        d->next_try = now + backoff_ms(w, d->backoff);
        return;
    }
    if (st >= 400) {
        w->stats.status_4xx++;
        char reason[D2G_ERRLEN];
        json_t *j = json_loads(resp->body, 0, NULL);
        const char *msg = json_string_value(json_object_get(j, "error"));
        snprintf(reason, sizeof(reason), "Grist answered %ld to %s %.60s: %.300s", st, o->method,
                 o->path, msg ? msg : resp->body);
        json_decref(j);
        /* A refused key, a missing document or table, or a refused read is the
         * document's problem, not a dossier's: the document waits (and the
         * schema is read again) rather than dead-lettering every dossier. Only
         * requests that carry dossiers' data are split to find the one at fault. */
        int carries_data = f->stage == ST_PUT || f->stage == ST_CHANGE || f->stage == ST_DELETE;
        if (!carries_data || st == 401 || st == 403 || st == 404) {
            d2g_log_err(D2G_LOG_ERROR, "grist_rejected", 0, d->id, reason,
                        "the document waits; check its key and id");
            d2g_metric_inc(w->m_retries, dl, 1);
            release_lock(w, d, f);
            json_decref(d->schema);
            d->schema = NULL;
            f->stage = ST_MAP;
            f->cur = 0;
            ops_clear(f);
            d->next_try = now + backoff_ms(w, ++d->backoff);
            return;
        }
        d->backoff = 0;
        split_or_fail(w, d, f, reason);
        return;
    }
    w->stats.status_2xx++;
    d->backoff = 0;
    json_t *body = json_loads(resp->body, JSON_DECODE_ANY, NULL);
    size_t before = f->n_ops;
    int rc = apply_answer(w, d, f, o, body);
    json_decref(body);
    if (rc) {
        d->next_try = now + backoff_ms(w, ++d->backoff);
        return;
    }
    (void)before;
    f->cur++;
    if (f->replan && f->stage >= ST_PUT && f->stage != ST_DONE) {
        /* Some items left the batch (their partition was revoked): write the
         * rest again from the PUTs, without them. Upserts make it harmless. */
        f->replan = 0;
        f->stage = ST_PUT;
        f->cur = 0;
        ops_clear(f);
        return;
    }
    /* The stage's next request: FIND's own GETs first (the deletes they plan wait). */
    if (f->cur < (f->stage == ST_FIND ? f->n_finds : f->n_ops))
        return;
    if (f->stage == ST_FIND) {
        /* Keep only the deletes the FIND answers planned, for the DELETE stage. */
        size_t k = 0;
        for (size_t i = 0; i < f->n_ops; i++) {
            if (f->ops[i].table && !strcmp(f->ops[i].table, DELETE_MARK)) {
                free(f->ops[i].table);
                f->ops[i].table = NULL;
                f->ops[k++] = f->ops[i];
            } else {
                free(f->ops[i].path);
                free(f->ops[i].body);
                free(f->ops[i].table);
                json_decref(f->ops[i].keep);
            }
        }
        f->n_ops = k;
        f->n_finds = 0;
        f->cur = 0;
        if (k) {
            f->stage = ST_DELETE;
            return;
        }
        f->stage = ST_DONE;
    } else if (f->stage == ST_DELETE) {
        f->stage = ST_DONE;
    } else if (f->stage == ST_LOAD_TABLES) {
        f->stage = ST_LOAD_COLUMNS;
    } else if (f->stage == ST_LOAD_COLUMNS) {
        f->stage = ST_PLAN_SCHEMA;
    } else if (f->stage == ST_CHANGE) {
        /* Reload what changed, then plan again: the cache must be true. */
        f->stage = ST_LOAD_COLUMNS;
    } else if (f->stage == ST_PUT) {
        f->stage = ST_FIND;
    }
    f->cur = 0;
    ops_clear(f);
}

/* Moves one document forward. */
static void doc_step(d2g_writer_t *w, doc_t *d, int64_t now) {
    for (int guard = 0; guard < 16; guard++) {
        if (d->next_try > now)
            return;
        flush_t *f = d->flush;
        if (!f) {
            if (!d->groups && !d->head)
                return;
            if (!d->groups && !w->flush_all &&
                d->head->enqueued_ms + w->cfg->worker.linger_ms > now) {
                /* Fill the batch a little longer, unless it is already full. */
                size_t bytes = 0;
                for (d2g_item_t *it = d->head; it && bytes < (size_t)w->cfg->worker.batch_bytes; it = it->next)
                    bytes += it->bytes;
                if (bytes < (size_t)w->cfg->worker.batch_bytes)
                    return;
            }
            f = d->flush = take_batch(w, d);
        }
        if (f->waiting)
            return;
        if (f->cur >= f->n_ops || f->n_ops == 0) {
            if (f->stage == ST_DONE) {
                w->stats.batches++;
                finish_items(w, f->items, f->n_items, NULL);
                flush_free(f);
                d->flush = NULL;
                continue;
            }
            if (enter_stage(w, d, f, now))
                return;
            if (f->stage == ST_DONE)
                continue;
        }
        send_op(w, d, f, now);
        return;
    }
}

void d2g_writer_step(d2g_writer_t *w, int64_t now) {
    for (size_t i = 0; i < w->n_docs; i++)
        doc_step(w, w->docs[i], now);
}

void d2g_writer_poll(d2g_writer_t *w, int timeout_ms) {
    d2g_http_poll(w->http, timeout_ms, on_answer, w);
}

int64_t d2g_writer_next_due(const d2g_writer_t *w) {
    int64_t due = INT64_MAX;
    for (size_t i = 0; i < w->n_docs; i++) {
        const doc_t *d = w->docs[i];
        int64_t t = INT64_MAX;
        if (d->flush) {
            if (!d->flush->waiting) /* a retry, a permit or the lock to wait for */
                t = d->next_try;
        } else if (d->groups || w->flush_all) {
            if (d->groups || d->head)
                t = d->next_try;
        } else if (d->head) {
            /* The batch is due when it has lingered long enough. */
            int64_t ready = d->head->enqueued_ms + w->cfg->worker.linger_ms;
            t = d->next_try > ready ? d->next_try : ready;
        }
        if (t < due)
            due = t;
    }
    return due;
}

void d2g_writer_flush_all(d2g_writer_t *w, int on) { w->flush_all = on; }

size_t d2g_writer_pending(const d2g_writer_t *w, size_t *documents) {
    size_t n = 0, docs = 0;
    for (size_t i = 0; i < w->n_docs; i++) {
        doc_t *d = w->docs[i];
        size_t before = n;
        n += d->n_queued;
        for (group_t *g = d->groups; g; g = g->next)
            n += g->n;
        if (d->flush)
            for (size_t k = 0; k < d->flush->n_items; k++)
                n += d->flush->items[k] != NULL;
        docs += n > before;
    }
    if (documents)
        *documents = docs;
    return n;
}

static int item_in_partition(const d2g_item_t *it, int32_t partition) {
    for (size_t i = 0; i < it->n_msgs; i++)
        if (it->msgs[i].partition == partition)
            return 1;
    return 0;
}

size_t d2g_writer_partition(d2g_writer_t *w, int32_t partition, int drop, size_t *in_flight) {
    size_t n = 0, busy = 0;
    for (size_t i = 0; i < w->n_docs; i++) {
        doc_t *d = w->docs[i];
        d2g_item_t **pp = &d->head, *prev = NULL;
        while (*pp) {
            d2g_item_t *it = *pp;
            if (item_in_partition(it, partition)) {
                n++;
                if (drop) {
                    *pp = it->next;
                    if (d->tail == it)
                        d->tail = prev;
                    d->n_queued--;
                    json_object_del(d->index, it->key);
                    d2g_item_free(it);
                    continue;
                }
            }
            prev = it;
            pp = &it->next;
        }
        for (group_t *g = d->groups; g; g = g->next)
            for (size_t k = 0; k < g->n; k++)
                if (g->items[k] && item_in_partition(g->items[k], partition)) {
                    n++;
                    if (drop) {
                        /* A split group is being written in pieces: drop the item. */
                        d2g_item_free(g->items[k]);
                        memmove(g->items + k, g->items + k + 1, (g->n - k - 1) * sizeof(d2g_item_t *));
                        g->n--;
                        k--;
                    }
                }
        if (d->flush)
            for (size_t k = 0; k < d->flush->n_items; k++)
                if (d->flush->items[k] && item_in_partition(d->flush->items[k], partition))
                    n++, busy++;
    }
    if (in_flight)
        *in_flight = busy;
    return n;
}

size_t d2g_writer_max_queued(const d2g_writer_t *w) {
    size_t m = 0;
    for (size_t i = 0; i < w->n_docs; i++)
        if (w->docs[i]->n_queued > m)
            m = w->docs[i]->n_queued;
    return m;
}

int d2g_writer_partition_congested(const d2g_writer_t *w, int32_t partition, size_t limit) {
    for (size_t i = 0; i < w->n_docs; i++) {
        doc_t *d = w->docs[i];
        if (d->n_queued <= limit)
            continue;
        for (d2g_item_t *it = d->head; it; it = it->next)
            if (item_in_partition(it, partition))
                return 1;
    }
    return 0;
}

void d2g_writer_abandon_partition(d2g_writer_t *w, int32_t partition) {
    for (size_t i = 0; i < w->n_docs; i++) {
        flush_t *f = w->docs[i]->flush;
        if (!f)
            continue;
        for (size_t k = 0; k < f->n_items; k++) {
            if (f->items[k] && item_in_partition(f->items[k], partition)) {
                d2g_item_free(f->items[k]);
                f->items[k] = NULL;
                d2g_mapped_clear(&f->mapped[k]);
                f->replan = 1;
            }
        }
        if (f->replan && !f->waiting && f->stage >= ST_PUT && f->stage != ST_DONE) {
            f->replan = 0;
            f->stage = ST_PUT;
            f->cur = 0;
            ops_clear(f);
        }
    }
}

const d2g_writer_stats_t *d2g_writer_stats(const d2g_writer_t *w) { return &w->stats; }

void d2g_writer_sample(d2g_writer_t *w) {
    char err[D2G_ERRLEN];
    for (size_t i = 0; i < w->n_docs; i++) {
        int n = d2g_permits_in_use(w->redis, w->docs[i]->permit_key, err, sizeof(err));
        const char *lv[] = {w->docs[i]->label};
        if (n >= 0)
            d2g_metric_set(w->m_permits, lv, n);
    }
}

d2g_writer_t *d2g_writer_new(const d2g_config_t *cfg, d2g_redis_t *redis, const char *worker_id,
                             d2g_metrics_t *metrics, d2g_writer_hooks_t hooks, char *err,
                             size_t errlen) {
    d2g_writer_t *w = d2g_calloc(1, sizeof(*w));
    if (!(w->http = d2g_http_new("ds2grist-worker"))) {
        free(w);
        d2g_err_set(err, errlen, "out of memory");
        return NULL;
    }
    w->cfg = cfg;
    w->redis = redis;
    w->hooks = hooks;
    snprintf(w->worker_id, sizeof(w->worker_id), "%s", worker_id);
    w->rng = (unsigned)d2g_clock_wall_ms();
    w->doc_index = json_object();
    w->proc_index = json_object();
    if (metrics) {
        static const char *const by_doc_status[] = {"document", "status"};
        static const char *const by_doc[] = {"document"};
        static const char *const by_proc[] = {"procedure"};
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
    }
    return w;
}

void d2g_writer_free(d2g_writer_t *w) {
    if (!w)
        return;
    d2g_http_free(w->http);
    for (size_t i = 0; i < w->n_docs; i++)
        doc_free(w->docs[i]);
    free(w->docs);
    const char *k;
    json_t *v;
    json_object_foreach(w->proc_index, k, v) {
        proc_ctx_t *pc = (proc_ctx_t *)(intptr_t)json_integer_value(v);
        d2g_mapping_ctx_free(pc->ctx);
        free(pc->revision_id);
        free(pc);
    }
    json_decref(w->proc_index);
    json_decref(w->doc_index);
    free(w);
}
