/*
 * config.c - loading and validating the configuration, see config.h.
 *
 * Each parse_* function reads one object of the file, knows its JSON path
 * ("grist.servers.main") and reports the first bad value under it. Nothing
 * here logs: the caller prints the error once.
 */
#include "ds2grist/config.h"
#include "ds2grist/alloc.h"
#include "ds2grist/err.h"
#include "ds2grist/log.h"
#include "ds2grist/secret.h"
#include "ds2grist/text.h"

#include <ctype.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PATHLEN 256

/* --- small typed getters, each reporting "<path>.<key>: <cause>" --------- */

/* Fails on any key of obj that is not in allowed (NULL-terminated). */
static int check_keys(json_t *obj, const char *path, const char *const *allowed,
                      char *err, size_t errlen) {
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        int ok = 0;
        for (const char *const *a = allowed; *a; a++)
            if (strcmp(*a, key) == 0)
                ok = 1;
        if (!ok)
            return d2g_err_set(err, errlen, "%s%s%s: unknown key", path, *path ? "." : "", key);
    }
    return 0;
}

static int expect_object(json_t *v, const char *path, char *err, size_t errlen) {
    if (!json_is_object(v))
        return d2g_err_set(err, errlen, "%s: must be an object", path);
    return 0;
}

/* A string member; absent -> def (NULL def = required). *out is malloc'ed. */
static int get_string(json_t *obj, const char *key, const char *path, const char *def,
                      char **out, char *err, size_t errlen) {
    json_t *v = json_object_get(obj, key);
    const char *s = def;
    if (v) {
        if (!json_is_string(v) || json_string_length(v) == 0)
            return d2g_err_set(err, errlen, "%s.%s: must be a non-empty string", path, key);
        s = json_string_value(v);
    } else if (!def) {
        return d2g_err_set(err, errlen, "%s.%s: is required", path, key);
    }
    *out = d2g_strdup(s);
    return 0;
}

