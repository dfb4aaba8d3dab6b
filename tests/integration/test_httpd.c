/* test_httpd.c - /healthz, /readyz and /metrics over real HTTP (libcurl), on a free port. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "ds2grist/err.h"
#include "ds2grist/httpd.h"
#include "ds2grist/metrics.h"

typedef struct {
    long status;
    char body[16384];
    size_t len;
    char content_type[128];
    char allow[64];
} resp_t;

static size_t on_body(char *p, size_t size, size_t n, void *ud) {
    resp_t *r = ud;
    size_t len = size * n, room = sizeof(r->body) - 1 - r->len;
    memcpy(r->body + r->len, p, len < room ? len : room);
    r->len += len < room ? len : room;
    r->body[r->len] = '\0';
    return len;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud) {
    resp_t *r = ud;
    size_t len = size * n;
    if (len > 6 && strncasecmp(p, "Allow:", 6) == 0) {
        size_t start = 6, end = len;
        while (start < end && p[start] == ' ')
            start++;
        while (end > start && (p[end - 1] == '\r' || p[end - 1] == '\n'))
            end--;
        snprintf(r->allow, sizeof(r->allow), "%.*s", (int)(end - start), p + start);
    }
    return len;
}

/* method: "GET", "HEAD", "POST", "DELETE". host: "127.0.0.1" or "[::1]". */
static void http(const char *method, const char *host, int port, const char *path, resp_t *r) {
    char url[256];
    snprintf(url, sizeof(url), "http://%s:%d%s", host, port, path);
    memset(r, 0, sizeof(*r));
    CURL *c = curl_easy_init();
    assert_non_null(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    else if (strcmp(method, "POST") == 0)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, "x=1");
    else if (strcmp(method, "GET") != 0)
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    CURLcode rc = curl_easy_perform(c);
    if (rc != CURLE_OK)
        fprintf(stderr, "%s %s: %s\n", method, url, curl_easy_strerror(rc));
    assert_int_equal(rc, CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    char *ct = NULL;
    curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
    if (ct)
        snprintf(r->content_type, sizeof(r->content_type), "%s", ct);
    curl_easy_cleanup(c);
}

static void get(int port, const char *path, resp_t *r) { http("GET", "127.0.0.1", port, path, r); }

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* --- /healthz ------------------------------------------------------------- */

static void test_healthz(void **state) {
    (void)state;
    char err[D2G_ERRLEN] = "";
    d2g_httpd_t *h = d2g_httpd_start(0, "127.0.0.1", NULL, NULL, NULL, 200, err, sizeof(err));
    if (!h)
        fprintf(stderr, "%s\n", err);
    assert_non_null(h);
    int port = d2g_httpd_port(h);
    assert_true(port > 0 && port <= 65535);
    resp_t r;

    get(port, "/healthz", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "ok\n");
    assert_string_equal(r.content_type, "text/plain; charset=utf-8");

    /* Heartbeats every 20 ms for twice the timeout: alive throughout. */
    for (int i = 0; i < 20; i++) {
        d2g_httpd_heartbeat(h);
        sleep_ms(20);
        get(port, "/healthz", &r);
        assert_int_equal(r.status, 200);
    }

    /* The loop stops beating: 503 with the age once the timeout has passed. */
    sleep_ms(300);
    get(port, "/healthz", &r);
    assert_int_equal(r.status, 503);
    assert_non_null(strstr(r.body, "not alive: no heartbeat for "));
    assert_non_null(strstr(r.body, " ms (limit 200 ms)\n"));
    long age = strtol(r.body + strlen("not alive: no heartbeat for "), NULL, 10);
    assert_true(age >= 300 && age < 5000);

    /* And alive again on the next heartbeat. */
    d2g_httpd_heartbeat(h);
    get(port, "/healthz", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "ok\n");
    d2g_httpd_stop(h);
}

/* A timeout <= 0 disables the liveness check. */
static void test_healthz_disabled(void **state) {
    (void)state;
    char err[D2G_ERRLEN];
    d2g_httpd_t *h = d2g_httpd_start(0, "127.0.0.1", NULL, NULL, NULL, 0, err, sizeof(err));
    assert_non_null(h);
    sleep_ms(50);
    resp_t r;
    get(d2g_httpd_port(h), "/healthz", &r);
    assert_int_equal(r.status, 200);
    d2g_httpd_stop(h);
}

/* --- /readyz -------------------------------------------------------------- */

typedef struct {
    pthread_mutex_t lock;
    int ready;
    char reason[128];
    int calls;
} readiness_t;

static int ready_cb(void *ud, char *reason, size_t reasonlen) {
    readiness_t *s = ud;
    pthread_mutex_lock(&s->lock);
    int ready = s->ready;
    if (!ready)
        snprintf(reason, reasonlen, "%s", s->reason);
    s->calls++;
    pthread_mutex_unlock(&s->lock);
    return ready;
}

static void set_readiness(readiness_t *s, int ready, const char *reason) {
    pthread_mutex_lock(&s->lock);
    s->ready = ready;
    snprintf(s->reason, sizeof(s->reason), "%s", reason);
    pthread_mutex_unlock(&s->lock);
}

static void test_readyz(void **state) {
    (void)state;
    readiness_t s = {.lock = PTHREAD_MUTEX_INITIALIZER, .ready = 1};
    char err[D2G_ERRLEN];
    d2g_httpd_t *h = d2g_httpd_start(0, "127.0.0.1", NULL, ready_cb, &s, 1000, err, sizeof(err));
    assert_non_null(h);
    int port = d2g_httpd_port(h);
    resp_t r;

    get(port, "/readyz", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "ready\n");

    set_readiness(&s, 0, "redis unreachable: connection refused");
    get(port, "/readyz", &r);
    assert_int_equal(r.status, 503);
    assert_string_equal(r.body, "not ready: redis unreachable: connection refused\n");
    assert_string_equal(r.content_type, "text/plain; charset=utf-8");

    /* The answer stays one line; an empty reason still says something. */
    set_readiness(&s, 0, "kafka:\nno brokers");
    get(port, "/readyz", &r);
    assert_int_equal(r.status, 503);
    assert_string_equal(r.body, "not ready: kafka: no brokers\n");
    set_readiness(&s, 0, "");
    get(port, "/readyz", &r);
    assert_int_equal(r.status, 503);
    assert_string_equal(r.body, "not ready: no reason given\n");

    set_readiness(&s, 1, "");
    get(port, "/readyz", &r);
    assert_int_equal(r.status, 200);
    d2g_httpd_stop(h);
    assert_int_equal(s.calls, 5);

    /* Without a callback: always ready. */
    h = d2g_httpd_start(0, "127.0.0.1", NULL, NULL, NULL, 1000, err, sizeof(err));
    assert_non_null(h);
    get(d2g_httpd_port(h), "/readyz", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "ready\n");
    d2g_httpd_stop(h);
}

/* --- /metrics ------------------------------------------------------------- */

static void test_metrics(void **state) {
    (void)state;
    d2g_metrics_t *m = d2g_metrics_new();
    d2g_metric_t *c = d2g_metrics_counter(m, "ds2grist_test_requests_total", "Test requests.", 1,
                                          (const char *[]){"route"});
    assert_non_null(c);
    char err[D2G_ERRLEN];
    d2g_httpd_t *h = d2g_httpd_start(0, "127.0.0.1", m, NULL, NULL, 1000, err, sizeof(err));
    assert_non_null(h);
    int port = d2g_httpd_port(h);
    resp_t r;

    const char *route[] = {"x"};
    for (int i = 0; i < 3; i++)
        d2g_metric_inc(c, route, 1);
    get(port, "/metrics", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.content_type, "text/plain; version=0.0.4; charset=utf-8");
    assert_string_equal(r.body, "# HELP ds2grist_test_requests_total Test requests.\n"
                                "# TYPE ds2grist_test_requests_total counter\n"
                                "ds2grist_test_requests_total{route=\"x\"} 3\n");

    /* Each scrape renders the registry as it is now. */
    d2g_metric_inc(c, route, 1);
    get(port, "/metrics?name=ignored", &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "ds2grist_test_requests_total{route=\"x\"} 4\n"));

    /* HEAD: same status and headers, no body. */
    http("HEAD", "127.0.0.1", port, "/metrics", &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.len, 0);
    assert_string_equal(r.content_type, "text/plain; version=0.0.4; charset=utf-8");
    d2g_httpd_stop(h);
    d2g_metrics_free(m);
}

