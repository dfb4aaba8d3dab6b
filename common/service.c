/* service.c - metrics, health and readiness of a ds2grist service, see service.h. */
#include "ds2grist/service.h"
#include "ds2grist/err.h"
#include "ds2grist/kafka.h"
#include "ds2grist/log.h"

#include <stdio.h>
#include <string.h>

static int ready(void *ud, char *reason, size_t reasonlen) {
    d2g_service_t *s = ud;
    if (!atomic_load(&s->redis_ok)) {
        snprintf(reason, reasonlen, "redis unreachable");
        return 0;
    }
    if (!atomic_load(&s->kafka_ok)) {
        snprintf(reason, reasonlen, "kafka: all brokers down");
        return 0;
    }
    if (!atomic_load(&s->produce_ok)) {
        snprintf(reason, reasonlen, "kafka: dead letters or retry copies cannot be produced");
        return 0;
    }
    pthread_mutex_lock(&s->detail_lock);
    snprintf(reason, reasonlen, "%s", s->detail);
    pthread_mutex_unlock(&s->detail_lock);
    return 1;
}

int d2g_service_start(d2g_service_t *s, const d2g_config_t *cfg, char *err, size_t errlen) {
    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->detail_lock, NULL);
    atomic_store(&s->redis_ok, 1);
    atomic_store(&s->kafka_ok, 1);
    atomic_store(&s->produce_ok, 1);
    if (!(s->metrics = d2g_metrics_new()))
        return d2g_err_set(err, errlen, "out of memory");
    if (cfg->http.port > 0) {
        s->httpd = d2g_httpd_start(cfg->http.port, NULL, s->metrics, ready, s,
                                   D2G_SERVICE_LIVENESS_MS, err, errlen);
        if (!s->httpd) {
            d2g_metrics_free(s->metrics);
            s->metrics = NULL;
            pthread_mutex_destroy(&s->detail_lock);
            return -1;
        }
        d2g_log(D2G_LOG_INFO, "http_listening", 0, NULL, "/healthz /readyz /metrics on port %d",
                d2g_httpd_port(s->httpd));
    }
    return 0;
}

void d2g_service_stop(d2g_service_t *s) {
    if (s->httpd)
        d2g_httpd_stop(s->httpd);
    d2g_metrics_free(s->metrics);
    pthread_mutex_destroy(&s->detail_lock);
    memset(s, 0, sizeof(*s));
}

void d2g_service_detail(d2g_service_t *s, const char *detail) {
    pthread_mutex_lock(&s->detail_lock);
    snprintf(s->detail, sizeof(s->detail), "%s", detail ? detail : "");
    pthread_mutex_unlock(&s->detail_lock);
}

void d2g_service_heartbeat(d2g_service_t *s) {
    if (s->httpd)
        d2g_httpd_heartbeat(s->httpd);
}

void d2g_service_redis(d2g_service_t *s, int ok, const char *reason) {
    int was = atomic_exchange(&s->redis_ok, ok);
    if (was && !ok)
        d2g_log_err(D2G_LOG_WARN, "redis_unreachable", 0, NULL, reason ? reason : "", "not ready");
    else if (!was && ok)
        d2g_log(D2G_LOG_INFO, "redis_reachable", 0, NULL, "ready again");
}

void d2g_service_kafka_recheck(d2g_service_t *s, struct rd_kafka_s *rk, int64_t now_mono_ms) {
    if (atomic_load(&s->kafka_ok) || !rk || now_mono_ms - s->kafka_probed_ms < D2G_SERVICE_PROBE_MS)
        return;
    s->kafka_probed_ms = now_mono_ms;
    if (d2g_kafka_probe(rk, 500))
        d2g_service_kafka(s, 1);
}

void d2g_service_kafka(d2g_service_t *s, int ok) {
    int was = atomic_exchange(&s->kafka_ok, ok);
    if (was != ok)
        d2g_log(ok ? D2G_LOG_INFO : D2G_LOG_WARN, ok ? "kafka_reachable" : "kafka_unreachable", 0,
                NULL, ok ? "ready again" : "all brokers down: not ready");
}

void d2g_service_kafka_produce(d2g_service_t *s, int ok) {
    int was = atomic_exchange(&s->produce_ok, ok);
    if (was != ok)
        d2g_log(ok ? D2G_LOG_INFO : D2G_LOG_WARN, ok ? "kafka_produce_ok" : "kafka_produce_failing",
                0, NULL, ok ? "every copy produced: ready again"
                            : "messages to copy are refused and sent again: not ready");
}
