/* ds_client.c - DS GraphQL over the shared HTTP client, see ds_client.h. */
#include "ds_client.h"
#include "ds2grist/clock.h"
#include "ds2grist/text.h"
#include "ds2grist/alloc.h"
#include "ds2grist/err.h"
#include "ds2grist/http.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct d2g_ds_client {
    d2g_http_t *http;
    long timeout_s;
};

const char *d2g_ds_status_name(d2g_ds_status_t s) {
    static const char *names[] = {"ok", "rate_limited", "retry", "too_big", "auth", "graphql",
                                  "bad_response"};
    return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "unknown";
}

d2g_ds_client_t *d2g_ds_client_new(int timeout_s, char *err, size_t errlen) {
    d2g_ds_client_t *c = d2g_calloc(1, sizeof(*c));
    if (!(c->http = d2g_http_new("ds2grist-producer"))) {
        d2g_err_set(err, errlen, "out of memory");
        d2g_ds_client_free(c);
        return NULL;
    }
    c->timeout_s = timeout_s;
    return c;
}

void d2g_ds_client_free(d2g_ds_client_t *c) {
    if (!c)
        return;
    d2g_http_free(c->http);
    free(c);
}

int d2g_ds_client_start(d2g_ds_client_t *c, const char *endpoint, const char *token,
                        const char *operation,
                        const char *query, json_t *variables, void *opaque, char *err,
                        size_t errlen) {
    json_t *body = json_pack("{s:s, s:O, s:s}", "query", query, "variables", variables,
                             "operationName", operation);
    char *post = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!post)
        return d2g_err_set(err, errlen, "out of memory");
    return d2g_http_start(c->http, "POST", endpoint, token, post, strlen(post), c->timeout_s,
                          opaque, err, errlen);
}

/* The first root-level error's message and code, for the result. */
static void first_error(json_t *errors, const char **message, const char **code) {
    json_t *e = json_array_get(errors, 0);
    *message = json_string_value(json_object_get(e, "message"));
    *code = json_string_value(json_object_get(json_object_get(e, "extensions"), "code"));
    if (!*message)
        *message = "(no message)";
}

void d2g_ds_classify(int curl_code, long http_status, const char *retry_after,
                     const char *body, size_t body_len, d2g_ds_result_t *res) {
    memset(res, 0, sizeof(*res));
    res->http_status = http_status;
    if (curl_code == CURLE_OPERATION_TIMEDOUT) {
        res->status = D2G_DS_TOO_BIG;
        snprintf(res->error, sizeof(res->error), "request timed out");
        return;
    }
    if (curl_code != CURLE_OK) {
        res->status = D2G_DS_RETRY;
        snprintf(res->error, sizeof(res->error), "transport error: %s",
                 curl_easy_strerror((CURLcode)curl_code));
        return;
    }
    if (http_status == 429) {
        /* Bounded: a huge or far-future Retry-After must not pause a token for a year. */
        int parsed = 0;
        char shown[40];
        int64_t ms = d2g_http_retry_after_ms(retry_after && *retry_after ? retry_after : NULL,
                                             d2g_clock_wall_ms(), 60000, D2G_RETRY_AFTER_CAP_MS,
                                             &parsed);
        if (ms < 1000)
            ms = 1000; /* DS said wait: at least a second */
        d2g_text_copy(shown, sizeof(shown), retry_after && *retry_after ? retry_after : "none",
                      (size_t)-1);
        res->status = D2G_DS_RATE_LIMITED;
        res->retry_after_ms = ms;
        snprintf(res->error, sizeof(res->error),
                 "HTTP 429: rate limited, waiting %lld s (Retry-After: %s%s)", (long long)(ms / 1000),
                 shown, parsed ? "" : ", not understood: default 60 s");
        return;
    }
    json_t *root = body ? json_loadb(body, body_len, 0, NULL) : NULL;
    json_t *errors = json_object_get(root, "errors");
    const char *msg = NULL, *code = NULL;
    if (json_array_size(errors) > 0)
        first_error(errors, &msg, &code);

    if (http_status == 401 || http_status == 403) {
        res->status = D2G_DS_AUTH;
        snprintf(res->error, sizeof(res->error), "HTTP %ld: %s", http_status,
                 msg ? msg : http_status == 401 ? "unauthorized (token expired or unknown)"
                                                : "forbidden (network not allowed for this token)");
    } else if (http_status == 504 || (code && strcmp(code, "timeout") == 0)) {
        res->status = D2G_DS_TOO_BIG;
        snprintf(res->error, sizeof(res->error), "server timeout (HTTP %ld)%s%s", http_status,
                 msg ? ": " : "", msg ? msg : "");
    } else if (http_status >= 500) {
        res->status = D2G_DS_RETRY;
        snprintf(res->error, sizeof(res->error), "HTTP %ld%s%s", http_status, msg ? ": " : "",
                 msg ? msg : "");
    } else if (!json_is_object(root)) {
        res->status = http_status >= 400 ? D2G_DS_RETRY : D2G_DS_BAD_RESPONSE;
        snprintf(res->error, sizeof(res->error), "HTTP %ld: the body is not a GraphQL JSON answer",
                 http_status);
    } else if (msg) {
        /* Any root-level error fails the request, even with partial data. */
        int complexity = strstr(msg, "complexity") != NULL || strstr(msg, "Complexity") != NULL;
        res->status = complexity ? D2G_DS_TOO_BIG : D2G_DS_GRAPHQL;
        if (!complexity) {
            json_t *data = json_object_get(root, "data");
            res->partial = json_is_object(data) ? json_incref(data) : NULL;
            res->errors = json_incref(errors);
        }
        snprintf(res->error, sizeof(res->error), "GraphQL error%s%s%s: %s", code ? " (" : "",
                 code ? code : "", code ? ")" : "", msg);
    } else if (http_status != 200 || !json_is_object(json_object_get(root, "data"))) {
        res->status = D2G_DS_BAD_RESPONSE;
        snprintf(res->error, sizeof(res->error), "HTTP %ld without data", http_status);
    } else {
        res->status = D2G_DS_OK;
        res->data = json_incref(json_object_get(root, "data"));
    }
    json_decref(root);
    /* DS's messages were cut by snprintf: clean the cut (UTF-8 boundary, no controls). */
    d2g_text_copy(res->error, sizeof(res->error), res->error, (size_t)-1);
}

/* Classifies each finished exchange for the caller's callback. */
typedef struct poll_ctx {
    d2g_ds_done_cb done;
    void *ud;
} poll_ctx_t;

static void on_http_done(void *opaque, const d2g_http_response_t *resp, void *ud) {
    poll_ctx_t *pc = ud;
    d2g_ds_result_t res;
    d2g_ds_classify(resp->curl_code, resp->status, resp->retry_after, resp->body, resp->body_len,
                    &res);
    pc->done(opaque, &res, pc->ud);
    d2g_ds_result_clear(&res);
}

void d2g_ds_result_clear(d2g_ds_result_t *res) {
    json_decref(res->data);
    json_decref(res->partial);
    json_decref(res->errors);
    res->data = res->partial = res->errors = NULL;
}

int d2g_ds_client_poll(d2g_ds_client_t *c, int timeout_ms, d2g_ds_done_cb done, void *ud) {
    poll_ctx_t pc = {done, ud};
    return d2g_http_poll(c->http, timeout_ms, on_http_done, &pc);
}

int d2g_ds_client_in_flight(const d2g_ds_client_t *c) { return d2g_http_in_flight(c->http); }
