/* http.c - concurrent HTTP requests over libcurl multi, see http.h. */
#include "ds2grist/http.h"
#include "ds2grist/alloc.h"
#include "ds2grist/err.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <strings.h>

/* A ceiling for one answer's body: a DS page of 100 full dossiers is a few MB. */
#define MAX_BODY (256u * 1024 * 1024)

typedef struct request {
    CURL *easy;
    struct curl_slist *headers;
    char *post;
    char *body;
    size_t body_len;
    char retry_after[32];
    char errbuf[CURL_ERROR_SIZE];
    void *opaque;
    struct request *prev, *next; /* requests in flight */
} request_t;

struct d2g_http {
    CURLM *multi;
    char *user_agent;
    request_t *requests;
    int in_flight;
    int global; /* holds a curl_global_init reference */
};

d2g_http_t *d2g_http_new(const char *user_agent) {
    d2g_http_t *h = d2g_calloc(1, sizeof(*h));
    /* Reference-counted and thread-safe since libcurl 7.84 (Debian 12: 7.88):
     * each client holds one reference, released by d2g_http_free. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        free(h);
        return NULL;
    }
    h->global = 1;
    if (!(h->multi = curl_multi_init())) {
        d2g_http_free(h);
        return NULL;
    }
    h->user_agent = d2g_strdup(user_agent);
    curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS, 64L);
    return h;
}

static void request_free(request_t *r) {
    if (r->easy)
        curl_easy_cleanup(r->easy);
    /* The Authorization header held a credential: wipe it before freeing. */
    for (struct curl_slist *s = r->headers; s; s = s->next)
        explicit_bzero(s->data, strlen(s->data));
    curl_slist_free_all(r->headers);
    free(r->post);
    free(r->body);
    free(r);
}

static void unlink_request(d2g_http_t *h, request_t *r) {
    if (r->prev)
        r->prev->next = r->next;
    else
        h->requests = r->next;
    if (r->next)
        r->next->prev = r->prev;
    h->in_flight--;
}

void d2g_http_free(d2g_http_t *h) {
    if (!h)
        return;
    while (h->requests) {
        request_t *r = h->requests;
        curl_multi_remove_handle(h->multi, r->easy);
        unlink_request(h, r);
        request_free(r);
    }
    if (h->multi)
        curl_multi_cleanup(h->multi);
    if (h->global)
        curl_global_cleanup();
    free(h->user_agent);
    free(h);
}

static size_t on_body(char *p, size_t size, size_t n, void *ud) {
    request_t *r = ud;
    size_t add = size * n;
    if (r->body_len + add > MAX_BODY)
        return 0;
    char *b = d2g_realloc(r->body, r->body_len + add + 1);
    memcpy(b + r->body_len, p, add);
    r->body_len += add;
    b[r->body_len] = '\0';
    r->body = b;
    return add;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud) {
    request_t *r = ud;
    size_t len = size * n;
    if (len > 12 && strncasecmp(p, "Retry-After:", 12) == 0) {
        size_t i = 12, j = 0;
        while (i < len && (p[i] == ' ' || p[i] == '\t'))
            i++;
        while (i < len && j + 1 < sizeof(r->retry_after) && p[i] != '\r' && p[i] != '\n')
            r->retry_after[j++] = p[i++];
        r->retry_after[j] = '\0';
    }
    return len;
}

