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
 * Pure: builds the query and its variables, reads the answer. The poller
 * sends it and reacts (smaller batches when DS refuses one).
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

/* The query text for n procedures (owned by the caller, free()). */
char *d2g_checker_query(size_t n);
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

/*
 * The cursors of n procedures in one Redis round trip (pipelined HMGETs,
 * same fields and defaults as d2g_cursor_load). cursors[i] is filled (clear
 * each with d2g_cursor_clear). -1 with err on a Redis failure (nothing to
 * clear then).
 */
int d2g_checker_load_cursors(d2g_redis_t *r, const int64_t *numbers, size_t n,
                             d2g_cursor_t *cursors, char *err, size_t errlen);

/* Records last_poll_ms = now_ms in the cursors of n quiet procedures (one
 * round trip): `ds2grist status` shows when each was last looked at. */
int d2g_checker_mark_polled(d2g_redis_t *r, const int64_t *numbers, size_t n, int64_t now_ms,
                            char *err, size_t errlen);

#endif
