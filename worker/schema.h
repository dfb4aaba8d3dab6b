/*
 * schema.h - what a batch needs of a document's schema, what the document
 * has, and the requests that make the second hold the first.
 *
 * d2g_need_t collects, for one batch, every table and column its rows use
 * and every choice their cells hold (choice sets are hashed: a repetition of
 * 20,000 rows with 20,000 distinct drop-down values costs 20,000 look-ups,
 * not 20,000²). d2g_schema_t is a lane's cache of the document's tables and
 * columns as Grist last answered; it is filled by the answers to GET /tables
 * and GET /tables/T/columns and forgotten whenever something may have
 * changed behind it.
 *
 * d2g_schema_changes plans what is missing: POST /tables (with all their
 * columns), POST /tables/T/columns, PATCH /tables/T/columns (choices only
 * grow). It is always planned against a schema read under the document's
 * schema lock, and a change whose answer did not come (a timeout) is never
 * sent again blindly: the schema is read again and the change planned anew,
 * so what Grist did apply is adopted instead of being created twice
 * ("Dossiers2", "col_2").
 *
 * A change object also says, under "views", the technical columns and the
 * `dossier` Ref columns it creates (views.h: they are taken out of the pages,
 * the Ref displayed by number, once the change went through).
 */
#ifndef D2G_SCHEMA_H
#define D2G_SCHEMA_H

#include <jansson.h>
#include <stddef.h>

#include "mapping.h"

typedef struct d2g_need d2g_need_t;
typedef struct d2g_schema d2g_schema_t;

d2g_need_t *d2g_need_new(void);
void d2g_need_free(d2g_need_t *n);
/* The table is needed (even with no new column: its columns must be known). */
void d2g_need_table(d2g_need_t *n, const char *table);
/* A column the batch's rows use; the first definition of an id wins, the
 * choices of every definition are united. */
void d2g_need_column(d2g_need_t *n, const char *table, const d2g_column_t *col);
/* A cell of a record of table: its value joins its column's choices when
 * the column is a Choice or ChoiceList. */
void d2g_need_cell(d2g_need_t *n, const char *table, const char *col, json_t *value);
/* Needed tables, in the order they were first needed (borrowed array of strings). */
json_t *d2g_need_table_ids(const d2g_need_t *n);

d2g_schema_t *d2g_schema_new(void);
void d2g_schema_free(d2g_schema_t *s);
/* 1 once the document's table list is known. */
int d2g_schema_loaded(const d2g_schema_t *s);
/* Everything is read again before the next plan. */
void d2g_schema_forget(d2g_schema_t *s);
/* The answer to GET /tables. -1 if it is not one. */
int d2g_schema_read_tables(d2g_schema_t *s, json_t *answer);
/* The answer to GET /tables/<table>/columns. -1 if it is not one. */
int d2g_schema_read_columns(d2g_schema_t *s, const char *table, json_t *answer);
/* Needed tables that exist and whose columns are not known yet (a new array
 * of strings, caller owns). */
json_t *d2g_schema_unloaded(const d2g_schema_t *s, const d2g_need_t *n);
/* 1 if a needed table does not exist. */
int d2g_schema_lacks_table(const d2g_schema_t *s, const char *table);

/* Child tables' link columns with mapping.ref_links (mapping.h). */
#define D2G_SCHEMA_REF_COL "dossier"
#define D2G_SCHEMA_NUMBER_COL "ds_dossier_numero"
#define D2G_SCHEMA_NUMBER_LABEL "Numéro du dossier"

/* The requests that make the document hold what n needs: a new array of
 * {"method", "path", "body", "table"} (path after /api/docs/<doc>; tables
 * first), empty if nothing is missing. Caller owns. A child table made
 * without ref_links (`dossier` an Int data column, no ds_dossier_numero)
 * that the batch wants with it is migrated: PATCH renaming `dossier` to
 * ds_dossier_numero (every row keeps its number), then the `dossier` Ref
 * formula column is added (POST), before any write to the table. */
json_t *d2g_schema_changes(const d2g_schema_t *s, const d2g_need_t *n);
/* 1 (why set) if a column the batch writes is a formula column in the
 * document (Grist would refuse every write): e.g. a child table linked with
 * ref_links while the procedure's ref_links is now off. Only tables whose
 * columns are known are looked at. */
int d2g_schema_conflict(const d2g_schema_t *s, const d2g_need_t *n, char *why, size_t whylen);
/* A change went through: the cache learns what it made (POST /tables) or
 * forgets the table it touched (columns are read again); the technical columns
 * and `dossier` Ref columns it created (a change's "views") join the views work
 * pending. */
void d2g_schema_applied(d2g_schema_t *s, json_t *change, json_t *answer);
/* The views work pending (views.h): {"hide": {table: {column: true}}, "refs":
 * {table: dossiers table}}, or NULL if none (borrowed). Kept when the schema is
 * forgotten: the columns were made. */
json_t *d2g_schema_views(const d2g_schema_t *s);
/* The views work was done (or given up): nothing pending. */
void d2g_schema_views_done(d2g_schema_t *s);

#endif
