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
    "       ds2grist [--config PATH] registry options PROCEDURE [--mapping JSON] [--filter JSON]"
    " [--json]\n"
    "       ds2grist [--config PATH] registry rebuild [--json]\n"
    "  list      the procedures added at run time (the onboarding API, this command)\n"
    "  pause     stop polling a procedure (its tables and cursor are kept)\n"
    "  resume    poll it again from where it stopped\n"
    "  remove    disconnect it: the entry and its DS token are erased (Grist tables stay)\n"
    "  options   show its mapping options and filter, or set them: --mapping and --filter take\n"
    "            a JSON object as the configuration file's procedures[].mapping and .filter\n"
    "            ('{}' or null removes it); a changed filter asks for a full resync\n"
    "  rebuild   rebuild the Redis copy from the Kafka topic (done by itself when Redis lost it)\n";

const char *d2g_op_registry_usage(void) { return usage_registry; }

static json_t *entry_json(const d2g_reg_entry_t *e, const d2g_config_t *cfg) {
    char created[D2G_TIME_BUFLEN];
    d2g_clock_format_ms(e->created_ms, created);
    /* Every field but the sealed token. */
    json_t *o = json_pack("{sI ss ss ss ss ss ss ss sb}", "procedure", (json_int_t)e->procedure,
                          "document", e->document, "grist_server", e->grist_server, "ds_endpoint",
                          e->ds_endpoint, "table_prefix", e->table_prefix, "state",
                          d2g_reg_state_name(e->state), "created_at", created, "created_by",
                          e->created_by, "overridden_by_file",
                          d2g_config_find_procedure(cfg, e->procedure) != NULL);
    json_t *opts = d2g_reg_entry_options(e);
    json_object_update(o, opts);
    json_decref(opts);
    return o;
}

/* One option's text as a compact JSON object, or "-". malloc'ed. */
static char *option_text(json_t *v) {
    char *s = v ? json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    return s ? s : strdup("-");
}

/* The value of --mapping or --filter: a JSON object or null; NULL with a
 * message on stderr. */
static json_t *option_arg(const char *flag, const char *text) {
    json_error_t jerr;
    json_t *v = json_loads(text, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
    if (!v)
        fprintf(stderr, "ds2grist registry options: %s: not JSON: %s\n", flag, jerr.text);
    return v;
}

/* `registry options N [--mapping JSON] [--filter JSON]`: shows, or sets and
 * shows, an entry's options (checked by the configuration's parser). */
static int cmd_options(d2g_registry_t *reg, long long n, json_t *mapping, json_t *filter,
                       int json) {
    char err[D2G_ERRLEN];
    d2g_reg_entry_t e;
    int found = 0, filter_changed = 0, resync = 0;
    if (d2g_registry_get(reg, n, &e, &found, err, sizeof(err))) {
        fprintf(stderr, "ds2grist registry: %s\n", err);
        return D2G_OP_FAIL;
    }
    if (!found) {
        fprintf(stderr, "ds2grist registry options: procedure %lld is not in the registry\n", n);
        return D2G_OP_USAGE;
    }
    if ((mapping || filter) &&
        d2g_reg_entry_set_options(&e, mapping, filter, &filter_changed, err, sizeof(err))) {
        fprintf(stderr, "ds2grist registry options: %s\n", err);
        d2g_reg_entry_clear(&e);
        return D2G_OP_USAGE;
    }
    if (mapping || filter) {
        int64_t now = d2g_clock_wall_ms();
        e.updated_ms = now;
        if (d2g_registry_put(reg, &e, err, sizeof(err)) ||
            (filter_changed && d2g_registry_request_resync(reg, n, now + D2G_REGISTRY_RESYNC_DELAY_MS,
                                                           err, sizeof(err)))) {
            fprintf(stderr, "ds2grist registry: %s\n", err);
            d2g_reg_entry_clear(&e);
            return D2G_OP_FAIL;
        }
        resync = filter_changed;
        char doc[320];
        snprintf(doc, sizeof(doc), "%s/%s", e.grist_server, e.document);
        d2g_log(D2G_LOG_WARN, "onboarding_audit", n, doc, "action=options outcome=done by=cli");
    }
    if (json) {
        json_t *o = d2g_reg_entry_options(&e);
        json_object_set_new(o, "procedure", json_integer((json_int_t)n));
        json_object_set_new(o, "resync_requested", json_boolean(resync));
        d2g_op_print_json(o);
    } else {
        char *m = option_text(e.mapping), *f = option_text(e.filter);
        printf("procedure %lld\nmapping  %s\nfilter   %s\n%s", n, m, f,
               resync ? "the filter changed: full resync asked (starts within seconds)\n" : "");
        free(m);
        free(f);
    }
    d2g_reg_entry_clear(&e);
    return D2G_OP_OK;
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

/* The command line after "registry": verb, its procedure, --json, and
 * options' --mapping/--filter texts. 0, or D2G_OP_USAGE (usage printed). */
typedef struct registry_args {
    const char *verb, *arg, *mapping, *filter;
    int json;
} registry_args_t;

static int parse_args(int argc, char **argv, registry_args_t *a) {
    memset(a, 0, sizeof(*a));
    a->verb = argc > 0 ? argv[0] : NULL;
    int options = a->verb && !strcmp(a->verb, "options");
    for (int i = 1; i < argc; i++) {
        const char **flag = !strcmp(argv[i], "--mapping") ? &a->mapping
                            : !strcmp(argv[i], "--filter") ? &a->filter : NULL;
        if (!strcmp(argv[i], "--json"))
            a->json = 1;
        else if (flag && options && i + 1 < argc && !*flag)
            *flag = argv[++i];
        else if (!flag && !a->arg)
            a->arg = argv[i];
        else
            goto usage;
    }
    int needs_arg = a->verb && (!strcmp(a->verb, "pause") || !strcmp(a->verb, "resume") ||
                                !strcmp(a->verb, "remove") || options);
    if (!a->verb || (!needs_arg && strcmp(a->verb, "list") && strcmp(a->verb, "rebuild")) ||
        (needs_arg != (a->arg != NULL)))
        goto usage;
    return 0;
usage:
    fputs(usage_registry, stderr);
    return D2G_OP_USAGE;
}

/* `registry options`: its arguments read, then cmd_options. */
static int run_options(d2g_registry_t *reg, const registry_args_t *a) {
    long long n = 0;
    if (d2g_op_parse_count(a->arg, &n) || n < 1 || n > INT32_MAX) {
        fprintf(stderr, "ds2grist registry options: %s is not a procedure number\n", a->arg);
        return D2G_OP_USAGE;
    }
    json_t *mapping = a->mapping ? option_arg("--mapping", a->mapping) : NULL;
    json_t *filter = a->filter ? option_arg("--filter", a->filter) : NULL;
    int rc = (a->mapping && !mapping) || (a->filter && !filter)
                 ? D2G_OP_USAGE
                 : cmd_options(reg, n, mapping, filter, a->json);
    json_decref(mapping);
    json_decref(filter);
    return rc;
}

int d2g_op_registry(const d2g_config_t *cfg, int argc, char **argv) {
    registry_args_t a;
    if (parse_args(argc, argv, &a))
        return D2G_OP_USAGE;
    const char *verb = a.verb, *arg = a.arg;
    int json = a.json;
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
    } else if (!strcmp(verb, "options")) {
        rc = run_options(reg, &a);
    } else {
        rc = cmd_change(cfg, reg, verb, arg, json);
    }
    d2g_registry_free(reg);
    return rc;
}
