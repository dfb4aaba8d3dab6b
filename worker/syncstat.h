/*
 * syncstat.h - the sync-status table of a Grist document, DS2Grist_Sync:
 * one row per procedure synced into the document, for the agents who use it
 * (docs/mapping.md, "The sync-status table").
 *
 *   demarche           the procedure's number (the upsert key)
 *   table              the procedure's dossiers table
 *   derniere_synchro   the last successful poll of DS (producer)
 *   prochaine_synchro  when the producer looks at DS next
 *   dossiers           dossiers ds2grist wrote into the table (<ns>:{doc:..}:present:N)
 *   derniere_erreur    what an agent should know now, scrubbed of every
 *   date_erreur        configured secret: DS's error until the next good
 *                      poll, else the document's trouble while a lane is not
 *                      active, else the last dossier refused (dead-lettered)
 *                      until it is written
 *   resync             a checkbox: an agent ticks it to ask for a full resync
 *   resync_etat        "demandée", "en cours", "terminée"
 *   derniere_resync    when the last full resync ended
 *
 * Every worker.status_interval_s one worker (whoever takes the document's
 * turn key in Redis, SET NX PX) writes it, as a status flush of the
 * document's lane (flush.h): the table and its columns made like the
 * others' (schema.h, under the schema lock), then one GET of the ticked rows
 * (filter resync = true; usually an empty answer), then one PUT of the rows
 * only if they changed since this worker last wrote them. Each request under
 * the document's permit. A ticked box becomes a request in
 * <ns>:{fleet}:resync (the producer does the rest) and is cleared by the PUT.
 * Grist's answers to a status flush never change the lane's state (only a
 * Redis failure does, as for every batch), and it does not wait on the lane's
 * backoff (one request per period needs none; the lane's trouble is shown
 * while it lasts): when it fails it is dropped and tried again next period,
 * and a parked lane writes none.
 *
 * Only procedures configured for the document are listed or resynced: an
 * agent cannot ask for another document's procedure.
 */
#ifndef D2G_SYNCSTAT_H
#define D2G_SYNCSTAT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "lane.h"
#include "mapping.h"
#include "writer.h"

#include "ds2grist/config.h"
#include "ds2grist/redis.h"

#define D2G_SYNCSTAT_TABLE "DS2Grist_Sync"

/* 1 if this worker takes the document's turn for this period (interval_ms),
 * 0 if another one has it, -1 on a Redis error (err). */
int d2g_syncstat_turn(d2g_redis_t *r, const d2g_lane_t *l, const char *worker_id,
                      int64_t interval_ms, char *err, size_t errlen);

/*
 * The rows of the document's procedures in cfg, from what the producer and
 * the workers published in Redis (one pipelined round trip), texts scrubbed
 * of secrets. out gets one table (D2G_SYNCSTAT_TABLE) and one record per
 * procedure; out->n_records = 0 if the document has none; *sent the digest
 * of the rows last written (d2g_syncstat_sent; 0: unknown). -1 on a Redis
 * error (err; out empty).
 */
int d2g_syncstat_collect(d2g_redis_t *r, const d2g_config_t *cfg, const d2g_lane_t *l,
                         const char *const *secrets, size_t n_secrets, d2g_mapped_t *out,
                         uint64_t *sent, char *err, size_t errlen);
/* The rows just written had this digest (any worker skips a PUT of the same rows). */
void d2g_syncstat_sent(d2g_redis_t *r, d2g_lane_t *l, uint64_t digest);

/* The path of the GET of the ticked rows (caller frees). */
char *d2g_syncstat_ticks_path(void);

/*
 * The answer to that GET: for each ticked row, a resync request is recorded
 * (<ns>:{fleet}:resync, at now_wall_ms) if its procedure is one of rows',
 * and the row's record is set to clear the box (a record is added for a
 * ticked row of a procedure no longer configured: cleared, not resynced).
 * Returns how many boxes are to be cleared, -1 if the answer is not a
 * records list or Redis failed (err).
 */
int d2g_syncstat_ticks(d2g_redis_t *r, json_t *answer, d2g_mapped_t *rows, int64_t now_wall_ms,
                       char *err, size_t errlen);

/* After a batch of the lane is in Grist: its dossiers counted in the
 * procedures' present sets (removed ones taken out), and a refused dossier
 * now written is no longer shown. -1 on a Redis error (err): the count is
 * behind until those dossiers are written again. */
int d2g_syncstat_written(d2g_redis_t *r, d2g_lane_t *l, d2g_item_t *const *items, size_t n,
                         char *err, size_t errlen);

/* Grist refused a dossier of the lane (it goes to the dead-letter topic):
 * shown in its procedure's row until it is written. reason is scrubbed. */
void d2g_syncstat_refused(d2g_redis_t *r, d2g_lane_t *l, const d2g_item_t *item,
                          const char *reason);

/* A 64-bit digest of a text (FNV-1a), to tell whether rows changed. */
uint64_t d2g_syncstat_digest(const char *s);

#endif
