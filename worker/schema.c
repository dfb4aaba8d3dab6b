/* schema.c - a batch's needs against a document's schema, see schema.h. */
#include "schema.h"

#include "ds2grist/alloc.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* need: {"order": [table...], "tables": {table: {col: {"fields", "choices": [..], "set": {..}}}}} */
struct d2g_need {
    json_t *order;
    json_t *tables;
};

/* tables: table -> null (columns not read) | {col -> fields} */
struct d2g_schema {
    json_t *tables; /* NULL: not loaded */
    json_t *views;  /* made, their views still to set (views.h): {"hide": {}, "refs": {}} */
};

static char *escape(const char *s) {
    char *e = curl_easy_escape(NULL, s, 0);
    char *r = d2g_strdup(e ? e : "");
    curl_free(e);
    return r;
}

/* Choices of a column's widgetOptions (a JSON text); a new reference or NULL. */
static json_t *choices_of(const char *widget_options) {
    json_t *j = widget_options && *widget_options ? json_loads(widget_options, 0, NULL) : NULL;
    json_t *c = json_incref(json_object_get(j, "choices"));
    json_decref(j);
    if (c && !json_is_array(c)) {
        json_decref(c);
        c = NULL;
    }
    return c;
}

/* --- needs -------------------------------------------------------------------- */

d2g_need_t *d2g_need_new(void) {
    d2g_need_t *n = d2g_calloc(1, sizeof(*n));
    n->order = json_array();
    n->tables = json_object();
    return n;
}

void d2g_need_free(d2g_need_t *n) {
    if (!n)
        return;
    json_decref(n->order);
    json_decref(n->tables);
    free(n);
}

static json_t *need_table(d2g_need_t *n, const char *table) {
    json_t *t = json_object_get(n->tables, table);
    if (!t) {
        t = json_object();
        json_object_set_new(n->tables, table, t);
        json_array_append_new(n->order, json_string(table));
    }
    return t;
}

void d2g_need_table(d2g_need_t *n, const char *table) { need_table(n, table); }

static void add_choice(json_t *c, json_t *value) {
    if (!json_is_string(value))
        return;
    json_t *set = json_object_get(c, "set");
    const char *v = json_string_value(value);
    if (json_object_get(set, v))
        return;
    json_object_set_new(set, v, json_true());
    json_array_append(json_object_get(c, "choices"), value);
}

void d2g_need_column(d2g_need_t *n, const char *table, const d2g_column_t *col) {
    json_t *t = need_table(n, table);
    json_t *c = json_object_get(t, col->id);
    if (!c) {
        c = json_pack("{s:O, s:[], s:{}, s:b, s:b}", "fields", col->fields, "choices", "set", "choice",
                      col->type && (!strcmp(col->type, "Choice") || !strcmp(col->type, "ChoiceList")),
                      "tech", col->technical);
        json_object_set_new(t, col->id, c);
    }
    json_t *ch = choices_of(col->widget_options);
    size_t i;
    json_t *v;
    json_array_foreach(ch, i, v) add_choice(c, v);
    json_decref(ch);
}

void d2g_need_cell(d2g_need_t *n, const char *table, const char *col, json_t *value) {
    json_t *c = json_object_get(json_object_get(n->tables, table), col);
    if (!c || !json_is_true(json_object_get(c, "choice")))
        return;
    if (json_is_array(value)) { /* ["L", a, b...] */
        size_t i;
        json_t *v;
        json_array_foreach(value, i, v) {
            if (i > 0)
                add_choice(c, v);
        }
    } else {
        add_choice(c, value);
    }
}

json_t *d2g_need_table_ids(const d2g_need_t *n) { return n->order; }

/* The fields to create a needed column with: its choices in widgetOptions. */
static json_t *fields_with_choices(json_t *c) {
    json_t *fields = json_deep_copy(json_object_get(c, "fields"));
    json_t *choices = json_object_get(c, "choices");
    if (json_is_true(json_object_get(c, "choice")) && json_array_size(choices)) {
        json_t *opts = NULL;
        const char *wo = json_string_value(json_object_get(fields, "widgetOptions"));
        if (wo && *wo)
            opts = json_loads(wo, 0, NULL);
        if (!json_is_object(opts)) {
            json_decref(opts);
            opts = json_object();
        }
        json_object_set(opts, "choices", choices);
        char *s = json_dumps(opts, JSON_COMPACT);
        json_object_set_new(fields, "widgetOptions", json_string(s));
        free(s);
        json_decref(opts);
    }
    return fields;
}

/* --- the document's schema ---------------------------------------------------- */

d2g_schema_t *d2g_schema_new(void) { return d2g_calloc(1, sizeof(d2g_schema_t)); }

