/*
 * mapping.c - dossier -> Grist tables, columns and rows, see mapping.h.
 *
 * The context (mapping_ctx.c) holds the form. Mapping a dossier walks its champs
 * and annotations; each champ's kind (mapping_kinds.c)
 * says what columns it has and how its cells are read, the builder
 * (mapping_build.c) collects tables, columns and records. Work is linear in the
 * size of the dossier: every lookup is a hash lookup.
 */
#include "mapping_int.h"
#include "ds2grist/alloc.h"
#include "ds2grist/err.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- columns of a champ ---------------------------------------------------- */

/* A champ's place in the dossier, for error messages ("champs[3].rows[0].champs[1]"). */
#define PATHLEN 128

static int map_champs(builder_t *b, table_b *t, json_t *fields, json_t *champs,
                      const char *path, int annotation, int in_row);
static int map_with_form(builder_t *b, table_b *t, json_t *fields, json_t *champs,
                         const char *path, const rdesc_t *descs, size_t n, int annotation,
                         int in_row);

/* The id of the child table of a repetition descriptor. */
static const char *child_table_id(builder_t *b, const char *desc_id, const char *label,
                                  int annotation) {
    const d2g_mapping_ctx_t *ctx = b->ctx;
    size_t cap = strlen(ctx->prefix) + D2G_COLID_BUFLEN + 16;
    char *id = d2g_malloc(cap), *suffix = annotation ? d2g_map_concat("Annotation ", label) : NULL;
    const char *res = NULL;
    if (d2g_colid_table(ctx->prefix, annotation ? suffix : label, id, cap) == 0 &&
        d2g_colmap_reserve(b->map, ctx->tables_scope, ctx->prefix) == 0)
        res = d2g_colmap_assign_id(b->map, ctx->tables_scope, desc_id, id);
    free(id);
    free(suffix);
    return res;
}

/* "<label> — <sub>" in buf (cut to fit). */
static const char *sub_label(char *buf, size_t len, const char *label, const char *sub) {
    snprintf(buf, len, "%s \xe2\x80\x94 %s", label, sub);
    return buf;
}

/* One sub-column: its id is recorded under "<descriptor>/<key>" (stable across renames),
 * derived from "<champ column>_<words of words>" the first time; its label is "<label> —
 * <name>". Sets fields[id] = cell (taken; NULL: null). */
static int sub_column(builder_t *b, table_b *t, json_t *fields, const char *desc_id,
                      const char *main_id, const char *key, const char *words_of,
                      const char *name, const char *label, const char *type, json_t *cell) {
    char kbuf[256], *mkey = kbuf;
    size_t nd = strlen(desc_id), nkey = strlen(key), nk = nd + nkey + 2;
    if (nk > sizeof(kbuf))
        mkey = d2g_malloc(nk);
    memcpy(mkey, desc_id, nd);
    mkey[nd] = '/';
    memcpy(mkey + nd + 1, key, nkey + 1);
    const char *id = d2g_colmap_lookup(b->map, t->id, mkey);
    if (!id) {
        char words[D2G_COLID_BUFLEN], wanted[2 * D2G_COLID_BUFLEN + 2];
        d2g_colid_from_label(words_of, words, sizeof(words));
        snprintf(wanted, sizeof(wanted), "%s_%s", main_id, words);
        id = d2g_colmap_assign_id(b->map, t->id, mkey, wanted);
    }
    if (mkey != kbuf)
        free(mkey);
    if (!id) {
        json_decref(cell);
        return d2g_mb_oom(b);
    }
    if (!json_object_get(t->colset, id)) {
        char lbuf[512];
        d2g_mb_column(t, id, sub_label(lbuf, sizeof(lbuf), label, name), type, NULL, NULL);
    }
    return d2g_mb_put(b, fields, id, cell ? cell : json_null());
}

/* What follows the champ's label in DS's label of one of its columns ("Adresse – Code
 * postal" -> "Code postal"), or the whole label. */
