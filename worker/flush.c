/* flush.c - one lane's batch into Grist, stage after stage; see flush.h. */
#include "flush.h"
#include "attach.h"
#include "colmap_store.h"
#include "filter.h"
#include "formschema.h"
#include "plan.h"
#include "schema.h"
#include "views.h"
#include "syncstat.h"
#include "versions.h"
#include "writer_int.h"

#include "ds2grist/alloc.h"
#include "ds2grist/backoff.h"
#include "ds2grist/clock.h"
#include "ds2grist/err.h"
#include "ds2grist/grist.h"
#include "ds2grist/keys.h"
#include "ds2grist/lease.h"
#include "ds2grist/log.h"
#include "ds2grist/permits.h"

#include <curl/curl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* How often a request waiting for a permit asks again: a release comes any time. */
#define PERMIT_RETRY_MS 15
/* The schema lock outlives every request made while holding it. */
#define SCHEMA_LOCK_MS 120000
/* Waiting longer than this for another worker's schema lock is a failure of the lane. */
#define LOCK_WAIT_MAX_MS 60000
/* A status flush that could not go on waits this long before it tries again. */
#define STATUS_RETRY_MS 200
/* How often a batch copying files looks at its transfers. */
#define ATTACH_POLL_MS 5
/* Rounds of schema changes after which the schema is taken as not converging. */
#define CHANGE_ROUNDS_MAX 4

typedef enum { S_PREPARE, S_READ, S_PLAN, S_CHANGE, S_PUT, S_FIND, S_DELETE, S_DONE, S_PROBE, S_TICKS,
               S_ATTACH, S_VIEWS } stage_t;

static const char *const stage_names[] = {"prepare", "schema", "schema", "schema", "put",
                                          "find", "delete", "done", "probe", "status", "attach", "views"};

struct d2g_flush {
    d2g_lane_t *lane;
    json_t *keys;       /* the dossiers' keys */
    d2g_item_t **items; /* NULL entries: left the batch */
    size_t n;
    d2g_mapped_t *mapped; /* per item */
    d2g_version_t *versions; /* per item: what the version guard knew */
    size_t n_versions;       /* entries of versions (n may shrink) */
    unsigned char *filtered; /* per item: an upsert outside its procedure's filter, written as
                                a deletion (filter.h): no cell digest, written whole when back */
    d2g_need_t *need;
    stage_t stage;
    d2g_ops_t ops; /* the stage's requests */
    size_t cur;
    d2g_ops_t deletes; /* planned by the FIND answers */
    int locked;        /* holding the document's schema lock */
    int fresh;         /* the schema was read under the lock */
    int rounds;        /* schema change rounds */
    int waiting;       /* a request is in flight */
    int failed;        /* a request of the batch failed: the backoff is not reset */
    int replan;        /* items left the batch: plan the writes again */
    int planned;       /* the stage's requests are planned (ops) */
    int64_t lock_wait_since;
    char holder[200];
    /* A status flush (syncstat.h): the rows of the sync-status table, and
     * the digest of the PUT sent (0: none). */
    int status;
    d2g_mapped_t rows;
    uint64_t put_digest;
    int cleared; /* ticked boxes the PUT clears */
    int forced;  /* the table or a column was just made: the rows are written */
    int64_t next_try; /* a status flush's own wait (mono ms): it does not wait on
                       * the lane's backoff, nor make the lane wait on it */
    /* a schema-only batch (formschema.h): the forms' tables and columns, no record */
    d2g_form_job_t *job;
    d2g_mapped_t *form_mapped; /* per procedure of the job */
    size_t n_form;             /* entries of form_mapped (the job may be gone) */
    int job_refused;           /* Grist refused a change of the job: not applied */
    d2g_attach_job_t *attach; /* the files being copied (attach.h), S_ATTACH */
    d2g_attach_t *lane_attach; /* its engine */
    int attach_started;
};

/* Nothing of f starts before t: the lane's wait, or a status flush's own. */
static void wait_until(d2g_lane_t *l, d2g_flush_t *f, int64_t t) {
    if (f->status)
        f->next_try = t;
    else
        l->next_try = t;
}

int64_t d2g_flush_next_try(const d2g_flush_t *f) { return f->status ? f->next_try : f->lane->next_try; }

d2g_flush_t *d2g_flush_new(d2g_lane_t *lane, d2g_item_t **items, size_t n) {
    d2g_flush_t *f = d2g_calloc(1, sizeof(*f));
    f->lane = lane;
    f->keys = json_object();
    for (size_t i = 0; i < n; i++)
        json_object_set_new(f->keys, items[i]->key, json_true());
    f->items = items;
    f->n = n;
    f->mapped = d2g_calloc(n + 1, sizeof(d2g_mapped_t));
    f->versions = d2g_calloc(n + 1, sizeof(d2g_version_t));
    f->n_versions = n;
    f->filtered = d2g_calloc(n + 1, 1);
    f->stage = n ? S_PREPARE : S_PROBE;
    return f;
}

d2g_flush_t *d2g_flush_new_status(d2g_lane_t *lane, d2g_mapped_t *rows) {
    d2g_flush_t *f = d2g_flush_new(lane, NULL, 0);
    f->status = 1;
    f->rows = *rows;
    memset(rows, 0, sizeof(*rows));
    d2g_mapped_t *v = &f->rows;
    f->need = d2g_plan_need(&v, 1);
    f->stage = S_READ;
    return f;
}

d2g_flush_t *d2g_flush_new_form(d2g_lane_t *lane, d2g_form_job_t *job) {
    d2g_flush_t *f = d2g_flush_new(lane, NULL, 0);
    f->job = job;
    f->n_form = d2g_form_job_count(job);
    f->form_mapped = d2g_calloc(f->n_form + 1, sizeof(d2g_mapped_t));
    f->stage = S_PREPARE;
    return f;
}

static void forms_clear(d2g_flush_t *f) {
    for (size_t j = 0; j < f->n_form; j++)
        d2g_mapped_clear(&f->form_mapped[j]);
}

void d2g_flush_free(d2g_flush_t *f, int free_items) {
    if (!f)
        return;
    for (size_t i = 0; i < f->n; i++) {
        d2g_mapped_clear(&f->mapped[i]);
        if (free_items)
            d2g_item_free(f->items[i]);
    }
    for (size_t i = 0; i < f->n_versions; i++)
        d2g_version_clear(&f->versions[i]);
    d2g_mapped_clear(&f->rows);
    free(f->mapped);
    free(f->versions);
    free(f->filtered);
    free(f->items);
    forms_clear(f);
    free(f->form_mapped);
    d2g_form_job_free(f->job);
    json_decref(f->keys);
    if (f->lane->schema_owner == f)
        f->lane->schema_owner = NULL;
    d2g_need_free(f->need);
    d2g_ops_clear(&f->ops);
    d2g_ops_clear(&f->deletes);
    d2g_attach_job_free(f->lane_attach, f->attach);
    free(f);
}