static int get_int(json_t *obj, const char *key, const char *path, int required,
                   long long def, long long min, long long max, long long *out,
                   char *err, size_t errlen) {
    json_t *v = json_object_get(obj, key);
    if (!v) {
        if (required)
            return d2g_err_set(err, errlen, "%s.%s: is required", path, key);
        *out = def;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
        return d2g_err_set(err, errlen, "%s.%s: must be an integer from %lld to %lld",
                           path, key, min, max);
    *out = json_integer_value(v);
    return 0;
}

/* {"env": NAME} or {"file": PATH}; absent and optional -> *out = NULL. */
static int get_secret_from(json_t *obj, const char *key, const char *path, int required,
                           int allow_value, char **out, char *err, size_t errlen) {
    static const char *const keys[] = {"env", "file", NULL};
    static const char *const vkeys[] = {"value", NULL};
    char sub[PATHLEN], cause[D2G_ERRLEN];
    json_t *v = json_object_get(obj, key);

    *out = NULL;
    snprintf(sub, sizeof(sub), "%s.%s", path, key);
    if (!v) {
        if (required)
            return d2g_err_set(err, errlen, "%s: is required", sub);
        return 0;
    }
    if (json_is_string(v))
        return d2g_err_set(err, errlen,
                           "%s: secrets cannot be written in the configuration; "
                           "use {\"env\": \"NAME\"} or {\"file\": \"/path\"}", sub);
    if (expect_object(v, sub, err, errlen))
        return -1;
    if (allow_value && json_object_get(v, "value")) {
        /* Only a procedure source's entries (config.h): never the file. */
        json_t *val = json_object_get(v, "value");
        if (check_keys(v, sub, vkeys, err, errlen))
            return -1;
        if (!json_is_string(val) || json_string_length(val) == 0)
            return d2g_err_set(err, errlen, "%s.value: must be a non-empty string", sub);
        *out = d2g_strdup(json_string_value(val));
        return 0;
    }
    if (check_keys(v, sub, keys, err, errlen))
        return -1;
    json_t *env = json_object_get(v, "env"), *file = json_object_get(v, "file");
    if ((env != NULL) == (file != NULL))
        return d2g_err_set(err, errlen, "%s: needs exactly one of \"env\" or \"file\"", sub);
    json_t *name = env ? env : file;
    if (!json_is_string(name) || json_string_length(name) == 0)
        return d2g_err_set(err, errlen, "%s.%s: must be a non-empty string", sub, env ? "env" : "file");
    int rc = env ? d2g_secret_from_env(json_string_value(name), out, cause, sizeof(cause))
                 : d2g_secret_from_file(json_string_value(name), out, cause, sizeof(cause));
    if (rc)
        return d2g_err_set(err, errlen, "%s: %s", sub, cause);
    return 0;
}

static int get_secret(json_t *obj, const char *key, const char *path, int required,
                      char **out, char *err, size_t errlen) {
    return get_secret_from(obj, key, path, required, 0, out, err, errlen);
}

/* Grist table ids: an upper-case letter, then letters, digits, underscores. */
static int valid_table_id(const char *s) {
    if (!isupper((unsigned char)s[0]))
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_')
            return 0;
    return 1;
}

/* Names that end up in Redis keys, metric labels and logs. */
static int valid_name(const char *s, size_t max) {
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-' && *s != '.')
            return 0;
    return 1;
}

/* host[:port] of a URL's authority: a DNS name or IPv4 address, or [IPv6]. */
static int valid_host_port(const char *h, size_t n) {
    const char *colon = NULL;
    size_t hl = n;
    if (n > 0 && h[0] == '[') {
        const char *close = memchr(h, ']', n);
        if (!close || close == h + 1)
            return 0;
        for (const char *c = h + 1; c < close; c++)
            if (!isxdigit((unsigned char)*c) && *c != ':' && *c != '.')
                return 0;
        hl = (size_t)(close - h) + 1;
        if (hl < n && h[hl] != ':')
            return 0;
        colon = hl < n ? h + hl : NULL;
    } else {
        colon = memchr(h, ':', n);
        hl = colon ? (size_t)(colon - h) : n;
        if (hl == 0 || hl > 253)
            return 0;
        for (size_t i = 0; i < hl; i++)
            if (!isalnum((unsigned char)h[i]) && h[i] != '-' && h[i] != '.' && h[i] != '_')
                return 0;
    }
    if (colon) {
        size_t pl = n - (size_t)(colon - h) - 1;
        if (pl == 0 || pl > 5)
            return 0;
        long port = 0;
        for (size_t i = 0; i < pl; i++) {
            if (!isdigit((unsigned char)colon[1 + i]))
                return 0;
            port = port * 10 + (colon[1 + i] - '0');
        }
        if (port < 1 || port > 65535)
            return 0;
    }
    return 1;
}

/*
 * An http(s) URL with a host, and without credentials, query or fragment:
 * secrets never go in URLs (they end up in logs, proxies and `config check`).
 * Returns 0, or -1 with "<what>: <cause>" in err (what: the key or variable).
 */
static int check_http_url(const char *s, const char *what, const char *secret_hint, char *err,
                          size_t errlen) {
    const char *rest;
    if (strncmp(s, "http://", 7) == 0)
        rest = s + 7;
    else if (strncmp(s, "https://", 8) == 0)
        rest = s + 8;
    else
        return d2g_err_set(err, errlen, "%s: must start with http:// or https://", what);
    size_t auth = strcspn(rest, "/?#");
    if (memchr(rest, '@', auth))
        return d2g_err_set(err, errlen, "%s: must not hold credentials (user:password@); %s", what,
                           secret_hint);
    if (strchr(rest, '?') || strchr(rest, '#'))
        return d2g_err_set(err, errlen, "%s: must not have a query string or fragment (a token "
                           "there would be printed and logged); %s", what, secret_hint);
    if (!valid_host_port(rest, auth))
        return d2g_err_set(err, errlen, "%s: needs a valid host (and port 1-65535 if given)", what);
    for (const char *c = rest; *c; c++)
        if ((unsigned char)*c <= ' ' || *c == 0x7f)
            return d2g_err_set(err, errlen, "%s: must not contain spaces or control characters",
                               what);
    return 0;
}

/* redis://host[:port][/db] or unix:///path, no credentials. */
static int check_redis_url(const char *s, const char *what, char *err, size_t errlen) {
    if (strncmp(s, "unix://", 7) == 0) {
        if (s[7] != '/' || strlen(s) < 9)
            return d2g_err_set(err, errlen, "%s: unix:// needs an absolute socket path", what);
        return 0;
    }
    if (strncmp(s, "redis://", 8) != 0)
        return d2g_err_set(err, errlen, "%s: must start with redis:// or unix://", what);
    const char *rest = s + 8;
    size_t auth = strcspn(rest, "/");
    if (memchr(rest, '@', auth))
        return d2g_err_set(err, errlen, "%s: must not hold credentials; "
                           "use redis.username and redis.password", what);
    if (!valid_host_port(rest, auth))
        return d2g_err_set(err, errlen, "%s: needs a valid host (and port 1-65535 if given)", what);
    if (rest[auth] == '/' && rest[auth + 1]) {
        const char *db = rest + auth + 1;
        if (strspn(db, "0123456789") != strlen(db) || strlen(db) > 4)
            return d2g_err_set(err, errlen, "%s: the database must be a number from 0 to 9999", what);
    }
    return 0;
}

/* librdkafka properties whose values are credentials: only in secret_properties. */
static int secret_property(const char *key) {
    static const char *const exact[] = {"ssl.key.pem", "ssl_key", "sasl.oauthbearer.config",
                                        "ssl.keystore.password", "ssl.key.password",
                                        "sasl.password", NULL};
    for (int i = 0; exact[i]; i++)
        if (strcmp(key, exact[i]) == 0)
            return 1;
    return strstr(key, "password") || strstr(key, "secret");
}

/* A number setting: its key, default and allowed range (the error says it). */
typedef struct int_setting {
    const char *key;
    int *field;
    long long def, min, max;
} int_setting_t;

static int get_ints(json_t *obj, const char *path, const int_setting_t *table, char *err,
                    size_t errlen);

static int get_ints(json_t *obj, const char *path, const int_setting_t *table, char *err,
                    size_t errlen) {
    for (const int_setting_t *t = table; t->key; t++) {
        long long v = 0;
        if (get_int(obj, t->key, path, 0, t->def, t->min, t->max, &v, err, errlen))
            return -1;
        *t->field = (int)v;
    }
    return 0;
}

/* --- sections ------------------------------------------------------------ */

static int parse_kafka(d2g_config_t *cfg, json_t *root, char *err, size_t errlen) {
    static const char *const keys[] = {"properties", "secret_properties", "topic", "dlq_topic",
                                       "retry_topic", "consumer_group", NULL};
    json_t *k = json_object_get(root, "kafka");
    if (!k)
        return d2g_err_set(err, errlen, "kafka: is required");
    if (expect_object(k, "kafka", err, errlen) || check_keys(k, "kafka", keys, err, errlen))
        return -1;

    json_t *props = json_object_get(k, "properties");
    json_t *sprops = json_object_get(k, "secret_properties");
    if (props && expect_object(props, "kafka.properties", err, errlen))
        return -1;
    if (sprops && expect_object(sprops, "kafka.secret_properties", err, errlen))
        return -1;
    size_t n = (props ? json_object_size(props) : 0) + (sprops ? json_object_size(sprops) : 0);
    /* One spare slot for the DS2GRIST_KAFKA_BOOTSTRAP_SERVERS override. */
    cfg->kafka.properties = d2g_calloc(n + 1, sizeof(d2g_kv_t));

    const char *key;
    json_t *v;
    if (props) {
        json_object_foreach(props, key, v) {
            if (!json_is_string(v))
                return d2g_err_set(err, errlen, "kafka.properties.%s: must be a string "
                                   "(librdkafka properties are strings)", key);
            if (secret_property(key))
                return d2g_err_set(err, errlen, "kafka.properties.%s: a credential; put it in "
                                   "kafka.secret_properties.%s as {\"env\": \"NAME\"} or "
                                   "{\"file\": \"/path\"}", key, key);
            if (json_string_length(v) == 0)
                return d2g_err_set(err, errlen, "kafka.properties.%s: must not be empty", key);
            d2g_kv_t *kv = &cfg->kafka.properties[cfg->kafka.n_properties++];
            kv->key = d2g_strdup(key);
            kv->value = d2g_strdup(json_string_value(v));
        }
    }
    if (sprops) {
        json_object_foreach(sprops, key, v) {
            d2g_kv_t *kv = &cfg->kafka.properties[cfg->kafka.n_properties++];
            kv->key = d2g_strdup(key);
            kv->secret = 1;
            if (get_secret(sprops, key, "kafka.secret_properties", 1, &kv->value, err, errlen))
                return -1;
        }
    }
    if (get_string(k, "topic", "kafka", "ds2grist.dossiers", &cfg->kafka.topic, err, errlen) ||
        get_string(k, "dlq_topic", "kafka", "ds2grist.dlq", &cfg->kafka.dlq_topic, err, errlen) ||
        get_string(k, "retry_topic", "kafka", "ds2grist.retry", &cfg->kafka.retry_topic, err,
                   errlen) ||
        get_string(k, "consumer_group", "kafka", "ds2grist-worker", &cfg->kafka.consumer_group,
                   err, errlen))
        return -1;
    if (!valid_name(cfg->kafka.topic, 249))
        return d2g_err_set(err, errlen, "kafka.topic: 1 to 249 letters, digits, '.', '_' or '-'");
    if (!valid_name(cfg->kafka.dlq_topic, 249))
        return d2g_err_set(err, errlen, "kafka.dlq_topic: 1 to 249 letters, digits, '.', '_' or '-'");
    if (!valid_name(cfg->kafka.retry_topic, 249))
        return d2g_err_set(err, errlen, "kafka.retry_topic: 1 to 249 letters, digits, '.', '_' or '-'");
    if (!valid_name(cfg->kafka.consumer_group, 255))
        return d2g_err_set(err, errlen, "kafka.consumer_group: 1 to 255 letters, digits, '.', '_' or '-'");
    if (strcmp(cfg->kafka.topic, cfg->kafka.dlq_topic) == 0)
        return d2g_err_set(err, errlen, "kafka.dlq_topic: must differ from kafka.topic");
    if (strcmp(cfg->kafka.retry_topic, cfg->kafka.topic) == 0 ||
        strcmp(cfg->kafka.retry_topic, cfg->kafka.dlq_topic) == 0)
        return d2g_err_set(err, errlen, "kafka.retry_topic: must differ from kafka.topic and "
                           "kafka.dlq_topic");
    return 0;
}

static int parse_redis(d2g_config_t *cfg, json_t *root, char *err, size_t errlen) {
    static const char *const keys[] = {"url", "namespace", "username", "password", NULL};
    json_t *r = json_object_get(root, "redis");
    if (!r)
        return d2g_err_set(err, errlen, "redis: is required");
    if (expect_object(r, "redis", err, errlen) || check_keys(r, "redis", keys, err, errlen))
        return -1;
    if (get_string(r, "url", "redis", NULL, &cfg->redis.url, err, errlen) ||
        get_string(r, "namespace", "redis", "ds2grist", &cfg->redis.namespace, err, errlen) ||
        get_secret(r, "password", "redis", 0, &cfg->redis.password, err, errlen))
        return -1;
    if (json_object_get(r, "username") &&
        get_string(r, "username", "redis", NULL, &cfg->redis.username, err, errlen))
        return -1;
    return 0;
}

/* What procedure sources added to the file (d2g_config_load_sources). */
typedef struct merged {
    json_t *value_tokens; /* token name -> source name: its secret may be {"value": ...} */
    json_t *origins;      /* per procedures[] index: null (the file) or the source's name */
} merged_t;

static int parse_ds(d2g_config_t *cfg, json_t *root, const merged_t *mg, char *err, size_t errlen) {
    static const char *const keys[] = {"endpoint", "tokens", "timeout_s", NULL};
    static const char *const tkeys[] = {"secret", "requests_per_minute", "endpoint", NULL};
    char path[PATHLEN];
    long long n = 0;
    json_t *d = json_object_get(root, "ds");
    if (!d)
        return d2g_err_set(err, errlen, "ds: is required");
    if (expect_object(d, "ds", err, errlen) || check_keys(d, "ds", keys, err, errlen))
        return -1;
    if (get_string(d, "endpoint", "ds", "https://www.demarches-simplifiees.fr/api/v2/graphql",
                   &cfg->ds.endpoint, err, errlen) ||
        get_int(d, "timeout_s", "ds", 0, 60, 1, 600, &n, err, errlen))
        return -1;
    cfg->ds.timeout_s = (int)n;

    json_t *toks = json_object_get(d, "tokens");
    if (!toks)
        return d2g_err_set(err, errlen, "ds.tokens: is required");
    if (expect_object(toks, "ds.tokens", err, errlen))
        return -1;
    cfg->ds.tokens = d2g_calloc(json_object_size(toks) + 1, sizeof(d2g_ds_token_t));
    const char *name;
    json_t *t;
    json_object_foreach(toks, name, t) {
        d2g_ds_token_t *tok = &cfg->ds.tokens[cfg->ds.n_tokens++];
        snprintf(path, sizeof(path), "ds.tokens.%s", name);
        tok->name = d2g_strdup(name);
        if (!valid_name(name, 64))
            return d2g_err_set(err, errlen, "%s: a token name is 1 to 64 letters, digits, '.', '_' "
                               "or '-'", path);
        json_t *src = mg ? json_object_get(mg->value_tokens, name) : NULL;
        if (src)
            snprintf(path, sizeof(path), "%s:ds.tokens.%s", json_string_value(src), name);
        if (expect_object(t, path, err, errlen) || check_keys(t, path, tkeys, err, errlen) ||
            get_secret_from(t, "secret", path, 1, src != NULL, &tok->secret, err, errlen) ||
            get_int(t, "requests_per_minute", path, 0, 400, 1, 1000000, &n, err, errlen))
            return -1;
        tok->requests_per_minute = (int)n;
        if (json_object_get(t, "endpoint")) {
            char what[PATHLEN + 16];
            snprintf(what, sizeof(what), "%s.endpoint", path);
            if (get_string(t, "endpoint", path, NULL, &tok->endpoint, err, errlen) ||
                check_http_url(tok->endpoint, what, "the token goes in its secret", err, errlen))
                return -1;
        } /* else ds.endpoint, once the environment had its say (validate) */
    }
    return 0;
}

static int parse_grist(d2g_config_t *cfg, json_t *root, char *err, size_t errlen) {
    static const char *const keys[] = {"servers", "timeout_s", NULL};
    static const char *const skeys[] = {"url", "api_key", "permits_per_document",
                                        "requests_per_second", "documents", NULL};
    static const char *const dkeys[] = {"permits", NULL};
    char path[PATHLEN], dpath[PATHLEN * 2];
    long long n = 0;
    json_t *g = json_object_get(root, "grist");
    if (!g)
        return d2g_err_set(err, errlen, "grist: is required");
    if (expect_object(g, "grist", err, errlen) || check_keys(g, "grist", keys, err, errlen) ||
        get_int(g, "timeout_s", "grist", 0, 60, 1, 600, &n, err, errlen))
        return -1;
    cfg->grist.timeout_s = (int)n;
    json_t *servers = json_object_get(g, "servers");
    if (!servers || !json_is_object(servers) || json_object_size(servers) == 0)
        return d2g_err_set(err, errlen, "grist.servers: must be an object naming at least one server");
    cfg->grist.servers = d2g_calloc(json_object_size(servers), sizeof(d2g_grist_server_t));

    const char *name;
    json_t *s;
    json_object_foreach(servers, name, s) {
        d2g_grist_server_t *srv = &cfg->grist.servers[cfg->grist.n_servers++];
        snprintf(path, sizeof(path), "grist.servers.%s", name);
        srv->name = d2g_strdup(name);
        if (!valid_name(name, 64))
            return d2g_err_set(err, errlen, "%s: a server name is 1 to 64 letters, digits, '.', "
                               "'_' or '-'", path);
        if (expect_object(s, path, err, errlen) || check_keys(s, path, skeys, err, errlen) ||
            get_string(s, "url", path, NULL, &srv->url, err, errlen) ||
            get_secret(s, "api_key", path, 1, &srv->api_key, err, errlen) ||
            get_int(s, "permits_per_document", path, 0, 8, 1, 1000, &n, err, errlen))
            return -1;
        srv->permits_per_document = (int)n;
        char what[PATHLEN + 8], hint[PATHLEN + 80];
        snprintf(what, sizeof(what), "%s.url", path);
        snprintf(hint, sizeof(hint), "the API key goes in %s.api_key as {\"env\": \"NAME\"} or "
                 "{\"file\": \"/path\"}", path);
        if (check_http_url(srv->url, what, hint, err, errlen))
            return -1;
        size_t ul = strlen(srv->url);
        while (ul > 0 && srv->url[ul - 1] == '/')
            srv->url[--ul] = '\0';

        json_t *rps = json_object_get(s, "requests_per_second");
        double rv = rps && json_is_number(rps) ? json_number_value(rps) : 0;
        if (rps && (!json_is_number(rps) || !isfinite(rv) || rv < 0 || (rv > 0 && rv < 0.01) ||
                    rv > 10000))
            return d2g_err_set(err, errlen, "%s.requests_per_second: must be 0 (no limit) or a "
                               "number from 0.01 to 10000", path);
        srv->requests_per_second = rps ? json_number_value(rps) : 0;

        json_t *docs = json_object_get(s, "documents");
        if (docs) {
            snprintf(dpath, sizeof(dpath), "%s.documents", path);
            if (expect_object(docs, dpath, err, errlen))
                return -1;
            srv->doc_limits = d2g_calloc(json_object_size(docs) + 1, sizeof(d2g_grist_doc_limit_t));
            const char *doc;
            json_t *dv;
            json_object_foreach(docs, doc, dv) {
                d2g_grist_doc_limit_t *dl = &srv->doc_limits[srv->n_doc_limits++];
                snprintf(dpath, sizeof(dpath), "%s.documents.%s", path, doc);
                dl->document = d2g_strdup(doc);
                if (!valid_name(doc, 200))
                    return d2g_err_set(err, errlen, "%s: a document id is 1 to 200 letters, "
                                       "digits, '.', '_' or '-'", dpath);
                if (expect_object(dv, dpath, err, errlen) ||
                    check_keys(dv, dpath, dkeys, err, errlen) ||
                    get_int(dv, "permits", dpath, 1, 0, 1, 1000, &n, err, errlen))
                    return -1;
                dl->permits = (int)n;
            }
        }
    }
    return 0;
}

static int cmp_procedure(const void *a, const void *b) {
    const d2g_procedure_t *x = a, *y = b;
    return (x->number > y->number) - (x->number < y->number);
}

/* Options that can be set per procedure and, as defaults, for all of them. */
static int parse_options(json_t *o, const char *path, int *poll_interval_s,
                         int *poll_interval_max_s, d2g_deleted_mode_t *deleted, char *err,
                         size_t errlen) {
    static const char *const okeys[] = {"poll_interval_s", "poll_interval_max_s", "deleted", NULL};
    /* defaults also holds the procedures' default mapping (d2g_config_parse_mapping) */
    static const char *const dkeys[] = {"poll_interval_s", "poll_interval_max_s", "deleted",
                                        "mapping", NULL};
    long long n = 0, mx = 0;
    if (!o)
        return 0;
    if (expect_object(o, path, err, errlen) ||
        check_keys(o, path, strcmp(path, "defaults") ? okeys : dkeys, err, errlen) ||
        get_int(o, "poll_interval_s", path, 0, *poll_interval_s, 1, 86400, &n, err, errlen) ||
        get_int(o, "poll_interval_max_s", path, 0, *poll_interval_max_s, 1, 86400, &mx, err,
                errlen))
        return -1;
    if (json_object_get(o, "poll_interval_max_s") && mx < n) /* n: given here or inherited */
        return d2g_err_set(err, errlen, "%s.poll_interval_max_s: must be at least "
                           "poll_interval_s (%lld)", path, n);
    *poll_interval_s = (int)n;
    *poll_interval_max_s = (int)mx;
    json_t *d = json_object_get(o, "deleted");
    if (d) {
        const char *s = json_string_value(d);
        if (s && strcmp(s, "mark") == 0)
            *deleted = D2G_DELETED_MARK;
        else if (s && strcmp(s, "remove") == 0)
            *deleted = D2G_DELETED_REMOVE;
        else
            return d2g_err_set(err, errlen, "%s.deleted: must be \"mark\" or \"remove\"", path);
    }
    return 0;
}

/* procedures[].mapping, defaults.mapping and a registry entry's mapping:
 * booleans, absent = inherited. */
int d2g_config_parse_mapping(json_t *o, const char *path, d2g_proc_mapping_t *m, char *err,
                             size_t errlen) {
    static const char *const keys[] = {"ref_links", "geo_areas", "avis", "messages", "attachments",
                                       NULL};
    int *dst[] = {&m->ref_links, &m->geo_areas, &m->avis, &m->messages, &m->attachments};
    if (!o)
        return 0;
    if (expect_object(o, path, err, errlen) || check_keys(o, path, keys, err, errlen))
        return -1;
    for (size_t i = 0; keys[i]; i++) {
        json_t *v = json_object_get(o, keys[i]);
        if (v && !json_is_boolean(v))
            return d2g_err_set(err, errlen, "%s.%s: must be true or false", path, keys[i]);
        if (v)
            *dst[i] = json_is_true(v);
    }
    return 0;
}

static const struct {
    const char *name;
    unsigned bit;
} state_names[] = {
    {"en_construction", D2G_STATE_EN_CONSTRUCTION}, {"en_instruction", D2G_STATE_EN_INSTRUCTION},
    {"accepte", D2G_STATE_ACCEPTE},                 {"refuse", D2G_STATE_REFUSE},
    {"sans_suite", D2G_STATE_SANS_SUITE},
};

unsigned d2g_config_state_bit(const char *name) {
    for (size_t i = 0; name && i < sizeof(state_names) / sizeof(state_names[0]); i++)
        if (!strcmp(state_names[i].name, name))
            return state_names[i].bit;
    return 0;
}

int d2g_proc_filter_empty(const d2g_proc_filter_t *f) {
    return !f->states && !f->n_groups && !f->deposited_from[0] && !f->deposited_to[0];
}

int d2g_proc_data_equal(const d2g_procedure_t *a, const d2g_procedure_t *b) {
    const d2g_proc_mapping_t *x = &a->mapping, *y = &b->mapping;
    const d2g_proc_filter_t *f = &a->filter, *g = &b->filter;
    if (x->ref_links != y->ref_links || x->geo_areas != y->geo_areas || x->avis != y->avis ||
        x->messages != y->messages || x->attachments != y->attachments || f->states != g->states || f->n_groups != g->n_groups ||
        strcmp(f->deposited_from, g->deposited_from) || strcmp(f->deposited_to, g->deposited_to))
        return 0;
    for (size_t i = 0; i < f->n_groups; i++)
        if (f->groups[i] != g->groups[i])
            return 0;
    return 1;
}

/* A calendar date "YYYY-MM-DD". */
static int valid_date(const char *s) {
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
        return 0;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && !isdigit((unsigned char)s[i]))
            return 0;
    int y = atoi(s), m = atoi(s + 5), d = atoi(s + 8);
    if (m < 1 || m > 12 || d < 1 || d > mdays[m - 1])
        return 0;
    return !(m == 2 && d == 29 && !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)));
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