/* Scrapes in parallel with updates (and under the sanitizers). */
typedef struct {
    int port;
    int ok;
} scraper_t;

static void *scraper(void *p) {
    scraper_t *s = p;
    for (int i = 0; i < 20; i++) {
        resp_t r;
        char url[64];
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", s->port);
        CURL *c = curl_easy_init();
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
        memset(&r, 0, sizeof(r));
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
        if (curl_easy_perform(c) == CURLE_OK &&
            strstr(r.body, "# TYPE ds2grist_test_requests_total counter\n"))
            s->ok++;
        curl_easy_cleanup(c);
    }
    return NULL;
}

static void test_metrics_concurrent(void **state) {
    (void)state;
    d2g_metrics_t *m = d2g_metrics_new();
    d2g_metric_t *c = d2g_metrics_counter(m, "ds2grist_test_requests_total", "Test requests.", 0,
                                          NULL);
    char err[D2G_ERRLEN];
    d2g_httpd_t *h = d2g_httpd_start(0, "127.0.0.1", m, NULL, NULL, 1000, err, sizeof(err));
    assert_non_null(h);
    scraper_t s[3] = {{d2g_httpd_port(h), 0}, {d2g_httpd_port(h), 0}, {d2g_httpd_port(h), 0}};
    pthread_t th[3];
    for (int i = 0; i < 3; i++)
        assert_int_equal(pthread_create(&th[i], NULL, scraper, &s[i]), 0);
    for (int i = 0; i < 20000; i++) {
        d2g_metric_inc(c, NULL, 1);
        d2g_httpd_heartbeat(h);
    }
    for (int i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(s[i].ok, 20);
    }
    resp_t r;
    get(d2g_httpd_port(h), "/metrics", &r);
    assert_non_null(strstr(r.body, "ds2grist_test_requests_total 20000\n"));
    d2g_httpd_stop(h);
    d2g_metrics_free(m);
}

