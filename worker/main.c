/*
 * main.c - ds2grist-worker: consumes dossier messages and writes them into
 * Grist documents (see worker.h and writer.h).
 *
 *   ds2grist-worker [--config PATH]    run until SIGTERM
 */
#include "worker.h"

#include "ds2grist/cli.h"
#include "ds2grist/err.h"
#include "ds2grist/log.h"
#include "ds2grist/registry.h"
#include "ds2grist/runtime.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

static const char usage[] =
    "usage: ds2grist-worker [--config PATH]\n"
    "  --config PATH  configuration file (default: $DS2GRIST_CONFIG)\n"
    "Consumes the dossier topic and writes every dossier into its Grist document until SIGTERM.\n";

static volatile sig_atomic_t stop_requested, reload_requested;

/* The worker's hook: a dossier of a procedure the registry has but this
 * worker's configuration does not yet (its reload comes within seconds). */
static int unknown_procedure(void *reg, int64_t procedure) { return d2g_registry_has(reg, procedure); }

int main(int argc, char **argv) {
    d2g_config_t *cfg;
    char err[D2G_ERRLEN];
    int argi;
    const char *path = NULL;
    int rc = d2g_cli_start_path(argc, argv, "worker", usage, &cfg, &argi, &path);
    if (!cfg)
        return rc;
    if (argi < argc) {
        fprintf(stderr, "ds2grist-worker: unexpected argument %s\n%s", argv[argi], usage);
        d2g_config_free(cfg);
        return 2;
    }
    d2g_cli_catch_stop(&stop_requested);
    d2g_cli_catch_reload(&reload_requested);

    d2g_runtime_t rt;
    d2g_runtime_opts_t ro = {.sighup = &reload_requested, .registry_include_paused = 1};
    /* Paused registry entries too: what was emitted before a pause is still written. */
    if (d2g_runtime_start(&rt, path, cfg, &ro, err, sizeof(err))) {
        d2g_log_err(D2G_LOG_ERROR, "start_failed", 0, NULL, err, "cannot start");
        return 1;
    }
    d2g_worker_t *w = d2g_worker_new(rt.live, &rt.svc, err, sizeof(err));
    if (!w) {
        d2g_log_err(D2G_LOG_ERROR, "start_failed", 0, NULL, err, "cannot start");
        d2g_runtime_stop(&rt);
        return 1;
    }
    if (rt.reg)
        d2g_worker_set_unknown_hook(w, unknown_procedure, rt.reg);
    d2g_log(D2G_LOG_INFO, "started", 0, NULL, "consuming %s as group %s", rt.boot->kafka.topic,
            rt.boot->kafka.consumer_group);
    rc = d2g_worker_run(w, &stop_requested);
    d2g_worker_free(w);
    d2g_runtime_stop(&rt);
    return rc;
}
