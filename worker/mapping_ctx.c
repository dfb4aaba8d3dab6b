/*
 * mapping_ctx.c - a procedure's mapping context: its table prefix, options and form
 * (the revision's descriptors, indexed by id), see mapping.h.
 */
#include "mapping_int.h"
#include "ds2grist/alloc.h"
#include "ds2grist/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t count_descs(json_t *arr) {
    size_t i, n = 0;
    json_t *d;
    json_array_foreach(arr, i, d) {
        json_t *subs = json_object_get(d, "champDescriptors");
        n += 1 + (json_is_array(subs) ? json_array_size(subs) : 0);
    }
    return n;
}

static int fill_desc(d2g_mapping_ctx_t *ctx, rdesc_t *r, json_t *d, const char *path,
                     size_t i, char *err, size_t errlen) {
    const char *type = d2g_map_jstr(d, "__typename");
    if (!json_is_object(d))
        return d2g_err_set(err, errlen, "revision.%s[%zu]: not an object", path, i);
    if (!(r->id = d2g_map_jstr(d, "id")))
        return d2g_err_set(err, errlen, "revision.%s[%zu]: no id", path, i);
    if (!type)
        return d2g_err_set(err, errlen, "revision.%s[%zu] (%s): no __typename", path, i, r->id);
    r->label = d2g_map_jstr(d, "label") ? d2g_map_jstr(d, "label") : "";
    r->description = d2g_map_jstr(d, "description");
    r->kind = d2g_kind_of(type, 1);
    r->options = json_is_array(json_object_get(d, "options")) ? json_object_get(d, "options") : NULL;
    json_object_set_new(ctx->index, r->id, json_integer((json_int_t)(r - ctx->descs)));
    return 0;
}

static int load_revision(d2g_mapping_ctx_t *ctx, json_t *rev, char *err, size_t errlen) {
    json_t *champs = json_object_get(rev, "champDescriptors");
    json_t *annots = json_object_get(rev, "annotationDescriptors");
    json_t *lists[2] = {champs, annots};
    const char *names[2] = {"champDescriptors", "annotationDescriptors"};
    size_t next;

    if (!json_is_object(rev))
        return d2g_err_set(err, errlen, "revision: not an object");
    if (!json_is_array(champs))
        return d2g_err_set(err, errlen, "revision.champDescriptors: not an array");
    if (annots && !json_is_null(annots) && !json_is_array(annots))
        return d2g_err_set(err, errlen, "revision.annotationDescriptors: not an array");
    ctx->n_champs = json_array_size(champs);
    ctx->n_annots = json_array_size(annots);
    ctx->n_descs = count_descs(champs) + count_descs(annots);
    ctx->index = json_object();
    if (ctx->n_descs)
        ctx->descs = d2g_calloc(ctx->n_descs, sizeof(*ctx->descs));
    next = ctx->n_champs + ctx->n_annots;
    for (int l = 0; l < 2; l++) {
        size_t i, base = l ? ctx->n_champs : 0;
        json_t *d;
        json_array_foreach(lists[l], i, d) {
            rdesc_t *r = &ctx->descs[base + i];
            if (fill_desc(ctx, r, d, names[l], i, err, errlen))
                return -1;
            json_t *subs = json_object_get(d, "champDescriptors");
            if (r->kind->cls != KC_REPETITION || !json_is_array(subs))
                continue;
            size_t j;
            json_t *sd;
            char path[96];
            snprintf(path, sizeof(path), "%s[%zu].champDescriptors", names[l], i);
            r->first_sub = next;
            r->n_subs = json_array_size(subs);
            json_array_foreach(subs, j, sd) {
                if (fill_desc(ctx, &ctx->descs[next++], sd, path, j, err, errlen))
                    return -1;
            }
        }
    }
    ctx->n_descs = next;
    return 0;
}

void d2g_mapping_opts_default(d2g_mapping_opts_t *opts) {
    /* all off: each changes what existing documents receive, and the writer (filters on
     * dossier_col) and its tests (every child table a block) opt in when ready */
    memset(opts, 0, sizeof(*opts));
}

int d2g_mapping_ctx_new_opts(int64_t procedure, const char *table_prefix, const char *ds_base_url,
                             json_t *revision, const d2g_mapping_opts_t *opts,
                             d2g_mapping_ctx_t **out, char *err, size_t errlen) {
    char check[D2G_COLID_BUFLEN + 256];
    *out = NULL;
    if (procedure <= 0)
        return d2g_err_set(err, errlen, "mapping: procedure must be positive");
    if (!table_prefix || !*table_prefix || strlen(table_prefix) > 200 ||
        d2g_colid_table(table_prefix, NULL, check, sizeof(check)) ||
        strcmp(check, table_prefix) != 0)
        return d2g_err_set(err, errlen, "mapping: table prefix \"%s\" is not a Grist table id",
                           table_prefix ? table_prefix : "");
    if (!ds_base_url || !*ds_base_url)
        return d2g_err_set(err, errlen, "mapping: the DS base URL is required");
    d2g_mapping_ctx_t *ctx = d2g_calloc(1, sizeof(*ctx));
    ctx->colcache = json_object();
    ctx->procedure = procedure;
    ctx->prefix = d2g_strdup(table_prefix);
    ctx->base_url = d2g_strdup(ds_base_url);
    ctx->tables_scope = d2g_map_concat("#tables:", table_prefix);
    if (opts)
        ctx->opts = *opts;
    else
        d2g_mapping_opts_default(&ctx->opts);
    for (size_t n = strlen(ctx->base_url); n > 0 && ctx->base_url[n - 1] == '/'; n--)
        ctx->base_url[n - 1] = 0;
    if (revision && !json_is_null(revision)) {
        if (load_revision(ctx, revision, err, errlen)) {
            d2g_mapping_ctx_free(ctx);
            return -1;
        }
        ctx->revision = json_incref(revision);
    }
    *out = ctx;
    return 0;
}

int d2g_mapping_ctx_new(int64_t procedure, const char *table_prefix, const char *ds_base_url,
                        json_t *revision, d2g_mapping_ctx_t **out, char *err, size_t errlen) {
    return d2g_mapping_ctx_new_opts(procedure, table_prefix, ds_base_url, revision, NULL, out, err,
                                    errlen);
}

void d2g_mapping_ctx_free(d2g_mapping_ctx_t *ctx) {
    if (!ctx)
        return;
    free(ctx->prefix);
    free(ctx->base_url);
    free(ctx->tables_scope);
    free(ctx->descs);
    json_decref(ctx->index);
    json_decref(ctx->revision);
    json_decref(ctx->colcache);
    free(ctx);
}

const rdesc_t *d2g_mapping_find_desc(const d2g_mapping_ctx_t *ctx, const char *id) {
    json_t *i = ctx->index ? json_object_get(ctx->index, id) : NULL;
    return i ? &ctx->descs[json_integer_value(i)] : NULL;
}
