/*
 * checker.h - one DS request checks many procedures for changes.
 *
 * A procedure that did not change since its cursor should cost next to
 * nothing. The check query carries one aliased `demarche` field per
 * procedure (p0, p1, ...), each asking for the first dossier after the
 * procedure's cursor (dossiers(first: 1, updatedSince, after)) and the first
 * deletion after its deletion cursor (deletedDossiers(first: 1, deletedSince,
 * after)), numbers only. A procedure whose answer holds a node changed: the
 * poller then fetches its full pages as usual; the others cost 1/n of a
 * request. Each alias costs about 12 in DS's complexity (connections multiply
 * their children by first: 1), far under DS's 60,000: the batch size is
 * bounded by DS's 30 s timeout and by prudence, not by complexity (see
 * docs/producer.md).
 *
 * The label pass rides along: labels do not move dateDerniereModification,
 * so every labels_interval_s each procedure's labels are read again. For a
 * procedure whose pass is due, its alias also asks for its first 100 dossiers'
 * numbers and label ids (labels: dossiers(first: 100), ≈400 in complexity);
 * when that is all of them and none differs from what was last emitted, the
 * pass is done at no extra request. Otherwise the poller runs the label pass
 * as before.
 *
 * Builds the query and its variables, reads the answer; reads and writes the
 * cursors of a batch in one Redis round trip. The poller sends it and reacts
 * (smaller batches when DS refuses one).
 */
#ifndef D2G_CHECKER_H
#define D2G_CHECKER_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "ds2grist/cursor.h"
#include "ds2grist/redis.h"

/* What one procedure's check said. */
typedef enum {
    D2G_CHECK_QUIET = 0, /* nothing after either cursor */
    D2G_CHECK_CHANGED,   /* a changed or new dossier after the cursor */
    D2G_CHECK_DELETED,   /* only a deletion after the deletion cursor */
    D2G_CHECK_FAILED,    /* this procedure's field failed (not found, not allowed, ...) */
    D2G_CHECK_UNKNOWN,   /* not answered: another procedure's error nulled the whole data
                          * (demarche is non-null in DS's schema); check it again */
} d2g_check_outcome_t;

/* One procedure to check: its number and cursor positions (borrowed). */
typedef struct d2g_check_item {
    int64_t number;
    const char *updated_since; /* never NULL */
    const char *after;         /* NULL: from the start of updated_since */
    const char *deleted_since; /* never NULL (procedures without one are not checked) */
    const char *deleted_after;
} d2g_check_item_t;

#define D2G_CHECK_OPERATION "checkProcedures"

/* The query text for n procedures (owned by the caller, free()); with_labels
 * (NULL: none) flags those whose label page is asked for too. */
char *d2g_checker_query(const int *with_labels, size_t n);
/* The variables of that query for items[0..n) (new reference). */
json_t *d2g_checker_variables(const d2g_check_item_t *items, size_t n);

/*
 * Reads an answer: data (may be NULL) and the root-level errors (may be
 * NULL). Fills out[0..n). An error whose path starts with one of our aliases
 * fails that procedure alone (and if it nulled the whole data, the others are
 * UNKNOWN); any other error (no path) fails the request: then -1 and err says
 * why, out is untouched.
 */
int d2g_checker_parse(json_t *data, json_t *errors, size_t n, d2g_check_outcome_t *out,
                      char *err, size_t errlen);

/* The label page of procedure i of the answer, if it holds every dossier of
 * the procedure (no next page): its nodes (borrowed from data), else NULL. */
json_t *d2g_checker_label_page(json_t *data, size_t i);

/* The labels of a dossier as one comparable string (sorted label ids;
 * caller frees): what the label pass stores per dossier. */
char *d2g_checker_label_digest(json_t *labels);

/*
 * For n procedures and their label pages: *same[i] = 1 if every dossier's
 * digest equals the one stored in "<ns>:{proc:N}:labels" (one round trip).
 * -1 with err on a Redis failure.
 */
int d2g_checker_labels_same(d2g_redis_t *r, const int64_t *numbers, json_t *const *pages, size_t n,
                            int *same, char *err, size_t errlen);

/*
 * The cursors of n procedures in one Redis round trip (pipelined HMGETs,
 * same fields and defaults as d2g_cursor_load). cursors[i] is filled (clear
 * each with d2g_cursor_clear). -1 with err on a Redis failure (nothing to
 * clear then).
 */
int d2g_checker_load_cursors(d2g_redis_t *r, const int64_t *numbers, size_t n,
                             d2g_cursor_t *cursors, char *err, size_t errlen);

/* A procedure removed from the configuration keeps its position in Redis for
 * ttl_s seconds (its cursor, status, labels, revision and fence keys expire
 * then), so that adding it back resumes where it was; ttl_s <= 0 makes them
 * permanent again (a procedure configured, or added back). Pipelined. */
int d2g_checker_set_ttl(d2g_redis_t *r, const int64_t *numbers, size_t n, int ttl_s, char *err,
                        size_t errlen);

/* Records last_poll_ms = now_ms in the cursors of n quiet procedures (one
 * round trip): `ds2grist status` shows when each was last looked at; and
 * labels_at_ms = now_ms for those whose label pass the check did
 * (labels_done[i], NULL: none); and next_poll_ms = next_ms[i] (wall ms of
 * the next check, NULL: not recorded), for the sync-status table. */
int d2g_checker_mark_polled(d2g_redis_t *r, const int64_t *numbers, const int *labels_done,
                            const int64_t *next_ms, size_t n, int64_t now_ms, char *err,
                            size_t errlen);

/* The id of procedure i's published form (activeRevision) in a check answer
 * (borrowed), or NULL. A procedure whose form changed without any dossier
 * changing is run once, so that its new form is stored for the workers
 * (worker/formschema.h). */
const char *d2g_checker_revision(json_t *data, size_t i);

#endif
