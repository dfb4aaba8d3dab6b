/*
 * reload.h - the live configuration of a service: the one entry point that
 * builds a new configuration and swaps it in without a restart.
 *
 * The effective configuration is the file ∪ the procedure sources added with
 * d2g_reload_add_source (config.h: the file wins on a conflict). A reload
 * loads and validates all of it as a whole (d2g_config_load_sources); if
 * anything is wrong, the running configuration stays, and the failure is
 * logged with the exact key (event config_reload_failed), counted
 * (ds2grist_config_reload_total{result="failed"}) and shown by /readyz as a
 * detail of a service that stays ready (the old configuration still runs).
 *
 * What triggers a reload:
 *   - SIGHUP (d2g_cli_catch_reload sets the flag given to d2g_reload_new);
 *   - the file changing: the directory holding it is watched with inotify,
 *     so a Kubernetes ConfigMap update (the ..data symlink swapped), an
 *     editor's rename-replace and a plain write are all seen; the content is
 *     compared, and also re-read every D2G_RELOAD_POLL_MS in case an event
 *     was missed;
 *   - the fleet's generation counter in Redis ("<ns>:{fleet}:config",
 *     d2g_reload_bump) changing, checked every D2G_RELOAD_REDIS_MS once
 *     d2g_reload_watch_redis was called: how a procedure source tells every
 *     process that its entries changed;
 *   - d2g_reload_request (any thread).
 *
 * Configurations are immutable and reference-counted (d2g_config_ref /
 * d2g_config_free): the loop calls d2g_reload_tick at a safe point of each
 * turn; when it returns 1, d2g_reload_current is the new object, which the
 * loop applies (its new requests use it) while whatever still refers to the
 * old one (requests in flight, queued items) keeps its own reference.
 * Values read once at start-up (Kafka, Redis, http.port, ds.timeout_s) are
 * kept: a reload that changes them says which keys need a restart
 * (config_restart_needed), and applies the rest.
 *
 * One thread (the service loop) calls everything but d2g_reload_request.
 */
#ifndef D2G_RELOAD_H
#define D2G_RELOAD_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "ds2grist/config.h"
#include "ds2grist/redis.h"
#include "ds2grist/service.h"

/* The file's content is compared at least this often, events or not. */
#define D2G_RELOAD_POLL_MS 10000
/* Events are let settle this long before the file is read (a ConfigMap
 * update is several renames). */
#define D2G_RELOAD_SETTLE_MS 200
/* The Redis generation counter is read this often. */
#define D2G_RELOAD_REDIS_MS 3000
#define D2G_RELOAD_MAX_SOURCES 8

typedef struct d2g_reload d2g_reload_t;

/*
 * Takes over initial (the configuration the service started with, loaded
 * from path) and watches path. sighup: the flag d2g_cli_catch_reload sets
 * (may be NULL). svc: its metrics and /readyz detail (may be NULL in tests).
 * Returns NULL with err set if the directory cannot be watched (initial is
 * then still the caller's).
 */
d2g_reload_t *d2g_reload_new(const char *path, d2g_config_t *initial, d2g_service_t *svc,
                             volatile sig_atomic_t *sighup, char *err, size_t errlen);
void d2g_reload_free(d2g_reload_t *r);

/* Adds a procedure source (copied; its ud must outlive r), then reloads at
 * once so that its procedures apply (returns that reload's result). */
int d2g_reload_add_source(d2g_reload_t *r, const d2g_config_source_t *src, char *err,
                          size_t errlen);
/* Watch the fleet's generation counter on redis (borrowed, the loop's own
 * connection). */
void d2g_reload_watch_redis(d2g_reload_t *r, d2g_redis_t *redis);
/* Ask for a reload at the next tick (thread-safe). */
void d2g_reload_request(d2g_reload_t *r);

/* Call at a safe point of each loop turn. Returns 1 if a new configuration
 * became current during this call, 0 otherwise (nothing to do, or a reload
 * failed and the running one stays). */
int d2g_reload_tick(d2g_reload_t *r, int64_t now_mono_ms);
/* Reloads now (why: for the log, e.g. "SIGHUP"). 0 and a new current
 * configuration, or -1 with err (the running one stays, reported). */
int d2g_reload_now(d2g_reload_t *r, const char *why, char *err, size_t errlen);

/* The current configuration, borrowed until the next tick or reload; take a
 * reference (d2g_config_ref) to keep it longer. */
const d2g_config_t *d2g_reload_current(const d2g_reload_t *r);

/* Counters, for tests and status. */
typedef struct d2g_reload_stats {
    uint64_t generation;       /* of the current configuration */
    uint64_t ok, failed;       /* reloads */
    int64_t last_ok_wall_ms;   /* start-up counts */
    int last_failed;           /* the last attempt failed */
    char last_error[512];      /* its cause, naming the key */
} d2g_reload_stats_t;
void d2g_reload_stats(const d2g_reload_t *r, d2g_reload_stats_t *out);

/* Increments the fleet's generation counter: every process watching it
 * reloads within D2G_RELOAD_REDIS_MS (plus its loop turn). */
int d2g_reload_bump(d2g_redis_t *redis, long long *generation, char *err, size_t errlen);

#endif
