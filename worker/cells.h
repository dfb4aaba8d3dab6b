/*
 * cells.h - what a dossier's rows held when they were last written: one
 * compact digest per row (its key, its column set, a 32-bit hash per cell),
 * so that the next write sends only the cells that changed, and nothing for
 * a dossier whose rows are unchanged.
 *
 * Pure: no I/O. The version guard (versions.h) keeps one dossier's digests
 * beside its version in Redis; the plan (plan.h) diffs a mapped dossier
 * against them. A row diffs only against a digest of the same key and the
 * same columns in the same order; anything else (no digest, a new row, a
 * form that changed, a label-only update) is written in full.
 *
 * Encoded as bytes (little-endian): 'c', 1, then per row: key (8), column
 * set (4), cell count (2), the cells' hashes (4 each). A 61-column row is
 * 258 bytes, a 5-column child row 34.
 */
#ifndef D2G_CELLS_H
#define D2G_CELLS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "mapping.h"

typedef struct d2g_cells_row {
    uint64_t key;    /* its table and require values */
    uint32_t colset; /* its field names, in order */
    uint32_t n;      /* cells */
    uint32_t *h;     /* a hash per cell, in the fields' order */
} d2g_cells_row_t;

/* One dossier's rows as last written; n == 0: nothing known. Owns its rows. */
typedef struct d2g_cells {
    d2g_cells_row_t *v;
    size_t n;
} d2g_cells_t;

/* The hash of one cell's value (its JSON type and content). */
uint32_t d2g_cells_value(const json_t *v);
/* The key of a record: its table and its require values. */
uint64_t d2g_cells_key(const d2g_record_t *r);
/* The hash of a record's field names, in order. */
uint32_t d2g_cells_colset(const d2g_record_t *r);
/* The digests of every record of m (out is cleared first). */
void d2g_cells_of(const d2g_mapped_t *m, d2g_cells_t *out);
/* The row of key, or NULL. */
const d2g_cells_row_t *d2g_cells_find(const d2g_cells_t *c, uint64_t key);
/* Bytes (caller frees; *len gets their count; an empty set gives 0 bytes). */
char *d2g_cells_encode(const d2g_cells_t *c, size_t *len);
/* Decodes bytes (out cleared first). -1 on malformed bytes: out is empty. */
int d2g_cells_decode(const char *s, size_t len, d2g_cells_t *out);
void d2g_cells_clear(d2g_cells_t *c);

/*
 * Which fields of record r must be sent, given the row last written (may be
 * NULL): send[k] for the k-th field in order (send holds one byte per
 * field). Returns -1 when the record is to be written in full (no prior, or
 * one with other columns: every send[k] is 1), 0 when no cell changed, else
 * the count to send: the changed cells plus the fields named in keep (a
 * NULL-terminated list, may be NULL: the modification date).
 */
long d2g_cells_diff(const d2g_record_t *r, const d2g_cells_row_t *prior, const char *const *keep,
                    unsigned char *send);

#endif
