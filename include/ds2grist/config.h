/*
 * config.h - the ds2grist configuration: one JSON file, validated as a whole.
 *
 * The file (--config PATH or DS2GRIST_CONFIG) names the Kafka cluster and
 * topics, Redis, the DS endpoint and its tokens, the Grist servers, and the
 * procedures to synchronise. docs/configuration.md is the reference.
 *
 * Loading checks every value and stops at the first bad one with its exact
 * JSON path ("procedures[12].grist_server: unknown server \"main2\""). Unknown
 * keys are errors too: a typo must not silently become a default. Secrets are
 * {"env": NAME} or {"file": PATH} objects, resolved at load time; they are
 * held only in the fields named *secret / *password / api_key below and are
 * wiped by d2g_config_free.
 *
 * Connection settings can be overridden by environment variables (see
 * d2g_config_load). Procedures are kept sorted by number, so lookups are
 * O(log n) and ten thousand procedures load in milliseconds.
 */
#ifndef D2G_CONFIG_H
#define D2G_CONFIG_H

#include <jansson.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef struct d2g_kv {
    char *key;
    char *value;
    int secret; /* 1: value came from a secret; never print it */
} d2g_kv_t;

typedef struct d2g_ds_token {
    char *name;              /* the name procedures refer to; safe to log */
    char *secret;            /* the bearer token itself */
    int requests_per_minute; /* shared by every replica, default 400 */
    char *endpoint;          /* the DS instance's GraphQL URL (ds.tokens.<name>.endpoint,
                                default ds.endpoint); safe to log */
} d2g_ds_token_t;

typedef struct d2g_grist_doc_limit {
    char *document;
    int permits;
} d2g_grist_doc_limit_t;

typedef struct d2g_grist_server {
    char *name;
    char *url;                  /* base URL, no trailing slash */
    char *api_key;
    int permits_per_document;   /* concurrent requests per document, default 8 */
    double requests_per_second; /* per document; 0 = no limit */
    d2g_grist_doc_limit_t *doc_limits; /* per-document overrides of permits */
    size_t n_doc_limits;
} d2g_grist_server_t;

typedef enum { D2G_DELETED_MARK = 0, D2G_DELETED_REMOVE = 1 } d2g_deleted_mode_t;

/* Longest procedures[].table_prefix: child tables append "_<block>" to it, and
 * Grist table ids must stay short enough for every suffix. */
#define D2G_TABLE_PREFIX_MAX 64

/* What a procedure's mapping writes beyond the champs (procedures[].mapping,
 * defaults.mapping): the worker builds its d2g_mapping_opts_t from it; the
 * producer fetches messages only with messages set. All 0 by default. */
typedef struct d2g_proc_mapping {
    int ref_links; /* child tables link to the dossier with a Grist Ref formula column */
    int geo_areas; /* <prefix>_Zones: the areas of Carte champs */
    int avis;      /* <prefix>_Avis */
    int messages;  /* <prefix>_Messages (personal data: opt-in) */
    int attachments; /* files of PieceJustificative champs copied into Grist attachments */
} d2g_proc_mapping_t;

/* DS dossier states, as bits of d2g_proc_filter_t.states. */
#define D2G_STATE_EN_CONSTRUCTION 0x01
#define D2G_STATE_EN_INSTRUCTION 0x02
#define D2G_STATE_ACCEPTE 0x04
#define D2G_STATE_REFUSE 0x08
#define D2G_STATE_SANS_SUITE 0x10

/* Which dossiers of a procedure are kept in Grist (procedures[].filter); a
 * dossier outside is handled like a deleted one (the procedure's deleted
 * mode). Every part is optional; an empty filter keeps everything. */
typedef struct d2g_proc_filter {
    unsigned states;     /* D2G_STATE_* bits; 0 = any state */
    int64_t *groups;     /* groupeInstructeur numbers, sorted; NULL/0 = any group */
    size_t n_groups;
    char deposited_from[11]; /* "YYYY-MM-DD" (inclusive) or "" */
    char deposited_to[11];   /* "YYYY-MM-DD" (inclusive) or "" */
} d2g_proc_filter_t;

