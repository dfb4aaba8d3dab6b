/*
 * onboarding.c - the onboarding API and the widget's files over
 * libmicrohttpd, see onboarding.h and docs/onboarding-api.md.
 *
 * One request: its body (at most 16 KiB) is gathered, then it is answered in
 * one go: routing, the address's rate budget, the Grist access token checked
 * with Grist, the document's rate budget for actions, then the action. The
 * Redis connection shared by the request threads has its own mutex; the
 * registry has its own.
 */
#include "onboarding.h"
#include "checks.h"

#include "colid.h"
#include "ds2grist/alloc.h"
#include "ds2grist/clock.h"
#include "ds2grist/cursor.h"
#include "ds2grist/err.h"
#include "ds2grist/keys.h"
#include "ds2grist/log.h"
#include "ds2grist/ratelimit.h"
#include "ds2grist/redis.h"
#include "ds2grist/registry.h"
#include "ds2grist/sealbox.h"
#include "ds2grist/secret.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define BODY_MAX (16 * 1024)
#define STATIC_MAX (4 * 1024 * 1024)
#define CHECK_TIMEOUT_S 15
#define JSON_TYPE "application/json; charset=utf-8"

struct d2g_onboarding {
    const d2g_config_t *cfg;
    struct MHD_Daemon *daemon;
    int port;
    d2g_registry_t *registry;
    d2g_sealbox_t *sealbox;
    pthread_mutex_t redis_lock;
    d2g_redis_t *redis; /* rate budgets, status reads, cursor resets */
    _Atomic long counter;
    char holder_base[96];
};

typedef struct request {
    char *body;
    size_t len;
    int too_large;
} request_t;

/* What one API request is about, for the audit line and the answer. */
typedef struct call {
    d2g_onboarding_t *ob;
    struct MHD_Connection *conn;
    const char *method;
    char address[64];
    const d2g_grist_server_t *srv;
    char doc[256];
    int64_t procedure;
    const char *action; /* "connect", "status", ... */
} call_t;

/* ---- answers ---------------------------------------------------------------------------- */

static enum MHD_Result send_body(struct MHD_Connection *conn, unsigned int status,
                                 const char *type, char *body, size_t len, const char *cache,
                                 int retry_after_s, const char *location) {
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, cache);
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
    if (retry_after_s > 0) {
        char ra[24];
        snprintf(ra, sizeof(ra), "%d", retry_after_s);
        MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, ra);
    }
    if (location)
        MHD_add_response_header(r, MHD_HTTP_HEADER_LOCATION, location);
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, POST, DELETE");
    enum MHD_Result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

/* Steals o. */
static enum MHD_Result send_json(struct MHD_Connection *conn, unsigned int status, json_t *o,
                                 int retry_after_s) {
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!s)
        return MHD_NO;
    size_t n = strlen(s);
    char *body = d2g_malloc(n + 2);
    memcpy(body, s, n);
    body[n] = '\n';
    body[n + 1] = '\0';
    free(s);
    return send_body(conn, status, JSON_TYPE, body, n + 1, "no-store", retry_after_s, NULL);
}

