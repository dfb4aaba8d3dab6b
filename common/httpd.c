/*
 * httpd.c - /healthz, /readyz and /metrics over libmicrohttpd, see httpd.h.
 *
 * The heartbeat is one atomic monotonic timestamp: the service loop stores,
 * the request threads load. Everything else the handlers read is set before
 * MHD_start_daemon and never changed, except the start-up error message,
 * which has its own mutex because MHD may log from its threads.
 */
#include "ds2grist/httpd.h"
#include "ds2grist/alloc.h"
#include "ds2grist/clock.h"
#include "ds2grist/err.h"
#include "ds2grist/log.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define CONNECTION_LIMIT 32
#define CONNECTION_TIMEOUT_S 10
#define REASONLEN 768

#define TEXT_PLAIN "text/plain; charset=utf-8"
#define PROMETHEUS_TEXT "text/plain; version=0.0.4; charset=utf-8"

struct d2g_httpd {
    struct MHD_Daemon *daemon;
    int port;
    d2g_metrics_t *metrics;
    d2g_httpd_ready_cb ready;
    void *ud;
    int64_t liveness_timeout_ms;
    _Atomic int64_t last_beat_ms; /* d2g_clock_mono_ms() of the last heartbeat */
    pthread_mutex_t log_lock;
    char last_error[256]; /* MHD's last message, for d2g_httpd_start's err */
};

/* MHD_OPTION_EXTERNAL_LOGGER: MHD's messages as d2g_log lines. */
static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
    d2g_httpd_t *h = cls;
    char msg[256];

    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    pthread_mutex_lock(&h->log_lock);
    snprintf(h->last_error, sizeof(h->last_error), "%s", msg);
    pthread_mutex_unlock(&h->log_lock);
    d2g_log(D2G_LOG_WARN, "httpd_error", 0, NULL, "%s", msg);
}

/* Queue a response; body is copied unless mode says otherwise. */
static enum MHD_Result reply(struct MHD_Connection *conn, unsigned int status,
                             const char *content_type, const char *body, size_t len,
                             enum MHD_ResponseMemoryMode mode) {
    struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)body, mode);
    if (!r) {
        if (mode == MHD_RESPMEM_MUST_FREE)
            free((void *)body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    enum MHD_Result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result reply_text(struct MHD_Connection *conn, unsigned int status,
                                  const char *text) {
    return reply(conn, status, TEXT_PLAIN, text, strlen(text), MHD_RESPMEM_MUST_COPY);
}

static enum MHD_Result serve_healthz(d2g_httpd_t *h, struct MHD_Connection *conn) {
    if (h->liveness_timeout_ms <= 0)
        return reply_text(conn, MHD_HTTP_OK, "ok\n");
    int64_t age = d2g_clock_mono_ms() - atomic_load(&h->last_beat_ms);
    if (age <= h->liveness_timeout_ms)
        return reply_text(conn, MHD_HTTP_OK, "ok\n");
    char body[128];
    snprintf(body, sizeof(body), "not alive: no heartbeat for %lld ms (limit %lld ms)\n",
             (long long)age, (long long)h->liveness_timeout_ms);
    return reply_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE, body);
}

static enum MHD_Result serve_readyz(d2g_httpd_t *h, struct MHD_Connection *conn) {
    char reason[REASONLEN] = "";
    int ok = !h->ready || h->ready(h->ud, reason, sizeof(reason));
    reason[sizeof(reason) - 1] = '\0';
    /* One line: a reason with line breaks would break the format. */
    for (char *p = reason; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    char body[REASONLEN + 32];
    if (ok && !reason[0])
        return reply_text(conn, MHD_HTTP_OK, "ready\n");
    if (ok) { /* ready, with a detail (service.h) */
        snprintf(body, sizeof(body), "ready; %s\n", reason);
        return reply_text(conn, MHD_HTTP_OK, body);
    }
    snprintf(body, sizeof(body), "not ready: %s\n", reason[0] ? reason : "no reason given");
    return reply_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE, body);
}

static enum MHD_Result serve_metrics(d2g_httpd_t *h, struct MHD_Connection *conn) {
    char *text = d2g_metrics_render(h->metrics);
    if (!text)
        return reply_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
    /* MHD frees text with free() once sent. */
    return reply(conn, MHD_HTTP_OK, PROMETHEUS_TEXT, text, strlen(text), MHD_RESPMEM_MUST_FREE);
}

/* MHD_AccessHandlerCallback. Every route answers on the first call: none
 * reads a body, and MHD closes the connection if the client sent one. */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **req_cls) {
    d2g_httpd_t *h = cls;
    (void)version;
    (void)upload_data;
    (void)upload_data_size;
    (void)req_cls;

    int is_health = strcmp(url, "/healthz") == 0, is_ready = strcmp(url, "/readyz") == 0;
    int is_metrics = h->metrics && strcmp(url, "/metrics") == 0;
    if (!is_health && !is_ready && !is_metrics)
        return reply_text(conn, MHD_HTTP_NOT_FOUND, "not found\n");
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return reply_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n");
    if (is_health)
        return serve_healthz(h, conn);
    if (is_ready)
        return serve_readyz(h, conn);
    return serve_metrics(h, conn);
}

