/*
 * mapping_int.h - what the files of the mapping share; not an API (mapping.h is).
 *
 *   mapping_ctx.c    the context: prefix, options, the form (revision) indexed by descriptor id
 *   mapping.c        walking a dossier's champs, map_dossier/map_deleted
 *   mapping_kinds.c  THE table of champ kinds: per kind, its column type, how its cell is read,
 *                    and its typed sub-columns (explicit rules, else DS's own `columns`)
 *   mapping_cells.c  cell readers shared by the kinds: dates, numbers, booleans, files, texts
 *   mapping_build.c  the builder: tables, columns, choices, records, row sets, removals, results
 *   mapping_fixed.c  the dossiers table's fixed columns (state, dates, demandeur, labels...)
 *                    and the dossier link of child tables
 *   mapping_children.c  the child tables that are not repetitions (geo areas, avis, messages)
 *
 * Dossier numbers are int64_t everywhere and go into JSON as json_int_t (64 bits).
 */
#ifndef D2G_MAPPING_INT_H
#define D2G_MAPPING_INT_H

#include "mapping.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* --- small strings (mapping_cells.c) --------------------------------------- */

typedef struct {
    char *s;
    size_t len, cap;
} d2g_sbuf_t;

void d2g_sb_add(d2g_sbuf_t *b, const char *s, size_t n);
void d2g_sb_str(d2g_sbuf_t *b, const char *s);
void d2g_sb_oneline(d2g_sbuf_t *b, const char *s); /* line breaks as one space */
json_t *d2g_sb_take(d2g_sbuf_t *b);                /* the text (empty: null); frees it */

char *d2g_map_concat(const char *a, const char *b);
const char *d2g_map_jstr(json_t *obj, const char *key);
json_t *d2g_map_str_or_null(const char *s);

/* --- the context (mapping_ctx.c) ------------------------------------------------ */

struct d2g_kind;

/* A descriptor of the form (revision). */
typedef struct rdesc {
    const char *id, *label, *description; /* borrowed from the revision */
    const struct d2g_kind *kind;
    json_t *options; /* borrowed: array of strings, or NULL */
    size_t first_sub, n_subs;
} rdesc_t;

struct d2g_mapping_ctx {
    int64_t procedure;
    char *prefix, *base_url, *tables_scope;
    d2g_mapping_opts_t opts;
    json_t *revision;
    rdesc_t *descs; /* champs [0, n_champs), annotations, then repetition sub-champs */
    size_t n_descs, n_champs, n_annots;
    json_t *index; /* {descriptor id: index in descs} */
    /* The `fields` last built for each column ("table\ncolumn" -> [label, type,
     * widget, choices, extra, fields]): every dossier of a procedure declares the
     * same columns, so mapping_build.c hands out a reference to the same object
     * when nothing differs instead of building it again (it is never modified
     * once built). A cache only: what a dossier maps to does not depend on it. */
    json_t *colcache;
};

/* The form's descriptor of that id, or NULL (mapping_ctx.c). */
const rdesc_t *d2g_mapping_find_desc(const d2g_mapping_ctx_t *ctx, const char *id);

/* --- the builder (mapping_build.c) ----------------------------------------- */

typedef struct col_b {
    char *id, *label;
    const char *type;
    const char *widget;  /* static JSON text, or NULL */
    json_t *choices;     /* choice columns: array of the choices, in order */
    json_t *seen;        /* and the same as a set */
    json_t *extra;       /* more fields of the column (formula...), or NULL */
    int tech;            /* D2G_FIXED_TECH, D2G_FIXED_LAST (d2g_fixed_col_t) */
} col_b;

typedef struct table_b {
    char *id;
    const char *key, *dossier_col;
    col_b **cols;
    size_t n, cap;
    json_t *colset;  /* {column id: index} */
    json_t *row_ids; /* child tables: the dossier's rows, NULL if not known */
    size_t index;    /* in the builder */
} table_b;

typedef struct rec_b {
    size_t table;
    json_t *require, *fields;
} rec_b;