/* An error answer, and the audit line of a refused action. */
static enum MHD_Result refuse(call_t *c, unsigned int status, const char *code, int retry_after_s,
                              const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static enum MHD_Result refuse(call_t *c, unsigned int status, const char *code, int retry_after_s,
                              const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (c->action) {
        char doc[320];
        snprintf(doc, sizeof(doc), "%s/%s", c->srv ? c->srv->name : "-", c->doc[0] ? c->doc : "-");
        d2g_log(D2G_LOG_INFO, "onboarding_audit", c->procedure, doc,
                "action=%s outcome=refused code=%s status=%u address=%s", c->action, code,
                status, c->address);
    }
    return send_json(c->conn, status, json_pack("{ss ss}", "error", msg, "code", code),
                     retry_after_s);
}

static void audit_ok(call_t *c) {
    char doc[320];
    snprintf(doc, sizeof(doc), "%s/%s", c->srv->name, c->doc);
    d2g_log(D2G_LOG_INFO, "onboarding_audit", c->procedure, doc,
            "action=%s outcome=done address=%s", c->action, c->address);
}

static void iso(int64_t ms, char *out) { d2g_clock_format_ms(ms, out); }

static json_t *iso_or_null(int64_t ms) {
    char t[D2G_TIME_BUFLEN];
    if (ms <= 0)
        return json_null();
    iso(ms, t);
    return json_string(t);
}

/* ---- rate budgets ----------------------------------------------------------------------- */

/* 0 granted; 1 refused (*retry_s set); -1 Redis failed. */
static int take(d2g_onboarding_t *ob, const char *kind, const char *id, int per_minute,
                int *retry_s) {
    char key[D2G_KEYLEN], holder[160], err[D2G_ERRLEN];
    int64_t wait_ms = 0;
    snprintf(holder, sizeof(holder), "%s:%ld", ob->holder_base, atomic_fetch_add(&ob->counter, 1));
    pthread_mutex_lock(&ob->redis_lock);
    int rc = d2g_keys_onboard(d2g_redis_namespace(ob->redis), key, sizeof(key), kind, id);
    if (!rc)
        rc = d2g_ratelimit_take(ob->redis, key, per_minute, 60000, holder, &wait_ms, err,
                                sizeof(err));
    pthread_mutex_unlock(&ob->redis_lock);
    if (rc) {
        d2g_log_err(D2G_LOG_WARN, "onboarding_redis", 0, NULL, err, "rate budget unavailable");
        return -1;
    }
    if (wait_ms > 0) {
        *retry_s = (int)((wait_ms + 999) / 1000);
        return 1;
    }
    return 0;
}

/* ---- status ----------------------------------------------------------------------------- */

/* The sync part of a status: the producer's status hash, the document's lane. */
static json_t *sync_status(d2g_onboarding_t *ob, int64_t procedure, const char *server,
                           const char *doc) {
    char key[D2G_KEYLEN], err[D2G_ERRLEN];
    json_t *sync = json_pack("{sn sn sn}", "last_sync_at", "dossiers", "last_error");
    pthread_mutex_lock(&ob->redis_lock);
    const char *ns = d2g_redis_namespace(ob->redis);
    d2g_keys_proc(ns, key, sizeof(key), procedure, "status");
    redisReply *r = d2g_redis_cmd(ob->redis, err, sizeof(err), "HMGET %s last_success_ms emitted "
                                  "last_error last_error_ms failed", key);
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 5) {
        redisReply **e = r->element;
        if (e[0]->type == REDIS_REPLY_STRING)
            json_object_set_new(sync, "last_sync_at", iso_or_null(strtoll(e[0]->str, NULL, 10)));
        json_object_set_new(sync, "dossiers",
                            json_integer(e[1]->type == REDIS_REPLY_STRING
                                             ? strtoll(e[1]->str, NULL, 10) : 0));
        if (e[4]->type == REDIS_REPLY_STRING && !strcmp(e[4]->str, "1") &&
            e[2]->type == REDIS_REPLY_STRING) {
            int64_t at = e[3]->type == REDIS_REPLY_STRING ? strtoll(e[3]->str, NULL, 10) : 0;
            json_object_set_new(sync, "last_error", json_pack("{so ss}", "at", iso_or_null(at),
                                                              "message", e[2]->str));
        }
    }
    if (r)
        freeReplyObject(r);
    /* A lane parked by a worker (no access, document gone...) is the newer news. */
    d2g_keys_doc(ns, key, sizeof(key), server, doc, "lane");
    r = d2g_redis_cmd(ob->redis, err, sizeof(err), "HVALS %s", key);
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
        r->element[0]->type == REDIS_REPLY_STRING) {
        json_t *lane = json_loads(r->element[0]->str, 0, NULL);
        json_t *state = json_object_get(lane, "state"), *reason = json_object_get(lane, "reason");
        json_t *error = json_object_get(lane, "error"), *since = json_object_get(lane, "since");
        if (json_is_string(state) && strcmp(json_string_value(state), "active") != 0) {
            char msg[600];
            snprintf(msg, sizeof(msg), "Grist writes %s (%s)%s%s", json_string_value(state),
                     json_is_string(reason) ? json_string_value(reason) : "?",
                     json_is_string(error) ? ": " : "",
                     json_is_string(error) ? json_string_value(error) : "");
            json_object_set_new(sync, "last_error",
                                json_pack("{sO ss}", "at", json_is_string(since) ? since : json_null(),
                                          "message", msg));
        }
        json_decref(lane);
    }
    if (r)
        freeReplyObject(r);
    pthread_mutex_unlock(&ob->redis_lock);
    return sync;
}

/* o with e's "mapping" and "filter" (null: none); returns o. */
static json_t *with_options(json_t *o, const d2g_reg_entry_t *e) {
    json_t *opts = d2g_reg_entry_options(e);
    json_object_update(o, opts);
    json_decref(opts);
    return o;
}

static json_t *entry_status(d2g_onboarding_t *ob, const d2g_reg_entry_t *e) {
    json_t *o = json_pack("{sI ss ss ss ss ss so so}", "procedure", (json_int_t)e->procedure,
                          "document", e->document, "grist_server", e->grist_server, "source",
                          "registry", "state", d2g_reg_state_name(e->state), "table_prefix",
                          e->table_prefix, "created_at", iso_or_null(e->created_ms), "sync",
                          sync_status(ob, e->procedure, e->grist_server, e->document));
    return with_options(o, e);
}

static json_t *file_status(d2g_onboarding_t *ob, const d2g_procedure_t *p) {
    return json_pack("{sI ss ss ss ss ss sn so sn sn}", "procedure", (json_int_t)p->number,
                     "document", p->document, "grist_server", p->grist_server->name, "source",
                     "file", "state", "active", "table_prefix", p->table_prefix, "created_at",
                     "sync", sync_status(ob, p->number, p->grist_server->name, p->document),
                     "mapping", "filter");
}

/* ---- the API ---------------------------------------------------------------------------- */

static enum MHD_Result api_info(call_t *c) {
    const d2g_config_t *cfg = c->ob->cfg;
    json_t *servers = json_array();
    for (size_t i = 0; i < cfg->grist.n_servers; i++)
        if (d2g_ob_server_allowed(cfg, &cfg->grist.servers[i]))
            json_array_append_new(servers, json_string(cfg->grist.servers[i].url));
    return send_json(c->conn, MHD_HTTP_OK,
                     json_pack("{sb so so ss}", "self_service", cfg->onboarding.self_service,
                               "grist_servers", servers, "platform_account",
                               cfg->onboarding.platform_account
                                   ? json_string(cfg->onboarding.platform_account) : json_null(),
                               "ds_endpoint", cfg->ds.endpoint),
                     0);
}

static enum MHD_Result unavailable(call_t *c, const char *err) {
    d2g_log_err(D2G_LOG_WARN, "onboarding_unavailable", c->procedure, c->doc, err,
                "registry unavailable");
    return refuse(c, MHD_HTTP_SERVICE_UNAVAILABLE, "unavailable", 5,
                  "The service cannot reach its storage right now; nothing was changed. Retry "
                  "in a moment.");
}