void d2g_proc_filter_clear(d2g_proc_filter_t *f) {
    if (!f)
        return;
    free(f->groups);
    memset(f, 0, sizeof(*f));
}

/* procedures[].filter and a registry entry's filter: {"states": [...],
 * "instruction_groups": [...], "deposited_from": "YYYY-MM-DD",
 * "deposited_to": "YYYY-MM-DD"}. */
int d2g_config_parse_filter(json_t *o, const char *path, d2g_proc_filter_t *f, char *err,
                            size_t errlen) {
    static const char *const keys[] = {"states", "instruction_groups", "deposited_from",
                                       "deposited_to", NULL};
    if (!o)
        return 0;
    if (expect_object(o, path, err, errlen) || check_keys(o, path, keys, err, errlen))
        return -1;
    size_t i;
    json_t *v, *states = json_object_get(o, "states"), *groups = json_object_get(o, "instruction_groups");
    if (states && (!json_is_array(states) || !json_array_size(states)))
        return d2g_err_set(err, errlen, "%s.states: must be a non-empty array of DS states "
                           "(en_construction, en_instruction, accepte, refuse, sans_suite)", path);
    json_array_foreach(states, i, v) {
        unsigned bit = d2g_config_state_bit(json_string_value(v));
        if (!bit)
            return d2g_err_set(err, errlen, "%s.states[%zu]: not a DS state (en_construction, "
                               "en_instruction, accepte, refuse, sans_suite)", path, i);
        if (f->states & bit)
            return d2g_err_set(err, errlen, "%s.states[%zu]: given twice", path, i);
        f->states |= bit;
    }
    if (groups && (!json_is_array(groups) || !json_array_size(groups)))
        return d2g_err_set(err, errlen, "%s.instruction_groups: must be a non-empty array of "
                           "groupe instructeur numbers", path);
    if (groups)
        f->groups = d2g_calloc(json_array_size(groups), sizeof(int64_t));
    json_array_foreach(groups, i, v) {
        if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > INT32_MAX)
            return d2g_err_set(err, errlen, "%s.instruction_groups[%zu]: must be an integer from 1 "
                               "to 2147483647", path, i);
        for (size_t k = 0; k < f->n_groups; k++)
            if (f->groups[k] == json_integer_value(v))
                return d2g_err_set(err, errlen, "%s.instruction_groups[%zu]: given twice", path, i);
        f->groups[f->n_groups++] = json_integer_value(v);
    }
    if (f->n_groups)
        qsort(f->groups, f->n_groups, sizeof(int64_t), cmp_i64);
    const char *dk[] = {"deposited_from", "deposited_to"};
    char *dd[] = {f->deposited_from, f->deposited_to};
    for (int k = 0; k < 2; k++) {
        v = json_object_get(o, dk[k]);
        if (!v)
            continue;
        if (!json_is_string(v) || !valid_date(json_string_value(v)))
            return d2g_err_set(err, errlen, "%s.%s: must be a date \"YYYY-MM-DD\"", path, dk[k]);
        memcpy(dd[k], json_string_value(v), 11);
    }
    if (f->deposited_from[0] && f->deposited_to[0] && strcmp(f->deposited_from, f->deposited_to) > 0)
        return d2g_err_set(err, errlen, "%s.deposited_to: must not be before deposited_from (%s)",
                           path, f->deposited_from);
    return 0;
}