static const char *column_part(const char *cl, const char *champ_label) {
    size_t n = champ_label ? strlen(champ_label) : 0;
    if (!n || strncmp(cl, champ_label, n) != 0)
        return cl;
    const char *p = cl + n;
    for (;;) {
        if (*p == ' ' || *p == '-' || *p == ':')
            p++;
        else if (strncmp(p, "\xe2\x80\x93", 3) == 0 || strncmp(p, "\xe2\x80\x94", 3) == 0)
            p += 3; /* en and em dashes */
        else
            break;
    }
    return *p ? p : cl;
}

/* DS's own typed columns of a champ as sub-columns (kinds without explicit rules). The
 * column that is the champ's value itself (DS labels it like the champ) is skipped. */
static int generic_columns(builder_t *b, table_b *t, json_t *fields, json_t *champ,
                           const char *desc_id, const char *main_id, const char *label) {
    const char *ds_label = d2g_map_jstr(champ, "label");
    json_t *cols = json_object_get(champ, "columns"), *col;
    size_t i;
    json_array_foreach(cols, i, col) {
        const char *cl = d2g_map_jstr(col, "label"), *cid = d2g_map_jstr(col, "id");
        if (!cl || !*cl || (ds_label && strcmp(cl, ds_label) == 0))
            continue;
        const char *part = column_part(cl, ds_label);
        char *key = d2g_map_concat("c:", cid ? cid : cl);
        int rc = sub_column(b, t, fields, desc_id, main_id, key, part, part, label,
                            d2g_kind_column_type(col), d2g_kind_column_cell(col));
        free(key);
        if (rc)
            return -1;
    }
    return 0;
}

/* opts.attachments: the champ's Attachments column "<id>_fichiers" (["L"] while its files
 * are not copied, null without files), and the files to copy in b->attach. */
static int attachments_column(builder_t *b, table_b *t, json_t *fields, json_t *champ,
                              const char *desc_id, const char *main_id, const char *label) {
    json_t *files = champ ? json_object_get(champ, "files") : NULL;
    int any = json_is_array(files) && json_array_size(files) > 0;
    if (sub_column(b, t, fields, desc_id, main_id, "fichiers", "fichiers", "fichiers", label,
                   "Attachments", any ? json_pack("[s]", "L") : json_null()))
        return -1;
    if (!any)
        return 0;
    char *key = d2g_map_concat(desc_id, "/fichiers");
    const char *id = d2g_colmap_lookup(b->map, t->id, key);
    free(key);
    if (!b->attach)
        b->attach = json_array();
    if (!id || json_array_append_new(b->attach, json_pack("{s:O, s:s, s:s, s:O}", "fields", fields,
                                                          "column", id, "text", main_id, "files",
                                                          files)))
        return d2g_mb_oom(b);
    return 0;
}

/*
 * The columns of one champ of kind k in table t, and its cells in fields: the champ's
 * column, its explicit sub-columns, DS's own columns for generic kinds. champ NULL:
 * declare the columns (from the form) with null cells.
 */
static int champ_columns(builder_t *b, table_b *t, json_t *fields, json_t *champ,
                         const char *desc_id, const char *label, const d2g_kind_t *k,
                         json_t *options, const char *description, int annotation) {
    char *alabel = annotation ? d2g_map_concat("Annotation : ", label) : NULL;
    const char *l = alabel ? alabel : label;
    const char *id = d2g_colmap_assign(b->map, t->id, desc_id, l);
    int rc = 0;
    if (!id) {
        free(alabel);
        return d2g_mb_oom(b);
    }
    col_b *c = d2g_mb_column(t, id, l, k->type, NULL, k->choices_from_form ? options : NULL);
    /* the form's help text becomes the column's description in Grist */
    if (description && *description && !c->extra)
        c->extra = json_pack("{s:s}", "description", description);
    d2g_cellenv_t env = {b->page};
    rc = d2g_mb_put(b, fields, c->id, champ ? k->cell(champ, c, &env) : json_null());
    for (const d2g_subcol_t *s = k->subs; rc == 0 && s && s->key; s++)
        rc = sub_column(b, t, fields, desc_id, c->id, s->key, s->key, s->label, l, s->type,
                        champ ? d2g_kind_subcell(s, champ) : NULL);
    if (rc == 0 && k->cell == d2g_kind_files_cell && b->ctx->opts.attachments)
        rc = attachments_column(b, t, fields, champ, desc_id, c->id, l);
    if (rc == 0 && k->generic && champ)
        rc = generic_columns(b, t, fields, champ, desc_id, c->id, l);
    if (rc == 0 && k->geo && champ)
        rc = d2g_mapping_geo_areas(b, champ, desc_id, l);
    free(alabel);
    return rc;
}