static enum MHD_Result api_list(call_t *c) {
    d2g_onboarding_t *ob = c->ob;
    d2g_reg_entry_t *e = NULL;
    size_t n = 0;
    char err[D2G_ERRLEN];
    if (d2g_registry_list(ob->registry, &e, &n, err, sizeof(err)))
        return unavailable(c, err);
    json_t *list = json_array();
    for (size_t i = 0; i < ob->cfg->n_procedures; i++) {
        const d2g_procedure_t *p = &ob->cfg->procedures[i];
        if (p->grist_server == c->srv && !strcmp(p->document, c->doc))
            json_array_append_new(list, file_status(ob, p));
    }
    for (size_t i = 0; i < n; i++)
        if (!strcmp(e[i].grist_server, c->srv->name) && !strcmp(e[i].document, c->doc) &&
            !d2g_config_find_procedure(ob->cfg, e[i].procedure))
            json_array_append_new(list, entry_status(ob, &e[i]));
    d2g_reg_entries_free(e, n);
    return send_json(c->conn, MHD_HTTP_OK,
                     json_pack("{ss ss so}", "document", c->doc, "grist_server", c->srv->name,
                               "procedures", list),
                     0);
}

/* The entry of c->procedure on c's document: 1 found, 0 not here (answered), -1 answered. */
static int find_here(call_t *c, d2g_reg_entry_t *e, enum MHD_Result *ret) {
    char err[D2G_ERRLEN];
    int found = 0;
    const d2g_procedure_t *p = d2g_config_find_procedure(c->ob->cfg, c->procedure);
    if (p) {
        if (p->grist_server == c->srv && !strcmp(p->document, c->doc))
            *ret = !strcmp(c->action, "status")
                       ? send_json(c->conn, MHD_HTTP_OK, file_status(c->ob, p), 0)
                       : refuse(c, MHD_HTTP_CONFLICT, "managed_by_operator",
                                0, "Procedure %" PRId64 " is configured by the platform's "
                                "operator; ask them to change it.", c->procedure);
        else
            *ret = refuse(c, MHD_HTTP_NOT_FOUND, "not_connected", 0,
                          "Procedure %" PRId64 " is not synchronised into this document.",
                          c->procedure);
        return -1;
    }
    if (d2g_registry_get(c->ob->registry, c->procedure, e, &found, err, sizeof(err))) {
        *ret = unavailable(c, err);
        return -1;
    }
    if (!found || strcmp(e->grist_server, c->srv->name) != 0 || strcmp(e->document, c->doc) != 0) {
        d2g_reg_entry_clear(e);
        *ret = refuse(c, MHD_HTTP_NOT_FOUND, "not_connected", 0,
                      "Procedure %" PRId64 " is not synchronised into this document.",
                      c->procedure);
        return -1;
    }
    return 1;
}

static enum MHD_Result api_status(call_t *c) {
    d2g_reg_entry_t e;
    enum MHD_Result ret;
    if (find_here(c, &e, &ret) < 0)
        return ret;
    json_t *o = entry_status(c->ob, &e);
    d2g_reg_entry_clear(&e);
    return send_json(c->conn, MHD_HTTP_OK, o, 0);
}

static enum MHD_Result api_set_state(call_t *c, d2g_reg_state_t state, int resync) {
    d2g_reg_entry_t e;
    enum MHD_Result ret;
    char err[D2G_ERRLEN];
    if (find_here(c, &e, &ret) < 0)
        return ret;
    if (resync) {
        pthread_mutex_lock(&c->ob->redis_lock);
        int rc = d2g_cursor_reset(c->ob->redis, c->procedure, NULL, err, sizeof(err));
        pthread_mutex_unlock(&c->ob->redis_lock);
        if (rc) {
            d2g_reg_entry_clear(&e);
            return unavailable(c, err);
        }
    } else if (e.state != state) {
        e.state = state;
        e.updated_ms = d2g_clock_wall_ms();
        if (d2g_registry_put(c->ob->registry, &e, err, sizeof(err))) {
            d2g_reg_entry_clear(&e);
            return unavailable(c, err);
        }
    }
    audit_ok(c);
    json_t *o = entry_status(c->ob, &e);
    d2g_reg_entry_clear(&e);
    return send_json(c->conn, MHD_HTTP_OK, o, 0);
}

static enum MHD_Result api_disconnect(call_t *c) {
    d2g_reg_entry_t e;
    enum MHD_Result ret;
    char err[D2G_ERRLEN];
    int found = 0;
    if (find_here(c, &e, &ret) < 0)
        return ret;
    d2g_reg_entry_clear(&e);
    if (d2g_registry_remove(c->ob->registry, c->procedure, &found, err, sizeof(err)))
        return unavailable(c, err);
    audit_ok(c);
    return send_json(c->conn, MHD_HTTP_OK,
                     json_pack("{sI ss sb}", "procedure", (json_int_t)c->procedure, "document",
                               c->doc, "disconnected", 1),
                     0);
}

/* The "mapping" and "filter" of a request body set on e (absent: kept),
 * checked by the configuration's parser: 0, or -1 answered 400 naming the
 * key at fault ("mapping.messages: must be true or false"). */
static int body_options(call_t *c, json_t *body, d2g_reg_entry_t *e, int *filter_changed,
                        enum MHD_Result *ret) {
    char err[D2G_ERRLEN];
    if (!d2g_reg_entry_set_options(e, json_object_get(body, "mapping"),
                                   json_object_get(body, "filter"), filter_changed, err,
                                   sizeof(err)))
        return 0;
    *ret = refuse(c, MHD_HTTP_BAD_REQUEST, "bad_request", 0, "%s.", err);
    return -1;
}

