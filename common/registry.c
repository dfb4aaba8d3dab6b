/*
 * registry.c - the procedure registry in Redis with its durable copy in a
 * compacted Kafka topic, see registry.h.
 *
 * Writes go to Kafka first and wait for the acknowledgement, then to Redis:
 * a change Kafka refused is not made. The Redis hash is authoritative while
 * its "loaded" marker exists; without it (Redis restarted empty) the topic is
 * read from its start to its end, the last value of each key kept (a
 * tombstone removes), and one script installs the result only if no one else
 * did meanwhile.
 */
#include "ds2grist/registry.h"
#include "ds2grist/alloc.h"
#include "ds2grist/clock.h"
#include "ds2grist/err.h"
#include "ds2grist/kafka.h"
#include "ds2grist/keys.h"
#include "ds2grist/log.h"
#include "ds2grist/redis.h"
#include "ds2grist/reload.h"
#include "ds2grist/secret.h"

#include <inttypes.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KAFKA_TIMEOUT_MS 10000

struct d2g_registry {
    const d2g_config_t *cfg;
    pthread_mutex_t lock;
    d2g_redis_t *redis;
    rd_kafka_t *producer; /* made on the first change */
    char k_entries[D2G_KEYLEN], k_loaded[D2G_KEYLEN], k_version[D2G_KEYLEN];
};

/* KEYS: entries, loaded, version. ARGV: force, then field, value pairs.
 * Installs the rebuilt hash unless the marker appeared meanwhile. */
static const d2g_redis_script_t install_script = {
    "registry_install",
    "if ARGV[1] ~= '1' and redis.call('EXISTS', KEYS[2]) == 1 then return 0 end\n"
    "redis.call('DEL', KEYS[1])\n"
    "for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end\n"
    "redis.call('SET', KEYS[2], '1')\n"
    "redis.call('INCR', KEYS[3])\n"
    "return 1\n"};

const char *d2g_reg_state_name(d2g_reg_state_t s) { return s == D2G_REG_PAUSED ? "paused" : "active"; }

void d2g_reg_entry_clear(d2g_reg_entry_t *e) {
    if (!e)
        return;
    free(e->document);
    free(e->grist_server);
    free(e->ds_endpoint);
    d2g_secret_free(e->ds_token_sealed);
    free(e->table_prefix);
    free(e->created_by);
    json_decref(e->mapping);
    json_decref(e->filter);
    memset(e, 0, sizeof(*e));
}

void d2g_reg_entries_free(d2g_reg_entry_t *e, size_t n) {
    for (size_t i = 0; e && i < n; i++)
        d2g_reg_entry_clear(&e[i]);
    free(e);
}

char *d2g_reg_entry_to_json(const d2g_reg_entry_t *e) {
    json_t *o = json_pack("{si sI ss ss ss ss ss ss sI sI ss}", "v", 1, "procedure",
                          (json_int_t)e->procedure, "document", e->document, "grist_server",
                          e->grist_server, "ds_endpoint", e->ds_endpoint, "ds_token",
                          e->ds_token_sealed, "table_prefix", e->table_prefix, "state",
                          d2g_reg_state_name(e->state), "created_ms", (json_int_t)e->created_ms,
                          "updated_ms", (json_int_t)e->updated_ms, "created_by",
                          e->created_by ? e->created_by : "");
    if (!o)
        return NULL;
    if (e->mapping) /* absent from entries without options, as before they existed */
        json_object_set(o, "mapping", e->mapping);
    if (e->filter)
        json_object_set(o, "filter", e->filter);
    char *s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    return s;
}

/* An option object as stored: absent, null or {} is none (NULL). */
static json_t *option_value(json_t *v) {
    return json_is_object(v) && json_object_size(v) ? json_incref(v) : NULL;
}