/* --- repetition blocks ------------------------------------------------------ */

/* The child table of a repetition descriptor, created with its fixed columns and the
 * columns of the form's sub-champs (rd may be NULL). */
static table_b *child_table(builder_t *b, const char *desc_id, const char *label,
                            const rdesc_t *rd, int annotation) {
    int created;
    size_t nfixed;
    const d2g_fixed_col_t *fixed = d2g_mapping_child_cols(b->ctx, &nfixed);
    const char *tid = child_table_id(b, desc_id, label, annotation);
    if (!tid) {
        d2g_mb_oom(b);
        return NULL;
    }
    table_b *t = d2g_mb_table(b, tid, "ds_row_id", d2g_mapping_dossier_key(b->ctx), &created);
    if (!created)
        return t;
    if (d2g_mb_fixed(b, t, fixed, nfixed))
        return NULL;
    if (b->ctx->opts.ref_links)
        d2g_mapping_link_column(b, t);
    json_t *scratch = json_object();
    for (size_t i = 0; rd && i < rd->n_subs; i++) {
        const rdesc_t *s = &b->ctx->descs[rd->first_sub + i];
        if (s->kind->cls == KC_VALUE &&
            champ_columns(b, t, scratch, NULL, s->id, s->label, s->kind, s->options,
                          s->description, 0)) {
            json_decref(scratch);
            return NULL;
        }
    }
    json_decref(scratch);
    return t;
}

static int map_repetition(builder_t *b, json_t *champ, const char *desc_id, const char *label,
                          const rdesc_t *rd, int annotation, const char *path) {
    json_t *rows = json_object_get(champ, "rows"), *row;
    size_t j;
    table_b *t = child_table(b, desc_id, label, rd, annotation);
    if (!t)
        return -1;
    if (!json_is_array(rows))
        return d2g_err_set(b->err, b->errlen, "dossier %" PRId64 ": %s (%s): rows is not an array",
                           b->number, path, desc_id);
    if (!t->row_ids)
        t->row_ids = json_array();
    json_array_foreach(rows, j, row) {
        char rpath[PATHLEN], cpath[PATHLEN];
        const char *rid = d2g_map_jstr(row, "id");
        json_t *champs = json_object_get(row, "champs");
        /* paths are short ("annotations[N].rows[N].champs[N]"): the precisions only
         * let the compiler prove that they fit */
        snprintf(rpath, sizeof(rpath), "%.90s.rows[%zu]", path, j);
        snprintf(cpath, sizeof(cpath), "%.110s.champs", rpath);
        if (!rid || !*rid)
            return d2g_err_set(b->err, b->errlen, "dossier %" PRId64 ": %s: no id", b->number,
                               rpath);
        if (!json_is_array(champs))
            return d2g_err_set(b->err, b->errlen,
                               "dossier %" PRId64 ": %s: champs is not an array", b->number,
                               rpath);
        json_t *fields = json_pack("{s:I}", "numero_ligne", (json_int_t)(j + 1));
        int rc = d2g_mapping_link_cells(b, t, fields);
        /* every sub-champ of the form: null unless the row says otherwise */
        if (rc == 0)
            rc = rd ? map_with_form(b, t, fields, champs, cpath, b->ctx->descs + rd->first_sub,
                                    rd->n_subs, 0, 1)
                    : map_champs(b, t, fields, champs, cpath, 0, 1);
        if (rc) {
            json_decref(fields);
            return -1;
        }
        json_array_append_new(t->row_ids, json_string(rid));
        if (d2g_mb_record(b, t->index, json_pack("{s:s}", "ds_row_id", rid), fields))
            return -1;
    }
    return 0;
}