int d2g_config_check_proc_data(json_t *mapping, json_t *filter, char *err, size_t errlen) {
    d2g_proc_mapping_t m = {0};
    d2g_proc_filter_t f = {0};
    int rc = d2g_config_parse_mapping(mapping, "mapping", &m, err, errlen) ||
             d2g_config_parse_filter(filter, "filter", &f, err, errlen);
    d2g_proc_filter_clear(&f);
    return rc ? -1 : 0;
}

static int parse_procedures(d2g_config_t *cfg, json_t *root, const merged_t *mg, char *err,
                            size_t errlen) {
    static const char *const pkeys[] = {"number", "ds_token", "grist_server", "document",
                                        "table_prefix", "options", "mapping", "filter", NULL};
    char path[PATHLEN], opath[PATHLEN + 16];
    int def_poll = 60, def_poll_max = 0; /* max 0: 5 x the procedure's poll_interval_s */
    d2g_deleted_mode_t def_deleted = D2G_DELETED_MARK;
    d2g_proc_mapping_t def_mapping = {0};
    long long n = 0;

    if (parse_options(json_object_get(root, "defaults"), "defaults", &def_poll, &def_poll_max,
                      &def_deleted, err, errlen) ||
        d2g_config_parse_mapping(json_object_get(json_object_get(root, "defaults"), "mapping"),
                                 "defaults.mapping", &def_mapping, err, errlen))
        return -1;
    json_t *procs = json_object_get(root, "procedures");
    if (!procs)
        return d2g_err_set(err, errlen, "procedures: is required");
    if (!json_is_array(procs))
        return d2g_err_set(err, errlen, "procedures: must be an array");
    cfg->procedures = d2g_calloc(json_array_size(procs) + 1, sizeof(d2g_procedure_t));

    size_t i;
    json_t *p;
    json_array_foreach(procs, i, p) {
        d2g_procedure_t *proc = &cfg->procedures[cfg->n_procedures++];
        char *tok = NULL, *srv = NULL;
        const char *origin = mg ? json_string_value(json_array_get(mg->origins, i)) : NULL;
        if (origin) { /* a source's entry: named by its source and number */
            proc->source = d2g_strdup(origin);
            snprintf(path, sizeof(path), "%s:procedures[number=%" JSON_INTEGER_FORMAT "]", origin,
                     json_integer_value(json_object_get(p, "number")));
        } else {
            snprintf(path, sizeof(path), "procedures[%zu]", i);
        }
        if (expect_object(p, path, err, errlen) || check_keys(p, path, pkeys, err, errlen) ||
            get_int(p, "number", path, 1, 0, 1, INT32_MAX, &n, err, errlen))
            return -1;
        proc->number = n;
        int rc = get_string(p, "ds_token", path, NULL, &tok, err, errlen) ||
                 get_string(p, "grist_server", path, NULL, &srv, err, errlen);
        if (!rc) {
            proc->ds_token = d2g_config_find_token(cfg, tok);
            proc->grist_server = d2g_config_find_server(cfg, srv);
            if (!proc->ds_token)
                rc = d2g_err_set(err, errlen, "%s.ds_token: unknown token \"%s\" (not in ds.tokens)",
                                 path, tok);
            else if (!proc->grist_server)
                rc = d2g_err_set(err, errlen, "%s.grist_server: unknown server \"%s\" "
                                 "(not in grist.servers)", path, srv);
        }
        free(tok);
        free(srv);
        if (rc || get_string(p, "document", path, NULL, &proc->document, err, errlen))
            return -1;
        if (!valid_name(proc->document, 200))
            return d2g_err_set(err, errlen, "%s.document: a Grist document id is 1 to 200 letters, "
                               "digits, '.', '_' or '-'", path);
        if (json_object_get(p, "table_prefix")) {
            if (get_string(p, "table_prefix", path, NULL, &proc->table_prefix, err, errlen))
                return -1;
        } else {
            char def[32];
            snprintf(def, sizeof(def), "D%lld", (long long)proc->number);
            proc->table_prefix = d2g_strdup(def);
        }
        if (!valid_table_id(proc->table_prefix) || strlen(proc->table_prefix) > D2G_TABLE_PREFIX_MAX)
            return d2g_err_set(err, errlen, "%s.table_prefix: must start with an upper-case "
                               "letter, hold only letters, digits and underscores, and have at "
                               "most %d characters (child tables add their own suffix)", path,
                               D2G_TABLE_PREFIX_MAX);
        proc->poll_interval_s = def_poll;
        proc->poll_interval_max_s = def_poll_max;
        proc->deleted_mode = def_deleted;
        snprintf(opath, sizeof(opath), "%s.options", path);
        if (parse_options(json_object_get(p, "options"), opath, &proc->poll_interval_s,
                          &proc->poll_interval_max_s, &proc->deleted_mode, err, errlen))
            return -1;
        proc->mapping = def_mapping;
        snprintf(opath, sizeof(opath), "%s.mapping", path);
        if (d2g_config_parse_mapping(json_object_get(p, "mapping"), opath, &proc->mapping, err,
                                     errlen))
            return -1;
        snprintf(opath, sizeof(opath), "%s.filter", path);
        if (d2g_config_parse_filter(json_object_get(p, "filter"), opath, &proc->filter, err,
                                    errlen))
            return -1;
        if (proc->poll_interval_max_s == 0)
            proc->poll_interval_max_s = proc->poll_interval_s <= 86400 / 5 ? 5 * proc->poll_interval_s : 86400;
        if (proc->poll_interval_max_s < proc->poll_interval_s) /* a longer minimum wins */
            proc->poll_interval_max_s = proc->poll_interval_s;
    }

    qsort(cfg->procedures, cfg->n_procedures, sizeof(d2g_procedure_t), cmp_procedure);
    for (i = 1; i < cfg->n_procedures; i++)
        if (cfg->procedures[i].number == cfg->procedures[i - 1].number)
            return d2g_err_set(err, errlen, "procedures: procedure %lld is configured twice",
                               (long long)cfg->procedures[i].number);
    return 0;
}

