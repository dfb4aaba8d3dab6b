/*
 * registry.c - `ds2grist registry`: the operator's view of the procedure
 * registry (registry.h): list, pause, resume, remove, rebuild. No command
 * prints or opens a DS token, sealed or not: there is no way to read one
 * back. Every change is audit-logged like the onboarding API's.
 */
#include "operator.h"

#include "ds2grist/clock.h"
#include "ds2grist/err.h"
#include "ds2grist/log.h"
#include "ds2grist/registry.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage_registry[] =
    "usage: ds2grist [--config PATH] registry list [--json]\n"
    "       ds2grist [--config PATH] registry pause|resume|remove PROCEDURE [--json]\n"
    "       ds2grist [--config PATH] registry rebuild [--json]\n"
    "  list      the procedures added at run time (the onboarding API, this command)\n"
    "  pause     stop polling a procedure (its tables and cursor are kept)\n"
    "  resume    poll it again from where it stopped\n"
    "  remove    disconnect it: the entry and its DS token are erased (Grist tables stay)\n"
    "  rebuild   rebuild the Redis copy from the Kafka topic (done by itself when Redis lost it)\n";

const char *d2g_op_registry_usage(void) { return usage_registry; }

static json_t *entry_json(const d2g_reg_entry_t *e, const d2g_config_t *cfg) {
    char created[D2G_TIME_BUFLEN];
    d2g_clock_format_ms(e->created_ms, created);
    /* Every field but the sealed token. */
    return json_pack("{sI ss ss ss ss ss ss ss sb}", "procedure", (json_int_t)e->procedure,
                     "document", e->document, "grist_server", e->grist_server, "ds_endpoint",
                     e->ds_endpoint, "table_prefix", e->table_prefix, "state",
                     d2g_reg_state_name(e->state), "created_at", created, "created_by",
                     e->created_by, "overridden_by_file",
                     d2g_config_find_procedure(cfg, e->procedure) != NULL);
}

static int cmd_list(const d2g_config_t *cfg, d2g_registry_t *reg, int json) {
    d2g_reg_entry_t *e = NULL;
    size_t n = 0;
    char err[D2G_ERRLEN];
    if (d2g_registry_list(reg, &e, &n, err, sizeof(err))) {
        fprintf(stderr, "ds2grist registry: %s\n", err);
        return D2G_OP_FAIL;
    }
    if (json) {
        json_t *a = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(a, entry_json(&e[i], cfg));
        d2g_op_print_json(json_pack("{so}", "entries", a));
    } else {
        static const char *const h[] = {"PROCEDURE", "STATE", "SERVER", "DOCUMENT", "PREFIX",
                                        "CREATED", "BY"};
        d2g_op_table_t t;
        d2g_op_table_init(&t, 7, h);
        for (size_t i = 0; i < n; i++) {
            char num[24], created[64];
            snprintf(num, sizeof(num), "%" PRId64, e[i].procedure);
            d2g_op_format_time(e[i].created_ms, created, sizeof(created));
            const char *state = d2g_config_find_procedure(cfg, e[i].procedure)
                                    ? "file wins" : d2g_reg_state_name(e[i].state);
            const char *cells[] = {num, state, e[i].grist_server, e[i].document,
                                   e[i].table_prefix, created, e[i].created_by};
            d2g_op_table_add(&t, cells);
        }
        d2g_op_table_print(&t, stdout);
        d2g_op_table_free(&t);
        printf("%zu entries\n", n);
    }
    d2g_reg_entries_free(e, n);
    return D2G_OP_OK;
}

