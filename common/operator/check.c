/*
 * check.c - `ds2grist config check`: load and validate the configuration and
 * print what it says. Secrets are resolved (a missing one is an error) but
 * never printed: tokens and servers appear by name, secret Kafka properties
 * as "<secret>", the Redis password as set or not. See operator.h.
 */
#include "operator.h"

#include "ds2grist/alloc.h"
#include "ds2grist/err.h"
#include "ds2grist/text.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static int doc_cmp(const void *a, const void *b) {
    const d2g_op_doc_t *x = a, *y = b;
    int c = strcmp(x->srv->name, y->srv->name);
    return c ? c : strcmp(x->document, y->document);
}

d2g_op_doc_t *d2g_op_documents(const d2g_procedure_t *const *procs, size_t n, size_t *count) {
    d2g_op_doc_t *docs = d2g_calloc(n ? n : 1, sizeof(*docs));
    for (size_t i = 0; i < n; i++)
        docs[i] = (d2g_op_doc_t){procs[i]->grist_server, procs[i]->document,
                                 d2g_config_doc_permits(procs[i]->grist_server, procs[i]->document), 1};
    qsort(docs, n, sizeof(*docs), doc_cmp);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (m && !doc_cmp(&docs[m - 1], &docs[i]))
            docs[m - 1].n_procedures++;
        else
            docs[m++] = docs[i];
    }
    *count = m;
    return docs;
}

static int invalid(const char *path, const char *cause, int json) {
    if (json) {
        /* Built field by field from cleaned texts: always valid JSON, whatever the bytes. */
        json_t *o = json_object();
        json_object_set_new(o, "path", d2g_text_json(path));
        json_object_set_new(o, "valid", json_false());
        json_object_set_new(o, "error", d2g_text_json(cause));
        d2g_op_print_json(o);
    }
    else
        printf("configuration %s: INVALID\n  %s\n", path ? path : "(none)", cause);
    return D2G_OP_USAGE;
}

static const char *deleted_name(d2g_deleted_mode_t m) {
    return m == D2G_DELETED_REMOVE ? "remove" : "mark";
}

static const char *const state_names[] = {"en_construction", "en_instruction", "accepte", "refuse",
                                          "sans_suite"};

/* A procedure's mapping options, e.g. "ref_links,avis", or "-". */
static void mapping_text(const d2g_procedure_t *p, char *buf, size_t len) {
    const char *names[] = {"ref_links", "geo_areas", "avis", "messages", "attachments"};
    int on[] = {p->mapping.ref_links, p->mapping.geo_areas, p->mapping.avis, p->mapping.messages,
                p->mapping.attachments};
    size_t n = 0;
    buf[0] = '\0';
    for (int i = 0; i < 5; i++)
        if (on[i] && n < len)
            n += (size_t)snprintf(buf + n, len - n, "%s%s", n ? "," : "", names[i]);
    if (!n)
        snprintf(buf, len, "-");
}

/* A procedure's filter, e.g. "2 states, 1 group, 2026-01-01..", or "-". */
static void filter_text(const d2g_procedure_t *p, char *buf, size_t len) {
    const d2g_proc_filter_t *f = &p->filter;
    size_t n = 0;
    int states = 0;
    for (int i = 0; i < 5; i++)
        states += (f->states >> i) & 1;
    buf[0] = '\0';
    if (states)
        n += (size_t)snprintf(buf + n, len - n, "%d state%s", states, states > 1 ? "s" : "");
    if (f->n_groups && n < len)
        n += (size_t)snprintf(buf + n, len - n, "%s%zu group%s", n ? ", " : "", f->n_groups,
                              f->n_groups > 1 ? "s" : "");
    if ((f->deposited_from[0] || f->deposited_to[0]) && n < len)
        n += (size_t)snprintf(buf + n, len - n, "%s%s..%s", n ? ", " : "", f->deposited_from,
                              f->deposited_to);
    if (!n)
        snprintf(buf, len, "-");
}

/* {"ref_links": b, ...} and the filter as configured (null when it keeps everything). */
static json_t *mapping_json(const d2g_procedure_t *p) {
    return json_pack("{s:b, s:b, s:b, s:b, s:b}", "ref_links", p->mapping.ref_links, "geo_areas",
                     p->mapping.geo_areas, "avis", p->mapping.avis, "messages", p->mapping.messages,
                     "attachments", p->mapping.attachments);
}

static json_t *filter_json(const d2g_procedure_t *p) {
    const d2g_proc_filter_t *f = &p->filter;
    if (d2g_proc_filter_empty(f))
        return json_null();
    json_t *o = json_object(), *st = json_array(), *gr = json_array();
    for (int i = 0; i < 5; i++)
        if ((f->states >> i) & 1)
            json_array_append_new(st, json_string(state_names[i]));
    for (size_t i = 0; i < f->n_groups; i++)
        json_array_append_new(gr, json_integer((json_int_t)f->groups[i]));
    json_object_set_new(o, "states", st);
    json_object_set_new(o, "instruction_groups", gr);
    json_object_set_new(o, "deposited_from", f->deposited_from[0] ? json_string(f->deposited_from) : json_null());
    json_object_set_new(o, "deposited_to", f->deposited_to[0] ? json_string(f->deposited_to) : json_null());
    return o;
}