/* Where each overridable value came from: its JSON key, or the environment
 * variable that replaced it (errors name what the operator actually wrote). */
typedef struct sources {
    const char *redis_url, *redis_namespace, *ds_endpoint, *log_level, *bootstrap;
} sources_t;

/* Environment overrides of connection settings, each replacing one value. */
static int apply_env(d2g_config_t *cfg, sources_t *src, char *err, size_t errlen) {
    static const char *const vars[] = {"DS2GRIST_REDIS_URL", "DS2GRIST_REDIS_NAMESPACE",
                                       "DS2GRIST_DS_ENDPOINT", "DS2GRIST_LOG_LEVEL",
                                       "DS2GRIST_HTTP_PORT", "DS2GRIST_KAFKA_BOOTSTRAP_SERVERS", NULL};
    const char *v;
    /* Values that are printed and logged: UTF-8 text without control characters. */
    for (int i = 0; vars[i]; i++)
        if ((v = getenv(vars[i])) && *v) {
            if (!d2g_text_valid_utf8(v, strlen(v)))
                return d2g_err_set(err, errlen, "%s: must be valid UTF-8", vars[i]);
            for (const char *c = v; *c; c++)
                if ((unsigned char)*c < 0x20 || *c == 0x7f)
                    return d2g_err_set(err, errlen, "%s: must not contain control characters",
                                       vars[i]);
        }
    if ((v = getenv("DS2GRIST_REDIS_URL")) && *v) {
        free(cfg->redis.url);
        cfg->redis.url = d2g_strdup(v);
        src->redis_url = "DS2GRIST_REDIS_URL";
    }
    if ((v = getenv("DS2GRIST_REDIS_NAMESPACE")) && *v) {
        free(cfg->redis.namespace);
        cfg->redis.namespace = d2g_strdup(v);
        src->redis_namespace = "DS2GRIST_REDIS_NAMESPACE";
    }
    if ((v = getenv("DS2GRIST_DS_ENDPOINT")) && *v) {
        free(cfg->ds.endpoint);
        cfg->ds.endpoint = d2g_strdup(v);
        src->ds_endpoint = "DS2GRIST_DS_ENDPOINT";
    }
    if ((v = getenv("DS2GRIST_LOG_LEVEL")) && *v) {
        free(cfg->log_level);
        cfg->log_level = d2g_strdup(v);
        src->log_level = "DS2GRIST_LOG_LEVEL";
    }
    if ((v = getenv("DS2GRIST_HTTP_PORT")) && *v) {
        char *end;
        long port = strtol(v, &end, 10);
        if (*end || port < 0 || port > 65535)
            return d2g_err_set(err, errlen, "DS2GRIST_HTTP_PORT: must be a port number (0-65535)");
        cfg->http.port = (int)port;
    }
    if ((v = getenv("DS2GRIST_KAFKA_BOOTSTRAP_SERVERS")) && *v) {
        d2g_kv_t *kv = NULL;
        for (size_t i = 0; i < cfg->kafka.n_properties; i++)
            if (strcmp(cfg->kafka.properties[i].key, "bootstrap.servers") == 0)
                kv = &cfg->kafka.properties[i];
        if (!kv) {
            /* parse_kafka allocated one spare slot for exactly this. */
            kv = &cfg->kafka.properties[cfg->kafka.n_properties++];
            kv->key = d2g_strdup("bootstrap.servers");
        }
        free(kv->value);
        kv->value = d2g_strdup(v);
        src->bootstrap = "DS2GRIST_KAFKA_BOOTSTRAP_SERVERS";
    }
    return 0;
}