static int cmd_change(const d2g_config_t *cfg, d2g_registry_t *reg, const char *verb,
                      const char *arg, int json) {
    char err[D2G_ERRLEN];
    long long n = 0;
    if (d2g_op_parse_count(arg, &n) || n < 1 || n > INT32_MAX) {
        fprintf(stderr, "ds2grist registry %s: %s is not a procedure number\n", verb, arg);
        return D2G_OP_USAGE;
    }
    d2g_reg_entry_t e;
    int found = 0;
    if (d2g_registry_get(reg, n, &e, &found, err, sizeof(err))) {
        fprintf(stderr, "ds2grist registry: %s\n", err);
        return D2G_OP_FAIL;
    }
    if (!found) {
        fprintf(stderr, "ds2grist registry %s: procedure %lld is not in the registry\n", verb, n);
        return D2G_OP_USAGE;
    }
    char doc[320];
    snprintf(doc, sizeof(doc), "%s/%s", e.grist_server, e.document);
    int rc = 0;
    if (!strcmp(verb, "remove")) {
        rc = d2g_registry_remove(reg, n, &found, err, sizeof(err));
    } else {
        d2g_reg_state_t st = !strcmp(verb, "pause") ? D2G_REG_PAUSED : D2G_REG_ACTIVE;
        if (e.state != st) {
            e.state = st;
            e.updated_ms = d2g_clock_wall_ms();
            rc = d2g_registry_put(reg, &e, err, sizeof(err));
        }
    }
    if (rc) {
        d2g_reg_entry_clear(&e);
        fprintf(stderr, "ds2grist registry: %s\n", err);
        return D2G_OP_FAIL;
    }
    /* The audit line, at warn so that it passes the CLI's quiet log level. */
    d2g_log(D2G_LOG_WARN, "onboarding_audit", n, doc, "action=%s outcome=done by=cli", verb);
    if (json)
        d2g_op_print_json(json_pack("{sI ss ss}", "procedure", (json_int_t)n, "action", verb,
                                    "state", !strcmp(verb, "remove") ? "removed"
                                             : d2g_reg_state_name(e.state)));
    else
        printf("procedure %lld: %s\n", n, !strcmp(verb, "remove") ? "removed"
                                          : d2g_reg_state_name(e.state));
    (void)cfg;
    d2g_reg_entry_clear(&e);
    return D2G_OP_OK;
}

int d2g_op_registry(const d2g_config_t *cfg, int argc, char **argv) {
    int json = 0;
    const char *verb = argc > 0 ? argv[0] : NULL, *arg = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json"))
            json = 1;
        else if (!arg)
            arg = argv[i];
        else {
            fputs(usage_registry, stderr);
            return D2G_OP_USAGE;
        }
    }
    int needs_arg = verb && (!strcmp(verb, "pause") || !strcmp(verb, "resume") ||
                             !strcmp(verb, "remove"));
    if (!verb || (!needs_arg && strcmp(verb, "list") && strcmp(verb, "rebuild")) ||
        (needs_arg != (arg != NULL))) {
        fputs(usage_registry, stderr);
        return D2G_OP_USAGE;
    }
    if (!cfg->registry.encryption_key) {
        fprintf(stderr, "ds2grist registry: no registry configured (registry.encryption_key)\n");
        return D2G_OP_USAGE;
    }
    char err[D2G_ERRLEN];
    d2g_registry_t *reg = d2g_registry_new(cfg, err, sizeof(err));
    if (!reg) {
        fprintf(stderr, "ds2grist registry: %s\n", err);
        return D2G_OP_FAIL;
    }
    int rc;
    if (!strcmp(verb, "list")) {
        rc = cmd_list(cfg, reg, json);
    } else if (!strcmp(verb, "rebuild")) {
        long rebuilt = 0;
        rc = d2g_registry_rebuild(reg, 1, &rebuilt, err, sizeof(err)) ? D2G_OP_FAIL : D2G_OP_OK;
        if (rc)
            fprintf(stderr, "ds2grist registry: %s\n", err);
        else if (json)
            d2g_op_print_json(json_pack("{sI}", "entries", (json_int_t)rebuilt));
        else
            printf("registry rebuilt from %s: %ld entries\n", cfg->registry.topic, rebuilt);
    } else {
        rc = cmd_change(cfg, reg, verb, arg, json);
    }
    d2g_registry_free(reg);
    return rc;
}
