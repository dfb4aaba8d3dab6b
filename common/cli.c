/* cli.c - common start-up of the ds2grist programs, see cli.h. */
#include "ds2grist/cli.h"
#include "ds2grist/alloc.h"
#include "ds2grist/err.h"
#include "ds2grist/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef D2G_VERSION
#define D2G_VERSION "unknown"
#endif

static volatile sig_atomic_t *stop_flag, *reload_flag;

static void on_stop_signal(int sig) {
    (void)sig;
    if (stop_flag)
        *stop_flag = 1;
}

static void on_reload_signal(int sig) {
    (void)sig;
    if (reload_flag)
        *reload_flag = 1;
}

void d2g_cli_catch_reload(volatile sig_atomic_t *flag) {
    struct sigaction sa;
    reload_flag = flag;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_reload_signal;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGHUP, &sa, NULL);
}

void d2g_cli_catch_stop(volatile sig_atomic_t *flag) {
    struct sigaction sa;
    stop_flag = flag;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
}

int d2g_cli_start(int argc, char **argv, const char *service, const char *usage,
                  d2g_config_t **cfg, int *argi) {
    return d2g_cli_start_path(argc, argv, service, usage, cfg, argi, NULL);
}

int d2g_cli_start_path(int argc, char **argv, const char *service, const char *usage,
                       d2g_config_t **cfg, int *argi, const char **path_out) {
    const char *path = getenv("DS2GRIST_CONFIG");
    char err[D2G_ERRLEN];

    int i;
    *cfg = NULL;
    for (i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(usage, stdout);
            return 0;
        } else if (!strcmp(argv[i], "--version")) {
            printf("ds2grist-%s %s\n", service, D2G_VERSION);
            return 0;
        } else if (!strcmp(argv[i], "--config") && i + 1 < argc) {
            path = argv[++i];
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "ds2grist-%s: unknown option %s\n%s", service, argv[i], usage);
            return 2;
        } else {
            break;
        }
    }
    *argi = i;
    if (path_out)
        *path_out = path;
    d2g_alloc_init();
    d2g_log_init(service, D2G_LOG_INFO);
    if (!path || !*path) {
        d2g_log(D2G_LOG_ERROR, "config_missing", 0, NULL,
                "no configuration: pass --config PATH or set DS2GRIST_CONFIG");
        return 2;
    }
    if (d2g_config_load(path, cfg, err, sizeof(err))) {
        d2g_log_err(D2G_LOG_ERROR, "config_invalid", 0, NULL, err, "cannot load the configuration");
        return 2;
    }
    d2g_log_init(service, (d2g_log_level_t)d2g_log_level_parse((*cfg)->log_level));
    {
        size_t n_secrets = 0;
        const char *const *secrets = d2g_config_secrets(*cfg, &n_secrets);
        d2g_log_set_secrets(secrets, n_secrets);
    }
    d2g_log(D2G_LOG_INFO, "config_loaded", 0, NULL,
            "%zu procedures, %zu DS tokens, %zu Grist servers", (*cfg)->n_procedures,
            (*cfg)->ds.n_tokens, (*cfg)->grist.n_servers);
    return 0;
}