/* The JSON object of a body, its keys among allowed (NULL-terminated):
 * NULL when answered 400. */
static json_t *body_object(call_t *c, const request_t *req, const char *const *allowed,
                           const char *what, enum MHD_Result *ret) {
    json_error_t jerr;
    json_t *body = req->len ? json_loadb(req->body, req->len, JSON_REJECT_DUPLICATES, &jerr) : NULL;
    if (!json_is_object(body)) {
        json_decref(body);
        *ret = refuse(c, MHD_HTTP_BAD_REQUEST, "bad_request", 0, "The body must be a JSON object %s.",
                      what);
        return NULL;
    }
    const char *key;
    json_t *v;
    json_object_foreach(body, key, v) {
        int ok = 0;
        for (const char *const *a = allowed; *a && !ok; a++)
            ok = !strcmp(*a, key);
        if (!ok) {
            *ret = refuse(c, MHD_HTTP_BAD_REQUEST, "bad_request", 0, "Unknown field \"%.60s\".",
                          key);
            json_decref(body);
            return NULL;
        }
    }
    return body;
}

/* POST /api/v1/procedures/N/options: the procedure's mapping options and
 * filter. The workers apply them on their reload (seconds), to the dossiers
 * they write afterwards; a changed filter also asks for a full resync, a
 * few seconds later, so that every dossier enters or leaves the tables. */
static enum MHD_Result api_options(call_t *c, const request_t *req) {
    static const char *const keys[] = {"mapping", "filter", NULL};
    d2g_reg_entry_t e;
    enum MHD_Result ret;
    char err[D2G_ERRLEN];
    json_t *body = body_object(c, req, keys, "{\"mapping\", \"filter\"}", &ret);
    if (!body)
        return ret;
    if (find_here(c, &e, &ret) < 0) {
        json_decref(body);
        return ret;
    }
    json_t *before = d2g_reg_entry_options(&e);
    int filter_changed = 0, resync = 0;
    if (body_options(c, body, &e, &filter_changed, &ret))
        goto out;
    json_t *after = d2g_reg_entry_options(&e);
    int changed = !json_equal(before, after);
    json_decref(after);
    int64_t now = d2g_clock_wall_ms();
    if (changed) {
        e.updated_ms = now;
        if (d2g_registry_put(c->ob->registry, &e, err, sizeof(err))) {
            ret = unavailable(c, err);
            goto out;
        }
    }
    if (filter_changed) {
        resync = !d2g_registry_request_resync(c->ob->registry, c->procedure,
                                              now + D2G_REGISTRY_RESYNC_DELAY_MS, err, sizeof(err));
        if (!resync)
            d2g_log_err(D2G_LOG_WARN, "onboarding_resync_failed", c->procedure, c->doc, err,
                        "the new filter applies to the dossiers changed from now on");
    }
    audit_ok(c);
    json_t *o = entry_status(c->ob, &e);
    json_object_set_new(o, "resync_requested", json_boolean(resync));
    ret = send_json(c->conn, MHD_HTTP_OK, o, 0);
out:
    json_decref(before);
    json_decref(body);
    d2g_reg_entry_clear(&e);
    return ret;
}

static int printable_ascii(const char *s, size_t max) {
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
            return 0;
    return 1;
}

static int valid_prefix(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > D2G_TABLE_PREFIX_MAX || s[0] < 'A' || s[0] > 'Z')
        return 0;
    for (size_t i = 1; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return 0;
    return 1;
}

/* The tables the sync creates first: the dossiers table, one per repetition block. */
static json_t *planned_tables(const char *prefix, json_t *demarche) {
    json_t *tables = json_array();
    json_array_append_new(tables, json_string(prefix));
    json_t *descs = json_object_get(json_object_get(demarche, "activeRevision"), "champDescriptors");
    size_t i;
    json_t *d;
    json_array_foreach(descs, i, d) {
        const char *type = json_string_value(json_object_get(d, "__typename"));
        const char *label = json_string_value(json_object_get(d, "label"));
        char id[256];
        if (type && label && !strcmp(type, "RepetitionChampDescriptor") &&
            !d2g_colid_table(prefix, label, id, sizeof(id)))
            json_array_append_new(tables, json_string(id));
    }
    return tables;
}

