/*
 * kafka.h - librdkafka configuration from the ds2grist configuration.
 *
 * kafka.properties and kafka.secret_properties are passed through to
 * librdkafka as they are, then the settings ds2grist depends on are applied
 * on top (the caller's `overrides`); the caller's `defaults` go first, so an operator cannot turn off, say,
 * idempotence by accident. librdkafka's own log lines are routed to the JSON
 * log. Errors name the property, never a secret value.
 */
#ifndef D2G_KAFKA_H
#define D2G_KAFKA_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>

#include "ds2grist/config.h"

/* defaults: NULL-terminated key, value pairs applied first (the operator's
 * properties may change them); overrides: applied last. Either may be NULL. */
rd_kafka_conf_t *d2g_kafka_conf_new(const d2g_config_t *cfg, const char *const *defaults,
                                    const char *const *overrides, char *err, size_t errlen);

/* 1 if a broker answers a metadata request within timeout_ms (no topic
 * asked: cheap), else 0. For readiness without traffic (service.h). */
int d2g_kafka_probe(rd_kafka_t *rk, int timeout_ms);

#endif