void d2g_schema_free(d2g_schema_t *s) {
    if (!s)
        return;
    json_decref(s->tables);
    json_decref(s->views);
    free(s);
}

int d2g_schema_loaded(const d2g_schema_t *s) { return s->tables != NULL; }

void d2g_schema_forget(d2g_schema_t *s) {
    json_decref(s->tables);
    s->tables = NULL;
}

int d2g_schema_read_tables(d2g_schema_t *s, json_t *answer) {
    json_t *tables = json_object_get(answer, "tables");
    if (!json_is_array(tables))
        return -1;
    json_t *fresh = json_object();
    size_t i;
    json_t *t;
    json_array_foreach(tables, i, t) {
        const char *id = json_string_value(json_object_get(t, "id"));
        if (!id)
            continue;
        /* Columns already known stay known (they are read again when forgotten). */
        json_t *had = s->tables ? json_object_get(s->tables, id) : NULL;
        json_object_set(fresh, id, had ? had : json_null());
    }
    json_decref(s->tables);
    s->tables = fresh;
    return 0;
}

int d2g_schema_read_columns(d2g_schema_t *s, const char *table, json_t *answer) {
    json_t *cols = json_object_get(answer, "columns");
    if (!json_is_array(cols))
        return -1;
    if (!s->tables)
        return 0; /* forgotten meanwhile (another batch of the lane): read again later */
    json_t *have = json_object();
    size_t i;
    json_t *c;
    json_array_foreach(cols, i, c) {
        const char *id = json_string_value(json_object_get(c, "id"));
        if (id)
            json_object_set(have, id, json_object_get(c, "fields"));
    }
    json_object_set_new(s->tables, table, have);
    return 0;
}

json_t *d2g_schema_unloaded(const d2g_schema_t *s, const d2g_need_t *n) {
    json_t *out = json_array();
    size_t i;
    json_t *t;
    json_array_foreach(n->order, i, t) {
        json_t *have = s->tables ? json_object_get(s->tables, json_string_value(t)) : NULL;
        if (have && json_is_null(have))
            json_array_append(out, t);
    }
    return out;
}

int d2g_schema_lacks_table(const d2g_schema_t *s, const char *table) {
    return !s->tables || !json_object_get(s->tables, table);
}

static json_t *change(const char *method, char *path, json_t *body, const char *table) {
    char *text = json_dumps(body, JSON_COMPACT);
    json_t *c = json_pack("{s:s, s:s, s:s, s:s}", "method", method, "path", path, "body", text,
                          "table", table);
    free(text);
    free(path);
    json_decref(body);
    return c;
}

/* The PATCH entry growing an existing column's choices, or NULL if it has them all. */
static json_t *grow_choices(json_t *existing, json_t *want, const char *cid) {
    if (!json_is_true(json_object_get(want, "choice")) || !json_array_size(json_object_get(want, "choices")))
        return NULL;
    const char *wo = json_string_value(json_object_get(existing, "widgetOptions"));
    json_t *opts = wo && *wo ? json_loads(wo, 0, NULL) : NULL;
    if (!json_is_object(opts)) {
        json_decref(opts);
        opts = json_object();
    }
    json_t *have = json_object_get(opts, "choices");
    if (!json_is_array(have)) {
        have = json_array();
        json_object_set_new(opts, "choices", have);
    }
    json_t *set = json_object();
    size_t i;
    json_t *v;
    json_array_foreach(have, i, v) {
        if (json_is_string(v))
            json_object_set_new(set, json_string_value(v), json_true());
    }
    size_t before = json_array_size(have);
    json_array_foreach(json_object_get(want, "choices"), i, v) {
        if (!json_object_get(set, json_string_value(v))) {
            json_object_set_new(set, json_string_value(v), json_true());
            json_array_append(have, v);
        }
    }
    json_decref(set);
    json_t *entry = NULL;
    if (json_array_size(have) > before) {
        char *s = json_dumps(opts, JSON_COMPACT);
        entry = json_pack("{s:s, s:{s:s}}", "id", cid, "fields", "widgetOptions", s);
        free(s);
    }
    json_decref(opts);
    return entry;
}

/* A column's fields say it is a formula column with a formula (Grist computes it). */
static int is_formula(json_t *fields) {
    const char *f = json_string_value(json_object_get(fields, "formula"));
    return json_is_true(json_object_get(fields, "isFormula")) && f && *f;
}

/* ref_links on a child table made without it (docs/mapping.md, "What the writer
 * does"): `dossier` is a data column holding the number and ds_dossier_numero is
 * missing, while the batch wants `dossier` as a Ref formula and the number in
 * ds_dossier_numero. Renaming the column keeps every row's number. */
