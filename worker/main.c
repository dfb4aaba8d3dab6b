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
#include "ds2grist/reload.h"
#include "ds2grist/sealbox.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

static const char usage[] =
    "usage: ds2grist-worker [--config PATH]\n"
    "  --config PATH  configuration file (default: $DS2GRIST_CONFIG)\n"
    "Consumes the dossier topic and writes every dossier into its Grist document until SIGTERM.\n";

static volatile sig_atomic_t stop_requested, reload_requested;

/* The running configuration, for the registry source (called during a reload). */
static const d2g_config_t *current_of(void *live) { return d2g_reload_current(live); }

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

    d2g_service_t svc;
    if (d2g_service_start(&svc, cfg, err, sizeof(err))) {
        d2g_log_err(D2G_LOG_ERROR, "start_failed", 0, NULL, err, "cannot serve health and metrics");
        d2g_config_free(cfg);
        return 1;
    }
    d2g_reload_t *live = d2g_reload_new(path, cfg, &svc, &reload_requested, err, sizeof(err));
    if (!live) {
        d2g_log_err(D2G_LOG_ERROR, "start_failed", 0, NULL, err, "cannot watch the configuration");
        d2g_service_stop(&svc);
        d2g_config_free(cfg);
        return 1;
    }
    /* The procedure registry as a procedure source (paused entries too: what was
     * emitted before a pause is still written). */
    d2g_registry_t *reg = NULL;
    d2g_sealbox_t *sb = NULL;
    d2g_registry_source_t rs = {0};
    d2g_config_t *boot = d2g_config_ref(cfg); /* the registry's, for the process's life */
    if (boot->registry.encryption_key) {
        d2g_config_source_t src = {"registry", d2g_registry_source_fn, &rs};
        rs.include_paused = 1;
        rs.servers_of = current_of;
        rs.servers_ud = live;
        if (!(sb = d2g_sealbox_new(boot->registry.encryption_key, err, sizeof(err))) ||
            !(reg = d2g_registry_new(boot, err, sizeof(err))) ||
            ((rs.reg = reg), (rs.sb = sb), d2g_reload_add_source(live, &src, err, sizeof(err)))) {
            d2g_log_err(D2G_LOG_ERROR, "start_failed", 0, NULL, err, "cannot read the registry");
            d2g_registry_free(reg);
            d2g_sealbox_free(sb);
            d2g_reload_free(live);
            d2g_service_stop(&svc);
            d2g_config_free(boot);
            return 1;
        }
    }
    d2g_worker_t *w = d2g_worker_new(live, &svc, err, sizeof(err));
    if (!w) {
        d2g_log_err(D2G_LOG_ERROR, "start_failed", 0, NULL, err, "cannot start");
        d2g_registry_free(reg);
        d2g_sealbox_free(sb);
        d2g_reload_free(live);
        d2g_service_stop(&svc);
        d2g_config_free(boot);
        return 1;
    }
    if (reg)
        d2g_worker_set_unknown_hook(w, unknown_procedure, reg);
    d2g_log(D2G_LOG_INFO, "started", 0, NULL, "consuming %s as group %s", boot->kafka.topic,
            boot->kafka.consumer_group);
    rc = d2g_worker_run(w, &stop_requested);
    d2g_worker_free(w);
    d2g_reload_free(live);
    d2g_registry_free(reg);
    d2g_sealbox_free(sb);
    d2g_config_free(boot);
    d2g_service_stop(&svc);
    return rc;
}