/* --- champs --------------------------------------------------------------------- */

static int map_champ(builder_t *b, table_b *t, json_t *fields, json_t *champ,
                     const char *path, int annotation, int in_row) {
    const char *desc_id = d2g_map_jstr(champ, "champDescriptorId");
    const char *typename = d2g_map_jstr(champ, "__typename");
    if (!json_is_object(champ))
        return d2g_err_set(b->err, b->errlen, "dossier %" PRId64 ": %s: not an object",
                           b->number, path);
    if (!desc_id || !*desc_id)
        return d2g_err_set(b->err, b->errlen, "dossier %" PRId64 ": %s: no champDescriptorId",
                           b->number, path);
    if (!typename)
        return d2g_err_set(b->err, b->errlen, "dossier %" PRId64 ": %s (%s): no __typename",
                           b->number, path, desc_id);
    const d2g_kind_t *ck = d2g_kind_of(typename, 0), *k = ck;
    const rdesc_t *rd = d2g_mapping_find_desc(b->ctx, desc_id);
    /* the form's kind decides the column (a champ of an older revision may have
     * another, an Email champ is a TextChamp); structure (blocks, sections) is the
     * champ's own, and a form kind this version does not know leaves the champ's */
    if (rd && ck->cls == KC_VALUE && rd->kind->cls == KC_VALUE && rd->kind->name[0])
        k = rd->kind;
    if (k->cls == KC_NONE || (k->cls == KC_REPETITION && in_row))
        return 0;
    const char *label = rd ? rd->label : d2g_map_jstr(champ, "label");
    if (!label)
        label = "";
    if (k->cls == KC_REPETITION)
        return map_repetition(b, champ, desc_id, label,
                              rd && rd->kind->cls == KC_REPETITION ? rd : NULL, annotation, path);
    return champ_columns(b, t, fields, champ, desc_id, label, k, rd ? rd->options : NULL,
                         rd ? rd->description : NULL, annotation);
}

static int map_champs(builder_t *b, table_b *t, json_t *fields, json_t *champs,
                      const char *path, int annotation, int in_row) {
    size_t i;
    json_t *champ;
    json_array_foreach(champs, i, champ) {
        char cpath[PATHLEN];
        snprintf(cpath, sizeof(cpath), "%.100s[%zu]", path, i);
        if (map_champ(b, t, fields, champ, cpath, annotation, in_row))
            return -1;
    }
    return 0;
}

/*
 * Champs with the form known: in the form's order, every descriptor gets its columns
 * (null cells unless the dossier has the champ) and every block its row set; then the
 * dossier's champs the form does not know (an older revision's) follow. Each champ is
 * mapped once.
 */
static int map_with_form(builder_t *b, table_b *t, json_t *fields, json_t *champs,
                         const char *path, const rdesc_t *descs, size_t n, int annotation,
                         int in_row) {
    size_t nc = json_array_size(champs), i;
    unsigned char *done = nc ? d2g_calloc(nc, 1) : NULL;
    json_t *by = json_object(), *champ;
    int rc = 0;
    json_array_foreach(champs, i, champ) {
        const char *id = d2g_map_jstr(champ, "champDescriptorId");
        if (id && *id && d2g_map_jstr(champ, "__typename"))
            json_object_set_new(by, id, json_integer((json_int_t)i));
    }
    for (size_t k = 0; rc == 0 && k < n; k++) {
        const rdesc_t *r = &descs[k];
        json_t *ix = json_object_get(by, r->id);
        if (ix && !done[json_integer_value(ix)]) {
            char cpath[PATHLEN];
            size_t at = (size_t)json_integer_value(ix);
            done[at] = 1;
            snprintf(cpath, sizeof(cpath), "%.100s[%zu]", path, at);
            rc = map_champ(b, t, fields, json_array_get(champs, at), cpath, annotation, in_row);
        } else if (r->kind->cls == KC_REPETITION && !in_row) {
            table_b *ct = child_table(b, r->id, r->label, r, annotation);
            if (!ct)
                rc = -1;
            else if (!ct->row_ids)
                ct->row_ids = json_array();
        } else if (r->kind->cls == KC_VALUE) {
            rc = champ_columns(b, t, fields, NULL, r->id, r->label, r->kind, r->options,
                               r->description, annotation);
        }
    }
    json_array_foreach(champs, i, champ) {
        if (rc || done[i])
            continue;
        char cpath[PATHLEN];
        snprintf(cpath, sizeof(cpath), "%.100s[%zu]", path, i);
        rc = map_champ(b, t, fields, champ, cpath, annotation, in_row);
    }
    json_decref(by);
    free(done);
    return rc;
}

