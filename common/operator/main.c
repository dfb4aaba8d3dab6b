/*
 * main.c - ds2grist, the operator CLI: what a platform team runs (usually
 * through `kubectl exec deploy/ds2grist-worker -- ds2grist ...`) to check
 * the configuration, see where every procedure stands, resync one, and look
 * at or replay the dead letters.
 *
 *   ds2grist [--config PATH] config check [--json]
 *   ds2grist [--config PATH] status [--json] [--no-lag] [PROCEDURE...]
 *   ds2grist [--config PATH] resync PROCEDURE [--since DATE] [--json]
 *   ds2grist [--config PATH] dlq list [--json] [--limit N]
 *   ds2grist [--config PATH] dlq replay [--dry-run] [--force] [--key KEY] [--limit N] [--json]
 *
 * Exit codes: 0 done, 1 Redis or Kafka could not do it, 2 usage or
 * configuration error. docs/cli.md is the reference.
 */
#include "operator.h"

#include "ds2grist/keys.h"
#include "ds2grist/alloc.h"
#include "ds2grist/cli.h"
#include "ds2grist/cursor.h"
#include "ds2grist/err.h"
#include "ds2grist/redis.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: ds2grist [--config PATH] COMMAND [ARGS]\n"
    "  --config PATH   configuration file (default: $DS2GRIST_CONFIG)\n"
    "  --help          this help; COMMAND --help for a command's\n"
    "  --version       print the version\n"
    "Commands:\n"
    "  config check [--json]                     validate the configuration, print a summary\n"
    "  status [--json] [--no-lag] [PROCEDURE...] cursors, last polls, errors, leases, permits,\n"
    "                                            messages waiting\n"
    "  resync PROCEDURE [--since DATE] [--json]  re-emit a procedure's dossiers (all, or those\n"
    "                                            modified since DATE) at its next poll\n"
    "  dlq list [--json] [--limit N]             list the dead letters\n"
    "  dlq replay [--dry-run] [--force] [--key KEY] [--limit N] [--json]\n"
    "                                            copy dead letters back to the dossier topic\n"
    "  registry list|pause|resume|remove|rebuild [PROCEDURE] [--json]\n"
    "                                            the procedures added at run time\n"
    "  registry options PROCEDURE [--mapping JSON] [--filter JSON] [--json]\n"
    "                                            show or set a registry procedure's options\n"
    "Exit codes: 0 ok, 1 Redis or Kafka failure, 2 usage or configuration error.\n";

static const char usage_config[] =
    "usage: ds2grist [--config PATH] config check [--json]\n"
    "Loads and validates the configuration (secrets included: each must resolve) and prints\n"
    "a summary: procedures, DS tokens, Grist servers, documents and their permit limits,\n"
    "Kafka topics, Redis. Secret values are never printed.\n"
    "Exit 0 if valid, 2 with the JSON path of the first bad value otherwise.\n";

static const char usage_status[] =
    "usage: ds2grist [--config PATH] status [--json] [--no-lag] [PROCEDURE...]\n"
    "Per procedure (every configured one, or those named): DS token, document, cursor,\n"
    "last successful poll, last error, failed flag, messages emitted, lease holder;\n"
    "per document: Grist permits in use and the limit; the workers' consumer lag\n"
    "(messages waiting; per partition with --json). --no-lag skips Kafka.\n"
    "Exit 0, 1 if Redis or Kafka cannot be reached (the rest is still printed),\n"
    "2 if a named procedure is not configured.\n";

static const char usage_resync[] =
    "usage: ds2grist [--config PATH] resync PROCEDURE [--since DATE] [--json]\n"
    "Resets the procedure's cursor, as `ds2grist-producer resync` does: its next poll\n"
    "(at once, by whichever producer replica takes its lease) re-emits every dossier, or\n"
    "those modified since DATE (ISO 8601: 2026-01-01 or 2026-01-01T00:00:00Z).\n"
    "Deletion and label state are kept. Exit 2 if the procedure is not configured.\n";

static const char usage_dlq[] =
    "usage: ds2grist [--config PATH] dlq list [--json] [--limit N]\n"
    "       ds2grist [--config PATH] dlq replay [--dry-run] [--force] [--key KEY] [--limit N] [--json]\n"
    "list:   every dead letter from the start of the dead-letter topic: partition/offset,\n"
    "        key, error, source partition/offset, failed-at, size, whether it was replayed.\n"
    "replay: copies dead letters not replayed yet back to the dossier topic (same key and\n"
    "        value), waits for Kafka's acknowledgements, then records them as replayed\n"
    "        (committed offsets of the consumer group <consumer_group>-dlq-replay), so a\n"
    "        second replay does not send them again. --key replays only that dossier\n"
    "        (\"<procedure>:<dossier>\"), --limit at most N, --dry-run shows what would go.\n"
    "        A dead letter whose dossier Grist already holds in a newer version (or marks\n"
    "        deleted) is not sent but recorded as superseded: it would write older data\n"
    "        over newer (one read of the dossier's row, under a permit of its document).\n"
    "        --force sends it anyway.\n";

