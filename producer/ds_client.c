/* ds_client.c - DS GraphQL over libcurl multi, see ds_client.h. */
#include "ds_client.h"
#include "ds2grist/err.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct request {
    CURL *easy;
    struct curl_slist *headers;
    char *post;
    char *body;
    size_t body_len;
    char retry_after[32];
    void *opaque;
    struct request *prev, *next; /* the client's list of requests in flight */
} request_t;

struct d2g_ds_client {
    CURLM *multi;
    char *endpoint;
    long timeout_s;
    int in_flight;
    request_t *requests;
};

static void list_remove(d2g_ds_client_t *c, request_t *r) {
    if (r->prev)
        r->prev->next = r->next;
    else
        c->requests = r->next;
    if (r->next)
        r->next->prev = r->prev;
    c->in_flight--;
}

const char *d2g_ds_status_name(d2g_ds_status_t s) {
    static const char *names[] = {"ok", "rate_limited", "retry", "too_big", "auth", "graphql",
                                  "bad_response"};
    return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "unknown";
}

d2g_ds_client_t *d2g_ds_client_new(const char *endpoint, int timeout_s, char *err, size_t errlen) {
    d2g_ds_client_t *c = calloc(1, sizeof(*c));
    if (!c || !(c->multi = curl_multi_init()) || !(c->endpoint = strdup(endpoint))) {
        d2g_err_set(err, errlen, "out of memory");
        d2g_ds_client_free(c);
        return NULL;
    }
    c->timeout_s = timeout_s;
    /* Reuse connections to the DS host across requests. */
    curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, 32L);
    return c;
}

static void request_free(request_t *r) {
    if (!r)
        return;
    if (r->easy)
        curl_easy_cleanup(r->easy);
    /* The Authorization header held the token: wipe it before freeing. */
    for (struct curl_slist *h = r->headers; h; h = h->next)
        explicit_bzero(h->data, strlen(h->data));
    curl_slist_free_all(r->headers);
    free(r->post);
    free(r->body);
    free(r);
}

void d2g_ds_client_free(d2g_ds_client_t *c) {
    if (!c)
        return;
    while (c->requests) {
        request_t *r = c->requests;
        curl_multi_remove_handle(c->multi, r->easy);
        list_remove(c, r);
        request_free(r);
    }
    if (c->multi)
        curl_multi_cleanup(c->multi);
    free(c->endpoint);
    free(c);
}

static size_t on_body(char *p, size_t size, size_t n, void *ud) {
    request_t *r = ud;
    size_t add = size * n;
    if (r->body_len + add > 256u * 1024 * 1024) /* a sane ceiling for one page */
        return 0;
    char *b = realloc(r->body, r->body_len + add + 1);
    if (!b)
        return 0;
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

int d2g_ds_client_start(d2g_ds_client_t *c, const char *token, const char *operation,
                        const char *query, json_t *variables, void *opaque, char *err,
                        size_t errlen) {
    request_t *r = calloc(1, sizeof(*r));
    char auth[8300];
    if (!r)
        return d2g_err_set(err, errlen, "out of memory");
    json_t *body = json_pack("{s:s, s:O, s:s}", "query", query, "variables", variables,
                             "operationName", operation);
    r->post = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
    r->headers = curl_slist_append(NULL, "Content-Type: application/json");
    r->headers = curl_slist_append(r->headers, "Accept: application/json");
    r->headers = curl_slist_append(r->headers, auth);
    explicit_bzero(auth, sizeof(auth));
    r->easy = curl_easy_init();
    r->opaque = opaque;
    if (!r->post || !r->headers || !r->easy) {
        request_free(r);
        return d2g_err_set(err, errlen, "out of memory");
    }
    curl_easy_setopt(r->easy, CURLOPT_URL, c->endpoint);
    curl_easy_setopt(r->easy, CURLOPT_POSTFIELDS, r->post);
    curl_easy_setopt(r->easy, CURLOPT_HTTPHEADER, r->headers);
    curl_easy_setopt(r->easy, CURLOPT_TIMEOUT, c->timeout_s);
    curl_easy_setopt(r->easy, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(r->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(r->easy, CURLOPT_ACCEPT_ENCODING, ""); /* gzip when offered */
    curl_easy_setopt(r->easy, CURLOPT_USERAGENT, "ds2grist-producer");
    curl_easy_setopt(r->easy, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(r->easy, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(r->easy, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(r->easy, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(r->easy, CURLOPT_PRIVATE, r);
    if (curl_multi_add_handle(c->multi, r->easy) != CURLM_OK) {
        request_free(r);
        return d2g_err_set(err, errlen, "curl: cannot add a request");
    }
    r->next = c->requests;
    if (r->next)
        r->next->prev = r;
    c->requests = r;
    c->in_flight++;
    return 0;
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
        long s = retry_after && *retry_after ? strtol(retry_after, NULL, 10) : 0;
        res->status = D2G_DS_RATE_LIMITED;
        res->retry_after_ms = (s > 0 ? s : 60) * 1000;
        snprintf(res->error, sizeof(res->error), "HTTP 429: rate limited, retry after %ld s",
                 s > 0 ? s : 60);
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
}

int d2g_ds_client_poll(d2g_ds_client_t *c, int timeout_ms, d2g_ds_done_cb done, void *ud) {
    int running = 0, left;
    curl_multi_poll(c->multi, NULL, 0, timeout_ms, NULL);
    curl_multi_perform(c->multi, &running);
    CURLMsg *m;
    while ((m = curl_multi_info_read(c->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        request_t *r = NULL;
        long status = 0;
        CURLcode code = m->data.result;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &status);
        curl_multi_remove_handle(c->multi, m->easy_handle);
        list_remove(c, r);
        d2g_ds_result_t res;
        d2g_ds_classify(code, status, r->retry_after, r->body, r->body_len, &res);
        done(r->opaque, &res, ud);
        json_decref(res.data);
        request_free(r);
    }
    return c->in_flight;
}

int d2g_ds_client_in_flight(const d2g_ds_client_t *c) { return c->in_flight; }
