/* kafka.c - librdkafka configuration, see kafka.h. */
#include "ds2grist/kafka.h"
#include "ds2grist/err.h"
#include "ds2grist/log.h"

#include <stdio.h>

/* librdkafka syslog levels -> ours. */
static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
    (void)rk;
    d2g_log_level_t l = level <= 3 ? D2G_LOG_ERROR : level == 4 ? D2G_LOG_WARN
                        : level <= 6 ? D2G_LOG_INFO : D2G_LOG_DEBUG;
    d2g_log(l, "kafka_log", 0, NULL, "%s: %s", fac, buf);
}

static int set(rd_kafka_conf_t *conf, const char *key, const char *value, int secret, char *err,
               size_t errlen) {
    char cause[512];
    if (rd_kafka_conf_set(conf, key, value, cause, sizeof(cause)) != RD_KAFKA_CONF_OK) {
        if (secret) /* librdkafka's message may quote the value */
            return d2g_err_set(err, errlen, "kafka property %s: rejected by librdkafka", key);
        return d2g_err_set(err, errlen, "kafka property %s: %s", key, cause);
    }
    return 0;
}

rd_kafka_conf_t *d2g_kafka_conf_new(const d2g_config_t *cfg, const char *const *defaults,
                                    const char *const *overrides, char *err, size_t errlen) {
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    for (size_t i = 0; defaults && defaults[i]; i += 2)
        if (set(conf, defaults[i], defaults[i + 1], 0, err, errlen))
            goto fail;
    for (size_t i = 0; i < cfg->kafka.n_properties; i++) {
        const d2g_kv_t *kv = &cfg->kafka.properties[i];
        if (set(conf, kv->key, kv->value, kv->secret, err, errlen))
            goto fail;
    }
    for (size_t i = 0; overrides && overrides[i]; i += 2)
        if (set(conf, overrides[i], overrides[i + 1], 0, err, errlen))
            goto fail;
    rd_kafka_conf_set_log_cb(conf, on_log);
    return conf;
fail:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

int d2g_kafka_probe(rd_kafka_t *rk, int timeout_ms) {
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, NULL, &md, timeout_ms);
    if (md)
        rd_kafka_metadata_destroy(md);
    return e == RD_KAFKA_RESP_ERR_NO_ERROR;
}
