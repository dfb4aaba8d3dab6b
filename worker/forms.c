/* forms.c - mapping contexts from each procedure's form, see forms.h. */
#include "forms.h"

#include "ds2grist/alloc.h"
#include "ds2grist/clock.h"
#include "ds2grist/err.h"
#include "ds2grist/keys.h"
#include "ds2grist/log.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A procedure's form is re-read this often. */
#define FORMS_TTL_MS 30000
/* After Redis failed, it is asked again this soon. */
#define FORMS_RETRY_MS 2000

typedef struct form {
    d2g_mapping_ctx_t *ctx;
    int64_t loaded_ms;
    char *revision_id;
} form_t;

struct d2g_forms {
    const d2g_config_t *cfg;
    d2g_redis_t *redis;
    json_t *index; /* "<procedure>" -> form_t pointer */
};

d2g_forms_t *d2g_forms_new(const d2g_config_t *cfg, d2g_redis_t *redis) {
    d2g_forms_t *f = d2g_calloc(1, sizeof(*f));
    f->cfg = cfg;
    f->redis = redis;
    f->index = json_object();
    return f;
}

static void forms_clear(d2g_forms_t *f) {
    const char *k;
    json_t *v;
    json_object_foreach(f->index, k, v) {
        form_t *fm = (form_t *)(intptr_t)json_integer_value(v);
        d2g_mapping_ctx_free(fm->ctx);
        free(fm->revision_id);
        free(fm);
    }
    json_object_clear(f->index);
}

void d2g_forms_apply(d2g_forms_t *f, const d2g_config_t *cfg) {
    f->cfg = cfg;
    /* table prefixes, mapping options and the DS link may have changed: built again on demand */
    forms_clear(f);
}

void d2g_forms_free(d2g_forms_t *f) {
    if (!f)
        return;
    forms_clear(f);
    json_decref(f->index);
    free(f);
}

void d2g_forms_opts(const d2g_procedure_t *proc, d2g_mapping_opts_t *opts) {
    d2g_mapping_opts_default(opts);
    opts->ref_links = proc->mapping.ref_links;
    opts->geo_areas = proc->mapping.geo_areas;
    opts->avis = proc->mapping.avis;
    opts->messages = proc->mapping.messages;
    opts->attachments = proc->mapping.attachments;
}

static int same_id(const char *a, const char *b) {
    return (!a && !b) || (a && b && !strcmp(a, b));
}

const d2g_mapping_ctx_t *d2g_forms_get(d2g_forms_t *f, const d2g_procedure_t *proc, char *err,
                                       size_t errlen) {
    char key[32], rkey[D2G_KEYLEN], cause[D2G_ERRLEN];
    int64_t now = d2g_clock_mono_ms();
    snprintf(key, sizeof(key), "%" PRId64, proc->number);
    json_t *slot = json_object_get(f->index, key);
    form_t *fm = slot ? (form_t *)(intptr_t)json_integer_value(slot) : NULL;
    /* Without a form yet (the producer's first run has not stored it), asked
     * again sooner: the schema is created from it as soon as it comes. */
    if (fm && fm->ctx && now - fm->loaded_ms < (fm->revision_id ? FORMS_TTL_MS : FORMS_RETRY_MS))
        return fm->ctx;
    if (!fm) {
        fm = d2g_calloc(1, sizeof(*fm));
        json_object_set_new(f->index, key, json_integer((json_int_t)(intptr_t)fm));
    }
    d2g_keys_proc(d2g_redis_namespace(f->redis), rkey, sizeof(rkey), proc->number, "revision");
    redisReply *rep = d2g_redis_cmd(f->redis, cause, sizeof(cause), "GET %s", rkey);
    if (!rep) {
        /* Keep what we have; a procedure without a context waits. */
        fm->loaded_ms = now - FORMS_TTL_MS + FORMS_RETRY_MS;
        if (!fm->ctx)
            d2g_err_set(err, errlen, "form of procedure %" PRId64 " unavailable: %s", proc->number,
                        cause);
        return fm->ctx;
    }
    json_t *rev = rep->type == REDIS_REPLY_STRING ? json_loads(rep->str, 0, NULL) : NULL;
    freeReplyObject(rep);
    fm->loaded_ms = now;
    const char *rev_id = json_string_value(json_object_get(rev, "id"));
    if (fm->ctx && same_id(rev_id, fm->revision_id)) {
        json_decref(rev);
        return fm->ctx;
    }
    d2g_mapping_ctx_t *ctx = NULL;
    d2g_mapping_opts_t opts;
    d2g_forms_opts(proc, &opts);
    if (d2g_mapping_ctx_new_opts(proc->number, proc->table_prefix, f->cfg->worker.ds_base_url, rev,
                                 &opts, &ctx, cause, sizeof(cause))) {
        d2g_log_err(D2G_LOG_WARN, "revision_unusable", proc->number, NULL, cause,
                    "[forms] mapping without the form");
        json_decref(rev);
        rev = NULL;
        rev_id = NULL;
        if (d2g_mapping_ctx_new_opts(proc->number, proc->table_prefix, f->cfg->worker.ds_base_url,
                                     NULL, &opts, &ctx, err, errlen))
            return fm->ctx;
    }
    d2g_mapping_ctx_free(fm->ctx);
    free(fm->revision_id);
    fm->ctx = ctx;
    fm->revision_id = rev_id ? d2g_strdup(rev_id) : NULL;
    json_decref(rev);
    return fm->ctx;
}

const char *d2g_forms_revision(d2g_forms_t *f, const d2g_procedure_t *proc) {
    char key[32];
    snprintf(key, sizeof(key), "%" PRId64, proc->number);
    json_t *slot = json_object_get(f->index, key);
    form_t *fm = slot ? (form_t *)(intptr_t)json_integer_value(slot) : NULL;
    return fm && fm->ctx ? fm->revision_id : NULL;
}

void d2g_forms_expire(d2g_forms_t *f, const d2g_procedure_t *proc) {
    char key[32];
    snprintf(key, sizeof(key), "%" PRId64, proc->number);
    json_t *slot = json_object_get(f->index, key);
    form_t *fm = slot ? (form_t *)(intptr_t)json_integer_value(slot) : NULL;
    if (fm)
        fm->loaded_ms = d2g_clock_mono_ms() - FORMS_TTL_MS;
}

void d2g_forms_forget(d2g_forms_t *f, const d2g_procedure_t *proc) {
    char key[32];
    snprintf(key, sizeof(key), "%" PRId64, proc->number);
    json_t *slot = json_object_get(f->index, key);
    form_t *fm = slot ? (form_t *)(intptr_t)json_integer_value(slot) : NULL;
    if (!fm)
        return;
    d2g_mapping_ctx_free(fm->ctx);
    free(fm->revision_id);
    free(fm);
    json_object_del(f->index, key);
}
