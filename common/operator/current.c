/*
 * current.c - what Grist holds now of one dossier, for `dlq replay`: does its
 * row exist, its date of last modification, its deleted flag. See operator.h.
 *
 * One GET of the procedure's dossiers table filtered on the dossier's number
 * (`numero`, the upsert key of docs/mapping.md). The request is made as the
 * workers make theirs: under a permit of the document's semaphore in Redis
 * (an operator's reads count against the document's cap like anybody's and
 * never push it over), within the document's request rate when the server has
 * one, and a request that timed out keeps its permit until the lease ends (it
 * may still be running in Grist). A 429, 5xx or transport error is retried a
 * few times; Grist's 404 for a document or table that does not exist means
 * "no row" (the worker creates them). A document that could not answer fails
 * the later checks of the run at once, rather than making each wait again.
 */
#include "operator.h"

#include "ds2grist/alloc.h"
#include "ds2grist/clock.h"
#include "ds2grist/err.h"
#include "ds2grist/http.h"
#include "ds2grist/permits.h"
#include "ds2grist/ratelimit.h"

#include <curl/curl.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* How long a read may wait for a free permit, in all. */
#define PERMIT_WAIT_MAX_MS 60000
#define ATTEMPTS 3

struct d2g_op_grist {
    const d2g_config_t *cfg;
    d2g_redis_t *redis;
    d2g_http_t *http;
    char holder_prefix[128];
    uint64_t seq;
    json_t *failed; /* "server/document" -> why it could not answer */
};

typedef struct answer {
    int done;
    long status;
    int curl_code;
    char *body;
    char error[256];
    char retry_after[32];
} answer_t;

static void on_done(void *opaque, const d2g_http_response_t *resp, void *ud) {
    (void)ud;
    answer_t *a = opaque;
    a->done = 1;
    a->status = resp->status;
    a->curl_code = resp->curl_code;
    a->body = d2g_strndup(resp->body, resp->body_len);
    snprintf(a->error, sizeof(a->error), "%s", resp->error ? resp->error : "");
    snprintf(a->retry_after, sizeof(a->retry_after), "%s", resp->retry_after ? resp->retry_after : "");
}