typedef struct builder {
    const d2g_mapping_ctx_t *ctx;
    d2g_colmap_t *map;
    int partial;
    int64_t number;
    char page[512]; /* the dossier's stable DS page */
    table_b **tables;
    size_t n_tables, cap_tables;
    json_t *tableset; /* {table id: index} */
    rec_b *recs;
    size_t n_recs, cap_recs;
    d2g_removal_t *rems;
    size_t n_rems, cap_rems;
    json_t *attach; /* d2g_mapped_t.attachments being built, or NULL */
    char *err;
    size_t errlen;
} builder_t;

/* A fixed column's flags. */
#define D2G_FIXED_TECH 1 /* technical (DS ids, keys, deletion flags): not in the table's page
                          * widget (d2g_column_t.technical) */
#define D2G_FIXED_LAST 2 /* after the other columns */
#define D2G_FIXED_TAIL (D2G_FIXED_TECH | D2G_FIXED_LAST)

/* A fixed column of a table (not from a champ). */
typedef struct d2g_fixed_col {
    const char *id, *label, *type, *widget;
    int tech; /* D2G_FIXED_* flags, 0 for a column agents work with */
} d2g_fixed_col_t;

int d2g_mb_init(builder_t *b, const d2g_mapping_ctx_t *ctx, d2g_colmap_t *map, d2g_mapped_t *out,
                char *err, size_t errlen);
void d2g_mb_free(builder_t *b);
int d2g_mb_oom(builder_t *b);
/* The table (new or known); *created says whether it is new. NULL on failure. */
table_b *d2g_mb_table(builder_t *b, const char *id, const char *key, const char *dossier_col,
                      int *created);
/* Declares a column (the first declaration of an id wins); choice columns start with options
 * (borrowed, may be NULL). Never NULL. */
col_b *d2g_mb_column(table_b *t, const char *id, const char *label, const char *type,
                     const char *widget, json_t *options);
/* Reserves the fixed columns in the column map and declares them. */
int d2g_mb_fixed(builder_t *b, table_b *t, const d2g_fixed_col_t *f, size_t n);
/* Adds a string to a choice column's choices unless it has it (a no-op for other columns). */
void d2g_mb_see_choice(col_b *c, const char *v);
/* Takes require and fields. */
int d2g_mb_record(builder_t *b, size_t table, json_t *require, json_t *fields);
int d2g_mb_removal(builder_t *b, const char *table, const char *column);
/* fields[key] = v, taking v. */
int d2g_mb_put(builder_t *b, json_t *fields, const char *key, json_t *v);
/* Moves the results into out (empty). */
int d2g_mb_finish(builder_t *b, d2g_mapped_t *out);

/* --- the dossier's own columns (mapping_fixed.c) ----------------------------- */

extern const d2g_fixed_col_t d2g_mapping_dossier_cols[];
extern const size_t d2g_mapping_n_dossier_cols;
/* Child tables of repetition blocks: ds_row_id, the dossier, numero_ligne. */
const d2g_fixed_col_t *d2g_mapping_child_cols(const d2g_mapping_ctx_t *ctx, size_t *n);
/* The column of child tables that holds the dossier's number (the writer's filters). */
const char *d2g_mapping_dossier_key(const d2g_mapping_ctx_t *ctx);
/* The dossier's own fields into fields (main: the dossiers table). */
int d2g_mapping_own_fields(builder_t *b, table_b *main, json_t *fields, json_t *d);
/* With ref_links, makes `dossier` of child table t the Ref formula column (at the
 * table's creation: a table without rows in this dossier needs its definition too). */
void d2g_mapping_link_column(builder_t *b, table_b *t);
/* Declares the dossier link columns of a child table t and fills fields (a row of t). */
int d2g_mapping_link_cells(builder_t *b, table_b *t, json_t *fields);

/* --- other child tables (mapping_children.c) ----------------------------------- */

/* The geo areas of a Carte champ (if it holds "geoAreas") in <prefix>_Zones. */
int d2g_mapping_geo_areas(builder_t *b, json_t *champ, const char *desc_id, const char *label);
/* The dossier's avis (if it holds "avis") and messages (if opted in and it holds them). */
int d2g_mapping_avis_messages(builder_t *b, json_t *dossier);

