/* views.c - technical columns out of the pages, Ref columns displayed by number, see views.h. */
#include "views.h"

#include "schema.h"
#include "ds2grist/alloc.h"
#include "ds2grist/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The fields of the pending columns in widgets other than their table's raw
 * section (grist-core: _grist_Tables.rawViewSectionRef). */
static const char HIDE_SELECT[] =
    "SELECT 'hide' AS what, f.id AS ref, t.tableId AS tbl, c.colId AS col"
    " FROM _grist_Views_section_field AS f"
    " JOIN _grist_Views_section AS s ON s.id = f.parentId"
    " JOIN _grist_Tables AS t ON t.id = s.tableRef"
    " JOIN _grist_Tables_column AS c ON c.id = f.colRef"
    " WHERE s.id <> t.rawViewSectionRef AND c.parentId = t.id AND (";
/* The number column of the dossiers tables the pending Ref columns point at. */
static const char VISIBLE_SELECT[] =
    "SELECT 'visible' AS what, c.id AS ref, t.tableId AS tbl, c.colId AS col"
    " FROM _grist_Tables_column AS c JOIN _grist_Tables AS t ON t.id = c.parentId"
    " WHERE c.colId = '" D2G_VIEWS_VISIBLE_COL "' AND t.tableId IN (";

/* A growing text. */
typedef struct {
    char *s;
    size_t len, cap;
} text_t;

static void cat(text_t *t, const char *s) {
    size_t n = strlen(s);
    if (t->len + n + 1 > t->cap) {
        t->cap = (t->len + n + 1) * 2;
        t->s = d2g_realloc(t->s, t->cap);
    }
    memcpy(t->s + t->len, s, n + 1);
    t->len += n;
}

/* "(t.tableId = ? AND c.colId IN (?, ?)) OR ..." with its args. */
static void hide_where(text_t *sql, json_t *hide, json_t *args) {
    const char *table, *col;
    json_t *cols, *v;
    int first = 1;
    json_object_foreach(hide, table, cols) {
        cat(sql, first ? "(t.tableId = ? AND c.colId IN (" : " OR (t.tableId = ? AND c.colId IN (");
        json_array_append_new(args, json_string(table));
        int k = 0;
        json_object_foreach(cols, col, v) {
            cat(sql, k++ ? ", ?" : "?");
            json_array_append_new(args, json_string(col));
        }
        cat(sql, "))");
        first = 0;
    }
}

/* The dossiers tables the pending Ref columns point at, each once: "?, ?" and args. */
static void visible_where(text_t *sql, json_t *refs, json_t *args) {
    json_t *seen = json_object();
    const char *table;
    json_t *target;
    int k = 0;
    json_object_foreach(refs, table, target) {
        const char *t = json_string_value(target);
        if (!t || json_object_get(seen, t))
            continue;
        json_object_set_new(seen, t, json_true());
        cat(sql, k++ ? ", ?" : "?");
        json_array_append_new(args, json_string(t));
    }
    json_decref(seen);
}

char *d2g_views_query(const json_t *pending) {
    json_t *hide = json_object_get(pending, "hide"), *refs = json_object_get(pending, "refs");
    json_t *args = json_array();
    text_t sql = {0};
    cat(&sql, "");
    if (json_object_size(hide)) {
        cat(&sql, HIDE_SELECT);
        hide_where(&sql, hide, args);
        cat(&sql, ")");
    }
    if (json_object_size(refs)) {
        if (sql.len)
            cat(&sql, " UNION ALL ");
        cat(&sql, VISIBLE_SELECT);
        visible_where(&sql, refs, args);
        cat(&sql, ")");
    }
    json_t *body = json_pack("{s:s, s:o}", "sql", sql.s, "args", args);
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    free(sql.s);
    return text;
}

/* A row of the read: {"what", "ref", "tbl", "col"}; 0 if it is one. */
static int read_row(json_t *rec, const char **what, json_int_t *ref, const char **tbl, const char **col) {
    json_t *f = json_object_get(rec, "fields");
    *what = json_string_value(json_object_get(f, "what"));
    *tbl = json_string_value(json_object_get(f, "tbl"));
    *col = json_string_value(json_object_get(f, "col"));
    json_t *r = json_object_get(f, "ref");
    *ref = json_is_integer(r) ? json_integer_value(r) : 0;
    return *what && *tbl && *col && *ref > 0 ? 0 : -1;
}

/* The fields to remove (only those of pending columns) and {dossiers table: number col ref}. */
static int read_answer(const json_t *pending, json_t *answer, json_t *fields, json_t *numbers, char *err,
                       size_t errlen) {
    json_t *recs = json_object_get(answer, "records"), *rec;
    if (!json_is_array(recs))
        return d2g_err_set(err, errlen, "POST /sql answered no records");
    size_t i;
    json_array_foreach(recs, i, rec) {
        const char *what, *tbl, *col;
        json_int_t ref;
        if (read_row(rec, &what, &ref, &tbl, &col))
            return d2g_err_set(err, errlen, "POST /sql answered a row without what, ref, tbl, col");
        if (!strcmp(what, "hide") &&
            json_object_get(json_object_get(json_object_get(pending, "hide"), tbl), col))
            json_array_append_new(fields, json_integer(ref));
        else if (!strcmp(what, "visible"))
            json_object_set_new(numbers, tbl, json_integer(ref));
    }
    return 0;
}

/* ModifyColumn visibleCol and SetDisplayFormula of each pending Ref whose target was found. */
static void ref_actions(json_t *refs, json_t *numbers, json_t *actions) {
    const char *table;
    json_t *target;
    json_object_foreach(refs, table, target) {
        json_t *ref = json_object_get(numbers, json_string_value(target));
        if (!ref)
            continue;
        json_array_append_new(actions, json_pack("[s, s, s, {s:O}]", "ModifyColumn", table, D2G_SCHEMA_REF_COL,
                                                 "visibleCol", ref));
        json_array_append_new(actions, json_pack("[s, s, n, s, s]", "SetDisplayFormula", table,
                                                 D2G_SCHEMA_REF_COL,
                                                 "$" D2G_SCHEMA_REF_COL "." D2G_VIEWS_VISIBLE_COL));
    }
}

char *d2g_views_actions(const json_t *pending, json_t *answer, char *err, size_t errlen) {
    json_t *fields = json_array(), *numbers = json_object(), *actions = json_array();
    char *text = NULL;
    if (errlen)
        err[0] = '\0';
    if (!read_answer(pending, answer, fields, numbers, err, errlen)) {
        if (json_array_size(fields))
            json_array_append_new(actions, json_pack("[s, s, O]", "BulkRemoveRecord",
                                                     "_grist_Views_section_field", fields));
        ref_actions(json_object_get(pending, "refs"), numbers, actions);
        if (json_array_size(actions))
            text = json_dumps(actions, JSON_COMPACT);
    }
    json_decref(fields);
    json_decref(numbers);
    json_decref(actions);
    return text;
}