/* Where the command starts (after --config PATH), without loading anything. */
static int find_command(int argc, char **argv) {
    int i = 1;
    while (i < argc && argv[i][0] == '-') {
        if (!strcmp(argv[i], "--config"))
            i += 2;
        else
            return argc; /* --help, --version, unknown: d2g_cli_start answers */
    }
    return i;
}

/* The help of a command if it asked for it (anywhere among its arguments). */
static const char *command_help(int argc, char **argv, int cmd) {
    if (cmd >= argc)
        return NULL;
    for (int i = cmd + 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") && strcmp(argv[i], "-h"))
            continue;
        if (!strcmp(argv[cmd], "config"))
            return usage_config;
        if (!strcmp(argv[cmd], "status"))
            return usage_status;
        if (!strcmp(argv[cmd], "resync"))
            return usage_resync;
        if (!strcmp(argv[cmd], "dlq"))
            return usage_dlq;
        if (!strcmp(argv[cmd], "registry"))
            return d2g_op_registry_usage();
        return usage;
    }
    return NULL;
}

static const char *config_path(int argc, char **argv) {
    const char *path = getenv("DS2GRIST_CONFIG");
    for (int i = 1; i + 1 < argc && argv[i][0] == '-'; i++)
        if (!strcmp(argv[i], "--config"))
            path = argv[++i];
    return path;
}

/* --- resync ---------------------------------------------------------------- */

static int digits(const char *s, int n) {
    for (int i = 0; i < n; i++)
        if (!isdigit((unsigned char)s[i]))
            return 0;
    return 1;
}

/* ISO 8601 as DS takes it: YYYY-MM-DD, or with Thh:mm[:ss[.fff]] and Z or
 * +hh:mm. A date alone is midnight UTC. The normalised value into buf. */
static int parse_since(const char *s, char *buf, size_t buflen) {
    size_t len = strlen(s);
    if (len < 10 || !digits(s, 4) || s[4] != '-' || !digits(s + 5, 2) || s[7] != '-' ||
        !digits(s + 8, 2))
        return -1;
    int mon = atoi(s + 5), day = atoi(s + 8);
    if (mon < 1 || mon > 12 || day < 1 || day > 31)
        return -1;
    if (len == 10) {
        snprintf(buf, buflen, "%sT00:00:00Z", s);
        return 0;
    }
    const char *p = s + 10;
    if (*p != 'T' || !digits(p + 1, 2) || p[3] != ':' || !digits(p + 4, 2) || atoi(p + 1) > 23 ||
        atoi(p + 4) > 59)
        return -1;
    p += 6;
    if (*p == ':') {
        if (!digits(p + 1, 2) || atoi(p + 1) > 60)
            return -1;
        p += 3;
        if (*p == '.') {
            if (!isdigit((unsigned char)p[1]))
                return -1;
            for (p++; isdigit((unsigned char)*p); p++)
                ;
        }
    }
    if (!strcmp(p, "Z") ||
        ((*p == '+' || *p == '-') && digits(p + 1, 2) && p[3] == ':' && digits(p + 4, 2) && !p[6])) {
        snprintf(buf, buflen, "%s", s);
        return 0;
    }
    return -1;
}