size_t d2g_flush_items(const d2g_flush_t *f) {
    size_t k = 0;
    for (size_t i = 0; i < f->n; i++)
        k += f->items[i] != NULL;
    return k;
}

size_t d2g_flush_bytes(const d2g_flush_t *f) {
    size_t b = 0;
    for (size_t i = 0; i < f->n; i++)
        b += f->items[i] ? f->items[i]->bytes : 0;
    return b;
}

int d2g_flush_waiting(const d2g_flush_t *f) { return f->waiting; }

d2g_lane_t *d2g_flush_lane(const d2g_flush_t *f) { return f->lane; }

const json_t *d2g_flush_keys(const d2g_flush_t *f) { return f->keys; }

const char *d2g_flush_holder(const d2g_flush_t *f) { return f->holder; }

d2g_item_t **d2g_flush_take_items(d2g_flush_t *f, size_t *n) {
    d2g_item_t **items = d2g_malloc((f->n + 1) * sizeof(*items));
    *n = 0;
    for (size_t i = 0; i < f->n; i++) {
        d2g_mapped_clear(&f->mapped[i]);
        if (f->items[i])
            items[(*n)++] = f->items[i];
        f->items[i] = NULL;
    }
    return items;
}

int d2g_flush_has_partition(const d2g_flush_t *f, uint8_t topic, int32_t partition) {
    for (size_t i = 0; i < f->n; i++)
        if (f->items[i] && d2g_item_in_partition(f->items[i], topic, partition))
            return 1;
    return 0;
}

/* The mapped dossiers still in the batch (NULL for those gone); caller frees. */
static d2g_mapped_t **alive(d2g_flush_t *f) {
    d2g_mapped_t **v = d2g_calloc(f->n + 1, sizeof(*v));
    for (size_t i = 0; i < f->n; i++)
        v[i] = f->items[i] ? &f->mapped[i] : NULL;
    return v;
}

/* The forms of a schema-only batch, mapped with the lane's column map (the
 * same ids as the dossiers'). 1: wait (a form is unavailable). */
static int map_forms(d2g_writer_t *w, d2g_lane_t *l, d2g_flush_t *f, int64_t now) {
    char err[D2G_ERRLEN];
    forms_clear(f);
    for (size_t j = 0; j < d2g_form_job_count(f->job); j++) {
        const d2g_mapping_ctx_t *ctx = d2g_forms_get(w->forms, d2g_form_job_proc(f->job, j), err, sizeof(err));
        if (!ctx) {
            d2g_lane_failed(l, now, D2G_GRIST_RETRY, D2G_LANE_REDIS, -1, err, &w->rng);
            d2g_lane_log(l, D2G_LOG_WARN, "prepare", "form_unavailable", err, "the form's schema waits");
            return 1;
        }
        if (d2g_mapping_map_form(ctx, l->colmap, &f->form_mapped[j], err, sizeof(err)))
            d2g_lane_log(l, D2G_LOG_ERROR, "prepare", "form_unmappable", err, "the form's schema is not made");
    }
    return 0;
}

static void release_lock(d2g_writer_t *w, d2g_lane_t *l, d2g_flush_t *f) {
    char err[D2G_ERRLEN];
    if (f->locked && d2g_lease_release(w->redis, l->lock_key, w->worker_id, err, sizeof(err)))
        d2g_lane_log(l, D2G_LOG_WARN, "schema", "redis_error", err, "schema lock not released; it expires");
    if (l->schema_owner == f)
        l->schema_owner = NULL;
    f->locked = f->fresh = 0;
}

/* One item leaves the batch for the dead-letter topic. */
static void fail_item(d2g_writer_t *w, d2g_lane_t *l, d2g_flush_t *f, size_t i, const char *stage,
                      const char *event, const char *reason) {
    d2g_log_err(D2G_LOG_ERROR, event, f->items[i]->proc->number, l->doc.label, reason,
                "[%s] dossier %" PRId64 " goes to the dead-letter topic", stage, f->items[i]->env.number);
    d2g_syncstat_refused(w->redis, l, f->items[i], reason); /* the agents see it */
    d2g_mapped_clear(&f->mapped[i]);
    d2g_writer_finish(w, &f->items[i], 1, reason);
}

/* --- prepare --------------------------------------------------------------------- */

/* Maps every item still in the batch. 1: wait (a form is unavailable). */
static int map_all(d2g_writer_t *w, d2g_lane_t *l, d2g_flush_t *f, int64_t now) {
    char err[D2G_ERRLEN];
    if (f->job)
        return map_forms(w, l, f, now);
    for (size_t i = 0; i < f->n; i++) {
        d2g_item_t *it = f->items[i];
        if (!it)
            continue;
        d2g_mapped_clear(&f->mapped[i]);
        const d2g_mapping_ctx_t *ctx = d2g_forms_get(w->forms, it->proc, err, sizeof(err));
        if (!ctx) {
            d2g_lane_failed(l, now, D2G_GRIST_RETRY, D2G_LANE_REDIS, -1, err, &w->rng);
            d2g_lane_log(l, D2G_LOG_WARN, "prepare", "form_unavailable", err, "the batch waits for its form");
            return 1;
        }
        f->filtered[i] = 0;
        json_t *gone = NULL; /* an upsert outside the procedure's filter: written as deleted */
        if (it->env.kind == D2G_ENVELOPE_UPSERT) {
            char why[160];
            d2g_filter_result_t fr = d2g_filter_check(&it->proc->filter, it->env.dossier, why, sizeof(why));
            if (fr == D2G_FILTER_UNKNOWN) {
                /* a label-only update from a producer whose label query lacks the fields */
                d2g_log(D2G_LOG_WARN, "filter_undecidable", it->proc->number, l->doc.label,
                        "[prepare] dossier %" PRId64 " not written: %s", it->env.number, why);
                d2g_writer_finish(w, &f->items[i], 1, NULL);
                continue;
            }
            if (fr == D2G_FILTER_OUT) {
                d2g_log(D2G_LOG_DEBUG, "dossier_filtered", it->proc->number, l->doc.label,
                        "[prepare] dossier %" PRId64 " outside the filter (%s): %s", it->env.number,
                        why, it->proc->deleted_mode == D2G_DELETED_REMOVE ? "removed" : "marked");
                gone = d2g_filter_deleted_node(it->env.dossier);
                f->filtered[i] = 1;
            }
        }
        int rc = it->env.kind == D2G_ENVELOPE_UPSERT && !gone
                     ? d2g_mapping_map_dossier(ctx, it->env.dossier,
                                               it->env.partial ? D2G_MAPPING_PARTIAL : 0, l->colmap,
                                               &f->mapped[i], err, sizeof(err))
                     : d2g_mapping_map_deleted(ctx, gone ? gone : it->env.dossier,
                                               it->proc->deleted_mode, l->colmap, &f->mapped[i], err,
                                               sizeof(err));
        json_decref(gone);
        if (rc) {
            char reason[D2G_ERRLEN + 16];
            snprintf(reason, sizeof(reason), "mapping: %s", err);
            fail_item(w, l, f, i, "prepare", "dossier_unmappable", reason);
        }
    }
    return 0;
}