static int ref_migration(json_t *have, json_t *cols) {
    json_t *want = json_object_get(cols, D2G_SCHEMA_REF_COL), *had = json_object_get(have, D2G_SCHEMA_REF_COL);
    return want && is_formula(json_object_get(want, "fields")) && had && !is_formula(had) &&
           json_object_get(cols, D2G_SCHEMA_NUMBER_COL) && !json_object_get(have, D2G_SCHEMA_NUMBER_COL);
}

int d2g_schema_conflict(const d2g_schema_t *s, const d2g_need_t *n, char *why, size_t whylen) {
    size_t i;
    json_t *tid;
    json_array_foreach(n->order, i, tid) {
        const char *table = json_string_value(tid);
        json_t *have = s->tables ? json_object_get(s->tables, table) : NULL;
        if (!json_is_object(have))
            continue;
        const char *cid;
        json_t *want;
        json_object_foreach(json_object_get(n->tables, table), cid, want) {
            if (is_formula(json_object_get(want, "fields")) || !is_formula(json_object_get(have, cid)))
                continue;
            snprintf(why, whylen, "column %s.%s is a formula column in the document and the mapping "
                     "writes it%s", table, cid,
                     !strcmp(cid, D2G_SCHEMA_REF_COL) && json_object_get(have, D2G_SCHEMA_NUMBER_COL)
                         ? " (the table was linked with mapping.ref_links, now off: turn it back "
                           "on, or in Grist delete this column and rename ds_dossier_numero to dossier)"
                         : "");
            return 1;
        }
    }
    return 0;
}

/* views: {"hide": {...}} gets table.col. */
static void views_hide(json_t *views, const char *table, const char *col) {
    json_t *hide = json_object_get(views, "hide"), *t = json_object_get(hide, table);
    if (!t) {
        t = json_object();
        json_object_set_new(hide, table, t);
    }
    json_object_set_new(t, col, json_true());
}

/* The views work of a created column (views.h): a technical one leaves the pages, the
 * child tables' `dossier` Ref formula gets its display. */
static void views_of(json_t *views, const char *table, const char *cid, json_t *want) {
    json_t *fields = json_object_get(want, "fields");
    const char *type = json_string_value(json_object_get(fields, "type"));
    if (json_is_true(json_object_get(want, "tech")))
        views_hide(views, table, cid);
    if (!strcmp(cid, D2G_SCHEMA_REF_COL) && is_formula(fields) && type && !strncmp(type, "Ref:", 4))
        json_object_set_new(json_object_get(views, "refs"), table, json_string(type + 4));
}

static json_t *views_new(void) { return json_pack("{s:{}, s:{}}", "hide", "refs"); }

static int views_empty(const json_t *views) {
    return !json_object_size(json_object_get(views, "hide")) && !json_object_size(json_object_get(views, "refs"));
}

/* The change with what it makes for views.h, when there is any. */
static void with_views(json_t *chg, json_t *views) {
    if (!views_empty(views))
        json_object_set(chg, "views", views);
    json_decref(views);
}