static enum MHD_Result api_connect(call_t *c, const request_t *req) {
    d2g_onboarding_t *ob = c->ob;
    char err[D2G_ERRLEN], detail[256];
    json_error_t jerr;
    json_t *body = req->len ? json_loadb(req->body, req->len, JSON_REJECT_DUPLICATES, &jerr) : NULL;
    enum MHD_Result ret;
    json_t *demarche = NULL;
    char *sealed = NULL;
    d2g_reg_entry_t opts = {0}; /* the body's mapping and filter, checked */
    if (!json_is_object(body)) {
        json_decref(body);
        return refuse(c, MHD_HTTP_BAD_REQUEST, "bad_request", 0,
                      "The body must be a JSON object {\"procedure\", \"ds_token\"}.");
    }
    json_t *jp = json_object_get(body, "procedure"), *jt = json_object_get(body, "ds_token");
    json_t *jx = json_object_get(body, "table_prefix"), *jd = json_object_get(body, "dry_run");
    const char *key;
    json_t *v;
    json_object_foreach(body, key, v) {
        if (strcmp(key, "procedure") && strcmp(key, "ds_token") && strcmp(key, "table_prefix") &&
            strcmp(key, "dry_run") && strcmp(key, "mapping") && strcmp(key, "filter")) {
            char k[64];
            snprintf(k, sizeof(k), "%.60s", key);
            ret = refuse(c, MHD_HTTP_BAD_REQUEST, "bad_request", 0, "Unknown field \"%s\".", k);
            goto out;
        }
    }
    if (!json_is_integer(jp) || json_integer_value(jp) < 1 || json_integer_value(jp) > INT32_MAX) {
        ret = refuse(c, MHD_HTTP_BAD_REQUEST, "bad_request", 0,
                     "procedure: must be the procedure's number (an integer from 1 to 2147483647).");
        goto out;
    }
    c->procedure = json_integer_value(jp);
    if (!json_is_string(jt) || !printable_ascii(json_string_value(jt), 512)) {
        ret = refuse(c, MHD_HTTP_BAD_REQUEST, "bad_request", 0,
                     "ds_token: must be your DS API token (1 to 512 printable characters).");
        goto out;
    }
    if (jx && (!json_is_string(jx) || !valid_prefix(json_string_value(jx)))) {
        ret = refuse(c, MHD_HTTP_BAD_REQUEST, "bad_request", 0,
                     "table_prefix: an upper-case letter, then letters, digits or '_' (at most "
                     "%d).", D2G_TABLE_PREFIX_MAX);
        goto out;
    }
    if (jd && !json_is_boolean(jd)) {
        ret = refuse(c, MHD_HTTP_BAD_REQUEST, "bad_request", 0, "dry_run: must be true or false.");
        goto out;
    }
    if (body_options(c, body, &opts, NULL, &ret))
        goto out;
    int dry = jd && json_is_true(jd);
    char prefix[80];
    snprintf(prefix, sizeof(prefix), "%s",
             jx ? json_string_value(jx) : "");
    if (!jx)
        snprintf(prefix, sizeof(prefix), "D%" PRId64, c->procedure);

    /* 3. the platform's own account can write the document. */
    d2g_ob_verdict_t pv = d2g_ob_check_platform(c->srv, c->doc, CHECK_TIMEOUT_S, detail,
                                                sizeof(detail));
    if (pv == D2G_OB_READ_ONLY || pv == D2G_OB_NO_ACCESS) {
        const char *acct = ob->cfg->onboarding.platform_account;
        ret = refuse(c, MHD_HTTP_FORBIDDEN, "platform_no_access", 0,
                     "The platform's Grist account %s%s%s this document. Share the document with "
                     "%s as an editor, then retry.",
                     acct ? "(" : "", acct ? acct : "",
                     pv == D2G_OB_READ_ONLY ? (acct ? ") can only view" : "can only view")
                                            : (acct ? ") cannot open" : "cannot open"),
                     acct ? acct : "the platform's account");
        goto out;
    }
    if (pv != D2G_OB_OK) {
        d2g_log(D2G_LOG_WARN, "onboarding_grist", c->procedure, c->doc, "%s", detail);
        ret = refuse(c, MHD_HTTP_BAD_GATEWAY, "grist_unavailable", 0,
                     "Grist did not answer usably; retry later.");
        goto out;
    }
    /* 4. not synchronised already. */
    const d2g_procedure_t *fp = d2g_config_find_procedure(ob->cfg, c->procedure);
    d2g_reg_entry_t e;
    int found = 0;
    if (fp) {
        ret = refuse(c, MHD_HTTP_CONFLICT, "already_connected", 0,
                     "Procedure %" PRId64 " is already synchronised by the platform%s.",
                     c->procedure,
                     fp->grist_server == c->srv && !strcmp(fp->document, c->doc)
                         ? " into this document" : " into another document");
        goto out;
    }
    if (d2g_registry_get(ob->registry, c->procedure, &e, &found, err, sizeof(err))) {
        ret = unavailable(c, err);
        goto out;
    }
    if (found) {
        int here = !strcmp(e.grist_server, c->srv->name) && !strcmp(e.document, c->doc);
        d2g_reg_entry_clear(&e);
        ret = refuse(c, MHD_HTTP_CONFLICT, "already_connected", 0,
                     "Procedure %" PRId64 " is already synchronised %s.", c->procedure,
                     here ? "into this document (resume or resync it instead)"
                          : "into another document; a procedure syncs into one document only");
        goto out;
    }
    /* 5. the DS token can read the procedure. */
    d2g_ob_verdict_t dv = d2g_ob_check_ds(ob->cfg->ds.endpoint, json_string_value(jt),
                                          c->procedure, CHECK_TIMEOUT_S, &demarche, detail,
                                          sizeof(detail));
    if (dv == D2G_OB_DS_REFUSED) {
        ret = refuse(c, MHD_HTTP_FORBIDDEN, "ds_token_refused", 0,
                     "This DS token cannot read procedure %" PRId64 " (wrong or revoked token, "
                     "or a token not covering this procedure).", c->procedure);
        goto out;
    }
    if (dv == D2G_OB_DS_NOT_FOUND) {
        ret = refuse(c, MHD_HTTP_NOT_FOUND, "ds_procedure_not_found", 0,
                     "DS has no procedure %" PRId64 ".", c->procedure);
        goto out;
    }
    if (dv != D2G_OB_OK) {
        d2g_log(D2G_LOG_WARN, "onboarding_ds", c->procedure, c->doc, "%s", detail);
        ret = refuse(c, MHD_HTTP_BAD_GATEWAY, "ds_unavailable", 0,
                     "DS did not answer usably; retry later.");
        goto out;
    }
    json_t *tables = planned_tables(prefix, demarche);
    json_t *dm = json_pack("{sO? sO?}", "title", json_object_get(demarche, "title"), "state",
                           json_object_get(demarche, "state"));
    int64_t now = d2g_clock_wall_ms();
    if (!dry) {
        sealed = d2g_sealbox_seal(ob->sealbox, json_string_value(jt), err, sizeof(err));
        char by[320];
        snprintf(by, sizeof(by), "doc:%s/%s", c->srv->name, c->doc);
        d2g_reg_entry_t ne = {.procedure = c->procedure,
                              .document = c->doc,
                              .grist_server = (char *)c->srv->name,
                              .ds_endpoint = ob->cfg->ds.endpoint,
                              .ds_token_sealed = sealed,
                              .table_prefix = prefix,
                              .state = D2G_REG_ACTIVE,
                              .created_ms = now,
                              .updated_ms = now,
                              .created_by = by,
                              .mapping = opts.mapping,
                              .filter = opts.filter};
        if (!sealed || d2g_registry_put(ob->registry, &ne, err, sizeof(err))) {
            json_decref(tables);
            json_decref(dm);
            ret = unavailable(c, err);
            goto out;
        }
        audit_ok(c);
    }
    ret = send_json(c->conn, dry ? MHD_HTTP_OK : MHD_HTTP_CREATED,
                    with_options(json_pack("{sI ss ss ss ss sb so so so}", "procedure",
                                           (json_int_t)c->procedure, "document", c->doc,
                                           "grist_server", c->srv->name, "source", "registry",
                                           "state", "active", "dry_run", dry, "demarche", dm,
                                           "tables", tables, "created_at",
                                           dry ? json_null() : iso_or_null(now)),
                                 &opts),
                    0);
out:
    d2g_reg_entry_clear(&opts);
    free(sealed);
    json_decref(demarche);
    /* The body held the DS token: wipe the parsed copy. */
    if (json_is_string(jt))
        json_string_set(jt, "");
    json_decref(body);
    return ret;
}