int d2g_http_start(d2g_http_t *h, const char *method, const char *url, const char *bearer,
                   char *body, size_t body_len, long timeout_s, void *opaque, char *err,
                   size_t errlen) {
    request_t *r = d2g_calloc(1, sizeof(*r));
    r->post = body;
    r->opaque = opaque;
    r->headers = curl_slist_append(NULL, "Accept: application/json");
    if (body)
        r->headers = curl_slist_append(r->headers, "Content-Type: application/json");
    /* No "Expect: 100-continue" round trip on large bodies. */
    r->headers = curl_slist_append(r->headers, "Expect:");
    if (bearer) {
        size_t len = strlen(bearer) + 32;
        char *auth = d2g_malloc(len);
        snprintf(auth, len, "Authorization: Bearer %s", bearer);
        r->headers = curl_slist_append(r->headers, auth);
        explicit_bzero(auth, len);
        free(auth);
    }
    r->easy = curl_easy_init();
    if (!r->headers || !r->easy) {
        request_free(r);
        return d2g_err_set(err, errlen, "out of memory");
    }
    curl_easy_setopt(r->easy, CURLOPT_URL, url);
    curl_easy_setopt(r->easy, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        curl_easy_setopt(r->easy, CURLOPT_POSTFIELDS, r->post);
        curl_easy_setopt(r->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    }
    curl_easy_setopt(r->easy, CURLOPT_HTTPHEADER, r->headers);
    curl_easy_setopt(r->easy, CURLOPT_TIMEOUT, timeout_s);
    curl_easy_setopt(r->easy, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(r->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(r->easy, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(r->easy, CURLOPT_USERAGENT, h->user_agent);
    curl_easy_setopt(r->easy, CURLOPT_ERRORBUFFER, r->errbuf);
    curl_easy_setopt(r->easy, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(r->easy, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(r->easy, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(r->easy, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(r->easy, CURLOPT_PRIVATE, r);
    if (curl_multi_add_handle(h->multi, r->easy) != CURLM_OK) {
        request_free(r);
        return d2g_err_set(err, errlen, "curl: cannot add a request");
    }
    r->next = h->requests;
    if (r->next)
        r->next->prev = r;
    h->requests = r;
    h->in_flight++;
    return 0;
}

int d2g_http_poll(d2g_http_t *h, int timeout_ms, d2g_http_done_cb done, void *ud) {
    int running = 0, left;
    curl_multi_poll(h->multi, NULL, 0, timeout_ms, NULL);
    curl_multi_perform(h->multi, &running);
    CURLMsg *m;
    while ((m = curl_multi_info_read(h->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        /* The message belongs to the handle: read all of it before the handle
         * leaves the multi (it is invalid afterwards). */
        CURL *easy = m->easy_handle;
        CURLcode result = m->data.result;
        request_t *r = NULL;
        d2g_http_response_t resp = {0};
        curl_off_t connect_us = 0;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&r);
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &resp.status);
        curl_easy_getinfo(easy, CURLINFO_TOTAL_TIME, &resp.seconds);
        curl_easy_getinfo(easy, CURLINFO_CONNECT_TIME_T, &connect_us);
        curl_multi_remove_handle(h->multi, easy);
        unlink_request(h, r);
        resp.curl_code = (int)result;
        resp.connected = connect_us > 0 || resp.status > 0;
        resp.body = r->body ? r->body : "";
        resp.body_len = r->body_len;
        resp.retry_after = r->retry_after;
        resp.error = r->errbuf[0] ? r->errbuf : curl_easy_strerror(result);
        done(r->opaque, &resp, ud);
        request_free(r);
    }
    return h->in_flight;
}

int d2g_http_in_flight(const d2g_http_t *h) { return h->in_flight; }

int64_t d2g_http_retry_after_ms(const char *value, int64_t now_wall_ms, int64_t default_ms,
                                int64_t cap_ms, int *parsed) {
    int ok = 0;
    int64_t ms = default_ms;
    if (parsed)
        *parsed = 0;
    if (!value)
        return default_ms < cap_ms ? default_ms : cap_ms;
    while (*value == ' ' || *value == '\t')
        value++;
    size_t n = strlen(value);
    while (n > 0 && (value[n - 1] == ' ' || value[n - 1] == '\t'))
        n--;
    if (n > 0 && strspn(value, "0123456789") == n) {
        /* delay-seconds: digits only; more than the cap is the cap */
        int64_t s = 0;
        for (size_t i = 0; i < n && s <= cap_ms / 1000 + 1; i++)
            s = s * 10 + (value[i] - '0');
        ms = s > cap_ms / 1000 ? cap_ms : s * 1000;
        ok = 1;
    } else if (n > 0 && n < 64) {
        /* IMF-fixdate, "Sun, 06 Nov 1994 08:49:37 GMT" */
        static const char *const months = "JanFebMarAprMayJunJulAugSepOctNovDec";
        char buf[64], wd[4], mon[4];
        int d, y, hh, mm, ss, used = 0;
        struct tm tm;
        memcpy(buf, value, n);
        buf[n] = '\0';
        memset(&tm, 0, sizeof(tm));
        const char *mp = NULL;
        if (sscanf(buf, "%3[A-Za-z], %2d %3[A-Za-z] %4d %2d:%2d:%2d GMT%n", wd, &d, mon, &y, &hh,
                   &mm, &ss, &used) == 7 && used == (int)n && strlen(mon) == 3 &&
            (mp = strstr(months, mon)) != NULL && (mp - months) % 3 == 0 && d >= 1 && d <= 31 &&
            y >= 1970 && y <= 9999 && hh <= 23 && mm <= 59 && ss <= 60) {
            tm.tm_mday = d, tm.tm_mon = (int)((mp - months) / 3), tm.tm_year = y - 1900;
            tm.tm_hour = hh, tm.tm_min = mm, tm.tm_sec = ss;
            int64_t at = (int64_t)timegm(&tm) * 1000;
            int64_t delta = at - now_wall_ms;
            ms = delta < 0 ? 0 : delta > cap_ms ? cap_ms : delta;
            ok = 1;
        }
    }
    if (parsed)
        *parsed = ok;
    if (ms > cap_ms)
        ms = cap_ms;
    return ms < 0 ? 0 : ms;
}
