/* formschema.c - the schema from the form, before the first dossier; see formschema.h. */
#include "formschema.h"
#include "writer_int.h"

#include "ds2grist/alloc.h"
#include "ds2grist/clock.h"
#include "ds2grist/err.h"
#include "ds2grist/keys.h"
#include "ds2grist/lease.h"
#include "ds2grist/log.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A form not in Redis yet is asked for again after this, doubling. */
#define FORM_WAIT_MS 2000
/* A job that gave way to dossiers is looked at again after this (they make the
 * same columns meanwhile). */
#define FORM_YIELD_MS FORMSCHEMA_BUSY_MS
/* The first checks after start-up wait this long: a worker starting with a
 * backlog writes its dossiers first (they make the same columns). */
#define FORM_START_MS 15000

struct d2g_form_job {
    d2g_config_t *held; /* the configuration procs point into */
    const d2g_procedure_t **procs;
    char **versions;
    size_t n;
};

struct d2g_formschema {
    json_t *due;     /* "<procedure>" -> mono ms of its next check */
    json_t *tries;   /* "<procedure>" -> checks that found no form yet */
    json_t *jobs;    /* lane label -> job (integer pointer) not yet taken */
    json_t *targets; /* "<procedure>" -> what its schema depends on in the configuration */
    int64_t next_due;
    int64_t next_poll; /* mono: next read of {fleet}:forms */
    long long seen;    /* the highest formsgen score read; -1: not read yet */
};

d2g_formschema_t *d2g_formschema_new(const d2g_config_t *cfg) {
    d2g_formschema_t *fs = d2g_calloc(1, sizeof(*fs));
    fs->due = json_object();
    fs->tries = json_object();
    fs->jobs = json_object();
    fs->targets = json_object();
    fs->seen = -1;
    d2g_formschema_apply(fs, cfg);
    /* start-up: after the first dossiers had their chance */
    const char *k;
    json_t *v;
    json_object_foreach(fs->due, k, v) json_integer_set(v, json_integer_value(v) + FORM_START_MS);
    fs->next_due += FORM_START_MS;
    return fs;
}

void d2g_form_job_free(d2g_form_job_t *j) {
    if (!j)
        return;
    for (size_t i = 0; i < j->n; i++)
        free(j->versions[i]);
    free(j->versions);
    free(j->procs);
    d2g_config_free(j->held);
    free(j);
}

void d2g_formschema_free(d2g_formschema_t *fs) {
    if (!fs)
        return;
    const char *k;
    json_t *v;
    json_object_foreach(fs->jobs, k, v) d2g_form_job_free((d2g_form_job_t *)(intptr_t)json_integer_value(v));
    json_decref(fs->jobs);
    json_decref(fs->due);
    json_decref(fs->tries);
    json_decref(fs->targets);
    free(fs);
}

static void set_due(d2g_formschema_t *fs, const char *proc, int64_t at) {
    json_object_set_new(fs->due, proc, json_integer((json_int_t)at));
    if (at < fs->next_due)
        fs->next_due = at;
}

/* What a procedure's schema depends on in the configuration. */
static json_t *target_of(const d2g_procedure_t *p) {
    return json_sprintf("%s/%s;%s;%d%d%d%d", p->grist_server->name, p->document, p->table_prefix,
                        p->mapping.ref_links, p->mapping.geo_areas, p->mapping.avis, p->mapping.messages);
}

