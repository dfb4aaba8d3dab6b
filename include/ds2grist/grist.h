/*
 * grist.h - a request to a Grist document under that document's permit: the
 * one way ds2grist (the workers and the operator CLI) talks to Grist.
 *
 * A d2g_grist_doc_t names a document and its shared budgets in Redis: the
 * permit semaphore that keeps every process's requests in flight under the
 * document's cap (permits.h) and, on hosted plans, its request rate
 * (ratelimit.h). A request goes through three steps:
 *
 *   d2g_grist_begin  take a permit, then (with the permit in hand) the rate;
 *                    a request that waits for a permit spends no rate
 *   d2g_grist_send   start the HTTP request (libcurl multi, http.h)
 *   d2g_grist_end    with the answer: give the permit back, except when the
 *                    request may still be running in Grist (it timed out
 *                    after connecting): that permit is left to expire with
 *                    its lease, which outlives the hard timeout, so the cap
 *                    holds even then. A request that never connected cannot
 *                    be running and gives its permit back at once.
 *
 * d2g_grist_classify says what an answer means; d2g_grist_error_text is the
 * only text of an answer that may reach a log, a header, a metric or the CLI:
 * Grist's JSON "error" field alone (never a proxy's page, which may echo the
 * request's headers), cut at a UTF-8 boundary, every configured secret
 * scrubbed. d2g_grist_request_sync does the three steps in a blocking loop,
 * for the CLI.
 */
#ifndef D2G_GRIST_H
#define D2G_GRIST_H

#include <stddef.h>
#include <stdint.h>

#include "ds2grist/config.h"
#include "ds2grist/http.h"
#include "ds2grist/redis.h"

typedef struct d2g_grist_doc {
    const d2g_grist_server_t *srv; /* borrowed from the configuration */
    char id[256];                  /* the document id */
    char label[384];               /* "<server>/<document>": logs, metrics, Redis keys */
    char base[1024];               /* "<url>/api/docs/<escaped id>" */
    char permit_key[512], rate_key[512];
    int permits;                   /* the document's limit of requests in flight */
    int rate_limit;                /* requests per rate_window_ms; 0 = no rate */
    int64_t rate_window_ms;
} d2g_grist_doc_t;

/* Fills d for document of srv; r gives the key namespace. -1 if the ids do
 * not fit (err says which). */
int d2g_grist_doc_init(d2g_grist_doc_t *d, const d2g_redis_t *r, const d2g_grist_server_t *srv,
                       const char *document, char *err, size_t errlen);

/* The lease of a permit: the request's hard timeout and a margin. */
int64_t d2g_grist_lease_ms(long timeout_s);

/* 0: granted, holder holds a permit; 1: not now, retry in *wait_ms (nothing
 * held); -1: Redis failed (err; nothing held). */
int d2g_grist_begin(d2g_redis_t *r, const d2g_grist_doc_t *d, const char *holder, long timeout_s,
                    int64_t *wait_ms, char *err, size_t errlen);
/* The request of holder is still running: its permit is renewed, and
 * registered again if Redis lost it (a restart), so that the permits of
 * requests in flight keep counting (permits.h). Call every few seconds. */
int d2g_grist_renew(d2g_redis_t *r, const d2g_grist_doc_t *d, const char *holder, long timeout_s,
                    char *err, size_t errlen);
/* Starts method path (after the document's base; body may be NULL, copied)
 * under the permit holder took with begin. On failure the permit is given
 * back and -1 returned. */
int d2g_grist_send(d2g_http_t *h, d2g_redis_t *r, const d2g_grist_doc_t *d, const char *holder,
                   const char *method, const char *path, const char *body, long timeout_s,
                   void *opaque, char *err, size_t errlen);
/* The answer came: gives the permit back unless the request may still run. */
void d2g_grist_end(d2g_redis_t *r, const d2g_grist_doc_t *d, const char *holder,
                   const d2g_http_response_t *resp);

typedef enum {
    D2G_GRIST_OK = 0,   /* 2xx */
    D2G_GRIST_RETRY,    /* 429, 5xx, 408, no answer: the same request later */
    D2G_GRIST_DOCUMENT, /* 401, 403, or Grist's 404 for the document: the document's trouble */
    D2G_GRIST_MISSING,  /* Grist's 404 for a table or column: it does not exist (yet) */
    D2G_GRIST_REFUSED,  /* another 4xx (or a 404 not from Grist's API): this request is refused */
} d2g_grist_outcome_t;

d2g_grist_outcome_t d2g_grist_classify(const d2g_http_response_t *resp);
/* Short name of an outcome for logs: "ok", "retry", "document", "missing", "refused". */
const char *d2g_grist_outcome_name(d2g_grist_outcome_t o);

/* What may be shown of an answer: "HTTP <status>: <Grist's error>", or
 * "HTTP <status> (not a Grist API answer)", or the transport error; cut at a
 * UTF-8 boundary to fit out, secrets replaced by "***". */
void d2g_grist_error_text(const d2g_http_response_t *resp, const char *const *secrets,
                          size_t n_secrets, char *out, size_t outlen);

/* A Retry-After value (delta-seconds or an HTTP date) in ms from now, capped
 * at cap_ms; -1 if absent or unreadable. */
int64_t d2g_grist_retry_after_ms(const char *value, int64_t cap_ms);

/* Blocking: waits for a permit and the rate (at most max_wait_ms in all),
 * sends, waits for the answer, ends. 0 with *status and *body (caller frees)
 * set when an HTTP answer came; -1 otherwise (err). */
typedef struct d2g_grist_answer {
    long status;     /* 0: no HTTP answer */
    int outcome;     /* d2g_grist_outcome_t */
    char *body;      /* owned by the caller */
    char error[512]; /* d2g_grist_error_text, "" on success */
    int64_t retry_after_ms;
} d2g_grist_answer_t;
int d2g_grist_request_sync(d2g_http_t *h, d2g_redis_t *r, const d2g_grist_doc_t *d,
                           const char *holder, const char *method, const char *path,
                           const char *body, long timeout_s, int64_t max_wait_ms,
                           const char *const *secrets, size_t n_secrets, d2g_grist_answer_t *out,
                           char *err, size_t errlen);

#endif
