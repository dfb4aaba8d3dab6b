/*
 * kafkaops.c - the Kafka questions the operator CLI asks: partitions,
 * watermarks and a consumer group's committed offsets, from a consumer
 * handle that never joins its group (so asking never triggers a rebalance
 * of the workers). See operator.h.
 */
#include "operator.h"

#include "ds2grist/err.h"
#include "ds2grist/kafka.h"

#include <string.h>

rd_kafka_t *d2g_op_consumer_new(const d2g_config_t *cfg, const char *group, char *err,
                                size_t errlen) {
    const char *overrides[] = {
        "group.id", group,
        "enable.auto.commit", "false",
        "enable.auto.offset.store", "false",
        "enable.partition.eof", "false",
        NULL,
    };
    char cause[512];
    rd_kafka_conf_t *conf = d2g_kafka_conf_new(cfg, NULL, overrides, err, errlen);
    if (!conf)
        return NULL;
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, cause, sizeof(cause));
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        d2g_err_set(err, errlen, "kafka consumer: %s", cause);
        return NULL;
    }
    rd_kafka_poll_set_consumer(rk);
    return rk;
}

void d2g_op_consumer_close(rd_kafka_t *rk) {
    if (!rk)
        return;
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
}

int d2g_op_partition_count(rd_kafka_t *rk, const char *topic, char *err, size_t errlen) {
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, t, &md, D2G_OP_TIMEOUT_MS);
    rd_kafka_topic_destroy(t);
    if (e) {
        char servers[256] = "?";
        size_t size = sizeof(servers);
        rd_kafka_conf_get(rd_kafka_conf(rk), "bootstrap.servers", servers, &size);
        return d2g_err_set(err, errlen, "kafka %s: cannot reach the brokers (metadata of %s): %s",
                           servers, topic, rd_kafka_err2str(e));
    }
    int n = -1;
    if (md->topic_cnt == 1 && !md->topics[0].err)
        n = md->topics[0].partition_cnt;
    else
        d2g_err_set(err, errlen, "kafka: topic %s: %s", topic,
                    md->topic_cnt == 1 ? rd_kafka_err2str(md->topics[0].err) : "no metadata");
    if (n == 0)
        n = d2g_err_set(err, errlen, "kafka: topic %s: no partitions", topic);
    rd_kafka_metadata_destroy(md);
    return n;
}

rd_kafka_topic_partition_list_t *d2g_op_committed(rd_kafka_t *rk, const char *topic, int n,
                                                  char *err, size_t errlen) {
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n);
    for (int p = 0; p < n; p++)
        rd_kafka_topic_partition_list_add(l, topic, p);
    rd_kafka_resp_err_t e = rd_kafka_committed(rk, l, D2G_OP_TIMEOUT_MS);
    if (e) {
        rd_kafka_topic_partition_list_destroy(l);
        d2g_err_set(err, errlen, "kafka: committed offsets of %s: %s", topic, rd_kafka_err2str(e));
        return NULL;
    }
    for (int i = 0; i < l->cnt; i++)
        if (l->elems[i].err) {
            d2g_err_set(err, errlen, "kafka: committed offset of %s [%d]: %s", topic,
                        (int)l->elems[i].partition, rd_kafka_err2str(l->elems[i].err));
            rd_kafka_topic_partition_list_destroy(l);
            return NULL;
        }
    return l;
}

int d2g_op_watermarks(rd_kafka_t *rk, const char *topic, int partition, int64_t *low,
                      int64_t *high, char *err, size_t errlen) {
    rd_kafka_resp_err_t e =
        rd_kafka_query_watermark_offsets(rk, topic, partition, low, high, D2G_OP_TIMEOUT_MS);
    if (e)
        return d2g_err_set(err, errlen, "kafka: watermarks of %s [%d]: %s", topic, partition,
                           rd_kafka_err2str(e));
    return 0;
}

void d2g_op_replay_group(const d2g_config_t *cfg, char *buf, size_t buflen) {
    snprintf(buf, buflen, "%s-dlq-replay", cfg->kafka.consumer_group);
}
