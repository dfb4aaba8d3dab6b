/*
 * mapping_build.c - the builder that collects one dossier's tables, columns, records,
 * row sets and removals, then moves them into a d2g_mapped_t (see mapping_int.h).
 *
 * Work is linear in what is added: tables and columns are found by id through
 * jansson objects used as hash sets, and a choice column keeps its choices as a set
 * too, so a block of 20,000 rows with 20,000 distinct values costs 20,000 lookups.
 */
#include "mapping_int.h"
#include "ds2grist/alloc.h"
#include "ds2grist/err.h"

#include <stdlib.h>
#include <string.h>

int d2g_mb_oom(builder_t *b) { return d2g_err_set(b->err, b->errlen, "out of memory"); }

/* Grows *arr (of elem-sized items) to hold n + 1. */
static void grow(void *arr, size_t *cap, size_t n, size_t elem) {
    if (n < *cap)
        return;
    size_t ncap = *cap ? *cap * 2 : 8;
    *(void **)arr = d2g_realloc(*(void **)arr, ncap * elem);
    *cap = ncap;
}

static void col_free(col_b *c) {
    if (!c)
        return;
    free(c->id);
    free(c->label);
    json_decref(c->choices);
    json_decref(c->seen);
    json_decref(c->extra);
    free(c);
}

static void table_free(table_b *t) {
    if (!t)
        return;
    for (size_t i = 0; i < t->n; i++)
        col_free(t->cols[i]);
    free(t->cols);
    free(t->id);
    json_decref(t->colset);
    json_decref(t->row_ids);
    free(t);
}

int d2g_mb_init(builder_t *b, const d2g_mapping_ctx_t *ctx, d2g_colmap_t *map, d2g_mapped_t *out,
                char *err, size_t errlen) {
    memset(b, 0, sizeof(*b));
    memset(out, 0, sizeof(*out));
    b->ctx = ctx;
    b->map = map;
    b->err = err;
    b->errlen = errlen;
    if (!ctx || !map)
        return d2g_err_set(err, errlen, "mapping: no context or column map");
    b->tableset = json_object();
    return 0;
}

void d2g_mb_free(builder_t *b) {
    for (size_t i = 0; i < b->n_tables; i++)
        table_free(b->tables[i]);
    free(b->tables);
    json_decref(b->tableset);
    for (size_t i = 0; i < b->n_recs; i++) {
        json_decref(b->recs[i].require);
        json_decref(b->recs[i].fields);
    }
    free(b->recs);
    for (size_t i = 0; i < b->n_rems; i++)
        free(b->rems[i].table);
    free(b->rems);
    json_decref(b->attach);
}

table_b *d2g_mb_table(builder_t *b, const char *id, const char *key, const char *dossier_col,
                      int *created) {
    json_t *i = json_object_get(b->tableset, id);
    *created = 0;
    if (i)
        return b->tables[json_integer_value(i)];
    table_b *t = d2g_calloc(1, sizeof(*t));
    grow(&b->tables, &b->cap_tables, b->n_tables, sizeof(*b->tables));
    t->id = d2g_strdup(id);
    t->colset = json_object();
    t->key = key;
    t->dossier_col = dossier_col;
    t->index = b->n_tables;
    json_object_set_new(b->tableset, id, json_integer((json_int_t)b->n_tables));
    b->tables[b->n_tables++] = t;
    *created = 1;
    return t;
}

void d2g_mb_see_choice(col_b *c, const char *v) {
    if (!c || !c->seen || !v || !*v || json_object_get(c->seen, v))
        return;
    json_object_set_new(c->seen, v, json_true());
    json_array_append_new(c->choices, json_string(v));
}