/* o[key], an object or absent (entries written before options existed). */
static int take_option(json_t *o, const char *key, json_t **out, char *err, size_t errlen) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_object(v))
        return d2g_err_set(err, errlen, "registry entry: %s: must be an object", key);
    *out = option_value(v);
    return 0;
}

int d2g_reg_entry_from_json(const char *json, size_t len, d2g_reg_entry_t *out, char *err,
                            size_t errlen) {
    json_error_t jerr;
    json_t *o = json_loadb(json, len, 0, &jerr);
    memset(out, 0, sizeof(*out));
    if (!o)
        return d2g_err_set(err, errlen, "registry entry: invalid JSON");
    json_int_t proc = 0, created = 0, updated = 0;
    const char *doc = NULL, *srv = NULL, *ep = NULL, *tok = NULL, *prefix = NULL, *state = NULL,
               *by = "";
    if (json_unpack(o, "{sI ss ss ss ss ss ss s?I s?I s?s}", "procedure", &proc, "document", &doc,
                    "grist_server", &srv, "ds_endpoint", &ep, "ds_token", &tok, "table_prefix",
                    &prefix, "state", &state, "created_ms", &created, "updated_ms", &updated,
                    "created_by", &by) != 0) {
        json_decref(o);
        return d2g_err_set(err, errlen, "registry entry: missing or invalid fields");
    }
    out->procedure = proc;
    out->document = d2g_strdup(doc);
    out->grist_server = d2g_strdup(srv);
    out->ds_endpoint = d2g_strdup(ep);
    out->ds_token_sealed = d2g_strdup(tok);
    out->table_prefix = d2g_strdup(prefix);
    out->state = strcmp(state, "paused") == 0 ? D2G_REG_PAUSED : D2G_REG_ACTIVE;
    out->created_ms = created;
    out->updated_ms = updated;
    out->created_by = d2g_strdup(by ? by : "");
    int rc = take_option(o, "mapping", &out->mapping, err, errlen) ||
             take_option(o, "filter", &out->filter, err, errlen);
    json_decref(o);
    if (rc)
        d2g_reg_entry_clear(out);
    return rc ? -1 : 0;
}

/* ---- options ---------------------------------------------------------------------------- */

int d2g_reg_entry_set_options(d2g_reg_entry_t *e, json_t *mapping, json_t *filter,
                              int *filter_changed, char *err, size_t errlen) {
    json_t *m = mapping ? mapping : e->mapping, *f = filter ? filter : e->filter;
    if (filter_changed)
        *filter_changed = 0;
    if (d2g_config_check_proc_data(json_is_null(m) ? NULL : m, json_is_null(f) ? NULL : f, err,
                                   errlen))
        return -1;
    m = option_value(m);
    f = option_value(f);
    if (filter_changed)
        *filter_changed = !(f == e->filter || (f && e->filter && json_equal(f, e->filter)));
    json_decref(e->mapping);
    json_decref(e->filter);
    e->mapping = m;
    e->filter = f;
    return 0;
}

json_t *d2g_reg_entry_options(const d2g_reg_entry_t *e) {
    return json_pack("{sO? sO?}", "mapping", e->mapping, "filter", e->filter);
}

d2g_registry_t *d2g_registry_new(const d2g_config_t *cfg, char *err, size_t errlen) {
    d2g_registry_t *reg = d2g_calloc(1, sizeof(*reg));
    reg->cfg = cfg;
    pthread_mutex_init(&reg->lock, NULL);
    if (d2g_redis_connect(cfg->redis.url, cfg->redis.username, cfg->redis.password,
                          cfg->redis.namespace, 5000, &reg->redis, err, errlen)) {
        d2g_registry_free(reg);
        return NULL;
    }
    const char *ns = d2g_redis_namespace(reg->redis);
    d2g_keys_registry(ns, reg->k_entries, sizeof(reg->k_entries), "entries");
    d2g_keys_registry(ns, reg->k_loaded, sizeof(reg->k_loaded), "loaded");
    d2g_keys_registry(ns, reg->k_version, sizeof(reg->k_version), "version");
    return reg;
}