/* Whether the host can open IPv6 sockets (some pods have IPv6 disabled). */
static int have_ipv6(void) {
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    if (fd < 0)
        return 0;
    close(fd);
    return 1;
}

d2g_httpd_t *d2g_httpd_start(int port, const char *bind_addr, d2g_metrics_t *metrics,
                             d2g_httpd_ready_cb ready, void *ud, int64_t liveness_timeout_ms,
                             char *err, size_t errlen) {
    struct sockaddr_storage ss;
    unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                         MHD_USE_AUTO | MHD_USE_ERROR_LOG;
    char where[64]; /* "127.0.0.1:9090", "[::1]:9090", "*:9090" (every address) */

    if (port < 0 || port > 65535) {
        d2g_err_set(err, errlen, "http server: port %d: must be from 0 to 65535", port);
        return NULL;
    }
    memset(&ss, 0, sizeof(ss));
    if (bind_addr) {
        struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        if (inet_pton(AF_INET, bind_addr, &in4->sin_addr) == 1) {
            in4->sin_family = AF_INET;
            in4->sin_port = htons((uint16_t)port);
        } else if (inet_pton(AF_INET6, bind_addr, &in6->sin6_addr) == 1) {
            in6->sin6_family = AF_INET6;
            in6->sin6_port = htons((uint16_t)port);
            flags |= MHD_USE_IPv6;
        } else {
            d2g_err_set(err, errlen,
                        "http server: bind address \"%s\": not an IPv4 or IPv6 address",
                        bind_addr);
            return NULL;
        }
    } else if (have_ipv6()) {
        flags |= MHD_USE_DUAL_STACK;
    }

    snprintf(where, sizeof(where), ss.ss_family == AF_INET6 ? "[%s]:%d" : "%s:%d",
             bind_addr ? bind_addr : "*", port);

    d2g_httpd_t *h = d2g_calloc(1, sizeof(*h));
    if (pthread_mutex_init(&h->log_lock, NULL) != 0) {
        free(h);
        d2g_err_set(err, errlen, "http server: out of memory");
        return NULL;
    }
    h->metrics = metrics;
    h->ready = ready;
    h->ud = ud;
    h->liveness_timeout_ms = liveness_timeout_ms;
    atomic_store(&h->last_beat_ms, d2g_clock_mono_ms());

    struct MHD_OptionItem opts[] = {
        {MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)on_mhd_log, h},
        {MHD_OPTION_CONNECTION_LIMIT, CONNECTION_LIMIT, NULL},
        {MHD_OPTION_CONNECTION_TIMEOUT, CONNECTION_TIMEOUT_S, NULL},
        {bind_addr ? MHD_OPTION_SOCK_ADDR : MHD_OPTION_END, 0, &ss},
        {MHD_OPTION_END, 0, NULL},
    };
    h->daemon = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, on_request, h,
                                 MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
    if (!h->daemon) {
        pthread_mutex_lock(&h->log_lock);
        d2g_err_set(err, errlen, "http server: cannot listen on %s: %s", where,
                    h->last_error[0] ? h->last_error : "libmicrohttpd failed to start");
        pthread_mutex_unlock(&h->log_lock);
        pthread_mutex_destroy(&h->log_lock);
        free(h);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info && info->port ? info->port : port;
    d2g_log(D2G_LOG_INFO, "httpd_started", 0, NULL,
            "serving /healthz, /readyz and /metrics on %s (port %d)", where, h->port);
    return h;
}

void d2g_httpd_stop(d2g_httpd_t *h) {
    if (!h)
        return;
    MHD_stop_daemon(h->daemon);
    pthread_mutex_destroy(&h->log_lock);
    free(h);
}

int d2g_httpd_port(const d2g_httpd_t *h) { return h ? h->port : 0; }

void d2g_httpd_heartbeat(d2g_httpd_t *h) {
    if (h)
        atomic_store(&h->last_beat_ms, d2g_clock_mono_ms());
}