static void plan_need(d2g_flush_t *f) {
    d2g_need_free(f->need);
    if (f->status) {
        d2g_mapped_t *v = &f->rows;
        f->need = d2g_plan_need(&v, 1);
        return;
    }
    d2g_mapped_t **v = alive(f);
    if (f->job) {
        size_t nj = d2g_form_job_count(f->job);
        d2g_mapped_t **fv = d2g_calloc(nj + 1, sizeof(*fv));
        for (size_t j = 0; j < nj; j++)
            fv[j] = &f->form_mapped[j];
        f->need = d2g_plan_need(fv, nj);
        free(fv);
    } else {
        f->need = d2g_plan_need(v, f->n);
    }
    free(v);
}

static int prepare(d2g_writer_t *w, d2g_lane_t *l, d2g_flush_t *f, int64_t now) {
    char err[D2G_ERRLEN];
    if (f->job) {
        if (map_forms(w, l, f, now))
            return 1;
        plan_need(f);
        f->stage = S_READ;
        return 0;
    }
    /* Versions Grist already holds newer are done without a write. */
    if (d2g_versions_check(w->redis, l->versions_key, f->items, f->n, f->versions, err, sizeof(err))) {
        d2g_lane_failed(l, now, D2G_GRIST_RETRY, D2G_LANE_REDIS, -1, err, &w->rng);
        d2g_lane_log(l, D2G_LOG_WARN, "prepare", "redis_error", err, "version guard unavailable; the batch waits");
        return 1;
    }
    for (size_t i = 0; i < f->n; i++) {
        if (!f->items[i] || !f->versions[i].stale)
            continue;
        d2g_log(D2G_LOG_DEBUG, "dossier_superseded", f->items[i]->proc->number, l->doc.label,
                "[prepare] dossier %" PRId64 ": Grist holds a newer version", f->items[i]->env.number);
        w->stats.superseded++;
        d2g_metric_inc(w->m_superseded, NULL, 1);
        d2g_writer_finish(w, &f->items[i], 1, NULL);
    }
    if (map_all(w, l, f, now))
        return 1;
    /* A dossier one of whose rows cannot fit in a request is refused before
     * anything is created for it. */
    d2g_mapped_t **v = alive(f);
    int *too_big = d2g_calloc(f->n + 1, sizeof(int));
    d2g_plan_too_big(v, f->n, (size_t)w->cfg->worker.batch_bytes, too_big);
    free(v);
    for (size_t i = 0; i < f->n; i++) {
        if (!too_big[i])
            continue;
        char reason[160];
        snprintf(reason, sizeof(reason), "dossier too large: a row of it exceeds worker.batch_bytes "
                 "(%d bytes), Grist's request limit", w->cfg->worker.batch_bytes);
        fail_item(w, l, f, i, "prepare", "dossier_too_large", reason);
    }
    free(too_big);
    plan_need(f);
    f->stage = S_READ;
    return 0;
}

/* --- schema ------------------------------------------------------------------------ */

static void plan_reads(d2g_lane_t *l, d2g_flush_t *f) {
    if (!d2g_schema_loaded(l->schema)) {
        d2g_ops_add(&f->ops, D2G_OP_TABLES, "GET", d2g_strdup("/tables"), NULL, NULL);
        return;
    }
    json_t *tables = d2g_schema_unloaded(l->schema, f->need);
    size_t i;
    json_t *t;
    json_array_foreach(tables, i, t) {
        char *esc = curl_easy_escape(NULL, json_string_value(t), 0);
        size_t len = strlen(esc ? esc : "") + 24;
        char *path = d2g_malloc(len);
        snprintf(path, len, "/tables/%s/columns", esc ? esc : "");
        curl_free(esc);
        d2g_ops_add(&f->ops, D2G_OP_COLUMNS, "GET", path, NULL, json_string_value(t));
    }
    json_decref(tables);
}

