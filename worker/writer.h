/*
 * writer.h - dossiers into Grist documents, one lane per document.
 *
 * The worker hands the writer one item per dossier update (a decoded
 * message). Each Grist document has its own lane (lane.h): its queue, its
 * state, its backoff, its schema cache, its request in flight. Lanes never
 * wait on each other: a lane whose document is in trouble (key refused,
 * document gone, a proxy failing, a document too slow) backs off and, if the
 * trouble lasts, is parked: it holds nothing (its dossiers go to the retry
 * topic through the shed hook) and probes its document now and then; the
 * other lanes run at full speed. When the document answers again the lane
 * resumes by itself.
 *
 * A lane's batch (flush.h) goes through readable stages: prepare (map,
 * version guard, size), schema (schema.h), put, find, delete (plan.h), done.
 * Every request takes a permit of the document's semaphore in Redis first
 * (grist.h): however many workers run, a document never has more of our
 * requests in flight than its limit. An older version of a dossier never
 * overwrites a newer one (versions.h). docs/worker.md describes it all.
 */
#ifndef D2G_WRITER_H
#define D2G_WRITER_H

#include <stddef.h>
#include <stdint.h>

#include "ds2grist/config.h"
#include "ds2grist/envelope.h"
#include "ds2grist/metrics.h"
#include "ds2grist/redis.h"

/* A Kafka message an item stands for. */
typedef struct d2g_msgref {
    int32_t partition;
    int64_t offset;
    uint32_t epoch;
    uint8_t topic;  /* 0: kafka.topic, 1: kafka.retry_topic */
} d2g_msgref_t;

/* One dossier update, and every message it stands for (collapsed ones included). */
typedef struct d2g_item {
    const d2g_procedure_t *proc;
    d2g_config_t *held;  /* a reference to the configuration proc points into (reload.h) */
    d2g_envelope_t env;  /* the latest version, owned */
    d2g_msgref_t *msgs;
    size_t n_msgs, cap_msgs;
    size_t bytes;        /* size of the latest message, to fill batches */
    int64_t enqueued_ms; /* mono */
    int attempt; /* times through the retry topic (d2g-attempt header) */
    struct d2g_item *next;
    char key[48];        /* "<procedure>:<number>" */
} d2g_item_t;

typedef struct d2g_writer_hooks {
    /* The item is in Grist: its messages are done. The writer frees it afterwards. */
    void (*written)(void *ud, d2g_item_t *item);
    /* The item cannot be written (reason says why): dead-letter its messages.
     * The writer frees it afterwards. */
    void (*failed)(void *ud, d2g_item_t *item, const char *reason);
    /* May be NULL: a parked lane then keeps what it holds. The item's lane is parked: copy it to the retry topic (not before not_before_wall_ms, reason has no
       secret); its messages are done when the retry topic has it. The writer frees the item afterwards. */
    void (*shed)(void *ud, d2g_item_t *item, int64_t not_before_wall_ms, const char *reason);
    void *ud;
} d2g_writer_hooks_t;

typedef struct d2g_writer_stats {
    uint64_t requests;       /* Grist requests answered (any status) */
    uint64_t status_2xx, status_429, status_4xx, status_5xx, transport_errors;
    uint64_t rows_written;   /* records sent in successful PUTs */
    uint64_t retries;
    uint64_t permit_waits;   /* times a request had to wait for a permit */
    uint64_t permit_wait_ms; /* total time spent waiting for permits */
    uint64_t batches;        /* successful flushes */
    uint64_t failed_items;   /* items handed back as failed */
    uint64_t shed_items;     /* items sent to the retry topic (parked lanes) */
    uint64_t superseded;     /* items Grist already held in a newer version */
    uint64_t put_body_bytes; /* bytes of the largest table's PUT bodies, summed over batches */
} d2g_writer_stats_t;

typedef struct d2g_writer d2g_writer_t;

/* redis is borrowed and used from the caller's thread only; metrics (may be
 * NULL) receives the writer's families (Grist requests, 429s, retries, rows
 * written, batch sizes, permit waits, permits in use). */
d2g_writer_t *d2g_writer_new(const d2g_config_t *cfg, d2g_redis_t *redis, const char *worker_id,
                             d2g_metrics_t *metrics, d2g_writer_hooks_t hooks, char *err,
                             size_t errlen);
/* Samples the permits in use of every document it writes to (a Redis call
 * each): call every few seconds. */
void d2g_writer_sample(d2g_writer_t *w);
/* Frees everything; items still held are freed without hooks. */
void d2g_writer_free(d2g_writer_t *w);

/* Takes ownership of item. An update of a dossier already queued (and not
 * being written) replaces it: the older item's messages move to the newer.
 * An item for a parked lane is shed at once. */
void d2g_writer_add(d2g_writer_t *w, d2g_item_t *item);
/* 1 if the lane of proc's document is parked now: a new message for it is to be forwarded to the retry
   topic as it is (not decoded); *not_before_wall_ms and reason (a static string) say until when and why. */
/* A new configuration (reload.h), between steps: the worker.* settings, Grist
 * servers' URLs and keys and documents' permits apply to the next request of
 * each lane; a lane whose server is gone drains on the configuration it
 * holds. cfg must stay valid until the next apply (the caller holds it). */
void d2g_writer_apply(d2g_writer_t *w, const d2g_config_t *cfg);

int d2g_writer_parked(d2g_writer_t *w, const d2g_procedure_t *proc, int64_t *not_before_wall_ms,
                      const char **reason);
void d2g_item_free(d2g_item_t *item);

/* Starts what can start (batches due, retries due). now: mono ms. */
void d2g_writer_step(d2g_writer_t *w, int64_t now);
/* Waits up to timeout_ms for Grist answers and handles them. */
void d2g_writer_poll(d2g_writer_t *w, int timeout_ms);
/* The time (mono ms) at which something is due next, or INT64_MAX. */
int64_t d2g_writer_next_due(const d2g_writer_t *w);

/* 1: flush everything now regardless of linger (shutdown). */
void d2g_writer_flush_all(d2g_writer_t *w, int on);
/* Items held: queued or being written; *documents (if not NULL) gets the
 * number of documents holding some, *bytes (if not NULL) the size of their
 * messages. */
size_t d2g_writer_pending(const d2g_writer_t *w, size_t *documents, size_t *bytes);
/* Items of partition queued or being written; with drop, the queued ones
 * (not those being written) are freed without hooks (partition revoked). */
size_t d2g_writer_partition(d2g_writer_t *w, uint8_t topic, int32_t partition, int drop,
                            size_t *in_flight);
/* Items of partition in batches being written leave them (freed without
 * hooks): what is still to be sent for those batches is planned again
 * without them. For a revocation whose in-flight work outlived its wait. */
void d2g_writer_abandon_partition(d2g_writer_t *w, uint8_t topic, int32_t partition);
/* The most items queued on one document (to pause consumption). */
size_t d2g_writer_max_queued(const d2g_writer_t *w);
/* 1 if one of the partition's items is queued on a document holding more
 * than limit items. */
int d2g_writer_partition_congested(const d2g_writer_t *w, uint8_t topic, int32_t partition,
                                   size_t limit);
/* Lanes by state (active, backoff, parked): counts[D2G_LANE_STATES]. */
void d2g_writer_lane_counts(const d2g_writer_t *w, size_t counts[3]);

const d2g_writer_stats_t *d2g_writer_stats(const d2g_writer_t *w);

#endif
