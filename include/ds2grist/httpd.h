/*
 * httpd.h - health and metrics over HTTP for Kubernetes and Prometheus.
 *
 * A small libmicrohttpd server that each service (producer, worker) runs
 * beside its service loop. Routes, GET (and HEAD) only, other methods 405:
 *
 *   /healthz  liveness: 200 "ok\n" while the service loop has called
 *             d2g_httpd_heartbeat within liveness_timeout_ms, else 503 with
 *             the age of the last heartbeat. A stuck loop gets the pod
 *             restarted.
 *   /readyz   readiness: asks the ready callback; 200 "ready\n", or 503
 *             "not ready: <reason>\n".
 *   /metrics  the registry in the Prometheus text format 0.0.4
 *             (Content-Type "text/plain; version=0.0.4; charset=utf-8").
 *   other     404.
 *
 * Requests are served by libmicrohttpd's own threads (one per connection,
 * at most 32 connections), never by the caller's: a slow readiness check
 * cannot delay /healthz. MHD's error messages go to d2g_log. docs/metrics.md
 * describes the endpoints for operators.
 */
#ifndef D2G_HTTPD_H
#define D2G_HTTPD_H

#include <stddef.h>
#include <stdint.h>

#include "ds2grist/metrics.h"

typedef struct d2g_httpd d2g_httpd_t;

/*
 * Readiness: return 1 if the service can do its work, or 0 and write a
 * one-line reason ("redis unreachable: connection refused") into reason
 * (reasonlen bytes, already holding ""). Called from libmicrohttpd's
 * threads, possibly several at once, while the service loop runs: it must be
 * thread-safe, and should be quick (read a state the loop keeps up to date
 * rather than probe a server). It must not write secrets into reason: the
 * text is served to anyone who can reach the port.
 */
typedef int (*d2g_httpd_ready_cb)(void *ud, char *reason, size_t reasonlen);

/*
 * Start serving on port (0: any free port, see d2g_httpd_port) of bind_addr
 * (an IPv4 or IPv6 literal; NULL: every address, IPv6 included when the
 * host has it). metrics (NULL: /metrics answers 404) and ud are borrowed and
 * must outlive the server; ready NULL means always ready.
 * liveness_timeout_ms <= 0 disables the liveness check (/healthz always 200).
 * The heartbeat clock starts now, so the loop has liveness_timeout_ms for its
 * first iteration. Returns NULL and writes the cause into err on failure
 * (bad address, port in use, ...).
 */
d2g_httpd_t *d2g_httpd_start(int port, const char *bind_addr, d2g_metrics_t *metrics,
                             d2g_httpd_ready_cb ready, void *ud, int64_t liveness_timeout_ms,
                             char *err, size_t errlen);
/* Stops serving (waits for the requests in progress) and frees; NULL is a no-op. */
void d2g_httpd_stop(d2g_httpd_t *h);
/* The port actually bound. */
int d2g_httpd_port(const d2g_httpd_t *h);
/* "The service loop is alive": call once per iteration; lock-free, cheap. */
void d2g_httpd_heartbeat(d2g_httpd_t *h);

#endif
