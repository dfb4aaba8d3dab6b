/*
 * mapping.h - how one DS dossier becomes Grist tables, columns and rows.
 *
 * Pure logic, no I/O: the worker decodes a message, calls
 * d2g_mapping_map_dossier (or d2g_mapping_map_deleted), and hands the result
 * to the Grist writer, which creates the missing tables and columns and
 * upserts the records (PUT .../records with noparse: every cell is already of
 * its column's type; dates are epoch seconds, never strings).
 *
 * A procedure's dossiers go to the table named by its table prefix
 * ("Subventions"): fixed DS columns (numero, the upsert key, etat, dates,
 * demandeur...), one column per champ, one per annotation. Each repetition
 * block has a child table ("Subventions_Beneficiaires") keyed by the DS row
 * id. Column ids come from a d2g_colmap_t (colid.h), keyed by
 * champDescriptorId, so they survive label changes. docs/mapping.md is the
 * reference: every column, the type and cell encoding of every champ kind,
 * and a worked example.
 *
 * Ownership: a context owns copies of its strings and a reference to the
 * revision; a d2g_mapped_t owns everything it holds until d2g_mapped_clear.
 * Mapping does not modify the dossier. A context is read-only once built and
 * may be shared by threads; the colmap may not (colid.h).
 */
#ifndef D2G_MAPPING_H
#define D2G_MAPPING_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "colid.h"
#include "ds2grist/config.h"

typedef struct d2g_mapping_ctx d2g_mapping_ctx_t;

/*
 * A procedure's mapping context. table_prefix is the dossiers table id (a
 * valid Grist table id). ds_base_url is the DS site ("https://www.demarches-
 * simplifiees.fr"; a trailing "/" is ignored), used for the lien_ds column.
 * revision is the procedure's activeRevision as DS returns it ({id
 * champDescriptors {__typename id label options champDescriptors {...}}
 * annotationDescriptors {...}}) or NULL: with it, columns follow the form's
 * order, every champ of the form gets its column even when a dossier lacks
 * it, and drop-down choices come from the form's options. The context keeps a
 * reference to it. Fails on a malformed revision, saying where.
 */
int d2g_mapping_ctx_new(int64_t procedure, const char *table_prefix, const char *ds_base_url,
                        json_t *revision, d2g_mapping_ctx_t **out, char *err, size_t errlen);

/*
 * What a procedure's mapping produces beyond the champs (d2g_mapping_opts_default
 * gives the defaults, which d2g_mapping_ctx_new uses).
 */
typedef struct d2g_mapping_opts {
    /* Child tables link to their dossier the Grist way: `dossier` is a formula column
     * of type Ref:<prefix> (Subventions.lookupOne(numero=$ds_dossier_numero)), and the
     * dossier's number is in the Int column `ds_dossier_numero`, the table's
     * dossier_col, which the writer filters on and removals name. Default 0: `dossier`
     * is the Int number, as in earlier versions (the writer filters on "dossier"). */
    int ref_links;
    int geo_areas; /* Carte champs' areas in <prefix>_Zones */
    int avis;      /* Dossier.avis in <prefix>_Avis */
    int messages;  /* Dossier.messages in <prefix>_Messages (personal data: opt-in per
                    * procedure; the producer fetches them only with $withMessages) */
    /* PieceJustificative champs get a second column "<champ>_fichiers" of type
     * Attachments, whose cells the worker fills (d2g_mapped_t.attachments) */
    int attachments;
    /* All default to 0 (d2g_mapping_opts_default): the mapping of earlier versions. */
} d2g_mapping_opts_t;

void d2g_mapping_opts_default(d2g_mapping_opts_t *opts);
/* d2g_mapping_ctx_new with options (NULL: the defaults). */
int d2g_mapping_ctx_new_opts(int64_t procedure, const char *table_prefix, const char *ds_base_url,
                             json_t *revision, const d2g_mapping_opts_t *opts,
                             d2g_mapping_ctx_t **out, char *err, size_t errlen);
void d2g_mapping_ctx_free(d2g_mapping_ctx_t *ctx);

/*
 * The Grist cell of a dossier number, wherever one goes (the key `numero`, the
 * child tables' dossier column, the writer's filters and removals): an Int, or
 * above grist-core's 32-bit Int its digits as text, which is what grist-core
 * stores for such a value (AltText) and so what an upsert's `require` or a
 * records filter must name to find the row again. New reference.
 */
json_t *d2g_mapping_number_cell(int64_t number);
/* The number a cell made by d2g_mapping_number_cell names (either form); -1 if none. */
int64_t d2g_mapping_number_of(json_t *cell);

/* The column ids of the dossiers table's fixed columns, in order, NULL-terminated. */
extern const char *const d2g_mapping_fixed_columns[];

typedef struct d2g_column {
    char *id;
    /* What POST/PUT .../columns wants as "fields": label, type, widgetOptions
     * (only for choices) and untieColIdFromLabel: true (so that a label
     * change made by the writer never renames the column). */
    json_t *fields;
    /* Borrowed from fields for convenience. */
    const char *label;
    const char *type;           /* "Int", "DateTime:Europe/Paris", "ChoiceList", "Ref:<table>"... */
    const char *widget_options; /* a JSON text ({"choices": [...]}), or NULL */
    /* A formula column (fields hold "isFormula": true and "formula"): Grist computes
     * it, records never hold a cell for it. NULL for data columns. */
    const char *formula;
    /* A technical column (DS ids, row keys, deletion flags): the writer takes it out of
     * the table's page widget when it creates it (docs/mapping.md); Raw Data shows it. */
    int technical;
} d2g_column_t;