static int validate(d2g_config_t *cfg, const sources_t *src, char *err, size_t errlen) {
    const char *bootstrap = NULL;
    for (size_t i = 0; i < cfg->kafka.n_properties; i++)
        if (strcmp(cfg->kafka.properties[i].key, "bootstrap.servers") == 0)
            bootstrap = cfg->kafka.properties[i].value;
    if (!bootstrap)
        return d2g_err_set(err, errlen, "kafka.properties.bootstrap.servers: is required "
                           "(or set DS2GRIST_KAFKA_BOOTSTRAP_SERVERS)");
    /* host:port[,host:port...]; librdkafka also accepts a scheme prefix */
    for (const char *b = bootstrap; *b;) {
        size_t n = strcspn(b, ",");
        const char *h = b, *scheme = NULL;
        for (const char *c = b; c + 3 <= b + n; c++)
            if (!strncmp(c, "://", 3)) {
                scheme = c + 3;
                break;
            }
        if (scheme)
            h = scheme;
        size_t hl = n - (size_t)(h - b);
        if (memchr(h, '@', hl))
            return d2g_err_set(err, errlen, "%s: must not hold credentials; put them in "
                               "kafka.secret_properties (sasl.password as {\"env\": \"NAME\"})",
                               src->bootstrap);
        if (hl == 0 || !valid_host_port(h, hl))
            return d2g_err_set(err, errlen, "%s: must be host:port[,host:port...]", src->bootstrap);
        b += n;
        if (*b == ',')
            b++;
    }
    if (check_redis_url(cfg->redis.url, src->redis_url, err, errlen))
        return -1;
    if (!valid_name(cfg->redis.namespace, 64))
        return d2g_err_set(err, errlen, "%s: 1 to 64 letters, digits, '.', '_' or '-' (it "
                           "prefixes every Redis key)", src->redis_namespace);
    if (check_http_url(cfg->ds.endpoint, src->ds_endpoint,
                       "DS tokens go in ds.tokens.<name>.secret as {\"env\": \"NAME\"} or "
                       "{\"file\": \"/path\"}", err, errlen))
        return -1;
    if (d2g_log_level_parse(cfg->log_level) < 0)
        return d2g_err_set(err, errlen, "%s: must be debug, info, warn or error", src->log_level);
    for (size_t i = 0; i < cfg->ds.n_tokens; i++)
        if (!cfg->ds.tokens[i].endpoint)
            cfg->ds.tokens[i].endpoint = d2g_strdup(cfg->ds.endpoint);
    return 0;
}

static int parse_producer(d2g_config_t *cfg, json_t *root, char *err, size_t errlen) {
    static const char *const keys[] = {"concurrency", "lease_s", "labels_interval_s", "page_size",
                                       "page_size_min", "shutdown_grace_s", "deleted_lookback_s",
                                       "check_batch_size", "removed_cursor_ttl_s", NULL};
    json_t *p = json_object_get(root, "producer");
    json_t *empty = json_object();
    int rc = -1;
    /* Every number of the section: key, default, allowed range. */
    const int_setting_t table[] = {
        {"concurrency", &cfg->producer.concurrency, 4, 1, 256},
        {"lease_s", &cfg->producer.lease_s, 120, 5, 3600},
        {"labels_interval_s", &cfg->producer.labels_interval_s, 900, 0, 604800},
        {"page_size", &cfg->producer.page_size, 100, 1, 100},
        {"page_size_min", &cfg->producer.page_size_min, 5, 1, 100},
        {"shutdown_grace_s", &cfg->producer.shutdown_grace_s, 25, 1, 3600},
        {"deleted_lookback_s", &cfg->producer.deleted_lookback_s, 2592000, 0, 31622400},
        {"check_batch_size", &cfg->producer.check_batch_size, 50, 1, 500},
        {"removed_cursor_ttl_s", &cfg->producer.removed_cursor_ttl_s, 2592000, 0, 31622400},
        {NULL, NULL, 0, 0, 0},
    };
    if (p && (expect_object(p, "producer", err, errlen) ||
              check_keys(p, "producer", keys, err, errlen)))
        goto out;
    if (!p)
        p = empty;
    if (get_ints(p, "producer", table, err, errlen))
        goto out;
    if (cfg->producer.page_size_min > cfg->producer.page_size) {
        d2g_err_set(err, errlen, "producer.page_size_min: must not exceed producer.page_size (%d)",
                    cfg->producer.page_size);
        goto out;
    }
    if (cfg->producer.lease_s <= cfg->ds.timeout_s) {
        d2g_err_set(err, errlen, "producer.lease_s: must exceed ds.timeout_s (%d), or a slow "
                    "request could outlive its lease", cfg->ds.timeout_s);
        goto out;
    }
    rc = 0;
out:
    json_decref(empty);
    return rc;
}

static int parse_worker(d2g_config_t *cfg, json_t *root, char *err, size_t errlen) {
    static const char *const keys[] = {"linger_ms", "batch_bytes", "max_buffered",
                                       "max_buffered_total", "max_buffered_bytes", "ds_base_url",
                                       "shutdown_grace_s",
                                       "revoke_deadline_s", "retry_delay_s", "retry_max_delay_s",
                                       "status_interval_s", /* the sync-status table */
                                       "attachment_max_bytes", "attachment_budget_bytes",
                                       "attachment_downloads", NULL};
    json_t *w = json_object_get(root, "worker");
    json_t *empty = json_object();
    int rc = -1;
    /* Grist refuses bodies over 1 MiB: a batch stays under it with room for the envelope. */
    const int_setting_t table[] = {
        {"linger_ms", &cfg->worker.linger_ms, 250, 0, 60000},
        {"batch_bytes", &cfg->worker.batch_bytes, 900000, 1000, 1000000},
        {"max_buffered", &cfg->worker.max_buffered, 1000, 10, 1000000},
        {"max_buffered_total", &cfg->worker.max_buffered_total, 2000, 10, 10000000},
        {"max_buffered_bytes", &cfg->worker.max_buffered_bytes, 16777216, 1048576, 2147483647},
        {"shutdown_grace_s", &cfg->worker.shutdown_grace_s, 25, 1, 3600},
        {"revoke_deadline_s", &cfg->worker.revoke_deadline_s, 20, 1, 3600},
        {"retry_delay_s", &cfg->worker.retry_delay_s, 5, 1, 86400},
        {"retry_max_delay_s", &cfg->worker.retry_max_delay_s, 300, 1, 86400},
        /* The sync-status table (worker/syncstat.h). */
        {"status_interval_s", &cfg->worker.status_interval_s, 30, 0, 3600},
        {"attachment_max_bytes", &cfg->worker.attachment_max_bytes, 20971520, 1, 2147483647},
        {"attachment_budget_bytes", &cfg->worker.attachment_budget_bytes, 1073741824, 0, 2147483647},
        {"attachment_downloads", &cfg->worker.attachment_downloads, 4, 1, 64},
        {NULL, NULL, 0, 0, 0},
    };
    if (w && (expect_object(w, "worker", err, errlen) || check_keys(w, "worker", keys, err, errlen)))
        goto out;
    if (!w)
        w = empty;
    if (get_ints(w, "worker", table, err, errlen) ||
        get_string(w, "ds_base_url", "worker", "https://www.demarches-simplifiees.fr",
                   &cfg->worker.ds_base_url, err, errlen) ||
        check_http_url(cfg->worker.ds_base_url, "worker.ds_base_url",
                       "it is only the site dossiers link to", err, errlen))
        goto out;
    if (cfg->worker.retry_max_delay_s < cfg->worker.retry_delay_s)
        cfg->worker.retry_max_delay_s = cfg->worker.retry_delay_s;
    rc = 0;
out:
    json_decref(empty);
    return rc;
}

/* cfg->secrets: a pointer to each secret value (the values stay where they are). */
static void collect_secrets(d2g_config_t *cfg) {
    size_t n = 2 + cfg->ds.n_tokens + cfg->grist.n_servers + cfg->kafka.n_properties;
    cfg->secrets = d2g_calloc(n, sizeof(char *));
    if (cfg->redis.password)
        cfg->secrets[cfg->n_secrets++] = cfg->redis.password;
    if (cfg->registry.encryption_key)
        cfg->secrets[cfg->n_secrets++] = cfg->registry.encryption_key;
    for (size_t i = 0; i < cfg->ds.n_tokens; i++)
        if (cfg->ds.tokens[i].secret)
            cfg->secrets[cfg->n_secrets++] = cfg->ds.tokens[i].secret;
    for (size_t i = 0; i < cfg->grist.n_servers; i++)
        if (cfg->grist.servers[i].api_key)
            cfg->secrets[cfg->n_secrets++] = cfg->grist.servers[i].api_key;
    for (size_t i = 0; i < cfg->kafka.n_properties; i++)
        if (cfg->kafka.properties[i].secret && cfg->kafka.properties[i].value)
            cfg->secrets[cfg->n_secrets++] = cfg->kafka.properties[i].value;
}

const char *const *d2g_config_secrets(const d2g_config_t *cfg, size_t *n) {
    *n = cfg->n_secrets;
    return (const char *const *)cfg->secrets;
}

