/*
 * main.c - ds2grist-producer: polls DS for changed dossiers and emits one
 * Kafka message per changed or deleted dossier (see poller.h).
 *
 *   ds2grist-producer [--config PATH]                  run until SIGTERM
 *   ds2grist-producer [--config PATH] resync N [--since DATE]
 *                                                      re-emit procedure N
 */
#include "poller.h"
#include "onboarding.h"

#include "ds2grist/cli.h"
#include "ds2grist/cursor.h"
#include "ds2grist/err.h"
#include "ds2grist/log.h"
#include "ds2grist/redis.h"
#include "ds2grist/runtime.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: ds2grist-producer [--config PATH] [COMMAND]\n"
    "  --config PATH           configuration file (default: $DS2GRIST_CONFIG)\n"
    "Without a command: poll every configured procedure until SIGTERM.\n"
    "Commands:\n"
    "  resync N [--since DATE] reset procedure N's cursor so that its next poll (at once)\n"
    "                          re-emits every dossier, or those modified since DATE (ISO 8601)\n";

static volatile sig_atomic_t stop_requested, reload_requested;

static int cmd_resync(d2g_config_t *cfg, int argc, char **argv) {
    char err[D2G_ERRLEN];
    const char *since = NULL;
    if (argc < 1) {
        fputs(usage, stderr);
        return 2;
    }
    char *end;
    long long n = strtoll(argv[0], &end, 10);
    if (*end || !d2g_config_find_procedure(cfg, n)) {
        fprintf(stderr, "ds2grist-producer: resync: %s is not a configured procedure\n", argv[0]);
        return 2;
    }
    if (argc == 3 && !strcmp(argv[1], "--since"))
        since = argv[2];
    else if (argc != 1) {
        fputs(usage, stderr);
        return 2;
    }
    d2g_redis_t *r;
    if (d2g_redis_connect(cfg->redis.url, cfg->redis.username, cfg->redis.password,
                          cfg->redis.namespace, 5000, &r, err, sizeof(err)) ||
        d2g_cursor_reset(r, n, since, err, sizeof(err))) {
        d2g_log_err(D2G_LOG_ERROR, "resync_failed", n, NULL, err, "cursor not reset");
        if (r)
            d2g_redis_free(r);
        return 1;
    }
    d2g_redis_free(r);
    d2g_log(D2G_LOG_INFO, "resync", n, NULL, "the next poll re-emits every dossier%s%s",
            since ? " modified since " : "", since ? since : "");
    return 0;
}

int main(int argc, char **argv) {
    d2g_config_t *cfg;
    char err[D2G_ERRLEN];
    int argi;
    const char *path = NULL;
    int rc = d2g_cli_start_path(argc, argv, "producer", usage, &cfg, &argi, &path);
    if (!cfg)
        return rc;
    if (argi < argc) {
        if (!strcmp(argv[argi], "resync"))
            rc = cmd_resync(cfg, argc - argi - 1, argv + argi + 1);
        else {
            fprintf(stderr, "ds2grist-producer: unknown command %s\n%s", argv[argi], usage);
            rc = 2;
        }
        d2g_config_free(cfg);
        return rc;
    }

    d2g_cli_catch_stop(&stop_requested);
    d2g_cli_catch_reload(&reload_requested);

    d2g_runtime_t rt;
    d2g_runtime_opts_t ro = {.sighup = &reload_requested};
    if (d2g_runtime_start(&rt, path, cfg, &ro, err, sizeof(err))) {
        d2g_log_err(D2G_LOG_ERROR, "start_failed", 0, NULL, err, "cannot start");
        return 1;
    }
    /* The onboarding service fills the registry (docs/onboarding.md). */
    d2g_onboarding_t *ob = NULL;
    if (rt.reg && rt.boot->onboarding.listen &&
        !(ob = d2g_onboarding_start(rt.boot, err, sizeof(err)))) {
        d2g_log_err(D2G_LOG_ERROR, "start_failed", 0, NULL, err, "cannot start the onboarding service");
        d2g_runtime_stop(&rt);
        return 1;
    }
    d2g_poller_t *p = d2g_poller_new(rt.live, &rt.svc, err, sizeof(err));
    if (!p) {
        d2g_log_err(D2G_LOG_ERROR, "start_failed", 0, NULL, err, "cannot start");
        d2g_onboarding_stop(ob);
        d2g_runtime_stop(&rt);
        return 1;
    }
    d2g_log(D2G_LOG_INFO, "started", 0, NULL, "polling %zu procedures",
            d2g_reload_current(rt.live)->n_procedures);
    rc = d2g_poller_run(p, &stop_requested);
    d2g_onboarding_stop(ob);
    d2g_poller_free(p);
    d2g_runtime_stop(&rt);
    d2g_log(D2G_LOG_INFO, "stopped", 0, NULL, "%s",
            rc == 3 ? "ended on a fatal Kafka error (exit 3); no unacknowledged page moved a cursor"
                    : "cursors saved");
    return rc;
}
