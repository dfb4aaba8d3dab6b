/* grist.c - a Grist request under its document's permit, see grist.h. */
#include "ds2grist/grist.h"

#include "ds2grist/alloc.h"
#include "ds2grist/clock.h"
#include "ds2grist/err.h"
#include "ds2grist/keys.h"
#include "ds2grist/permits.h"
#include "ds2grist/ratelimit.h"
#include "ds2grist/text.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A permit's lease outlives the request's hard timeout by this much. */
#define LEASE_MARGIN_MS 10000
/* How long a blocking caller sleeps at most between two permit asks. */
#define SYNC_POLL_MS 200

int d2g_grist_doc_init(d2g_grist_doc_t *d, const d2g_redis_t *r, const d2g_grist_server_t *srv,
                       const char *document, char *err, size_t errlen) {
    memset(d, 0, sizeof(*d));
    d->srv = srv;
    if ((size_t)snprintf(d->id, sizeof(d->id), "%s", document) >= sizeof(d->id) ||
        (size_t)snprintf(d->label, sizeof(d->label), "%s/%s", srv->name, document) >=
            sizeof(d->label))
        return d2g_err_set(err, errlen, "grist document id too long (%zu bytes)", strlen(document));
    char *esc = curl_easy_escape(NULL, document, 0);
    int n = snprintf(d->base, sizeof(d->base), "%s/api/docs/%s", srv->url, esc ? esc : "");
    curl_free(esc);
    if (n < 0 || (size_t)n >= sizeof(d->base))
        return d2g_err_set(err, errlen, "grist url too long for document %s", d->label);
    const char *ns = d2g_redis_namespace(r);
    if (d2g_keys_doc(ns, d->permit_key, sizeof(d->permit_key), srv->name, document, "permits") ||
        d2g_keys_doc(ns, d->rate_key, sizeof(d->rate_key), srv->name, document, "rate"))
        return d2g_err_set(err, errlen, "redis key too long for document %s", d->label);
    d->permits = d2g_config_doc_permits(srv, document);
    if (srv->requests_per_second > 0)
        d2g_ratelimit_per_second(srv->requests_per_second, &d->rate_limit, &d->rate_window_ms);
    return 0;
}

int64_t d2g_grist_lease_ms(long timeout_s) { return (int64_t)timeout_s * 1000 + LEASE_MARGIN_MS; }

int d2g_grist_begin(d2g_redis_t *r, const d2g_grist_doc_t *d, const char *holder, long timeout_s,
                    int64_t *wait_ms, char *err, size_t errlen) {
    int64_t wait = 0;
    *wait_ms = 0;
    if (d2g_permits_take(r, d->permit_key, d->permits, d2g_grist_lease_ms(timeout_s), holder, 0,
                         &wait, err, errlen))
        return -1;
    if (wait > 0) {
        *wait_ms = wait;
        return 1;
    }
    if (d->rate_limit > 0) {
        char rerr[D2G_ERRLEN];
        int rc = d2g_ratelimit_take(r, d->rate_key, d->rate_limit, d->rate_window_ms, holder,
                                    &wait, err, errlen);
        if (rc || wait > 0) {
            d2g_permits_release(r, d->permit_key, holder, rerr, sizeof(rerr));
            if (rc)
                return -1;
            *wait_ms = wait;
            return 1;
        }
    }
    return 0;
}

int d2g_grist_renew(d2g_redis_t *r, const d2g_grist_doc_t *d, const char *holder, long timeout_s,
                    char *err, size_t errlen) {
    int64_t wait = 0;
    return d2g_permits_take(r, d->permit_key, d->permits, d2g_grist_lease_ms(timeout_s), holder, 1,
                            &wait, err, errlen);
}

int d2g_grist_send(d2g_http_t *h, d2g_redis_t *r, const d2g_grist_doc_t *d, const char *holder,
                   const char *method, const char *path, const char *body, long timeout_s,
                   void *opaque, char *err, size_t errlen) {
    size_t ulen = strlen(d->base) + strlen(path) + 1;
    char *url = d2g_malloc(ulen);
    snprintf(url, ulen, "%s%s", d->base, path);
    char *copy = body ? d2g_strdup(body) : NULL;
    int rc = d2g_http_start(h, method, url, d->srv->api_key, copy, copy ? strlen(copy) : 0,
                            timeout_s, opaque, err, errlen);
    free(url);
    if (rc) {
        char rerr[D2G_ERRLEN];
        d2g_permits_release(r, d->permit_key, holder, rerr, sizeof(rerr));
        return -1;
    }
    return 0;
}

void d2g_grist_end(d2g_redis_t *r, const d2g_grist_doc_t *d, const char *holder,
                   const d2g_http_response_t *resp) {
    /* Timed out after connecting: Grist may still be working on it. */
    if (resp->curl_code == CURLE_OPERATION_TIMEDOUT && resp->connected)
        return;
    char err[D2G_ERRLEN];
    d2g_permits_release(r, d->permit_key, holder, err, sizeof(err));
}

/* Grist's API answers errors as JSON {"error": "..."}; anything else (an HTML
 * page, a proxy's text) is not Grist speaking. Returns the error string
 * (borrowed from j) or NULL. */
static const char *grist_error(const d2g_http_response_t *resp, json_t **j) {
    *j = json_loadb(resp->body, resp->body_len, 0, NULL);
    return json_string_value(json_object_get(*j, "error"));
}

