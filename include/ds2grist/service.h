/*
 * service.h - what the producer and the worker expose to the platform: the
 * metrics registry, /healthz, /readyz and /metrics (httpd.h), and the
 * readiness state their loops keep up to date.
 *
 * The loop calls d2g_service_heartbeat every turn (liveness) and reports
 * whether Redis and Kafka answer (readiness); the HTTP threads only read
 * those flags. The metrics registry exists even when http.port is 0, so the
 * code that updates metrics never has to check.
 */
#ifndef D2G_SERVICE_H
#define D2G_SERVICE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "ds2grist/config.h"
#include "ds2grist/httpd.h"
#include "ds2grist/metrics.h"

/* A service loop that has not turned for this long is reported dead. */
#define D2G_SERVICE_LIVENESS_MS 60000

typedef struct d2g_service {
    d2g_metrics_t *metrics;
    d2g_httpd_t *httpd; /* NULL when http.port is 0 */
    atomic_int redis_ok;
    atomic_int kafka_ok;
    int64_t kafka_probed_ms; /* loop thread only */
    atomic_int produce_ok; /* the worker's dead letters and retry copies are accepted */
    pthread_mutex_t detail_lock;
    char detail[768]; /* shown by /readyz while ready, e.g. a refused reload (reload.h) */
} d2g_service_t;

/* Creates the registry and, if cfg->http.port > 0, the HTTP server. */
int d2g_service_start(d2g_service_t *s, const d2g_config_t *cfg, char *err, size_t errlen);
void d2g_service_stop(d2g_service_t *s);
void d2g_service_heartbeat(d2g_service_t *s);
/* reason: the cause when ok is 0 (no secret), may be NULL. */
void d2g_service_redis(d2g_service_t *s, int ok, const char *reason);
void d2g_service_kafka(d2g_service_t *s, int ok);
/* 0 while messages the worker must copy (dead letters, retry copies) are refused
 * by Kafka and wait to be produced again: their partitions cannot move on. */
void d2g_service_kafka_produce(d2g_service_t *s, int ok);
/* A detail /readyz shows without changing readiness ("ready; <detail>"):
 * what an operator should know although the service works (a configuration
 * reload refused). NULL clears it. Any thread. */
void d2g_service_detail(d2g_service_t *s, const char *detail);

/*
 * The readiness rule both services follow: ready when the service can do its
 * job now, and ready again after a recovery even with no traffic. Kafka is
 * marked down by librdkafka's "all brokers down" error and up again by any
 * success (a delivery, a fetch) or, while down, by this probe: call it every
 * loop turn; at most every D2G_SERVICE_PROBE_MS it asks a broker for metadata
 * (timeout 500 ms, only while not ready) and marks Kafka up if one answers.
 * Redis: PING once a second and report with d2g_service_redis.
 */
#define D2G_SERVICE_PROBE_MS 5000
struct rd_kafka_s;
void d2g_service_kafka_recheck(d2g_service_t *s, struct rd_kafka_s *rk, int64_t now_mono_ms);

#endif
