/*
 * emitter.h - the producer's Kafka side: dossier messages out, delivery
 * reports back.
 *
 * An idempotent librdkafka producer (enable.idempotence=true, acks=all). Each
 * message belongs to a d2g_delivery_t (one DS page): the delivery report
 * callback counts it down, so the caller knows when every message of a page
 * is durable in Kafka, and only then moves the poll cursor.
 */
#ifndef D2G_EMITTER_H
#define D2G_EMITTER_H

#include <stddef.h>

#include "ds2grist/config.h"
#include "ds2grist/err.h"
#include "ds2grist/service.h"

typedef struct d2g_delivery {
    int pending;     /* messages sent and not yet acknowledged */
    int failed;      /* messages Kafka reported as failed */
    char error[D2G_ERRLEN + 64]; /* the first failure */
} d2g_delivery_t;

typedef struct d2g_emitter d2g_emitter_t;

/* svc (may be NULL) is told when every broker is down, and when one answers again. */
d2g_emitter_t *d2g_emitter_new(const d2g_config_t *cfg, d2g_service_t *svc, char *err,
                               size_t errlen);
/* Waits up to timeout_ms for outstanding messages, then destroys. */
void d2g_emitter_free(d2g_emitter_t *em, int timeout_ms);

/* Queues one message on the dossier topic. value (malloc'ed) is handed over
 * to librdkafka on success; on failure the caller still owns it. dv must stay
 * valid until its pending count is back to 0. Returns 0, -1 on failure, -2
 * if this message can never be sent (larger than message.max.bytes). */
int d2g_emitter_send(d2g_emitter_t *em, const char *key, size_t keylen, char *value,
                     size_t len, d2g_delivery_t *dv, char *err, size_t errlen);
/* Serves delivery reports, waiting up to timeout_ms. */
void d2g_emitter_poll(d2g_emitter_t *em, int timeout_ms);
/* NULL, or the cause of the fatal error librdkafka raised (e.g. a broker
 * fencing the idempotent producer's epoch): the producer instance can no
 * longer deliver, and the process must end (a new instance starts clean). */
const char *d2g_emitter_fatal(const d2g_emitter_t *em);
/* The librdkafka handle (borrowed), for the readiness probe. */
struct rd_kafka_s *d2g_emitter_handle(d2g_emitter_t *em);
/* Messages not yet acknowledged. */
int d2g_emitter_outstanding(d2g_emitter_t *em);

#endif