void d2g_formschema_apply(d2g_formschema_t *fs, const d2g_config_t *cfg) {
    int64_t now = d2g_clock_mono_ms();
    char key[32];
    json_t *due = fs->due, *targets = json_object();
    /* jobs not started name procedures of the configuration before: made again from this one
     * (their claims are this worker's: taken again at once) */
    const char *k;
    json_t *v;
    json_object_foreach(fs->jobs, k, v) d2g_form_job_free((d2g_form_job_t *)(intptr_t)json_integer_value(v));
    json_object_clear(fs->jobs);
    fs->due = json_object();
    fs->next_due = INT64_MAX;
    /* New procedures, and those whose document, prefix or options changed, are checked
     * now, spread over up to a minute (each check may read a form from Redis); the
     * others keep their turn. */
    size_t fresh = 0;
    for (size_t i = 0; i < cfg->n_procedures; i++) {
        const d2g_procedure_t *p = &cfg->procedures[i];
        snprintf(key, sizeof(key), "%" PRId64, p->number);
        json_t *t = target_of(p), *old = json_object_get(fs->targets, key), *at = json_object_get(due, key);
        if (old && at && json_equal(old, t)) {
            set_due(fs, key, (int64_t)json_integer_value(at));
        } else {
            int64_t spread = (int64_t)fresh++ * 5;
            set_due(fs, key, now + (spread < 60000 ? spread : 60000));
        }
        json_object_set_new(targets, key, t);
    }
    json_decref(due);
    json_decref(fs->targets);
    fs->targets = targets;
}

int64_t d2g_formschema_next_due(const d2g_formschema_t *fs) {
    return fs->next_due < fs->next_poll ? fs->next_due : fs->next_poll;
}

size_t d2g_form_job_count(const d2g_form_job_t *j) { return j->n; }

const d2g_procedure_t *d2g_form_job_proc(const d2g_form_job_t *j, size_t i) { return j->procs[i]; }

d2g_form_job_t *d2g_formschema_take(d2g_formschema_t *fs, const d2g_lane_t *l) {
    json_t *slot = json_object_get(fs->jobs, l->doc.label);
    if (!slot)
        return NULL;
    d2g_form_job_t *j = (d2g_form_job_t *)(intptr_t)json_integer_value(slot);
    json_object_del(fs->jobs, l->doc.label);
    return j;
}

/* What the document's schema follows of the procedure: its form, its table
 * prefix and its mapping options. */
static char *form_version(const d2g_procedure_t *p, const char *revision) {
    char buf[600];
    snprintf(buf, sizeof(buf), "%.300s;%.100s;%d%d%d%d", revision, p->table_prefix,
             p->mapping.ref_links, p->mapping.geo_areas, p->mapping.avis, p->mapping.messages);
    return d2g_strdup(buf);
}

static int doc_key(const d2g_writer_t *w, const d2g_procedure_t *p, const char *name, char *buf) {
    return d2g_keys_doc(d2g_redis_namespace(w->redis), buf, D2G_KEYLEN, p->grist_server->name,
                        p->document, name);
}

/* The producers' news: procedures whose stored revision changed are due now. */
static void poll_changes(d2g_writer_t *w, d2g_formschema_t *fs, int64_t now) {
    char err[D2G_ERRLEN], key[D2G_KEYLEN], gkey[D2G_KEYLEN];
    const char *ns = d2g_redis_namespace(w->redis);
    fs->next_poll = now + FORMSCHEMA_POLL_MS;
    if (d2g_keys_fleet(ns, key, sizeof(key), "forms") || d2g_keys_fleet(ns, gkey, sizeof(gkey), "formsgen"))
        return;
    redisReply *g = d2g_redis_cmd(w->redis, err, sizeof(err), "GET %s", gkey);
    if (!g)
        return; /* Redis is down: the lanes say so; read again later */
    long long gen = g->type == REDIS_REPLY_STRING ? strtoll(g->str, NULL, 10) : 0;
    freeReplyObject(g);
    if (fs->seen < 0 || gen < fs->seen) {
        /* start-up checks everything anyway; a counter gone back (Redis lost) starts afresh */
        fs->seen = fs->seen < 0 ? gen : 0;
        if (fs->seen == gen)
            return;
    }
    if (gen == fs->seen)
        return;
    redisReply *r = d2g_redis_cmd(w->redis, err, sizeof(err), "ZRANGEBYSCORE %s (%lld +inf WITHSCORES LIMIT 0 1000",
                                  key, fs->seen);
    if (!r)
        return;
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2) {
        const redisReply *m = r->element[i], *s = r->element[i + 1];
        if (m->type != REDIS_REPLY_STRING || s->type != REDIS_REPLY_STRING)
            continue;
        long long score = strtoll(s->str, NULL, 10);
        if (score > fs->seen)
            fs->seen = score;
        int64_t number = strtoll(m->str, NULL, 10);
        const d2g_procedure_t *p = d2g_config_find_procedure(w->cfg, number);
        if (!p)
            continue;
        d2g_forms_expire(w->forms, p); /* its form is read again now */
        json_object_del(fs->tries, m->str);
        set_due(fs, m->str, now);
    }
    freeReplyObject(r);
}

