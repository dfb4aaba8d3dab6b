/*
 * envelope.h - the Kafka message that carries one dossier from producer to worker.
 *
 * Topic ds2grist.dossiers (configurable), key "<procedure>:<dossier number>"
 * so that every change of one dossier lands in one partition, in order.
 * Value, a versioned JSON object (docs/architecture.md):
 *
 *   {"v": 1, "kind": "upsert", "procedure": 12345, "number": 678,
 *    "modified": "2026-03-14T15:06:26+01:00",   dateDerniereModification
 *    "fetched_at": "2026-03-14T14:07:00.123Z",  when the producer read it
 *    "dossier": { ...the dossier exactly as DS returned it... }}
 *
 *   {"v": 1, "kind": "delete", "procedure": 12345, "number": 678,
 *    "modified": "2026-03-15T09:00:00+01:00",   dateSupression
 *    "fetched_at": "...",
 *    "dossier": {"id", "number", "dateSupression", "state", "reason"}}
 *
 * A label-only change (DS does not move dateDerniereModification for it) is
 * sent as an upsert with "partial": true and a dossier holding only id,
 * number, dateDerniereModification and labels: the worker writes only those.
 *
 * A full resync (an agent's request, docs/producer.md) sends its upserts with
 * "full": true: the worker writes every row whole, as if it had never written
 * it (a row removed from Grist by hand comes back), the version guard still
 * refusing older versions.
 *
 * No credential and no Grist target is ever in a message: a worker resolves
 * the target of a procedure from its own configuration.
 */
#ifndef D2G_ENVELOPE_H
#define D2G_ENVELOPE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define D2G_ENVELOPE_VERSION 1

typedef enum { D2G_ENVELOPE_UPSERT = 0, D2G_ENVELOPE_DELETE = 1 } d2g_envelope_kind_t;

/* encode flags */
#define D2G_ENVELOPE_PARTIAL 0x1 /* the dossier holds only some fields (label pass) */
#define D2G_ENVELOPE_FULL 0x2    /* a full resync: write every row whole (see FULL) */

typedef struct d2g_envelope {
    d2g_envelope_kind_t kind;
    int partial; /* 1: only the fields present are to be written (see PARTIAL) */
    int full;    /* 1: write whole, do not diff against what was last written (FULL) */
    int64_t procedure;
    int64_t number;
    const char *modified;   /* borrowed from root */
    const char *fetched_at; /* borrowed from root */
    json_t *dossier;        /* borrowed from root */
    json_t *root;           /* owned: the whole decoded message */
} d2g_envelope_t;

/*
 * Builds a message value from a dossier node as DS returned it (for a delete,
 * a deletedDossiers node). The dossier's number and date are read from it:
 * "number" and "dateDerniereModification" (upsert) or "dateSupression"
 * (delete). fetched_at_ms is the fetch time in ms since the epoch.
 * Returns a malloc'ed NUL-terminated string (caller frees), length in *len.
 */
char *d2g_envelope_encode(d2g_envelope_kind_t kind, int flags, int64_t procedure,
                          json_t *dossier, int64_t fetched_at_ms, size_t *len, char *err,
                          size_t errlen);

/* Parses and validates a message value; on success env owns its root
 * (release with d2g_envelope_clear). On failure err says what is wrong with
 * the message, for the dead-letter topic. */
int d2g_envelope_decode(const char *buf, size_t len, d2g_envelope_t *env, char *err,
                        size_t errlen);
void d2g_envelope_clear(d2g_envelope_t *env);

/* 1 if incoming, an update that arrives after queued (same dossier), carries
 * an older version than queued, so that queued must stand: both upserts
 * (full or partial) and incoming's dateDerniereModification strictly earlier.
 * A delete and an upsert are never compared: their dates are not the same
 * clock (dateSupression vs dateDerniereModification), and the later message
 * wins. 0 when a date is unreadable. */
int d2g_envelope_older(const d2g_envelope_t *incoming, const d2g_envelope_t *queued);

/* Writes "<procedure>:<number>" into buf; returns its length. */
int d2g_envelope_key(int64_t procedure, int64_t number, char *buf, size_t buflen);

#endif