void d2g_registry_free(d2g_registry_t *reg) {
    if (!reg)
        return;
    if (reg->producer) {
        rd_kafka_flush(reg->producer, KAFKA_TIMEOUT_MS);
        rd_kafka_destroy(reg->producer);
    }
    if (reg->redis)
        d2g_redis_free(reg->redis);
    pthread_mutex_destroy(&reg->lock);
    free(reg);
}

/* ---- Kafka ------------------------------------------------------------------------------ */

typedef struct delivery {
    int done;
    rd_kafka_resp_err_t err;
} delivery_t;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    (void)opaque;
    delivery_t *d = m->_private;
    if (d) {
        d->err = m->err;
        d->done = 1;
    }
}

static int ensure_producer(d2g_registry_t *reg, char *err, size_t errlen) {
    if (reg->producer)
        return 0;
    const char *overrides[] = {"enable.idempotence", "true", "acks", "all",
                               "partitioner", "murmur2_random", NULL};
    rd_kafka_conf_t *conf = d2g_kafka_conf_new(reg->cfg, NULL, overrides, err, errlen);
    if (!conf)
        return -1;
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    char cause[512];
    reg->producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, cause, sizeof(cause));
    if (!reg->producer) {
        rd_kafka_conf_destroy(conf);
        return d2g_err_set(err, errlen, "kafka producer: %s", cause);
    }
    return 0;
}