/* --- other routes and methods --------------------------------------------- */

static void test_not_found_and_methods(void **state) {
    (void)state;
    d2g_metrics_t *m = d2g_metrics_new();
    char err[D2G_ERRLEN];
    d2g_httpd_t *h = d2g_httpd_start(0, "127.0.0.1", m, NULL, NULL, 1000, err, sizeof(err));
    assert_non_null(h);
    int port = d2g_httpd_port(h);
    resp_t r;

    static const char *const missing[] = {"/", "/nope", "/metrics/", "/healthz/x", "/HEALTHZ"};
    for (size_t i = 0; i < sizeof(missing) / sizeof(missing[0]); i++) {
        get(port, missing[i], &r);
        assert_int_equal(r.status, 404);
        assert_string_equal(r.body, "not found\n");
    }
    static const char *const routes[] = {"/healthz", "/readyz", "/metrics"};
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        http("POST", "127.0.0.1", port, routes[i], &r);
        assert_int_equal(r.status, 405);
        assert_string_equal(r.allow, "GET, HEAD");
        http("DELETE", "127.0.0.1", port, routes[i], &r);
        assert_int_equal(r.status, 405);
        assert_string_equal(r.body, "method not allowed\n");
    }
    /* A POST elsewhere is still a 404. */
    http("POST", "127.0.0.1", port, "/nope", &r);
    assert_int_equal(r.status, 404);
    d2g_httpd_stop(h);
    d2g_metrics_free(m);

    /* Without a registry, /metrics does not exist. */
    h = d2g_httpd_start(0, "127.0.0.1", NULL, NULL, NULL, 1000, err, sizeof(err));
    assert_non_null(h);
    get(d2g_httpd_port(h), "/metrics", &r);
    assert_int_equal(r.status, 404);
    d2g_httpd_stop(h);
}

/* --- addresses and start-up errors ---------------------------------------- */

static void test_start_errors(void **state) {
    (void)state;
    char err[D2G_ERRLEN] = "";

    assert_null(d2g_httpd_start(0, "localhost", NULL, NULL, NULL, 1000, err, sizeof(err)));
    assert_string_equal(err,
                        "http server: bind address \"localhost\": not an IPv4 or IPv6 address");
    assert_null(d2g_httpd_start(-1, NULL, NULL, NULL, NULL, 1000, err, sizeof(err)));
    assert_string_equal(err, "http server: port -1: must be from 0 to 65535");
    assert_null(d2g_httpd_start(65536, NULL, NULL, NULL, NULL, 1000, err, sizeof(err)));

    /* A port already taken. */
    d2g_httpd_t *a = d2g_httpd_start(0, "127.0.0.1", NULL, NULL, NULL, 1000, err, sizeof(err));
    assert_non_null(a);
    err[0] = '\0';
    assert_null(d2g_httpd_start(d2g_httpd_port(a), "127.0.0.1", NULL, NULL, NULL, 1000, err,
                                sizeof(err)));
    char expected[128];
    snprintf(expected, sizeof(expected), "http server: cannot listen on 127.0.0.1:%d: ",
             d2g_httpd_port(a));
    if (strncmp(err, expected, strlen(expected)) != 0)
        fprintf(stderr, "%s\n", err);
    assert_int_equal(strncmp(err, expected, strlen(expected)), 0);
    assert_non_null(strstr(err, "in use")); /* MHD's own words: "Address already in use" */
    d2g_httpd_stop(a);
    d2g_httpd_stop(NULL);
    d2g_httpd_heartbeat(NULL);
}

static void test_bind_addresses(void **state) {
    (void)state;
    char err[D2G_ERRLEN];
    resp_t r;

    /* Every address (NULL): reachable on the loopback. */
    d2g_httpd_t *h = d2g_httpd_start(0, NULL, NULL, NULL, NULL, 1000, err, sizeof(err));
    if (!h)
        fprintf(stderr, "%s\n", err);
    assert_non_null(h);
    get(d2g_httpd_port(h), "/healthz", &r);
    assert_int_equal(r.status, 200);
    d2g_httpd_stop(h);

    /* IPv6 loopback, when the host has IPv6. */
    h = d2g_httpd_start(0, "::1", NULL, NULL, NULL, 1000, err, sizeof(err));
    if (!h) {
        fprintf(stderr, "IPv6 loopback unavailable, not tested: %s\n", err);
        return;
    }
    http("GET", "[::1]", d2g_httpd_port(h), "/healthz", &r);
    assert_int_equal(r.status, 200);
    d2g_httpd_stop(h);
}

int main(void) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_healthz),
        cmocka_unit_test(test_healthz_disabled),
        cmocka_unit_test(test_readyz),
        cmocka_unit_test(test_metrics),
        cmocka_unit_test(test_metrics_concurrent),
        cmocka_unit_test(test_not_found_and_methods),
        cmocka_unit_test(test_start_errors),
        cmocka_unit_test(test_bind_addresses),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