col_b *d2g_mb_column(table_b *t, const char *id, const char *label, const char *type,
                     const char *widget, json_t *options) {
    json_t *i = json_object_get(t->colset, id);
    if (i)
        return t->cols[json_integer_value(i)];
    col_b *c = d2g_calloc(1, sizeof(*c));
    grow(&t->cols, &t->cap, t->n, sizeof(*t->cols));
    c->id = d2g_strdup(id);
    c->label = d2g_strdup(label ? label : "");
    c->type = type;
    c->widget = widget;
    if (!widget && (strcmp(type, "Choice") == 0 || strcmp(type, "ChoiceList") == 0)) {
        size_t k;
        json_t *o;
        c->choices = json_array();
        c->seen = json_object();
        json_array_foreach(options, k, o) d2g_mb_see_choice(c, json_string_value(o));
    }
    json_object_set_new(t->colset, id, json_integer((json_int_t)t->n));
    t->cols[t->n++] = c;
    return c;
}

int d2g_mb_fixed(builder_t *b, table_b *t, const d2g_fixed_col_t *f, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (d2g_colmap_reserve(b->map, t->id, f[i].id))
            return d2g_err_set(b->err, b->errlen,
                               "column map: \"%s\" is assigned to a champ in table %s", f[i].id,
                               t->id);
        d2g_mb_column(t, f[i].id, f[i].label, f[i].type ? f[i].type : "Any", f[i].widget, NULL)
            ->tech = f[i].tech;
    }
    return 0;
}

int d2g_mb_record(builder_t *b, size_t table, json_t *require, json_t *fields) {
    if (!require || !fields) {
        json_decref(require);
        json_decref(fields);
        return d2g_mb_oom(b);
    }
    grow(&b->recs, &b->cap_recs, b->n_recs, sizeof(*b->recs));
    b->recs[b->n_recs++] = (rec_b){table, require, fields};
    return 0;
}

int d2g_mb_removal(builder_t *b, const char *table, const char *column) {
    grow(&b->rems, &b->cap_rems, b->n_rems, sizeof(*b->rems));
    b->rems[b->n_rems++] = (d2g_removal_t){d2g_strdup(table), column, b->number};
    return 0;
}

int d2g_mb_put(builder_t *b, json_t *fields, const char *key, json_t *v) {
    if (!v || json_object_set_new(fields, key, v))
        return d2g_mb_oom(b);
    return 0;
}

/* --- results -------------------------------------------------------------- */

static json_t *column_fields(const col_b *c) {
    json_t *f = json_pack("{s:s, s:s, s:b}", "label", c->label, "type", c->type,
                          "untieColIdFromLabel", 1);
    if (c->widget) {
        json_object_set_new(f, "widgetOptions", json_string(c->widget));
    } else if (c->choices) {
        json_t *w = json_pack("{s:O}", "choices", c->choices);
        char *s = json_dumps(w, JSON_COMPACT);
        json_decref(w);
        json_object_set_new(f, "widgetOptions", json_string(s));
        free(s);
    }
    if (c->extra)
        json_object_update(f, c->extra);
    return f;
}

static int same_text(json_t *cached, const char *s) {
    const char *c = json_string_value(cached);
    return c ? s && strcmp(c, s) == 0 : s == NULL;
}

/* column_fields, or the same object as for the last dossier if nothing differs. */
static json_t *column_fields_cached(const d2g_mapping_ctx_t *ctx, const char *table, const col_b *c) {
    size_t tl = strlen(table), cl = strlen(c->id);
    char stack[256], *key = tl + cl + 2 <= sizeof(stack) ? stack : d2g_malloc(tl + cl + 2);
    memcpy(key, table, tl);
    key[tl] = '\n';
    memcpy(key + tl + 1, c->id, cl + 1);
    json_t *e = json_object_get(ctx->colcache, key), *f;
    if (e && same_text(json_array_get(e, 0), c->label) && same_text(json_array_get(e, 1), c->type) &&
        same_text(json_array_get(e, 2), c->widget) &&
        (c->choices ? json_equal(json_array_get(e, 3), c->choices) : json_is_null(json_array_get(e, 3))) &&
        (c->extra ? json_equal(json_array_get(e, 4), c->extra) : json_is_null(json_array_get(e, 4)))) {
        f = json_incref(json_array_get(e, 5));
    } else {
        f = column_fields(c);
        /* copies: the builder's choices grow as values are seen */
        json_t *entry = json_pack("[s?, s?, s?, o?, o?, O]", c->label, c->type, c->widget,
                                  json_deep_copy(c->choices), json_deep_copy(c->extra), f);
        json_object_set_new(ctx->colcache, key, entry);
    }
    if (key != stack)
        free(key);
    return f;
}