/* registry and onboarding (docs/configuration.md, "Registry and onboarding"). */
static int parse_registry(d2g_config_t *cfg, json_t *root, char *err, size_t errlen) {
    static const char *const rkeys[] = {"encryption_key", "topic", NULL};
    static const char *const okeys[] = {"listen", "self_service", "static_dir", "grist_servers",
                                        "platform_account",
                                        "per_document_per_minute", "per_address_per_minute",
                                        "trust_forwarded_for", NULL};
    long long n = 0;
    json_t *reg = json_object_get(root, "registry");
    json_t *empty = json_object();
    int rc = -1;
    if (!reg)
        reg = empty;
    if (expect_object(reg, "registry", err, errlen) ||
        check_keys(reg, "registry", rkeys, err, errlen) ||
        get_secret(reg, "encryption_key", "registry", 0, &cfg->registry.encryption_key, err,
                   errlen) ||
        get_string(reg, "topic", "registry", "ds2grist.registry", &cfg->registry.topic, err,
                   errlen))
        goto out;
    if (cfg->registry.encryption_key) {
        const char *k = cfg->registry.encryption_key;
        size_t kl = strlen(k);
        int hex = kl == 64;
        for (size_t i = 0; hex && i < kl; i++)
            hex = isxdigit((unsigned char)k[i]) != 0;
        if (!hex) { /* never say what it holds */
            d2g_err_set(err, errlen, "registry.encryption_key: must be 64 hexadecimal digits "
                        "(32 bytes: openssl rand -hex 32)");
            goto out;
        }
    }
    if (!valid_name(cfg->registry.topic, 249) || !strcmp(cfg->registry.topic, cfg->kafka.topic) ||
        !strcmp(cfg->registry.topic, cfg->kafka.dlq_topic) ||
        !strcmp(cfg->registry.topic, cfg->kafka.retry_topic)) {
        d2g_err_set(err, errlen, "registry.topic: 1 to 249 of A-Za-z0-9._-, different from the "
                    "kafka topics");
        goto out;
    }

    json_t *o = json_object_get(root, "onboarding");
    if (!o)
        o = empty;
    if (expect_object(o, "onboarding", err, errlen) ||
        check_keys(o, "onboarding", okeys, err, errlen))
        goto out;
    json_t *v = json_object_get(o, "listen");
    if (v) {
        const char *l = json_is_string(v) ? json_string_value(v) : "";
        const char *colon = strrchr(l, ':');
        /* ":0" (any free port, tests) is allowed here: check the rest with port 1. */
        char probe[300];
        snprintf(probe, sizeof(probe), "%.*s:1", colon ? (int)(colon - l) : 0, l);
        if (!colon || strlen(l) > 280 ||
            !valid_host_port(!strcmp(colon, ":0") ? probe : l,
                             strlen(!strcmp(colon, ":0") ? probe : l))) {
            d2g_err_set(err, errlen, "onboarding.listen: must be host:port (\"0.0.0.0:8090\", "
                        "\"[::]:8090\")");
            goto out;
        }
        cfg->onboarding.listen = d2g_strdup(l);
        if (!cfg->registry.encryption_key) {
            d2g_err_set(err, errlen, "onboarding.listen: needs registry.encryption_key (the DS "
                        "tokens agents give are stored encrypted)");
            goto out;
        }
    }
    const char *bools[] = {"self_service", "trust_forwarded_for"};
    int *bdst[] = {&cfg->onboarding.self_service, &cfg->onboarding.trust_forwarded_for};
    int bdef[] = {1, 0};
    for (int i = 0; i < 2; i++) {
        v = json_object_get(o, bools[i]);
        if (v && !json_is_boolean(v)) {
            d2g_err_set(err, errlen, "onboarding.%s: must be true or false", bools[i]);
            goto out;
        }
        *bdst[i] = v ? json_is_true(v) : bdef[i];
    }
    if (get_string(o, "static_dir", "onboarding", D2G_WIDGET_DIR, &cfg->onboarding.static_dir,
                   err, errlen))
        goto out;
    v = json_object_get(o, "platform_account");
    if (v && get_string(o, "platform_account", "onboarding", NULL,
                        &cfg->onboarding.platform_account, err, errlen))
        goto out;
    if (get_int(o, "per_document_per_minute", "onboarding", 0, 20, 1, 100000, &n, err, errlen))
        goto out;
    cfg->onboarding.per_document_per_minute = (int)n;
    if (get_int(o, "per_address_per_minute", "onboarding", 0, 60, 1, 100000, &n, err, errlen))
        goto out;
    cfg->onboarding.per_address_per_minute = (int)n;
    v = json_object_get(o, "grist_servers");
    if (v) {
        if (!json_is_array(v)) {
            d2g_err_set(err, errlen, "onboarding.grist_servers: must be an array of names of "
                        "grist.servers");
            goto out;
        }
        cfg->onboarding.grist_servers = d2g_calloc(json_array_size(v) + 1, sizeof(char *));
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e) {
            if (!json_is_string(e) || !d2g_config_find_server(cfg, json_string_value(e))) {
                d2g_err_set(err, errlen, "onboarding.grist_servers[%zu]: not a server of "
                            "grist.servers", i);
                goto out;
            }
            cfg->onboarding.grist_servers[cfg->onboarding.n_grist_servers++] =
                d2g_strdup(json_string_value(e));
        }
    }
    rc = 0;
out:
    json_decref(empty);
    return rc;
}

static int load_root(json_t *root, const merged_t *mg, d2g_config_t **out, char *err,
                     size_t errlen) {
    static const char *const keys[] = {"kafka", "redis", "ds", "grist", "defaults", "procedures",
                                       "producer", "worker", "log_level", "http", "registry",
                                       "onboarding", NULL};
    static const char *const hkeys[] = {"port", NULL};
    long long n = 0;
    d2g_config_t *cfg = d2g_calloc(1, sizeof(*cfg));
    int rc = -1;
    atomic_init(&cfg->refs, 1);
    if (expect_object(root, "(top level)", err, errlen) || check_keys(root, "", keys, err, errlen))
        goto out;
    if (parse_kafka(cfg, root, err, errlen) || parse_redis(cfg, root, err, errlen) ||
        parse_ds(cfg, root, mg, err, errlen) || parse_grist(cfg, root, err, errlen) ||
        parse_procedures(cfg, root, mg, err, errlen) || parse_producer(cfg, root, err, errlen) ||
        parse_worker(cfg, root, err, errlen) || parse_registry(cfg, root, err, errlen) ||
        get_string(root, "log_level", "(top level)", "info", &cfg->log_level, err, errlen))
        goto out;
    json_t *http = json_object_get(root, "http");
    if (http) {
        if (expect_object(http, "http", err, errlen) ||
            check_keys(http, "http", hkeys, err, errlen) ||
            get_int(http, "port", "http", 0, 0, 0, 65535, &n, err, errlen))
            goto out;
        cfg->http.port = (int)n;
    }
    sources_t src = {"redis.url", "redis.namespace", "ds.endpoint", "log_level",
                     "kafka.properties.bootstrap.servers"};
    if (apply_env(cfg, &src, err, errlen) || validate(cfg, &src, err, errlen))
        goto out;
    collect_secrets(cfg);
    rc = 0;
out:
    if (rc) {
        d2g_config_free(cfg);
        cfg = NULL;
    }
    *out = cfg;
    return rc;
}

/*
 * One source's overlay merged into root (a copy of the file): its tokens
 * whose names the file does not use, its procedures whose numbers the file
 * does not configure (the file wins; *skipped counts the others).
 */
