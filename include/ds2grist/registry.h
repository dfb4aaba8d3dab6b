/*
 * registry.h - the procedure registry: procedures added at run time (by
 * agents through the onboarding API, or by the operator's CLI), beside the
 * configuration file's.
 *
 * Each entry says which procedure syncs into which Grist document, with which
 * DS token (sealed with sealbox.h: never stored or returned in clear), and
 * whether it is active or paused. Entries live in Redis (a hash, keys.h
 * "{registry}"), and every change is first written to a compacted Kafka topic
 * (registry.topic, key = the procedure number, a tombstone for a removal) and
 * acknowledged there: that topic is the durable copy. When Redis lost the
 * registry (its "loaded" marker is gone), the next reader rebuilds the hash
 * from the topic, once (a script refuses a second rebuild), so a Redis loss
 * does not disconnect every agent.
 *
 * d2g_registry_source_fn is the procedure source the producers and workers
 * add to their live configuration (reload.h): active entries become
 * procedures, the file wins on a conflict. Every change bumps the fleet's
 * configuration generation (d2g_reload_bump), so every process reloads
 * within seconds. A handle is thread-safe (one
 * mutex: the onboarding API calls it from several threads).
 */
#ifndef D2G_REGISTRY_H
#define D2G_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "ds2grist/config.h"
#include "ds2grist/sealbox.h"

typedef enum { D2G_REG_ACTIVE = 0, D2G_REG_PAUSED = 1 } d2g_reg_state_t;

typedef struct d2g_reg_entry {
    int64_t procedure;
    char *document;
    char *grist_server;    /* a name of grist.servers */
    char *ds_endpoint;     /* the DS GraphQL endpoint the token belongs to */
    char *ds_token_sealed; /* sealbox "sb1:..." text; never print it either */
    char *table_prefix;
    d2g_reg_state_t state;
    int64_t created_ms;    /* wall clock */
    int64_t updated_ms;
    char *created_by;      /* "doc:<server>/<document>" (the widget) or "cli" */
    /* The procedure's options, as the file's procedures[].mapping and
     * .filter (config.h's parser checks them; NULL: none). Absent mapping
     * keys take defaults.mapping, but messages (personal data), which only
     * the entry itself turns on. Owned: d2g_reg_entry_clear drops them. */
    json_t *mapping;
    json_t *filter;
} d2g_reg_entry_t;

/* A filter change asks for a full resync of the procedure this long after
 * it (the fleet's resync set, keys.h), so that every worker has reloaded the
 * new filter (reload.h reads the generation every 3 s) before the pass's
 * first dossier reaches it. */
#define D2G_REGISTRY_RESYNC_DELAY_MS 10000

typedef struct d2g_registry d2g_registry_t;

/* Borrows cfg (its Kafka, Redis and registry settings); opens its own Redis
 * connection; Kafka handles are made when first needed. NULL with err. */
d2g_registry_t *d2g_registry_new(const d2g_config_t *cfg, char *err, size_t errlen);
void d2g_registry_free(d2g_registry_t *reg);

/* Adds or replaces an entry: Kafka first (acknowledged), then Redis. Its
 * options are checked first (config.h's parser; err names the key). */
int d2g_registry_put(d2g_registry_t *reg, const d2g_reg_entry_t *e, char *err, size_t errlen);
/* Removes an entry (a tombstone in Kafka, then Redis); *found = 0 if absent. */
int d2g_registry_remove(d2g_registry_t *reg, int64_t procedure, int *found, char *err,
                        size_t errlen);
/* One entry (*found = 0 if none); out is cleared with d2g_reg_entry_clear. */
int d2g_registry_get(d2g_registry_t *reg, int64_t procedure, d2g_reg_entry_t *out, int *found,
                     char *err, size_t errlen);
/* Every entry, sorted by procedure; rebuilds Redis from Kafka first if Redis
 * lost it. *out is freed with d2g_reg_entries_free. */
int d2g_registry_list(d2g_registry_t *reg, d2g_reg_entry_t **out, size_t *n, char *err,
                      size_t errlen);
/* Rebuilds the Redis copy from the Kafka topic if its marker is missing
 * (force: even if present). *rebuilt = entries read (-1: nothing to do). */
int d2g_registry_rebuild(d2g_registry_t *reg, int force, long *rebuilt, char *err, size_t errlen);
/* The change counter (0 if never changed). */
int64_t d2g_registry_version(d2g_registry_t *reg, char *err, size_t errlen);

/* A full resync of procedure asked for at_ms (wall ms; the producers take
 * it once that time has come), as the document's resync checkbox asks it. */
int d2g_registry_request_resync(d2g_registry_t *reg, int64_t procedure, int64_t at_ms, char *err,
                                size_t errlen);

/*
 * Changes e's options from a request's "mapping" and "filter" values (NULL:
 * absent, kept; JSON null or {}: removed; else replaced), checked with
 * config.h's parser first: on a refusal e is unchanged and err names the key
 * ("mapping.messages: must be true or false"). *filter_changed (may be NULL)
 * = 1 if the filter is not the one e had. Borrows mapping and filter.
 */
int d2g_reg_entry_set_options(d2g_reg_entry_t *e, json_t *mapping, json_t *filter,
                              int *filter_changed, char *err, size_t errlen);
/* e's options as shown to agents and operators: {"mapping": {...} | null,
 * "filter": {...} | null} (new). */
json_t *d2g_reg_entry_options(const d2g_reg_entry_t *e);

void d2g_reg_entry_clear(d2g_reg_entry_t *e);
void d2g_reg_entries_free(d2g_reg_entry_t *e, size_t n);
/* The entry as stored (sealed token included); malloc'ed. */
char *d2g_reg_entry_to_json(const d2g_reg_entry_t *e);
int d2g_reg_entry_from_json(const char *json, size_t len, d2g_reg_entry_t *out, char *err,
                            size_t errlen);
const char *d2g_reg_state_name(d2g_reg_state_t s);

/*
 * The registry as a procedure source of the live configuration (reload.h,
 * config.h's d2g_config_source_t): d2g_registry_source_fn answers the
 * entries as an overlay, each with a DS token named "reg-<tag>" (sealbox
 * tag: entries sharing one DS token share its name and its budget) holding
 * the opened token and the entry's DS endpoint. Paused entries are left out
 * unless include_paused (workers: what was emitted before a pause is still
 * written). Entries on a Grist server the running configuration lacks
 * (servers borrowed from *servers_of, read at each call), or whose token
 * does not open, are left out with a warning naming the procedure: one bad
 * entry never blocks a reload. The file wins on a conflict (the loader's
 * rule). The caller owns reg and sb; ud = &source.
 */
typedef struct d2g_registry_source {
    d2g_registry_t *reg;
    const d2g_sealbox_t *sb;
    int include_paused;
    const d2g_config_t *(*servers_of)(void *ud); /* the running configuration */
    void *servers_ud;
} d2g_registry_source_t;
int d2g_registry_source_fn(void *ud, json_t **overlay, char *err, size_t errlen);
/* 1 if the registry has procedure (active or paused): the worker's hook for
 * a dossier of a procedure its configuration does not have yet. */
int d2g_registry_has(d2g_registry_t *reg, int64_t procedure);

#endif