static json_t *summary_json(const d2g_config_t *cfg, const char *path, const d2g_op_doc_t *docs,
                            size_t n_docs) {
    char url[512];
    json_t *procs = json_array(), *tokens = json_array(), *servers = json_array(),
           *jdocs = json_array(), *props = json_object();
    for (size_t i = 0; i < cfg->n_procedures; i++) {
        const d2g_procedure_t *p = &cfg->procedures[i];
        json_array_append_new(procs, json_pack("{s:I, s:s, s:s, s:s, s:s, s:i, s:s, s:o, s:o}", "number",
                                               (json_int_t)p->number, "ds_token", p->ds_token->name,
                                               "grist_server", p->grist_server->name, "document",
                                               p->document, "table_prefix", p->table_prefix,
                                               "poll_interval_s", p->poll_interval_s, "deleted",
                                               deleted_name(p->deleted_mode), "mapping", mapping_json(p),
                                               "filter", filter_json(p)));
    }
    for (size_t i = 0; i < cfg->ds.n_tokens; i++) {
        size_t used = 0;
        for (size_t j = 0; j < cfg->n_procedures; j++)
            used += cfg->procedures[j].ds_token == &cfg->ds.tokens[i];
        json_array_append_new(tokens, json_pack("{s:s, s:i, s:I}", "name", cfg->ds.tokens[i].name,
                                                "requests_per_minute",
                                                cfg->ds.tokens[i].requests_per_minute,
                                                "procedures", (json_int_t)used));
    }
    for (size_t i = 0; i < cfg->grist.n_servers; i++) {
        const d2g_grist_server_t *s = &cfg->grist.servers[i];
        json_array_append_new(servers, json_pack("{s:s, s:s, s:i, s:f, s:I}", "name", s->name,
                                                 "url", s->url, "permits_per_document",
                                                 s->permits_per_document, "requests_per_second",
                                                 s->requests_per_second, "document_overrides",
                                                 (json_int_t)s->n_doc_limits));
    }
    for (size_t i = 0; i < n_docs; i++)
        json_array_append_new(jdocs, json_pack("{s:s, s:s, s:i, s:I}", "server", docs[i].srv->name,
                                               "document", docs[i].document, "permits",
                                               docs[i].permits, "procedures",
                                               (json_int_t)docs[i].n_procedures));
    for (size_t i = 0; i < cfg->kafka.n_properties; i++) {
        const d2g_kv_t *kv = &cfg->kafka.properties[i];
        json_object_set_new(props, kv->key, json_string(kv->secret ? "<secret>" : kv->value));
    }
    d2g_op_redis_url_public(cfg->redis.url, url, sizeof(url));
    return json_pack("{s:s?, s:b, s:o, s:{s:s, s:i, s:o}, s:{s:o}, s:o, s:{s:o, s:s, s:s, s:s},"
                     " s:{s:s, s:s, s:s?, s:b}}",
                     "path", path, "valid", 1, "procedures", procs, "ds", "endpoint",
                     cfg->ds.endpoint, "timeout_s", cfg->ds.timeout_s, "tokens", tokens, "grist",
                     "servers", servers, "documents", jdocs, "kafka", "properties", props, "topic",
                     cfg->kafka.topic, "dlq_topic", cfg->kafka.dlq_topic, "consumer_group",
                     cfg->kafka.consumer_group, "redis", "url", url, "namespace",
                     cfg->redis.namespace, "username", cfg->redis.username, "password_set",
                     cfg->redis.password != NULL);
}