/* Decides what the schema needs. 0: go on; 1: wait. */
static int plan_schema(d2g_writer_t *w, d2g_lane_t *l, d2g_flush_t *f, int64_t now) {
    char err[D2G_ERRLEN];
    int dirty = d2g_colmap_generation(l->colmap) != l->colmap_synced;
    char why[D2G_ERRLEN];
    if (d2g_schema_conflict(l->schema, f->need, why, sizeof(why))) {
        /* nothing is written or dead-lettered: the lane parks (its dossiers wait in the
         * retry topic) until the configuration or the document is fixed */
        release_lock(w, l, f);
        d2g_schema_forget(l->schema); /* read again next time: someone may fix the document */
        d2g_lane_failed(l, now, D2G_GRIST_REFUSED, D2G_LANE_REJECTED, -1, why, &w->rng);
        d2g_lane_log(l, D2G_LOG_ERROR, "schema", "schema_conflict", why, "the batch is not written");
        return 1;
    }
    json_t *changes = d2g_schema_changes(l->schema, f->need);
    if (!dirty && json_array_size(changes) == 0) {
        json_decref(changes);
        if (d2g_schema_views(l->schema)) { /* what the changes made, while the lock is held */
            f->stage = S_VIEWS;
            return 0;
        }
        release_lock(w, l, f);
        f->stage = f->status ? S_TICKS : S_PUT;
        return 0;
    }
    if (!f->locked && l->schema_owner && l->schema_owner != f) {
        /* The lane's other batch is changing the schema: this one waits. */
        json_decref(changes);
        wait_until(l, f, now + PERMIT_RETRY_MS);
        return 1;
    }
    if (!f->locked) {
        int got = 0;
        if (d2g_lease_acquire(w->redis, l->lock_key, w->worker_id, SCHEMA_LOCK_MS, &got, err, sizeof(err))) {
            json_decref(changes);
            d2g_lane_failed(l, now, D2G_GRIST_RETRY, D2G_LANE_REDIS, -1, err, &w->rng);
            d2g_lane_log(l, D2G_LOG_WARN, "schema", "redis_error", err, "schema lock unavailable");
            return 1;
        }
        if (!got) {
            json_decref(changes);
            if (!f->lock_wait_since)
                f->lock_wait_since = now;
            if (now - f->lock_wait_since > LOCK_WAIT_MAX_MS) {
                f->lock_wait_since = now;
                d2g_lane_failed(l, now, D2G_GRIST_RETRY, D2G_LANE_LOCK, -1,
                                "another worker holds the schema lock", &w->rng);
                d2g_lane_log(l, D2G_LOG_WARN, "schema", "schema_lock_wait", NULL,
                             "waited %d s for the schema lock", LOCK_WAIT_MAX_MS / 1000);
            } else {
                wait_until(l, f, now + d2g_backoff_jitter(&w->rng, 100));
            }
            return 1;
        }
        f->locked = 1;
        f->fresh = 0;
        f->lock_wait_since = 0;
        l->schema_owner = f;
    }
    json_decref(changes);
    if (dirty) {
        size_t moved = 0;
        if (d2g_colmap_store_sync(w->redis, l->colmap_key, &l->colmap, &moved, err, sizeof(err))) {
            release_lock(w, l, f);
            d2g_lane_failed(l, now, D2G_GRIST_RETRY, D2G_LANE_REDIS, -1, err, &w->rng);
            d2g_lane_log(l, D2G_LOG_WARN, "schema", "redis_error", err, "column map not merged");
            return 1;
        }
        /* Ids may have moved: map again with the merged map (pure, cheap). */
        if (moved && map_all(w, l, f, now))
            return 1;
        if (moved)
            d2g_attach_refill(f->attach, f->mapped, f->n); /* the files copied, in the new cells */
        l->colmap_synced = d2g_colmap_generation(l->colmap);
        plan_need(f);
    }
    if (!f->fresh) {
        /* Another worker may have just made it: read again under the lock. */
        d2g_schema_forget(l->schema);
        f->fresh = 1;
        f->stage = S_READ;
        return 0;
    }
    if (++f->rounds > CHANGE_ROUNDS_MAX && f->status) {
        /* The status table does not take its columns: never the lane's trouble. */
        release_lock(w, l, f);
        d2g_lane_log(l, D2G_LOG_WARN, "status", "schema_not_converging", NULL,
                     "the status table does not take its columns; tried again next period");
        d2g_ops_clear(&f->ops);
        f->failed = 1;
        f->stage = S_DONE;
        return 1;
    }
    if (f->rounds > CHANGE_ROUNDS_MAX) {
        release_lock(w, l, f);
        d2g_lane_failed(l, now, D2G_GRIST_REFUSED, D2G_LANE_REJECTED, -1,
                        "the document's schema does not take the changes asked", &w->rng);
        d2g_lane_log(l, D2G_LOG_ERROR, "schema", "schema_not_converging", NULL,
                     "%d rounds of schema changes did not give the columns needed", CHANGE_ROUNDS_MAX);
        return 1;
    }
    changes = d2g_schema_changes(l->schema, f->need);
    size_t i;
    json_t *c;
    json_array_foreach(changes, i, c) {
        d2g_op_t *o = d2g_ops_add(&f->ops, D2G_OP_CHANGE, json_string_value(json_object_get(c, "method")),
                                  d2g_strdup(json_string_value(json_object_get(c, "path"))),
                                  d2g_strdup(json_string_value(json_object_get(c, "body"))),
                                  json_string_value(json_object_get(c, "table")));
        o->change = json_incref(c);
    }
    json_decref(changes);
    f->stage = f->ops.n ? S_CHANGE : S_READ;
    return 0;
}

/* --- the stages ----------------------------------------------------------------------- */

/* The rows of an upsert as last written (versions.h), to send only what
 * changed; NULL (write in full) for deletions and label-only updates. */
static const d2g_cells_t *prior_cells(const d2g_flush_t *f, size_t i) {
    const d2g_item_t *it = f->items[i];
    /* A full resync writes whole: a row removed by hand comes back. */
    if (!it || it->env.kind != D2G_ENVELOPE_UPSERT || it->env.partial || f->filtered[i] || it->env.full ||
        !f->versions[i].cells.n)
        return NULL;
    return &f->versions[i].cells;
}

/* Plans the upserts. 1: wait (Redis could not forget the digests of the
 * dossiers about to be sent). */
static int plan_puts(d2g_writer_t *w, d2g_lane_t *l, d2g_flush_t *f, int64_t now) {
    char err[D2G_ERRLEN];
    d2g_mapped_t **v = alive(f);
    int *too_big = d2g_calloc(f->n + 1, sizeof(int));
    int *sends = d2g_calloc(f->n + 1, sizeof(int));
    const d2g_cells_t **prior = d2g_calloc(f->n + 1, sizeof(*prior));
    for (size_t i = 0; i < f->n; i++)
        prior[i] = prior_cells(f, i);
    d2g_plan_puts_diff(v, f->n, (size_t)w->cfg->worker.batch_bytes, prior, &f->ops, too_big, sends);
    free(too_big); /* refused in prepare already */
    free(v);
    /* What is about to be sent has no digest until Grist acknowledged it. */
    for (size_t i = 0; i < f->n; i++)
        sends[i] = (sends[i] || f->filtered[i]) && f->items[i] && f->versions[i].cells.n;
    int rc = d2g_versions_forget_cells(w->redis, l->versions_key, f->items, f->n, sends, err, sizeof(err));
    free(sends);
    free(prior);
    if (rc) {
        d2g_ops_clear(&f->ops);
        d2g_lane_failed(l, now, D2G_GRIST_RETRY, D2G_LANE_REDIS, -1, err, &w->rng);
        d2g_lane_log(l, D2G_LOG_WARN, "put", "redis_error", err, "row digests not removed; the batch waits");
        return 1;
    }
    /* How big the bodies came out for the messages taken: the next batch is
     * sized on it. */
    size_t messages = 0, largest = 0;
    for (size_t i = 0; i < f->n; i++)
        messages += f->items[i] ? f->items[i]->bytes : 0;
    json_t *by_table = json_object();
    for (size_t k = 0; k < f->ops.n; k++) {
        json_t *t = json_object_get(by_table, f->ops.v[k].table);
        size_t sum = (t ? (size_t)json_integer_value(t) : 0) + strlen(f->ops.v[k].body);
        json_object_set_new(by_table, f->ops.v[k].table, json_integer((json_int_t)sum));
        largest = sum > largest ? sum : largest;
    }
    json_decref(by_table);
    if (!f->replan && largest)
        d2g_lane_measured(f->lane, messages, largest);
    w->stats.put_body_bytes += largest;
    return 0;
}

/* Which dossiers have no row to delete: their row ids are those last
 * written, or they were never written into child tables this project
 * created (versions.h). When unsure, they are looked up. */
