/* config_load.c - loads a configuration file with ds2grist's own loader (d2g_config_load) and
 * says whether it is accepted: the chart test (tests/chart/run.sh) runs it on every config.json
 * the Helm chart renders. Usage: chart_config_load FILE. Exit 0 when accepted, 1 otherwise. */
#include "ds2grist/config.h"
#include "ds2grist/err.h"

#include <stdio.h>

int main(int argc, char **argv) {
    char err[D2G_ERRLEN];
    d2g_config_t *cfg = NULL;

    if (argc != 2) {
        fprintf(stderr, "usage: %s FILE\n", argv[0]);
        return 2;
    }
    if (d2g_config_load(argv[1], &cfg, err, sizeof(err)) != 0) {
        printf("refused: %s\n", err);
        return 1;
    }
    printf("accepted\n");
    d2g_config_free(cfg);
    return 0;
}
