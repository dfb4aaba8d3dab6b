/* emitter.c - idempotent Kafka producer with per-page delivery tracking, see emitter.h. */
#include "emitter.h"
#include "ds2grist/alloc.h"
#include "ds2grist/err.h"
#include "ds2grist/kafka.h"
#include "ds2grist/log.h"

#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct d2g_emitter {
    rd_kafka_t *rk;
    rd_kafka_topic_t *topic;
    d2g_service_t *svc;
    int fatal;            /* librdkafka raised a fatal error: this producer is done */
    char fatal_reason[512];
};

static void on_kafka_error(rd_kafka_t *rk, int err, const char *reason, void *ud) {
    d2g_emitter_t *em = ud;
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN && em->svc)
        d2g_service_kafka(em->svc, 0);
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        /* The idempotent producer cannot go on without risking duplicates or
         * reordering: the real cause is in rd_kafka_fatal_error. */
        char cause[400];
        rd_kafka_resp_err_t orig = rd_kafka_fatal_error(rk, cause, sizeof(cause));
        snprintf(em->fatal_reason, sizeof(em->fatal_reason), "%s: %s", rd_kafka_err2name(orig),
                 cause);
        em->fatal = 1;
        d2g_log(D2G_LOG_ERROR, "kafka_fatal", 0, NULL, "%s", em->fatal_reason);
        return;
    }
    d2g_log(D2G_LOG_WARN, "kafka_error", 0, NULL, "%s", reason);
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *ud) {
    (void)rk;
    d2g_emitter_t *em = ud;
    if (em->svc && !m->err)
        d2g_service_kafka(em->svc, 1);
    d2g_delivery_t *dv = m->_private;
    if (!dv)
        return;
    if (m->err) {
        if (!dv->failed)
            snprintf(dv->error, sizeof(dv->error), "kafka delivery failed: %s",
                     rd_kafka_err2str(m->err));
        dv->failed++;
    }
    dv->pending--;
}

d2g_emitter_t *d2g_emitter_new(const d2g_config_t *cfg, d2g_service_t *svc, char *err,
                               size_t errlen) {
    static const char *const defaults[] = {
        "partitioner", "murmur2_random", /* Java clients' key placement */
        "linger.ms", "20",
        "compression.type", "lz4", /* dossier JSON shrinks about 5x */
        NULL,
    };
    static const char *const overrides[] = {
        "enable.idempotence", "true", /* no duplicates or reordering from retries */
        "acks", "all",
        NULL,
    };
    char cause[512];
    d2g_emitter_t *em = d2g_calloc(1, sizeof(*em));
    rd_kafka_conf_t *conf = d2g_kafka_conf_new(cfg, defaults, overrides, err, errlen);
    if (!conf) {
        free(em);
        return NULL;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_error_cb(conf, on_kafka_error);
    em->svc = svc;
    rd_kafka_conf_set_opaque(conf, em);
    em->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, cause, sizeof(cause));
    if (!em->rk) {
        rd_kafka_conf_destroy(conf);
        free(em);
        d2g_err_set(err, errlen, "kafka producer: %s", cause);
        return NULL;
    }
    em->topic = rd_kafka_topic_new(em->rk, cfg->kafka.topic, NULL);
    if (!em->topic) {
        d2g_err_set(err, errlen, "kafka topic %s: %s", cfg->kafka.topic,
                    rd_kafka_err2str(rd_kafka_last_error()));
        rd_kafka_destroy(em->rk);
        free(em);
        return NULL;
    }
    return em;
}

void d2g_emitter_free(d2g_emitter_t *em, int timeout_ms) {
    if (!em)
        return;
    if (!em->fatal) /* after a fatal error nothing more will be delivered */
        rd_kafka_flush(em->rk, timeout_ms);
    rd_kafka_topic_destroy(em->topic);
    rd_kafka_destroy(em->rk);
    free(em);
}

int d2g_emitter_send(d2g_emitter_t *em, const char *key, size_t keylen, char *value,
                     size_t len, d2g_delivery_t *dv, char *err, size_t errlen) {
    for (;;) {
        if (rd_kafka_produce(em->topic, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_FREE, value, len,
                             key, keylen, dv) == 0) {
            dv->pending++;
            return 0;
        }
        rd_kafka_resp_err_t e = rd_kafka_last_error();
        if (e == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE) {
            d2g_err_set(err, errlen, "message of %zu bytes is larger than message.max.bytes", len);
            return -2;
        }
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
            return d2g_err_set(err, errlen, "kafka produce: %s", rd_kafka_err2str(e));
        /* The local queue is full: serve delivery reports until there is room. */
        rd_kafka_poll(em->rk, 100);
    }
}

void d2g_emitter_poll(d2g_emitter_t *em, int timeout_ms) { rd_kafka_poll(em->rk, timeout_ms); }

const char *d2g_emitter_fatal(const d2g_emitter_t *em) { return em->fatal ? em->fatal_reason : NULL; }

int d2g_emitter_outstanding(d2g_emitter_t *em) { return rd_kafka_outq_len(em->rk); }

struct rd_kafka_s *d2g_emitter_handle(d2g_emitter_t *em) { return em->rk; }
