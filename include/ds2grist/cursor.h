/*
 * cursor.h - a procedure's poll position and status in Redis.
 *
 * Key "<ns>:{proc:N}:cursor", a hash:
 *   updated_since   the run's fixed updatedSince (ISO 8601)
 *   after           endCursor of the last page fully acknowledged by Kafka
 *   deleted_since   the same pair for deletedDossiers
 *   deleted_after
 *   max_modified    the latest dateDerniereModification emitted
 *   last_poll_ms    end of the last complete poll (wall ms): replicas use it
 *                   so that a procedure is not polled twice in one interval
 *   labels_at_ms    end of the last complete label pass (wall ms)
 *   next_poll_ms    when the producer checks it next (wall ms; the
 *                   sync-status table shows it)
 *   resync_started_ms  the agent's resync request (wall ms) whose full pass
 *                   the dossiers pass is (updated_since reset to the epoch:
 *                   every dossier re-emitted, marked "full")
 *   resync_done_ms  when the last full pass ended (wall ms); the pass is
 *                   under way while resync_started_ms > resync_done_ms
 * Key "<ns>:{proc:N}:status", a hash read by operators: last_success_ms,
 * last_error, last_error_ms, failed (0/1), emitted (a counter).
 *
 * The producer moves `after` only once every message of a page is
 * acknowledged, and never replaces it with an empty page's null cursor.
 */
#ifndef D2G_CURSOR_H
#define D2G_CURSOR_H

#include <stdint.h>

#include "ds2grist/redis.h"

/* The date a procedure's first poll starts from: everything. */
#define D2G_CURSOR_EPOCH "2000-01-01T00:00:00Z"

typedef struct d2g_cursor {
    char *updated_since; /* never NULL after load */
    char *after;         /* NULL: from the start of updated_since */
    char *deleted_since; /* NULL until the first run sets it */
    char *deleted_after;
    char *max_modified;
    int64_t last_poll_ms;
    int64_t labels_at_ms;
    int64_t resync_started_ms, resync_done_ms;
    int found; /* 1: the hash existed in Redis (0: new procedure, or Redis lost it) */
} d2g_cursor_t;

/* Loads (absent key: a fresh cursor from D2G_CURSOR_EPOCH). Strings owned by
 * cursor; release with d2g_cursor_clear. */
int d2g_cursor_load(d2g_redis_t *r, int64_t procedure, d2g_cursor_t *cursor, char *err,
                    size_t errlen);
void d2g_cursor_clear(d2g_cursor_t *cursor);

/* HSET of field/value pairs (NULL-terminated list) on the cursor hash. */
int d2g_cursor_set(d2g_redis_t *r, int64_t procedure, const char *const *pairs, char *err,
                   size_t errlen);

/*
 * The same HSET, done only while token still holds the procedure's lease
 * generation (lease.h: the fence key names token). If the lease expired and
 * nobody took it since, it is taken again (for ttl_ms). One Lua script, so no
 * other run can slip in between the check and the write. *written = 0 when
 * refused: the lease moved on, and this run must stop without writing.
 */
int d2g_cursor_set_fenced(d2g_redis_t *r, int64_t procedure, const char *token, int64_t ttl_ms,
                          const char *const *pairs, int *written, char *err, size_t errlen);

/* Deep copy (dst cleared first); for the copy a producer keeps in memory. */
void d2g_cursor_copy(d2g_cursor_t *dst, const d2g_cursor_t *src);

/*
 * resync: the next poll re-emits every dossier modified since `since` (ISO
 * 8601; NULL = all of them) and does it at once. Deletion and label state
 * are kept.
 */
int d2g_cursor_reset(d2g_redis_t *r, int64_t procedure, const char *since, char *err,
                     size_t errlen);

/* Status: a success (emitted: messages of the page), or a failure with its
 * reason (failed = 1 marks the procedure failed until its next success). */
int d2g_cursor_status_ok(d2g_redis_t *r, int64_t procedure, int64_t now_ms, int emitted,
                         char *err, size_t errlen);
int d2g_cursor_status_error(d2g_redis_t *r, int64_t procedure, int64_t now_ms, int failed,
                            const char *reason, char *err, size_t errlen);

#endif
