/*
 * plan.h - a batch of mapped dossiers becomes Grist requests: what the
 * schema must hold (schema.h), the PUT upserts, and the look-ups and deletes
 * of rows that are gone.
 *
 * Pure: no I/O. The flush (flush.h) sends what is planned here, in order:
 *   PUT    /tables/T/records?noparse=1   one body per table, chunked under
 *                                        batch_bytes; each record serialised
 *                                        once, its text sized and copied in
 *   GET    /tables/T/records?filter=...  rows of dossiers whose repetition
 *                                        rows may have gone, and of removed
 *                                        dossiers; the dossier lists are cut
 *                                        so that no URL exceeds FIND_URL_MAX
 *   POST   /tables/T/data/delete         the row ids those answers show gone
 * A record whose text alone exceeds batch_bytes can never be sent: its
 * dossier is refused here, before any schema is created for it.
 *
 * With the digests of what the dossiers' rows held when last written
 * (cells.h), only what changed is sent: an unchanged row not at all, a
 * changed one as its key, its changed cells and its modification date, in
 * bodies of their own sent with noadd=1 (a row gone from Grist is never
 * re-created half empty: the answer's recordIds show it missing, and
 * d2g_plan_refill writes it in full).
 */
#ifndef D2G_PLAN_H
#define D2G_PLAN_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "cells.h"
#include "mapping.h"
#include "schema.h"

/* A URL's filter stays under this (servers and proxies refuse ~8 KB URLs: 414). */
#define D2G_PLAN_FIND_URL_MAX 4000

typedef enum {
    D2G_OP_PROBE = 0, /* GET /tables: a parked lane asks whether the document answers */
    D2G_OP_TABLES,    /* GET /tables */
    D2G_OP_COLUMNS,   /* GET /tables/T/columns */
    D2G_OP_CHANGE,    /* POST /tables, POST or PATCH /tables/T/columns */
    D2G_OP_PUT,       /* PUT /tables/T/records */
    D2G_OP_FIND,      /* GET /tables/T/records?filter= */
    D2G_OP_DELETE,    /* POST /tables/T/data/delete */
    D2G_OP_TICKS,     /* GET the sync-status table's ticked rows (syncstat.h) */
    D2G_OP_VIEWS_READ, /* POST /sql: the fields of columns just made, the number columns (views.h) */
    D2G_OP_VIEWS,      /* POST /apply: those fields removed, the Ref columns' display set */
} d2g_op_kind_t;

/* One request; everything owned. */
typedef struct d2g_op {
    d2g_op_kind_t kind;
    char method[8];
    char *path;      /* after /api/docs/<doc> */
    char *body;      /* JSON or NULL */
    char *table;     /* the table it reads or writes (not for PROBE/TABLES) */
    size_t rows;     /* records carried (PUT) or row ids (DELETE) */
    json_t *keep;    /* FIND of child rows: {"<dossier>": {ds_row_id: true}} to keep; NULL: delete all found */
    char *column;    /* FIND of child rows: the table's dossier_col, filtered on and read back */
    json_t *change;  /* CHANGE: the schema change (schema.h) */
    /* PUT of changed cells only (noadd=1): where each of its rows comes from,
     * to write in full those Grist answers missing. NULL for full rows. */
    struct d2g_op_src *src;
} d2g_op_t;

/* A record of a batch: mapped[item].records[record]. */
typedef struct d2g_op_src {
    size_t item, record;
} d2g_op_src_t;

typedef struct d2g_ops {
    d2g_op_t *v;
    size_t n, cap;
} d2g_ops_t;

d2g_op_t *d2g_ops_add(d2g_ops_t *ops, d2g_op_kind_t kind, const char *method, char *path, char *body,
                      const char *table);
void d2g_ops_clear(d2g_ops_t *ops);

/* The schema needs of n mapped dossiers (NULL entries skipped): every table,
 * column and cell choice. Caller frees. */
d2g_need_t *d2g_plan_need(d2g_mapped_t *const *mapped, size_t n);

/* PUT requests for n mapped dossiers (NULL entries skipped). too_big[i] is
 * set to 1 for a dossier one of whose records alone exceeds batch_bytes: its
 * records are not planned (refuse it). */
void d2g_plan_puts(d2g_mapped_t *const *mapped, size_t n, size_t batch_bytes, d2g_ops_t *ops,
                   int *too_big);

/* too_big[i] = 1 for each dossier (NULL entries skipped) one of whose records,
 * written in full, would alone exceed batch_bytes: what d2g_plan_puts refuses,
 * found by measuring the records' text (json_dumpb without a buffer), not by
 * building the bodies. */
void d2g_plan_too_big(d2g_mapped_t *const *mapped, size_t n, size_t batch_bytes, int *too_big);

/* d2g_plan_puts, sending only what changed: prior[i] (prior or prior[i] may
 * be NULL: write in full) holds dossier i's rows as last written; sends[i]
 * (may be NULL) gets 1 if anything of dossier i is planned. The rows whose
 * cells are planned as a diff go in noadd bodies with their src. */
void d2g_plan_puts_diff(d2g_mapped_t *const *mapped, size_t n, size_t batch_bytes,
                        const d2g_cells_t *const *prior, d2g_ops_t *ops, int *too_big, int *sends);
/* Full PUTs of the n records src (of mapped, a batch's dossiers). */
void d2g_plan_refill(d2g_mapped_t *const *mapped, const d2g_op_src_t *src, size_t n, size_t batch_bytes,
                     d2g_ops_t *ops);
/* The records of a diff PUT (src) that its answer shows missing from Grist
 * (an empty recordIds entry); caller frees. NULL and *n = 0 when none, or
 * when the answer does not tell (older servers answer null). */
d2g_op_src_t *d2g_plan_missing(const d2g_op_t *put, json_t *answer, size_t *n);
/* The fields of a dossiers table always sent with a changed row. */
extern const char *const d2g_plan_keep_columns[];

/* Look-ups of rows to delete: repetition rows no longer in DS (except for the
 * dossiers with skip[i] set: known to have none to delete; skip may be
 * NULL), and removed dossiers. Child rows are found by their table's
 * dossier_col ("dossier", or "ds_dossier_numero" with ref_links). */
void d2g_plan_finds(d2g_mapped_t *const *mapped, size_t n, const int *skip, d2g_ops_t *ops);
/* A digest of a mapped dossier's repetition row ids (0 if it has no rowset). */
uint64_t d2g_plan_rowsets_digest(const d2g_mapped_t *m);

/* The delete a FIND's answer calls for (appended to ops), if any. -1 if the
 * answer is not a records list. */
int d2g_plan_deletes(const d2g_op_t *find, json_t *answer, d2g_ops_t *ops);

#endif