static int merge_overlay(json_t *root, json_t *overlay, const char *name, merged_t *mg,
                         size_t *skipped, char *err, size_t errlen) {
    static const char *const okeys[] = {"ds", "procedures", NULL};
    static const char *const dkeys[] = {"tokens", NULL};
    char path[PATHLEN];
    snprintf(path, sizeof(path), "%s:(top level)", name);
    if (expect_object(overlay, path, err, errlen) || check_keys(overlay, name, okeys, err, errlen))
        return -1;
    json_t *ds = json_object_get(overlay, "ds");
    json_t *toks = ds ? json_object_get(ds, "tokens") : NULL;
    snprintf(path, sizeof(path), "%s:ds", name);
    if (ds && (expect_object(ds, path, err, errlen) || check_keys(ds, path, dkeys, err, errlen)))
        return -1;
    snprintf(path, sizeof(path), "%s:ds.tokens", name);
    if (toks && expect_object(toks, path, err, errlen))
        return -1;
    json_t *ftoks = json_object_get(json_object_get(root, "ds"), "tokens");
    const char *tname;
    json_t *t;
    if (toks && json_is_object(ftoks))
        json_object_foreach(toks, tname, t) {
            if (json_object_get(ftoks, tname))
                continue; /* the file's token of that name wins */
            json_object_set(ftoks, tname, t);
            json_object_set_new(mg->value_tokens, tname, json_string(name));
        }
    json_t *procs = json_object_get(overlay, "procedures");
    json_t *fprocs = json_object_get(root, "procedures");
    if (!procs)
        return 0;
    snprintf(path, sizeof(path), "%s:procedures", name);
    if (!json_is_array(procs))
        return d2g_err_set(err, errlen, "%s: must be an array", path);
    if (!json_is_array(fprocs))
        return 0; /* the file's own error comes first */
    /* The numbers configured so far (the file's, and earlier sources'). */
    json_t *seen = json_object();
    size_t i;
    json_t *p;
    char num[32];
    json_array_foreach(fprocs, i, p) {
        snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT,
                 json_integer_value(json_object_get(p, "number")));
        json_object_set_new(seen, num, json_true());
    }
    json_array_foreach(procs, i, p) {
        json_t *nv = json_object_get(p, "number");
        if (!json_is_integer(nv)) {
            json_decref(seen);
            return d2g_err_set(err, errlen, "%s[%zu].number: must be an integer from 1 to %d",
                               path, i, INT32_MAX);
        }
        snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(nv));
        if (json_object_get(seen, num)) {
            (*skipped)++;
            continue;
        }
        json_object_set_new(seen, num, json_true());
        while (json_array_size(mg->origins) < json_array_size(fprocs))
            json_array_append_new(mg->origins, json_null());
        json_array_append(fprocs, p);
        json_array_append_new(mg->origins, json_string(name));
    }
    json_decref(seen);
    return 0;
}

/* The file's root with every source merged in, then loaded. */
static int load_merged(json_t *root, const d2g_config_source_t *sources, size_t n_sources,
                       d2g_config_t **out, char *err, size_t errlen) {
    if (n_sources == 0)
        return load_root(root, NULL, out, err, errlen);
    json_t *copy = json_deep_copy(root);
    merged_t mg = {json_object(), json_array()};
    size_t skipped = 0;
    int rc = 0;
    for (size_t i = 0; i < n_sources && !rc; i++) {
        json_t *overlay = NULL;
        char cause[D2G_ERRLEN] = "";
        if (sources[i].fn(sources[i].ud, &overlay, cause, sizeof(cause))) {
            rc = d2g_err_set(err, errlen, "%s: %s", sources[i].name,
                             cause[0] ? cause : "the source cannot answer");
        } else if (overlay) {
            rc = merge_overlay(copy, overlay, sources[i].name, &mg, &skipped, err, errlen);
        }
        json_decref(overlay);
    }
    if (!rc)
        rc = load_root(copy, &mg, out, err, errlen);
    if (!rc)
        (*out)->n_shadowed = skipped;
    json_decref(mg.value_tokens);
    json_decref(mg.origins);
    json_decref(copy);
    return rc;
}

int d2g_config_load_string(const char *text, d2g_config_t **out, char *err, size_t errlen) {
    json_error_t jerr;
    json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    *out = NULL;
    if (!root)
        return d2g_err_set(err, errlen, "invalid JSON at line %d, column %d: %s", jerr.line,
                           jerr.column, jerr.text);
    int rc = load_root(root, NULL, out, err, errlen);
    json_decref(root);
    return rc;
}

int d2g_config_load_sources(const char *path, const d2g_config_source_t *sources,
                            size_t n_sources, d2g_config_t **out, char *err, size_t errlen) {
    json_error_t jerr;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    *out = NULL;
    if (!root) {
        if (jerr.line < 0 || jerr.line == 0)
            return d2g_err_set(err, errlen, "%s: %s", path, jerr.text);
        return d2g_err_set(err, errlen, "%s: invalid JSON at line %d, column %d: %s", path,
                           jerr.line, jerr.column, jerr.text);
    }
    char cause[D2G_ERRLEN];
    int rc = load_merged(root, sources, n_sources, out, cause, sizeof(cause));
    json_decref(root);
    if (rc)
        return d2g_err_set(err, errlen, "%s: %s", path, cause);
    return 0;
}

int d2g_config_load(const char *path, d2g_config_t **out, char *err, size_t errlen) {
    return d2g_config_load_sources(path, NULL, 0, out, err, errlen);
}

d2g_config_t *d2g_config_ref(const d2g_config_t *cfg) {
    d2g_config_t *c = (d2g_config_t *)cfg; /* the count is the only mutable part */
    if (c)
        atomic_fetch_add(&c->refs, 1);
    return c;
}

void d2g_config_free(d2g_config_t *cfg) {
    if (!cfg || atomic_fetch_sub(&cfg->refs, 1) > 1)
        return;
    for (size_t i = 0; i < cfg->kafka.n_properties; i++) {
        free(cfg->kafka.properties[i].key);
        if (cfg->kafka.properties[i].secret)
            d2g_secret_free(cfg->kafka.properties[i].value);
        else
            free(cfg->kafka.properties[i].value);
    }
    d2g_log_forget_secrets((const char *const *)cfg->secrets);
    free(cfg->secrets);
    free(cfg->kafka.properties);
    free(cfg->kafka.topic);
    free(cfg->kafka.dlq_topic);
    free(cfg->kafka.retry_topic);
    free(cfg->kafka.consumer_group);
    free(cfg->redis.url);
    free(cfg->redis.namespace);
    free(cfg->redis.username);
    d2g_secret_free(cfg->redis.password);
    free(cfg->ds.endpoint);
    for (size_t i = 0; i < cfg->ds.n_tokens; i++) {
        free(cfg->ds.tokens[i].name);
        free(cfg->ds.tokens[i].endpoint);
        d2g_secret_free(cfg->ds.tokens[i].secret);
    }
    free(cfg->ds.tokens);
    for (size_t i = 0; i < cfg->grist.n_servers; i++) {
        d2g_grist_server_t *s = &cfg->grist.servers[i];
        free(s->name);
        free(s->url);
        d2g_secret_free(s->api_key);
        for (size_t j = 0; j < s->n_doc_limits; j++)
            free(s->doc_limits[j].document);
        free(s->doc_limits);
    }
    free(cfg->grist.servers);
    for (size_t i = 0; i < cfg->n_procedures; i++) {
        free(cfg->procedures[i].document);
        free(cfg->procedures[i].table_prefix);
        free(cfg->procedures[i].source);
        d2g_proc_filter_clear(&cfg->procedures[i].filter);
    }
    free(cfg->procedures);
    free(cfg->worker.ds_base_url);
    free(cfg->log_level);
    d2g_secret_free(cfg->registry.encryption_key);
    free(cfg->registry.topic);
    free(cfg->onboarding.listen);
    free(cfg->onboarding.static_dir);
    for (size_t i = 0; i < cfg->onboarding.n_grist_servers; i++)
        free(cfg->onboarding.grist_servers[i]);
    free(cfg->onboarding.grist_servers);
    free(cfg->onboarding.platform_account);
    free(cfg);
}

const d2g_procedure_t *d2g_config_find_procedure(const d2g_config_t *cfg, int64_t number) {
    d2g_procedure_t key = {.number = number};
    return bsearch(&key, cfg->procedures, cfg->n_procedures, sizeof(d2g_procedure_t),
                   cmp_procedure);
}

const d2g_ds_token_t *d2g_config_find_token(const d2g_config_t *cfg, const char *name) {
    for (size_t i = 0; i < cfg->ds.n_tokens; i++)
        if (strcmp(cfg->ds.tokens[i].name, name) == 0)
            return &cfg->ds.tokens[i];
    return NULL;
}

const d2g_grist_server_t *d2g_config_find_server(const d2g_config_t *cfg, const char *name) {
    for (size_t i = 0; i < cfg->grist.n_servers; i++)
        if (strcmp(cfg->grist.servers[i].name, name) == 0)
            return &cfg->grist.servers[i];
    return NULL;
}

int d2g_config_doc_permits(const d2g_grist_server_t *srv, const char *document) {
    for (size_t i = 0; i < srv->n_doc_limits; i++)
        if (strcmp(srv->doc_limits[i].document, document) == 0)
            return srv->doc_limits[i].permits;
    return srv->permits_per_document;
}