static int *no_find(d2g_writer_t *w, d2g_lane_t *l, d2g_flush_t *f) {
    char err[D2G_ERRLEN];
    int *skip = d2g_calloc(f->n + 1, sizeof(int));
    json_t *tables = json_object();
    for (size_t i = 0; i < f->n; i++) {
        const d2g_mapped_t *m = &f->mapped[i];
        if (!f->items[i] || !m->n_rowsets)
            continue;
        const d2g_version_t *v = &f->versions[i];
        if (v->known) {
            skip[i] = v->digest != 0 && v->digest == d2g_plan_rowsets_digest(m);
            continue;
        }
        for (size_t r = 0; r < m->n_rowsets; r++)
            json_object_set_new(tables, m->rowsets[r].table, json_false());
    }
    size_t nt = json_object_size(tables);
    if (nt) {
        const char **names = d2g_malloc(nt * sizeof(char *));
        int *fresh = d2g_calloc(nt, sizeof(int));
        size_t k = 0;
        const char *t;
        json_t *val;
        json_object_foreach(tables, t, val) names[k++] = t;
        if (d2g_versions_fresh_tables(w->redis, l->versions_key, names, nt, fresh, err, sizeof(err)) == 0)
            for (k = 0; k < nt; k++)
                json_object_set_new(tables, names[k], json_boolean(fresh[k]));
        free(names);
        free(fresh);
        for (size_t i = 0; i < f->n; i++) {
            const d2g_mapped_t *m = &f->mapped[i];
            if (!f->items[i] || !m->n_rowsets || f->versions[i].known)
                continue;
            int all = 1;
            for (size_t r = 0; r < m->n_rowsets; r++)
                all &= json_is_true(json_object_get(tables, m->rowsets[r].table));
            skip[i] = all;
        }
    }
    json_decref(tables);
    for (size_t i = 0; i < f->n; i++) /* a full resync looks: it repairs */
        if (f->items[i] && f->items[i]->env.full)
            skip[i] = 0;
    return skip;
}

/* The status table's PUT, unless its rows are those this worker last wrote
 * and no box is to be cleared. */
static void plan_status_put(d2g_writer_t *w, d2g_lane_t *l, d2g_flush_t *f) {
    d2g_mapped_t *v = &f->rows;
    int too_big = 0;
    d2g_plan_puts(&v, 1, (size_t)w->cfg->worker.batch_bytes, &f->ops, &too_big);
    uint64_t h = 0;
    for (size_t k = 0; k < f->ops.n; k++)
        h = h * 31 + d2g_syncstat_digest(f->ops.v[k].body);
    if (!f->cleared && !f->forced && h == l->status_sent)
        d2g_ops_clear(&f->ops);
    f->put_digest = f->ops.n ? h : 0;
}

static void plan_finds(d2g_writer_t *w, d2g_lane_t *l, d2g_flush_t *f) {
    d2g_mapped_t **v = alive(f);
    d2g_ops_t all = {0};
    int *skip = no_find(w, l, f);
    d2g_plan_finds(v, f->n, skip, &all);
    free(skip);
    free(v);
    /* A table the document does not have holds no row to delete. */
    for (size_t i = 0; i < all.n; i++) {
        d2g_op_t *o = &all.v[i];
        if (d2g_schema_loaded(l->schema) && d2g_schema_lacks_table(l->schema, o->table))
            continue;
        d2g_op_t *n = d2g_ops_add(&f->ops, o->kind, o->method, o->path, NULL, o->table);
        n->keep = o->keep;
        n->column = o->column;
        o->path = NULL;
        o->keep = NULL;
        o->column = NULL;
    }
    d2g_ops_clear(&all);
}

/* Plans the stage's requests, runs the stages that make none, and moves on
 * when a stage's requests are all answered. 0: a request is to be sent (or
 * the flush is done: f->stage == S_DONE); 1: wait. */
static int enter(d2g_writer_t *w, d2g_lane_t *l, d2g_flush_t *f, int64_t now) {
    for (int guard = 0; guard < 64; guard++) {
        if (f->cur < f->ops.n)
            return 0;
        if (f->planned) { /* every request of the stage is answered */
            f->planned = 0;
            d2g_ops_clear(&f->ops);
            f->cur = 0;
            switch (f->stage) {
            case S_CHANGE: f->stage = S_READ; break; /* read what the changes made */
            case S_PUT: f->stage = f->status ? S_DONE : S_FIND; break;
            case S_TICKS: f->stage = S_PUT; break;
            case S_FIND: f->stage = S_DELETE; break;
            case S_DELETE: f->stage = S_DONE; break;
            case S_VIEWS: /* done or given up: once, at creation */
                d2g_schema_views_done(l->schema);
                f->stage = S_PLAN;
                break;
            case S_PROBE: return 1; /* answered, not resumed: the lane stays parked */
            default: break;         /* S_READ reads again what is still unknown */
            }
            continue;
        }
        switch (f->stage) {
        case S_PROBE:
            d2g_ops_add(&f->ops, D2G_OP_PROBE, "GET", d2g_strdup("/tables"), NULL, NULL);
            f->planned = 1;
            return 0;
        case S_PREPARE:
            if (prepare(w, l, f, now))
                return 1;
            f->stage = d2g_flush_items(f) ? S_ATTACH : f->job ? S_READ : S_DONE;
            continue;
        case S_ATTACH: /* files copied into Grist attachments before the rows name them */
            if (!f->attach_started) {
                char key[D2G_KEYLEN];
                f->attach_started = 1;
                if (!d2g_keys_doc(d2g_redis_namespace(w->redis), key, sizeof(key), l->doc.srv->name,
                                  l->doc.id, "attachments"))
                    f->attach = d2g_attach_start(w->attach, w->cfg, &l->doc, key, f->mapped, f->n);
                f->lane_attach = w->attach;
            }
            if (f->attach && d2g_attach_step(w->attach, f->attach, now)) {
                if (l->next_try < now + ATTACH_POLL_MS)
                    l->next_try = now + ATTACH_POLL_MS;
                return 1;
            }
            f->stage = S_READ; /* the job is kept for d2g_attach_refill */
            continue;
        case S_READ:
            plan_reads(l, f);
            if (f->ops.n)
                f->planned = 1;
            else
                f->stage = S_PLAN;
            continue;
        case S_PLAN:
            if (plan_schema(w, l, f, now))
                return 1;
            f->planned = f->stage == S_CHANGE;
            continue;
        case S_CHANGE:
            f->stage = S_READ;
            continue;
        case S_VIEWS:
            d2g_ops_add(&f->ops, D2G_OP_VIEWS_READ, "POST", d2g_strdup("/sql"),
                        d2g_views_query(d2g_schema_views(l->schema)), NULL);
            f->planned = 1;
            continue;
        case S_TICKS:
            d2g_ops_add(&f->ops, D2G_OP_TICKS, "GET", d2g_syncstat_ticks_path(), NULL, D2G_SYNCSTAT_TABLE);
            f->planned = 1;
            return 0;
        case S_PUT:
            if (f->job) { /* the schema was all a form's batch makes */
                f->stage = S_DONE;
                continue;
            }
            if (f->status)
                plan_status_put(w, l, f);
            else if (plan_puts(w, l, f, now))
                return 1;
            f->planned = 1;
            continue;
        case S_FIND:
            plan_finds(w, l, f);
            f->planned = 1;
            continue;
        case S_DELETE:
            f->ops = f->deletes;
            memset(&f->deletes, 0, sizeof(f->deletes));
            f->planned = 1;
            continue;
        case S_DONE:
            return 0;
        }
    }
    return 1;
}

