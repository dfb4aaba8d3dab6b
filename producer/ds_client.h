/*
 * ds_client.h - GraphQL requests to the DS API, many in flight at once.
 *
 * Built on the shared HTTP client (http.h, libcurl multi): the producer starts requests for
 * several procedures and polls them from its single loop. Each finished
 * request is classified the way the producer must react to it:
 *
 *   OK            data is there and no root-level error
 *   RATE_LIMITED  HTTP 429; retry_after_ms from Retry-After
 *   RETRY         5xx, connection errors: retry with backoff
 *   TOO_BIG       timeouts (client, HTTP 504, GraphQL "timeout") and
 *                 complexity errors: retry with a smaller page
 *   AUTH          401/403: the token is expired, revoked or not allowed
 *   GRAPHQL       a root-level GraphQL error (even next to partial data)
 *   BAD_RESPONSE  not the JSON a GraphQL server answers
 *
 * The token goes only into the Authorization header; no message produced
 * here contains it.
 */
#ifndef D2G_DS_CLIENT_H
#define D2G_DS_CLIENT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    D2G_DS_OK = 0,
    D2G_DS_RATE_LIMITED,
    D2G_DS_RETRY,
    D2G_DS_TOO_BIG,
    D2G_DS_AUTH,
    D2G_DS_GRAPHQL,
    D2G_DS_BAD_RESPONSE,
} d2g_ds_status_t;

typedef struct d2g_ds_result {
    d2g_ds_status_t status;
    long http_status;       /* 0 when no HTTP answer */
    int64_t retry_after_ms; /* RATE_LIMITED */
    json_t *data;           /* OK: the "data" object (owned by the result) */
    json_t *partial;        /* GRAPHQL: the data next to the errors, if any (owned) */
    json_t *errors;         /* GRAPHQL: the root-level errors (owned): a batched check
                             * (checker.h) tells which procedure each is about */
    char error[512];        /* otherwise: the cause, for logs and status */
} d2g_ds_result_t;

typedef struct d2g_ds_client d2g_ds_client_t;

/* Called once per finished request; result is valid during the call only. */
typedef void (*d2g_ds_done_cb)(void *opaque, const d2g_ds_result_t *result, void *ud);

d2g_ds_client_t *d2g_ds_client_new(int timeout_s, char *err, size_t errlen);
void d2g_ds_client_free(d2g_ds_client_t *c);

/* Starts one POST of {query, variables, operationName} to endpoint (the DS
 * instance of the token: several may be in use at once). variables is
 * borrowed. opaque is handed back to the callback. */
int d2g_ds_client_start(d2g_ds_client_t *c, const char *endpoint, const char *token,
                        const char *operation,
                        const char *query, json_t *variables, void *opaque, char *err,
                        size_t errlen);

/* Waits up to timeout_ms for network activity, advances transfers and calls
 * done for each finished request. Returns the number still in flight. */
int d2g_ds_client_poll(d2g_ds_client_t *c, int timeout_ms, d2g_ds_done_cb done, void *ud);
int d2g_ds_client_in_flight(const d2g_ds_client_t *c);

/* Classifies a finished exchange (exposed for unit tests): curl_code is a
 * CURLcode, body may be NULL. Fills result (result->data owned by it). */
void d2g_ds_classify(int curl_code, long http_status, const char *retry_after,
                     const char *body, size_t body_len, d2g_ds_result_t *result);

/* Releases what a classified result owns (data, partial, errors). */
void d2g_ds_result_clear(d2g_ds_result_t *result);

const char *d2g_ds_status_name(d2g_ds_status_t s);

#endif