int d2g_op_resync(const d2g_config_t *cfg, int argc, char **argv) {
    char err[D2G_ERRLEN], since[64] = "", k[256];
    const char *number = NULL;
    int json = 0, has_since = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--json"))
            json = 1;
        else if (!strcmp(argv[i], "--since") && i + 1 < argc) {
            if (parse_since(argv[++i], since, sizeof(since))) {
                fprintf(stderr, "ds2grist resync: --since %s: not an ISO 8601 date "
                                "(2026-01-01 or 2026-01-01T00:00:00Z)\n", argv[i]);
                return D2G_OP_USAGE;
            }
            has_since = 1;
        } else if (argv[i][0] != '-' && !number)
            number = argv[i];
        else {
            fprintf(stderr, "ds2grist resync: unexpected argument %s\n%s", argv[i], usage_resync);
            return D2G_OP_USAGE;
        }
    }
    if (!number) {
        fputs(usage_resync, stderr);
        return D2G_OP_USAGE;
    }
    long long n;
    if (d2g_op_parse_count(number, &n) || !d2g_config_find_procedure(cfg, n)) {
        fprintf(stderr, "ds2grist resync: %s is not a configured procedure\n", number);
        return D2G_OP_USAGE;
    }

    d2g_redis_t *r = NULL;
    d2g_cursor_t before;
    memset(&before, 0, sizeof(before));
    char *holder = NULL;
    if (d2g_redis_connect(cfg->redis.url, cfg->redis.username, cfg->redis.password,
                          cfg->redis.namespace, 5000, &r, err, sizeof(err)) ||
        d2g_cursor_load(r, n, &before, err, sizeof(err)))
        goto fail;
    d2g_keys_proc(d2g_redis_namespace(r), k, sizeof(k), n, "lease");
    redisReply *rep = d2g_redis_cmd(r, err, sizeof(err), "GET %s", k);
    if (!rep)
        goto fail;
    if (rep->type == REDIS_REPLY_STRING)
        holder = d2g_strdup(rep->str);
    freeReplyObject(rep);
    if (d2g_cursor_reset(r, n, has_since ? since : NULL, err, sizeof(err)))
        goto fail;
    d2g_redis_free(r);

    const char *now_since = has_since ? since : D2G_CURSOR_EPOCH;
    if (json) {
        json_t *j = json_pack("{s:I, s:b, s:{s:s, s:b}, s:{s:s, s:b}, s:o}", "procedure",
                              (json_int_t)n, "reset", 1, "before", "updated_since",
                              before.updated_since, "after_set", before.after != NULL, "now",
                              "updated_since", now_since, "after_set", 0, "lease_holder",
                              holder ? json_string(holder) : json_null());
        d2g_op_print_json(j);
    } else {
        printf("procedure %lld: cursor reset\n", n);
        printf("  before: updated_since %s, after %s\n", before.updated_since,
               before.after ? "set" : "not set");
        printf("  now:    updated_since %s, after not set, last poll cleared\n", now_since);
        if (has_since)
            printf("its next poll (at once) re-emits every dossier modified since %s\n", since);
        else
            printf("its next poll (at once) re-emits every dossier\n");
        if (holder)
            printf("lease held by %s: the run it has in hand ends first\n", holder);
    }
    d2g_cursor_clear(&before);
    free(holder);
    return D2G_OP_OK;
fail:
    fprintf(stderr, "ds2grist resync: procedure %lld: cursor not reset: %s\n", n, err);
    d2g_cursor_clear(&before);
    free(holder);
    d2g_redis_free(r);
    return D2G_OP_FAIL;
}

/* --- main ------------------------------------------------------------------- */

int main(int argc, char **argv) {
    int cmd = find_command(argc, argv);
    const char *help = command_help(argc, argv, cmd);
    if (help) {
        fputs(help, stdout);
        return D2G_OP_OK;
    }
    if (cmd < argc && (strcmp(argv[cmd], "config") && strcmp(argv[cmd], "status") &&
                       strcmp(argv[cmd], "resync") && strcmp(argv[cmd], "dlq") &&
                       strcmp(argv[cmd], "registry"))) {
        fprintf(stderr, "ds2grist: unknown command %s\n%s", argv[cmd], usage);
        return D2G_OP_USAGE;
    }
    int is_check = cmd + 1 < argc && !strcmp(argv[cmd], "config") &&
                   !strcmp(argv[cmd + 1], "check");
    /* An operator's terminal wants answers, not the services' info logs. */
    int quiet = !getenv("DS2GRIST_LOG_LEVEL");
    if (quiet)
        setenv("DS2GRIST_LOG_LEVEL", "warn", 1);

    d2g_config_t *cfg;
    int argi;
    int rc = d2g_cli_start(argc, argv, "cli", usage, &cfg, &argi);
    if (is_check && (cfg || rc == D2G_OP_USAGE)) {
        /* Checked again as written (log_level without our override), and so
         * that a refused file's cause is printed on stdout too. */
        d2g_config_free(cfg);
        if (quiet)
            unsetenv("DS2GRIST_LOG_LEVEL");
        return d2g_op_config_check(config_path(argc, argv), argc - argi - 2, argv + argi + 2);
    }
    if (!cfg)
        return rc;
    if (argi >= argc) {
        fputs(usage, stderr);
        rc = D2G_OP_USAGE;
    } else if (!strcmp(argv[argi], "config")) {
        fputs(usage_config, stderr);
        rc = D2G_OP_USAGE;
    } else if (!strcmp(argv[argi], "status")) {
        rc = d2g_op_status(cfg, argc - argi - 1, argv + argi + 1);
    } else if (!strcmp(argv[argi], "resync")) {
        rc = d2g_op_resync(cfg, argc - argi - 1, argv + argi + 1);
    } else if (!strcmp(argv[argi], "registry")) {
        rc = d2g_op_registry(cfg, argc - argi - 1, argv + argi + 1);
    } else if (argi + 1 < argc && !strcmp(argv[argi + 1], "list")) {
        rc = d2g_op_dlq_list(cfg, argc - argi - 2, argv + argi + 2);
    } else if (argi + 1 < argc && !strcmp(argv[argi + 1], "replay")) {
        rc = d2g_op_dlq_replay(cfg, argc - argi - 2, argv + argi + 2);
    } else {
        fputs(usage_dlq, stderr);
        rc = D2G_OP_USAGE;
    }
    d2g_config_free(cfg);
    return rc;
}