static void sleep_ms(int64_t ms) {
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

d2g_op_grist_t *d2g_op_grist_new(const d2g_config_t *cfg, char *err, size_t errlen) {
    d2g_op_grist_t *g = d2g_calloc(1, sizeof(*g));
    g->cfg = cfg;
    if (d2g_redis_connect(cfg->redis.url, cfg->redis.username, cfg->redis.password,
                          cfg->redis.namespace, 5000, &g->redis, err, errlen)) {
        free(g);
        return NULL;
    }
    if (!(g->http = d2g_http_new("ds2grist-cli"))) {
        d2g_redis_free(g->redis);
        free(g);
        d2g_err_set(err, errlen, "cannot start an HTTP client");
        return NULL;
    }
    char host[64] = "host";
    gethostname(host, sizeof(host) - 1);
    snprintf(g->holder_prefix, sizeof(g->holder_prefix), "ds2grist-cli:%s:%ld", host, (long)getpid());
    g->failed = json_object();
    return g;
}

void d2g_op_grist_free(d2g_op_grist_t *g) {
    if (!g)
        return;
    d2g_http_free(g->http);
    d2g_redis_free(g->redis);
    json_decref(g->failed);
    free(g);
}

/* Takes a permit of the document (waiting for one up to PERMIT_WAIT_MAX_MS). */
static int permit_take(d2g_op_grist_t *g, const char *key, int limit, const char *holder,
                       char *err, size_t errlen) {
    int64_t lease = (int64_t)g->cfg->grist.timeout_s * 1000 + 10000, waited = 0;
    for (;;) {
        int64_t wait = 0;
        if (d2g_permits_acquire(g->redis, key, limit, lease, holder, &wait, err, errlen))
            return -1;
        if (wait <= 0)
            return 0;
        if (waited >= PERMIT_WAIT_MAX_MS)
            return d2g_err_set(err, errlen, "no free permit of the document within %d s",
                               PERMIT_WAIT_MAX_MS / 1000);
        wait = wait < 200 ? wait : 200;
        sleep_ms(wait);
        waited += wait;
    }
}

/* Waits for a request of the document's rate (hosted plans), as the workers
 * take it: N requests per window of whole milliseconds. */
static int rate_take(d2g_op_grist_t *g, const d2g_grist_server_t *srv, const char *doc_label,
                     const char *holder, char *err, size_t errlen) {
    if (srv->requests_per_second <= 0)
        return 0;
    int limit;
    int64_t window, waited = 0;
    d2g_ratelimit_per_second(srv->requests_per_second, &limit, &window);
    char key[600];
    d2g_redis_key(g->redis, key, sizeof(key), "{doc:%s}:rate", doc_label);
    for (;;) {
        int64_t wait = 0;
        if (d2g_ratelimit_take(g->redis, key, limit, window, holder, &wait, err, errlen))
            return -1;
        if (wait <= 0)
            return 0;
        if (waited >= PERMIT_WAIT_MAX_MS)
            return d2g_err_set(err, errlen, "the document's request rate left no room within %d s",
                               PERMIT_WAIT_MAX_MS / 1000);
        sleep_ms(wait);
        waited += wait;
    }
}

/* Reads the answer's first record into out. */
static int read_record(const char *body, d2g_op_current_t *out, char *err, size_t errlen) {
    json_error_t je;
    json_t *root = json_loads(body, 0, &je);
    json_t *recs = json_object_get(root, "records");
    if (!json_is_array(recs)) {
        json_decref(root);
        return d2g_err_set(err, errlen, "grist: unexpected answer (no records array)");
    }
    json_t *fields = json_object_get(json_array_get(recs, 0), "fields");
    if (json_is_object(fields)) {
        json_t *mod = json_object_get(fields, "date_derniere_modification");
        out->found = 1;
        out->modified = json_is_number(mod) ? json_number_value(mod) : NAN;
        out->deleted = json_is_true(json_object_get(fields, "supprime"));
        json_t *del = json_object_get(fields, "date_suppression");
        out->deleted_at = json_is_number(del) ? json_number_value(del) : NAN;
    }
    json_decref(root);
    return 0;
}

int d2g_op_grist_current(d2g_op_grist_t *g, const d2g_procedure_t *p, int64_t number,
                         d2g_op_current_t *out, char *err, size_t errlen) {
    const d2g_grist_server_t *srv = p->grist_server;
    char key[600], holder[200], filter[64], label[400];
    memset(out, 0, sizeof(*out));
    out->modified = out->deleted_at = NAN;
    snprintf(label, sizeof(label), "%s/%s", srv->name, p->document);
    const char *failed = json_string_value(json_object_get(g->failed, label));
    if (failed)
        return d2g_err_set(err, errlen, "%s", failed);
    d2g_redis_key(g->redis, key, sizeof(key), "{doc:%s}:permits", label);
    snprintf(filter, sizeof(filter), "{\"numero\":[%" PRId64 "]}", number);
    char *doc = curl_easy_escape(NULL, p->document, 0), *flt = curl_easy_escape(NULL, filter, 0);
    size_t ulen = strlen(srv->url) + strlen(doc ? doc : "") + strlen(p->table_prefix) +
                  strlen(flt ? flt : "") + 64;
    char *url = d2g_malloc(ulen);
    snprintf(url, ulen, "%s/api/docs/%s/tables/%s/records?filter=%s&limit=1", srv->url,
             doc ? doc : "", p->table_prefix, flt ? flt : "");
    curl_free(doc);
    curl_free(flt);

    int rc = -1;
    for (int attempt = 1; attempt <= ATTEMPTS; attempt++) {
        snprintf(holder, sizeof(holder), "%s:%" PRIu64, g->holder_prefix, ++g->seq);
        if (permit_take(g, key, d2g_config_doc_permits(srv, p->document), holder, err, errlen))
            break;
        char rerr[D2G_ERRLEN];
        if (rate_take(g, srv, label, holder, err, errlen)) {
            d2g_permits_release(g->redis, key, holder, rerr, sizeof(rerr));
            break;
        }
        answer_t a = {0};
        if (d2g_http_start(g->http, "GET", url, srv->api_key, NULL, 0, g->cfg->grist.timeout_s, &a,
                           err, errlen) == 0)
            while (!a.done && d2g_http_in_flight(g->http) > 0)
                d2g_http_poll(g->http, 1000, on_done, NULL);
        /* A request that timed out may still run in Grist: its permit stays
         * taken until the lease ends, as the workers do. */
        if (!a.done || a.curl_code != CURLE_OPERATION_TIMEDOUT)
            d2g_permits_release(g->redis, key, holder, rerr, sizeof(rerr));
        if (!a.done) {
            free(a.body);
            break; /* err says why the request could not start */
        }
        int retry = 0;
        if (a.curl_code != 0) {
            d2g_err_set(err, errlen, "grist %s: %s", srv->name, a.error);
            retry = 1;
        } else if (a.status == 200) {
            rc = read_record(a.body, out, err, errlen);
        } else if (a.status == 404) {
            /* Grist's own 404 (a JSON error: no such document or table yet) means
             * no row; anything else is not Grist's API answering. */
            json_t *j = json_loads(a.body, 0, NULL);
            if (json_is_string(json_object_get(j, "error")))
                rc = 0;
            else
                d2g_err_set(err, errlen, "grist %s: HTTP 404 that is not Grist's API: check the "
                            "server's url", srv->name);
            json_decref(j);
        } else {
            d2g_err_set(err, errlen, "grist %s: HTTP %ld reading %s/%s", srv->name, a.status,
                        p->document, p->table_prefix);
            retry = a.status == 429 || a.status >= 500;
        }
        free(a.body);
        if (!retry || attempt == ATTEMPTS)
            break;
        int64_t pause = 500LL << (attempt - 1); /* 0.5 s, 1 s; a Retry-After says more */
        long ra = atol(a.retry_after);
        if (ra > 0 && ra < 60)
            pause = ra * 1000;
        sleep_ms(pause);
    }
    free(url);
    if (rc)
        json_object_set_new(g->failed, label, json_string(err));
    return rc;
}