typedef struct d2g_procedure {
    int64_t number;
    const d2g_ds_token_t *ds_token;         /* points into config.ds.tokens */
    const d2g_grist_server_t *grist_server; /* points into config.grist.servers */
    char *document;
    char *table_prefix; /* Grist table id prefix, e.g. "Subventions" */
    int poll_interval_s;     /* the shortest check interval (seconds) */
    int poll_interval_max_s; /* the longest, for a quiet procedure (default 5 x the shortest) */
    d2g_deleted_mode_t deleted_mode;
    d2g_proc_mapping_t mapping; /* procedures[].mapping over defaults.mapping */
    d2g_proc_filter_t filter;   /* procedures[].filter */
    char *source;       /* NULL: the file; else the name of the procedure source it came from */
} d2g_procedure_t;

/* The D2G_STATE_* bit of a DS state name ("accepte"), or 0 if it is none. */
unsigned d2g_config_state_bit(const char *name);
/* 1 if the filter keeps everything. */
int d2g_proc_filter_empty(const d2g_proc_filter_t *f);
/* 1 if two procedures' mapping options and filters are the same. */
int d2g_proc_data_equal(const d2g_procedure_t *a, const d2g_procedure_t *b);

/*
 * The one parser of a procedure's "mapping" and "filter" objects: the file's
 * (procedures[].mapping, defaults.mapping, procedures[].filter) and a
 * procedure registry entry's (registry.h), so that the onboarding API and
 * the CLI refuse exactly what the file refuses, with the same words. path
 * names the object in errors: "mapping" gives "mapping.messages: must be
 * true or false". o NULL: nothing to read (0).
 *   d2g_config_parse_mapping sets the keys o has, leaves the others in *m.
 *   d2g_config_parse_filter fills *f (zeroed by the caller); f->groups is
 *   malloc'ed, even on a failure: free it with d2g_proc_filter_clear.
 * 0, or -1 with err naming the exact key ("filter.states[1]: given twice").
 */
int d2g_config_parse_mapping(json_t *o, const char *path, d2g_proc_mapping_t *m, char *err,
                             size_t errlen);
int d2g_config_parse_filter(json_t *o, const char *path, d2g_proc_filter_t *f, char *err,
                            size_t errlen);
void d2g_proc_filter_clear(d2g_proc_filter_t *f);
/* Both parsers on a registry entry's options (either may be NULL), paths
 * "mapping" and "filter"; nothing kept. 0, or -1 with err. */
int d2g_config_check_proc_data(json_t *mapping, json_t *filter, char *err, size_t errlen);

/* Where the widget's files are installed (onboarding.static_dir's default). */
#ifndef D2G_WIDGET_DIR
#define D2G_WIDGET_DIR "/usr/share/ds2grist/widget"
#endif

