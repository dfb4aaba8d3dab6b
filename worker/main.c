/*
 * main.c - ds2grist-worker entry point.
 *
 * For now it loads and validates the configuration (so that deployments and
 * config checks can be exercised); the worker loop itself is the subject of its
 * own issue and is not there yet: the program says so and exits 1.
 */
#include "ds2grist/cli.h"
#include "ds2grist/log.h"

static const char usage[] =
    "usage: ds2grist-worker [--config PATH] [--help] [--version]\n"
    "  --config PATH  configuration file (default: $DS2GRIST_CONFIG)\n";

int main(int argc, char **argv) {
    d2g_config_t *cfg;
    int argi;
    int rc = d2g_cli_start(argc, argv, "worker", usage, &cfg, &argi);
    if (!cfg)
        return rc;
    d2g_log(D2G_LOG_ERROR, "not_implemented", 0, NULL, "the worker loop is not implemented yet");
    d2g_config_free(cfg);
    return 1;
}