/* Starts the current request if a permit (and the rate) allows. */
static void send_op(d2g_writer_t *w, d2g_lane_t *l, d2g_flush_t *f, int64_t now) {
    char err[D2G_ERRLEN];
    d2g_op_t *o = &f->ops.v[f->cur];
    int64_t wait = 0;
    snprintf(f->holder, sizeof(f->holder), "%s:%" PRIu64, w->worker_id, ++w->seq);
    int rc = d2g_grist_begin(w->redis, &l->doc, f->holder, w->cfg->grist.timeout_s, &wait, err, sizeof(err));
    if (rc < 0) {
        d2g_lane_failed(l, now, D2G_GRIST_RETRY, D2G_LANE_REDIS, -1, err, &w->rng);
        d2g_lane_log(l, D2G_LOG_WARN, stage_names[f->stage], "redis_error", err, "permit unavailable");
        return;
    }
    if (rc > 0) {
        if (!l->permit_wait_start) {
            l->permit_wait_start = now;
            w->stats.permit_waits++;
        }
        wait_until(l, f, now + (wait < PERMIT_RETRY_MS ? wait : d2g_backoff_jitter(&w->rng, PERMIT_RETRY_MS)));
        return;
    }
    if (o->kind == D2G_OP_CHANGE) {
        /* The lock must still be ours while the change is made. */
        int got = 0;
        if (d2g_lease_acquire(w->redis, l->lock_key, w->worker_id, SCHEMA_LOCK_MS, &got, err, sizeof(err)) ||
            !got) {
            char rerr[D2G_ERRLEN];
            d2g_permits_release(w->redis, l->doc.permit_key, f->holder, rerr, sizeof(rerr));
            d2g_lane_log(l, D2G_LOG_WARN, "schema", "schema_lock_lost", got ? NULL : err,
                         "the schema lock is no longer ours: planning again");
            f->locked = f->fresh = 0;
            d2g_schema_forget(l->schema);
            d2g_ops_clear(&f->ops);
            f->cur = 0;
            f->planned = 0;
            f->stage = S_READ;
            return;
        }
    }
    int64_t waited = l->permit_wait_start ? now - l->permit_wait_start : 0;
    w->stats.permit_wait_ms += (uint64_t)waited;
    d2g_metric_observe(w->m_permit_wait, NULL, (double)waited / 1000.0);
    l->permit_wait_start = 0;
    if (d2g_grist_send(w->http, w->redis, &l->doc, f->holder, o->method, o->path, o->body,
                       w->cfg->grist.timeout_s, f, err, sizeof(err))) {
        d2g_lane_failed(l, now, D2G_GRIST_RETRY, D2G_LANE_UNAVAILABLE, -1, err, &w->rng);
        d2g_lane_log(l, D2G_LOG_WARN, stage_names[f->stage], "http_error", err, "request not started");
        return;
    }
    f->waiting = 1;
}

/* A status flush that could not go on (Redis failed, whose wait lands on the
 * lane) tries again later, never in a loop. */
static void status_pause(d2g_flush_t *f, int64_t now) {
    if (f->status && !f->waiting && f->next_try <= now)
        f->next_try = now + STATUS_RETRY_MS;
}

int d2g_flush_step(d2g_writer_t *w, d2g_flush_t *f, int64_t now) {
    d2g_lane_t *l = f->lane;
    if (f->job && !f->waiting && (l->state == D2G_LANE_PARKED || l->head || l->groups)) {
        /* The document is in trouble: the lane's probes take over, the form is checked
         * later. Or dossiers came: their batches make the same columns (their mapping
         * declares the whole form), the form's batch gives way and comes back later. */
        release_lock(w, l, f);
        d2g_formschema_done(w, l, f->job, l->state == D2G_LANE_PARKED ? D2G_FORM_FAILED : D2G_FORM_YIELDED);
        f->job = NULL;
        return 1;
    }
    if (f->waiting || d2g_flush_next_try(f) > now)
        return 0;
    if (enter(w, l, f, now)) {
        status_pause(f, now);
        return 0;
    }
    if (f->stage == S_DONE && f->status) {
        /* Never a change of the lane's state: the dossiers' batches decide it. */
        if (!f->failed && f->put_digest) {
            l->status_sent = f->put_digest;
            d2g_syncstat_sent(w->redis, l, f->put_digest);
        }
        return 1;
    }
    if (f->stage == S_DONE && f->job) {
        release_lock(w, l, f);
        d2g_formschema_done(w, l, f->job, f->job_refused ? D2G_FORM_FAILED : D2G_FORM_APPLIED);
        f->job = NULL;
        w->stats.batches++;
        d2g_lane_succeeded(l, !f->failed);
        return 1;
    }
    if (f->stage == S_DONE) {
        char err[D2G_ERRLEN];
        uint64_t *digests = d2g_calloc(f->n + 1, sizeof(uint64_t));
        d2g_cells_t *cells = d2g_calloc(f->n + 1, sizeof(d2g_cells_t));
        for (size_t i = 0; i < f->n; i++) {
            d2g_item_t *it = f->items[i];
            digests[i] = it ? d2g_plan_rowsets_digest(&f->mapped[i]) : 0;
            /* What Grist holds now; a label-only update or a deletion leaves none. */
            if (it && it->env.kind == D2G_ENVELOPE_UPSERT && !it->env.partial && !f->filtered[i])
                d2g_cells_of(&f->mapped[i], &cells[i]);
        }
        int vrc = d2g_versions_record(w->redis, l->versions_key, f->items, f->n, digests, cells, err,
                                      sizeof(err));
        for (size_t i = 0; i < f->n; i++)
            d2g_cells_clear(&cells[i]);
        free(cells);
        free(digests);
        if (vrc)
            d2g_lane_log(l, D2G_LOG_WARN, "done", "redis_error", err,
                         "versions not recorded: the guard is behind Grist until the next write");
        if (d2g_syncstat_written(w->redis, l, f->items, f->n, err, sizeof(err)))
            d2g_lane_log(l, D2G_LOG_WARN, "done", "redis_error", err,
                         "dossiers not counted for the status table");
        w->stats.batches++;
        l->ok_wall_ms = d2g_clock_wall_ms();
        d2g_writer_finish(w, f->items, f->n, NULL);
        d2g_lane_succeeded(l, !f->failed);
        return 1;
    }
    send_op(w, l, f, now);
    status_pause(f, now);
    return 0;
}

/* --- answers ---------------------------------------------------------------------------- */

/* Splits the batch after a refused write: halves go first in the lane's
 * queue, a dossier alone goes to the dead-letter topic. The flush is over. */
