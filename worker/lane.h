/*
 * lane.h - one Grist document's lane in a worker: its queue of dossiers, its
 * state (active, backing off, parked), its backoff and its error log.
 *
 * Every document a worker writes to has a lane of its own, and nothing a
 * lane does waits on another: a lane in trouble backs off or is parked on
 * its own while the others run at full speed (docs/worker.md, "Lanes").
 *
 *   ACTIVE   writing; a failure makes it BACKOFF
 *   BACKOFF  a failed request is tried again after a delay with jitter that
 *            grows with each failure (at least the answer's Retry-After,
 *            bounded); the delay goes back to zero only after a whole batch
 *            went through without a failure, so a proxy failing every other
 *            request gets slower and slower instead of hammering
 *   PARKED   the document itself is in trouble (key refused, document gone)
 *            or failures went on for PARK_AFTER tries: the lane holds
 *            nothing (its dossiers go to the retry topic, see writer.h
 *            shed) and only probes the document now and then with a cheap
 *            read; the first probe that succeeds makes it ACTIVE again
 *
 * The queue keeps one item per dossier: a newer version of a queued dossier
 * replaces it in place (keeping its messages), an older one arriving later
 * is absorbed by the queued one, a label-only update merges into a full one.
 *
 * Repeated identical errors are logged once, then once a minute with the
 * count (d2g_lane_log). The state, its reason and since when are published
 * in Redis ({doc:...}:lane) for `ds2grist status`.
 */
#ifndef D2G_LANE_H
#define D2G_LANE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "colid.h"
#include "writer.h"

#include "ds2grist/grist.h"
#include "ds2grist/keys.h"
#include "ds2grist/log.h"
#include "ds2grist/redis.h"

typedef enum { D2G_LANE_ACTIVE = 0, D2G_LANE_BACKOFF, D2G_LANE_PARKED, D2G_LANE_STATES } d2g_lane_state_t;

/* Why a lane is not active (static strings, safe to log and to publish). */
#define D2G_LANE_AUTH "auth"           /* 401/403: the key is refused */
#define D2G_LANE_NOT_FOUND "not_found" /* the document does not exist */
#define D2G_LANE_REJECTED "rejected"   /* a request of the lane was refused (4xx) */
#define D2G_LANE_UNAVAILABLE "unavailable" /* 429, 5xx, timeouts */
#define D2G_LANE_SLOW "slow"           /* requests take longer than the timeout */
#define D2G_LANE_LOCK "lock"           /* the schema lock could not be had */
#define D2G_LANE_REDIS "redis"         /* Redis did not answer */

struct d2g_flush;
/* Batches of one lane in flight at once. */
#define D2G_LANE_FLIGHTS 2
struct d2g_schema;

/* A batch split after a refusal: written before the queue. */
typedef struct d2g_group {
    d2g_item_t **items;
    size_t n;
    struct d2g_group *next;
} d2g_group_t;

typedef struct d2g_lane {
    d2g_grist_doc_t doc;
    d2g_config_t *held; /* a reference to the configuration doc.srv points into */
    char lock_key[D2G_KEYLEN], colmap_key[D2G_KEYLEN], versions_key[D2G_KEYLEN];
    char lane_key[D2G_KEYLEN], recent429_key[D2G_KEYLEN];
    char syncturn_key[D2G_KEYLEN], syncerr_key[D2G_KEYLEN];

    /* queue */
    d2g_item_t *head, *tail;
    size_t n_queued;
    json_t *index; /* item key -> item pointer (integer) of the queued items */
    d2g_group_t *groups;
    /* The batches being written: up to D2G_LANE_FLIGHTS at once (while Grist
     * applies one, the next is already sent and parsed), never two versions
     * of one dossier at the same time. */
    struct d2g_flush *flights[D2G_LANE_FLIGHTS];
    size_t n_flights;
    struct d2g_flush *schema_owner; /* the flight holding the schema lock, or NULL */

    /* state */
    d2g_lane_state_t state;
    const char *reason; /* D2G_LANE_*, NULL when active */
    char error[256];    /* the last error, scrubbed (d2g_grist_error_text) */
    int64_t since_wall_ms;
    int64_t next_try;   /* mono ms: nothing starts before */
    int failures;       /* consecutive, reset by a batch without failure */
    int64_t permit_wait_start;
    /* Bytes of the largest table's PUT bodies per byte of Kafka message, as
     * last measured: a batch is filled until the bodies it will make fill
     * worker.batch_bytes, not until the messages do (a DS dossier's JSON is
     * several times its row). 0: not measured yet. */
    double body_ratio;
    d2g_lane_state_t pub_state; /* as last published in Redis */
    const char *pub_reason;

    /* the document's schema and column ids */
    struct d2g_schema *schema;
    d2g_colmap_t *colmap;
    uint64_t colmap_synced; /* generation last merged with Redis */

    /* the document's sync-status table (syncstat.h): its write in flight
     * (outside flights: it never takes a dossier batch's place), when the
     * next is due (mono ms), the digest of the rows last written (by any
     * worker: read from Redis with the rows), the dossiers this worker showed
     * as refused (item key -> true), the last batch of dossiers of the lane
     * Grist acknowledged (wall ms: older troubles of other workers' lanes are
     * not shown after it), and whether a dossier ever came for it */
    struct d2g_flush *status;
    int64_t status_due;
    uint64_t status_sent;
    json_t *refused;
    int64_t ok_wall_ms;
    int used;
    int status_now; /* the lane's state changed: written next, whoever's turn it is */
    int64_t status_last; /* mono ms of the last status write's start (or the lane's creation) */

    /* error log deduplication */
    char last_event[48], last_text[256];
    uint64_t repeats;
    int64_t last_logged_ms;
} d2g_lane_t;

