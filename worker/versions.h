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
 */
#ifndef D2G_VERSIONS_H
#define D2G_VERSIONS_H

#include <stddef.h>
#include <stdint.h>

#include "writer.h"

/* The version of an envelope in ms since the epoch, or -1 if its date is unreadable. */
int64_t d2g_versions_of(const d2g_envelope_t *env);
/* For each of the n items (NULL entries skipped), stale[i] = 1 if Grist
 * already holds a newer version of its dossier. -1 if Redis failed (err). */
int d2g_versions_check(d2g_redis_t *r, const char *key, d2g_item_t *const *items, size_t n,
                       int *stale, char *err, size_t errlen);
/* Records the versions of the n items (NULL entries skipped) as written. */
int d2g_versions_record(d2g_redis_t *r, const char *key, d2g_item_t *const *items, size_t n,
                        char *err, size_t errlen);

#endif