/* Writes key -> value (NULL: a tombstone) and waits for the acknowledgement. */
static int kafka_write(d2g_registry_t *reg, int64_t procedure, const char *value, char *err,
                       size_t errlen) {
    if (ensure_producer(reg, err, errlen))
        return -1;
    char key[32];
    snprintf(key, sizeof(key), "%" PRId64, procedure);
    delivery_t d = {0, RD_KAFKA_RESP_ERR_NO_ERROR};
    rd_kafka_resp_err_t e = rd_kafka_producev(
        reg->producer, RD_KAFKA_V_TOPIC(reg->cfg->registry.topic),
        RD_KAFKA_V_KEY(key, strlen(key)),
        RD_KAFKA_V_VALUE((void *)value, value ? strlen(value) : 0),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(&d), RD_KAFKA_V_END);
    if (e)
        return d2g_err_set(err, errlen, "kafka: cannot write to %s: %s", reg->cfg->registry.topic,
                           rd_kafka_err2str(e));
    int64_t deadline = d2g_clock_mono_ms() + KAFKA_TIMEOUT_MS + 5000;
    while (!d.done && d2g_clock_mono_ms() < deadline)
        rd_kafka_poll(reg->producer, 50);
    if (!d.done) {
        /* Purge so the callback cannot touch d once we return. */
        rd_kafka_purge(reg->producer, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_poll(reg->producer, 0);
        while (!d.done)
            rd_kafka_poll(reg->producer, 50);
        return d2g_err_set(err, errlen, "kafka: %s did not acknowledge the change in time",
                           reg->cfg->registry.topic);
    }
    if (d.err)
        return d2g_err_set(err, errlen, "kafka: %s refused the change: %s",
                           reg->cfg->registry.topic, rd_kafka_err2str(d.err));
    return 0;
}

/* The topic from start to end: the last value per key (json object key -> value). */
static int kafka_read_all(d2g_registry_t *reg, json_t *latest, long *messages, char *err,
                          size_t errlen) {
    char group[128];
    snprintf(group, sizeof(group), "%s.rebuild", reg->cfg->registry.topic);
    const char *overrides[] = {"group.id", group, "enable.auto.commit", "false",
                               "enable.auto.offset.store", "false", "enable.partition.eof",
                               "false", NULL};
    rd_kafka_conf_t *conf = d2g_kafka_conf_new(reg->cfg, NULL, overrides, err, errlen);
    if (!conf)
        return -1;
    char cause[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, cause, sizeof(cause));
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        return d2g_err_set(err, errlen, "kafka consumer: %s", cause);
    }
    rd_kafka_poll_set_consumer(rk);
    int rc = -1;
    const char *topic = reg->cfg->registry.topic;
    rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_partition_list_t *l = NULL;
    int64_t *high = NULL;
    *messages = 0;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, t, &md, KAFKA_TIMEOUT_MS);
    if (e || md->topic_cnt != 1) {
        d2g_err_set(err, errlen, "kafka: metadata of %s: %s", topic,
                    e ? rd_kafka_err2str(e) : "no such topic");
        goto out;
    }
    if (md->topics[0].err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
        rc = 0; /* never written: an empty registry */
        goto out;
    }
    if (md->topics[0].err) {
        d2g_err_set(err, errlen, "kafka: %s: %s", topic, rd_kafka_err2str(md->topics[0].err));
        goto out;
    }
    int np = md->topics[0].partition_cnt;
    high = d2g_calloc((size_t)np + 1, sizeof(int64_t));
    l = rd_kafka_topic_partition_list_new(np);
    int remaining = 0;
    for (int p = 0; p < np; p++) {
        int64_t lo = 0, hi = 0;
        e = rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, KAFKA_TIMEOUT_MS);
        if (e) {
            d2g_err_set(err, errlen, "kafka: watermarks of %s [%d]: %s", topic, p,
                        rd_kafka_err2str(e));
            goto out;
        }
        high[p] = hi;
        if (hi > lo) {
            rd_kafka_topic_partition_list_add(l, topic, p)->offset = lo;
            remaining++;
        }
    }
    if (remaining && (e = rd_kafka_assign(rk, l))) {
        d2g_err_set(err, errlen, "kafka: assign %s: %s", topic, rd_kafka_err2str(e));
        goto out;
    }
    int64_t deadline = d2g_clock_mono_ms() + 60000;
    while (remaining > 0) {
        if (d2g_clock_mono_ms() > deadline) {
            d2g_err_set(err, errlen, "kafka: reading %s took over 60 s", topic);
            goto out;
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (!m)
            continue;
        if (m->err) {
            rd_kafka_message_destroy(m);
            continue;
        }
        char key[32] = "";
        if (m->key_len > 0 && m->key_len < sizeof(key))
            memcpy(key, m->key, m->key_len);
        if (key[0]) {
            if (m->payload && m->len > 0)
                json_object_set_new(latest, key, json_stringn(m->payload, m->len));
            else
                json_object_del(latest, key);
            (*messages)++;
        }
        if (m->partition >= 0 && m->partition < np && m->offset + 1 >= high[m->partition]) {
            high[m->partition] = -1; /* done */
            remaining--;
        }
        rd_kafka_message_destroy(m);
    }
    rc = 0;
out:
    if (l)
        rd_kafka_topic_partition_list_destroy(l);
    free(high);
    if (md)
        rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(t);
    rd_kafka_assign(rk, NULL);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return rc;
}

/* ---- Redis ------------------------------------------------------------------------------ */

/* Every process reloads its configuration (and so the registry's procedures). */
static void bump(d2g_registry_t *reg) {
    char err[D2G_ERRLEN];
    long long gen = 0;
    if (d2g_reload_bump(reg->redis, &gen, err, sizeof(err)))
        d2g_log_err(D2G_LOG_WARN, "registry_bump_failed", 0, NULL, err,
                    "the fleet reloads within its poll instead");
}

/* After an entry was written or removed: the registry's version (readers
 * compare it) and the fleet's generation (every process reloads). */
static void entry_changed(d2g_registry_t *reg) {
    char err[D2G_ERRLEN];
    redisReply *r = d2g_redis_cmd(reg->redis, err, sizeof(err), "INCR %s", reg->k_version);
    if (r)
        freeReplyObject(r);
    bump(reg);
}