/* Adds the procedure to the job waiting for its lane (a new one if none). */
static void queue_job(d2g_writer_t *w, d2g_formschema_t *fs, const d2g_procedure_t *p, char *version) {
    d2g_lane_t *l = d2g_writer_lane(w, p);
    json_t *slot = json_object_get(fs->jobs, l->doc.label);
    d2g_form_job_t *j = slot ? (d2g_form_job_t *)(intptr_t)json_integer_value(slot) : NULL;
    if (!j) {
        j = d2g_calloc(1, sizeof(*j));
        j->held = d2g_config_ref(w->cfg);
        json_object_set_new(fs->jobs, l->doc.label, json_integer((json_int_t)(intptr_t)j));
    }
    for (size_t i = 0; i < j->n; i++)
        if (j->procs[i]->number == p->number) {
            free(j->versions[i]);
            j->versions[i] = version;
            return;
        }
    j->procs = d2g_realloc(j->procs, (j->n + 1) * sizeof(*j->procs));
    j->versions = d2g_realloc(j->versions, (j->n + 1) * sizeof(*j->versions));
    j->procs[j->n] = p;
    j->versions[j->n++] = version;
}

/* One procedure's check; returns when it is to be checked next. */
static int64_t check(d2g_writer_t *w, d2g_formschema_t *fs, const char *key, const d2g_procedure_t *p,
                     int64_t now, int *queued) {
    char err[D2G_ERRLEN], fkey[D2G_KEYLEN], ckey[D2G_KEYLEN];
    d2g_lane_t *l = d2g_writer_find_lane(w, p);
    if (l && (l->state != D2G_LANE_ACTIVE || json_object_get(fs->jobs, l->doc.label)))
        return now + FORMSCHEMA_BUSY_MS; /* in trouble, or a job already waits for it */
    const char *rev = d2g_forms_get(w->forms, p, err, sizeof(err)) ? d2g_forms_revision(w->forms, p) : NULL;
    if (!rev) {
        /* Redis did not answer, or holds no form yet (the producer's first run stores
         * it): asked again after 2 s, doubling */
        json_int_t tries = json_integer_value(json_object_get(fs->tries, key));
        json_object_set_new(fs->tries, key, json_integer(tries + 1));
        int64_t wait = FORM_WAIT_MS << (tries < 8 ? tries : 8);
        return now + (wait < FORMSCHEMA_RECHECK_MS ? wait : FORMSCHEMA_RECHECK_MS);
    }
    json_object_del(fs->tries, key);
    char *version = form_version(p, rev);
    if (doc_key(w, p, "forms", fkey) || doc_key(w, p, "formclaim", ckey)) {
        free(version);
        return now + FORMSCHEMA_RECHECK_MS;
    }
    redisReply *r = d2g_redis_cmd(w->redis, err, sizeof(err), "HGET %s %s", fkey, key);
    if (!r) {
        free(version);
        return now + FORM_WAIT_MS;
    }
    int same = r->type == REDIS_REPLY_STRING && !strcmp(r->str, version);
    freeReplyObject(r);
    if (same) {
        free(version);
        return now + FORMSCHEMA_RECHECK_MS;
    }
    int got = 0;
    if (d2g_lease_acquire(w->redis, ckey, w->worker_id, FORMSCHEMA_CLAIM_MS, &got, err, sizeof(err))) {
        free(version);
        return now + FORM_WAIT_MS;
    }
    if (!got) {
        free(version);
        return now + FORMSCHEMA_BUSY_MS / 2; /* another worker does it */
    }
    d2g_log(D2G_LOG_INFO, "form_schema_queued", p->number, p->document,
            "[schema] form %s: its tables and columns are created before any dossier", rev);
    queue_job(w, fs, p, version);
    *queued = 1;
    /* checked again once the job is over (done) or in any case later */
    return now + FORMSCHEMA_RECHECK_MS;
}

