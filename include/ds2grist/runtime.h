/*
 * runtime.h - what a long-running service (producer, worker) holds for its
 * whole life besides its own loop: the health and metrics server, the live
 * configuration (reload.h) and, when registry.encryption_key is set, the
 * procedure registry as one of its procedure sources (registry.h) with the
 * sealbox that opens its DS tokens.
 *
 * One start and one stop, so that every service sets these up in the same
 * order and releases all of them, whatever step failed:
 *
 *   d2g_runtime_t rt;
 *   if (d2g_runtime_start(&rt, path, cfg, &opts, err, errlen)) { log; return 1; }
 *   ... d2g_reload_current(rt.live), rt.reg, rt.boot ...
 *   d2g_runtime_stop(&rt);
 *
 * Ownership: d2g_runtime_start takes the caller's reference to cfg in every
 * case (freed on failure). rt.boot is a reference to the start-up
 * configuration held until d2g_runtime_stop, for what is fixed at start-up
 * (Kafka topics, the registry's Redis and Kafka settings). rt must not move
 * while started (the registry source points into it).
 */
#ifndef D2G_RUNTIME_H
#define D2G_RUNTIME_H

#include "ds2grist/config.h"
#include "ds2grist/registry.h"
#include "ds2grist/reload.h"
#include "ds2grist/sealbox.h"
#include "ds2grist/service.h"

#include <signal.h>
#include <stddef.h>

typedef struct d2g_runtime_opts {
    volatile sig_atomic_t *sighup; /* set by d2g_cli_catch_reload */
    int registry_include_paused;  /* workers: paused entries still written */
} d2g_runtime_opts_t;

typedef struct d2g_runtime {
    d2g_service_t svc;         /* /healthz /readyz /metrics */
    d2g_reload_t *live;        /* the running configuration: d2g_reload_current */
    d2g_config_t *boot;        /* one reference to the start-up configuration */
    d2g_registry_t *reg;       /* NULL without registry.encryption_key */
    d2g_sealbox_t *sb;         /* idem */
    d2g_registry_source_t rs;  /* the registry source's state */
    int svc_started;
} d2g_runtime_t;

/* Starts the service, the live configuration and the registry source. On
 * failure returns -1 with err saying which part failed and why, everything
 * started so far stopped and cfg freed. */
int d2g_runtime_start(d2g_runtime_t *rt, const char *path, d2g_config_t *cfg,
                      const d2g_runtime_opts_t *opts, char *err, size_t errlen);
/* Stops and frees all of it (a zeroed or half-started rt too). Stop the
 * service's users (poller, worker) first. */
void d2g_runtime_stop(d2g_runtime_t *rt);

#endif