/* --- cells (mapping_cells.c) ----------------------------------------------- */

/* Epoch seconds (a date: UTC midnight), the text if unreadable, null if empty. */
json_t *d2g_cell_date(const char *s, int datetime);
json_t *d2g_cell_int(json_t *typed, const char *sv);     /* Grist Int: 32 bits, else text */
json_t *d2g_cell_int64(json_t *typed, const char *sv);   /* any 64-bit integer, exactly */
json_t *d2g_cell_numeric(json_t *typed, const char *sv);
json_t *d2g_cell_bool(json_t *typed, const char *sv, int false_if_empty);
json_t *d2g_cell_text(json_t *v);                      /* a string, a number's text; else null */
/* Files as lasting text: "name (type, size)" a line, then the dossier's page; never
 * DS's expiring URL. */
json_t *d2g_cell_files(json_t *files, const char *page);
/* A JSON value as compact text (null for null/absent). */
json_t *d2g_cell_json(json_t *v);

/* --- champ kinds (mapping_kinds.c) ---------------------------------------- */

/* What a cell may need beyond its champ. */
typedef struct d2g_cellenv {
    const char *page; /* the dossier's stable DS page (for attachments) */
} d2g_cellenv_t;

enum d2g_kind_class {
    KC_VALUE,      /* one column (and maybe sub-columns) */
    KC_REPETITION, /* a child table */
    KC_NONE,       /* HeaderSection, Explication: no data */
};

/* How a sub-column's cell is read from the value found at its path. */
enum d2g_conv { CV_TEXT, CV_INT, CV_INT64, CV_NUMERIC, CV_BOOL, CV_DATE, CV_DATETIME, CV_JSON };

typedef struct d2g_subcol {
    const char *key;   /* stable: column map key "<descriptor>/<key>", id "<champ column>_<key>" */
    const char *label; /* "code INSEE": the column is labelled "<champ> — code INSEE" */
    const char *type;  /* Grist type */
    const char *path;  /* dotted path in the champ: "commune.code" */
    enum d2g_conv conv;
} d2g_subcol_t;

typedef struct d2g_kind {
    const char *name; /* the champ's __typename ("CommuneChamp"); "" for unknown kinds */
    enum d2g_kind_class cls;
    const char *type; /* the champ's own column */
    /* The champ's own cell; c is its column (choices grow from the values seen). */
    json_t *(*cell)(json_t *champ, col_b *c, const d2g_cellenv_t *env);
    const d2g_subcol_t *subs; /* explicit sub-columns, NULL-terminated by key, or NULL */
    int generic;              /* 1: sub-columns from the champ's `columns` (DS's typed breakdown) */
    int choices_from_form;    /* the form's options seed the column's choices */
    int geo;                  /* Carte: its geo areas go to the <prefix>_Zones table */
} d2g_kind_t;

/* PieceJustificative's cell: its files as lasting text (the kind opts.attachments copies). */
json_t *d2g_kind_files_cell(json_t *champ, col_b *c, const d2g_cellenv_t *env);

/* The kind of a champ's __typename (descriptor: a ChampDescriptor's); never NULL:
 * an unknown kind is text with generic sub-columns. */
const d2g_kind_t *d2g_kind_of(const char *typename, int descriptor);
/* The table itself (*n entries), for tests that check other lists against it. */
const d2g_kind_t *d2g_kind_table(size_t *n);
/* The value at a dotted path ("commune.code"), or NULL. */
json_t *d2g_kind_path(json_t *champ, const char *path);
/* The cell of a sub-column from the value at its path. */
json_t *d2g_kind_subcell(const d2g_subcol_t *s, json_t *champ);
/* Grist type and cell of one of DS's typed columns ({__typename, id, label, stringValue, value}). */
const char *d2g_kind_column_type(json_t *column);
json_t *d2g_kind_column_cell(json_t *column);

#endif