static void split_or_fail(d2g_writer_t *w, d2g_lane_t *l, d2g_flush_t *f, const char *reason) {
    size_t n = 0;
    if (f->job) {
        d2g_lane_log(l, D2G_LOG_ERROR, "schema", "form_schema_refused", reason,
                     "the form's tables and columns are not all made; tried again later");
        f->job_refused = 1;
    }
    for (size_t i = 0; i < f->n; i++) {
        d2g_mapped_clear(&f->mapped[i]);
        if (f->items[i])
            f->items[n++] = f->items[i];
    }
    release_lock(w, l, f);
    d2g_schema_forget(l->schema); /* the schema may be what was wrong */
    if (n == 1) {
        f->n = 1;
        fail_item(w, l, f, 0, stage_names[f->stage], "dossier_rejected", reason);
    } else if (n > 1) {
        d2g_group_t *a = d2g_calloc(1, sizeof(*a)), *b = d2g_calloc(1, sizeof(*b));
        a->n = n / 2;
        b->n = n - a->n;
        a->items = d2g_malloc(a->n * sizeof(d2g_item_t *));
        b->items = d2g_malloc(b->n * sizeof(d2g_item_t *));
        memcpy(a->items, f->items, a->n * sizeof(d2g_item_t *));
        memcpy(b->items, f->items + a->n, b->n * sizeof(d2g_item_t *));
        a->next = b;
        b->next = l->groups;
        l->groups = a;
        d2g_lane_log(l, D2G_LOG_WARN, stage_names[f->stage], "batch_split", reason,
                     "%zu dossiers in halves to find the one refused", n);
    }
    for (size_t i = 0; i < f->n; i++)
        f->items[i] = NULL;
    f->n = 0;
    f->stage = S_DONE;
    d2g_ops_clear(&f->ops);
    f->cur = 0;
    f->planned = 0;
    f->failed = 1;
}

static const char *reason_of(int outcome, const d2g_http_response_t *resp) {
    switch (outcome) {
    case D2G_GRIST_DOCUMENT:
        return resp->status == 404 ? D2G_LANE_NOT_FOUND : D2G_LANE_AUTH;
    case D2G_GRIST_RETRY:
        return resp->curl_code == CURLE_OPERATION_TIMEDOUT ? D2G_LANE_SLOW : D2G_LANE_UNAVAILABLE;
    default:
        return D2G_LANE_REJECTED;
    }
}

/* A request failed in a way that is the document's, not a dossier's. */
static void lane_failure(d2g_writer_t *w, d2g_lane_t *l, d2g_flush_t *f, d2g_op_t *o, int outcome,
                         const d2g_http_response_t *resp, const char *text) {
    int64_t now = d2g_clock_mono_ms();
    int64_t ra = d2g_grist_retry_after_ms(resp->retry_after, 300000);
    f->failed = 1;
    d2g_lane_state_t st = d2g_lane_failed(l, now, outcome, reason_of(outcome, resp), ra, text, &w->rng);
    const char *lv[] = {d2g_grist_outcome_name((d2g_grist_outcome_t)outcome)};
    d2g_metric_inc(w->m_errors, lv, 1);
    d2g_lane_log(l, st == D2G_LANE_PARKED ? D2G_LOG_ERROR : D2G_LOG_WARN, stage_names[f->stage],
                 st == D2G_LANE_PARKED ? "lane_parked" : "grist_retry", text,
                 "%s %.60s: %s (%s); try %d in %" PRId64 " ms", o->method, o->path,
                 d2g_grist_outcome_name((d2g_grist_outcome_t)outcome), l->reason, l->failures,
                 l->next_try - now);
    if (outcome != D2G_GRIST_RETRY || o->kind == D2G_OP_CHANGE) {
        /* What the document holds is unknown now (a change may have been
         * applied before its answer was lost): read it again, never re-send. */
        d2g_schema_forget(l->schema);
        if (f->stage == S_CHANGE) {
            d2g_ops_clear(&f->ops);
            f->cur = 0;
            f->planned = 0;
            f->stage = S_READ;
        }
    }
    if (st == D2G_LANE_PARKED)
        release_lock(w, l, f);
}

/* A request of a status flush failed: the flush is dropped (the next period
 * tries again), the lane's state is left to its dossiers' batches. */
static void status_failure(d2g_writer_t *w, d2g_lane_t *l, d2g_flush_t *f, d2g_op_t *o, int outcome,
                           const char *text) {
    d2g_lane_log(l, D2G_LOG_WARN, "status", "status_not_written", text, "%s %.60s: the status table waits "
                 "for the next period", o->method, o->path);
    /* A change may have been applied; a refusal may be a column someone
     * removed (the next period reads the schema again and makes it). */
    if (o->kind == D2G_OP_CHANGE || outcome == D2G_GRIST_REFUSED)
        d2g_schema_forget(l->schema);
    release_lock(w, l, f);
    d2g_ops_clear(&f->ops);
    f->cur = 0;
    f->planned = 0;
    f->failed = 1;
    f->stage = S_DONE;
}

/* Items left the batch (their partition was revoked) while it was writing:
 * write the rest again from the upserts, without them (upserts make it
 * harmless). Before the writes, nothing is planned for them anyway. */
static void replan_writes(d2g_flush_t *f) {
    if (!f->replan || !(f->stage == S_PUT || f->stage == S_FIND || f->stage == S_DELETE))
        return;
    d2g_ops_clear(&f->ops);
    d2g_ops_clear(&f->deletes);
    f->cur = 0;
    f->planned = 0;
    f->replan = 0;
    f->stage = S_PUT;
}

/* The answer to a views request (views.h): the read plans the write; a failure
 * leaves the columns in the pages (a warning: the data is what matters) and is
 * never tried again, as an agent may have changed the pages meanwhile. */
static void views_answer(d2g_lane_t *l, d2g_flush_t *f, const d2g_http_response_t *resp, int outcome,
                         const char *text) {
    d2g_op_t *o = &f->ops.v[f->cur];
    if (outcome != D2G_GRIST_OK) {
        d2g_lane_log(l, D2G_LOG_WARN, "views", "views_not_set", text, "%s %s: the new technical columns "
                     "stay in the pages, the Ref columns show row ids", o->method, o->path);
        f->cur = f->ops.n;
        return;
    }
    f->cur++;
    if (o->kind != D2G_OP_VIEWS_READ)
        return;
    char err[D2G_ERRLEN];
    json_t *body = json_loadb(resp->body, resp->body_len, JSON_DECODE_ANY, NULL);
    char *actions = d2g_views_actions(d2g_schema_views(l->schema), body, err, sizeof(err));
    json_decref(body);
    if (actions)
        d2g_ops_add(&f->ops, D2G_OP_VIEWS, "POST", d2g_strdup("/apply"), actions, NULL);
    else if (err[0])
        d2g_lane_log(l, D2G_LOG_WARN, "views", "views_not_set", err, "the new technical columns stay in the pages");
}