/* --- dossiers --------------------------------------------------------------------- */

/* The dossiers table with its fixed columns; its index is 0. */
static table_b *main_table(builder_t *b) {
    int created;
    table_b *t = d2g_mb_table(b, b->ctx->prefix, "numero", NULL, &created);
    if (d2g_colmap_reserve(b->map, b->ctx->tables_scope, b->ctx->prefix)) {
        d2g_mb_oom(b);
        return NULL;
    }
    if (created && d2g_mb_fixed(b, t, d2g_mapping_dossier_cols, d2g_mapping_n_dossier_cols))
        return NULL;
    return t;
}

static int64_t dossier_number(json_t *d) {
    json_t *n = json_object_get(d, "number");
    return json_is_integer(n) && json_integer_value(n) > 0 ? (int64_t)json_integer_value(n) : -1;
}

int d2g_mapping_map_dossier(const d2g_mapping_ctx_t *ctx, json_t *dossier, int flags,
                            d2g_colmap_t *map, d2g_mapped_t *out, char *err, size_t errlen) {
    builder_t b;
    table_b *main;
    json_t *fields = NULL;
    int rc = -1;

    if (d2g_mb_init(&b, ctx, map, out, err, errlen))
        goto done;
    b.partial = (flags & D2G_MAPPING_PARTIAL) != 0;
    if (!json_is_object(dossier)) {
        d2g_err_set(err, errlen, "dossier: not a JSON object");
        goto done;
    }
    if ((b.number = dossier_number(dossier)) < 0) {
        d2g_err_set(err, errlen, "dossier: no positive integer \"number\"");
        goto done;
    }
    snprintf(b.page, sizeof(b.page), "%.400s/procedures/%" PRId64 "/dossiers/%" PRId64,
             ctx->base_url, ctx->procedure, b.number);
    json_t *champs = json_object_get(dossier, "champs");
    json_t *annots = json_object_get(dossier, "annotations");
    if (b.partial ? (champs && !json_is_array(champs)) : !json_is_array(champs)) {
        d2g_err_set(err, errlen, "dossier %" PRId64 ": \"champs\" is %s", b.number,
                    champs ? "not an array" : "missing");
        goto done;
    }
    if (annots && !json_is_null(annots) && !json_is_array(annots)) {
        d2g_err_set(err, errlen, "dossier %" PRId64 ": \"annotations\" is not an array", b.number);
        goto done;
    }
    if (!(main = main_table(&b)))
        goto done;
    fields = json_pack("{s:o}", "numero", d2g_mapping_number_cell(b.number));
    if (d2g_mapping_own_fields(&b, main, fields, dossier))
        goto done;
    if (!b.partial && ctx->descs) {
        if (map_with_form(&b, main, fields, champs, "champs", ctx->descs, ctx->n_champs, 0, 0))
            goto done;
        if (json_is_array(annots) &&
            map_with_form(&b, main, fields, annots, "annotations", ctx->descs + ctx->n_champs,
                          ctx->n_annots, 1, 0))
            goto done;
    } else {
        if (champs && map_champs(&b, main, fields, champs, "champs", 0, 0))
            goto done;
        if (json_is_array(annots) && map_champs(&b, main, fields, annots, "annotations", 1, 0))
            goto done;
    }
    if (!b.partial && d2g_mapping_avis_messages(&b, dossier))
        goto done;
    /* the dossier's own record first */
    rc = d2g_mb_record(&b, 0, json_pack("{s:o}", "numero", d2g_mapping_number_cell(b.number)), fields);
    fields = NULL;
    if (rc)
        goto done;
    if (b.n_recs > 1) {
        rec_b last = b.recs[b.n_recs - 1];
        memmove(b.recs + 1, b.recs, (b.n_recs - 1) * sizeof(*b.recs));
        b.recs[0] = last;
    }
    rc = d2g_mb_finish(&b, out);
done:
    json_decref(fields);
    d2g_mb_free(&b);
    return rc;
}