/* ---- routing ---------------------------------------------------------------------------- */

static void client_address(call_t *c) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    snprintf(c->address, sizeof(c->address), "unknown");
    if (ci && ci->client_addr) {
        const struct sockaddr *sa = ci->client_addr;
        if (sa->sa_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, c->address,
                      sizeof(c->address));
        else if (sa->sa_family == AF_INET6)
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, c->address,
                      sizeof(c->address));
    }
    if (c->ob->cfg->onboarding.trust_forwarded_for) {
        const char *xff = MHD_lookup_connection_value(c->conn, MHD_HEADER_KIND, "X-Forwarded-For");
        if (xff && *xff) {
            const char *last = strrchr(xff, ',');
            last = last ? last + 1 : xff;
            while (*last == ' ')
                last++;
            unsigned char tmp[sizeof(struct in6_addr)];
            char a[64];
            snprintf(a, sizeof(a), "%.63s", last);
            a[strcspn(a, " ")] = '\0';
            if (inet_pton(AF_INET, a, tmp) == 1 || inet_pton(AF_INET6, a, tmp) == 1)
                snprintf(c->address, sizeof(c->address), "%s", a);
        }
    }
}

static enum MHD_Result api(call_t *c, const char *url, const request_t *req) {
    d2g_onboarding_t *ob = c->ob;
    int is_get = !strcmp(c->method, "GET") || !strcmp(c->method, "HEAD");
    int is_post = !strcmp(c->method, "POST"), is_delete = !strcmp(c->method, "DELETE");
    int retry = 0;

    client_address(c);
    static const char *const url_tokens[] = {"auth", "token", "access_token", "ds_token", NULL};
    for (int i = 0; url_tokens[i]; i++)
        if (MHD_lookup_connection_value(c->conn, MHD_GET_ARGUMENT_KIND, url_tokens[i]))
            return refuse(c, MHD_HTTP_BAD_REQUEST, "token_in_url", 0,
                          "Tokens must never be put in a URL; send them in headers or the body.");
    int rl = take(ob, "addr", c->address, ob->cfg->onboarding.per_address_per_minute, &retry);
    if (rl < 0)
        return unavailable(c, "redis");
    if (rl > 0)
        return refuse(c, MHD_HTTP_TOO_MANY_REQUESTS, "rate_limited", retry,
                      "Too many requests from your address; retry in %d s.", retry);
    if (req->too_large)
        return refuse(c, MHD_HTTP_CONTENT_TOO_LARGE, "body_too_large", 0,
                      "The body is over 16 KiB.");

    if (!strcmp(url, "/api/v1/info")) {
        if (!is_get)
            return refuse(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed", 0,
                          "Use GET.");
        return api_info(c);
    }
    const char *base = "/api/v1/procedures";
    if (strncmp(url, base, strlen(base)) != 0 || (url[strlen(base)] && url[strlen(base)] != '/'))
        return refuse(c, MHD_HTTP_NOT_FOUND, "not_found", 0, "No such route.");

