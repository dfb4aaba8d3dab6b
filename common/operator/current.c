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
#include "ds2grist/grist.h"

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
    char holder[200], filter[64], path[1024];
    memset(out, 0, sizeof(*out));
    out->modified = out->deleted_at = NAN;
    d2g_grist_doc_t doc;
    if (d2g_grist_doc_init(&doc, g->redis, p->grist_server, p->document, err, errlen))
        return -1;
    const char *failed = json_string_value(json_object_get(g->failed, doc.label));
    if (failed)
        return d2g_err_set(err, errlen, "%s", failed);
    snprintf(filter, sizeof(filter), "{\"numero\":[%" PRId64 "]}", number);
    char *flt = curl_easy_escape(NULL, filter, 0), *tbl = curl_easy_escape(NULL, p->table_prefix, 0);
    snprintf(path, sizeof(path), "/tables/%s/records?filter=%s&limit=1", tbl ? tbl : "",
             flt ? flt : "");
    curl_free(flt);
    curl_free(tbl);
    size_t n_secrets = 0;
    const char *const *secrets = d2g_config_secrets(g->cfg, &n_secrets);

    int rc = -1;
    for (int attempt = 1; attempt <= ATTEMPTS; attempt++) {
        snprintf(holder, sizeof(holder), "%s:%" PRIu64, g->holder_prefix, ++g->seq);
        d2g_grist_answer_t a;
        int sent = d2g_grist_request_sync(g->http, g->redis, &doc, holder, "GET", path, NULL,
                                          g->cfg->grist.timeout_s, PERMIT_WAIT_MAX_MS, secrets,
                                          n_secrets, &a, err, errlen);
        int retry = 0;
        if (sent && a.status == 0 && a.body) {
            retry = 1; /* no answer: err says why */
        } else if (sent) {
            free(a.body);
            break; /* no permit, or the request could not start */
        } else if (a.outcome == D2G_GRIST_OK) {
            rc = read_record(a.body, out, err, errlen);
        } else if (a.outcome == D2G_GRIST_MISSING) {
            rc = 0; /* Grist's own 404 for a table not created yet: no row */
        } else if (a.outcome == D2G_GRIST_DOCUMENT && a.status == 404) {
            rc = 0; /* Grist's own 404 for the document: no row (the workers create it) */
        } else {
            d2g_err_set(err, errlen, "grist %s reading %s: %s", doc.label, p->table_prefix,
                        a.error);
            if (a.status == 404)
                d2g_err_set(err, errlen, "grist %s: HTTP 404 that is not Grist's API: check the "
                            "server's url", p->grist_server->name);
            retry = a.outcome == D2G_GRIST_RETRY;
        }
        int64_t ra = a.retry_after_ms;
        free(a.body);
        if (!retry || attempt == ATTEMPTS)
            break;
        int64_t pause = 500LL << (attempt - 1); /* 0.5 s, 1 s; a Retry-After says more */
        if (ra > 0)
            pause = ra;
        sleep_ms(pause);
    }
    if (rc)
        json_object_set_new(g->failed, doc.label, json_string(err));
    return rc;
}