typedef struct d2g_config {
    struct {
        d2g_kv_t *properties; /* librdkafka properties, passed through */
        size_t n_properties;
        char *topic;          /* default "ds2grist.dossiers" */
        char *dlq_topic;      /* default "ds2grist.dlq" */
        char *retry_topic;    /* parked documents' messages wait here, default "ds2grist.retry" */
        char *consumer_group; /* default "ds2grist-worker" */
    } kafka;
    struct {
        char *url;       /* redis://host:port[/db] or unix:///path */
        char *namespace; /* key prefix, default "ds2grist" */
        char *username;  /* optional (Redis 6 ACL) */
        char *password;  /* optional secret */
    } redis;
    struct {
        char *endpoint;
        d2g_ds_token_t *tokens;
        size_t n_tokens;
        int timeout_s; /* HTTP timeout of one DS request, default 60 */
    } ds;
    struct {
        d2g_grist_server_t *servers;
        size_t n_servers;
        int timeout_s; /* HTTP timeout of one Grist request, default 60 */
    } grist;
    d2g_procedure_t *procedures; /* sorted by number */
    size_t n_procedures;
    struct {
        int concurrency;       /* DS requests in flight per replica, default 4 */
        int lease_s;           /* procedure lease, renewed every page, default 120 */
        int labels_interval_s; /* label pass period per procedure, default 900; 0 = off */
        int page_size;         /* dossiers per page, at most 100 (DS's cap), default 100 */
        int page_size_min;     /* floor when shrinking on timeouts, default 5 */
        int shutdown_grace_s;  /* SIGTERM: time to finish pages in hand, default 25 */
        int deleted_lookback_s; /* without a cursor, deletions are read from this long ago,
                                   default 2592000 (30 days) */
        int check_batch_size;  /* procedures checked by one DS request, default 50 (1-500) */
        int removed_cursor_ttl_s; /* a procedure removed live keeps its cursor this long,
                                     default 2592000 (30 days); 0 = for ever */
    } producer;
    struct {
        int linger_ms;        /* how long a batch may wait to fill, default 250 */
        int batch_bytes;      /* records per request, in JSON bytes, default 900000 (< 1 MB) */
        int max_buffered;     /* dossiers waiting per document before its partitions pause, 1000 */
        int max_buffered_total; /* dossiers waiting in all before documents get fair shares, 2000 */
        int max_buffered_bytes; /* and bytes of their messages (a parsed dossier takes about 8
                                 * times its message), 16 MiB */
        char *ds_base_url;    /* for the link to each dossier, default DS's site */
        int shutdown_grace_s; /* SIGTERM: time to finish batches in hand, default 25 */
        int revoke_deadline_s; /* a revocation waits at most this for writes in flight, default 20 */
        int retry_delay_s;     /* first delay of a message sent to the retry topic, default 5 */
        int retry_max_delay_s; /* the delay doubles per attempt up to this, default 300 */
        int status_interval_s; /* the sync-status table of each document is written this
                                  often, default 30; 0 = no table (syncstat.h) */
        int attachment_max_bytes;    /* a file larger is not copied into Grist, default 20 MiB */
        int attachment_budget_bytes; /* bytes copied into one document at most, default 1 GiB */
        int attachment_downloads;    /* downloads in flight per worker, default 4 */
    } worker;
    char *log_level; /* "debug" | "info" | "warn" | "error", default "info" */
    struct {
        int port; /* health and metrics HTTP port, 0 = disabled */
    } http;
    /* The procedure registry (procedures added at run time, registry.h);
     * enabled when encryption_key is set. */
    struct {
        char *encryption_key; /* secret: 64 hex digits (32 bytes), NULL = no registry */
        char *topic;          /* the compacted Kafka topic, default "ds2grist.registry" */
    } registry;
    /* Self-service onboarding (onboarding.h); off when listen is NULL. */
    struct {
        char *listen;           /* "host:port" ("0.0.0.0:8090", "[::]:8090"), NULL = off */
        int self_service;       /* 0: actions refused (403 self_service_off), reads served */
        char *static_dir;       /* the widget's files, default D2G_WIDGET_DIR */
        char **grist_servers;   /* names of grist.servers allowed; all when n == 0 */
        size_t n_grist_servers;
        char *platform_account; /* shown to agents: share the document with it; may be NULL */
        int per_document_per_minute; /* actions per document per minute, default 20 */
        int per_address_per_minute;  /* requests per client address per minute, default 60 */
        int trust_forwarded_for;     /* 1: the client address is X-Forwarded-For's last hop */
    } onboarding;
    /* Built by the loader, read with d2g_config_secrets: pointers to every
     * resolved secret value above (not copies). */
    const char **secrets;
    size_t n_secrets;
    /* Procedures of sources not taken because the file (or an earlier source)
     * configures the same number. */
    size_t n_shadowed;
    /* References (d2g_config_ref, d2g_config_free): a live reload (reload.h)
     * swaps in a new object while requests in flight keep the old one. */
    atomic_int refs;
    /* Set by reload.h: 1 for the configuration loaded at start-up, then +1
     * per applied reload. 0 for a configuration loaded by other means. */
    uint64_t generation;
} d2g_config_t;

