/*
 * versions.h - the guard that keeps an older version of a dossier from
 * overwriting a newer one, whatever path it took (the retry topic, a
 * re-delivery, `ds2grist dlq replay`).
 *
 * One Redis hash per document ({doc:...}:versions): "<procedure>:<number>"
 * -> the version last written to Grist, "u<ms>" for an upsert (the dossier's
 * dateDerniereModification) or "d<ms>" for a deletion (its dateSupression).
 * DS's dates are one clock for a dossier: a deletion comes after its last
 * modification, and a restored dossier is modified again after it, so the
 * later date wins whatever the kind. A version equal to the one written is
 * written again (a label-only update keeps its dossier's date). About 60
 * bytes of Redis per dossier ever written.
 *
 * Read before a batch is planned (one HMGET), written after Grist
 * acknowledged it (one HSET): a crash in between leaves the guard behind
 * Grist, never ahead of it, and at worst lets the same version be written
 * again.
 *
 * The same hash spares the look-up of rows to delete in steady state: each
 * version carries a digest of the dossier's repetition row ids ("u<ms>:<hex>"),
 * and a field "t:<table>" marks a child table this project created (so every
 * row in it was written with its version recorded). A dossier whose row ids
 * are those last written, or that was never written into a table we created,
 * has no row to delete there: no GET is needed. When unsure (Redis lost the
 * hash, a table made by someone else), the rows are looked up as always.
 *
 * And it spares the cells that did not change: a field "c:<procedure>:<number>"
 * holds the digests of the dossier's rows as last written (cells.h), recorded
 * in the same HSET as the version (so the two are lost or kept together).
 * Before a batch sends anything for a dossier, its digests are removed
 * (d2g_versions_forget_cells): a crash after Grist applied the write and
 * before the HSET leaves no digest behind Grist's state, and the next write
 * of that dossier is a full row.
 */
#ifndef D2G_VERSIONS_H
#define D2G_VERSIONS_H

#include <stddef.h>
#include <stdint.h>

#include "cells.h"
#include "writer.h"

/* The version of an envelope in ms since the epoch, or -1 if its date is unreadable. */
int64_t d2g_versions_of(const d2g_envelope_t *env);
/* What the guard knows of one dossier. */
typedef struct d2g_version {
    int stale;        /* Grist already holds a newer version */
    int known;        /* a version of it was recorded */
    uint64_t digest;  /* of its repetition row ids when recorded (0: none) */
    d2g_cells_t cells; /* its rows' digests when recorded (owned; empty: none) */
} d2g_version_t;

/* Frees what v holds (its cells). */
void d2g_version_clear(d2g_version_t *v);
/* For each of the n items (NULL entries skipped), what the guard knows (out
 * entries are cleared first). -1 if Redis failed (err). */
int d2g_versions_check(d2g_redis_t *r, const char *key, d2g_item_t *const *items, size_t n,
                       d2g_version_t *out, char *err, size_t errlen);
/* Records the versions of the n items (NULL entries skipped) as written,
 * with the digests of their row ids (digests may be NULL) and of their rows
 * (cells may be NULL; an empty entry records none). */
int d2g_versions_record(d2g_redis_t *r, const char *key, d2g_item_t *const *items, size_t n,
                        const uint64_t *digests, const d2g_cells_t *cells, char *err, size_t errlen);
/* Removes the row digests of the items with forget[i] set (before sending
 * anything for them). 0 if nothing to remove. */
int d2g_versions_forget_cells(d2g_redis_t *r, const char *key, d2g_item_t *const *items, size_t n,
                              const int *forget, char *err, size_t errlen);
/* Which of the n tables (strings) this project created: fresh[i] = 1. */
int d2g_versions_fresh_tables(d2g_redis_t *r, const char *key, const char *const *tables, size_t n,
                              int *fresh, char *err, size_t errlen);
/* Marks tables as created by this project (after POST /tables succeeded). */
int d2g_versions_mark_tables(d2g_redis_t *r, const char *key, const char *const *tables, size_t n,
                             char *err, size_t errlen);

#endif