int d2g_mapping_map_form(const d2g_mapping_ctx_t *ctx, d2g_colmap_t *map, d2g_mapped_t *out,
                         char *err, size_t errlen) {
    builder_t b;
    table_b *main;
    json_t *fields = NULL, *none = json_array();
    int rc = -1;

    if (d2g_mb_init(&b, ctx, map, out, err, errlen))
        goto done;
    if (!(main = main_table(&b)))
        goto done;
    /* the cells are those of a dossier without any champ: thrown away */
    fields = json_object();
    if (ctx->descs &&
        (map_with_form(&b, main, fields, none, "champs", ctx->descs, ctx->n_champs, 0, 0) ||
         map_with_form(&b, main, fields, none, "annotations", ctx->descs + ctx->n_champs,
                       ctx->n_annots, 1, 0)))
        goto done;
    rc = d2g_mb_finish(&b, out);
done:
    json_decref(fields);
    json_decref(none);
    d2g_mb_free(&b);
    return rc;
}

static int remove_child(const char *desc_id, const char *id, void *arg) {
    builder_t *b = arg;
    (void)desc_id;
    return d2g_mb_removal(b, id, d2g_mapping_dossier_key(b->ctx));
}

int d2g_mapping_map_deleted(const d2g_mapping_ctx_t *ctx, json_t *deleted,
                            d2g_deleted_mode_t mode, d2g_colmap_t *map, d2g_mapped_t *out,
                            char *err, size_t errlen) {
    builder_t b;
    int rc = -1;

    if (d2g_mb_init(&b, ctx, map, out, err, errlen))
        goto done;
    if (!json_is_object(deleted)) {
        d2g_err_set(err, errlen, "deleted dossier: not a JSON object");
        goto done;
    }
    if ((b.number = dossier_number(deleted)) < 0) {
        d2g_err_set(err, errlen, "deleted dossier: no positive integer \"number\"");
        goto done;
    }
    if (mode == D2G_DELETED_REMOVE) {
        /* the form's blocks too, even if no dossier was mapped yet */
        for (size_t i = 0; i < ctx->n_champs + ctx->n_annots; i++) {
            const rdesc_t *r = &ctx->descs[i];
            if (r->kind->cls == KC_REPETITION &&
                !child_table_id(&b, r->id, r->label, i >= ctx->n_champs)) {
                d2g_mb_oom(&b);
                goto done;
            }
        }
        if (d2g_mb_removal(&b, ctx->prefix, "numero") ||
            d2g_colmap_foreach(map, ctx->tables_scope, remove_child, &b))
            goto done;
    } else {
        if (!main_table(&b))
            goto done;
        json_t *fields = json_pack("{s:b, s:o, s:o, s:o, s:o}", "supprime", 1, "date_suppression",
                                   d2g_cell_date(d2g_map_jstr(deleted, "dateSupression"), 1),
                                   "motif_suppression",
                                   d2g_map_str_or_null(d2g_map_jstr(deleted, "reason")), "etat",
                                   d2g_map_str_or_null(d2g_map_jstr(deleted, "state")), "ds_id",
                                   d2g_map_str_or_null(d2g_map_jstr(deleted, "id")));
        if (d2g_mb_record(&b, 0, json_pack("{s:o}", "numero", d2g_mapping_number_cell(b.number)), fields))
            goto done;
    }
    rc = d2g_mb_finish(&b, out);
done:
    d2g_mb_free(&b);
    return rc;
}