json_t *d2g_schema_changes(const d2g_schema_t *s, const d2g_need_t *n) {
    json_t *out = json_array(), *create = json_array(), *create_views = views_new();
    size_t i;
    json_t *tid;
    json_array_foreach(n->order, i, tid) {
        const char *table = json_string_value(tid);
        json_t *cols = json_object_get(n->tables, table);
        json_t *have = s->tables ? json_object_get(s->tables, table) : NULL;
        const char *cid;
        json_t *want;
        if (!have) {
            json_t *cl = json_array();
            json_object_foreach(cols, cid, want) {
                json_array_append_new(cl, json_pack("{s:s, s:o}", "id", cid, "fields",
                                                    fields_with_choices(want)));
                views_of(create_views, table, cid, want);
            }
            json_array_append_new(create, json_pack("{s:s, s:o}", "id", table, "columns", cl));
            continue;
        }
        if (!json_is_object(have))
            continue; /* columns unknown: read them first */
        json_t *add = json_array(), *patch = json_array(), *add_views = views_new();
        char *esc = escape(table);
        size_t len = strlen(esc) + 32;
        int migrate = ref_migration(have, cols);
        if (migrate) {
            /* first: `dossier` becomes ds_dossier_numero; the Ref formula is added below */
            char *path = d2g_malloc(len);
            snprintf(path, len, "/tables/%s/columns", esc);
            json_array_append_new(out, change("PATCH", path,
                                              json_pack("{s:[{s:s, s:{s:s, s:s}}]}", "columns", "id",
                                                        D2G_SCHEMA_REF_COL, "fields", "colId",
                                                        D2G_SCHEMA_NUMBER_COL, "label",
                                                        D2G_SCHEMA_NUMBER_LABEL),
                                              table));
            /* the number, shown until now as `dossier`, is technical from now on */
            views_hide(add_views, table, D2G_SCHEMA_NUMBER_COL);
        }
        json_object_foreach(cols, cid, want) {
            json_t *existing = json_object_get(have, cid);
            if (migrate && !strcmp(cid, D2G_SCHEMA_NUMBER_COL))
                continue; /* made by the rename */
            if (migrate && !strcmp(cid, D2G_SCHEMA_REF_COL))
                existing = NULL; /* renamed away: the formula column is new */
            if (!existing) {
                json_array_append_new(add, json_pack("{s:s, s:o}", "id", cid, "fields",
                                                     fields_with_choices(want)));
                views_of(add_views, table, cid, want);
                continue;
            }
            json_t *entry = grow_choices(existing, want, cid);
            if (entry)
                json_array_append_new(patch, entry);
        }
        if (json_array_size(add)) {
            char *path = d2g_malloc(len);
            snprintf(path, len, "/tables/%s/columns", esc);
            json_t *chg = change("POST", path, json_pack("{s:O}", "columns", add), table);
            with_views(chg, add_views);
            add_views = NULL;
            json_array_append_new(out, chg);
        }
        json_decref(add_views);
        if (json_array_size(patch)) {
            char *path = d2g_malloc(len);
            snprintf(path, len, "/tables/%s/columns", esc);
            json_array_append_new(out, change("PATCH", path, json_pack("{s:O}", "columns", patch), table));
        }
        free(esc);
        json_decref(add);
        json_decref(patch);
    }
    if (json_array_size(create)) {
        json_t *chg = change("POST", d2g_strdup("/tables"), json_pack("{s:O}", "tables", create), "");
        with_views(chg, create_views);
        create_views = NULL;
        json_array_insert_new(out, 0, chg);
    }
    json_decref(create_views);
    json_decref(create);
    return out;
}

/* What a change made joins the views work pending. */
static void views_merge(d2g_schema_t *s, json_t *views) {
    if (views_empty(views))
        return;
    if (!s->views)
        s->views = views_new();
    const char *table, *col;
    json_t *cols, *v;
    json_object_foreach(json_object_get(views, "hide"), table, cols) {
        json_object_foreach(cols, col, v) views_hide(s->views, table, col);
    }
    json_object_update(json_object_get(s->views, "refs"), json_object_get(views, "refs"));
}

json_t *d2g_schema_views(const d2g_schema_t *s) { return s->views; }

void d2g_schema_views_done(d2g_schema_t *s) {
    json_decref(s->views);
    s->views = NULL;
}

/* The views of a POST /tables change, without the tables Grist made under another id
 * (one of that id existed: its columns are not ours to hide). New reference. */
static json_t *views_made(json_t *chg, json_t *answer) {
    json_t *views = json_deep_copy(json_object_get(chg, "views"));
    json_t *req = json_loads(json_string_value(json_object_get(chg, "body")), 0, NULL);
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(req, "tables"), i, t) {
        const char *want = json_string_value(json_object_get(t, "id"));
        const char *got = json_string_value(json_object_get(json_array_get(json_object_get(answer, "tables"), i), "id"));
        if (want && (!got || strcmp(want, got))) {
            json_object_del(json_object_get(views, "hide"), want);
            json_object_del(json_object_get(views, "refs"), want);
        }
    }
    json_decref(req);
    return views;
}

void d2g_schema_applied(d2g_schema_t *s, json_t *chg, json_t *answer) {
    json_t *views = !strcmp(json_string_value(json_object_get(chg, "path")), "/tables")
                        ? views_made(chg, answer)
                        : json_incref(json_object_get(chg, "views"));
    views_merge(s, views);
    json_decref(views);
    if (!s->tables)
        return;
    const char *path = json_string_value(json_object_get(chg, "path"));
    if (!strcmp(path, "/tables")) {
        /* The tables now exist with the columns asked for. */
        json_t *req = json_loads(json_string_value(json_object_get(chg, "body")), 0, NULL);
        size_t i;
        json_t *t;
        json_array_foreach(json_object_get(req, "tables"), i, t) {
            json_t *have = json_object();
            size_t k;
            json_t *c;
            json_array_foreach(json_object_get(t, "columns"), k, c)
                json_object_set(have, json_string_value(json_object_get(c, "id")),
                                json_object_get(c, "fields"));
            json_object_set_new(s->tables, json_string_value(json_object_get(t, "id")), have);
        }
        json_decref(req);
    } else {
        /* Columns added or changed: read that table's columns again. */
        json_object_set_new(s->tables, json_string_value(json_object_get(chg, "table")), json_null());
    }
}
