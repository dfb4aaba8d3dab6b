/*
 * cli.h - what every ds2grist program does first: find and load the configuration.
 *
 * The configuration path comes from --config PATH, else DS2GRIST_CONFIG.
 * The log level comes from the configuration (log_level) or DS2GRIST_LOG_LEVEL.
 */
#ifndef D2G_CLI_H
#define D2G_CLI_H

#include <signal.h>

#include "ds2grist/config.h"

/*
 * Parses the common options (--config PATH, --help, --version) up to the
 * first other argument, whose index goes to *argi (argc if none): commands
 * and their arguments are the caller's. Loads and validates the
 * configuration and initialises the logger for service. Returns 0 with *cfg
 * owned by the caller, or the process exit code to use (2 for a usage or
 * configuration error, 0 after --help/--version), having printed the reason.
 */
int d2g_cli_start(int argc, char **argv, const char *service, const char *usage,
                  d2g_config_t **cfg, int *argi);

/* The same, and *path_out gets the configuration's path (argv or the
 * environment: valid as long as they are), for a live reload (reload.h). */
int d2g_cli_start_path(int argc, char **argv, const char *service, const char *usage,
                       d2g_config_t **cfg, int *argi, const char **path_out);

/* SIGTERM and SIGINT set *flag to 1 (the service loop then stops cleanly).
 * The flag is the one piece of state a signal handler may touch. */
void d2g_cli_catch_stop(volatile sig_atomic_t *flag);
/* SIGHUP sets *flag to 1: the loop reloads the configuration (reload.h). */
void d2g_cli_catch_reload(volatile sig_atomic_t *flag);

#endif
