/*
 * views.h - what agents see of the tables the writer creates (docs/mapping.md,
 * "Technical columns" and "Ref display").
 *
 * grist-core gives a table it creates (POST /tables: AddTable) a page with a
 * widget showing every column, and adds a column it creates (POST /columns:
 * AddVisibleColumn) to every widget of its table (sandbox/grist/useractions.py).
 * Once the writer created tables or technical columns, it takes those columns'
 * fields out of the widgets that are not the table's raw section (which keeps
 * them all, and which grist-core refuses to change); and a child table's
 * `dossier` Ref column it created gets its display: visibleCol the dossiers
 * table's number, and the display formula grist-core's own client sets with it
 * (SetDisplayFormula, which makes the gristHelper_Display column).
 *
 * It costs one read (POST /sql: the fields and the number columns' refs) and
 * one write (POST /apply) per schema change batch, done once, when the columns
 * are created: a field an agent puts back later stays.
 *
 * The pending work is {"hide": {table: {column: true}}, "refs": {table: target}}
 * (schema.h, d2g_schema_views).
 */
#ifndef D2G_VIEWS_H
#define D2G_VIEWS_H

#include <jansson.h>
#include <stddef.h>

/* The visible column of a child table's `dossier` Ref: the dossiers table's number. */
#define D2G_VIEWS_VISIBLE_COL "numero"

/* The body of POST /sql reading what the pending work needs (caller frees). */
char *d2g_views_query(const json_t *pending);
/* The body of POST /apply from the answer to that read: the pending fields removed
 * (BulkRemoveRecord on _grist_Views_section_field), each Ref's visibleCol set
 * (ModifyColumn) and its display formula (SetDisplayFormula). NULL with *err empty
 * if there is nothing to do; NULL with the cause in err if the answer is not one. */
char *d2g_views_actions(const json_t *pending, json_t *answer, char *err, size_t errlen);

#endif