void d2g_mapped_clear(d2g_mapped_t *out) {
    if (!out)
        return;
    for (size_t i = 0; i < out->n_tables; i++) {
        d2g_table_t *t = &out->tables[i];
        for (size_t j = 0; j < t->n_columns; j++) {
            free(t->columns[j].id);
            json_decref(t->columns[j].fields);
        }
        free(t->columns);
        free(t->id);
    }
    free(out->tables);
    for (size_t i = 0; i < out->n_records; i++) {
        json_decref(out->records[i].require);
        json_decref(out->records[i].fields);
    }
    free(out->records);
    for (size_t i = 0; i < out->n_rowsets; i++)
        json_decref(out->rowsets[i].row_ids);
    free(out->rowsets);
    for (size_t i = 0; i < out->n_removals; i++)
        free(out->removals[i].table);
    free(out->removals);
    json_decref(out->attachments);
    memset(out, 0, sizeof(*out));
}

int d2g_mb_finish(builder_t *b, d2g_mapped_t *out) {
    size_t n_rowsets = 0;
    out->number = b->number;
    for (size_t i = 0; i < b->n_tables; i++)
        n_rowsets += b->tables[i]->row_ids != NULL;
    if (b->n_tables)
        out->tables = d2g_calloc(b->n_tables, sizeof(*out->tables));
    if (b->n_recs)
        out->records = d2g_calloc(b->n_recs, sizeof(*out->records));
    if (n_rowsets)
        out->rowsets = d2g_calloc(n_rowsets, sizeof(*out->rowsets));
    for (size_t i = 0; i < b->n_tables; i++) {
        table_b *t = b->tables[i];
        d2g_table_t *o = &out->tables[out->n_tables++];
        o->key = t->key;
        o->dossier_col = t->dossier_col;
        o->id = t->id;
        t->id = NULL;
        if (t->n)
            o->columns = d2g_calloc(t->n, sizeof(*o->columns));
        for (size_t k = 0; k < 2 * t->n; k++) { /* technical columns last */
            col_b *src = t->cols[k % t->n];
            if (!!(src->tech & D2G_FIXED_LAST) != (k >= t->n))
                continue;
            d2g_column_t *c = &o->columns[o->n_columns++];
            c->fields = column_fields_cached(b->ctx, o->id, src);
            c->id = src->id;
            src->id = NULL;
            c->label = json_string_value(json_object_get(c->fields, "label"));
            c->type = json_string_value(json_object_get(c->fields, "type"));
            c->widget_options = json_string_value(json_object_get(c->fields, "widgetOptions"));
            c->formula = json_string_value(json_object_get(c->fields, "formula"));
            c->technical = !!(src->tech & D2G_FIXED_TECH);
        }
        if (t->row_ids) {
            d2g_rowset_t *r = &out->rowsets[out->n_rowsets++];
            r->table_index = i;
            r->table = o->id;
            r->dossier = b->number;
            r->row_ids = t->row_ids;
            t->row_ids = NULL;
        }
    }
    for (size_t i = 0; i < b->n_recs; i++) {
        d2g_record_t *r = &out->records[out->n_records++];
        r->table_index = b->recs[i].table;
        r->table = out->tables[r->table_index].id;
        r->require = b->recs[i].require;
        r->fields = b->recs[i].fields;
    }
    b->n_recs = 0;
    out->removals = b->rems;
    out->n_removals = b->n_rems;
    b->rems = NULL;
    b->n_rems = 0;
    out->attachments = b->attach;
    b->attach = NULL;
    return 0;
}