/*
 * Loads and validates the configuration at path. Environment overrides,
 * applied after the file is read and validated like it:
 *   DS2GRIST_KAFKA_BOOTSTRAP_SERVERS  kafka.properties["bootstrap.servers"]
 *   DS2GRIST_REDIS_URL                redis.url
 *   DS2GRIST_REDIS_NAMESPACE          redis.namespace
 *   DS2GRIST_DS_ENDPOINT              ds.endpoint
 *   DS2GRIST_LOG_LEVEL                log_level
 *   DS2GRIST_HTTP_PORT                http.port
 * On success *out is owned by the caller (d2g_config_free). On failure
 * nothing is allocated and err holds the JSON path and the cause.
 */
int d2g_config_load(const char *path, d2g_config_t **out, char *err, size_t errlen);
/* Same, from a JSON text already in memory (tests, `config check -`). */
int d2g_config_load_string(const char *json, d2g_config_t **out, char *err, size_t errlen);

/*
 * Another source of procedures beside the file (e.g. a registry in Redis).
 * fn sets *overlay to a new JSON object (owned by the loader), or NULL for
 * nothing, of this shape:
 *   {"ds": {"tokens": {"<name>": {"secret": {"value": "..."}, "endpoint": ...,
 *                                 "requests_per_minute": ...}}},
 *    "procedures": [{"number": ..., "ds_token": "<name>", ...}, ...]}
 * Entries are validated like the file's (the same keys and rules); a
 * source's token secret may also be given inline as {"value": "..."} (the
 * file may not). The file wins on conflicts: a token name or a procedure
 * number the file (or an earlier source) already has is left out
 * (cfg->n_shadowed counts the procedures). Errors name the source
 * ("registry:procedures[number=52001].document: ..."). fn returns 0, or -1
 * with err set when it cannot answer: the load then fails (a reload keeps
 * the running configuration rather than drop every procedure it gave).
 * Procedures it gave carry d2g_procedure_t.source = name.
 */
typedef struct d2g_config_source {
    const char *name; /* 1-64 of A-Za-z0-9._-: names its entries in errors and status */
    int (*fn)(void *ud, json_t **overlay, char *err, size_t errlen);
    void *ud;
} d2g_config_source_t;
int d2g_config_load_sources(const char *path, const d2g_config_source_t *sources,
                            size_t n_sources, d2g_config_t **out, char *err, size_t errlen);

/* One more reference to cfg (returned); each is dropped with d2g_config_free. */
d2g_config_t *d2g_config_ref(const d2g_config_t *cfg);
/* Drops one reference; the last one wipes the secrets and frees everything. */
void d2g_config_free(d2g_config_t *cfg);

/* Binary search; NULL if the procedure is not configured. */
const d2g_procedure_t *d2g_config_find_procedure(const d2g_config_t *cfg, int64_t number);
const d2g_ds_token_t *d2g_config_find_token(const d2g_config_t *cfg, const char *name);
const d2g_grist_server_t *d2g_config_find_server(const d2g_config_t *cfg, const char *name);
/* Every secret value the configuration resolved (DS tokens, Grist API keys,
 * Redis password, Kafka secret properties), borrowed, valid as long as cfg;
 * *n gets the count. For d2g_text_scrub: no text that leaves the process
 * (log, header, metric, CLI output) may hold one. */
const char *const *d2g_config_secrets(const d2g_config_t *cfg, size_t *n);
/* The permit limit of one document of a server (its override, else the default). */
int d2g_config_doc_permits(const d2g_grist_server_t *srv, const char *document);

#endif