typedef struct d2g_table {
    char *id;
    const char *key;        /* the upsert key column: "numero" or "ds_row_id" */
    /* child tables: the Int column holding the dossier's number, which rowsets and
     * removals filter on ("dossier", or "ds_dossier_numero" with ref_links); else NULL */
    const char *dossier_col;
    d2g_column_t *columns;  /* fixed columns first, then champs, in form order */
    size_t n_columns;
} d2g_table_t;

/*
 * One row to upsert: PUT /tables/<table>/records {"records": [{"require":
 * require, "fields": fields}]}. Cells of choice columns may hold values not
 * in the column's choices yet: the writer adds the choices it is missing
 * (never removes any).
 */
typedef struct d2g_record {
    const char *table; /* borrowed: the id of tables[table_index] */
    size_t table_index;
    json_t *require; /* {"numero": 123} or {"ds_row_id": "..."} */
    json_t *fields;
} d2g_record_t;

/* The complete set of rows one dossier has now in one child table: the
 * writer deletes that dossier's other rows (the table's dossier_col == dossier
 * and ds_row_id not in row_ids; row_ids may be empty). Every child table
 * (repetition blocks, geo areas, avis, messages) is keyed by ds_row_id. */
typedef struct d2g_rowset {
    const char *table; /* borrowed: the id of tables[table_index] */
    size_t table_index;
    int64_t dossier;
    json_t *row_ids; /* array of strings */
} d2g_rowset_t;

/* Delete every row of table whose column equals value (deleted dossiers in
 * remove mode: the dossier's row, and its rows in every child table). */
typedef struct d2g_removal {
    char *table;
    const char *column; /* "numero", or a child table's dossier_col */
    int64_t value;
} d2g_removal_t;

typedef struct d2g_mapped {
    int64_t number; /* the dossier's */
    d2g_table_t *tables; /* the dossiers table first, then child tables */
    size_t n_tables;
    d2g_record_t *records;
    size_t n_records;
    d2g_rowset_t *rowsets;
    size_t n_rowsets;
    d2g_removal_t *removals;
    size_t n_removals;
    /* With opts.attachments: the file cells to fill, NULL if none. An array of
     * {"fields": <the record's fields, shared>, "column": <its Attachments column>,
     *  "text": <the champ's text column>, "files": <DS's File objects>}; each
     * Attachments cell is ["L"] until the worker (attach.h) puts the ids of the files
     * it copied, and appends to the text cell why a file was not copied. The files
     * hold DS's signed URLs: never log them. */
    json_t *attachments;
} d2g_mapped_t;

void d2g_mapped_clear(d2g_mapped_t *out);

/* map_dossier flags */
#define D2G_MAPPING_PARTIAL 0x1 /* write only what the dossier holds (label pass) */

/*
 * Maps one dossier node as DS returned it (an envelope's "dossier"). New
 * column and table ids are recorded in map (see d2g_colmap_generation). out
 * receives the tables the dossier needs, one record for the dossiers table,
 * one per repetition row, and one rowset per repetition block. With
 * D2G_MAPPING_PARTIAL (an envelope's "partial": true), only the fields the
 * dossier holds are written (a label-only update: numero, labels...), and no
 * champ, annotation or rowset unless they are present.
 *
 * A malformed dossier (no positive "number", "champs" not an array, a champ
 * without champDescriptorId or __typename, a repetition row without id...)
 * fails with the precise reason, for the dead-letter topic; out is then empty.
 */
int d2g_mapping_map_dossier(const d2g_mapping_ctx_t *ctx, json_t *dossier, int flags,
                            d2g_colmap_t *map, d2g_mapped_t *out, char *err, size_t errlen);

/*
 * The tables and columns of the procedure's form alone, before any dossier
 * (worker/formschema.h): the dossiers table with its fixed columns, one
 * column (and its typed sub-columns) per champ and annotation of the form,
 * with the descriptors' descriptions, and every repetition block's child
 * table with its sub-champs' columns, exactly as a dossier lacking every
 * champ would declare them (same ids from map, same types, choices from the
 * form's options). out holds tables only (no record; rowsets, if any, are
 * not to be written). Without a form: the dossiers table's fixed columns.
 */
int d2g_mapping_map_form(const d2g_mapping_ctx_t *ctx, d2g_colmap_t *map, d2g_mapped_t *out,
                         char *err, size_t errlen);

/*
 * Maps a deletedDossiers node {id number dateSupression state reason}.
 * D2G_DELETED_MARK: the dossiers table and one record {numero} -> {supprime:
 * true, date_suppression, motif_suppression, etat, ds_id}; child rows stay.
 * D2G_DELETED_REMOVE: no table and no record, removals for the dossier's row
 * and for its rows in every child table the map or the revision knows.
 */
int d2g_mapping_map_deleted(const d2g_mapping_ctx_t *ctx, json_t *deleted,
                            d2g_deleted_mode_t mode, d2g_colmap_t *map, d2g_mapped_t *out,
                            char *err, size_t errlen);

#endif