/* A new lane for document of srv (err if its names do not fit). */
d2g_lane_t *d2g_lane_new(d2g_redis_t *r, const d2g_grist_server_t *srv, const char *document,
                         char *err, size_t errlen);
/* Frees the lane and every item it holds (no hooks). */
void d2g_lane_free(d2g_lane_t *l);

/* Takes ownership of item; see the collapse rules above. */
void d2g_lane_add(d2g_lane_t *l, d2g_item_t *item);
/* Takes the next batch: a split group first, else queued items whose
 * messages fit in d2g_lane_batch_target (at least one), leaving queued those
 * whose key is in one of the n_busy sets of busy (JSON objects: the dossiers
 * of each batch in flight; looked up, not merged, since this runs at every
 * step). *n gets the count (0: nothing). */
d2g_item_t **d2g_lane_take(d2g_lane_t *l, size_t batch_bytes, const json_t *const *busy, size_t n_busy,
                           size_t *n);
/* The share of grist.batch_bytes a batch's largest body is aimed at. */
#define D2G_LANE_BODY_FILL 0.92
/* How many bytes of messages make a full batch, from body_ratio. */
size_t d2g_lane_batch_target(const d2g_lane_t *l, size_t batch_bytes);
/* A batch of message_bytes made PUT bodies of largest_table_bytes for its largest table. */
void d2g_lane_measured(d2g_lane_t *l, size_t message_bytes, size_t largest_table_bytes);
/* Takes every queued item (to shed a parked lane). */
d2g_item_t **d2g_lane_take_all(d2g_lane_t *l, size_t *n);
/* Items held: queued, in groups, in the batch being written. */
size_t d2g_lane_held(const d2g_lane_t *l);
/* The same, and *bytes gets the size of their messages. */
size_t d2g_lane_held_bytes(const d2g_lane_t *l, size_t *bytes);
/* Queued items of partition (topic 0 or 1): counted, and freed without hooks with drop. */
size_t d2g_lane_drop_partition(d2g_lane_t *l, uint8_t topic, int32_t partition, int drop);
/* 1 if one of the queued items comes from that partition. */
int d2g_lane_feeds(const d2g_lane_t *l, uint8_t topic, int32_t partition);
int d2g_item_in_partition(const d2g_item_t *it, uint8_t topic, int32_t partition);

/* A request failed with outcome (grist.h); retry_after_ms from the answer
 * (-1: none), text already scrubbed. Moves the lane to BACKOFF or PARKED and
 * sets next_try. Returns the lane's new state. */
d2g_lane_state_t d2g_lane_failed(d2g_lane_t *l, int64_t now, int outcome, const char *reason,
                                 int64_t retry_after_ms, const char *text, unsigned *rng);
/* A batch (or a probe) went through: without a failure in it (clean), the
 * backoff starts again from zero. */
void d2g_lane_succeeded(d2g_lane_t *l, int clean);
/* 1 if the lane is parked; *until gets the wall ms of its next probe. */
int d2g_lane_parked(const d2g_lane_t *l, int64_t now_mono, int64_t *until_wall);

/* Logs event for the lane (stage: "queue", "schema", "plan", "flush"...),
 * once per identical (event, text) a minute, with the count of repeats. */
void d2g_lane_log(d2g_lane_t *l, d2g_log_level_t level, const char *stage, const char *event,
                  const char *text, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* Writes the lane's state into Redis ({doc:...}:lane) for `ds2grist status`. */
void d2g_lane_publish(d2g_lane_t *l, d2g_redis_t *r, const char *worker_id);

const char *d2g_lane_state_name(d2g_lane_state_t s);


#endif