static int rebuild_locked(d2g_registry_t *reg, int force, long *rebuilt, char *err,
                          size_t errlen) {
    *rebuilt = -1;
    if (!force) {
        redisReply *r = d2g_redis_cmd(reg->redis, err, errlen, "EXISTS %s", reg->k_loaded);
        if (!r)
            return -1;
        int exists = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
        freeReplyObject(r);
        if (exists)
            return 0;
    }
    json_t *latest = json_object();
    long messages = 0;
    if (kafka_read_all(reg, latest, &messages, err, errlen)) {
        json_decref(latest);
        return -1;
    }
    size_t n = json_object_size(latest), i = 0;
    const char **args = d2g_calloc(2 * n + 2, sizeof(char *));
    args[0] = force ? "1" : "0";
    const char *k;
    json_t *v;
    json_object_foreach(latest, k, v) {
        args[1 + 2 * i] = k;
        args[2 + 2 * i] = json_string_value(v);
        i++;
    }
    const char *keys[] = {reg->k_entries, reg->k_loaded, reg->k_version};
    redisReply *r = d2g_redis_eval_idempotent(reg->redis, &install_script, 3, keys, (int)(1 + 2 * n),
                                              args, err, errlen);
    free(args);
    json_decref(latest);
    if (!r)
        return -1;
    int installed = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    freeReplyObject(r);
    if (installed) {
        bump(reg);
        *rebuilt = (long)n;
        d2g_log(D2G_LOG_INFO, "registry_rebuilt", 0, NULL,
                "registry rebuilt in Redis from %s: %zu entries (%ld messages read)",
                reg->cfg->registry.topic, n, messages);
    }
    return 0;
}

int d2g_registry_rebuild(d2g_registry_t *reg, int force, long *rebuilt, char *err, size_t errlen) {
    pthread_mutex_lock(&reg->lock);
    int rc = rebuild_locked(reg, force, rebuilt, err, errlen);
    pthread_mutex_unlock(&reg->lock);
    return rc;
}

static int ensure_loaded(d2g_registry_t *reg, char *err, size_t errlen) {
    long rebuilt;
    return rebuild_locked(reg, 0, &rebuilt, err, errlen);
}

int d2g_registry_put(d2g_registry_t *reg, const d2g_reg_entry_t *e, char *err, size_t errlen) {
    char cause[D2G_ERRLEN];
    if (d2g_config_check_proc_data(e->mapping, e->filter, cause, sizeof(cause)))
        return d2g_err_set(err, errlen, "registry: procedure %" PRId64 ": %s", e->procedure,
                           cause);
    char *json = d2g_reg_entry_to_json(e);
    if (!json)
        return d2g_err_set(err, errlen, "registry: cannot encode the entry");
    char field[32];
    snprintf(field, sizeof(field), "%" PRId64, e->procedure);
    pthread_mutex_lock(&reg->lock);
    int rc = -1;
    if (ensure_loaded(reg, err, errlen) || kafka_write(reg, e->procedure, json, err, errlen))
        goto out;
    const char *hset[] = {"HSET", reg->k_entries, field, json};
    redisReply *r = d2g_redis_argv(reg->redis, 4, hset, NULL, err, errlen);
    if (!r)
        goto out;
    freeReplyObject(r);
    entry_changed(reg);
    rc = 0;
out:
    pthread_mutex_unlock(&reg->lock);
    d2g_secret_free(json); /* it held the sealed token */
    return rc;
}