void d2g_flush_answer(d2g_writer_t *w, d2g_flush_t *f, const d2g_http_response_t *resp) {
    d2g_lane_t *l = f->lane;
    f->waiting = 0;
    d2g_op_t *o = &f->ops.v[f->cur];
    int outcome = (int)d2g_grist_classify(resp);
    char text[256] = "";
    if (outcome != D2G_GRIST_OK)
        d2g_grist_error_text(resp, w->secrets, w->n_secrets, text, sizeof(text));
    if (o->kind == D2G_OP_VIEWS_READ || o->kind == D2G_OP_VIEWS) {
        views_answer(l, f, resp, outcome, text);
        return;
    }
    /* A row already gone is a delete done; a table not made yet holds no row. */
    if ((o->kind == D2G_OP_DELETE && outcome == D2G_GRIST_REFUSED && strstr(text, "Invalid row id")) ||
        (o->kind == D2G_OP_FIND && outcome == D2G_GRIST_MISSING)) {
        f->cur++;
        return;
    }
    if (outcome == D2G_GRIST_MISSING && (o->kind == D2G_OP_PUT || o->kind == D2G_OP_COLUMNS ||
                                         o->kind == D2G_OP_CHANGE || o->kind == D2G_OP_TICKS)) {
        /* A table or column went away behind our cache: read the schema again. */
        d2g_lane_log(l, D2G_LOG_WARN, stage_names[f->stage], "schema_changed", text,
                     "%s %.60s: reading the schema again", o->method, o->path);
        d2g_schema_forget(l->schema);
        release_lock(w, l, f);
        d2g_ops_clear(&f->ops);
        f->cur = 0;
        f->planned = 0;
        f->stage = S_READ;
        f->failed = 1;
        return;
    }
    int carries_data = o->kind == D2G_OP_PUT || o->kind == D2G_OP_CHANGE || o->kind == D2G_OP_DELETE;
    if (outcome == D2G_GRIST_REFUSED && carries_data) {
        char reason[400];
        snprintf(reason, sizeof(reason), "Grist refused %s %.60s: %s", o->method, o->path, text);
        split_or_fail(w, l, f, reason);
        return;
    }
    if (outcome != D2G_GRIST_OK && f->status) {
        status_failure(w, l, f, o, outcome, text);
        return;
    }
    if (outcome != D2G_GRIST_OK) {
        lane_failure(w, l, f, o, outcome, resp, text);
        return;
    }
    json_t *body = json_loadb(resp->body, resp->body_len, JSON_DECODE_ANY, NULL);
    int bad = 0;
    d2g_op_src_t *missing = NULL;
    size_t n_missing = 0;
    switch (o->kind) {
    case D2G_OP_PROBE:
        bad = d2g_schema_read_tables(l->schema, body);
        if (!bad) {
            d2g_lane_log(l, D2G_LOG_INFO, "probe", "lane_resumed", NULL,
                         "the document answers again after %d failures", l->failures);
            d2g_lane_succeeded(l, 0);
            f->stage = S_DONE;
        }
        break;
    case D2G_OP_TABLES:
        bad = d2g_schema_read_tables(l->schema, body);
        break;
    case D2G_OP_COLUMNS:
        bad = d2g_schema_read_columns(l->schema, o->table, body);
        break;
    case D2G_OP_CHANGE:
        if (!strcmp(o->path, "/tables")) {
            json_t *req = json_loads(o->body, 0, NULL);
            size_t i, n_made = 0;
            json_t *t;
            const char **made = d2g_calloc(json_array_size(json_object_get(req, "tables")) + 1, sizeof(char *));
            json_array_foreach(json_object_get(req, "tables"), i, t) {
                const char *want = json_string_value(json_object_get(t, "id"));
                const char *got = json_string_value(
                    json_object_get(json_array_get(json_object_get(body, "tables"), i), "id"));
                if (want && got && strcmp(want, got))
                    d2g_lane_log(l, D2G_LOG_ERROR, "schema", "table_renamed_by_grist", NULL,
                                 "asked for table %s, Grist created %s", want, got);
                else if (want)
                    made[n_made++] = want; /* new and empty: every row in it will be ours */
            }
            char err[D2G_ERRLEN];
            if (d2g_versions_mark_tables(w->redis, l->versions_key, made, n_made, err, sizeof(err)))
                d2g_lane_log(l, D2G_LOG_WARN, "schema", "redis_error", err, "new tables not recorded: their rows are looked up");
            free(made);
            json_decref(req);
        }
        d2g_schema_applied(l->schema, o->change, body);
        f->forced |= f->status;
        break;
    case D2G_OP_PUT: {
        if (!f->status) { /* dossiers' rows only */
            w->stats.rows_written += o->rows;
            d2g_metric_observe(w->m_batch_rows, NULL, (double)o->rows);
        }
        /* Rows of changed cells Grist did not have (someone removed them):
         * written in full after this request. */
        missing = d2g_plan_missing(o, body, &n_missing);
        break;
    }
    case D2G_OP_FIND:
        bad = d2g_plan_deletes(o, body, &f->deletes);
        break;
    case D2G_OP_DELETE:
    case D2G_OP_VIEWS_READ: /* views_answer */
    case D2G_OP_VIEWS:
        break;
    case D2G_OP_TICKS: {
        char err[D2G_ERRLEN];
        int n = d2g_syncstat_ticks(w->redis, body, &f->rows, d2g_clock_wall_ms(), err, sizeof(err));
        if (n < 0) {
            json_decref(body);
            status_failure(w, l, f, o, D2G_GRIST_OK, err);
            return;
        }
        if (n)
            d2g_lane_log(l, D2G_LOG_INFO, "status", "resync_asked", NULL,
                         "%d full resyncs asked from the status table", n);
        f->cleared = n;
        break;
    }
    }
    json_decref(body);
    if (bad) {
        lane_failure(w, l, f, o, D2G_GRIST_RETRY, resp, "unexpected answer from Grist");
        return;
    }
    f->cur++;
    if (n_missing && !f->replan) {
        d2g_lane_log(l, D2G_LOG_INFO, "put", "rows_missing", NULL,
                     "%zu rows of changed cells were not in Grist: written in full", n_missing);
        d2g_mapped_t **v = alive(f);
        d2g_plan_refill(v, missing, n_missing, (size_t)w->cfg->worker.batch_bytes, &f->ops);
        free(v);
    }
    free(missing);
    replan_writes(f);
}

void d2g_flush_drop(d2g_writer_t *w, d2g_flush_t *f) {
    release_lock(w, f->lane, f);
    d2g_flush_free(f, 1);
}

void d2g_flush_abandon(d2g_flush_t *f, uint8_t topic, int32_t partition) {
    for (size_t i = 0; i < f->n; i++) {
        if (f->items[i] && d2g_item_in_partition(f->items[i], topic, partition)) {
            d2g_item_free(f->items[i]);
            f->items[i] = NULL;
            d2g_mapped_clear(&f->mapped[i]);
            f->replan = 1;
        }
    }
    if (!f->waiting)
        replan_writes(f);
}
