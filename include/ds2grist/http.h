/*
 * http.h - many HTTP requests in flight from one thread (libcurl multi).
 *
 * The producer talks to DS and the worker to many Grist documents at once;
 * both drive their requests from their single loop with d2g_http_poll. A
 * request carries an opaque pointer handed back with its response. Bearer
 * tokens go only into the Authorization header, which is wiped when the
 * request ends; nothing here logs.
 */
#ifndef D2G_HTTP_H
#define D2G_HTTP_H

#include <stddef.h>
#include <stdint.h>

typedef struct d2g_http d2g_http_t;

typedef struct d2g_http_response {
    int curl_code;           /* CURLE_OK (0) when an HTTP answer came */
    long status;             /* HTTP status, 0 without an answer */
    const char *body;        /* NUL-terminated, never NULL */
    size_t body_len;
    const char *retry_after; /* Retry-After header, "" if none */
    const char *error;       /* transport error text when curl_code != 0 */
    double seconds;          /* total time of the request */
    int connected;           /* 1 if a connection to the server was made: a request
                              * that never connected cannot have been applied */
} d2g_http_response_t;

/* Called once per finished request; resp is valid during the call only. */
typedef void (*d2g_http_done_cb)(void *opaque, const d2g_http_response_t *resp, void *ud);

d2g_http_t *d2g_http_new(const char *user_agent);
/* Aborts what is in flight (no callbacks) and frees. */
void d2g_http_free(d2g_http_t *h);

/*
 * Starts a request. body (JSON, may be NULL) is handed over to the request
 * (freed by it). timeout_s is the hard limit of the whole request.
 */
int d2g_http_start(d2g_http_t *h, const char *method, const char *url, const char *bearer,
                   char *body, size_t body_len, long timeout_s, void *opaque, char *err,
                   size_t errlen);

/* Waits up to timeout_ms for activity, advances transfers, calls done for
 * each finished request. Returns the number still in flight. */
int d2g_http_poll(d2g_http_t *h, int timeout_ms, d2g_http_done_cb done, void *ud);
int d2g_http_in_flight(const d2g_http_t *h);

/*
 * A Retry-After header value (RFC 9110: delay-seconds, or an HTTP-date) as
 * milliseconds to wait from now_wall_ms, bounded to [0, cap_ms]. Absent or
 * unparsable (negative, fractional, garbage): default_ms. A huge number or a
 * far date gives cap_ms, never an overflow. *parsed (may be NULL) = 1 if the
 * value was understood, so the caller can log what it did with it.
 */
#define D2G_RETRY_AFTER_CAP_MS (15 * 60 * 1000)
int64_t d2g_http_retry_after_ms(const char *value, int64_t now_wall_ms, int64_t default_ms,
                                int64_t cap_ms, int *parsed);

#endif