d2g_grist_outcome_t d2g_grist_classify(const d2g_http_response_t *resp) {
    long st = resp->status;
    if (resp->curl_code != 0 || st == 0 || st == 429 || st == 408 || st >= 500)
        return D2G_GRIST_RETRY;
    if (st < 300)
        return D2G_GRIST_OK;
    if (st == 401 || st == 403)
        return D2G_GRIST_DOCUMENT;
    if (st == 404) {
        json_t *j;
        const char *e = grist_error(resp, &j);
        d2g_grist_outcome_t o = D2G_GRIST_REFUSED;
        if (e && (strstr(e, "able not found") || strstr(e, "olumn not found")))
            o = D2G_GRIST_MISSING;
        else if (e)
            o = D2G_GRIST_DOCUMENT; /* "document not found", a deleted document */
        json_decref(j);
        return o;
    }
    return D2G_GRIST_REFUSED;
}

const char *d2g_grist_outcome_name(d2g_grist_outcome_t o) {
    switch (o) {
    case D2G_GRIST_OK: return "ok";
    case D2G_GRIST_RETRY: return "retry";
    case D2G_GRIST_DOCUMENT: return "document";
    case D2G_GRIST_MISSING: return "missing";
    case D2G_GRIST_REFUSED: return "refused";
    }
    return "?";
}

void d2g_grist_error_text(const d2g_http_response_t *resp, const char *const *secrets,
                          size_t n_secrets, char *out, size_t outlen) {
    char raw[1024];
    if (resp->curl_code != 0) {
        snprintf(raw, sizeof(raw), "no answer: %s", resp->error ? resp->error : "transport error");
    } else {
        json_t *j;
        const char *e = grist_error(resp, &j);
        if (e)
            snprintf(raw, sizeof(raw), "HTTP %ld: %s", resp->status, e);
        else
            snprintf(raw, sizeof(raw), "HTTP %ld (not a Grist API answer)", resp->status);
        json_decref(j);
    }
    /* Scrub first (a secret cut in two would escape the scrub), then cut. */
    d2g_text_scrub(raw, secrets, n_secrets);
    d2g_text_copy(out, outlen, raw, (size_t)-1);
}

int64_t d2g_grist_retry_after_ms(const char *value, int64_t cap_ms) {
    if (!value || !*value)
        return -1;
    char *end = NULL;
    long long s = strtoll(value, &end, 10);
    int64_t ms;
    if (end != value && (*end == '\0' || *end == ' ')) {
        if (s < 0)
            return -1;
        ms = s > cap_ms / 1000 ? cap_ms : (int64_t)s * 1000;
    } else {
        /* An HTTP date: "Wed, 21 Oct 2015 07:28:00 GMT". */
        time_t at = curl_getdate(value, NULL);
        if (at < 0)
            return -1;
        int64_t delta = (int64_t)at * 1000 - d2g_clock_wall_ms();
        ms = delta < 0 ? 0 : delta;
    }
    return ms > cap_ms ? cap_ms : ms;
}

/* --- blocking use (the CLI) ------------------------------------------------- */

typedef struct sync_answer {
    int done;
    d2g_grist_answer_t *out;
    const d2g_grist_doc_t *doc;
    d2g_redis_t *redis;
    const char *holder;
    const char *const *secrets;
    size_t n_secrets;
} sync_answer_t;

static void on_sync_done(void *opaque, const d2g_http_response_t *resp, void *ud) {
    (void)ud;
    sync_answer_t *a = opaque;
    a->done = 1;
    d2g_grist_end(a->redis, a->doc, a->holder, resp);
    a->out->status = resp->curl_code ? 0 : resp->status;
    a->out->outcome = (int)d2g_grist_classify(resp);
    a->out->body = d2g_strndup(resp->body, resp->body_len);
    a->out->retry_after_ms = d2g_grist_retry_after_ms(resp->retry_after, 60000);
    if (a->out->outcome != D2G_GRIST_OK)
        d2g_grist_error_text(resp, a->secrets, a->n_secrets, a->out->error, sizeof(a->out->error));
}

static void sleep_ms(int64_t ms) {
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int d2g_grist_request_sync(d2g_http_t *h, d2g_redis_t *r, const d2g_grist_doc_t *d,
                           const char *holder, const char *method, const char *path,
                           const char *body, long timeout_s, int64_t max_wait_ms,
                           const char *const *secrets, size_t n_secrets, d2g_grist_answer_t *out,
                           char *err, size_t errlen) {
    memset(out, 0, sizeof(*out));
    int64_t waited = 0;
    for (;;) {
        int64_t wait = 0;
        int rc = d2g_grist_begin(r, d, holder, timeout_s, &wait, err, errlen);
        if (rc < 0)
            return -1;
        if (rc == 0)
            break;
        if (waited >= max_wait_ms)
            return d2g_err_set(err, errlen, "no free permit of document %s within %lld s",
                               d->label, (long long)(max_wait_ms / 1000));
        wait = wait < SYNC_POLL_MS ? wait : SYNC_POLL_MS;
        sleep_ms(wait);
        waited += wait;
    }
    sync_answer_t a = {0, out, d, r, holder, secrets, n_secrets};
    if (d2g_grist_send(h, r, d, holder, method, path, body, timeout_s, &a, err, errlen))
        return -1;
    while (!a.done && d2g_http_in_flight(h) > 0)
        d2g_http_poll(h, 1000, on_sync_done, NULL);
    if (!a.done)
        return d2g_err_set(err, errlen, "grist request to %s lost", d->label);
    if (out->status == 0)
        return d2g_err_set(err, errlen, "grist %s: %s", d->label, out->error);
    return 0;
}