int d2g_registry_remove(d2g_registry_t *reg, int64_t procedure, int *found, char *err,
                        size_t errlen) {
    char field[32];
    snprintf(field, sizeof(field), "%" PRId64, procedure);
    *found = 0;
    pthread_mutex_lock(&reg->lock);
    int rc = -1;
    redisReply *r = NULL;
    if (ensure_loaded(reg, err, errlen))
        goto out;
    if (!(r = d2g_redis_cmd(reg->redis, err, errlen, "HEXISTS %s %s", reg->k_entries, field)))
        goto out;
    *found = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    freeReplyObject(r);
    if (!*found) {
        rc = 0;
        goto out;
    }
    if (kafka_write(reg, procedure, NULL, err, errlen))
        goto out;
    if (!(r = d2g_redis_cmd(reg->redis, err, errlen, "HDEL %s %s", reg->k_entries, field)))
        goto out;
    freeReplyObject(r);
    entry_changed(reg);
    rc = 0;
out:
    pthread_mutex_unlock(&reg->lock);
    return rc;
}

int d2g_registry_get(d2g_registry_t *reg, int64_t procedure, d2g_reg_entry_t *out, int *found,
                     char *err, size_t errlen) {
    char field[32];
    snprintf(field, sizeof(field), "%" PRId64, procedure);
    *found = 0;
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&reg->lock);
    int rc = -1;
    redisReply *r = NULL;
    if (ensure_loaded(reg, err, errlen) ||
        !(r = d2g_redis_cmd(reg->redis, err, errlen, "HGET %s %s", reg->k_entries, field)))
        goto out;
    if (r->type == REDIS_REPLY_STRING) {
        if (d2g_reg_entry_from_json(r->str, r->len, out, err, errlen))
            goto out;
        *found = 1;
    }
    rc = 0;
out:
    if (r)
        freeReplyObject(r);
    pthread_mutex_unlock(&reg->lock);
    return rc;
}

static int cmp_entry(const void *a, const void *b) {
    const d2g_reg_entry_t *x = a, *y = b;
    return (x->procedure > y->procedure) - (x->procedure < y->procedure);
}

int d2g_registry_list(d2g_registry_t *reg, d2g_reg_entry_t **out, size_t *n, char *err,
                      size_t errlen) {
    *out = NULL;
    *n = 0;
    pthread_mutex_lock(&reg->lock);
    int rc = -1;
    redisReply *r = NULL;
    if (ensure_loaded(reg, err, errlen) ||
        !(r = d2g_redis_cmd(reg->redis, err, errlen, "HGETALL %s", reg->k_entries)))
        goto out;
    if (r->type == REDIS_REPLY_ARRAY) {
        d2g_reg_entry_t *v = d2g_calloc(r->elements / 2 + 1, sizeof(*v));
        size_t m = 0;
        for (size_t i = 0; i + 1 < r->elements; i += 2) {
            char cause[256];
            if (d2g_reg_entry_from_json(r->element[i + 1]->str, r->element[i + 1]->len, &v[m],
                                        cause, sizeof(cause))) {
                d2g_log(D2G_LOG_WARN, "registry_bad_entry", 0, NULL, "entry %s skipped: %s",
                        r->element[i]->str, cause);
                continue;
            }
            m++;
        }
        qsort(v, m, sizeof(*v), cmp_entry);
        *out = v;
        *n = m;
    }
    rc = 0;
out:
    if (r)
        freeReplyObject(r);
    pthread_mutex_unlock(&reg->lock);
    return rc;
}

int d2g_registry_request_resync(d2g_registry_t *reg, int64_t procedure, int64_t at_ms, char *err,
                                size_t errlen) {
    char k[D2G_KEYLEN], at[24], member[24];
    d2g_keys_fleet(d2g_redis_namespace(reg->redis), k, sizeof(k), "resync");
    snprintf(at, sizeof(at), "%" PRId64, at_ms);
    snprintf(member, sizeof(member), "%" PRId64, procedure);
    const char *argv[] = {"ZADD", k, at, member};
    pthread_mutex_lock(&reg->lock);
    redisReply *r = d2g_redis_argv(reg->redis, 4, argv, NULL, err, errlen);
    pthread_mutex_unlock(&reg->lock);
    if (!r)
        return -1;
    freeReplyObject(r);
    return 0;
}

