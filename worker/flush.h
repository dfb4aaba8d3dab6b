/*
 * flush.h - one lane's batch written to Grist, stage after stage:
 *
 *   prepare  map each dossier with its procedure's form (forms.h), drop
 *            those Grist already holds newer (versions.h), refuse those
 *            that cannot fit in a request, collect the schema's needs
 *   schema   read the document's tables and the columns the batch uses;
 *            if something is missing, take the document's schema lock,
 *            merge the column map, read again under the lock, create what
 *            is still missing (schema.h), read again
 *   views    still under the lock, once the changes are made: the technical
 *            columns they created leave the pages, the new Ref columns show
 *            the dossier's number (views.h: one read, one write)
 *   put      the upserts (plan.h)
 *   find     the rows that are gone; delete them
 *   done     record the versions written; the dossiers' messages are done
 *
 * Each request goes through grist.h under the document's permit. What an
 * answer means decides what follows: a retryable failure repeats the same
 * request after the lane's backoff; a document-level refusal parks the lane
 * (its dossiers go to the retry topic); a refused write splits the batch
 * until the dossier at fault is alone, and that one goes to the dead-letter
 * topic. A probe (a parked lane asking whether its document answers again)
 * is a flush without dossiers that only reads the tables.
 */
#ifndef D2G_FLUSH_H
#define D2G_FLUSH_H

#include <stddef.h>
#include <stdint.h>

#include "lane.h"
#include "mapping.h"
#include "writer.h"

#include "ds2grist/http.h"

typedef struct d2g_flush d2g_flush_t;

/* A batch of lane's n items (ownership taken; items array too); n = 0: a probe. */
d2g_flush_t *d2g_flush_new(d2g_lane_t *lane, d2g_item_t **items, size_t n);
/* A write of the document's sync-status table (syncstat.h): rows (taken,
 * *rows emptied) after its schema and the read of the ticked boxes. */
d2g_flush_t *d2g_flush_new_status(d2g_lane_t *lane, d2g_mapped_t *rows);
struct d2g_form_job;
/* A schema-only batch: the tables and columns of job's forms (formschema.h),
 * the stages prepare and schema only (ownership of job taken). */
d2g_flush_t *d2g_flush_new_form(d2g_lane_t *lane, struct d2g_form_job *job);
d2g_lane_t *d2g_flush_lane(const d2g_flush_t *f);
/* The keys of its dossiers ({key: true}), borrowed. */
const json_t *d2g_flush_keys(const d2g_flush_t *f);
/* A flush given up before its end (not waiting for an answer): the schema
 * lock it may hold is released, then it is freed with its items (no hooks). */
void d2g_flush_drop(d2g_writer_t *w, d2g_flush_t *f);
/* Frees the flush; with free_items its items too (no hooks). */
void d2g_flush_free(d2g_flush_t *f, int free_items);
/* Items still in the batch. */
size_t d2g_flush_items(const d2g_flush_t *f);
/* The same items' message bytes (d2g_item_t.bytes). */
size_t d2g_flush_bytes(const d2g_flush_t *f);
/* The items still in the batch leave it (a new array, caller frees it; the
 * items are the caller's). */
d2g_item_t **d2g_flush_take_items(d2g_flush_t *f, size_t *n);
/* The permit holder of the request in flight. */
const char *d2g_flush_holder(const d2g_flush_t *f);
/* Mono ms before which it starts nothing (the lane's backoff; a status
 * flush's own wait: one request per period needs no backoff of its own). */
int64_t d2g_flush_next_try(const d2g_flush_t *f);
/* 1 while one of its requests is in flight. */
int d2g_flush_waiting(const d2g_flush_t *f);

/* Moves the flush forward: runs what runs here, or starts its next request
 * when a permit allows. Returns 1 when the flush is over, 0 otherwise. */
int d2g_flush_step(d2g_writer_t *w, d2g_flush_t *f, int64_t now);
/* The answer to the flush's request in flight. */
void d2g_flush_answer(d2g_writer_t *w, d2g_flush_t *f, const d2g_http_response_t *resp);
/* Items of that partition leave the batch (freed without hooks): what is
 * still to be sent is planned again without them. */
void d2g_flush_abandon(d2g_flush_t *f, uint8_t topic, int32_t partition);
/* 1 if an item of the batch comes from that partition. */
int d2g_flush_has_partition(const d2g_flush_t *f, uint8_t topic, int32_t partition);

#endif
