/*
 * attach.h - the files of PieceJustificative champs copied into the document's
 * Grist attachments (procedures[].mapping.attachments; docs/mapping.md).
 *
 * The mapping leaves, per champ with files, an Attachments cell ["L"] and the
 * files to copy (d2g_mapped_t.attachments). A batch's job copies them before its
 * schema stage, without blocking the loop: downloads from DS's signed URLs run in
 * the engine's own libcurl multi (at most worker.attachment_downloads at once, for
 * the whole worker), each into a temporary file; uploads are streamed from that
 * file (POST /attachments, multipart field "upload") under the document's permit.
 *
 * A file is copied only when DS scanned it safe, it is within
 * worker.attachment_max_bytes and the document's worker.attachment_budget_bytes.
 * Copies are remembered per document in Redis (<ns>:{doc:S/D}:attachments,
 * checksum -> Grist attachment id, and "bytes" -> bytes copied), so a file is
 * uploaded once whatever the dossiers and versions holding it, and again only when
 * its checksum changes. A file not copied (scan, size, budget, a failed download:
 * an expired URL...) leaves the dossier written: its text cell says why, and the
 * next version of the dossier tries again. Signed URLs are never logged.
 */
#ifndef D2G_ATTACH_H
#define D2G_ATTACH_H

#include <stddef.h>
#include <stdint.h>

#include "mapping.h"
#include "ds2grist/config.h"
#include "ds2grist/grist.h"
#include "ds2grist/metrics.h"
#include "ds2grist/redis.h"

typedef struct d2g_attach d2g_attach_t;
typedef struct d2g_attach_job d2g_attach_job_t;

/* The worker's engine; metrics may be NULL. NULL if libcurl cannot start. */
d2g_attach_t *d2g_attach_new(d2g_redis_t *redis, const char *worker_id, d2g_metrics_t *metrics);
/* Aborts every transfer (their jobs must be freed first or after, not used). */
void d2g_attach_free(d2g_attach_t *a);

/* The copies of the files of mapped[0..n) (entries may be empty) into doc;
 * store_key is the document's Redis hash. NULL when there is nothing to copy.
 * The job borrows doc and mapped until freed; limits are read from cfg now. */
d2g_attach_job_t *d2g_attach_start(d2g_attach_t *a, const d2g_config_t *cfg,
                                   const d2g_grist_doc_t *doc, const char *store_key,
                                   d2g_mapped_t *mapped, size_t n);
/* Advances the job (never blocks): 1 while files are being copied, 0 when every
 * cell of it is filled (ids of the copied files, reasons in the text cells). */
int d2g_attach_step(d2g_attach_t *a, d2g_attach_job_t *j, int64_t now);
/* The dossiers were mapped again (the column map moved ids): their new cells get what the
 * job found (no transfer). Only once d2g_attach_step gave 0. */
void d2g_attach_refill(d2g_attach_job_t *j, d2g_mapped_t *mapped, size_t n);
/* Ends the job, its transfers aborted (a permit held is given back). */
void d2g_attach_job_free(d2g_attach_t *a, d2g_attach_job_t *j);

/* Moves the transfers on (non-blocking); call from the worker's loop. */
void d2g_attach_poll(d2g_attach_t *a);
/* Transfers in flight or waiting (the loop then polls again soon). */
int d2g_attach_busy(const d2g_attach_t *a);

#endif