int64_t d2g_registry_version(d2g_registry_t *reg, char *err, size_t errlen) {
    pthread_mutex_lock(&reg->lock);
    int64_t v = 0;
    redisReply *r = d2g_redis_cmd(reg->redis, err, errlen, "GET %s", reg->k_version);
    if (r && r->type == REDIS_REPLY_STRING)
        v = strtoll(r->str, NULL, 10);
    if (r)
        freeReplyObject(r);
    pthread_mutex_unlock(&reg->lock);
    return v;
}

/* ---- the procedure source ------------------------------------------------------------ */

int d2g_registry_has(d2g_registry_t *reg, int64_t procedure) {
    d2g_reg_entry_t e;
    int found = 0;
    char err[D2G_ERRLEN];
    if (d2g_registry_get(reg, procedure, &e, &found, err, sizeof(err)))
        return 0;
    d2g_reg_entry_clear(&e);
    return found;
}

/* An entry as a procedure of the source's overlay (config.h), its options
 * included: the loader checks them as the file's. messages is always given
 * (false unless the entry turns it on): personal data is synchronised only
 * on the entry's own request, never by defaults.mapping. */
static json_t *source_procedure(const d2g_reg_entry_t *e, const char *token_name) {
    json_t *mapping = e->mapping ? json_copy(e->mapping) : json_object();
    if (!json_object_get(mapping, "messages"))
        json_object_set_new(mapping, "messages", json_false());
    json_t *p = json_pack("{sI ss ss ss ss so}", "number", (json_int_t)e->procedure, "ds_token",
                          token_name, "grist_server", e->grist_server, "document", e->document,
                          "table_prefix", e->table_prefix, "mapping", mapping);
    if (e->filter)
        json_object_set(p, "filter", e->filter);
    return p;
}

int d2g_registry_source_fn(void *ud, json_t **overlay, char *err, size_t errlen) {
    d2g_registry_source_t *src = ud;
    const d2g_config_t *running = src->servers_of ? src->servers_of(src->servers_ud) : NULL;
    d2g_reg_entry_t *e = NULL;
    size_t n = 0;
    *overlay = NULL;
    if (d2g_registry_list(src->reg, &e, &n, err, errlen))
        return -1;
    json_t *tokens = json_object(), *procs = json_array();
    for (size_t i = 0; i < n; i++) {
        char cause[256], name[40];
        if (e[i].state != D2G_REG_ACTIVE && !src->include_paused)
            continue;
        if (running && !d2g_config_find_server(running, e[i].grist_server)) {
            d2g_log(D2G_LOG_WARN, "registry_skipped", e[i].procedure, NULL,
                    "Grist server %s is not in grist.servers", e[i].grist_server);
            continue;
        }
        if (d2g_config_check_proc_data(e[i].mapping, e[i].filter, cause, sizeof(cause))) {
            d2g_log(D2G_LOG_WARN, "registry_skipped", e[i].procedure, NULL,
                    "its options are refused: %s", cause);
            continue;
        }
        char *tok = d2g_sealbox_open(src->sb, e[i].ds_token_sealed, cause, sizeof(cause));
        if (!tok) {
            d2g_log(D2G_LOG_WARN, "registry_skipped", e[i].procedure, NULL,
                    "its DS token cannot be opened: %s", cause);
            continue;
        }
        d2g_sealbox_tag(src->sb, "reg-", tok, name, sizeof(name));
        if (!json_object_get(tokens, name))
            json_object_set_new(tokens, name,
                                json_pack("{s{ss} ss}", "secret", "value", tok, "endpoint",
                                          e[i].ds_endpoint));
        d2g_secret_free(tok);
        json_array_append_new(procs, source_procedure(&e[i], name));
    }
    d2g_reg_entries_free(e, n);
    *overlay = json_pack("{s{so} so}", "ds", "tokens", tokens, "procedures", procs);
    return 0;
}