    /* /api/v1/procedures[/N[/verb]] */
    const char *rest = url + strlen(base);
    const char *verb = NULL;
    if (*rest == '/') {
        char *end;
        errno = 0;
        long long n = strtoll(rest + 1, &end, 10);
        if (errno || end == rest + 1 || n < 1 || n > INT32_MAX || rest[1] == '+' ||
            rest[1] == '-' || (*end && *end != '/'))
            return refuse(c, MHD_HTTP_NOT_FOUND, "not_found", 0, "No such route.");
        c->procedure = n;
        if (*end == '/') {
            verb = end + 1;
            if (strcmp(verb, "pause") && strcmp(verb, "resume") && strcmp(verb, "resync") &&
                strcmp(verb, "options"))
                return refuse(c, MHD_HTTP_NOT_FOUND, "not_found", 0, "No such route.");
        }
    }
    if (verb) {
        if (!is_post)
            return refuse(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed", 0, "Use POST.");
        c->action = verb;
    } else if (c->procedure) {
        if (is_get)
            c->action = "status";
        else if (is_delete)
            c->action = "disconnect";
        else
            return refuse(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed", 0,
                          "Use GET or DELETE.");
    } else {
        if (is_get)
            c->action = "list";
        else if (is_post)
            c->action = "connect";
        else
            return refuse(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed", 0,
                          "Use GET or POST.");
    }
    int acts = !is_get;

    /* The Grist access token and its document. */
    const char *token = MHD_lookup_connection_value(c->conn, MHD_HEADER_KIND, "X-Grist-Access-Token");
    const char *base_url = MHD_lookup_connection_value(c->conn, MHD_HEADER_KIND, "X-Grist-Base-Url");
    if (!token || !*token || !base_url || !*base_url)
        return refuse(c, MHD_HTTP_UNAUTHORIZED, "grist_token_missing", 0,
                      "Send the Grist access token (X-Grist-Access-Token) and its baseUrl "
                      "(X-Grist-Base-Url), from grist.docApi.getAccessToken.");
    if (strlen(token) > 4096)
        return refuse(c, MHD_HTTP_UNAUTHORIZED, "grist_token_invalid", 0,
                      "Grist does not accept this access token.");
    if (d2g_ob_parse_base_url(ob->cfg, base_url, &c->srv, c->doc, sizeof(c->doc)))
        return refuse(c, MHD_HTTP_FORBIDDEN, "grist_server_not_allowed", 0,
                      "This document is not on a Grist server this platform serves.");
    if (acts && !ob->cfg->onboarding.self_service)
        return refuse(c, MHD_HTTP_FORBIDDEN, "self_service_off", 0,
                      "Self-service is switched off on this platform; ask its operator.");
    if (acts) {
        char id[320];
        snprintf(id, sizeof(id), "%s/%s", c->srv->name, c->doc);
        rl = take(ob, "doc", id, ob->cfg->onboarding.per_document_per_minute, &retry);
        if (rl < 0)
            return unavailable(c, "redis");
        if (rl > 0)
            return refuse(c, MHD_HTTP_TOO_MANY_REQUESTS, "rate_limited", retry,
                          "Too many actions on this document; retry in %d s.", retry);
    }
    char detail[256];
    d2g_ob_verdict_t tv = d2g_ob_check_grist_token(c->srv, c->doc, token, acts, CHECK_TIMEOUT_S,
                                                   detail, sizeof(detail));
    switch (tv) {
    case D2G_OB_OK:
        break;
    case D2G_OB_TOKEN_EXPIRED:
        return refuse(c, MHD_HTTP_UNAUTHORIZED, "grist_token_expired", 0,
                      "The Grist access token has expired; get a new one and retry.");
    case D2G_OB_READ_ONLY:
        return refuse(c, MHD_HTTP_FORBIDDEN, "grist_read_only", 0,
                      "You can only view this document: connecting and changing a "
                      "synchronisation needs edit rights.");
    case D2G_OB_UNAVAILABLE:
        d2g_log(D2G_LOG_WARN, "onboarding_grist", c->procedure, c->doc, "%s", detail);
        return refuse(c, MHD_HTTP_BAD_GATEWAY, "grist_unavailable", 0,
                      "Grist did not answer usably; retry later.");
    default:
        return refuse(c, MHD_HTTP_UNAUTHORIZED, "grist_token_invalid", 0,
                      "Grist does not accept this access token for this document.");
    }

    if (!strcmp(c->action, "list")) {
        c->action = NULL; /* reads are not audited */
        return api_list(c);
    }
    if (!strcmp(c->action, "status")) {
        enum MHD_Result r = api_status(c);
        return r;
    }
    if (!strcmp(c->action, "connect"))
        return api_connect(c, req);
    if (!strcmp(c->action, "pause"))
        return api_set_state(c, D2G_REG_PAUSED, 0);
    if (!strcmp(c->action, "resume"))
        return api_set_state(c, D2G_REG_ACTIVE, 0);
    if (!strcmp(c->action, "resync"))
        return api_set_state(c, D2G_REG_ACTIVE, 1);
    if (!strcmp(c->action, "options"))
        return api_options(c, req);
    return api_disconnect(c);
}

/* ---- static files ----------------------------------------------------------------------- */

static const char *mime(const char *path) {
    static const char *const map[][2] = {
        {".html", "text/html; charset=utf-8"}, {".js", "text/javascript; charset=utf-8"},
        {".mjs", "text/javascript; charset=utf-8"}, {".css", "text/css; charset=utf-8"},
        {".json", "application/json; charset=utf-8"}, {".svg", "image/svg+xml"},
        {".png", "image/png"}, {".ico", "image/x-icon"}, {".txt", "text/plain; charset=utf-8"}};
    const char *dot = strrchr(path, '.');
    if (!dot || strchr(dot, '/'))
        return NULL;
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (!strcmp(dot, map[i][0]))
            return map[i][1];
    return NULL;
}

static enum MHD_Result text_answer(struct MHD_Connection *conn, unsigned int status,
                                   const char *text, const char *location) {
    return send_body(conn, status, "text/plain; charset=utf-8", d2g_strdup(text), strlen(text),
                     "no-store", 0, location);
}

static enum MHD_Result serve_static(d2g_onboarding_t *ob, struct MHD_Connection *conn,
                                    const char *url, const char *method) {
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return text_answer(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n", NULL);
    const char *rel = url + strlen("/widget/");
    char path[1024];
    if (!*rel)
        rel = "index.html";
    /* No "..", "//", "\", no hidden files, no directory listing. */
    if (strstr(rel, "..") || strstr(rel, "//") || strchr(rel, '\\') || rel[0] == '.' ||
        strstr(rel, "/.") || !mime(rel) ||
        (size_t)snprintf(path, sizeof(path), "%s/%s", ob->cfg->onboarding.static_dir, rel) >=
            sizeof(path))
        return text_answer(conn, MHD_HTTP_NOT_FOUND, "not found\n", NULL);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > STATIC_MAX) {
        if (fd >= 0)
            close(fd);
        return text_answer(conn, MHD_HTTP_NOT_FOUND, "not found\n", NULL);
    }
    char *data = d2g_malloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, data + got, (size_t)st.st_size - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    return send_body(conn, MHD_HTTP_OK, mime(rel), data, got, "no-cache", 0, NULL);
}

/* ---- libmicrohttpd ---------------------------------------------------------------------- */

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode toe) {
    (void)cls;
    (void)conn;
    (void)toe;
    request_t *req = *req_cls;
    if (req) {
        if (req->body) {
            memset(req->body, 0, req->len); /* it may hold a DS token */
            free(req->body);
        }
        free(req);
        *req_cls = NULL;
    }
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **req_cls) {
    d2g_onboarding_t *ob = cls;
    (void)version;
    request_t *req = *req_cls;
    if (!req) {
        *req_cls = d2g_calloc(1, sizeof(request_t));
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (req->len + *upload_data_size > BODY_MAX) {
            req->too_large = 1;
        } else {
            req->body = d2g_realloc(req->body, req->len + *upload_data_size + 1);
            memcpy(req->body + req->len, upload_data, *upload_data_size);
            req->len += *upload_data_size;
            req->body[req->len] = '\0';
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (!strcmp(url, "/") || !strcmp(url, "/widget"))
        return text_answer(conn, MHD_HTTP_FOUND, "see /widget/\n", "/widget/");
    if (!strncmp(url, "/widget/", 8))
        return serve_static(ob, conn, url, method);
    if (!strncmp(url, "/api/", 5)) {
        call_t c = {.ob = ob, .conn = conn, .method = method};
        return api(&c, url, req);
    }
    return send_json(conn, MHD_HTTP_NOT_FOUND,
                     json_pack("{ss ss}", "error", "No such route.", "code", "not_found"), 0);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    char msg[256];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    msg[strcspn(msg, "\r\n")] = '\0';
    d2g_log(D2G_LOG_WARN, "onboarding_httpd", 0, NULL, "%s", msg);
}

d2g_onboarding_t *d2g_onboarding_start(const d2g_config_t *cfg, char *err, size_t errlen) {
    const char *listen = cfg->onboarding.listen;
    if (!listen) {
        d2g_err_set(err, errlen, "onboarding.listen is not set");
        return NULL;
    }
    char host[256];
    const char *colon = strrchr(listen, ':');
    int port = atoi(colon + 1);
    snprintf(host, sizeof(host), "%.*s", (int)(colon - listen), listen);
    if (host[0] == '[') { /* [::1] */
        memmove(host, host + 1, strlen(host));
        host[strcspn(host, "]")] = '\0';
    }
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                         MHD_USE_AUTO | MHD_USE_ERROR_LOG;
    struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)port);
    } else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        flags |= MHD_USE_IPv6;
    } else {
        d2g_err_set(err, errlen, "onboarding.listen: \"%s\" is not an IPv4 or IPv6 address", host);
        return NULL;
    }
    d2g_onboarding_t *ob = d2g_calloc(1, sizeof(*ob));
    ob->cfg = cfg;
    pthread_mutex_init(&ob->redis_lock, NULL);
    char hn[64] = "host";
    gethostname(hn, sizeof(hn) - 1);
    snprintf(ob->holder_base, sizeof(ob->holder_base), "onboard:%.60s:%d", hn, (int)getpid());
    if (!(ob->sealbox = d2g_sealbox_new(cfg->registry.encryption_key, err, errlen)) ||
        !(ob->registry = d2g_registry_new(cfg, err, errlen)) ||
        d2g_redis_connect(cfg->redis.url, cfg->redis.username, cfg->redis.password,
                          cfg->redis.namespace, 5000, &ob->redis, err, errlen)) {
        d2g_onboarding_stop(ob);
        return NULL;
    }
    ob->daemon = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, on_request, ob,
                                  MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, ob,
                                  MHD_OPTION_CONNECTION_LIMIT, 64, MHD_OPTION_CONNECTION_TIMEOUT,
                                  30, MHD_OPTION_NOTIFY_COMPLETED, on_completed, ob,
                                  MHD_OPTION_SOCK_ADDR, &ss, MHD_OPTION_END);
    if (!ob->daemon) {
        d2g_err_set(err, errlen, "onboarding: cannot listen on %s", listen);
        d2g_onboarding_stop(ob);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(ob->daemon, MHD_DAEMON_INFO_BIND_PORT);
    ob->port = info && info->port ? info->port : port;
    d2g_log(D2G_LOG_INFO, "onboarding_started", 0, NULL,
            "onboarding API and widget on %s (port %d), self-service %s", host, ob->port,
            cfg->onboarding.self_service ? "on" : "off");
    return ob;
}

void d2g_onboarding_stop(d2g_onboarding_t *ob) {
    if (!ob)
        return;
    if (ob->daemon)
        MHD_stop_daemon(ob->daemon);
    d2g_registry_free(ob->registry);
    d2g_sealbox_free(ob->sealbox);
    if (ob->redis)
        d2g_redis_free(ob->redis);
    pthread_mutex_destroy(&ob->redis_lock);
    free(ob);
}

int d2g_onboarding_port(const d2g_onboarding_t *ob) { return ob ? ob->port : 0; }