static void summary_text(const d2g_config_t *cfg, const char *path, const d2g_op_doc_t *docs,
                         size_t n_docs) {
    char a[32], b[32], c[32], url[512], m[64], fl[96];
    d2g_op_table_t t;
    printf("configuration %s: valid\n", path ? path : "(none)");

    printf("\nProcedures (%zu)\n", cfg->n_procedures);
    const char *ph[] = {"NUMBER", "DS TOKEN", "SERVER", "DOCUMENT", "TABLE PREFIX", "POLL", "DELETED",
                        "MAPPING", "FILTER"};
    d2g_op_table_init(&t, 9, ph);
    for (size_t i = 0; i < cfg->n_procedures; i++) {
        const d2g_procedure_t *p = &cfg->procedures[i];
        snprintf(a, sizeof(a), "%" PRId64, p->number);
        snprintf(b, sizeof(b), "%ds", p->poll_interval_s);
        mapping_text(p, m, sizeof(m));
        filter_text(p, fl, sizeof(fl));
        const char *row[] = {a, p->ds_token->name, p->grist_server->name, p->document,
                             p->table_prefix, b, deleted_name(p->deleted_mode), m, fl};
        d2g_op_table_add(&t, row);
    }
    d2g_op_table_print(&t, stdout);
    d2g_op_table_free(&t);

    printf("\nDS tokens (%zu), endpoint %s, timeout %ds\n", cfg->ds.n_tokens, cfg->ds.endpoint,
           cfg->ds.timeout_s);
    const char *th[] = {"NAME", "REQUESTS/MIN", "PROCEDURES"};
    d2g_op_table_init(&t, 3, th);
    for (size_t i = 0; i < cfg->ds.n_tokens; i++) {
        size_t used = 0;
        for (size_t j = 0; j < cfg->n_procedures; j++)
            used += cfg->procedures[j].ds_token == &cfg->ds.tokens[i];
        snprintf(a, sizeof(a), "%d", cfg->ds.tokens[i].requests_per_minute);
        snprintf(b, sizeof(b), "%zu", used);
        const char *row[] = {cfg->ds.tokens[i].name, a, b};
        d2g_op_table_add(&t, row);
    }
    d2g_op_table_print(&t, stdout);
    d2g_op_table_free(&t);

    printf("\nGrist servers (%zu), timeout %ds\n", cfg->grist.n_servers, cfg->grist.timeout_s);
    const char *sh[] = {"NAME", "URL", "PERMITS/DOCUMENT", "REQUESTS/S"};
    d2g_op_table_init(&t, 4, sh);
    for (size_t i = 0; i < cfg->grist.n_servers; i++) {
        const d2g_grist_server_t *s = &cfg->grist.servers[i];
        snprintf(a, sizeof(a), "%d", s->permits_per_document);
        if (s->requests_per_second > 0)
            snprintf(b, sizeof(b), "%g", s->requests_per_second);
        else
            snprintf(b, sizeof(b), "no limit");
        const char *row[] = {s->name, s->url, a, b};
        d2g_op_table_add(&t, row);
    }
    d2g_op_table_print(&t, stdout);
    d2g_op_table_free(&t);

    printf("\nDocuments (%zu)\n", n_docs);
    const char *dh[] = {"SERVER", "DOCUMENT", "PERMITS", "PROCEDURES"};
    d2g_op_table_init(&t, 4, dh);
    for (size_t i = 0; i < n_docs; i++) {
        snprintf(a, sizeof(a), "%d", docs[i].permits);
        snprintf(c, sizeof(c), "%zu", docs[i].n_procedures);
        const char *row[] = {docs[i].srv->name, docs[i].document, a, c};
        d2g_op_table_add(&t, row);
    }
    d2g_op_table_print(&t, stdout);
    d2g_op_table_free(&t);

    printf("\nKafka\n");
    const char *kh[] = {"SETTING", "VALUE"};
    d2g_op_table_init(&t, 2, kh);
    const char *r1[] = {"topic", cfg->kafka.topic}, *r2[] = {"dlq_topic", cfg->kafka.dlq_topic},
               *r3[] = {"consumer_group", cfg->kafka.consumer_group};
    d2g_op_table_add(&t, r1);
    d2g_op_table_add(&t, r2);
    d2g_op_table_add(&t, r3);
    for (size_t i = 0; i < cfg->kafka.n_properties; i++) {
        const d2g_kv_t *kv = &cfg->kafka.properties[i];
        const char *row[] = {kv->key, kv->secret ? "<secret>" : kv->value};
        d2g_op_table_add(&t, row);
    }
    d2g_op_table_print(&t, stdout);
    d2g_op_table_free(&t);

    d2g_op_redis_url_public(cfg->redis.url, url, sizeof(url));
    printf("\nRedis %s, namespace %s, user %s, password %s\n", url, cfg->redis.namespace,
           cfg->redis.username ? cfg->redis.username : "-", cfg->redis.password ? "set" : "none");
}

int d2g_op_config_check(const char *path, int argc, char **argv) {
    int json = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--json"))
            json = 1;
        else {
            fprintf(stderr, "ds2grist config check: unexpected argument %s\n", argv[i]);
            return D2G_OP_USAGE;
        }
    }
    if (!path || !*path)
        return invalid(NULL, "no configuration: pass --config PATH or set DS2GRIST_CONFIG", json);
    d2g_config_t *cfg = NULL;
    char err[D2G_ERRLEN];
    if (d2g_config_load(path, &cfg, err, sizeof(err)))
        return invalid(path, err, json);
    const d2g_procedure_t **procs = d2g_calloc(cfg->n_procedures + 1, sizeof(*procs));
    for (size_t i = 0; i < cfg->n_procedures; i++)
        procs[i] = &cfg->procedures[i];
    size_t n_docs;
    d2g_op_doc_t *docs = d2g_op_documents(procs, cfg->n_procedures, &n_docs);
    if (json)
        d2g_op_print_json(summary_json(cfg, path, docs, n_docs));
    else
        summary_text(cfg, path, docs, n_docs);
    free(docs);
    free(procs);
    d2g_config_free(cfg);
    return D2G_OP_OK;
}