void d2g_formschema_step(d2g_writer_t *w, int64_t now) {
    d2g_formschema_t *fs = w->formschema;
    if (now >= fs->next_poll)
        poll_changes(w, fs, now);
    if (now < fs->next_due)
        return;
    int64_t next = INT64_MAX;
    int budget = FORMSCHEMA_PER_STEP;
    const char *key;
    json_t *v;
    void *tmp;
    json_object_foreach_safe(fs->due, tmp, key, v) {
        int64_t at = (int64_t)json_integer_value(v);
        if (at <= now && budget > 0) {
            budget--;
            const d2g_procedure_t *p = d2g_config_find_procedure(w->cfg, strtoll(key, NULL, 10));
            if (!p) {
                json_object_del(fs->due, key);
                continue;
            }
            int queued = 0;
            at = check(w, fs, key, p, now, &queued);
            if (!queued)
                d2g_forms_forget(w->forms, p); /* kept only by the lanes that map it */
            json_object_set_new(fs->due, key, json_integer((json_int_t)at));
        }
        if (at < next)
            next = at;
    }
    fs->next_due = next;
}

void d2g_formschema_done(d2g_writer_t *w, d2g_lane_t *l, d2g_form_job_t *j, int how) {
    int applied = how == D2G_FORM_APPLIED;
    d2g_formschema_t *fs = w->formschema;
    char err[D2G_ERRLEN], fkey[D2G_KEYLEN], ckey[D2G_KEYLEN], key[32];
    int64_t now = d2g_clock_mono_ms();
    for (size_t i = 0; i < j->n; i++) {
        const d2g_procedure_t *p = j->procs[i];
        snprintf(key, sizeof(key), "%" PRId64, p->number);
        if (doc_key(w, p, "forms", fkey))
            continue;
        if (applied) {
            redisReply *r = d2g_redis_cmd(w->redis, err, sizeof(err), "HSET %s %s %s", fkey, key, j->versions[i]);
            if (r) {
                freeReplyObject(r);
            } else {
                d2g_lane_log(l, D2G_LOG_WARN, "schema", "redis_error", err,
                             "form version not recorded: checked again later");
            }
            d2g_log(D2G_LOG_INFO, "form_schema_applied", p->number, p->document,
                    "[schema] the document holds the tables and columns of the form");
        }
        d2g_forms_forget(w->forms, p); /* read again by the lane if it maps dossiers of it */
        /* a job that failed is looked at again later (its lane's trouble decides when) */
        if (d2g_config_find_procedure(w->cfg, p->number))
            set_due(fs, key, now + (applied ? FORMSCHEMA_RECHECK_MS
                                    : how == D2G_FORM_YIELDED ? FORM_YIELD_MS : FORMSCHEMA_BUSY_MS));
    }
    if (j->n && !doc_key(w, j->procs[0], "formclaim", ckey)) {
        int got = 0;
        /* Done: the claim is given back. Failed: this worker keeps it for
         * FORMSCHEMA_HOLD_MS, so that the other workers do not each open a lane on a
         * document in trouble; it tries again once its lane is active again. */
        if (how != D2G_FORM_FAILED ? d2g_lease_release(w->redis, ckey, w->worker_id, err, sizeof(err))
                    : d2g_lease_acquire(w->redis, ckey, w->worker_id, FORMSCHEMA_HOLD_MS, &got, err,
                                        sizeof(err)))
            d2g_lane_log(l, D2G_LOG_WARN, "schema", "redis_error", err, "form claim not updated; it expires");
    }
    d2g_form_job_free(j);
}
